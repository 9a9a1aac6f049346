//! Integers: deltas, frame of reference and bit-packing.
//!
//! The first value is kept (zigzag varint). The deltas between neighbours go in blocks of
//! [`BLOCK`]: each block writes its smallest delta and the bit width of the largest distance
//! from it, then every delta's distance in that many bits. A counter or a sequence of equal
//! values costs a few bits per block; a random walk costs the width of its steps. All
//! arithmetic wraps, so every `i64` sequence round-trips.

use super::bits::{plausible_count, unzigzag, varint, width, zigzag, BitReader, BitWriter};
use crate::error::Result;

pub const BLOCK: usize = 128;

pub fn encode(values: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    varint::put(&mut out, values.len() as u64);
    let Some(&first) = values.first() else { return out };
    varint::put(&mut out, zigzag(first));
    let deltas: Vec<i64> = values.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    let mut bits = BitWriter::new();
    for block in deltas.chunks(BLOCK) {
        let min = *block.iter().min().expect("chunks are not empty");
        let spread = block.iter().map(|d| d.wrapping_sub(min) as u64).max().expect("chunks are not empty");
        let (min_z, w) = (zigzag(min), width(spread));
        bits.write(width(min_z) as u64, 7);
        bits.write(min_z, width(min_z));
        bits.write(w as u64, 7);
        for d in block {
            bits.write(d.wrapping_sub(min) as u64, w);
        }
    }
    out.extend(bits.finish());
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<i64>> {
    let mut input = bytes;
    let count = varint::take(&mut input)?;
    // A block of 128 equal deltas takes 14 bits: no value costs less than 0.1 bit.
    let count = plausible_count(count, input.len() * 80 + 80, 1)?;
    let mut values = Vec::with_capacity(count);
    if count == 0 {
        return Ok(values);
    }
    let mut prev = unzigzag(varint::take(&mut input)?);
    values.push(prev);
    let mut bits = BitReader::new(input);
    while values.len() < count {
        let min_width = width_field(&mut bits)?;
        let min = unzigzag(bits.read(min_width)?);
        let w = width_field(&mut bits)?;
        for _ in 0..BLOCK.min(count - values.len()) {
            prev = prev.wrapping_add(min.wrapping_add(bits.read(w)? as i64));
            values.push(prev);
        }
    }
    Ok(values)
}

fn width_field(bits: &mut BitReader) -> Result<u32> {
    let w = bits.read(7)? as u32;
    if w > 64 {
        return Err(crate::error::Error::Corruption("a packed integer block is wider than 64 bits".into()));
    }
    Ok(w)
}
