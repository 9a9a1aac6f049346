//! Bit-level writing and reading, most significant bit first.

use crate::error::{Error, Result};
pub use crate::storage::varint::{self, unzigzag, zigzag};

/// Appends bit fields to a byte vector.
#[derive(Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits of the last byte already used (0 = start a new byte).
    used: u32,
}

impl BitWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the low `n` bits of `value` (n ≤ 64).
    pub fn write(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        let mut left = n;
        while left > 0 {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let room = 8 - self.used;
            let take = room.min(left);
            let chunk = ((value >> (left - take)) & ((1u64 << take) - 1)) as u8;
            *self.bytes.last_mut().expect("a byte was pushed") |= chunk << (room - take);
            self.used = (self.used + take) % 8;
            left -= take;
        }
    }

    pub fn write_bit(&mut self, bit: bool) {
        self.write(bit as u64, 1);
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads bit fields written by [`BitWriter`].
pub struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits.
    at: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, at: 0 }
    }

    /// Reads `n` bits (n ≤ 64) as the low bits of the result.
    pub fn read(&mut self, n: u32) -> Result<u64> {
        debug_assert!(n <= 64);
        if self.at + n as usize > self.bytes.len() * 8 {
            return Err(truncated());
        }
        let mut value = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = self.bytes[self.at / 8];
            let offset = (self.at % 8) as u32;
            let take = (8 - offset).min(left);
            let chunk = (byte >> (8 - offset - take)) & ((1u16 << take) - 1) as u8;
            value = (value << take) | chunk as u64;
            self.at += take as usize;
            left -= take;
        }
        Ok(value)
    }

    pub fn read_bit(&mut self) -> Result<bool> {
        Ok(self.read(1)? == 1)
    }
}

pub fn truncated() -> Error {
    Error::Corruption("a compressed column ends early".into())
}

/// Takes `n` bytes from the front of `input`.
pub fn take_bytes<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(truncated());
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// Bits needed to hold `v` (0 for 0).
pub fn width(v: u64) -> u32 {
    64 - v.leading_zeros()
}

/// The most values one encoded column may hold.
pub const MAX_VALUES: usize = 1 << 24;

/// A count read from a header, refused when over [`MAX_VALUES`] or larger than the values
/// `available_bits` could hold at `min_bits` each (0: no per-value minimum), so a damaged
/// header cannot make a decoder allocate without bound.
pub fn plausible_count(count: u64, available_bits: usize, min_bits: usize) -> Result<usize> {
    let limit = available_bits.checked_div(min_bits).map_or(MAX_VALUES, |n| (n + 1).min(MAX_VALUES));
    if count > limit as u64 {
        return Err(Error::Corruption(format!("a compressed column claims {count} values in {available_bits} bits")));
    }
    Ok(count as usize)
}

/// Reads a column's value count from the front of `input` and checks it against the bits
/// that follow (see [`plausible_count`]).
pub fn take_count(input: &mut &[u8], min_bits: usize) -> Result<usize> {
    let count = varint::take(input)?;
    plausible_count(count, input.len().saturating_mul(8), min_bits)
}
