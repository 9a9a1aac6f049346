//! Integer and NUMERIC functions: `div`, `gcd`, `lcm`, `scale`, `min_scale`, `trim_scale`,
//! `width_bucket` (equal-width buckets over a range, or buckets bounded by an array), and the
//! bitwise operators on integers (`&`, `|`, `#`, `~`, `<<`, `>>`).

use super::Signature;
use crate::error::{Error, Result};
use crate::types::{DataType, Value};
use rust_decimal::Decimal;
use std::cmp::Ordering;

/// Resolves one of these functions, or None when `name` is not one of them.
pub fn resolve(name: &str, args: &[DataType]) -> Option<Signature> {
    use DataType as T;
    let sig = |name: &'static str, arg_types: Vec<DataType>, return_type: DataType| {
        Some(Signature { name, arg_types, return_type })
    };
    let exact = |t: &DataType| matches!(t, T::Int2 | T::Int4 | T::Int8 | T::Numeric(_) | T::Unknown);
    let numeric = T::Numeric(None);
    match (name, args.len()) {
        ("div", 2) if args.iter().all(exact) => sig("div", vec![numeric.clone(), numeric.clone()], numeric),
        ("gcd" | "lcm", 2) if args.iter().all(exact) => {
            let canonical = if name == "gcd" { "gcd" } else { "lcm" };
            let t = if args.iter().any(|t| matches!(t, T::Numeric(_) | T::Unknown)) {
                numeric
            } else if args.contains(&T::Int8) {
                T::Int8
            } else {
                T::Int4
            };
            sig(canonical, vec![t.clone(), t.clone()], t)
        }
        ("scale", 1) if exact(&args[0]) => sig("scale", vec![numeric], T::Int4),
        ("min_scale", 1) if exact(&args[0]) => sig("min_scale", vec![numeric], T::Int4),
        ("trim_scale", 1) if exact(&args[0]) => sig("trim_scale", vec![numeric.clone()], numeric),
        ("width_bucket", 4) => {
            let number = |t: &DataType| t.is_numeric() || *t == T::Unknown;
            if !args[..3].iter().all(number) || !exact(&args[3]) || matches!(args[3], T::Numeric(_)) {
                return None;
            }
            let t = if args[..3].iter().any(|t| matches!(t, T::Numeric(_))) { numeric } else { T::Float8 };
            sig("width_bucket", vec![t.clone(), t.clone(), t, T::Int4], T::Int4)
        }
        // Bitwise operators: the wider integer type of the two, a shift keeps its left side's.
        ("int_and" | "int_or" | "int_xor", 2) if args.iter().all(|t| t.is_integer() || *t == T::Unknown) => {
            let t = [T::Int8, T::Int4, T::Int2].into_iter().find(|t| args.contains(t)).unwrap_or(T::Int4);
            let canonical = match name {
                "int_and" => "int_and",
                "int_or" => "int_or",
                _ => "int_xor",
            };
            sig(canonical, vec![t.clone(), t.clone()], t)
        }
        ("int_shl" | "int_shr", 2) if args.iter().all(|t| t.is_integer() || *t == T::Unknown) => {
            let t = if args[0] == T::Unknown { T::Int4 } else { args[0].clone() };
            sig(if name == "int_shl" { "int_shl" } else { "int_shr" }, vec![t.clone(), T::Int4], t)
        }
        ("int_not", 1) if args[0].is_integer() || args[0] == T::Unknown => {
            let t = if args[0] == T::Unknown { T::Int4 } else { args[0].clone() };
            sig("int_not", vec![t.clone()], t)
        }
        ("width_bucket", 2) => {
            let T::Array(element) = &args[1] else { return None };
            let t = DataType::common(&args[0], element)?;
            sig("width_bucket_thresholds", vec![t.clone(), T::Array(Box::new(t))], T::Int4)
        }
        _ => None,
    }
}

/// Evaluates a function [`resolve`] returned; None when `name` is not one of them.
pub fn call(name: &str, args: &[Value]) -> Option<Result<Value>> {
    Some(match name {
        "div" => div(&args[0], &args[1]),
        "gcd" | "lcm" => gcd_lcm(name == "gcd", &args[0], &args[1]),
        "scale" | "min_scale" => Ok(match &args[0] {
            Value::Numeric(d) if name == "scale" => Value::Int4(d.scale() as i32),
            Value::Numeric(d) => Value::Int4(d.normalize().scale() as i32),
            _ => Value::Null,
        }),
        "trim_scale" => Ok(match &args[0] {
            Value::Numeric(d) => Value::Numeric(d.normalize()),
            other => other.clone(),
        }),
        "width_bucket" => width_bucket(&args[0], &args[1], &args[2], &args[3]),
        "int_and" | "int_or" | "int_xor" | "int_shl" | "int_shr" | "int_not" => Ok(bitwise(name, args)),
        "width_bucket_thresholds" => thresholds(&args[0], &args[1]),
        _ => return None,
    })
}

/// A bitwise operator on integers of one type (a shift's count is an integer). Shifts wrap
/// their count to the type's width, as PostgreSQL's C shifts do on this hardware.
fn bitwise(name: &str, args: &[Value]) -> Value {
    let a = args[0].as_i64().unwrap_or(0);
    let b = args.get(1).and_then(Value::as_i64).unwrap_or(0);
    let bits = match args[0] {
        Value::Int2(_) => 16,
        Value::Int4(_) => 32,
        _ => 64,
    };
    let out = match name {
        "int_and" => a & b,
        "int_or" => a | b,
        "int_xor" => a ^ b,
        "int_not" => !a,
        // Within the type's width: an int2 shifts as an int4, as in C.
        "int_shl" if bits == 64 => a.wrapping_shl(b as u32),
        "int_shl" => (a as i32).wrapping_shl(b as u32) as i64,
        _ if bits == 64 => a.wrapping_shr(b as u32),
        _ => (a as i32).wrapping_shr(b as u32) as i64,
    };
    match args[0] {
        Value::Int2(_) => Value::Int2(out as i16),
        Value::Int4(_) => Value::Int4(out as i32),
        _ => Value::Int8(out),
    }
}

fn int_overflow(t: &DataType) -> Error {
    Error::NumericOutOfRange(format!("{} out of range", if *t == DataType::Int8 { "bigint" } else { "integer" }))
}

/// `div(a, b)`: the integral part of `a / b`, truncated toward zero.
fn div(a: &Value, b: &Value) -> Result<Value> {
    let (Value::Numeric(a), Value::Numeric(b)) = (a, b) else {
        // NaN, or an infinity: truncating leaves the quotient's NaN, infinity or 0 as it is.
        return crate::sql::execution::arith::numeric_special_op(crate::sql::planner::plan::BinaryOp::Div, a, b);
    };
    if b.is_zero() {
        return Err(Error::DivisionByZero);
    }
    // Exact: the remainder takes off the fraction before dividing.
    let whole = (*a - *a % *b)
        .checked_div(*b)
        .ok_or_else(|| Error::NumericOutOfRange("value overflows numeric format".into()))?;
    Ok(Value::Numeric(whole.trunc()))
}

/// Greatest common divisor or least common multiple, never negative, of two integers or two
/// NUMERICs (whose result has the larger scale of the two).
fn gcd_lcm(gcd: bool, a: &Value, b: &Value) -> Result<Value> {
    match (a, b) {
        (Value::Numeric(a), Value::Numeric(b)) => {
            let scale = a.scale().max(b.scale());
            let g = {
                let (mut x, mut y) = (a.abs(), b.abs());
                while !y.is_zero() {
                    (x, y) = (y, x % y);
                }
                x
            };
            let mut result = if gcd {
                g
            } else if a.is_zero() || b.is_zero() {
                Decimal::ZERO
            } else {
                (a.abs() / g)
                    .checked_mul(b.abs())
                    .ok_or_else(|| Error::NumericOutOfRange("value overflows numeric format".into()))?
            };
            result.rescale(scale);
            Ok(Value::Numeric(result))
        }
        (Value::NumericNaN | Value::NumericInf { .. }, _) | (_, Value::NumericNaN | Value::NumericInf { .. }) => {
            Ok(Value::NumericNaN)
        }
        _ => {
            let t = a.data_type().unwrap_or(DataType::Int4);
            let (x, y) = (a.as_i64().unwrap_or(0) as i128, b.as_i64().unwrap_or(0) as i128);
            let g = {
                let (mut x, mut y) = (x.abs(), y.abs());
                while y != 0 {
                    (x, y) = (y, x % y);
                }
                x
            };
            let result = if gcd {
                g
            } else if x == 0 || y == 0 {
                0
            } else {
                (x / g * y).abs()
            };
            match t {
                DataType::Int8 => i64::try_from(result).map(Value::Int8).map_err(|_| int_overflow(&t)),
                _ => i32::try_from(result).map(Value::Int4).map_err(|_| int_overflow(&t)),
            }
        }
    }
}

fn bucket_error(message: &str) -> Error {
    Error::DataException("2201G", message.into())
}

/// `width_bucket(operand, low, high, count)`: which of `count` equal-width buckets between
/// `low` and `high` holds `operand` (0 below the range, `count + 1` above it; the range may
/// run downwards).
fn width_bucket(operand: &Value, low: &Value, high: &Value, count: &Value) -> Result<Value> {
    let count = count.as_i64().unwrap_or(0);
    if count <= 0 {
        return Err(bucket_error("count must be greater than zero"));
    }
    let nan = || bucket_error("operand, lower bound, and upper bound cannot be NaN");
    let above = || i32::try_from(count + 1).map(Value::Int4).map_err(|_| int_overflow(&DataType::Int4));
    if [operand, low, high].iter().any(|v| matches!(v, Value::NumericNaN)) {
        return Err(nan());
    }
    if let (Value::Numeric(x), Value::Numeric(lo), Value::Numeric(hi)) = (operand, low, high) {
        let (x, lo, hi) = (*x, *lo, *hi);
        let n = Decimal::from(count);
        let within = |offset: Decimal, width: Decimal| -> Result<Value> {
            let bucket = offset
                .checked_mul(n)
                .and_then(|v| v.checked_div(width))
                .ok_or_else(|| Error::NumericOutOfRange("value overflows numeric format".into()))?
                .floor();
            // Clamped: the quotient is below `count` by construction.
            let bucket = i64::try_from(bucket).unwrap_or(count - 1).min(count - 1);
            Ok(Value::Int4(bucket as i32 + 1))
        };
        return match lo.cmp(&hi) {
            Ordering::Equal => Err(bucket_error("lower bound cannot equal upper bound")),
            Ordering::Less if x < lo => Ok(Value::Int4(0)),
            Ordering::Less if x >= hi => above(),
            Ordering::Less => within(x - lo, hi - lo),
            Ordering::Greater if x > lo => Ok(Value::Int4(0)),
            Ordering::Greater if x <= hi => above(),
            Ordering::Greater => within(lo - x, lo - hi),
        };
    }
    let (x, lo, hi) = (operand.as_f64().unwrap_or(0.0), low.as_f64().unwrap_or(0.0), high.as_f64().unwrap_or(0.0));
    if x.is_nan() || lo.is_nan() || hi.is_nan() {
        return Err(nan());
    }
    if lo.is_infinite() || hi.is_infinite() {
        return Err(bucket_error("lower and upper bounds must be finite"));
    }
    // `fraction` is in [0, 1); a product rounded up to `count` is clamped below it.
    let within = |fraction: f64| Value::Int4(((count as f64 * fraction) as i64).min(count - 1) as i32 + 1);
    // Halved operands keep a difference of bounds near the float range finite.
    let (x, lo, hi) = if (hi - lo).is_infinite() { (x / 2.0, lo / 2.0, hi / 2.0) } else { (x, lo, hi) };
    match lo.partial_cmp(&hi) {
        Some(Ordering::Less) if x < lo => Ok(Value::Int4(0)),
        Some(Ordering::Less) if x >= hi => above(),
        Some(Ordering::Less) => Ok(within((x - lo) / (hi - lo))),
        Some(Ordering::Greater) if x > lo => Ok(Value::Int4(0)),
        Some(Ordering::Greater) if x <= hi => above(),
        Some(Ordering::Greater) => Ok(within((lo - x) / (lo - hi))),
        _ => Err(bucket_error("lower bound cannot equal upper bound")),
    }
}

/// `width_bucket(operand, thresholds)`: how many of the (ascending) thresholds are at or below
/// `operand`.
fn thresholds(operand: &Value, thresholds: &Value) -> Result<Value> {
    let Value::Array(items) = thresholds else { return Ok(Value::Null) };
    if items.iter().any(Value::is_null) {
        return Err(Error::DataException("2202E", "thresholds array must not contain NULLs".into()));
    }
    // A binary search, as PostgreSQL's: the answer for unsorted thresholds is unspecified.
    let below = items.partition_point(|t| t.compare(operand).is_some_and(|o| o != Ordering::Greater));
    Ok(Value::Int4(below as i32))
}
