//! Chimp128 float compression (Liakos, Papakonstantinopoulou, Kotidis: "Chimp: Efficient
//! Lossless Floating Point Compression for Time Series Databases", VLDB 2022).
//!
//! Each value is XORed with one of the 128 values before it: the most recent one whose low
//! 14 bits are equal, found through a table indexed by those bits, if the XOR with it has
//! more than 13 trailing zeros; otherwise the value just before. The XOR is written as:
//!
//! | flag | then | meaning |
//! |---|---|---|
//! | `00` | 7-bit slot | equal to the value in that slot of the last 128 |
//! | `01` | slot, 3-bit leading-zero class, 6-bit length, the bits | the XOR's middle bits (many trailing zeros) |
//! | `10` | 64 − leading bits | XOR with the previous value; same leading-zero class as the last `11` |
//! | `11` | 3-bit leading-zero class, 64 − leading bits | XOR with the previous value |
//!
//! Leading zeros are rounded down to one of 0, 8, 12, 16, 18, 20, 22, 24. The first value is
//! written whole. A slot is a position in the ring of the last 128 values (value `i` lives in
//! slot `i % 128`).

use super::bits::{take_count, varint, BitReader, BitWriter};
use crate::error::{Error, Result};

const PREVIOUS: usize = 128;
const SLOT_BITS: u32 = 7;
/// A reference other than the previous value is taken when the XOR has more trailing zeros
/// than this (6 + log2 of the window).
const THRESHOLD: u32 = 6 + SLOT_BITS;
/// The low bits that index the table of recent values.
const KEY_MASK: u64 = (1 << (THRESHOLD + 1)) - 1;
/// The leading-zero count of each class.
const LEADING: [u32; 8] = [0, 8, 12, 16, 18, 20, 22, 24];

/// The class of a leading-zero count: the largest of [`LEADING`] not above it.
fn leading_class(zeros: u32) -> u32 {
    LEADING.iter().rposition(|&l| l <= zeros).expect("LEADING starts at 0") as u32
}

pub fn encode(values: &[f64]) -> Vec<u8> {
    let mut out = Vec::new();
    varint::put(&mut out, values.len() as u64);
    let Some((&first, rest)) = values.split_first() else { return out };
    let mut bits = BitWriter::new();
    let mut ring = [0u64; PREVIOUS];
    // For each key, 1 + the index of the last value with it (0: none yet).
    let mut last_with_key = vec![0usize; KEY_MASK as usize + 1];
    ring[0] = first.to_bits();
    last_with_key[(first.to_bits() & KEY_MASK) as usize] = 1;
    bits.write(first.to_bits(), 64);
    // The leading-zero class of the last `11`, while a `10` may reuse it.
    let mut stored_class: Option<u32> = None;
    for (i, v) in rest.iter().enumerate() {
        let index = i + 1;
        let value = v.to_bits();
        let key = (value & KEY_MASK) as usize;
        let previous_slot = (index - 1) % PREVIOUS;
        let mut slot = previous_slot;
        let candidate = last_with_key[key];
        if candidate > 0 && index - (candidate - 1) <= PREVIOUS {
            let candidate_slot = (candidate - 1) % PREVIOUS;
            if (value ^ ring[candidate_slot]).trailing_zeros() > THRESHOLD {
                slot = candidate_slot;
            }
        }
        let xor = value ^ ring[slot];
        if xor == 0 {
            bits.write(0b00, 2);
            bits.write(slot as u64, SLOT_BITS);
            stored_class = None;
        } else if xor.trailing_zeros() > THRESHOLD {
            let class = leading_class(xor.leading_zeros());
            let trailing = xor.trailing_zeros();
            let significant = 64 - LEADING[class as usize] - trailing;
            bits.write(0b01, 2);
            bits.write(slot as u64, SLOT_BITS);
            bits.write(class as u64, 3);
            bits.write(significant as u64, 6);
            bits.write(xor >> trailing, significant);
            stored_class = None;
        } else {
            // The previous value: slot is previous_slot here.
            let class = leading_class(xor.leading_zeros());
            if stored_class == Some(class) {
                bits.write(0b10, 2);
            } else {
                bits.write(0b11, 2);
                bits.write(class as u64, 3);
                stored_class = Some(class);
            }
            bits.write(xor, 64 - LEADING[class as usize]);
        }
        ring[index % PREVIOUS] = value;
        last_with_key[key] = index + 1;
    }
    out.extend(bits.finish());
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<f64>> {
    let mut input = bytes;
    let count = take_count(&mut input, 9)?;
    let mut values = Vec::with_capacity(count);
    if count == 0 {
        return Ok(values);
    }
    let mut bits = BitReader::new(input);
    let mut ring = [0u64; PREVIOUS];
    ring[0] = bits.read(64)?;
    values.push(f64::from_bits(ring[0]));
    let mut stored_class: Option<u32> = None;
    for index in 1..count {
        let oldest_slot_usable = |slot: usize| index >= PREVIOUS || slot < index;
        let value = match bits.read(2)? {
            0b00 => {
                let slot = bits.read(SLOT_BITS)? as usize;
                if !oldest_slot_usable(slot) {
                    return Err(bad_slot());
                }
                stored_class = None;
                ring[slot]
            }
            0b01 => {
                let slot = bits.read(SLOT_BITS)? as usize;
                if !oldest_slot_usable(slot) {
                    return Err(bad_slot());
                }
                let leading = LEADING[bits.read(3)? as usize];
                let significant = bits.read(6)? as u32;
                if significant == 0 || leading + significant > 64 {
                    return Err(Error::Corruption("a Chimp128 value has an impossible length".into()));
                }
                let trailing = 64 - leading - significant;
                stored_class = None;
                ring[slot] ^ (bits.read(significant)? << trailing)
            }
            flag => {
                let class = if flag == 0b10 {
                    stored_class.ok_or_else(|| {
                        Error::Corruption("a Chimp128 value reuses a leading-zero count never set".into())
                    })?
                } else {
                    let class = bits.read(3)? as u32;
                    stored_class = Some(class);
                    class
                };
                ring[(index - 1) % PREVIOUS] ^ bits.read(64 - LEADING[class as usize])?
            }
        };
        ring[index % PREVIOUS] = value;
        values.push(f64::from_bits(value));
    }
    Ok(values)
}

fn bad_slot() -> Error {
    Error::Corruption("a Chimp128 value refers to a value that does not exist".into())
}
