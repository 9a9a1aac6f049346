//! The encoding of a [`WriteBatch`]: the data of a Raft log entry, and of a snapshot (whose
//! writes are physical keys and stored values). A batch can be written and read one write at
//! a time, so a snapshot never needs a second copy of its writes in memory.
//!
//! Layout: `version: u64`, `count: u64`, then per write `key_len: u32`, key, and `0` for a
//! delete or `1`, `value_len: u32`, value (all big-endian). A count of [`UNCOUNTED`] means the
//! writes run to the end of the bytes: a snapshot written out as storage is scanned.

use super::{Version, WriteBatch};
use crate::error::{Error, Result};
use std::io::Write;

/// The count of a batch whose writes run to the end of its bytes.
const UNCOUNTED: u64 = u64::MAX;

/// Writes one write of a batch.
fn write_one(out: &mut (impl Write + ?Sized), key: &[u8], value: Option<&[u8]>) -> std::io::Result<()> {
    out.write_all(&(key.len() as u32).to_be_bytes())?;
    out.write_all(key)?;
    match value {
        Some(v) => {
            out.write_all(&[1])?;
            out.write_all(&(v.len() as u32).to_be_bytes())?;
            out.write_all(v)
        }
        None => out.write_all(&[0]),
    }
}

/// Writes a batch of unknown length to `out`, one write at a time.
pub struct StreamEncoder<'w, W: Write + ?Sized> {
    out: &'w mut W,
}

impl<'w, W: Write + ?Sized> StreamEncoder<'w, W> {
    pub fn new(version: Version, out: &'w mut W) -> Result<Self> {
        out.write_all(&version.to_be_bytes()).map_err(io)?;
        out.write_all(&UNCOUNTED.to_be_bytes()).map_err(io)?;
        Ok(Self { out })
    }

    /// Adds a write (`None`: a delete).
    pub fn push(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        write_one(self.out, key, value).map_err(io)
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Io(format!("writing a snapshot: {e}"))
}

/// Serializes a batch.
pub fn encode_batch(batch: &WriteBatch) -> Vec<u8> {
    let size: usize = batch.writes.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 9).sum();
    let mut encoder = Encoder::with_capacity(batch.version, size + 16);
    for (key, value) in &batch.writes {
        encoder.push(key, value.as_deref());
    }
    encoder.finish()
}

/// Reads a batch written by [`encode_batch`].
pub fn decode_batch(bytes: &[u8]) -> Result<WriteBatch> {
    let reader = Reader::new(bytes)?;
    let version = reader.version();
    let mut writes = Vec::with_capacity(reader.remaining().unwrap_or(0).min(1 << 20));
    for write in reader {
        let (key, value) = write?;
        writes.push((key.to_vec(), value.map(<[u8]>::to_vec)));
    }
    Ok(WriteBatch { version, writes })
}

/// Writes a batch one write at a time.
pub struct Encoder {
    out: Vec<u8>,
    count: u64,
}

impl Encoder {
    pub fn with_capacity(version: Version, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity.max(16));
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        Self { out, count: 0 }
    }

    /// Adds a write (`None`: a delete).
    pub fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        // Writing to a Vec cannot fail.
        let _ = write_one(&mut self.out, key, value);
        self.count += 1;
    }

    /// The encoded batch.
    pub fn finish(mut self) -> Vec<u8> {
        self.out[8..16].copy_from_slice(&self.count.to_be_bytes());
        self.out
    }
}

/// Reads the writes of an encoded batch in order, borrowing them from the bytes.
#[derive(Clone)]
pub struct Reader<'a> {
    version: Version,
    /// Writes left; None: until the bytes end.
    remaining: Option<usize>,
    input: &'a [u8],
}

fn corrupt() -> Error {
    Error::Corruption("malformed write batch".into())
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < 16 {
            return Err(corrupt());
        }
        let (head, input) = bytes.split_at(16);
        let version = u64::from_be_bytes(head[..8].try_into().map_err(|_| corrupt())?);
        let count = u64::from_be_bytes(head[8..].try_into().map_err(|_| corrupt())?);
        let remaining = if count == UNCOUNTED { None } else { Some(usize::try_from(count).map_err(|_| corrupt())?) };
        Ok(Self { version, remaining, input })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Writes not read yet, if the batch is counted.
    pub fn remaining(&self) -> Option<usize> {
        self.remaining
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.input.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    fn take_len(&mut self) -> Result<usize> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| corrupt())?) as usize)
    }

    fn next_write(&mut self) -> Result<(&'a [u8], Option<&'a [u8]>)> {
        let klen = self.take_len()?;
        let key = self.take(klen)?;
        let value = match self.take(1)?[0] {
            0 => None,
            1 => {
                let vlen = self.take_len()?;
                Some(self.take(vlen)?)
            }
            _ => return Err(corrupt()),
        };
        Ok((key, value))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(&'a [u8], Option<&'a [u8]>)>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.remaining {
            Some(0) => return None,
            Some(n) => *n -= 1,
            None if self.input.is_empty() => return None,
            None => {}
        }
        let write = self.next_write();
        if write.is_err() {
            self.remaining = Some(0);
        }
        Some(write)
    }
}
