//! `to_char(interval, format)` (and `to_char(time, …)`, which PostgreSQL casts to an
//! interval): the template patterns of `to_char` over an interval's signed fields, printed as
//! PostgreSQL 15 prints them. Years and months come from the months, days stand alone, hours
//! may pass 24; the day of the year is the span in 30-day months plus days, and the ISO week,
//! ISO year and Julian day fields are PostgreSQL's calendar functions applied to those fields
//! as if they were a date. Patterns tied to calendar dates (month and day names, `D`, `ID`,
//! eras, time zones) are refused with 22007, as PostgreSQL refuses them.

use super::formatting::{meridiem, padded, render, Field};
use crate::error::{Error, Result};
use crate::types::value::Interval;

/// An interval's fields, each with the interval's sign (PostgreSQL's `interval2itm`).
struct Fields {
    year: i64,
    mon: i64,
    mday: i64,
    hour: i64,
    min: i64,
    sec: i64,
    usec: i64,
    /// The span in days, months counted as 30.
    yday: i64,
}

fn fields(interval: &Interval) -> Fields {
    let months = i64::from(interval.months);
    let (year, mon, mday) = (months / 12, months % 12, i64::from(interval.days));
    let mut rest = interval.micros;
    let hour = rest / 3_600_000_000;
    rest -= hour * 3_600_000_000;
    let min = rest / 60_000_000;
    rest -= min * 60_000_000;
    let sec = rest / 1_000_000;
    let usec = rest - sec * 1_000_000;
    Fields { year, mon, mday, hour, min, sec, usec, yday: (year * 12 + mon) * 30 + mday }
}

/// PostgreSQL's `date2j`: the Julian day of a (proleptic Gregorian) date, for any field values.
fn date2j(year: i64, month: i64, day: i64) -> i64 {
    let (year, month) = if month > 2 { (year + 4800, month + 1) } else { (year + 4799, month + 13) };
    let century = year / 100;
    year * 365 - 32167 + year / 4 - century + century / 4 + 7834 * month / 256 + day
}

/// PostgreSQL's `j2day`: the day of the week of a Julian day, 0 for Sunday.
fn j2day(julian: i64) -> i64 {
    (julian + 1).rem_euclid(7)
}

/// The Julian day of the Monday that starts ISO week 1 of `year`.
fn iso_week_one(year: i64) -> i64 {
    let day4 = date2j(year, 1, 4);
    day4 - j2day(day4 - 1)
}

/// PostgreSQL's `date2isoyear` and `date2isoweek` together: the ISO year and week.
fn iso_year_week(year: i64, mon: i64, mday: i64) -> (i64, i64) {
    let day = date2j(year, mon, mday);
    let (mut year, mut start) = (year, iso_week_one(year));
    if day < start {
        year -= 1;
        start = iso_week_one(year);
    }
    let mut week = (day - start) / 7 + 1;
    if week >= 52 {
        let next = iso_week_one(year + 1);
        if day >= next {
            year += 1;
            week = (day - next) / 7 + 1;
        }
    }
    (year, week)
}

/// The template's fields filled in from `interval`.
pub fn format_interval(interval: &Interval, fmt: &str) -> Result<String> {
    let f = fields(interval);
    render(fmt, |field, fill, ordinal| {
        let number = |n: i64, width: usize| padded(n, width, fill, ordinal);
        // Most fields get one more character when negative (`(x >= 0) ? w : w + 1`).
        let signed = |sign_of: i64, width: usize| if sign_of >= 0 { width } else { width + 1 };
        let text = match field {
            Field::Hh24 => number(f.hour, signed(f.hour, 2)),
            Field::Hh12 => number(if f.hour % 12 == 0 { 12 } else { f.hour % 12 }, signed(f.hour, 2)),
            Field::Mi => number(f.min, signed(f.min, 2)),
            Field::Ss => number(f.sec, signed(f.sec, 2)),
            Field::Ms => number(f.usec / 1000, 3),
            Field::Us => number(f.usec, 6),
            Field::Ff(n) => number(f.usec / 10i64.pow(6 - u32::from(n)), usize::from(n)),
            Field::Ssss => number(f.hour * 3600 + f.min * 60 + f.sec, 0),
            Field::Meridiem { dots, upper } => meridiem(f.hour % 24 >= 12, dots, upper),
            Field::YearComma => {
                let thousands = f.year / 1000;
                format!("{thousands},{:03}", f.year - thousands * 1000)
            }
            // The width follows the sign of the years, also for ISO years; Y and I are `%1d`.
            Field::Year(4) => number(f.year, signed(f.year, 4)),
            Field::Year(1) => number(f.year % 10, 1),
            Field::Year(n) => number(f.year % 10i64.pow(u32::from(n)), signed(f.year, usize::from(n))),
            Field::IsoYear(n) => {
                let iso = iso_year_week(f.year, f.mon, f.mday).0;
                match n {
                    4 => number(iso, signed(f.year, 4)),
                    1 => number(iso % 10, 1),
                    n => number(iso % 10i64.pow(u32::from(n)), signed(f.year, usize::from(n))),
                }
            }
            Field::Mm => number(f.mon, signed(f.mon, 2)),
            Field::Ddd => number(f.yday, 3),
            Field::Iddd => {
                let iso = iso_year_week(f.year, f.mon, f.mday).0;
                number(date2j(f.year, f.mon, f.mday) - iso_week_one(iso) + 1, 3)
            }
            Field::Dd => number(f.mday, 2),
            Field::W => number((f.mday - 1) / 7 + 1, 0),
            Field::Ww => number((f.yday - 1) / 7 + 1, 2),
            Field::Iw => number(iso_year_week(f.year, f.mon, f.mday).1, 2),
            Field::Cc => {
                let century = f.year / 100;
                number(century, if (-99..=99).contains(&century) { signed(century, 2) } else { 0 })
            }
            Field::J => number(date2j(f.year, f.mon, f.mday), 0),
            Field::Q if f.mon == 0 => String::new(),
            Field::Q => number((f.mon - 1) / 3 + 1, 0),
            Field::Roman { .. } if f.mon == 0 && f.year == 0 => String::new(),
            Field::Roman { upper } => {
                // A whole number of years shows as XII (I when negative); negative months
                // count back from December.
                let month = match f.mon {
                    0 if f.year >= 0 => 12,
                    0 => 1,
                    m if m < 0 => 13 + m,
                    m => m,
                };
                const ROMAN: [&str; 12] = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"];
                let r = ROMAN[(month - 1) as usize];
                let r = if upper { r.to_string() } else { r.to_lowercase() };
                if fill {
                    r
                } else {
                    format!("{r:<4}")
                }
            }
            Field::MonthName(_)
            | Field::MonthAbbrev(_)
            | Field::DayName(_)
            | Field::DayAbbrev(_)
            | Field::D
            | Field::Id
            | Field::Era { .. }
            | Field::Tz { .. }
            | Field::Tzh
            | Field::Tzm
            | Field::Of => {
                return Err(Error::DataException("22007", "invalid format specification for an interval value".into()))
            }
        };
        Ok(text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn julian_days_and_iso_weeks_follow_postgresql() {
        // date2j(2000, 1, 1) is PostgreSQL's POSTGRES_EPOCH_JDATE.
        assert_eq!(date2j(2000, 1, 1), 2_451_545);
        assert_eq!(date2j(0, 0, 0), 1_721_028);
        assert_eq!(iso_year_week(2021, 1, 1), (2020, 53));
        assert_eq!(iso_year_week(2024, 12, 30), (2025, 1));
        assert_eq!(iso_year_week(0, 0, 0), (-1, 48));
    }
}
