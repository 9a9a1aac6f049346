//! Scalar functions: name resolution and typing (for the planner) and evaluation (for the
//! executor), kept together so each function is defined in one place.

pub mod encoding;
mod formatting;
mod interval;
mod interval_format;
pub mod json;
mod numeric;
pub mod text;

use crate::error::{Error, Result};

use crate::types::datetime::{self, MICROS_PER_DAY, MICROS_PER_SECOND};
use crate::types::timetz::TimeTz;
use crate::types::timezone;

use crate::types::{DataType, Value};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

/// The largest text, bytea or string aggregate a statement builds, in bytes: PostgreSQL's limit
/// on one field (1 GB less a byte). A builder that would pass it fails the statement with
/// 54000 before allocating, instead of taking the process down with a failed allocation.
pub const MAX_VALUE_BYTES: usize = (1 << 30) - 1;

/// Checks the size of a value about to be built.
pub fn check_value_size(bytes: usize) -> Result<()> {
    if bytes > MAX_VALUE_BYTES {
        return Err(Error::ProgramLimitExceeded(format!(
            "requested length too large: {bytes} bytes, the limit is {MAX_VALUE_BYTES}"
        )));
    }
    Ok(())
}

/// A resolved function: its canonical name, the types its arguments are cast to, its result.
pub struct Signature {
    pub name: &'static str,
    pub arg_types: Vec<DataType>,
    pub return_type: DataType,
}

fn undefined(name: &str, args: &[DataType]) -> Error {
    let list: Vec<String> = args.iter().map(|t| t.to_string()).collect();
    Error::UndefinedFunction(format!("function {name}({}) does not exist", list.join(", ")))
}

/// The type a numeric argument is evaluated in for math functions that keep their input type.
fn numeric_family(t: &DataType) -> Option<DataType> {
    Some(match t {
        DataType::Int2 | DataType::Int4 | DataType::Int8 => t.clone(),
        DataType::Float4 | DataType::Float8 => DataType::Float8,
        DataType::Numeric(_) | DataType::Unknown => DataType::Numeric(None),
        _ => return None,
    })
}

/// Resolves a call of `name` with arguments of `args` types.
pub fn resolve(name: &str, args: &[DataType]) -> Result<Signature> {
    use DataType as T;
    let n = args.len();
    let text = T::Text;
    let sig = |name: &'static str, arg_types: Vec<DataType>, return_type: DataType| {
        Ok(Signature { name, arg_types, return_type })
    };
    let first_text_or = |t: &DataType| if t.is_string() || *t == T::Unknown { Some(T::Text) } else { None };
    match (name, n) {
        ("length" | "char_length" | "character_length", 1) if first_text_or(&args[0]).is_some() => {
            sig("length", vec![text], T::Int4)
        }
        ("length", 1) if args[0] == T::Bytea => sig("length", vec![T::Bytea], T::Int4),
        ("octet_length", 1) => sig("octet_length", vec![text], T::Int4),
        ("lower", 1) => sig("lower", vec![text], T::Text),
        ("upper", 1) => sig("upper", vec![text], T::Text),
        ("initcap", 1) => sig("initcap", vec![text], T::Text),
        ("reverse", 1) => sig("reverse", vec![text], T::Text),
        ("substr" | "substring", 2) => sig("substr", vec![text, T::Int4], T::Text),
        ("substr" | "substring", 3) => sig("substr", vec![text, T::Int4, T::Int4], T::Text),
        ("btrim" | "trim", 1) => sig("btrim", vec![text], T::Text),
        ("btrim" | "trim", 2) => sig("btrim", vec![text.clone(), text], T::Text),
        ("ltrim", 1) => sig("ltrim", vec![text], T::Text),
        ("ltrim", 2) => sig("ltrim", vec![text.clone(), text], T::Text),
        ("rtrim", 1) => sig("rtrim", vec![text], T::Text),
        ("rtrim", 2) => sig("rtrim", vec![text.clone(), text], T::Text),
        ("replace", 3) => sig("replace", vec![text.clone(), text.clone(), text], T::Text),
        ("strpos" | "position", 2) => sig("strpos", vec![text.clone(), text], T::Int4),
        ("left", 2) => sig("left", vec![text, T::Int4], T::Text),
        ("right", 2) => sig("right", vec![text, T::Int4], T::Text),
        ("lpad", 2) => sig("lpad", vec![text, T::Int4], T::Text),
        ("lpad", 3) => sig("lpad", vec![text.clone(), T::Int4, text], T::Text),
        ("rpad", 2) => sig("rpad", vec![text, T::Int4], T::Text),
        ("rpad", 3) => sig("rpad", vec![text.clone(), T::Int4, text], T::Text),
        ("repeat", 2) => sig("repeat", vec![text, T::Int4], T::Text),
        ("split_part", 3) => sig("split_part", vec![text.clone(), text, T::Int4], T::Text),
        ("starts_with", 2) => sig("starts_with", vec![text.clone(), text], T::Bool),
        ("concat", _) => sig("concat", vec![T::Unknown; n], T::Text),
        ("concat_ws", _) if n >= 1 => {
            let mut types = vec![T::Text];
            types.extend(std::iter::repeat_n(T::Unknown, n - 1));
            sig("concat_ws", types, T::Text)
        }
        ("abs", 1) => {
            let t = numeric_family(&args[0]).ok_or_else(|| undefined(name, args))?;
            let t = if args[0] == T::Float4 { T::Float4 } else { t };
            sig("abs", vec![t.clone()], t)
        }
        ("sign", 1) => {
            let t = match numeric_family(&args[0]) {
                Some(T::Numeric(_)) => T::Numeric(None),
                Some(_) => T::Float8,
                None => return Err(undefined(name, args)),
            };
            sig("sign", vec![t.clone()], t)
        }
        ("round", 1) | ("trunc", 1) | ("ceil" | "ceiling", 1) | ("floor", 1) => {
            let canonical: &'static str = match name {
                "round" => "round",
                "trunc" => "trunc",
                "floor" => "floor",
                _ => "ceil",
            };
            let t = match &args[0] {
                T::Float4 | T::Float8 => T::Float8,
                T::Int2 | T::Int4 | T::Int8 if canonical != "round" && canonical != "trunc" => T::Float8,
                _ => T::Numeric(None),
            };
            sig(canonical, vec![t.clone()], t)
        }
        ("round", 2) => sig("round", vec![T::Numeric(None), T::Int4], T::Numeric(None)),
        ("trunc", 2) => sig("trunc", vec![T::Numeric(None), T::Int4], T::Numeric(None)),
        ("sqrt", 1)
        | ("cbrt", 1)
        | ("exp", 1)
        | ("ln", 1)
        | ("log10", 1)
        | ("log", 1)
        | ("sin", 1)
        | ("cos", 1)
        | ("tan", 1)
        | ("degrees", 1)
        | ("radians", 1) => {
            let canonical: &'static str = match name {
                "sqrt" => "sqrt",
                "cbrt" => "cbrt",
                "exp" => "exp",
                "ln" => "ln",
                "sin" => "sin",
                "cos" => "cos",
                "tan" => "tan",
                "degrees" => "degrees",
                "radians" => "radians",
                _ => "log10",
            };
            let t = if matches!(args[0], T::Numeric(_))
                && canonical != "cbrt"
                && !["sin", "cos", "tan", "degrees", "radians"].contains(&canonical)
            {
                T::Numeric(None)
            } else {
                T::Float8
            };
            sig(canonical, vec![t.clone()], t)
        }
        ("log", 2) => sig("log", vec![T::Numeric(None), T::Numeric(None)], T::Numeric(None)),
        ("power" | "pow", 2) => {
            let t = if args.iter().any(|a| matches!(a, T::Numeric(_))) { T::Numeric(None) } else { T::Float8 };
            sig("power", vec![t.clone(), t.clone()], t)
        }
        ("mod", 2) => {
            // No `mod` for floating point, as in PostgreSQL.
            let t = DataType::common(&args[0], &args[1])
                .and_then(|t| numeric_family(&t))
                .filter(|t| *t != T::Float8)
                .ok_or_else(|| undefined(name, args))?;
            sig("mod", vec![t.clone(), t.clone()], t)
        }
        ("pi", 0) => sig("pi", vec![], T::Float8),
        // PostgreSQL's result is `void`, whose text is empty.
        ("pg_sleep", 1) => sig("pg_sleep", vec![T::Float8], T::Text),
        // Evaluated with the session's settings (execution::eval).
        ("set_config", 3) => sig("set_config", vec![T::Text, T::Text, T::Bool], T::Text),
        ("current_setting", 1) => sig("current_setting", vec![T::Text], T::Text),
        ("current_setting", 2) => sig("current_setting", vec![T::Text, T::Bool], T::Text),
        ("random", 0) => sig("random", vec![], T::Float8),
        ("gen_random_uuid", 0) => sig("gen_random_uuid", vec![], T::Uuid),
        ("now" | "current_timestamp" | "transaction_timestamp" | "statement_timestamp", 0) => {
            sig("now", vec![], T::TimestampTz)
        }
        ("clock_timestamp", 0) => sig("clock_timestamp", vec![], T::TimestampTz),
        ("current_date", 0) => sig("current_date", vec![], T::Date),
        ("localtimestamp", 0) => sig("localtimestamp", vec![], T::Timestamp),
        ("current_time", 0) => sig("current_time", vec![], T::TimeTz),
        ("localtime", 0) => sig("localtime", vec![], T::Time),
        ("current_time", 1) => sig("current_time", vec![T::Int4], T::TimeTz),
        ("localtime", 1) => sig("localtime", vec![T::Int4], T::Time),
        ("date_trunc", 2) => {
            let t = match &args[1] {
                T::Timestamp => T::Timestamp,
                T::Interval => T::Interval,
                _ => T::TimestampTz,
            };
            sig("date_trunc", vec![text, t.clone()], t)
        }
        ("date_part", 2) => {
            let t = date_arg(&args[1]);
            sig("date_part", vec![text, t], T::Float8)
        }
        ("extract", 2) => {
            // A date stays a date: extract() refuses the time fields it has not.
            let t = if args[1] == T::Date { T::Date } else { date_arg(&args[1]) };
            sig("extract", vec![text, t], T::Numeric(None))
        }
        ("to_timestamp", 1) => sig("to_timestamp", vec![T::Float8], T::TimestampTz),
        // Evaluated with the statement's context (execution::sequences).
        ("nextval", 1) => sig("nextval", vec![T::Text], T::Int8),
        ("currval", 1) => sig("currval", vec![T::Text], T::Int8),
        ("lastval", 0) => sig("lastval", vec![], T::Int8),
        ("setval", 2) => sig("setval", vec![T::Text, T::Int8], T::Int8),
        ("setval", 3) => sig("setval", vec![T::Text, T::Int8, T::Bool], T::Int8),
        ("pg_get_serial_sequence", 2) => sig("pg_get_serial_sequence", vec![T::Text, T::Text], T::Text),
        ("timezone", 2) => {
            let zone = if args[0] == T::Interval { T::Interval } else { T::Text };
            match args[1] {
                T::Timestamp => sig("timezone", vec![zone, T::Timestamp], T::TimestampTz),
                T::Time | T::TimeTz => sig("timezone", vec![zone, T::TimeTz], T::TimeTz),
                _ => sig("timezone", vec![zone, T::TimestampTz], T::Timestamp),
            }
        }
        ("date_trunc", 3) => sig("date_trunc", vec![text.clone(), T::TimestampTz, text], T::TimestampTz),
        ("overlaps", 4) => {
            let t = args
                .iter()
                .try_fold(T::Unknown, |t, a| DataType::common(&t, a))
                .ok_or_else(|| undefined(name, args))?;
            let t = match t {
                T::Time | T::TimeTz | T::Timestamp | T::TimestampTz => t,
                T::Date => T::Timestamp,
                _ => T::TimestampTz,
            };
            sig("overlaps", vec![t; 4], T::Bool)
        }
        ("isfinite", 1) if matches!(args[0], T::Date) => sig("isfinite", vec![T::Date], T::Bool),
        ("isfinite", 1) if matches!(args[0], T::Interval) => sig("isfinite", vec![T::Interval], T::Bool),
        ("isfinite", 1) if !matches!(args[0], T::Time | T::TimeTz) => {
            sig("isfinite", vec![date_arg(&args[0])], T::Bool)
        }
        ("age", 1) => sig("age", vec![T::TimestampTz], T::Interval),
        ("age", 2) => {
            let t = if args.iter().all(|a| *a == T::Timestamp) { T::Timestamp } else { T::TimestampTz };
            sig("age", vec![t.clone(), t], T::Interval)
        }
        ("time_bucket", 2 | 3) => time_bucket_signature("time_bucket", args),
        ("time_bucket_gapfill", 2 | 4) => time_bucket_signature("time_bucket_gapfill", args),
        ("date_bin", 2) => {
            let t = if args[1] == T::Timestamp { T::Timestamp } else { T::TimestampTz };
            sig("time_bucket", vec![T::Interval, t.clone()], t)
        }
        ("date_bin", 3) => {
            let t = if args[1] == T::Timestamp { T::Timestamp } else { T::TimestampTz };
            sig("date_bin", vec![T::Interval, t.clone(), t.clone()], t)
        }
        ("make_interval", 7) => sig("make_interval", [vec![T::Int4; 6], vec![T::Float8]].concat(), T::Interval),
        ("make_date", 3) => sig("make_date", vec![T::Int4; 3], T::Date),
        ("make_timestamp", 6) => sig("make_timestamp", [vec![T::Int4; 5], vec![T::Float8]].concat(), T::Timestamp),
        ("make_timestamptz", 6) => {
            sig("make_timestamptz", [vec![T::Int4; 5], vec![T::Float8]].concat(), T::TimestampTz)
        }
        ("jsonb_typeof" | "json_typeof", 1) => sig("jsonb_typeof", vec![T::Jsonb], T::Text),
        ("to_jsonb", 1) => sig("to_jsonb", vec![T::Unknown], T::Jsonb),
        ("array_length", 2) => sig("array_length", vec![args[0].clone(), T::Int4], T::Int4),
        ("array_upper", 2) => sig("array_upper", vec![args[0].clone(), T::Int4], T::Int4),
        ("array_lower", 2) => sig("array_lower", vec![args[0].clone(), T::Int4], T::Int4),
        ("array_subscript", 2) => {
            let elem = match &args[0] {
                T::Array(e) => (**e).clone(),
                // Catalog columns that PostgreSQL types as arrays are text here: the element
                // takes its type from the context.
                _ => T::Unknown,
            };
            sig("array_subscript", vec![args[0].clone(), T::Int4], elem)
        }
        ("cardinality", 1) => sig("cardinality", vec![args[0].clone()], T::Int4),
        ("array_contains" | "array_contained", 2) if matches!(args[0], T::Array(_)) => {
            let t = if matches!(args[1], T::Array(_)) { args[1].clone() } else { args[0].clone() };
            let canonical = if name == "array_contains" { "array_contains" } else { "array_contained" };
            sig(canonical, vec![args[0].clone(), t], T::Bool)
        }
        _ => json::resolve(name, args)
            .or_else(|| numeric::resolve(name, args))
            .or_else(|| interval::resolve(name, args))
            .or_else(|| encoding::resolve(name, args))
            .or_else(|| text::resolve(name, args))
            .or_else(|| formatting::resolve(name, args))
            .ok_or_else(|| undefined(name, args)),
    }
}

fn date_arg(t: &DataType) -> DataType {
    match t {
        DataType::Interval => DataType::Interval,
        DataType::Time => DataType::Time,
        DataType::TimeTz => DataType::TimeTz,
        DataType::Timestamp => DataType::Timestamp,
        DataType::Date => DataType::Timestamp,
        _ => DataType::TimestampTz,
    }
}

/// `(s1, e1) OVERLAPS (s2, e2)` as PostgreSQL's `overlaps_timestamp` decides it: each period
/// runs from its earlier end; with NULL ends the answer is NULL unless the known ends decide.
fn overlaps(args: &[Value]) -> Value {
    use std::cmp::Ordering::{Greater, Less};
    let period = |start: &Value, end: &Value| -> Option<(Value, Option<Value>)> {
        match (start.is_null(), end.is_null()) {
            (true, true) => None,
            (true, false) => Some((end.clone(), None)),
            (false, true) => Some((start.clone(), None)),
            (false, false) if start.compare(end) == Some(Greater) => Some((end.clone(), Some(start.clone()))),
            (false, false) => Some((start.clone(), Some(end.clone()))),
        }
    };
    let (Some((s1, e1)), Some((s2, e2))) = (period(&args[0], &args[1]), period(&args[2], &args[3])) else {
        return Value::Null;
    };
    let lt = |a: &Value, b: &Value| a.compare(b) == Some(Less);
    // The later start must come before the other period's end.
    let (later_start, earlier_end, later_end) = match s1.compare(&s2) {
        Some(Greater) => (&s1, &e2, &e1),
        Some(Less) => (&s2, &e1, &e2),
        _ => {
            return match (&e1, &e2) {
                (Some(_), Some(_)) => Value::Bool(true),
                _ => Value::Null,
            }
        }
    };
    match (earlier_end, later_end) {
        (None, _) => Value::Null,
        (Some(end), _) if lt(later_start, end) => Value::Bool(true),
        (Some(_), None) => Value::Null,
        (Some(_), Some(_)) => Value::Bool(false),
    }
}

/// NUMERIC math on NaN or an infinity, as PostgreSQL 15 defines it; None for a function
/// these rules do not cover. NaN gives NaN; an infinity is its own absolute value, rounding
/// and square root, logarithm and exponential (`exp(-Infinity)` is 0), with the errors of a
/// negative argument; `log(base, x)` is 0 for an infinite base and an infinity for an
/// infinite `x`. Power and modulo are operators (`arith::numeric_special_op`).
fn numeric_special_math(name: &str, args: &[Value]) -> Option<Result<Value>> {
    let special = args.iter().find(|a| matches!(a, Value::NumericNaN | Value::NumericInf { .. }))?;
    let negative = match special {
        Value::NumericNaN => {
            let covered = matches!(
                name,
                "abs" | "round" | "trunc" | "ceil" | "floor" | "sign" | "sqrt" | "exp" | "ln" | "log" | "log10"
            );
            return covered.then_some(Ok(Value::NumericNaN));
        }
        Value::NumericInf { negative } => *negative,
        _ => return None,
    };
    let infinity = |negative| Ok(Value::NumericInf { negative });
    let log_error = |message: &str| Err(Error::DataException("2201E", message.into()));
    Some(match name {
        "log" => {
            let (base, x) = (args[0].as_f64().unwrap_or(0.0), args[1].as_f64().unwrap_or(0.0));
            if base < 0.0 || x < 0.0 {
                log_error("cannot take logarithm of a negative number")
            } else if base == 0.0 || x == 0.0 {
                log_error("cannot take logarithm of zero")
            } else if base.is_infinite() && x.is_infinite() {
                Ok(Value::NumericNaN)
            } else if base.is_infinite() {
                Ok(Value::Numeric(Decimal::ZERO))
            } else {
                infinity(false)
            }
        }
        "abs" => infinity(false),
        "round" | "trunc" | "ceil" | "floor" => Ok(special.clone()),
        "sign" => Ok(Value::Numeric(if negative { Decimal::NEGATIVE_ONE } else { Decimal::ONE })),
        "sqrt" if negative => Err(Error::DataException("2201F", "cannot take square root of a negative number".into())),
        "ln" | "log10" if negative => log_error("cannot take logarithm of a negative number"),
        "sqrt" | "ln" | "log10" => infinity(false),
        "exp" if negative => Ok(Value::Numeric(Decimal::ZERO)),
        "exp" => infinity(false),
        _ => return None,
    })
}

/// Functions that are not NULL-in-NULL-out.
pub fn is_strict(name: &str) -> bool {
    !matches!(name, "concat" | "concat_ws" | "time_bucket_gapfill" | "overlaps")
        && json::is_strict(name)
        && text::is_strict(name)
}

/// Evaluates a resolved function. `now` is the statement's timestamp, `zone` the session's
/// time zone.
pub fn call(
    name: &str,
    args: Vec<Value>,
    now: i64,
    zone: &timezone::Zone,
    interrupt: crate::sql::execution::Interrupt,
) -> Result<Value> {
    if is_strict(name) && args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    if let Some(result) = numeric_special_math(name, &args) {
        return result;
    }
    let text = |i: usize| -> &str {
        match &args[i] {
            Value::Text(s) => s.as_str(),
            _ => "",
        }
    };
    let int = |i: usize| -> i64 { args[i].as_i64().unwrap_or(0) };
    let float = |i: usize| -> f64 { args[i].as_f64().unwrap_or(0.0) };
    Ok(match name {
        // Bound by the planner for enum comparisons and sorts: a label's 1-based position.
        "enum_sortorder" => match &args[1] {
            Value::Array(labels) => match labels.iter().position(|l| *l == args[0]) {
                Some(i) => Value::Int4(i as i32 + 1),
                None => Value::Null,
            },
            _ => Value::Null,
        },
        "length" => match &args[0] {
            Value::Bytea(b) => Value::Int4(b.len() as i32),
            _ => Value::Int4(text(0).chars().count() as i32),
        },
        "octet_length" => Value::Int4(text(0).len() as i32),
        "lower" => Value::Text(text(0).to_lowercase()),
        "upper" => Value::Text(text(0).to_uppercase()),
        "initcap" => {
            let mut out = String::new();
            let mut start = true;
            for c in text(0).chars() {
                if c.is_alphanumeric() {
                    if start {
                        out.extend(c.to_uppercase());
                    } else {
                        out.extend(c.to_lowercase());
                    }
                    start = false;
                } else {
                    out.push(c);
                    start = true;
                }
            }
            Value::Text(out)
        }
        "reverse" => Value::Text(text(0).chars().rev().collect()),
        "substr" => {
            let chars: Vec<char> = text(0).chars().collect();
            let start = int(1);
            let (from, to) = if args.len() == 3 {
                let count = int(2);
                if count < 0 {
                    return Err(Error::DataException("22011", "negative substring length not allowed".into()));
                }
                (start, start.saturating_add(count))
            } else {
                (start, i64::MAX)
            };
            let from = (from.max(1) - 1) as usize;
            let to = (to.max(1) - 1).min(chars.len() as i64) as usize;
            Value::Text(if from < to { chars[from..to].iter().collect() } else { String::new() })
        }
        "btrim" | "ltrim" | "rtrim" => {
            let set: Vec<char> = if args.len() == 2 { text(1).chars().collect() } else { vec![' '] };
            let s = text(0);
            let out = match name {
                "btrim" => s.trim_matches(|c| set.contains(&c)),
                "ltrim" => s.trim_start_matches(|c| set.contains(&c)),
                _ => s.trim_end_matches(|c| set.contains(&c)),
            };
            Value::Text(out.to_string())
        }
        "replace" => {
            if text(1).is_empty() {
                Value::Text(text(0).to_string())
            } else {
                let growth = text(2).len().saturating_sub(text(1).len());
                check_value_size(
                    text(0).len().saturating_add(text(0).matches(text(1)).count().saturating_mul(growth)),
                )?;
                Value::Text(text(0).replace(text(1), text(2)))
            }
        }
        "strpos" => Value::Int4(match text(0).find(text(1)) {
            Some(byte) => text(0)[..byte].chars().count() as i32 + 1,
            None => 0,
        }),
        "left" | "right" => {
            let chars: Vec<char> = text(0).chars().collect();
            let n = int(1);
            let len = chars.len() as i64;
            let take = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
            Value::Text(if name == "left" {
                chars[..take].iter().collect()
            } else {
                chars[chars.len() - take..].iter().collect()
            })
        }
        "lpad" | "rpad" => {
            let chars: Vec<char> = text(0).chars().collect();
            let len = int(1).max(0) as usize;
            let fill: Vec<char> = if args.len() == 3 { text(2).chars().collect() } else { vec![' '] };
            let widest = fill.iter().map(|c| c.len_utf8()).max().unwrap_or(1);
            check_value_size(len.saturating_mul(widest))?;
            if chars.len() >= len || fill.is_empty() {
                Value::Text(chars[..len.min(chars.len())].iter().collect())
            } else {
                let pad: String = fill.iter().cycle().take(len - chars.len()).collect();
                let s: String = chars.iter().collect();
                Value::Text(if name == "lpad" { pad + &s } else { s + &pad })
            }
        }
        "repeat" => {
            let times = int(1).max(0) as usize;
            check_value_size(text(0).len().saturating_mul(times))?;
            Value::Text(text(0).repeat(times))
        }
        "split_part" => {
            let n = int(2);
            if n == 0 {
                return Err(Error::InvalidParameter("field position must not be zero".into()));
            }
            let parts: Vec<&str> = if text(1).is_empty() { vec![text(0)] } else { text(0).split(text(1)).collect() };
            let idx = if n > 0 { n - 1 } else { parts.len() as i64 + n };
            Value::Text(parts.get(idx.max(-1) as usize).filter(|_| idx >= 0).map(|s| s.to_string()).unwrap_or_default())
        }
        "starts_with" => Value::Bool(text(0).starts_with(text(1))),
        "concat" => Value::Text(args.iter().filter(|v| !v.is_null()).map(|v| text_of(v, zone)).collect()),
        "concat_ws" => {
            if args[0].is_null() {
                return Ok(Value::Null);
            }
            let sep = text(0).to_string();
            let parts: Vec<String> = args[1..].iter().filter(|v| !v.is_null()).map(|v| text_of(v, zone)).collect();
            Value::Text(parts.join(&sep))
        }
        "abs" => match &args[0] {
            Value::Int2(v) => Value::Int2(v.checked_abs().ok_or_else(|| overflow("smallint"))?),
            Value::Int4(v) => Value::Int4(v.checked_abs().ok_or_else(|| overflow("integer"))?),
            Value::Int8(v) => Value::Int8(v.checked_abs().ok_or_else(|| overflow("bigint"))?),
            Value::Float4(v) => Value::Float4(v.abs()),
            Value::Numeric(d) => Value::Numeric(d.abs()),
            other => Value::Float8(other.as_f64().unwrap_or(0.0).abs()),
        },
        "sign" => match &args[0] {
            Value::Numeric(d) => Value::Numeric(if d.is_zero() {
                Decimal::ZERO
            } else if d.is_sign_negative() {
                Decimal::NEGATIVE_ONE
            } else {
                Decimal::ONE
            }),
            other => {
                let f = other.as_f64().unwrap_or(0.0);
                Value::Float8(if f > 0.0 {
                    1.0
                } else if f < 0.0 {
                    -1.0
                } else {
                    0.0
                })
            }
        },
        "round" | "trunc" | "ceil" | "floor" => match &args[0] {
            Value::Numeric(d) => {
                let places = if args.len() == 2 { int(1) } else { 0 };
                Value::Numeric(round_numeric(name, *d, places)?)
            }
            other => {
                let f = other.as_f64().unwrap_or(0.0);
                Value::Float8(match name {
                    "round" => f.round_ties_even(),
                    "trunc" => f.trunc(),
                    "ceil" => f.ceil(),
                    _ => f.floor(),
                })
            }
        },
        "sqrt" | "cbrt" | "exp" | "ln" | "log10" | "sin" | "cos" | "tan" | "degrees" | "radians" => {
            let f = float(0);
            let out = match name {
                "sqrt" if f < 0.0 => {
                    return Err(Error::DataException("2201F", "cannot take square root of a negative number".into()))
                }
                "sqrt" => f.sqrt(),
                "cbrt" => f.cbrt(),
                "exp" => f.exp(),
                "ln" | "log10" if f == 0.0 => {
                    return Err(Error::DataException("2201E", "cannot take logarithm of zero".into()))
                }
                "ln" | "log10" if f < 0.0 => {
                    return Err(Error::DataException("2201E", "cannot take logarithm of a negative number".into()))
                }
                "ln" => f.ln(),
                "log10" => f.log10(),
                "sin" => f.sin(),
                "cos" => f.cos(),
                "tan" => f.tan(),
                "degrees" => f.to_degrees(),
                _ => f.to_radians(),
            };
            if out.is_infinite() && f.is_finite() {
                return Err(Error::NumericOutOfRange("value out of range: overflow".into()));
            }
            match &args[0] {
                Value::Numeric(_) => Value::Numeric(numeric_from_f64(out, 16)?),
                _ => Value::Float8(out),
            }
        }
        "power" => super::execution::arith::arithmetic(crate::sql::planner::plan::BinaryOp::Pow, &args[0], &args[1])?,
        "log" => {
            // log(base, x) = ln(x) / ln(base), in NUMERIC with 16 decimals.
            use rust_decimal::MathematicalOps;
            let (Value::Numeric(base), Value::Numeric(x)) = (&args[0], &args[1]) else { return Ok(Value::Null) };
            if base.is_sign_negative() || x.is_sign_negative() || base.is_zero() || x.is_zero() {
                return Err(Error::DataException("2201E", "cannot take logarithm of zero or a negative number".into()));
            }
            let denominator = base.checked_ln().ok_or_else(|| overflow("numeric"))?;
            if denominator.is_zero() {
                return Err(Error::DivisionByZero);
            }
            let q = x.checked_ln().and_then(|n| n.checked_div(denominator)).ok_or_else(|| overflow("numeric"))?;
            let mut q = q.round_dp_with_strategy(16, RoundingStrategy::MidpointAwayFromZero);
            q.rescale(16);
            Value::Numeric(q)
        }
        "mod" => super::execution::arith::arithmetic(crate::sql::planner::plan::BinaryOp::Mod, &args[0], &args[1])?,
        "pi" => Value::Float8(std::f64::consts::PI),
        "overlaps" => overlaps(&args),
        "pg_sleep" => {
            // In short steps, so that a cancel or the statement timeout ends it.
            // Longer than an Instant can count: until cancelled.
            let seconds = float(0);
            let length = match std::time::Duration::try_from_secs_f64(seconds) {
                Ok(length) => length,
                Err(_) if seconds > 0.0 => std::time::Duration::MAX,
                Err(_) => std::time::Duration::ZERO,
            };
            let until = std::time::Instant::now().checked_add(length);
            let step = std::time::Duration::from_millis(10);
            loop {
                interrupt.check()?;
                let left = until.map_or(step, |u| u.saturating_duration_since(std::time::Instant::now()));
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(step));
            }
            Value::Text(String::new())
        }
        "random" => Value::Float8(rand_f64()),
        "gen_random_uuid" => Value::Uuid(uuid::Uuid::new_v4().as_u128()),
        "now" => Value::TimestampTz(now),
        "clock_timestamp" => Value::TimestampTz(wall_clock_micros()),
        "current_date" => Value::Date(timezone::date_of(now, zone)?),
        // The time of day in the session's zone, to `args[0]` fractional digits.
        "current_time" | "localtime" => {
            let micros = zone.to_local(now)?.rem_euclid(datetime::MICROS_PER_DAY);
            let micros = match args.first() {
                Some(precision) => datetime::round_micros(micros, precision.as_i64().unwrap_or(6))?,
                None => micros,
            };
            if name == "localtime" {
                Value::Time(micros)
            } else {
                Value::TimeTz(TimeTz { micros, offset: zone.offset_at(now) as i32 })
            }
        }
        "localtimestamp" => Value::Timestamp(zone.to_local(now)?),
        "date_trunc" => match (&args[1], args.get(2)) {
            (Value::TimestampTz(t), Some(Value::Text(zone))) => {
                Value::TimestampTz(timezone::truncate_in(&timezone::parse(zone)?, *t, text(0))?)
            }
            (Value::Timestamp(t), _) => Value::Timestamp(datetime::truncate(*t, text(0))?),
            (Value::TimestampTz(t), _) => Value::TimestampTz(timezone::truncate_in(zone, *t, text(0))?),
            (Value::Interval(iv), _) => Value::Interval(crate::types::interval::truncate(iv, text(0))?),
            _ => Value::Null,
        },
        "timezone" => {
            let zone = match &args[0] {
                Value::Interval(iv) if iv.months == 0 && iv.days == 0 => {
                    timezone::Zone::Fixed(iv.micros.div_euclid(datetime::MICROS_PER_SECOND))
                }
                Value::Interval(_) => {
                    return Err(Error::InvalidParameter("interval time zone must not include months or days".into()))
                }
                _ => timezone::parse(text(0))?,
            };
            match &args[1] {
                // The offset a named zone has now (as PostgreSQL takes it).
                Value::TimeTz(t) => Value::TimeTz(t.at_offset(zone.offset_at(now) as i32)),
                Value::Timestamp(t) => Value::TimestampTz(zone.to_utc(*t)?),
                Value::TimestampTz(t) => Value::Timestamp(zone.to_local(*t)?),
                _ => Value::Null,
            }
        }
        "isfinite" => Value::Bool(match &args[0] {
            Value::Date(d) => datetime::is_finite_date(*d),
            Value::Timestamp(t) | Value::TimestampTz(t) => datetime::is_finite_timestamp(*t),
            _ => true,
        }),
        "date_part" | "extract" => {
            let f = match &args[1] {
                Value::Interval(iv) => datetime::extract_interval(iv, text(0))?,
                Value::Time(t) => datetime::extract_time(*t, text(0))?,
                Value::TimeTz(t) => crate::types::timetz::extract(t, text(0))?,
                Value::Timestamp(t) => datetime::extract(*t, text(0))?,
                Value::TimestampTz(t) => timezone::extract(*t, text(0), zone)?,
                // extract() of a date has no time fields (date_part() reads the date as a
                // timestamp at midnight).
                Value::Date(_)
                    if name == "extract"
                        && matches!(
                            datetime::canonical_unit(text(0)).as_str(),
                            "microseconds"
                                | "milliseconds"
                                | "second"
                                | "minute"
                                | "hour"
                                | "timezone"
                                | "timezone_hour"
                                | "timezone_minute"
                        ) =>
                {
                    return Err(Error::FeatureNotSupported(format!(
                        "unit \"{}\" not supported for type date",
                        text(0)
                    )));
                }
                Value::Date(d) => datetime::extract(datetime::date_to_timestamp(*d), text(0))?,
                _ => return Ok(Value::Null),
            };
            if f.is_nan() {
                // A field an infinite date or time does not have.
                Value::Null
            } else if f.is_infinite() && name == "extract" {
                return Err(Error::FeatureNotSupported("numeric infinity (extract from an infinite value)".into()));
            } else if name == "date_part" {
                Value::Float8(f)
            } else {
                Value::Numeric(extract_numeric(&args[1], text(0), f)?)
            }
        }
        "make_interval" => Value::Interval(make_interval(&args)?),
        "make_date" => Value::Date(make_date(&args)?),
        "make_timestamp" | "make_timestamptz" => {
            let day = make_date(&args)? as i64 * datetime::MICROS_PER_DAY;
            let (hour, min, sec) = (int(3), int(4), float(5));
            // PostgreSQL's limits: up to 24:00:00, and a leap second's 60.
            let overflows = !(0..=24).contains(&hour)
                || !(0..60).contains(&min)
                || !(0.0..=60.0).contains(&sec)
                || (hour == 24 && (min > 0 || sec > 0.0));
            if overflows {
                return Err(Error::DatetimeOutOfRange(format!(
                    "time field value out of range: {hour}:{min:02}:{sec:02}"
                )));
            }
            let micros =
                day + (hour * 3600 + min * 60) * MICROS_PER_SECOND + (sec * MICROS_PER_SECOND as f64).round() as i64;
            if name == "make_timestamp" {
                Value::Timestamp(micros)
            } else {
                Value::TimestampTz(datetime::check_timestamp(zone.to_utc(micros)?)?)
            }
        }
        "to_timestamp" => {
            let f = float(0);
            if !f.is_finite() {
                return Err(Error::DatetimeOutOfRange("timestamp out of range".into()));
            }
            Value::TimestampTz((f * MICROS_PER_SECOND as f64).round() as i64)
        }
        "age" => {
            // Two instants are compared on the session zone's calendar; age(t) counts from
            // today's midnight there.
            let local = |v: &Value| match v {
                Value::TimestampTz(t) if datetime::is_finite_timestamp(*t) => zone.to_local(*t),
                other => Ok(ts_of(other)),
            };
            let (a, b) = if args.len() == 1 {
                let today = zone.to_local(now)?;
                (today - today.rem_euclid(datetime::MICROS_PER_DAY), local(&args[0])?)
            } else {
                (local(&args[0])?, local(&args[1])?)
            };
            if !datetime::is_finite_timestamp(a) || !datetime::is_finite_timestamp(b) {
                return Err(Error::DatetimeOutOfRange("interval out of range".into()));
            }
            Value::Interval(datetime::age(a, b))
        }
        "time_bucket" | "time_bucket_gapfill" | "date_bin" => {
            let origin = match (name, args.get(2)) {
                ("date_bin", Some(origin)) => Origin::At(origin),
                ("time_bucket", Some(Value::Interval(offset))) => Origin::Offset(*offset),
                ("time_bucket", Some(origin)) => Origin::At(origin),
                _ => Origin::Default,
            };
            time_bucket(&args[0], &args[1], origin)?
        }
        "jsonb_typeof" => match &args[0] {
            Value::Jsonb(j) => Value::Text(
                match j {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Bool(_) => "boolean",
                    serde_json::Value::Number(_) => "number",
                    serde_json::Value::String(_) => "string",
                    serde_json::Value::Array(_) => "array",
                    serde_json::Value::Object(_) => "object",
                }
                .into(),
            ),
            _ => Value::Null,
        },
        // A row carries no field names here to make an object of.
        "to_jsonb" if matches!(args[0], Value::Record(_)) => {
            return Err(Error::FeatureNotSupported("to_jsonb of a row value".into()))
        }
        "to_jsonb" => Value::Jsonb(json::to_json(&args[0], zone)),
        "array_length" => match &args[0] {
            Value::Array(items) if int(1) == 1 && !items.is_empty() => Value::Int4(items.len() as i32),
            _ => Value::Null,
        },
        "array_upper" | "array_lower" => match &args[0] {
            Value::Array(items) if int(1) == 1 && !items.is_empty() => {
                Value::Int4(if name == "array_upper" { items.len() as i32 } else { 1 })
            }
            _ => Value::Null,
        },
        "array_subscript" => match &args[0] {
            Value::Array(items) => {
                let i = int(1);
                if i >= 1 && (i as usize) <= items.len() {
                    items[i as usize - 1].clone()
                } else {
                    Value::Null
                }
            }
            // A catalog vector kept as text (`pg_index.indoption`: `0 3`): PostgreSQL's
            // int2vector and oidvector subscripts start at 0. Other text is no array.
            Value::Text(vector) if is_vector_text(vector) => {
                let i = int(1);
                let item = usize::try_from(i).ok().and_then(|i| vector.split_whitespace().nth(i));
                item.map_or(Value::Null, |s| Value::Text(s.to_string()))
            }
            _ => Value::Null,
        },
        // `grouping(a, b, …)` (sql::planner::grouping_sets): from the row's grouping id, a bit
        // per argument, the first the highest, set when that argument is not grouped.
        "grouping_bits" => {
            let id = args[0].as_i64().unwrap_or(0);
            Value::Int4(args[1..].iter().fold(0, |bits, p| bits << 1 | (id >> p.as_i64().unwrap_or(0) & 1)) as i32)
        }
        "cardinality" => match &args[0] {
            Value::Array(items) => Value::Int4(items.len() as i32),
            _ => Value::Null,
        },
        "array_contains" | "array_contained" => {
            let (outer, inner) = if name == "array_contains" { (&args[0], &args[1]) } else { (&args[1], &args[0]) };
            match (outer, inner) {
                // NULL elements are never contained, as in PostgreSQL.
                (Value::Array(have), Value::Array(want)) => Value::Bool(
                    want.iter()
                        .all(|w| !w.is_null() && have.iter().any(|h| h.compare(w) == Some(std::cmp::Ordering::Equal))),
                ),
                _ => Value::Null,
            }
        }
        other => {
            match json::call(other, &args, zone)
                .or_else(|| numeric::call(other, &args))
                .or_else(|| interval::call(other, &args))
                .or_else(|| encoding::call(other, &args))
                .or_else(|| text::call(other, &args, zone, interrupt))
                .or_else(|| formatting::call(other, &args, zone))
            {
                Some(result) => result?,
                None => return Err(Error::UndefinedFunction(format!("function {other} does not exist"))),
            }
        }
    })
}

fn overflow(t: &str) -> Error {
    Error::NumericOutOfRange(format!("{t} out of range"))
}

fn text_of(v: &Value, zone: &timezone::Zone) -> String {
    match v {
        Value::Bool(b) => (if *b { "t" } else { "f" }).to_string(),
        other => other.in_zone(zone).to_string(),
    }
}

/// The signature of `time_bucket(width, ts [, offset | origin])` and
/// `time_bucket_gapfill(width, ts [, start, finish])`: integer times take an integer width,
/// dates and timestamps an interval; the result has the time's type.
fn time_bucket_signature(name: &'static str, args: &[DataType]) -> Result<Signature> {
    use DataType as T;
    let t = match &args[1] {
        T::Int2 | T::Int4 | T::Int8 | T::Timestamp | T::Date => args[1].clone(),
        _ => T::TimestampTz,
    };
    let width = if t.is_integer() { t.clone() } else { T::Interval };
    let mut params = vec![width, t.clone()];
    match (name, args.len()) {
        ("time_bucket", 3) if args[2] == T::Interval && !t.is_integer() => params.push(T::Interval),
        ("time_bucket", 3) => params.push(t.clone()),
        ("time_bucket_gapfill", 4) => params.extend([t.clone(), t.clone()]),
        _ => {}
    }
    Ok(Signature { name, arg_types: params, return_type: t })
}

/// Where the buckets of [`time_bucket`] are aligned.
pub enum Origin<'a> {
    /// 2000-01-03 (a Monday) for times, 0 for integers, as TimescaleDB does.
    Default,
    /// The default shifted by an interval.
    Offset(crate::types::value::Interval),
    /// A bucket starts at this time (or integer).
    At(&'a Value),
}

/// The time bucketing functions' default origin: 2000-01-03 00:00:00, a Monday.
const BUCKET_ORIGIN: i64 = 946_857_600 * MICROS_PER_SECOND;

/// A bucket width as a count of the time's units (microseconds, or integer steps); months
/// have no fixed length and are refused.
pub fn bucket_width(width: &Value) -> Result<Option<i64>> {
    let w = match width {
        Value::Null => return Ok(None),
        Value::Interval(iv) if iv.months != 0 => {
            return Err(Error::FeatureNotSupported("time_bucket with month intervals".into()))
        }
        Value::Interval(iv) => fixed_micros(iv)?,
        other => other.as_i64().unwrap_or(0),
    };
    if w <= 0 {
        return Err(Error::InvalidParameter("stride must be greater than zero".into()));
    }
    Ok(Some(w))
}

/// The length of an interval without months, in microseconds.
fn fixed_micros(iv: &crate::types::value::Interval) -> Result<i64> {
    i64::try_from(iv.total_micros()).map_err(|_| Error::DatetimeOutOfRange("interval out of range".into()))
}

/// The start of the bucket holding `t`: buckets are `width` wide and one starts at the origin.
pub fn time_bucket(width: &Value, t: &Value, origin: Origin) -> Result<Value> {
    let Some(width) = bucket_width(width)? else { return Ok(Value::Null) };
    if t.is_null() || matches!(origin, Origin::At(Value::Null)) {
        return Ok(Value::Null);
    }
    let (time, origin) = match t.as_i64() {
        Some(i) => (i, if let Origin::At(o) = origin { o.as_i64().unwrap_or(0) } else { 0 }),
        None => {
            let time = ts_of(t);
            if !datetime::is_finite_timestamp(time) {
                return Ok(t.clone());
            }
            let origin = match origin {
                Origin::Default => BUCKET_ORIGIN,
                Origin::Offset(iv) if iv.months != 0 => {
                    return Err(Error::FeatureNotSupported("time_bucket offsets in months".into()))
                }
                Origin::Offset(iv) => BUCKET_ORIGIN
                    .checked_add(fixed_micros(&iv)?)
                    .ok_or_else(|| Error::DatetimeOutOfRange("timestamp out of range".into()))?,
                Origin::At(o) => ts_of(o),
            };
            (time, origin)
        }
    };
    let bucket = time
        .checked_sub(origin)
        .and_then(|d| d.div_euclid(width).checked_mul(width))
        .and_then(|d| d.checked_add(origin))
        .ok_or_else(|| Error::DatetimeOutOfRange("timestamp out of range".into()))?;
    time_value(bucket, &t.data_type().unwrap_or(DataType::TimestampTz))
}

/// A time as a count of its units: microseconds for dates and timestamps, else the integer.
pub fn time_units(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| ts_of(v))
}

/// A count of units ([`time_units`]) as a value of the time type `t`.
pub fn time_value(units: i64, t: &DataType) -> Result<Value> {
    let out_of_range = |name: &str| Error::NumericOutOfRange(format!("{name} out of range"));
    Ok(match t {
        DataType::Int2 => Value::Int2(i16::try_from(units).map_err(|_| out_of_range("smallint"))?),
        DataType::Int4 => Value::Int4(i32::try_from(units).map_err(|_| out_of_range("integer"))?),
        DataType::Int8 => Value::Int8(units),
        DataType::Date => Value::Date(datetime::timestamp_to_date(units)?),
        DataType::Timestamp => Value::Timestamp(units),
        _ => Value::TimestampTz(units),
    })
}

fn ts_of(v: &Value) -> i64 {
    match v {
        Value::Timestamp(t) | Value::TimestampTz(t) => *t,
        Value::Date(d) => datetime::date_to_timestamp(*d),
        _ => 0,
    }
}

/// `make_interval(years, months, weeks, days, hours, mins, secs)`.
fn make_interval(args: &[Value]) -> Result<crate::types::value::Interval> {
    let part = |i: usize| args[i].as_i64().unwrap_or(0);
    let overflow = || Error::DatetimeOutOfRange("interval out of range".into());
    let months = part(0).checked_mul(12).and_then(|y| y.checked_add(part(1))).ok_or_else(overflow)?;
    let days = part(2).checked_mul(7).and_then(|w| w.checked_add(part(3))).ok_or_else(overflow)?;
    let secs = args[6].as_f64().unwrap_or(0.0);
    let micros = (secs * MICROS_PER_SECOND as f64).round();
    if !micros.is_finite() || micros.abs() >= i64::MAX as f64 {
        return Err(overflow());
    }
    let micros = part(4)
        .checked_mul(3600 * MICROS_PER_SECOND)
        .and_then(|h| h.checked_add(part(5).checked_mul(60 * MICROS_PER_SECOND)?))
        .and_then(|hm| hm.checked_add(micros as i64))
        .ok_or_else(overflow)?;
    Ok(crate::types::value::Interval {
        months: i32::try_from(months).map_err(|_| overflow())?,
        days: i32::try_from(days).map_err(|_| overflow())?,
        micros,
    })
}

/// `make_date(year, month, day)` (also the date part of `make_timestamp`): days since
/// 1970-01-01. Negative years are BC, as in PostgreSQL; there is no year 0.
fn make_date(args: &[Value]) -> Result<i32> {
    let (year, month, day) =
        (args[0].as_i64().unwrap_or(0), args[1].as_i64().unwrap_or(0), args[2].as_i64().unwrap_or(0));
    let out_of_range =
        || Error::DatetimeOutOfRange(format!("date field value out of range: {year}-{month:02}-{day:02}"));
    let astronomical = if year < 0 { year + 1 } else { year };
    if year == 0 {
        return Err(out_of_range());
    }
    let date = i32::try_from(astronomical)
        .ok()
        .zip(u32::try_from(month).ok().zip(u32::try_from(day).ok()))
        .and_then(|(y, (m, d))| chrono::NaiveDate::from_ymd_opt(y, m, d))
        .ok_or_else(out_of_range)?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    Ok((date - epoch).num_days() as i32)
}

/// extract() returns numeric: whole for most fields, with six decimals for seconds and epoch.
fn extract_numeric(arg: &Value, field: &str, f: f64) -> Result<Decimal> {
    let field = datetime::canonical_unit(field);
    match (arg, field.as_str()) {
        (Value::Timestamp(t) | Value::TimestampTz(t), "epoch") => Ok(Decimal::from_i128_with_scale(*t as i128, 6)),
        (Value::Timestamp(t) | Value::TimestampTz(t), "second") => {
            let micros = t.rem_euclid(60 * MICROS_PER_SECOND);
            Ok(Decimal::from_i128_with_scale(micros as i128, 6))
        }
        (Value::Timestamp(t) | Value::TimestampTz(t), "milliseconds") => {
            let micros = t.rem_euclid(60 * MICROS_PER_SECOND);
            Ok(Decimal::from_i128_with_scale(micros as i128, 3))
        }
        (Value::Interval(iv), "epoch") => {
            let secs = (iv.months as i128 / 12) * 31_557_600 * 1_000_000
                + (iv.months as i128 % 12) * 30 * 86_400 * 1_000_000
                + iv.days as i128 * 86_400 * 1_000_000
                + iv.micros as i128;
            Ok(Decimal::from_i128_with_scale(secs, 6))
        }
        (Value::Interval(iv), "second") => Ok(Decimal::from_i128_with_scale((iv.micros % 60_000_000) as i128, 6)),
        (Value::Date(_), "epoch") => Ok(Decimal::from_f64(f).unwrap_or_default().trunc()),
        (Value::Time(t), "epoch") => Ok(Decimal::from_i128_with_scale(*t as i128, 6)),
        (Value::TimeTz(t), "epoch") => Ok(Decimal::from_i128_with_scale(t.utc_micros() as i128, 6)),
        (Value::Time(t) | Value::TimeTz(TimeTz { micros: t, .. }), "second") => {
            Ok(Decimal::from_i128_with_scale((t % 60_000_000) as i128, 6))
        }
        (Value::Time(t) | Value::TimeTz(TimeTz { micros: t, .. }), "milliseconds") => {
            Ok(Decimal::from_i128_with_scale((t % 60_000_000) as i128, 3))
        }
        (Value::Date(d), "julian") => Ok(Decimal::from(*d as i64 + datetime::UNIX_EPOCH_JULIAN_DAY)),
        (Value::Timestamp(t) | Value::TimestampTz(t), "julian") => {
            let day = Decimal::from(t.div_euclid(MICROS_PER_DAY) + datetime::UNIX_EPOCH_JULIAN_DAY);
            Ok(day + Decimal::from(t.rem_euclid(MICROS_PER_DAY)) / Decimal::from(MICROS_PER_DAY))
        }
        _ => Decimal::from_f64(f).map(|d| d.normalize()).ok_or_else(|| overflow("numeric")),
    }
}

fn round_numeric(name: &str, d: Decimal, places: i64) -> Result<Decimal> {
    let strategy = match name {
        "round" => RoundingStrategy::MidpointAwayFromZero,
        "trunc" => RoundingStrategy::ToZero,
        "ceil" => RoundingStrategy::ToPositiveInfinity,
        _ => RoundingStrategy::ToNegativeInfinity,
    };
    if places >= 0 {
        let places = places.min(28) as u32;
        let mut out = d.round_dp_with_strategy(places, strategy);
        out.rescale(places);
        Ok(out)
    } else {
        let factor = Decimal::from_i128_with_scale(10i128.pow((-places).min(27) as u32), 0);
        let scaled = (d / factor).round_dp_with_strategy(0, strategy);
        Ok(scaled.checked_mul(factor).ok_or_else(|| overflow("numeric"))?)
    }
}

fn numeric_from_f64(f: f64, digits: i32) -> Result<Decimal> {
    let d = Decimal::from_f64(f).ok_or_else(|| overflow("numeric"))?;
    let magnitude = if f == 0.0 { 0 } else { f.abs().log10().floor() as i32 + 1 };
    let scale = (digits - magnitude).clamp(0, 28) as u32;
    let mut out = d.round_dp(scale);
    out.rescale(scale);
    Ok(out)
}

/// The current wall-clock time in microseconds since the Unix epoch.
pub fn wall_clock_micros() -> i64 {
    crate::clock::unix_micros()
}

fn rand_f64() -> f64 {
    // A fresh v4 UUID carries 122 random bits from the OS generator.
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// Whether `text` is an int2vector's or oidvector's text form, as catalog columns here hold
/// them: integers separated by spaces (`1 2`), or nothing.
pub fn is_vector_text(text: &str) -> bool {
    text.split_whitespace().all(|n| n.parse::<i64>().is_ok())
}
