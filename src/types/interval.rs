//! Interval arithmetic as PostgreSQL 15 does it: sums, scaling by a number (fractions of months
//! and days carried down to smaller fields) and the `justify_*` normalizations.

use super::datetime::MICROS_PER_DAY;
use super::value::Interval;
use crate::error::{Error, Result};

const DAYS_PER_MONTH: i32 = 30;
const SECS_PER_DAY: f64 = 86_400.0;

fn out_of_range() -> Error {
    Error::DatetimeOutOfRange("interval out of range".into())
}

/// Rounds to microseconds, as PostgreSQL's `TSROUND`.
fn round_micros(x: f64) -> f64 {
    (x * 1e6).round_ties_even() / 1e6
}

/// A field of the result of a scaling, truncated toward zero; out of range for `i32`, an error.
fn whole(x: f64) -> Result<i32> {
    if x.is_nan() || x > i32::MAX as f64 || x < i32::MIN as f64 {
        return Err(out_of_range());
    }
    Ok(x as i32)
}

/// `a + b`, field by field.
pub fn add(a: &Interval, b: &Interval) -> Result<Interval> {
    Ok(Interval {
        months: a.months.checked_add(b.months).ok_or_else(out_of_range)?,
        days: a.days.checked_add(b.days).ok_or_else(out_of_range)?,
        micros: a.micros.checked_add(b.micros).ok_or_else(out_of_range)?,
    })
}

/// `iv * factor`, or `iv / factor` when `divide`: each field scaled and truncated, the
/// fraction of the months carried into days (30 per month) and the fraction of the days into
/// time (PostgreSQL's `interval_mul` and `interval_div`, whose rounding this follows).
pub fn scale(iv: &Interval, factor: f64, divide: bool) -> Result<Interval> {
    if divide && factor == 0.0 {
        return Err(Error::DivisionByZero);
    }
    let apply = |x: f64| if divide { x / factor } else { x * factor };
    let months = whole(apply(iv.months as f64))?;
    let mut days = whole(apply(iv.days as f64))?;
    let month_remainder_days = round_micros((apply(iv.months as f64) - months as f64) * DAYS_PER_MONTH as f64);
    let mut sec_remainder = round_micros(
        (apply(iv.days as f64) - days as f64 + month_remainder_days - month_remainder_days.trunc()) * SECS_PER_DAY,
    );
    // Rounding may reach 24 hours, and the carried fractions may pass them.
    if sec_remainder.abs() >= SECS_PER_DAY {
        let extra = (sec_remainder / SECS_PER_DAY) as i32;
        days = days.checked_add(extra).ok_or_else(out_of_range)?;
        sec_remainder -= extra as f64 * SECS_PER_DAY;
    }
    days = days.checked_add(month_remainder_days as i32).ok_or_else(out_of_range)?;
    let micros = (apply(iv.micros as f64) + sec_remainder * 1e6).round_ties_even();
    if micros.is_nan() || micros >= i64::MAX as f64 || micros < i64::MIN as f64 {
        return Err(out_of_range());
    }
    Ok(Interval { months, days, micros: micros as i64 })
}

/// A larger unit and the remainder below it (less than one `unit`) given one sign: one unit
/// is borrowed when they disagree.
fn agree(high: i32, low: i64, unit: i64) -> (i32, i64) {
    if high > 0 && low < 0 {
        (high - 1, low + unit)
    } else if high < 0 && low > 0 {
        (high + 1, low - unit)
    } else {
        (high, low)
    }
}

/// `justify_hours`: whole days of the time moved to the days, the signs of the two made to agree.
pub fn justify_hours(iv: &Interval) -> Result<Interval> {
    let days = iv.days.checked_add((iv.micros / MICROS_PER_DAY) as i32).ok_or_else(out_of_range)?;
    let (days, micros) = agree(days, iv.micros % MICROS_PER_DAY, MICROS_PER_DAY);
    Ok(Interval { months: iv.months, days, micros })
}

/// `justify_days`: whole 30-day months of the days moved to the months, signs made to agree.
pub fn justify_days(iv: &Interval) -> Result<Interval> {
    let months = iv.months.checked_add(iv.days / DAYS_PER_MONTH).ok_or_else(out_of_range)?;
    let (months, days) = agree(months, (iv.days % DAYS_PER_MONTH) as i64, DAYS_PER_MONTH as i64);
    Ok(Interval { months, days: days as i32, micros: iv.micros })
}

/// `justify_interval`: hours into days and days into months, with every field of one sign.
pub fn justify_interval(iv: &Interval) -> Result<Interval> {
    let Interval { mut months, mut days, mut micros } = *iv;
    // Days first when they and the time have one sign, which may prevent an overflow.
    if (days > 0 && micros > 0) || (days < 0 && micros < 0) {
        months = months.checked_add(days / DAYS_PER_MONTH).ok_or_else(out_of_range)?;
        days %= DAYS_PER_MONTH;
    }
    days = days.checked_add((micros / MICROS_PER_DAY) as i32).ok_or_else(out_of_range)?;
    micros %= MICROS_PER_DAY;
    months = months.checked_add(days / DAYS_PER_MONTH).ok_or_else(out_of_range)?;
    days %= DAYS_PER_MONTH;
    if months > 0 && (days < 0 || (days == 0 && micros < 0)) {
        days += DAYS_PER_MONTH;
        months -= 1;
    } else if months < 0 && (days > 0 || (days == 0 && micros > 0)) {
        days -= DAYS_PER_MONTH;
        months += 1;
    }
    let (days, micros) = agree(days, micros, MICROS_PER_DAY);
    Ok(Interval { months, days, micros })
}

/// `date_trunc(unit, interval)`: the fields below `unit` zeroed (years, months, days, hours,
/// minutes, seconds, each truncated toward zero).
pub fn truncate(iv: &Interval, unit: &str) -> Result<Interval> {
    const HOUR: i64 = 3_600_000_000;
    const MINUTE: i64 = 60_000_000;
    const SECOND: i64 = 1_000_000;
    let unit = super::datetime::canonical_unit(unit);
    let years = |step: i32| Interval { months: iv.months / 12 / step * step * 12, days: 0, micros: 0 };
    let micros = |step: i64| Interval { months: iv.months, days: iv.days, micros: iv.micros / step * step };
    Ok(match unit.as_str() {
        "millennium" | "millennia" => years(1000),
        "century" | "centuries" => years(100),
        "decade" | "decades" => years(10),
        "year" | "years" => years(1),
        "quarter" => Interval { months: iv.months / 12 * 12 + iv.months % 12 / 3 * 3, days: 0, micros: 0 },
        "month" | "months" => Interval { months: iv.months, days: 0, micros: 0 },
        "day" | "days" => Interval { months: iv.months, days: iv.days, micros: 0 },
        "hour" | "hours" => micros(HOUR),
        "minute" | "minutes" => micros(MINUTE),
        "second" | "seconds" => micros(SECOND),
        "milliseconds" | "millisecond" => micros(1000),
        "microseconds" | "microsecond" => *iv,
        "week" | "weeks" => {
            return Err(Error::FeatureNotSupported(
                "unit \"week\" not supported for type interval (months usually have fractional weeks)".into(),
            ))
        }
        _ => return Err(Error::InvalidParameter(format!("unit \"{unit}\" not recognized for type interval"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(months: i32, days: i32, micros: i64) -> Interval {
        Interval { months, days, micros }
    }

    #[test]
    fn scaling_carries_fractions_down_as_postgresql_does() {
        // Answers from PostgreSQL 15.
        let hour = 3_600_000_000;
        assert_eq!(scale(&iv(1, 10, 0), 1.3, false).unwrap(), iv(1, 22, 0));
        assert_eq!(scale(&iv(2, 3, 3 * hour + 1_500_000), 3.0, true).unwrap(), iv(0, 21, hour + 500_000));
        assert_eq!(scale(&iv(1, 0, 0), 0.5, false).unwrap(), iv(0, 15, 0));
        assert_eq!(scale(&iv(0, 1, 0), 0.5, false).unwrap(), iv(0, 0, 12 * hour));
        assert!(scale(&iv(1, 0, 0), 0.0, true).is_err());
        assert!(scale(&iv(i32::MAX, 0, 0), 2.0, false).is_err());
    }

    #[test]
    fn justify_moves_whole_units_up_and_makes_signs_agree() {
        let hour = 3_600_000_000;
        assert_eq!(justify_hours(&iv(0, 0, 27 * hour)).unwrap(), iv(0, 1, 3 * hour));
        assert_eq!(justify_hours(&iv(0, 1, -hour)).unwrap(), iv(0, 0, 23 * hour));
        assert_eq!(justify_days(&iv(0, 35, 0)).unwrap(), iv(1, 5, 0));
        assert_eq!(justify_days(&iv(1, -1, 0)).unwrap(), iv(0, 29, 0));
        assert_eq!(justify_interval(&iv(1, -1, hour)).unwrap(), iv(0, 29, hour));
        assert_eq!(justify_interval(&iv(0, 0, -(31 * 24 + 1) * hour)).unwrap(), iv(-1, -1, -hour));
    }
}
