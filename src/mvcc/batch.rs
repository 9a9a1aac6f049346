//! The encoding of a [`WriteBatch`]: the data of a Raft log entry, and of a snapshot (whose
//! writes are physical keys and stored values). A batch can be written and read one write at
//! a time, so a snapshot never needs a second copy of its writes in memory.
//!
//! Layout: `version: u64`, `count: u64`, then per write `key_len: u32`, key, and `0` for a
//! delete or `1`, `value_len: u32`, value (all big-endian). A count of [`UNCOUNTED`] means the
//! writes run to the end of the bytes: a snapshot written out as storage is scanned.

use super::{Version, WriteBatch};
use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read, Write};

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

/// Reads the writes of an encoded batch from a stream, one write at a time (a snapshot read
/// from the log store without holding it whole).
pub struct StreamReader<R: Read> {
    version: Version,
    /// Writes left; None: until the stream ends.
    remaining: Option<u64>,
    input: BufReader<R>,
}

/// The buffer of a [`StreamReader`].
const STREAM_BUFFER: usize = 64 * 1024;

/// A write read from a stream: a key and a value (None: a delete).
pub type OwnedWrite = (Vec<u8>, Option<Vec<u8>>);

impl<R: Read> StreamReader<R> {
    pub fn new(input: R) -> Result<Self> {
        let mut input = BufReader::with_capacity(STREAM_BUFFER, input);
        let mut head = [0u8; 16];
        read_exact(&mut input, &mut head)?;
        let version = u64::from_be_bytes(head[..8].try_into().map_err(|_| corrupt())?);
        let count = u64::from_be_bytes(head[8..].try_into().map_err(|_| corrupt())?);
        Ok(Self { version, remaining: (count != UNCOUNTED).then_some(count), input })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    fn bytes(&mut self, len: usize) -> Result<Vec<u8>> {
        // Grown as bytes arrive: a corrupt length cannot allocate more than the stream holds.
        let mut bytes = Vec::new();
        (&mut self.input).take(len as u64).read_to_end(&mut bytes).map_err(read_error)?;
        if bytes.len() != len {
            return Err(corrupt());
        }
        Ok(bytes)
    }

    fn len(&mut self) -> Result<usize> {
        let mut len = [0u8; 4];
        read_exact(&mut self.input, &mut len)?;
        Ok(u32::from_be_bytes(len) as usize)
    }

    fn next_write(&mut self) -> Result<OwnedWrite> {
        let klen = self.len()?;
        let key = self.bytes(klen)?;
        let mut kind = [0u8; 1];
        read_exact(&mut self.input, &mut kind)?;
        let value = match kind[0] {
            0 => None,
            1 => {
                let vlen = self.len()?;
                Some(self.bytes(vlen)?)
            }
            _ => return Err(corrupt()),
        };
        Ok((key, value))
    }
}

fn read_error(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => corrupt(),
        _ => Error::Io(format!("reading a snapshot: {e}")),
    }
}

fn read_exact(input: &mut impl Read, buf: &mut [u8]) -> Result<()> {
    input.read_exact(buf).map_err(read_error)
}

impl<R: Read> Iterator for StreamReader<R> {
    type Item = Result<OwnedWrite>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.remaining {
            Some(0) => return None,
            Some(n) => *n -= 1,
            None => match self.input.fill_buf() {
                Ok([]) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.remaining = Some(0);
                    return Some(Err(read_error(e)));
                }
            },
        }
        let write = self.next_write();
        if write.is_err() {
            self.remaining = Some(0);
        }
        Some(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn writes() -> impl Strategy<Value = Vec<OwnedWrite>> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..40);
        proptest::collection::vec((bytes(), proptest::option::of(bytes())), 0..20)
    }

    fn streamed(version: Version, writes: &[OwnedWrite]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = StreamEncoder::new(version, &mut out).unwrap();
        for (key, value) in writes {
            encoder.push(key, value.as_deref()).unwrap();
        }
        out
    }

    proptest! {
        /// Counted and uncounted batches read back the same through both readers.
        #[test]
        fn both_readers_read_what_was_written(version in any::<u64>(), writes in writes()) {
            let counted = encode_batch(&WriteBatch { version, writes: writes.clone() });
            let uncounted = streamed(version, &writes);
            for bytes in [&counted, &uncounted] {
                let stream = StreamReader::new(bytes.as_slice()).unwrap();
                prop_assert_eq!(stream.version(), version);
                let read: Vec<OwnedWrite> = stream.collect::<Result<_>>().unwrap();
                prop_assert_eq!(&read, &writes);
                let borrowed: Vec<OwnedWrite> = Reader::new(bytes)
                    .unwrap()
                    .map(|w| w.map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))))
                    .collect::<Result<_>>()
                    .unwrap();
                prop_assert_eq!(&borrowed, &writes);
            }
        }

        /// A cut or damaged batch ends in an error (or, uncounted and cut between writes,
        /// fewer writes), never a panic or a huge allocation.
        #[test]
        fn damaged_batches_fail_cleanly(writes in writes(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
            let mut bytes = encode_batch(&WriteBatch { version: 7, writes: writes.clone() });
            let at = cut.index(bytes.len());
            bytes[at] ^= flip;
            let _ = StreamReader::new(bytes.as_slice()).map(|r| r.collect::<Vec<_>>());
            bytes.truncate(at);
            match StreamReader::new(bytes.as_slice()) {
                Err(e) => prop_assert!(matches!(e, Error::Corruption(_))),
                Ok(reader) => {
                    let read: Vec<Result<OwnedWrite>> = reader.collect();
                    prop_assert!(read.len() <= writes.len() || read.last().is_some_and(|r| r.is_err()));
                    prop_assert!(read.iter().any(|r| r.is_err()) || writes.is_empty() && at >= 16);
                }
            }
        }
    }
}
