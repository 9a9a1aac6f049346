//! Values on the wire: PostgreSQL's text and binary formats for results and parameters.

use crate::error::{Error, Result};
use crate::types::cast::{cast, cast_in, CastKind};
use crate::types::datetime::{self, MICROS_PER_DAY};
use crate::types::timezone::Zone;
use crate::types::value::Interval;
use crate::types::{DataType, Value};
use bytes::{BufMut, BytesMut};
use rust_decimal::Decimal;

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's binary epoch.
const PG_EPOCH_DAYS: i64 = 10_957;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * MICROS_PER_DAY;

/// A value in text format as a session in time zone `zone` sees it (None for NULL).
pub fn text(value: &Value, zone: &Zone) -> Option<String> {
    match value {
        Value::Null => None,
        other => Some(other.in_zone(zone).to_string()),
    }
}

/// The value in its column's declared type (a type oid). A client decodes a column by the
/// type RowDescription declared, so a value of another type, from an expression whose
/// result type the planner got wrong, is cast to it rather than sent as the wrong bytes.
pub fn as_declared<'a>(value: &'a Value, declared_oid: u32, zone: &Zone) -> Result<std::borrow::Cow<'a, Value>> {
    let declared = type_from_oid(declared_oid);
    if declared == DataType::Unknown || declared.holds(value) {
        return Ok(std::borrow::Cow::Borrowed(value));
    }
    cast_in(value.clone(), &declared, CastKind::Explicit, zone).map(std::borrow::Cow::Owned)
}

/// Appends a value of a column declared `declared_oid` in binary format. An empty array
/// is PostgreSQL's zero-dimension array of the declared element type (the value alone does
/// not say its element type).
pub fn binary_as(value: &Value, declared_oid: u32, buf: &mut BytesMut) -> Result<()> {
    match value {
        Value::Array(items) if items.is_empty() => {
            buf.put_i32(0);
            buf.put_i32(0);
            buf.put_u32(array_element_oid(declared_oid).unwrap_or(25));
            Ok(())
        }
        other => binary(other, buf),
    }
}

/// The element type of an array type oid, from the element types whose arrays
/// RowDescription declares ([`DataType::oid`]; any other array is `text[]`).
fn array_element_oid(array_oid: u32) -> Option<u32> {
    use DataType as T;
    [
        T::Bool,
        T::Int2,
        T::Int4,
        T::Int8,
        T::Float4,
        T::Float8,
        T::Numeric(None),
        T::Varchar(None),
        T::Timestamp,
        T::TimestampTz,
        T::Date,
        T::Time,
        T::TimeTz,
        T::Uuid,
        T::Text,
    ]
    .into_iter()
    .find(|elem| T::Array(Box::new(elem.clone())).oid() == array_oid)
    .map(|elem| elem.oid())
}

/// Appends a value in binary format.
pub fn binary(value: &Value, buf: &mut BytesMut) -> Result<()> {
    match value {
        Value::Null => {}
        Value::Bool(b) => buf.put_u8(*b as u8),
        Value::Int2(v) => buf.put_i16(*v),
        Value::Int4(v) => buf.put_i32(*v),
        Value::Int8(v) => buf.put_i64(*v),
        Value::Float4(v) => buf.put_f32(*v),
        Value::Float8(v) => buf.put_f64(*v),
        Value::Numeric(d) => numeric_binary(d, buf),
        // No digits, weight 0, the NaN sign, scale 0.
        Value::NumericNaN => buf.put_slice(&[0, 0, 0, 0, 0xC0, 0, 0, 0]),
        // The same with the sign of +Infinity (0xD000) or -Infinity (0xF000), and the display
        // scale PostgreSQL 15 sends with them (32).
        Value::NumericInf { negative } => buf.put_slice(&[0, 0, 0, 0, if *negative { 0xF0 } else { 0xD0 }, 0, 0, 32]),
        Value::Text(s) => buf.put_slice(s.as_bytes()),
        Value::Bytea(b) => buf.put_slice(b),
        // Infinities are the type's extreme values in PostgreSQL's binary format too.
        Value::Date(d) if !datetime::is_finite_date(*d) => buf.put_i32(*d),
        Value::Date(d) => buf.put_i32((*d as i64 - PG_EPOCH_DAYS) as i32),
        Value::Timestamp(t) | Value::TimestampTz(t) if !datetime::is_finite_timestamp(*t) => buf.put_i64(*t),
        Value::Timestamp(t) | Value::TimestampTz(t) => buf.put_i64(t - PG_EPOCH_MICROS),
        Value::Time(t) => buf.put_i64(*t),
        // The time, then the zone in seconds west (PostgreSQL's sign).
        Value::TimeTz(t) => {
            buf.put_i64(t.micros);
            buf.put_i32(-t.offset);
        }
        Value::Interval(iv) => {
            buf.put_i64(iv.micros);
            buf.put_i32(iv.days);
            buf.put_i32(iv.months);
        }
        Value::Uuid(u) => buf.put_u128(*u),
        Value::Jsonb(_) => {
            buf.put_u8(1);
            buf.put_slice(value.to_string().as_bytes());
        }
        Value::Array(items) => {
            let elem = value.data_type().and_then(|t| match t {
                DataType::Array(e) => Some(*e),
                _ => None,
            });
            let elem_oid = elem.map(|e| e.oid()).unwrap_or(25);
            buf.put_i32(1);
            buf.put_i32(items.iter().any(Value::is_null) as i32);
            buf.put_u32(elem_oid);
            buf.put_i32(items.len() as i32);
            buf.put_i32(1);
            for item in items {
                length_prefixed(item, buf)?;
            }
        }
        // PostgreSQL's record_send: the field count, then each field's type and value.
        Value::Record(fields) => {
            buf.put_i32(fields.len() as i32);
            for field in fields {
                buf.put_u32(field.data_type().map_or(25, |t| t.oid()));
                length_prefixed(field, buf)?;
            }
        }
    }
    Ok(())
}

/// An element of an array or row in binary: its length (-1 for NULL), then its bytes.
fn length_prefixed(value: &Value, buf: &mut BytesMut) -> Result<()> {
    if value.is_null() {
        buf.put_i32(-1);
        return Ok(());
    }
    let mut inner = BytesMut::new();
    binary(value, &mut inner)?;
    buf.put_i32(inner.len() as i32);
    buf.put_slice(&inner);
    Ok(())
}

/// PostgreSQL's binary NUMERIC: base-10000 digits with weight, sign and display scale.
fn numeric_binary(d: &Decimal, buf: &mut BytesMut) {
    let scale = d.scale() as usize;
    let digits = d.mantissa().unsigned_abs().to_string();
    // Split into integer and fraction digit strings.
    let (int_part, frac_part) = if digits.len() > scale {
        (digits[..digits.len() - scale].to_string(), digits[digits.len() - scale..].to_string())
    } else {
        ("0".to_string(), format!("{}{}", "0".repeat(scale - digits.len()), digits))
    };
    let int_part = int_part.trim_start_matches('0');
    let mut groups: Vec<i16> = Vec::new();
    let pad_int = (4 - int_part.len() % 4) % 4;
    let int_padded = format!("{}{}", "0".repeat(pad_int), int_part);
    for chunk in int_padded.as_bytes().chunks(4) {
        groups.push(std::str::from_utf8(chunk).unwrap_or("0").parse().unwrap_or(0));
    }
    let int_groups = groups.len() as i16;
    let pad_frac = (4 - frac_part.len() % 4) % 4;
    let frac_padded = format!("{}{}", frac_part, "0".repeat(pad_frac));
    for chunk in frac_padded.as_bytes().chunks(4) {
        groups.push(std::str::from_utf8(chunk).unwrap_or("0").parse().unwrap_or(0));
    }
    let mut weight = int_groups - 1;
    // Strip leading and trailing zero groups.
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    buf.put_i16(groups.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if d.is_sign_negative() && !d.is_zero() { 0x4000 } else { 0 });
    buf.put_u16(scale as u16);
    for g in groups {
        buf.put_i16(g);
    }
}

fn decode_numeric(bytes: &[u8]) -> Result<Value> {
    let bad = || Error::InvalidText("invalid binary numeric".into());
    if bytes.len() < 8 {
        return Err(bad());
    }
    let ndigits = usize::try_from(i16::from_be_bytes([bytes[0], bytes[1]])).map_err(|_| bad())?;
    let weight = i16::from_be_bytes([bytes[2], bytes[3]]) as i32;
    let sign = u16::from_be_bytes([bytes[4], bytes[5]]);
    let dscale = u16::from_be_bytes([bytes[6], bytes[7]]) as u32;
    match sign {
        0xC000 => return Ok(Value::NumericNaN),
        0xD000 => return Ok(Value::NumericInf { negative: false }),
        0xF000 => return Ok(Value::NumericInf { negative: true }),
        _ => {}
    }
    if bytes.len() != 8 + ndigits * 2 {
        return Err(bad());
    }
    let mut value = Decimal::ZERO;
    for i in 0..ndigits {
        let g = i16::from_be_bytes([bytes[8 + i * 2], bytes[9 + i * 2]]) as i64;
        let exp = weight - i as i32;
        let factor = if exp >= 0 {
            Decimal::from(10_000i64.checked_pow(exp as u32).ok_or_else(bad)?)
        } else {
            Decimal::ONE / Decimal::from(10_000i64.checked_pow((-exp) as u32).ok_or_else(bad)?)
        };
        value = Decimal::from(g).checked_mul(factor).and_then(|t| value.checked_add(t)).ok_or_else(bad)?;
    }
    if sign == 0x4000 {
        value.set_sign_negative(true);
    }
    value.rescale(dscale.min(28));
    Ok(Value::Numeric(value))
}

/// Decodes a parameter from the wire given its type and format. A parameter's type carries
/// no length, precision or scale (as in PostgreSQL): those apply where the value is stored.
pub fn parameter(bytes: Option<&[u8]>, data_type: &DataType, binary_format: bool, zone: &Zone) -> Result<Value> {
    let Some(bytes) = bytes else { return Ok(Value::Null) };
    if !binary_format {
        let text = std::str::from_utf8(bytes).map_err(|_| Error::InvalidText("invalid UTF-8 in parameter".into()))?;
        return cast_in(Value::Text(text.to_string()), data_type, CastKind::Implicit, zone);
    }
    let bad = || Error::InvalidText(format!("invalid binary value for type {data_type}"));
    let fixed = |n: usize| -> Result<&[u8]> {
        if bytes.len() == n {
            Ok(bytes)
        } else {
            Err(bad())
        }
    };
    Ok(match data_type {
        DataType::Bool => Value::Bool(fixed(1)?[0] != 0),
        DataType::Int2 => Value::Int2(i16::from_be_bytes(fixed(2)?.try_into().map_err(|_| bad())?)),
        DataType::Int4 => Value::Int4(i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?)),
        DataType::Int8 => Value::Int8(i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?)),
        DataType::Float4 => Value::Float4(f32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?)),
        DataType::Float8 => Value::Float8(f64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?)),
        DataType::Numeric(_) => decode_numeric(bytes)?,
        DataType::Text | DataType::Varchar(_) | DataType::Unknown => {
            Value::Text(String::from_utf8(bytes.to_vec()).map_err(|_| bad())?)
        }
        // CHAR's values are blank-padded to its length.
        DataType::Char(_) => {
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| bad())?;
            cast(Value::Text(text), data_type, CastKind::Implicit)?
        }
        DataType::Bytea => Value::Bytea(bytes.to_vec()),
        DataType::Date => {
            let raw = i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?);
            let days = if datetime::is_finite_date(raw) { raw as i64 + PG_EPOCH_DAYS } else { raw as i64 };
            Value::Date(datetime::check_date(days)?)
        }
        DataType::Time => {
            let micros = i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?);
            if !(0..=datetime::MICROS_PER_DAY).contains(&micros) {
                return Err(Error::DatetimeOutOfRange("time out of range".into()));
            }
            Value::Time(micros)
        }
        DataType::TimeTz => {
            let b = fixed(12)?;
            let micros = i64::from_be_bytes(b[0..8].try_into().map_err(|_| bad())?);
            let west = i32::from_be_bytes(b[8..12].try_into().map_err(|_| bad())?);
            let value = crate::types::timetz::TimeTz { micros, offset: west.checked_neg().ok_or_else(bad)? };
            // Through the text form, which checks the time and the offset as input does.
            cast(Value::Text(crate::types::timetz::format(&value)), data_type, CastKind::Explicit)?
        }
        DataType::Timestamp | DataType::TimestampTz => {
            let raw = i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?);
            let micros = if datetime::is_finite_timestamp(raw) {
                raw.checked_add(PG_EPOCH_MICROS)
                    .filter(|m| datetime::is_finite_timestamp(*m))
                    .ok_or_else(|| Error::DatetimeOutOfRange("timestamp out of range".into()))?
            } else {
                raw
            };
            let micros = datetime::check_timestamp(micros)?;
            if *data_type == DataType::Timestamp {
                Value::Timestamp(micros)
            } else {
                Value::TimestampTz(micros)
            }
        }
        DataType::Interval => {
            let b = fixed(16)?;
            Value::Interval(Interval {
                micros: i64::from_be_bytes(b[0..8].try_into().map_err(|_| bad())?),
                days: i32::from_be_bytes(b[8..12].try_into().map_err(|_| bad())?),
                months: i32::from_be_bytes(b[12..16].try_into().map_err(|_| bad())?),
            })
        }
        DataType::Uuid => Value::Uuid(u128::from_be_bytes(fixed(16)?.try_into().map_err(|_| bad())?)),
        DataType::Jsonb => {
            let body = if bytes.first() == Some(&1) { &bytes[1..] } else { bytes };
            let text = std::str::from_utf8(body).map_err(|_| bad())?;
            cast(Value::Text(text.to_string()), &DataType::Jsonb, CastKind::Explicit)?
        }
        DataType::Array(_) => return Err(Error::FeatureNotSupported("binary array parameters".into())),
        DataType::Record(..) => return Err(Error::FeatureNotSupported("binary record parameters".into())),
        // An enum's binary form is its label's text.
        DataType::Enum(_) => {
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| bad())?;
            cast(Value::Text(text), data_type, CastKind::Explicit)?
        }
    })
}

/// The data type for a parameter type oid a client declared (Unknown for 0 or unknown oids).
pub fn type_from_oid(oid: u32) -> DataType {
    match oid {
        16 => DataType::Bool,
        21 => DataType::Int2,
        23 => DataType::Int4,
        20 => DataType::Int8,
        700 => DataType::Float4,
        701 => DataType::Float8,
        1700 => DataType::Numeric(None),
        25 | 19 => DataType::Text,
        1043 => DataType::Varchar(None),
        1042 => DataType::Char(1),
        17 => DataType::Bytea,
        1082 => DataType::Date,
        1083 => DataType::Time,
        1266 => DataType::TimeTz,
        1114 => DataType::Timestamp,
        1184 => DataType::TimestampTz,
        1186 => DataType::Interval,
        2950 => DataType::Uuid,
        3802 | 114 => DataType::Jsonb,
        26 => DataType::Int8,
        _ => DataType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parameter keeps its whole value whatever the length, precision or scale of the
    /// column it was inferred from; CHAR's padding is the one thing applied, in both formats.
    #[test]
    fn parameters_are_not_cut_to_their_column_type() {
        let v = DataType::Varchar(Some(3));
        for binary in [false, true] {
            assert_eq!(parameter(Some(b"abcd"), &v, binary, &Zone::UTC).unwrap(), Value::Text("abcd".into()));
            assert_eq!(
                parameter(Some(b"ab"), &DataType::Char(3), binary, &Zone::UTC).unwrap(),
                Value::Text("ab ".into())
            );
        }
        let n = parameter(Some(b"1.234"), &DataType::Numeric(Some((5, 2))), false, &Zone::UTC).unwrap();
        assert_eq!(n.to_string(), "1.234");
    }

    /// Inputs the fuzzer found (fuzz/regressions/binary_params): each is refused with an
    /// error instead of a panic, here or when the value is printed.
    #[test]
    fn out_of_range_binary_parameters_are_errors() {
        // (The very largest values are PostgreSQL's 'infinity': see below.)
        let date_max = [0x7f, 0xff, 0xff, 0xfe];
        assert_eq!(parameter(Some(&date_max), &DataType::Date, true, &Zone::UTC).unwrap_err().sqlstate(), "22008");
        let ts_max = [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe];
        assert_eq!(parameter(Some(&ts_max), &DataType::TimestampTz, true, &Zone::UTC).unwrap_err().sqlstate(), "22008");
        let ts_far = [0x74, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parameter(Some(&ts_far), &DataType::Timestamp, true, &Zone::UTC).unwrap_err().sqlstate(), "22008");
        let negative_digits = [0xff, 0xff, 0, 0, 0, 0, 0, 0];
        assert!(parameter(Some(&negative_digits), &DataType::Numeric(None), true, &Zone::UTC).is_err());
        // The ends of the range are fine.
        let year_2000 = [0, 0, 0, 0];
        assert_eq!(
            text(&parameter(Some(&year_2000), &DataType::Date, true, &Zone::UTC).unwrap(), &Zone::UTC).unwrap(),
            "2000-01-01"
        );
    }

    #[test]
    fn numeric_binary_round_trips() {
        for text in ["0", "1.50", "-12345.6789", "10000", "0.0001", "123456789012.34"] {
            let d: Decimal = text.parse().unwrap();
            let mut buf = BytesMut::new();
            numeric_binary(&d, &mut buf);
            let back = decode_numeric(&buf).unwrap();
            assert_eq!(back.to_string(), d.to_string(), "{text}");
        }
    }

    #[test]
    fn numeric_nan_has_its_own_sign_in_binary() {
        let mut buf = BytesMut::new();
        binary(&Value::NumericNaN, &mut buf).unwrap();
        assert_eq!(&buf[..], &[0, 0, 0, 0, 0xC0, 0, 0, 0]);
        assert_eq!(decode_numeric(&buf).unwrap(), Value::NumericNaN);
    }

    #[test]
    fn numeric_infinities_have_their_own_signs_in_binary() {
        for (negative, sign) in [(false, 0xD0), (true, 0xF0)] {
            let mut buf = BytesMut::new();
            let value = Value::NumericInf { negative };
            binary(&value, &mut buf).unwrap();
            // PostgreSQL 15 sends a display scale of 32 with an infinity.
            assert_eq!(&buf[..], &[0, 0, 0, 0, sign, 0, 0, 32]);
            assert!(matches!(decode_numeric(&buf).unwrap(), Value::NumericInf { negative: n } if n == negative));
        }
    }

    #[test]
    fn an_empty_array_has_no_dimensions_and_the_declared_element_type() {
        let mut buf = BytesMut::new();
        binary_as(&Value::Array(vec![]), DataType::Array(Box::new(DataType::Int4)).oid(), &mut buf).unwrap();
        assert_eq!(&buf[..], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23]);
    }

    #[test]
    fn a_value_of_another_type_is_cast_to_the_declared_one() {
        let declared = as_declared(&Value::Float4(83.0), DataType::Int4.oid(), &Zone::UTC).unwrap();
        assert_eq!(declared.as_ref(), &Value::Int4(83));
        let text = Value::Text("x".into());
        let same = as_declared(&text, DataType::Varchar(None).oid(), &Zone::UTC).unwrap();
        assert!(matches!(same, std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn timestamps_use_the_2000_epoch() {
        let mut buf = BytesMut::new();
        binary(&Value::TimestampTz(PG_EPOCH_MICROS), &mut buf).unwrap();
        assert_eq!(&buf[..], &0i64.to_be_bytes());
        assert_eq!(
            parameter(Some(&0i64.to_be_bytes()), &DataType::TimestampTz, true, &Zone::UTC).unwrap(),
            Value::TimestampTz(PG_EPOCH_MICROS)
        );
    }

    #[test]
    fn infinities_are_the_extreme_values_in_binary() {
        use datetime::{DATE_INFINITY, DATE_NEG_INFINITY, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY};
        let cases = [
            (Value::Timestamp(TIMESTAMP_INFINITY), DataType::Timestamp, i64::MAX.to_be_bytes().to_vec()),
            (Value::TimestampTz(TIMESTAMP_NEG_INFINITY), DataType::TimestampTz, i64::MIN.to_be_bytes().to_vec()),
            (Value::Date(DATE_INFINITY), DataType::Date, i32::MAX.to_be_bytes().to_vec()),
            (Value::Date(DATE_NEG_INFINITY), DataType::Date, i32::MIN.to_be_bytes().to_vec()),
        ];
        for (value, data_type, bytes) in cases {
            let mut buf = BytesMut::new();
            binary(&value, &mut buf).unwrap();
            assert_eq!(&buf[..], &bytes[..], "{value:?}");
            assert_eq!(parameter(Some(&bytes), &data_type, true, &Zone::UTC).unwrap(), value);
            assert!(text(&value, &Zone::UTC).unwrap().ends_with("infinity"));
        }
        // A finite value that would land on the sentinel is out of range, not infinity.
        let next_to_infinity = (i64::MAX - PG_EPOCH_MICROS + 1).to_be_bytes();
        assert!(parameter(Some(&next_to_infinity), &DataType::Timestamp, true, &Zone::UTC).is_err());
    }
}
