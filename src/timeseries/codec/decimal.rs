//! Decimal scaling for floats that are decimals at heart (sensor readings rounded to one or
//! two places), in the manner of ALP (Afroozeh, Kuffó, Boncz, SIGMOD 2024).
//!
//! One exponent `e` is chosen per column: each value `v` becomes the integer `round(v·10^e)`
//! when `i / 10^e` gives back exactly `v` (bit for bit), and the integers are stored with the
//! integer codec. Values that do not come back exactly (NaN, infinities, −0, values with more
//! places) are exceptions, stored whole with their positions.
//!
//! Layout: count (varint), `e` (one byte), exception count (varint), each exception as the
//! gap from the previous one's position (varint) and its 8 bytes, then the integers.

use super::bits::{take_bytes, take_count, varint};
use super::ints;
use crate::error::{Error, Result};

/// The largest exponent tried; 10^e is exact in an f64 up to 10^22.
pub const MAX_EXPONENT: u8 = 15;
/// Integers beyond ±2^53 are not exact in an f64.
const LIMIT: f64 = (1u64 << 53) as f64;
/// Values sampled to choose the exponent.
const SAMPLE: usize = 256;

fn pow10(e: u8) -> f64 {
    10f64.powi(e as i32)
}

/// `v` as an integer at exponent `e`, if it comes back exactly.
fn scale(v: f64, e: u8) -> Option<i64> {
    let scaled = (v * pow10(e)).round();
    // NaN and infinities fail this comparison too.
    if scaled.is_nan() || scaled.abs() >= LIMIT {
        return None;
    }
    let i = scaled as i64;
    ((i as f64 / pow10(e)).to_bits() == v.to_bits()).then_some(i)
}

/// The exponent with the fewest exceptions on a sample of `values` (the smallest such), and
/// the fraction of the sample that would be exceptions.
pub fn choose_exponent(values: &[f64]) -> (u8, f64) {
    let step = values.len().div_ceil(SAMPLE).max(1);
    let sample: Vec<f64> = values.iter().step_by(step).copied().collect();
    let mut best = (0u8, usize::MAX);
    for e in 0..=MAX_EXPONENT {
        let misses = sample.iter().filter(|v| scale(**v, e).is_none()).count();
        if misses < best.1 {
            best = (e, misses);
            if misses == 0 {
                break;
            }
        }
    }
    (best.0, best.1 as f64 / sample.len().max(1) as f64)
}

pub fn encode(values: &[f64], e: u8) -> Vec<u8> {
    assert!(e <= MAX_EXPONENT);
    let mut out = Vec::new();
    varint::put(&mut out, values.len() as u64);
    out.push(e);
    let mut integers = Vec::with_capacity(values.len());
    let mut exceptions = Vec::new();
    for (position, &v) in values.iter().enumerate() {
        match scale(v, e) {
            Some(i) => integers.push(i),
            None => {
                exceptions.push((position, v.to_bits()));
                // Repeat the last integer, so the exception costs nothing among the deltas.
                integers.push(integers.last().copied().unwrap_or(0));
            }
        }
    }
    varint::put(&mut out, exceptions.len() as u64);
    let mut last = 0;
    for (position, bits) in exceptions {
        varint::put(&mut out, (position - last) as u64);
        out.extend_from_slice(&bits.to_le_bytes());
        last = position;
    }
    out.extend(ints::encode(&integers));
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<f64>> {
    let mut input = bytes;
    let count = take_count(&mut input, 0)?;
    let e = *take_bytes(&mut input, 1)?.first().expect("one byte was taken");
    if e > MAX_EXPONENT {
        return Err(Error::Corruption(format!("a decimal column has exponent {e}")));
    }
    let exception_count = take_count(&mut input, 72)?;
    let mut exceptions = Vec::with_capacity(exception_count);
    let mut position = 0usize;
    for _ in 0..exception_count {
        position = position
            .checked_add(varint::take(&mut input)? as usize)
            .filter(|p| *p < count)
            .ok_or_else(|| Error::Corruption("a decimal column's exception is out of place".into()))?;
        let raw = take_bytes(&mut input, 8)?;
        exceptions.push((position, u64::from_le_bytes(raw.try_into().expect("8 bytes"))));
    }
    let integers = ints::decode(input)?;
    if integers.len() != count {
        return Err(Error::Corruption("a decimal column's integers do not match its count".into()));
    }
    let divisor = pow10(e);
    let mut values: Vec<f64> = integers.into_iter().map(|i| i as f64 / divisor).collect();
    for (position, bits) in exceptions {
        values[position] = f64::from_bits(bits);
    }
    Ok(values)
}
