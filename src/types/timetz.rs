//! `time with time zone` (`timetz`): a time of day and the UTC offset it was written with.
//!
//! As in PostgreSQL, two values are equal only when both the instant (the time less its
//! offset) and the offset are; values order by instant, then by offset with the zones further
//! west last. The time of day wraps around midnight under interval arithmetic.

use super::datetime::{self, MICROS_PER_DAY, MICROS_PER_SECOND};
use super::timezone::Zone;
use crate::error::{Error, Result};
use std::cmp::Ordering;

/// The largest offset PostgreSQL accepts, exclusive: 16 hours.
const MAX_OFFSET_SECS: i32 = 16 * 3600;

/// A `timetz`: microseconds since local midnight (0 to 24:00:00 inclusive) and the offset
/// from UTC in seconds east (`+02` is 7200).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeTz {
    pub micros: i64,
    pub offset: i32,
}

impl TimeTz {
    /// The instant as microseconds past UTC midnight (may fall outside one day).
    pub fn utc_micros(&self) -> i64 {
        self.micros - self.offset as i64 * MICROS_PER_SECOND
    }

    /// PostgreSQL's order: by instant, then by offset, further west greater.
    pub fn cmp_pg(&self, other: &TimeTz) -> Ordering {
        self.utc_micros().cmp(&other.utc_micros()).then(other.offset.cmp(&self.offset))
    }

    /// The time of day moved by `micros`, around the clock, in the same zone.
    pub fn shifted(&self, micros: i64) -> TimeTz {
        TimeTz { micros: (self.micros + micros.rem_euclid(MICROS_PER_DAY)).rem_euclid(MICROS_PER_DAY), ..*self }
    }

    /// The same instant seen from another offset.
    pub fn at_offset(&self, offset: i32) -> TimeTz {
        let local = (self.utc_micros() + offset as i64 * MICROS_PER_SECOND).rem_euclid(MICROS_PER_DAY);
        TimeTz { micros: local, offset }
    }
}

/// Text output: the time as `time` prints it, then the offset as `+HH[:MM[:SS]]`.
pub fn format(t: &TimeTz) -> String {
    datetime::format_time(t.micros) + &super::timezone::format_offset(t.offset as i64)
}

/// Parses a `timetz`: a time as `time` reads it, then an optional offset `±HH[:MM[:SS]]`,
/// `±HHMM`, `Z` or `UTC`; without one, UTC.
pub fn parse(text: &str) -> Result<TimeTz> {
    parse_in(text, &Zone::UTC)
}

/// [`parse`], a time without an offset taking the one `zone` has now (as PostgreSQL takes it).
pub fn parse_in(text: &str, zone: &Zone) -> Result<TimeTz> {
    let invalid =
        || Error::DataException("22007", format!("invalid input syntax for type time with time zone: \"{text}\""));
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let (clock, offset) = if let Some(clock) = lower.strip_suffix("utc").or_else(|| lower.strip_suffix('z')) {
        (clock.trim_end().to_string(), 0)
    } else {
        // The offset's sign comes after the clock's last digit or colon (a date in front has
        // hyphens of its own).
        let clock_start = lower.rfind([' ', 't']).map_or(0, |i| i + 1);
        match lower[clock_start..].rfind(['+', '-']).map(|i| i + clock_start) {
            Some(at) => {
                (lower[..at].trim_end().to_string(), datetime::parse_utc_offset(&lower[at..]).ok_or_else(invalid)?)
            }
            None => (lower.clone(), zone.offset_at(super::cast::now_micros()) as i32),
        }
    };
    if !(-MAX_OFFSET_SECS < offset && offset < MAX_OFFSET_SECS) {
        return Err(Error::DataException("22009", format!("time zone displacement out of range: \"{text}\"")));
    }
    let micros = datetime::parse_time(&clock).map_err(|e| match e {
        Error::DataException("22007", _) => invalid(),
        Error::DatetimeOutOfRange(_) => {
            Error::DatetimeOutOfRange(format!("date/time field value out of range: \"{text}\""))
        }
        other => other,
    })?;
    Ok(TimeTz { micros, offset })
}

/// `extract(field FROM timetz)` as a float: the time's fields, the zone's (`timezone` in
/// seconds east, `timezone_hour`, `timezone_minute`), and the epoch of its instant.
pub fn extract(t: &TimeTz, field: &str) -> Result<f64> {
    Ok(match datetime::canonical_unit(field).as_str() {
        "timezone" => t.offset as f64,
        "timezone_hour" => (t.offset / 3600) as f64,
        "timezone_minute" => (t.offset / 60 % 60) as f64,
        "epoch" => t.utc_micros() as f64 / 1e6,
        "hour" | "minute" | "second" | "milliseconds" | "microseconds" => datetime::extract_time(t.micros, field)?,
        _ => {
            return Err(Error::FeatureNotSupported(format!(
                "unit \"{field}\" not supported for type time with time zone"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(text: &str) -> TimeTz {
        parse(text).unwrap()
    }

    #[test]
    fn reads_and_prints_offsets_as_postgres() {
        assert_eq!(format(&tz("12:34:56+02")), "12:34:56+02");
        assert_eq!(format(&tz("12:34:56.789-05:30")), "12:34:56.789-05:30");
        assert_eq!(format(&tz("12:00+02:30:15")), "12:00:00+02:30:15");
        assert_eq!(format(&tz("12:00")), "12:00:00+00");
        assert_eq!(format(&tz("12:00z")), "12:00:00+00");
        assert_eq!(format(&tz("2024-01-02 03:04-0130")), "03:04:00-01:30");
        assert_eq!(format(&tz("24:00:00-14")), "24:00:00-14");
        assert!(matches!(parse("12:00+16"), Err(Error::DataException("22009", _))));
        assert!(matches!(parse("12:00+02:75"), Err(Error::DataException("22007", _))));
        assert!(matches!(parse("x"), Err(Error::DataException("22007", _))));
        assert!(matches!(parse("12:00+1\u{e9}1"), Err(Error::DataException("22007", _))));
        assert!(matches!(parse("25:00+00"), Err(Error::DatetimeOutOfRange(_))));
    }

    #[test]
    fn orders_by_instant_then_by_zone() {
        let mut values = [tz("09:00-01"), tz("12:00+02"), tz("10:00+00"), tz("11:00+01"), tz("09:59+00")];
        values.sort_by(TimeTz::cmp_pg);
        let shown: Vec<String> = values.iter().map(format).collect();
        assert_eq!(shown, ["09:59:00+00", "12:00:00+02", "11:00:00+01", "10:00:00+00", "09:00:00-01"]);
        assert_ne!(tz("12:00+02"), tz("10:00+00"));
    }

    #[test]
    fn moves_around_the_clock_and_between_zones() {
        assert_eq!(format(&tz("23:00-05").shifted(2 * 3600 * MICROS_PER_SECOND)), "01:00:00-05");
        assert_eq!(format(&tz("01:00+02").shifted(-2 * 3600 * MICROS_PER_SECOND)), "23:00:00+02");
        assert_eq!(format(&tz("12:00+02").at_offset(-5 * 3600)), "05:00:00-05");
        assert_eq!(format(&tz("12:00+02").at_offset(0)), "10:00:00+00");
    }
}
