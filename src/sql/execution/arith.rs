//! Arithmetic with PostgreSQL's overflow, division and NUMERIC scale rules.

use crate::error::{Error, Result};
use crate::sql::planner::plan::BinaryOp;
use crate::types::datetime::{self, MICROS_PER_DAY};
use crate::types::interval;
use crate::types::timezone::{self, Zone};
use crate::types::value::Interval;
use crate::types::Value;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

fn overflow(type_name: &str) -> Error {
    Error::NumericOutOfRange(format!("{type_name} out of range"))
}

/// Applies an arithmetic operator to two non-NULL values (already of a common type, or a
/// date/time pairing), in a session whose time zone is UTC.
pub fn arithmetic(op: BinaryOp, l: &Value, r: &Value) -> Result<Value> {
    arithmetic_in(op, l, r, &Zone::UTC)
}

/// [`arithmetic`] in a session in time zone `zone`: a `timestamptz` moves by an interval's
/// months and days on that zone's calendar.
pub fn arithmetic_in(op: BinaryOp, l: &Value, r: &Value, zone: &Zone) -> Result<Value> {
    use BinaryOp::*;
    use Value::*;
    macro_rules! int_op {
        ($a:expr, $b:expr, $wrap:path, $name:expr) => {{
            let (a, b) = ($a, $b);
            let out = match op {
                Add => a.checked_add(b),
                Sub => a.checked_sub(b),
                Mul => a.checked_mul(b),
                Div => {
                    if b == 0 {
                        return Err(Error::DivisionByZero);
                    }
                    a.checked_div(b)
                }
                Mod => {
                    if b == 0 {
                        return Err(Error::DivisionByZero);
                    }
                    Some(a.checked_rem(b).unwrap_or(0))
                }
                Pow => return float_op(op, a as f64, b as f64).map(Float8),
                _ => return Err(Error::Internal(format!("{op:?} is not arithmetic"))),
            };
            out.map($wrap).ok_or_else(|| overflow($name))
        }};
    }
    match (l, r) {
        (Int2(a), Int2(b)) => int_op!(*a, *b, Value::Int2, "smallint"),
        (Int4(a), Int4(b)) => int_op!(*a, *b, Value::Int4, "integer"),
        (Int8(a), Int8(b)) => int_op!(*a, *b, Value::Int8, "bigint"),
        (Float4(a), Float4(b)) => {
            let out = float_op(op, *a as f64, *b as f64)? as f32;
            if out.is_infinite() && a.is_finite() && b.is_finite() {
                return Err(Error::NumericOutOfRange("value out of range: overflow".into()));
            }
            Ok(Float4(out))
        }
        (Float8(a), Float8(b)) => float_op(op, *a, *b).map(Float8),
        (Numeric(a), Numeric(b)) => numeric_op(op, *a, *b).map(Numeric),
        // NUMERIC NaN and infinities with an exact number (a float operand makes the operation
        // a float one above).
        (NumericNaN | NumericInf { .. }, Int2(_) | Int4(_) | Int8(_) | Numeric(_) | NumericNaN | NumericInf { .. })
        | (Int2(_) | Int4(_) | Int8(_) | Numeric(_), NumericNaN | NumericInf { .. })
            if matches!(op, Add | Sub | Mul | Div | Mod | Pow) =>
        {
            numeric_special_op(op, l, r)
        }
        // Date and time arithmetic.
        (Timestamp(t), Interval(iv)) if matches!(op, Add | Sub) => {
            let iv = if op == Sub { negate(iv) } else { *iv };
            Ok(Timestamp(datetime::add_interval(*t, &iv)?))
        }
        (TimestampTz(t), Interval(iv)) if matches!(op, Add | Sub) => {
            let iv = if op == Sub { negate(iv) } else { *iv };
            Ok(TimestampTz(timezone::add_interval(*t, &iv, zone)?))
        }
        (Interval(iv), Timestamp(t)) if op == Add => Ok(Timestamp(datetime::add_interval(*t, iv)?)),
        (Interval(iv), TimestampTz(t)) if op == Add => Ok(TimestampTz(timezone::add_interval(*t, iv, zone)?)),
        (Date(d), Interval(iv)) if matches!(op, Add | Sub) => {
            let iv = if op == Sub { negate(iv) } else { *iv };
            Ok(Timestamp(datetime::add_interval(datetime::date_to_timestamp(*d), &iv)?))
        }
        // A time of day moves by the interval's time only, around the clock.
        (Time(t), Interval(iv)) | (Interval(iv), Time(t)) if op == Add || (op == Sub && matches!(l, Time(_))) => {
            let shift = if op == Sub { -iv.micros } else { iv.micros };
            Ok(Time((t + shift.rem_euclid(MICROS_PER_DAY)).rem_euclid(MICROS_PER_DAY)))
        }
        (TimeTz(t), Interval(iv)) | (Interval(iv), TimeTz(t)) if op == Add || (op == Sub && matches!(l, TimeTz(_))) => {
            Ok(TimeTz(t.shifted(if op == Sub { -iv.micros } else { iv.micros })))
        }
        (Date(d), Time(_) | TimeTz(_)) | (Time(_) | TimeTz(_), Date(d))
            if op == Add && !datetime::is_finite_date(*d) =>
        {
            let infinite = datetime::date_to_timestamp(*d);
            Ok(if matches!((l, r), (TimeTz(_), _) | (_, TimeTz(_))) {
                TimestampTz(infinite)
            } else {
                Timestamp(infinite)
            })
        }
        (Date(d), TimeTz(t)) | (TimeTz(t), Date(d)) if op == Add => {
            let start = datetime::date_to_timestamp(*d);
            Ok(TimestampTz(start.checked_add(t.utc_micros()).ok_or_else(|| overflow("timestamp"))?))
        }
        (Time(a), Time(b)) if op == Sub => {
            Ok(Interval(crate::types::value::Interval { months: 0, days: 0, micros: a - b }))
        }
        (Date(d), Time(t)) | (Time(t), Date(d)) if op == Add => {
            let start = datetime::date_to_timestamp(*d);
            Ok(Timestamp(start.checked_add(*t).ok_or_else(|| overflow("timestamp"))?))
        }
        (Date(d), Int4(_)) | (Int4(_), Date(d)) if !datetime::is_finite_date(*d) && matches!(op, Add | Sub) => {
            Ok(Date(*d))
        }
        (Date(d), Int4(n)) if matches!(op, Add | Sub) => {
            let n = if op == Sub { -*n } else { *n };
            d.checked_add(n).map(Date).ok_or_else(|| Error::DatetimeOutOfRange("date out of range".into()))
        }
        (Int4(n), Date(d)) if op == Add => {
            d.checked_add(*n).map(Date).ok_or_else(|| Error::DatetimeOutOfRange("date out of range".into()))
        }
        (Date(a), Date(b)) if op == Sub => {
            if !datetime::is_finite_date(*a) || !datetime::is_finite_date(*b) {
                return Err(Error::DatetimeOutOfRange("cannot subtract infinite dates".into()));
            }
            Ok(Int4(a - b))
        }
        (Timestamp(a), Timestamp(b)) | (TimestampTz(a), TimestampTz(b)) if op == Sub => {
            if !datetime::is_finite_timestamp(*a) || !datetime::is_finite_timestamp(*b) {
                return Err(Error::DatetimeOutOfRange("cannot subtract infinite timestamps".into()));
            }
            let diff = a.checked_sub(*b).ok_or_else(|| overflow("interval"))?;
            Ok(Interval(justify_hours(diff)))
        }
        (Interval(a), Interval(b)) if matches!(op, Add | Sub) => {
            let b = if op == Sub { negate(b) } else { *b };
            Ok(Interval(interval::add(a, &b)?))
        }
        (Interval(iv), n) | (n, Interval(iv)) if op == Mul && n.as_f64().is_some() => {
            Ok(Interval(interval::scale(iv, n.as_f64().unwrap_or(1.0), false)?))
        }
        (Interval(iv), n) if op == Div && n.as_f64().is_some() => {
            Ok(Interval(interval::scale(iv, n.as_f64().unwrap_or(1.0), true)?))
        }
        _ => Err(Error::UndefinedFunction(format!(
            "operator does not exist: {} {} {}",
            l.data_type().map(|t| t.to_string()).unwrap_or_default(),
            op_symbol(op),
            r.data_type().map(|t| t.to_string()).unwrap_or_default()
        ))),
    }
}

pub fn op_symbol(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
        BinaryOp::Mod => "%",
        BinaryOp::Pow => "^",
        BinaryOp::Concat => "||",
        BinaryOp::Eq => "=",
        BinaryOp::NotEq => "<>",
        BinaryOp::Lt => "<",
        BinaryOp::LtEq => "<=",
        BinaryOp::Gt => ">",
        BinaryOp::GtEq => ">=",
        BinaryOp::And => "AND",
        BinaryOp::Or => "OR",
        BinaryOp::JsonGet => "->",
        BinaryOp::JsonGetText => "->>",
        BinaryOp::RegexMatch { .. } => "~",
    }
}

fn negate(iv: &Interval) -> Interval {
    Interval { months: -iv.months, days: -iv.days, micros: -iv.micros }
}

/// PostgreSQL's timestamp difference: whole days go to the days field.
fn justify_hours(micros: i64) -> Interval {
    Interval { months: 0, days: (micros / MICROS_PER_DAY) as i32, micros: micros % MICROS_PER_DAY }
}

fn float_op(op: BinaryOp, a: f64, b: f64) -> Result<f64> {
    let out = match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => {
            if b == 0.0 {
                return Err(Error::DivisionByZero);
            }
            a / b
        }
        BinaryOp::Mod => {
            if b == 0.0 {
                return Err(Error::DivisionByZero);
            }
            a % b
        }
        BinaryOp::Pow => {
            if a == 0.0 && b < 0.0 {
                return Err(Error::DataException("2201F", "zero raised to a negative power is undefined".into()));
            }
            if a < 0.0 && b.is_finite() && b.fract() != 0.0 {
                return Err(Error::DataException(
                    "2201F",
                    "a negative number raised to a non-integer power yields a complex result".into(),
                ));
            }
            a.powf(b)
        }
        _ => return Err(Error::Internal(format!("{op:?} is not arithmetic"))),
    };
    if out.is_infinite() && a.is_finite() && b.is_finite() {
        return Err(Error::NumericOutOfRange("value out of range: overflow".into()));
    }
    Ok(out)
}

/// NUMERIC arithmetic where either operand is NaN or an infinity, as PostgreSQL 15 defines
/// it: NaN absorbs everything but `1 ^ NaN` and `NaN ^ 0` (both 1); an infinity behaves as
/// IEEE floats do (`Infinity - Infinity` and `Infinity * 0` are NaN, `x / Infinity` is 0,
/// `x % Infinity` is x), except that dividing by zero and the powers a finite NUMERIC refuses
/// are errors.
pub fn numeric_special_op(op: BinaryOp, l: &Value, r: &Value) -> Result<Value> {
    if op == BinaryOp::Pow {
        if let Some(special) = numeric_special_power(l, r)? {
            return Ok(special);
        }
    }
    let (a, b) = (l.as_f64().unwrap_or(f64::NAN), r.as_f64().unwrap_or(f64::NAN));
    if a.is_nan() || b.is_nan() {
        return Ok(Value::NumericNaN);
    }
    let out = match op {
        BinaryOp::Div | BinaryOp::Mod if b == 0.0 => return Err(Error::DivisionByZero),
        // A finite dividend keeps its exact value.
        BinaryOp::Mod if a.is_finite() => return Ok(l.clone()),
        _ => float_op(op, a, b)?,
    };
    Ok(if out.is_nan() {
        Value::NumericNaN
    } else if out.is_infinite() {
        Value::NumericInf { negative: out < 0.0 }
    } else {
        // 0 (x / Infinity, a fraction to an infinite power; never a float's -0) or 1 (-1 to an
        // infinite power).
        Value::Numeric(if out == 0.0 { Decimal::ZERO } else { Decimal::from_f64_retain(out).unwrap_or_default() })
    })
}

/// The powers among NUMERIC's specials that turn on an exact value, decided on the decimal
/// rather than a float (which would take 1.00000000000000000001 for 1): `1 ^ y` and `x ^ 0`
/// are 1, and a finite base to an infinite power is 0, 1 or Infinity by its magnitude.
fn numeric_special_power(l: &Value, r: &Value) -> Result<Option<Value>> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let exact = |v: &Value| match v {
        Value::Numeric(d) => Some(*d),
        other => other.as_i64().map(Decimal::from),
    };
    if exact(l) == Some(Decimal::ONE) || exact(r).is_some_and(|d| d.is_zero()) {
        return Ok(Some(Value::Numeric(Decimal::ONE)));
    }
    let (Some(base), Value::NumericInf { negative }) = (exact(l), r) else { return Ok(None) };
    Ok(Some(match (negative, base.abs().cmp(&Decimal::ONE)) {
        (_, Equal) => Value::Numeric(Decimal::ONE),
        (false, Less) | (true, Greater) => Value::Numeric(Decimal::ZERO),
        (false, Greater) => Value::NumericInf { negative: false },
        (true, Less) if base.is_zero() => {
            return Err(Error::DataException("2201F", "zero raised to a negative power is undefined".into()))
        }
        (true, Less) => Value::NumericInf { negative: false },
    }))
}

fn numeric_op(op: BinaryOp, a: Decimal, b: Decimal) -> Result<Decimal> {
    let out = match op {
        BinaryOp::Add => a.checked_add(b),
        BinaryOp::Sub => a.checked_sub(b),
        BinaryOp::Mul => a.checked_mul(b),
        BinaryOp::Div => return numeric_div(a, b),
        BinaryOp::Mod => {
            if b.is_zero() {
                return Err(Error::DivisionByZero);
            }
            a.checked_rem(b)
        }
        BinaryOp::Pow => return numeric_pow(a, b),
        _ => return Err(Error::Internal(format!("{op:?} is not arithmetic"))),
    };
    out.ok_or_else(|| Error::NumericOutOfRange("value overflows numeric format".into()))
}

/// NUMERIC power, computed in decimal and shown with 16 decimals as PostgreSQL does for
/// results of moderate size.
pub fn numeric_pow(a: Decimal, b: Decimal) -> Result<Decimal> {
    use rust_decimal::MathematicalOps;
    if a.is_zero() && b.is_sign_negative() {
        return Err(Error::DataException("2201F", "zero raised to a negative power is undefined".into()));
    }
    if a.is_sign_negative() && !b.fract().is_zero() {
        return Err(Error::DataException(
            "2201F",
            "a negative number raised to a non-integer power yields a complex result".into(),
        ));
    }
    let overflow = || Error::NumericOutOfRange("value overflows numeric format".into());
    let result = if b.fract().is_zero() {
        let exp = b.to_i64().ok_or_else(overflow)?;
        a.checked_powi(exp)
    } else {
        a.checked_powd(b)
    }
    .ok_or_else(overflow)?;
    let mut rounded = result.round_dp_with_strategy(16, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(16);
    Ok(if rounded.scale() == 16 { rounded } else { result })
}

/// Weight and first digit of a decimal in PostgreSQL's base-10000 representation.
fn nbase_weight(d: &Decimal) -> (i32, u32) {
    if d.is_zero() {
        return (0, 0);
    }
    let digits = d.mantissa().unsigned_abs().to_string();
    let exp10 = digits.len() as i32 - 1 - d.scale() as i32;
    let weight = exp10.div_euclid(4);
    let first_len = (exp10 - weight * 4 + 1) as usize;
    let mut first: String = digits.chars().take(first_len).collect();
    while first.len() < first_len {
        first.push('0');
    }
    (weight, first.parse().unwrap_or(0))
}

/// NUMERIC division with PostgreSQL's result scale: at least 16 significant digits and no
/// fewer decimals than either input.
pub fn numeric_div(a: Decimal, b: Decimal) -> Result<Decimal> {
    if b.is_zero() {
        return Err(Error::DivisionByZero);
    }
    let (w1, f1) = nbase_weight(&a);
    let (w2, f2) = nbase_weight(&b);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let rscale = (16 - qweight * 4).max(a.scale() as i32).max(b.scale() as i32).clamp(0, 28) as u32;
    let q = a.checked_div(b).ok_or_else(|| Error::NumericOutOfRange("value overflows numeric format".into()))?;
    let mut rounded = q.round_dp_with_strategy(rscale, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(rscale);
    // rescale cannot exceed the 28-digit mantissa; keep what fits.
    if rounded.is_zero() && !q.is_zero() {
        return Ok(q);
    }
    Ok(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_overflow_and_division() {
        assert_eq!(arithmetic(BinaryOp::Add, &Value::Int4(i32::MAX), &Value::Int4(1)).unwrap_err().sqlstate(), "22003");
        assert_eq!(arithmetic(BinaryOp::Div, &Value::Int4(7), &Value::Int4(-2)).unwrap(), Value::Int4(-3));
        assert_eq!(arithmetic(BinaryOp::Mod, &Value::Int4(-7), &Value::Int4(2)).unwrap(), Value::Int4(-1));
        assert_eq!(arithmetic(BinaryOp::Div, &Value::Int8(1), &Value::Int8(0)).unwrap_err().sqlstate(), "22012");
        assert_eq!(
            arithmetic(BinaryOp::Div, &Value::Int4(i32::MIN), &Value::Int4(-1)).unwrap_err().sqlstate(),
            "22003"
        );
    }

    #[test]
    fn numeric_division_scale_matches_postgres() {
        let q = numeric_div(Decimal::from(3), Decimal::from(2)).unwrap();
        assert_eq!(q.to_string(), "1.5000000000000000");
        let q = numeric_div(Decimal::from(30), Decimal::from(2)).unwrap();
        assert_eq!(q.to_string(), "15.0000000000000000");
        let q = numeric_div(Decimal::from(1), Decimal::from(3)).unwrap();
        assert_eq!(q.to_string(), "0.33333333333333333333");
        let q = numeric_div(Decimal::from(10), Decimal::from(4)).unwrap();
        assert_eq!(q.to_string(), "2.5000000000000000");
    }
}
