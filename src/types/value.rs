//! One SQL datum and its PostgreSQL text output.

use super::datetime;
use super::timetz::{self, TimeTz};
use super::timezone::Zone;
use super::DataType;
use rust_decimal::Decimal;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A SQL value. Each variant is the canonical in-memory form of one family of types; bounded
/// types (VARCHAR(n), NUMERIC(p,s)) share the variant of their family and are checked on cast.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    Numeric(Decimal),
    /// NUMERIC's `NaN`: equal to itself and greater than every number, as in PostgreSQL.
    NumericNaN,
    /// NUMERIC's `Infinity` and `-Infinity`: above (below) every number, `Infinity` below NaN.
    NumericInf {
        negative: bool,
    },
    Text(String),
    Bytea(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight, 0 to 24:00:00 inclusive.
    Time(i64),
    TimeTz(TimeTz),
    /// Microseconds since 1970-01-01 00:00:00, no time zone.
    Timestamp(i64),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    TimestampTz(i64),
    Interval(Interval),
    Uuid(u128),
    Jsonb(serde_json::Value),
    Array(Vec<Value>),
    /// A row value (`ROW(a, b)`): its fields, NULLs included.
    Record(Vec<Value>),
}

/// A PostgreSQL interval: months, days and microseconds are kept apart, as PostgreSQL does,
/// because a month has no fixed number of days and a day (across DST) no fixed length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// The interval as microseconds, with PostgreSQL's 30-day months, for ordering.
    pub fn total_micros(&self) -> i128 {
        (self.months as i128 * 30 + self.days as i128) * datetime::MICROS_PER_DAY as i128 + self.micros as i128
    }
}

impl Value {
    /// A rough size of the value in memory, its heap data included.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                Value::Text(s) => s.len(),
                Value::Bytea(b) => b.len(),
                Value::Jsonb(j) => j.to_string().len() * 2,
                Value::Array(a) | Value::Record(a) => a.iter().map(Value::approx_bytes).sum(),
                _ => 0,
            }
    }
}

impl Value {
    /// The value's natural data type; `None` for NULL.
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => DataType::Bool,
            Value::Int2(_) => DataType::Int2,
            Value::Int4(_) => DataType::Int4,
            Value::Int8(_) => DataType::Int8,
            Value::Float4(_) => DataType::Float4,
            Value::Float8(_) => DataType::Float8,
            Value::Numeric(_) | Value::NumericNaN | Value::NumericInf { .. } => DataType::Numeric(None),
            Value::Text(_) => DataType::Text,
            Value::Bytea(_) => DataType::Bytea,
            Value::Date(_) => DataType::Date,
            Value::Time(_) => DataType::Time,
            Value::TimeTz(_) => DataType::TimeTz,
            Value::Timestamp(_) => DataType::Timestamp,
            Value::TimestampTz(_) => DataType::TimestampTz,
            Value::Interval(_) => DataType::Interval,
            Value::Uuid(_) => DataType::Uuid,
            Value::Jsonb(_) => DataType::Jsonb,
            Value::Array(items) => {
                DataType::Array(Box::new(items.iter().find_map(|v| v.data_type()).unwrap_or(DataType::Text)))
            }
            Value::Record(fields) => DataType::Record(
                fields.iter().map(|v| v.data_type().unwrap_or(DataType::Text)).collect(),
                super::FieldNames::default(),
            ),
        })
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as an i64 if it is an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int2(v) => Some(*v as i64),
            Value::Int4(v) => Some(*v as i64),
            Value::Int8(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as an f64 if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        use rust_decimal::prelude::ToPrimitive;
        match self {
            Value::Int2(v) => Some(*v as f64),
            Value::Int4(v) => Some(*v as f64),
            Value::Int8(v) => Some(*v as f64),
            Value::Float4(v) => Some(*v as f64),
            Value::Float8(v) => Some(*v),
            Value::Numeric(d) => d.to_f64(),
            Value::NumericNaN => Some(f64::NAN),
            Value::NumericInf { negative: false } => Some(f64::INFINITY),
            Value::NumericInf { negative: true } => Some(f64::NEG_INFINITY),
            _ => None,
        }
    }

    /// SQL comparison of two non-NULL values of comparable types. Numeric values of different
    /// types compare by value; `None` means the types are not comparable. NaN sorts above every
    /// other float, as in PostgreSQL.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        Some(match (self, other) {
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int2(_) | Int4(_) | Int8(_), Int2(_) | Int4(_) | Int8(_)) => self.as_i64()?.cmp(&other.as_i64()?),
            (NumericNaN, NumericNaN) => Ordering::Equal,
            (NumericNaN, Int2(_) | Int4(_) | Int8(_) | Numeric(_)) => Ordering::Greater,
            (Int2(_) | Int4(_) | Int8(_) | Numeric(_), NumericNaN) => Ordering::Less,
            (NumericInf { negative: a }, NumericInf { negative: b }) => b.cmp(a),
            (NumericInf { .. }, NumericNaN) => Ordering::Less,
            (NumericNaN, NumericInf { .. }) => Ordering::Greater,
            (NumericInf { negative }, Int2(_) | Int4(_) | Int8(_) | Numeric(_)) => {
                if *negative {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Int2(_) | Int4(_) | Int8(_) | Numeric(_), NumericInf { negative }) => {
                if *negative {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (Numeric(a), Numeric(b)) => a.cmp(b),
            (Numeric(a), Int2(_) | Int4(_) | Int8(_)) => a.cmp(&Decimal::from(other.as_i64()?)),
            (Int2(_) | Int4(_) | Int8(_), Numeric(b)) => Decimal::from(self.as_i64()?).cmp(b),
            (Float4(_) | Float8(_), _) | (_, Float4(_) | Float8(_)) => float_total_cmp(self.as_f64()?, other.as_f64()?),
            (Text(a), Text(b)) => a.cmp(b),
            (Bytea(a), Bytea(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b)) => a.cmp(b),
            (TimeTz(a), TimeTz(b)) => a.cmp_pg(b),
            // A time is read in the session's zone, UTC.
            (Time(a), TimeTz(b)) => timetz::TimeTz { micros: *a, offset: 0 }.cmp_pg(b),
            (TimeTz(a), Time(b)) => a.cmp_pg(&timetz::TimeTz { micros: *b, offset: 0 }),
            (Timestamp(a), Timestamp(b)) | (TimestampTz(a), TimestampTz(b)) => a.cmp(b),
            (Date(d), Timestamp(t)) | (Date(d), TimestampTz(t)) => datetime::date_to_timestamp(*d).cmp(t),
            (Timestamp(t), Date(d)) | (TimestampTz(t), Date(d)) => t.cmp(&datetime::date_to_timestamp(*d)),
            (Timestamp(a), TimestampTz(b)) | (TimestampTz(a), Timestamp(b)) => a.cmp(b),
            (Interval(a), Interval(b)) => a.total_micros().cmp(&b.total_micros()),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (Jsonb(a), Jsonb(b)) => a.to_string().cmp(&b.to_string()),
            // Rows of different lengths order as arrays do, shorter first after equal fields
            // (PostgreSQL refuses to compare them: 42804).
            (Array(a), Array(b)) | (Record(a), Record(b)) => {
                for (x, y) in a.iter().zip(b.iter()) {
                    let ord = match (x.is_null(), y.is_null()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                        _ => x.compare(y)?,
                    };
                    if ord != Ordering::Equal {
                        return Some(ord);
                    }
                }
                a.len().cmp(&b.len())
            }
            _ => return None,
        })
    }

    /// A total order for sorting and grouping: NULL sorts last, incomparable values by type.
    pub fn sort_cmp(&self, other: &Value) -> Ordering {
        match (self.is_null(), other.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => self.compare(other).unwrap_or_else(|| self.type_rank().cmp(&other.type_rank())),
        }
    }

    fn type_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int2(_) | Value::Int4(_) | Value::Int8(_) => 2,
            Value::Float4(_) | Value::Float8(_) | Value::Numeric(_) | Value::NumericNaN | Value::NumericInf { .. } => 2,
            Value::Text(_) => 3,
            Value::Bytea(_) => 4,
            Value::Date(_) | Value::Timestamp(_) | Value::TimestampTz(_) => 5,
            Value::Interval(_) | Value::Time(_) | Value::TimeTz(_) => 6,
            Value::Uuid(_) => 7,
            Value::Jsonb(_) => 8,
            Value::Array(_) => 9,
            Value::Record(_) => 10,
        }
    }
}

/// PostgreSQL's order of floats: NaN equals NaN and sorts above every number.
pub fn float_total_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Equality for grouping, DISTINCT and hash joins: NULL equals NULL here (SQL `=` is the
/// caller's business), and numeric values are equal across types when their values are.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.sort_cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Value) -> Ordering {
        self.sort_cmp(other)
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Bool(b) => b.hash(state),
            // Numbers that compare equal must hash equal, whatever their type.
            Value::Int2(_) | Value::Int4(_) | Value::Int8(_) => {
                Decimal::from(self.as_i64().unwrap_or_default()).normalize().hash(state)
            }
            Value::Numeric(d) => d.normalize().hash(state),
            // Equal to a float NaN, so hashed as one.
            Value::NumericNaN => u64::MAX.hash(state),
            // Equal to a float infinity, so hashed as one.
            Value::NumericInf { .. } => self.as_f64().unwrap_or_default().to_bits().hash(state),
            Value::Float4(_) | Value::Float8(_) => {
                let f = self.as_f64().unwrap_or_default();
                if f.fract() == 0.0 && f.abs() < 1e28 {
                    Decimal::from_f64_retain(f).unwrap_or_default().normalize().hash(state)
                } else if f.is_nan() {
                    u64::MAX.hash(state)
                } else {
                    f.to_bits().hash(state)
                }
            }
            Value::Text(s) => s.hash(state),
            Value::Bytea(b) => b.hash(state),
            Value::Date(d) => datetime::date_to_timestamp(*d).hash(state),
            Value::Timestamp(t) | Value::TimestampTz(t) => t.hash(state),
            Value::Interval(i) => i.total_micros().hash(state),
            Value::Time(t) => t.hash(state),
            // Equal to a time only when its offset is 0, so hashed as that time then.
            Value::TimeTz(t) if t.offset == 0 => t.micros.hash(state),
            Value::TimeTz(t) => t.hash(state),
            Value::Uuid(u) => u.hash(state),
            Value::Jsonb(j) => j.to_string().hash(state),
            Value::Array(items) | Value::Record(items) => items.hash(state),
        }
    }
}

/// PostgreSQL's text output form (what psql shows) with TimeZone UTC and DateStyle ISO; see
/// [`Value::in_zone`] for a session's time zone.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        InZone(self, &Zone::UTC).fmt(f)
    }
}

/// A value's text output form as a session in a time zone sees it: a `timestamptz` (also
/// inside an array or a row) is printed in the zone's local time with its offset.
pub struct InZone<'a>(&'a Value, &'a Zone);

impl Value {
    pub fn in_zone<'a>(&'a self, zone: &'a Zone) -> InZone<'a> {
        InZone(self, zone)
    }
}

impl fmt::Display for InZone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let InZone(value, zone) = *self;
        match value {
            Value::Null => Ok(()),
            Value::Bool(b) => write!(f, "{}", if *b { "t" } else { "f" }),
            Value::Int2(v) => write!(f, "{v}"),
            Value::Int4(v) => write!(f, "{v}"),
            Value::Int8(v) => write!(f, "{v}"),
            Value::Float4(v) => write!(f, "{}", format_float(*v as f64, 6, Some(*v))),
            Value::Float8(v) => write!(f, "{}", format_float(*v, 15, None)),
            Value::Numeric(d) => write!(f, "{d}"),
            Value::NumericNaN => write!(f, "NaN"),
            Value::NumericInf { negative } => write!(f, "{}Infinity", if *negative { "-" } else { "" }),
            Value::Text(s) => write!(f, "{s}"),
            Value::Bytea(b) => {
                write!(f, "\\x")?;
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            Value::Date(d) => write!(f, "{}", datetime::format_date(*d)),
            Value::Timestamp(t) => write!(f, "{}", datetime::format_timestamp(*t)),
            Value::TimestampTz(t) => write!(f, "{}", super::timezone::format_timestamptz(*t, zone)),
            Value::Interval(i) => write!(f, "{}", datetime::format_interval(i)),
            Value::Time(t) => write!(f, "{}", datetime::format_time(*t)),
            Value::TimeTz(t) => write!(f, "{}", timetz::format(t)),
            Value::Uuid(u) => write!(f, "{}", uuid::Uuid::from_u128(*u).hyphenated()),
            Value::Jsonb(j) => write_jsonb(f, j),
            Value::Array(items) => {
                write!(f, "{{")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    match item {
                        Value::Null => write!(f, "NULL")?,
                        Value::Text(s) => write_array_text(f, s)?,
                        other => {
                            let s = other.in_zone(zone).to_string();
                            if s.contains([' ', ',', '"', '{', '}']) {
                                write_array_text(f, &s)?
                            } else {
                                write!(f, "{s}")?
                            }
                        }
                    }
                }
                write!(f, "}}")
            }
            Value::Record(fields) => {
                write!(f, "(")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    if !field.is_null() {
                        write_record_field(f, &field.in_zone(zone).to_string())?;
                    }
                }
                write!(f, ")")
            }
        }
    }
}

/// A field of a row's text form as PostgreSQL's `record_out` writes it: quoted when empty or
/// holding a quote, backslash, parenthesis, comma or white space, with quotes and
/// backslashes doubled inside the quotes.
fn write_record_field(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    let needs_quotes =
        s.is_empty() || s.chars().any(|c| matches!(c, '"' | '\\' | '(' | ')' | ',') || c.is_ascii_whitespace());
    if !needs_quotes {
        return write!(f, "{s}");
    }
    write_quoted(f, s, "")
}

/// `s` in double quotes, each quote and backslash preceded by `escape` (a backslash in
/// arrays) or, with `escape` empty, doubled (rows).
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str, escape: &str) -> fmt::Result {
    write!(f, "\"")?;
    for c in s.chars() {
        if c == '"' || c == '\\' {
            if escape.is_empty() {
                write!(f, "{c}")?;
            } else {
                write!(f, "{escape}")?;
            }
        }
        write!(f, "{c}")?;
    }
    write!(f, "\"")
}

fn write_array_text(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    let needs_quotes = s.is_empty()
        || s.eq_ignore_ascii_case("null")
        || s.chars().any(|c| matches!(c, ' ' | ',' | '"' | '\\' | '{' | '}') || c.is_whitespace());
    if !needs_quotes {
        return write!(f, "{s}");
    }
    write_quoted(f, s, "\\")
}

/// Formats a float the way PostgreSQL 15 does: the shortest text that round-trips, in
/// exponential form when the decimal exponent is below -4 or at least `precision`.
pub fn format_float(v: f64, precision: i32, single: Option<f32>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Shortest round-trip digits and exponent, from Rust's `{:e}`.
    let sci = match single {
        Some(s) => format!("{s:e}"),
        None => format!("{v:e}"),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if negative { "-" } else { "" };
    if exp < -4 || exp >= precision {
        let mut out = String::from(sign);
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!("e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs()));
        out
    } else if exp < 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

/// Writes JSON the way PostgreSQL prints jsonb: `{"a": 1, "b": [1, 2]}`, object keys ordered
/// by length and then bytes.
/// An object's keys in the order PostgreSQL's `jsonb` keeps them: shorter keys first, then
/// bytewise.
pub fn jsonb_key_order(map: &serde_json::Map<String, serde_json::Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
    keys
}

fn write_jsonb(f: &mut fmt::Formatter<'_>, j: &serde_json::Value) -> fmt::Result {
    match j {
        serde_json::Value::Object(map) => {
            let keys = jsonb_key_order(map);
            write!(f, "{{")?;
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{}: ", serde_json::Value::String((*k).clone()))?;
                write_jsonb(f, &map[*k])?;
            }
            write!(f, "}}")
        }
        serde_json::Value::Array(items) => {
            write!(f, "[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write_jsonb(f, item)?;
            }
            write!(f, "]")
        }
        other => write!(f, "{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(format_float(1e15, 15, None), "1e+15");
        assert_eq!(format_float(1e14, 15, None), "100000000000000");
        assert_eq!(format_float(0.1 + 0.2, 15, None), "0.30000000000000004");
        assert_eq!(format_float(0.0001, 15, None), "0.0001");
        assert_eq!(format_float(0.00001, 15, None), "1e-05");
        assert_eq!(format_float(-2.5, 15, None), "-2.5");
        assert_eq!(format_float(123.0, 15, None), "123");
        assert_eq!(format_float(1.5e300, 15, None), "1.5e+300");
        assert_eq!(Value::Float4(0.1).to_string(), "0.1");
        assert_eq!(Value::Float8(f64::NAN).to_string(), "NaN");
    }

    #[test]
    fn numbers_equal_across_types_hash_equal() {
        use std::collections::hash_map::DefaultHasher;
        let h = |v: &Value| {
            let mut s = DefaultHasher::new();
            v.hash(&mut s);
            s.finish()
        };
        assert_eq!(Value::Int4(3), Value::Int8(3));
        assert_eq!(h(&Value::Int4(3)), h(&Value::Int8(3)));
        assert_eq!(h(&Value::Int4(3)), h(&Value::Numeric(Decimal::new(300, 2))));
        assert_eq!(h(&Value::Int4(3)), h(&Value::Float8(3.0)));
        let infinity = Value::NumericInf { negative: false };
        assert_eq!(infinity, Value::Float8(f64::INFINITY));
        assert_eq!(h(&infinity), h(&Value::Float8(f64::INFINITY)));
        assert_ne!(h(&infinity), h(&Value::NumericInf { negative: true }));
    }

    #[test]
    fn numeric_infinities_order_around_numbers_and_below_nan() {
        let mut values = [
            Value::NumericNaN,
            Value::NumericInf { negative: false },
            Value::Numeric(Decimal::new(-5, 0)),
            Value::NumericInf { negative: true },
            Value::Int8(i64::MAX),
        ];
        values.sort();
        let shown: Vec<String> = values.iter().map(Value::to_string).collect();
        assert_eq!(shown, ["-Infinity", "-5", "9223372036854775807", "Infinity", "NaN"]);
    }

    #[test]
    fn jsonb_prints_with_postgres_spacing_and_key_order() {
        let j: serde_json::Value = serde_json::from_str(r#"{"bb":1,"a":[1,"x"],"c":null}"#).unwrap();
        assert_eq!(Value::Jsonb(j).to_string(), r#"{"a": [1, "x"], "c": null, "bb": 1}"#);
    }
}
