//! LEB128 varints and zigzag, shared by the row codec and the column codecs.

use crate::error::{Error, Result};

/// Appends `value` as a LEB128 varint.
pub fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a LEB128 varint from the front of `input`, advancing it. A varint that ends early
/// or holds more than 64 bits is corruption.
pub fn take(input: &mut &[u8]) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some((&byte, rest)) = input.split_first() else { break };
        *input = rest;
        if shift == 63 && byte > 1 {
            break;
        }
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Error::Corruption("a varint ends early or holds more than 64 bits".into()))
}

/// Zigzag: small negative and positive numbers become small unsigned ones.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_and_zigzag_round_trip(v in any::<i64>()) {
            let mut out = Vec::new();
            put(&mut out, zigzag(v));
            let mut input = &out[..];
            prop_assert_eq!(unzigzag(take(&mut input).unwrap()), v);
            prop_assert!(input.is_empty());
        }
    }

    #[test]
    fn overlong_varints_are_refused() {
        assert!(take(&mut &[0xff; 10][..]).is_err());
        assert!(take(&mut &[0x80][..]).is_err());
        assert_eq!(take(&mut &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..]).unwrap(), u64::MAX);
    }
}
