//! Order-preserving key encoding.
//!
//! `encode(a) < encode(b)` (bytewise) exactly when `a < b` (SQL order, NULL last), for values of
//! the same family, and an encoded value is self-delimiting, so a composite key is just the
//! concatenation of its parts and a suffix (such as an MVCC version) can follow it. Integers of
//! every width share one encoding, so an index on an INT column can be probed with a BIGINT.

use crate::error::{Error, Result};
use crate::types::timetz::TimeTz;
use crate::types::value::Interval;
use crate::types::Value;
use rust_decimal::Decimal;

const TAG_NULL: u8 = 0xff;
const TAG_FALSE: u8 = 0x10;
const TAG_TRUE: u8 = 0x11;
const TAG_INT: u8 = 0x20;
const TAG_FLOAT: u8 = 0x21;
const TAG_NUM_NEG: u8 = 0x22;
const TAG_NUM_ZERO: u8 = 0x23;
const TAG_NUM_POS: u8 = 0x24;
/// NUMERIC NaN sorts above every number.
const TAG_NUM_NAN: u8 = 0x25;
const TAG_TEXT: u8 = 0x30;
const TAG_BYTEA: u8 = 0x31;
const TAG_DATE: u8 = 0x40;
const TAG_TIMESTAMP: u8 = 0x41;
const TAG_TIMESTAMPTZ: u8 = 0x42;
const TAG_INTERVAL: u8 = 0x43;
const TAG_TIME: u8 = 0x44;
const TAG_TIMETZ: u8 = 0x45;
const TAG_UUID: u8 = 0x50;
const TAG_JSONB: u8 = 0x51;

/// Appends the encoding of `value` to `out`.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(b) => out.push(if *b { TAG_TRUE } else { TAG_FALSE }),
        Value::Int2(_) | Value::Int4(_) | Value::Int8(_) => {
            out.push(TAG_INT);
            encode_i64(value.as_i64().unwrap_or_default(), out);
        }
        Value::Float4(_) | Value::Float8(_) => {
            out.push(TAG_FLOAT);
            let f = value.as_f64().unwrap_or_default();
            // Canonical NaN and zero so that equal values encode equally.
            let f = if f.is_nan() {
                f64::NAN
            } else if f == 0.0 {
                0.0
            } else {
                f
            };
            let bits = f.to_bits();
            let ordered = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Value::Numeric(d) => encode_decimal(d, out),
        Value::NumericNaN => out.push(TAG_NUM_NAN),
        Value::NumericInf { negative } => encode_numeric_parts(*negative, INFINITE_EXPONENT, "", out),
        Value::Text(s) => {
            out.push(TAG_TEXT);
            encode_bytes(s.as_bytes(), out);
        }
        Value::Bytea(b) => {
            out.push(TAG_BYTEA);
            encode_bytes(b, out);
        }
        Value::Date(d) => {
            out.push(TAG_DATE);
            encode_i64(*d as i64, out);
        }
        Value::Timestamp(t) => {
            out.push(TAG_TIMESTAMP);
            encode_i64(*t, out);
        }
        Value::TimestampTz(t) => {
            out.push(TAG_TIMESTAMPTZ);
            encode_i64(*t, out);
        }
        Value::Time(t) => {
            out.push(TAG_TIME);
            encode_i64(*t, out);
        }
        // In PostgreSQL's order: the instant, then the offset reversed (zones west last).
        Value::TimeTz(t) => {
            out.push(TAG_TIMETZ);
            encode_i64(t.utc_micros(), out);
            encode_i64(-(t.offset as i64), out);
        }
        Value::Interval(iv) => {
            out.push(TAG_INTERVAL);
            let total = iv.total_micros() ^ (1i128 << 127);
            out.extend_from_slice(&total.to_be_bytes());
            encode_i64(iv.months as i64, out);
            encode_i64(iv.days as i64, out);
        }
        Value::Uuid(u) => {
            out.push(TAG_UUID);
            out.extend_from_slice(&u.to_be_bytes());
        }
        Value::Jsonb(j) => {
            out.push(TAG_JSONB);
            encode_bytes(j.to_string().as_bytes(), out);
        }
        Value::Array(_) | Value::Record(_) => {
            // Arrays and rows are not key material in this version; encode as their text.
            out.push(TAG_TEXT);
            encode_bytes(value.to_string().as_bytes(), out);
        }
    }
}

/// Encodes a sequence of values as one key.
pub fn encode_key(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 9);
    for v in values {
        encode_value(v, &mut out);
    }
    out
}

fn encode_i64(v: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

/// Bytes with 0x00 escaped as 0x00 0xff and a 0x00 0x00 terminator: order-preserving and
/// self-delimiting.
fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if b == 0 {
            out.extend_from_slice(&[0, 0xff]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Decimal as sign, decimal exponent and digit string; negative numbers invert every byte so
/// that larger magnitudes sort first.
fn encode_decimal(d: &Decimal, out: &mut Vec<u8>) {
    let n = d.normalize();
    if n.is_zero() {
        out.push(TAG_NUM_ZERO);
        return;
    }
    let digits: String = n.abs().mantissa().to_string();
    let exponent = digits.len() as i32 - n.scale() as i32;
    encode_numeric_parts(n.is_sign_negative(), exponent, digits.trim_end_matches('0'), out);
}

/// The exponent of NUMERIC's infinities, which have no digits: above every finite number's.
const INFINITE_EXPONENT: i32 = i32::MAX;

fn encode_numeric_parts(negative: bool, exponent: i32, digits: &str, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(digits.len() + 5);
    body.extend_from_slice(&((exponent as u32) ^ (1 << 31)).to_be_bytes());
    body.extend(digits.bytes());
    body.push(0);
    if negative {
        out.push(TAG_NUM_NEG);
        out.extend(body.iter().map(|b| !b));
    } else {
        out.push(TAG_NUM_POS);
        out.extend(body);
    }
}

fn corrupt() -> Error {
    Error::Corruption("malformed key".into())
}

/// Decodes one value from the front of `input`, advancing it.
pub fn decode_value(input: &mut &[u8]) -> Result<Value> {
    let (&tag, rest) = input.split_first().ok_or_else(corrupt)?;
    *input = rest;
    Ok(match tag {
        TAG_NULL => Value::Null,
        TAG_FALSE => Value::Bool(false),
        TAG_TRUE => Value::Bool(true),
        TAG_INT => Value::Int8(decode_i64(input)?),
        TAG_FLOAT => {
            let ordered = u64::from_be_bytes(take::<8>(input)?);
            let bits = if ordered >> 63 == 1 { ordered & !(1 << 63) } else { !ordered };
            Value::Float8(f64::from_bits(bits))
        }
        TAG_NUM_ZERO => Value::Numeric(Decimal::ZERO),
        TAG_NUM_NAN => Value::NumericNaN,
        TAG_NUM_POS | TAG_NUM_NEG => {
            let negative = tag == TAG_NUM_NEG;
            let fix = |b: u8| if negative { !b } else { b };
            let exp_bytes = take::<4>(input)?.map(fix);
            let exponent = (u32::from_be_bytes(exp_bytes) ^ (1 << 31)) as i32;
            let end = input.iter().position(|&b| fix(b) == 0).ok_or_else(corrupt)?;
            let digits: String = input[..end].iter().map(|&b| fix(b) as char).collect();
            *input = &input[end + 1..];
            if exponent == INFINITE_EXPONENT && digits.is_empty() {
                return Ok(Value::NumericInf { negative });
            }
            let scale = digits.len() as i32 - exponent;
            let mantissa: i128 = digits.parse().map_err(|_| corrupt())?;
            if !(-28..=28).contains(&scale) {
                return Err(corrupt());
            }
            let mut d = if scale >= 0 {
                Decimal::try_from_i128_with_scale(mantissa, scale as u32).map_err(|_| corrupt())?
            } else {
                let factor = 10i128.checked_pow((-scale) as u32).ok_or_else(corrupt)?;
                Decimal::try_from_i128_with_scale(mantissa, 0)
                    .ok()
                    .and_then(|m| m.checked_mul(Decimal::try_from_i128_with_scale(factor, 0).ok()?))
                    .ok_or_else(corrupt)?
            };
            d.set_sign_negative(negative);
            Value::Numeric(d)
        }
        TAG_TEXT => Value::Text(String::from_utf8(decode_bytes(input)?).map_err(|_| corrupt())?),
        TAG_BYTEA => Value::Bytea(decode_bytes(input)?),
        TAG_DATE => Value::Date(decode_i64(input)? as i32),
        TAG_TIME => Value::Time(decode_i64(input)?),
        TAG_TIMETZ => {
            let utc = decode_i64(input)?;
            let offset = i32::try_from(-decode_i64(input)?).map_err(|_| corrupt())?;
            Value::TimeTz(TimeTz { micros: utc + offset as i64 * crate::types::datetime::MICROS_PER_SECOND, offset })
        }
        TAG_TIMESTAMP => Value::Timestamp(decode_i64(input)?),
        TAG_TIMESTAMPTZ => Value::TimestampTz(decode_i64(input)?),
        TAG_INTERVAL => {
            let total = i128::from_be_bytes(take::<16>(input)?) ^ (1i128 << 127);
            let months = decode_i64(input)? as i32;
            let days = decode_i64(input)? as i32;
            let day_micros = crate::types::datetime::MICROS_PER_DAY as i128;
            let micros = (total - (months as i128 * 30 + days as i128) * day_micros) as i64;
            Value::Interval(Interval { months, days, micros })
        }
        TAG_UUID => Value::Uuid(u128::from_be_bytes(take::<16>(input)?)),
        TAG_JSONB => {
            let text = String::from_utf8(decode_bytes(input)?).map_err(|_| corrupt())?;
            Value::Jsonb(serde_json::from_str(&text).map_err(|_| corrupt())?)
        }
        _ => return Err(corrupt()),
    })
}

fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N]> {
    if input.len() < N {
        return Err(corrupt());
    }
    let mut buf = [0u8; N];
    buf.copy_from_slice(&input[..N]);
    *input = &input[N..];
    Ok(buf)
}

fn decode_i64(input: &mut &[u8]) -> Result<i64> {
    Ok((u64::from_be_bytes(take::<8>(input)?) ^ (1 << 63)) as i64)
}

fn decode_bytes(input: &mut &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match (input.get(i), input.get(i + 1)) {
            (Some(0), Some(0)) => {
                *input = &input[i + 2..];
                return Ok(out);
            }
            (Some(0), Some(0xff)) => {
                out.push(0);
                i += 2;
            }
            (Some(&b), _) if b != 0 => {
                out.push(b);
                i += 1;
            }
            _ => return Err(corrupt()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int8),
            any::<f64>().prop_filter("finite or nan", |f| !f.is_infinite()).prop_map(Value::Float8),
            (any::<i64>(), 0u32..10).prop_map(|(m, s)| Value::Numeric(Decimal::new(m, s))),
            Just(Value::NumericNaN),
            Just(Value::NumericInf { negative: false }),
            Just(Value::NumericInf { negative: true }),
            ".*".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bytea),
            any::<i64>().prop_map(|t| Value::TimestampTz(t / 2)),
            any::<u128>().prop_map(Value::Uuid),
            (0..=86_400_000_000i64, -57_599..=57_599i32)
                .prop_map(|(micros, offset)| Value::TimeTz(TimeTz { micros, offset })),
        ]
    }

    fn same_family(a: &Value, b: &Value) -> bool {
        let numeric = |v: &Value| matches!(v, Value::Numeric(_) | Value::NumericNaN | Value::NumericInf { .. });
        std::mem::discriminant(a) == std::mem::discriminant(b) || a.is_null() || b.is_null() || numeric(a) && numeric(b)
    }

    proptest! {
        #[test]
        fn encoding_order_is_value_order(a in arb_value(), b in arb_value()) {
            prop_assume!(same_family(&a, &b));
            let (ka, kb) = (encode_key(std::slice::from_ref(&a)), encode_key(std::slice::from_ref(&b)));
            prop_assert_eq!(ka.cmp(&kb), a.sort_cmp(&b), "{:?} vs {:?}", a, b);
        }

        #[test]
        fn composite_keys_order_lexicographically(a in arb_value(), b in arb_value(), c in ".*", d in ".*") {
            prop_assume!(same_family(&a, &b));
            let ka = encode_key(&[a.clone(), Value::Text(c.clone())]);
            let kb = encode_key(&[b.clone(), Value::Text(d.clone())]);
            let want = a.sort_cmp(&b).then(c.cmp(&d));
            prop_assert_eq!(ka.cmp(&kb), want);
        }

        #[test]
        fn encoding_round_trips(values in proptest::collection::vec(arb_value(), 0..5)) {
            let key = encode_key(&values);
            let mut input = key.as_slice();
            for v in &values {
                let decoded = decode_value(&mut input).unwrap();
                prop_assert_eq!(decoded.sort_cmp(v), std::cmp::Ordering::Equal, "{:?} vs {:?}", decoded, v);
            }
            prop_assert!(input.is_empty());
        }
    }

    #[test]
    fn integers_of_all_widths_share_an_encoding() {
        assert_eq!(encode_key(&[Value::Int4(7)]), encode_key(&[Value::Int8(7)]));
        assert_eq!(encode_key(&[Value::Int2(-1)]), encode_key(&[Value::Int8(-1)]));
    }
}
