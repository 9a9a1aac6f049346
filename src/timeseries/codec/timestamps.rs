//! Timestamps (and other mostly evenly spaced integers): delta-of-delta, as in Gorilla.
//!
//! The first value is kept whole; each later value is coded by how much its delta from the
//! value before differs from the previous delta (the first delta's "previous" is 0). Readings
//! every 10 s cost one bit each; jitter costs a few bytes at most. The difference is zigzagged
//! and written with a prefix naming its width:
//!
//! | prefix | bits | zigzagged difference |
//! |---|---|---|
//! | `0` | 0 | 0 |
//! | `10` | 7 | < 2^7 |
//! | `110` | 14 | < 2^14 |
//! | `1110` | 24 | < 2^24 |
//! | `11110` | 36 | < 2^36 |
//! | `11111` | 64 | any |
//!
//! All arithmetic wraps, so every `i64` sequence round-trips.

use super::bits::{take_count, unzigzag, varint, width, zigzag, BitReader, BitWriter};
use crate::error::Result;

/// (prefix, prefix length, payload bits), narrowest first.
const CLASSES: [(u64, u32, u32); 5] =
    [(0b10, 2, 7), (0b110, 3, 14), (0b1110, 4, 24), (0b11110, 5, 36), (0b11111, 5, 64)];

pub fn encode(values: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    varint::put(&mut out, values.len() as u64);
    let Some((&first, rest)) = values.split_first() else { return out };
    let mut bits = BitWriter::new();
    bits.write(first as u64, 64);
    let (mut prev, mut prev_delta) = (first, 0i64);
    for &v in rest {
        let delta = v.wrapping_sub(prev);
        let z = zigzag(delta.wrapping_sub(prev_delta));
        if z == 0 {
            bits.write_bit(false);
        } else {
            let w = width(z);
            let &(prefix, prefix_len, payload) =
                CLASSES.iter().find(|(_, _, payload)| w <= *payload).expect("64 bits hold any value");
            bits.write(prefix, prefix_len);
            bits.write(z, payload);
        }
        (prev, prev_delta) = (v, delta);
    }
    out.extend(bits.finish());
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<i64>> {
    let mut input = bytes;
    let count = take_count(&mut input, 1)?;
    let mut values = Vec::with_capacity(count);
    if count == 0 {
        return Ok(values);
    }
    let mut bits = BitReader::new(input);
    let mut prev = bits.read(64)? as i64;
    values.push(prev);
    let mut prev_delta = 0i64;
    while values.len() < count {
        let mut ones = 0;
        while ones < 5 && bits.read_bit()? {
            ones += 1;
        }
        let z = match ones {
            0 => 0,
            n => bits.read(CLASSES[(n - 1).min(4)].2)?,
        };
        let delta = prev_delta.wrapping_add(unzigzag(z));
        prev = prev.wrapping_add(delta);
        prev_delta = delta;
        values.push(prev);
    }
    Ok(values)
}
