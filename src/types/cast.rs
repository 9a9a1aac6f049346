//! Casting between types with PostgreSQL's rules: text input parsing, numeric range checks and
//! rounding, length limits of bounded strings.

use super::datetime;
use super::timetz::{self, TimeTz};
use super::timezone::{self, Zone};
use super::value::Value;
use super::DataType;
use crate::error::{Error, Result};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use std::str::FromStr;

/// How a cast was asked for: an explicit `CAST`/`::` truncates over-long strings for
/// VARCHAR(n), an assignment (INSERT/UPDATE) rejects them, and an implicit one (a literal or
/// parameter taking its type from what it is compared with) applies no length, precision or
/// scale at all, as PostgreSQL resolves such a value to the type without its modifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastKind {
    Explicit,
    Assignment,
    Implicit,
}

/// The wall clock, for the offset a named zone has now.
pub(super) fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

fn out_of_range(type_name: &str) -> Error {
    Error::NumericOutOfRange(format!("{type_name} out of range"))
}

fn invalid(type_name: &str, text: &str) -> Error {
    Error::InvalidText(format!("invalid input syntax for type {type_name}: \"{text}\""))
}

/// Converts `value` to `target` in a session whose time zone is UTC. NULL casts to NULL.
pub fn cast(value: Value, target: &DataType, kind: CastKind) -> Result<Value> {
    cast_in(value, target, kind, &Zone::UTC)
}

/// Converts `value` to `target` in a session in time zone `zone`: a `timestamptz` meets text
/// and the types without a zone on that zone's wall clock. NULL casts to NULL.
pub fn cast_in(value: Value, target: &DataType, kind: CastKind, zone: &Zone) -> Result<Value> {
    use DataType as T;
    if value.is_null() || *target == T::Unknown {
        return Ok(value);
    }
    let cannot = |v: &Value| {
        let message =
            format!("cannot cast type {} to {target}", v.data_type().map(|t| t.to_string()).unwrap_or_default());
        match kind {
            CastKind::Explicit | CastKind::Implicit => Error::CannotCoerce(message),
            CastKind::Assignment => Error::DatatypeMismatch(message),
        }
    };
    Ok(match target {
        T::Bool => match value {
            Value::Bool(b) => Value::Bool(b),
            Value::Int4(i) => Value::Bool(i != 0),
            Value::Text(s) => Value::Bool(parse_bool(&s)?),
            other => return Err(cannot(&other)),
        },
        T::Int2 => Value::Int2(to_int(&value, "smallint")?.try_into().map_err(|_| out_of_range("smallint"))?),
        T::Int4 => Value::Int4(to_int(&value, "integer")?.try_into().map_err(|_| out_of_range("integer"))?),
        T::Int8 => Value::Int8(to_int(&value, "bigint")?),
        T::Float4 => {
            let f = to_float(&value, "real")?;
            let single = f as f32;
            if single.is_infinite() && f.is_finite() {
                return Err(Error::NumericOutOfRange("value out of range: overflow".into()));
            }
            Value::Float4(single)
        }
        T::Float8 => Value::Float8(to_float(&value, "double precision")?),
        T::Numeric(spec) => match numeric_special(&value) {
            Some(Value::NumericInf { .. })
                if let Some((precision, scale)) = spec
                    && kind != CastKind::Implicit =>
            {
                return Err(Error::NumericOutOfRange(format!(
                    "numeric field overflow: A field with precision {precision}, scale {scale} cannot hold an infinite value."
                )));
            }
            Some(special) => special,
            None if kind == CastKind::Implicit => Value::Numeric(to_decimal(&value)?),
            None => Value::Numeric(apply_numeric_spec(to_decimal(&value)?, *spec)?),
        },
        T::Enum(e) => match value {
            Value::Text(label) if e.position(&label).is_some() => Value::Text(label),
            Value::Text(label) => {
                return Err(Error::InvalidText(format!("invalid input value for enum {}: \"{label}\"", e.name)))
            }
            other => return Err(cannot(&other)),
        },
        T::Text | T::Varchar(_) | T::Char(_) => {
            let s = match value {
                Value::Text(s) => s,
                Value::Bool(b) => (if b { "true" } else { "false" }).to_string(),
                other => other.in_zone(zone).to_string(),
            };
            Value::Text(fit_string(s, target, kind)?)
        }
        T::Bytea => match value {
            Value::Bytea(b) => Value::Bytea(b),
            Value::Text(s) => Value::Bytea(parse_bytea(&s)?),
            other => return Err(cannot(&other)),
        },
        T::Date => match value {
            Value::Date(d) => Value::Date(d),
            Value::Timestamp(t) => Value::Date(datetime::timestamp_to_date(t)?),
            Value::TimestampTz(t) => Value::Date(timezone::date_of(t, zone)?),
            Value::Text(s) => Value::Date(datetime::parse_date(&s)?),
            other => return Err(cannot(&other)),
        },
        T::Timestamp => Value::Timestamp(match value {
            Value::Timestamp(t) => t,
            Value::TimestampTz(t) => datetime::check_timestamp(zone.to_local(t)?)?,
            Value::Date(d) => datetime::date_to_timestamp(d),
            Value::Text(s) => datetime::parse_timestamp(&s, false)?,
            other => return Err(cannot(&other)),
        }),
        T::TimestampTz => Value::TimestampTz(match value {
            Value::TimestampTz(t) => t,
            Value::Timestamp(t) => datetime::check_timestamp(zone.to_utc(t)?)?,
            Value::Date(d) => datetime::check_timestamp(zone.to_utc(datetime::date_to_timestamp(d))?)?,
            Value::Text(s) => timezone::parse_timestamptz(&s, zone)?,
            other => return Err(cannot(&other)),
        }),
        T::Time => match value {
            Value::Time(t) => Value::Time(t),
            Value::TimeTz(t) => Value::Time(t.micros),
            // The time of day (of a `timestamptz`, on the session zone's clock).
            Value::Timestamp(t) if datetime::is_finite_timestamp(t) => {
                Value::Time(t.rem_euclid(datetime::MICROS_PER_DAY))
            }
            Value::TimestampTz(t) if datetime::is_finite_timestamp(t) => {
                Value::Time(zone.to_local(t)?.rem_euclid(datetime::MICROS_PER_DAY))
            }
            Value::Interval(i) => Value::Time(i.micros.rem_euclid(datetime::MICROS_PER_DAY)),
            Value::Text(s) => Value::Time(datetime::parse_time(&s)?),
            other => return Err(cannot(&other)),
        },
        // A time or timestamp with time zone is read in the session's time zone; a time takes
        // the offset the zone has now.
        T::TimeTz => match value {
            Value::TimeTz(t) => Value::TimeTz(t),
            Value::Time(micros) => Value::TimeTz(TimeTz { micros, offset: zone.offset_at(now_micros()) as i32 }),
            Value::TimestampTz(t) if datetime::is_finite_timestamp(t) => Value::TimeTz(TimeTz {
                micros: zone.to_local(t)?.rem_euclid(datetime::MICROS_PER_DAY),
                offset: zone.offset_at(t) as i32,
            }),
            Value::Text(s) => Value::TimeTz(timetz::parse_in(&s, zone)?),
            other => return Err(cannot(&other)),
        },
        T::Interval => match value {
            Value::Interval(i) => Value::Interval(i),
            Value::Time(t) => Value::Interval(crate::types::value::Interval { months: 0, days: 0, micros: t }),
            Value::Text(s) => Value::Interval(datetime::parse_interval(&s)?),
            other => return Err(cannot(&other)),
        },
        T::Uuid => match value {
            Value::Uuid(u) => Value::Uuid(u),
            Value::Text(s) => Value::Uuid(uuid::Uuid::parse_str(s.trim()).map_err(|_| invalid("uuid", &s))?.as_u128()),
            other => return Err(cannot(&other)),
        },
        T::Jsonb => match value {
            Value::Jsonb(j) => Value::Jsonb(j),
            Value::Text(s) => Value::Jsonb(numeric_json(serde_json::from_str(&s).map_err(|_| invalid("json", &s))?)),
            other => return Err(cannot(&other)),
        },
        T::Array(elem) => match value {
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| cast_in(v, elem, kind, zone)).collect::<Result<_>>()?)
            }
            Value::Text(s) => Value::Array(
                parse_array_text(&s)?.into_iter().map(|v| cast_in(v, elem, kind, zone)).collect::<Result<_>>()?,
            ),
            other => return Err(cannot(&other)),
        },
        T::Record(fields, _) => match value {
            // `::record`: any row as it is.
            Value::Record(items) if fields.is_empty() => Value::Record(items),
            Value::Record(items) if items.len() == fields.len() => Value::Record(
                items.into_iter().zip(fields).map(|(v, t)| cast_in(v, t, kind, zone)).collect::<Result<_>>()?,
            ),
            Value::Text(_) => {
                return Err(Error::FeatureNotSupported("input of anonymous composite types is not implemented".into()))
            }
            other => return Err(cannot(&other)),
        },
        T::Unknown => value,
    })
}

/// Array text input: `{a,b,"c d",NULL}`, or the space-separated form of int2vector/oidvector.
fn parse_array_text(s: &str) -> Result<Vec<Value>> {
    let t = s.trim();
    let Some(body) = t.strip_prefix('{').and_then(|b| b.strip_suffix('}')) else {
        return Ok(t.split_whitespace().map(|p| Value::Text(p.to_string())).collect());
    };
    if body.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        let mut item = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => item.extend(chars.next()),
                    '"' => break,
                    c => item.push(c),
                }
            }
        }
        let mut more = false;
        for c in chars.by_ref() {
            if c == ',' {
                more = true;
                break;
            }
            item.push(c);
        }
        let trimmed = item.trim();
        items.push(if !quoted && trimmed.eq_ignore_ascii_case("null") {
            Value::Null
        } else {
            Value::Text(if quoted { item } else { trimmed.to_string() })
        });
        if !more {
            return Ok(items);
        }
    }
}

/// PostgreSQL's boolean input: t/true/yes/on/1 and their opposites, any case, any prefix of
/// the words.
pub fn parse_bool(s: &str) -> Result<bool> {
    let t = s.trim().to_ascii_lowercase();
    let matches = |word: &str| !t.is_empty() && word.starts_with(t.as_str());
    if t == "1" || matches("true") || matches("yes") || t == "on" {
        Ok(true)
    } else if t == "0" || matches("false") || matches("no") || t == "off" {
        Ok(false)
    } else {
        Err(invalid("boolean", s))
    }
}

/// The NaN or infinity that NUMERIC keeps of `value`: its own, a float's, or the text
/// `NaN`, `[+-]Infinity` or `[+-]inf` (any case).
fn numeric_special(value: &Value) -> Option<Value> {
    let f = match value {
        Value::NumericNaN | Value::NumericInf { .. } => return Some(value.clone()),
        Value::Float4(_) | Value::Float8(_) => value.as_f64()?,
        Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "nan" => f64::NAN,
            "infinity" | "+infinity" | "inf" | "+inf" => f64::INFINITY,
            "-infinity" | "-inf" => f64::NEG_INFINITY,
            _ => return None,
        },
        _ => return None,
    };
    if f.is_nan() {
        Some(Value::NumericNaN)
    } else if f.is_infinite() {
        Some(Value::NumericInf { negative: f < 0.0 })
    } else {
        None
    }
}

fn to_int(value: &Value, type_name: &str) -> Result<i64> {
    match value {
        Value::NumericNaN => Err(Error::FeatureNotSupported(format!("cannot convert NaN to {type_name}"))),
        Value::NumericInf { .. } => Err(Error::FeatureNotSupported(format!("cannot convert infinity to {type_name}"))),
        Value::Int2(v) => Ok(*v as i64),
        Value::Int4(v) => Ok(*v as i64),
        Value::Int8(v) => Ok(*v),
        Value::Float4(_) | Value::Float8(_) => {
            let f = value.as_f64().unwrap_or(f64::NAN);
            let r = f.round_ties_even();
            if !r.is_finite() || r < i64::MIN as f64 || r >= i64::MAX as f64 {
                return Err(out_of_range(type_name));
            }
            Ok(r as i64)
        }
        Value::Numeric(d) => d
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
            .to_i64()
            .ok_or_else(|| out_of_range(type_name)),
        Value::Bool(b) => Ok(*b as i64),
        Value::Text(s) => {
            let t = s.trim();
            match t.parse::<i64>() {
                Ok(v) => Ok(v),
                Err(e) => match e.kind() {
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                        Err(Error::NumericOutOfRange(format!("value \"{s}\" is out of range for type {type_name}")))
                    }
                    _ => Err(invalid(type_name, s)),
                },
            }
            .and_then(|v| {
                let fits = match type_name {
                    "smallint" => i16::try_from(v).is_ok(),
                    "integer" => i32::try_from(v).is_ok(),
                    _ => true,
                };
                if fits {
                    Ok(v)
                } else {
                    Err(Error::NumericOutOfRange(format!("value \"{s}\" is out of range for type {type_name}")))
                }
            })
        }
        other => Err(Error::CannotCoerce(format!(
            "cannot cast type {} to {type_name}",
            other.data_type().map(|t| t.to_string()).unwrap_or_default()
        ))),
    }
}

fn to_float(value: &Value, type_name: &str) -> Result<f64> {
    match value {
        Value::Text(s) => {
            let t = s.trim().to_ascii_lowercase();
            match t.as_str() {
                "nan" => Ok(f64::NAN),
                "infinity" | "inf" | "+infinity" => Ok(f64::INFINITY),
                "-infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                _ => {
                    let f: f64 = t.parse().map_err(|_| invalid(type_name, s))?;
                    if f.is_infinite() {
                        return Err(Error::NumericOutOfRange(format!("\"{s}\" is out of range for type {type_name}")));
                    }
                    Ok(f)
                }
            }
        }
        Value::Bool(_) => Err(Error::CannotCoerce(format!("cannot cast type boolean to {type_name}"))),
        other => other.as_f64().ok_or_else(|| {
            Error::CannotCoerce(format!(
                "cannot cast type {} to {type_name}",
                other.data_type().map(|t| t.to_string()).unwrap_or_default()
            ))
        }),
    }
}

/// Converts a numeric value to a decimal.
pub fn to_decimal(value: &Value) -> Result<Decimal> {
    match value {
        Value::Numeric(d) => Ok(*d),
        Value::Int2(_) | Value::Int4(_) | Value::Int8(_) => Ok(Decimal::from(value.as_i64().unwrap_or(0))),
        Value::Float4(_) | Value::Float8(_) => {
            let f = value.as_f64().unwrap_or(f64::NAN);
            if !f.is_finite() {
                return Err(Error::FeatureNotSupported("NaN and infinite numeric values are not supported".into()));
            }
            let digits = if matches!(value, Value::Float4(_)) { 6 } else { 15 };
            // Round to the float's significant digits, as PostgreSQL's float-to-numeric does.
            let d = Decimal::from_f64(f).ok_or_else(|| out_of_range("numeric"))?;
            let magnitude = if f == 0.0 { 0 } else { f.abs().log10().floor() as i32 + 1 };
            let scale = (digits - magnitude).clamp(0, 28) as u32;
            Ok(d.round_dp(scale).normalize())
        }
        Value::Text(s) => {
            let t = s.trim();
            Decimal::from_str(t).or_else(|_| Decimal::from_scientific(t)).map_err(|_| invalid("numeric", s))
        }
        other => Err(Error::CannotCoerce(format!(
            "cannot cast type {} to numeric",
            other.data_type().map(|t| t.to_string()).unwrap_or_default()
        ))),
    }
}

/// Rounds to NUMERIC(p,s) and checks the precision.
pub fn apply_numeric_spec(d: Decimal, spec: Option<(u32, u32)>) -> Result<Decimal> {
    let Some((precision, scale)) = spec else { return Ok(d) };
    let mut rounded = d.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(scale);
    let int_digits = rounded.trunc().abs().to_string().trim_start_matches('0').len() as u32;
    if int_digits + scale > precision {
        return Err(Error::NumericOutOfRange(format!(
            "numeric field overflow: A field with precision {precision}, scale {scale} must round to an absolute value less than 10^{}",
            precision - scale
        )));
    }
    Ok(rounded)
}

fn fit_string(s: String, target: &DataType, kind: CastKind) -> Result<String> {
    match target {
        DataType::Varchar(Some(n)) | DataType::Char(n) => {
            let n = *n as usize;
            let len = s.chars().count();
            let mut s = if len > n {
                let trimmed_tail = s.chars().skip(n).all(|c| c == ' ');
                let blank_padded = matches!(target, DataType::Char(_));
                if kind == CastKind::Implicit && !(blank_padded && trimmed_tail) {
                    // Compared, not stored: a longer value stays whole and so equals none of
                    // the type's values (trailing blanks do not count in CHAR's comparisons).
                    s
                } else if kind == CastKind::Explicit || trimmed_tail {
                    s.chars().take(n).collect()
                } else {
                    return Err(Error::StringTooLong(format!(
                        "value too long for type {}",
                        match target {
                            DataType::Char(_) => format!("character({n})"),
                            _ => format!("character varying({n})"),
                        }
                    )));
                }
            } else {
                s
            };
            if let DataType::Char(_) = target {
                let len = s.chars().count();
                s.extend(std::iter::repeat_n(' ', n.saturating_sub(len)));
            }
            Ok(s)
        }
        _ => Ok(s),
    }
}

fn parse_bytea(s: &str) -> Result<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x") {
        let hex: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
        if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
            return Err(invalid("bytea", s));
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| invalid("bytea", s)))
            .collect()
    } else {
        bytea_from_escape(s)
    }
}

/// Bytes from bytea's escape format: backslash sequences `\\` and `\ooo`, other bytes as they are.
pub fn bytea_from_escape(s: &str) -> Result<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
            } else if i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
                let oct = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("0");
                out.push(u8::from_str_radix(oct, 8).map_err(|_| invalid("bytea", s))?);
                i += 4;
            } else {
                return Err(invalid("bytea", s));
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// JSON numbers as `jsonb` keeps them, as numeric values: written without an exponent
/// (`1e2` is `100`, `1.5e-3` is `0.0015`) and without a negative zero; other numbers keep
/// their digits (`1.50` stays `1.50`).
fn numeric_json(j: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match j {
        J::Number(n) => {
            let text = n.to_string();
            let exponent = text.contains(['e', 'E']);
            if !exponent && !text.starts_with("-0") {
                return J::Number(n);
            }
            let parsed = if exponent { Decimal::from_scientific(&text) } else { text.parse::<Decimal>() };
            match parsed {
                Ok(mut d) => {
                    if d.is_zero() {
                        d.set_sign_positive(true);
                    }
                    serde_json::from_str(&d.to_string()).map(J::Number).unwrap_or(J::Number(n))
                }
                // Beyond NUMERIC's 28 digits here: kept as written.
                Err(_) => J::Number(n),
            }
        }
        J::Array(items) => J::Array(items.into_iter().map(numeric_json).collect()),
        J::Object(map) => J::Object(map.into_iter().map(|(k, v)| (k, numeric_json(v))).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs the fuzzer found (fuzz/regressions/casts).
    #[test]
    fn malformed_text_is_an_error_not_a_panic() {
        let bytea = cast(Value::Text("\\x0\u{792}0".into()), &DataType::Bytea, CastKind::Explicit);
        assert_eq!(bytea.unwrap_err().sqlstate(), "22P02");
        for text in ["9999999999999:00", "2147483647 d 1 d", "-2147483648 mons ago", "99999999999999999 hours"] {
            let r = cast(Value::Text(text.into()), &DataType::Interval, CastKind::Explicit);
            assert_eq!(r.unwrap_err().sqlstate(), "22015", "{text}");
        }
    }

    #[test]
    fn integer_text_input_checks_syntax_and_range() {
        assert_eq!(cast(Value::Text(" 42 ".into()), &DataType::Int4, CastKind::Explicit).unwrap(), Value::Int4(42));
        assert_eq!(
            cast(Value::Text("abc".into()), &DataType::Int4, CastKind::Explicit).unwrap_err().sqlstate(),
            "22P02"
        );
        assert_eq!(
            cast(Value::Text("3000000000".into()), &DataType::Int4, CastKind::Explicit).unwrap_err().sqlstate(),
            "22003"
        );
        assert_eq!(cast(Value::Float8(2.5), &DataType::Int4, CastKind::Explicit).unwrap(), Value::Int4(2));
        assert_eq!(cast(Value::Float8(3.5), &DataType::Int4, CastKind::Explicit).unwrap(), Value::Int4(4));
        assert_eq!(
            cast(Value::Numeric(Decimal::new(25, 1)), &DataType::Int4, CastKind::Explicit).unwrap(),
            Value::Int4(3)
        );
    }

    #[test]
    fn numeric_spec_rounds_and_overflows() {
        let v = cast(Value::Text("3.14159".into()), &DataType::Numeric(Some((5, 2))), CastKind::Explicit).unwrap();
        assert_eq!(v.to_string(), "3.14");
        let v = cast(Value::Int4(7), &DataType::Numeric(Some((5, 2))), CastKind::Explicit).unwrap();
        assert_eq!(v.to_string(), "7.00");
        let e = cast(Value::Int4(12345), &DataType::Numeric(Some((5, 2))), CastKind::Explicit).unwrap_err();
        assert_eq!(e.sqlstate(), "22003");
    }

    #[test]
    fn varchar_length_depends_on_cast_kind() {
        let t = DataType::Varchar(Some(3));
        assert_eq!(cast(Value::Text("abcd".into()), &t, CastKind::Explicit).unwrap(), Value::Text("abc".into()));
        assert_eq!(cast(Value::Text("abcd".into()), &t, CastKind::Assignment).unwrap_err().sqlstate(), "22001");
        assert_eq!(
            cast(Value::Text("ab".into()), &DataType::Char(4), CastKind::Assignment).unwrap(),
            Value::Text("ab  ".into())
        );
        // Compared with a bounded column, a longer value stays whole (and matches nothing);
        // CHAR still pads, and trailing blanks past the length still go.
        assert_eq!(cast(Value::Text("abcd".into()), &t, CastKind::Implicit).unwrap(), Value::Text("abcd".into()));
        let c = DataType::Char(3);
        assert_eq!(cast(Value::Text("ab".into()), &c, CastKind::Implicit).unwrap(), Value::Text("ab ".into()));
        assert_eq!(cast(Value::Text("abcd".into()), &c, CastKind::Implicit).unwrap(), Value::Text("abcd".into()));
        assert_eq!(cast(Value::Text("abc  ".into()), &c, CastKind::Implicit).unwrap(), Value::Text("abc".into()));
        assert_eq!(cast(Value::Text("abc  ".into()), &t, CastKind::Implicit).unwrap(), Value::Text("abc  ".into()));
        let n = DataType::Numeric(Some((5, 2)));
        assert_eq!(cast(Value::Text("1.234".into()), &n, CastKind::Implicit).unwrap().to_string(), "1.234");
        assert_eq!(cast(Value::Text("1.234".into()), &n, CastKind::Assignment).unwrap().to_string(), "1.23");
    }

    #[test]
    fn bool_and_bytea_inputs() {
        assert!(parse_bool("yes").unwrap());
        assert!(!parse_bool("F").unwrap());
        assert!(parse_bool("maybe").is_err());
        assert_eq!(parse_bytea("\\x0aff").unwrap(), vec![10, 255]);
        assert_eq!(parse_bytea("a\\\\b").unwrap(), b"a\\b".to_vec());
    }
}
