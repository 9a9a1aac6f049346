//! Row encoding: a compact binary form of a row's values, LZ4-compressed only when that makes
//! it smaller (short rows are stored as they are).

use super::varint;
use crate::error::{Error, Result};
use crate::types::timetz::TimeTz;
use crate::types::value::Interval;
use crate::types::Value;
use rust_decimal::Decimal;

const RAW: u8 = 0;
const LZ4: u8 = 1;
/// Rows shorter than this are never worth compressing.
const COMPRESS_MIN: usize = 64;

/// Encodes a row.
pub fn encode_row(values: &[Value]) -> Vec<u8> {
    let mut body = Vec::with_capacity(values.len() * 9 + 1);
    varint::put(&mut body, values.len() as u64);
    for v in values {
        encode_one(v, &mut body);
    }
    if body.len() >= COMPRESS_MIN {
        let compressed = lz4_flex::compress_prepend_size(&body);
        if compressed.len() < body.len() {
            let mut out = Vec::with_capacity(compressed.len() + 1);
            out.push(LZ4);
            out.extend_from_slice(&compressed);
            return out;
        }
    }
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(RAW);
    out.extend_from_slice(&body);
    out
}

/// Decodes a row encoded by [`encode_row`].
pub fn decode_row(bytes: &[u8]) -> Result<Vec<Value>> {
    let (&header, rest) = bytes.split_first().ok_or_else(corrupt)?;
    let owned;
    let mut input = match header {
        RAW => rest,
        LZ4 => {
            owned = lz4_flex::decompress_size_prepended(rest).map_err(|_| corrupt())?;
            owned.as_slice()
        }
        _ => return Err(corrupt()),
    };
    let count = varint::take(&mut input)? as usize;
    let mut values = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        values.push(decode_one(&mut input)?);
    }
    Ok(values)
}

fn corrupt() -> Error {
    Error::Corruption("malformed row".into())
}

fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    varint::put(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn read_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8]> {
    let len = varint::take(input)? as usize;
    if input.len() < len {
        return Err(corrupt());
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
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

fn encode_one(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(b) => out.push(if *b { 2 } else { 1 }),
        Value::Int2(i) => {
            out.push(3);
            varint::put(out, varint::zigzag(*i as i64));
        }
        Value::Int4(i) => {
            out.push(4);
            varint::put(out, varint::zigzag(*i as i64));
        }
        Value::Int8(i) => {
            out.push(5);
            varint::put(out, varint::zigzag(*i));
        }
        Value::Float4(f) => {
            out.push(6);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Float8(f) => {
            out.push(7);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::NumericNaN => out.push(18),
        Value::NumericInf { negative } => out.push(if *negative { 21 } else { 20 }),
        Value::Numeric(d) => {
            out.push(8);
            out.extend_from_slice(&d.serialize());
        }
        Value::Text(s) => {
            out.push(9);
            write_bytes(s.as_bytes(), out);
        }
        Value::Bytea(b) => {
            out.push(10);
            write_bytes(b, out);
        }
        Value::Date(d) => {
            out.push(11);
            varint::put(out, varint::zigzag(*d as i64));
        }
        Value::Timestamp(t) => {
            out.push(12);
            varint::put(out, varint::zigzag(*t));
        }
        Value::TimestampTz(t) => {
            out.push(13);
            varint::put(out, varint::zigzag(*t));
        }
        Value::Interval(iv) => {
            out.push(14);
            varint::put(out, varint::zigzag(iv.months as i64));
            varint::put(out, varint::zigzag(iv.days as i64));
            varint::put(out, varint::zigzag(iv.micros));
        }
        Value::Uuid(u) => {
            out.push(15);
            out.extend_from_slice(&u.to_be_bytes());
        }
        Value::Jsonb(j) => {
            out.push(16);
            write_bytes(j.to_string().as_bytes(), out);
        }
        Value::Time(t) => {
            out.push(19);
            varint::put(out, varint::zigzag(*t));
        }
        Value::TimeTz(t) => {
            out.push(23);
            varint::put(out, varint::zigzag(t.micros));
            varint::put(out, varint::zigzag(t.offset as i64));
        }
        Value::Array(items) | Value::Record(items) => {
            out.push(if matches!(v, Value::Array(_)) { 17 } else { 22 });
            varint::put(out, items.len() as u64);
            for item in items {
                encode_one(item, out);
            }
        }
    }
}

fn decode_one(input: &mut &[u8]) -> Result<Value> {
    let (&tag, rest) = input.split_first().ok_or_else(corrupt)?;
    *input = rest;
    let int = |input: &mut &[u8]| varint::take(input).map(varint::unzigzag);
    Ok(match tag {
        0 => Value::Null,
        1 => Value::Bool(false),
        2 => Value::Bool(true),
        3 => Value::Int2(int(input)? as i16),
        4 => Value::Int4(int(input)? as i32),
        5 => Value::Int8(int(input)?),
        6 => Value::Float4(f32::from_le_bytes(take::<4>(input)?)),
        7 => Value::Float8(f64::from_le_bytes(take::<8>(input)?)),
        8 => Value::Numeric(Decimal::deserialize(take::<16>(input)?)),
        9 => Value::Text(String::from_utf8(read_bytes(input)?.to_vec()).map_err(|_| corrupt())?),
        10 => Value::Bytea(read_bytes(input)?.to_vec()),
        11 => Value::Date(int(input)? as i32),
        12 => Value::Timestamp(int(input)?),
        13 => Value::TimestampTz(int(input)?),
        14 => Value::Interval(Interval { months: int(input)? as i32, days: int(input)? as i32, micros: int(input)? }),
        15 => Value::Uuid(u128::from_be_bytes(take::<16>(input)?)),
        16 => Value::Jsonb(serde_json::from_slice(read_bytes(input)?).map_err(|_| corrupt())?),
        17 => Value::Array(decode_items(input)?),
        18 => Value::NumericNaN,
        19 => Value::Time(int(input)?),
        20 => Value::NumericInf { negative: false },
        21 => Value::NumericInf { negative: true },
        22 => Value::Record(decode_items(input)?),
        23 => Value::TimeTz(TimeTz { micros: int(input)?, offset: i32::try_from(int(input)?).map_err(|_| corrupt())? }),
        _ => return Err(corrupt()),
    })
}

/// The items of an array or row: their count, then each value.
fn decode_items(input: &mut &[u8]) -> Result<Vec<Value>> {
    let n = varint::take(input)? as usize;
    let mut items = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        items.push(decode_one(input)?);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i16>().prop_map(Value::Int2),
            any::<i32>().prop_map(Value::Int4),
            any::<i64>().prop_map(Value::Int8),
            any::<f64>().prop_map(Value::Float8),
            (any::<i64>(), 0u32..20).prop_map(|(m, s)| Value::Numeric(Decimal::new(m, s))),
            Just(Value::NumericNaN),
            Just(Value::NumericInf { negative: false }),
            Just(Value::NumericInf { negative: true }),
            ".*".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bytea),
            any::<i32>().prop_map(Value::Date),
            any::<i64>().prop_map(Value::TimestampTz),
            (any::<i32>(), any::<i32>(), any::<i64>()).prop_map(|(months, days, micros)| Value::Interval(Interval {
                months,
                days,
                micros
            })),
            any::<u128>().prop_map(Value::Uuid),
            (0..=86_400_000_000i64, -57_599..=57_599i32)
                .prop_map(|(micros, offset)| Value::TimeTz(TimeTz { micros, offset })),
            (0..=86_400_000_000i64).prop_map(Value::Time),
        ]
        .prop_recursive(2, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Record),
                proptest::collection::vec(inner, 0..4).prop_map(Value::Array),
            ]
        })
    }

    fn identical(a: &Value, b: &Value) -> bool {
        // Structural identity, including the type and NaN bits, not SQL equality.
        format!("{a:?}") == format!("{b:?}")
    }

    proptest! {
        #[test]
        fn rows_round_trip(row in proptest::collection::vec(arb_value(), 0..20)) {
            let decoded = decode_row(&encode_row(&row)).unwrap();
            prop_assert_eq!(decoded.len(), row.len());
            for (a, b) in decoded.iter().zip(row.iter()) {
                prop_assert!(identical(a, b), "{:?} vs {:?}", a, b);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_row(&bytes);
        }
    }

    #[test]
    fn compresses_only_when_smaller() {
        let short = encode_row(&[Value::Int4(1)]);
        assert_eq!(short[0], RAW);
        let long = encode_row(&[Value::Text("sensor-".repeat(40))]);
        assert_eq!(long[0], LZ4);
        assert!(long.len() < 100);
        assert_eq!(decode_row(&long).unwrap(), vec![Value::Text("sensor-".repeat(40))]);
    }
}
