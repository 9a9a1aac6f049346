//! Float columns: Chimp128 or decimal scaling, whichever is smaller for the block.

use super::bits::{take_bytes, varint};
use super::{chimp, decimal};
use crate::error::{Error, Result};

const CHIMP: u8 = 0;
const DECIMAL: u8 = 1;

/// Decimal scaling is tried when fewer than this fraction of sampled values would be
/// exceptions; otherwise Chimp128 is used without trying.
const DECIMAL_TRY_BELOW: f64 = 0.5;

/// Which codec a block chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatCodec {
    Chimp128,
    Decimal { exponent: u8 },
}

pub fn encode(values: &[f64]) -> Vec<u8> {
    let chimp = chimp::encode(values);
    let (exponent, misses) = decimal::choose_exponent(values);
    if misses < DECIMAL_TRY_BELOW {
        let decimal = decimal::encode(values, exponent);
        if decimal.len() < chimp.len() {
            return [&[DECIMAL][..], &decimal].concat();
        }
    }
    [&[CHIMP][..], &chimp].concat()
}

/// The codec an encoded block uses.
pub fn codec(bytes: &[u8]) -> Result<FloatCodec> {
    match bytes.first() {
        Some(&CHIMP) => Ok(FloatCodec::Chimp128),
        Some(&DECIMAL) => {
            let mut input = &bytes[1..];
            varint::take(&mut input)?;
            Ok(FloatCodec::Decimal { exponent: take_bytes(&mut input, 1)?[0] })
        }
        _ => Err(unknown()),
    }
}

pub fn decode(bytes: &[u8]) -> Result<Vec<f64>> {
    let mut input = bytes;
    match take_bytes(&mut input, 1)?[0] {
        CHIMP => chimp::decode(input),
        DECIMAL => decimal::decode(input),
        _ => Err(unknown()),
    }
}

fn unknown() -> Error {
    Error::Corruption("a float column names an unknown codec".into())
}
