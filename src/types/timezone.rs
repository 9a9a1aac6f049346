//! Time zones for `AT TIME ZONE`, `timezone()` and `date_trunc(…, zone)`: IANA names from the
//! compiled-in tz database (case-insensitive, as PostgreSQL matches them), the UTC aliases,
//! and POSIX-style offsets, where `'+02'` and `'UTC+2'` mean two hours *west* of Greenwich as
//! in PostgreSQL (an `INTERVAL` zone counts east, ISO style).

use super::datetime::{is_finite_timestamp, to_naive, MICROS_PER_SECOND};
use crate::error::{Error, Result};
use chrono::{Duration, LocalResult, Offset, TimeZone};

/// A resolved time zone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Zone {
    /// A fixed offset, seconds east of UTC.
    Fixed(i64),
    Named(chrono_tz::Tz),
}

/// True for the names of UTC itself.
pub fn is_utc(zone: &str) -> bool {
    matches!(
        zone.trim().to_ascii_lowercase().as_str(),
        "utc" | "etc/utc" | "gmt" | "etc/gmt" | "z" | "zulu" | "universal" | "+00" | "+00:00" | "0"
    )
}

/// Resolves a zone name (22023 for a name PostgreSQL would not recognize either).
pub fn parse(name: &str) -> Result<Zone> {
    let unknown = || Error::InvalidParameter(format!("time zone \"{name}\" not recognized"));
    let trimmed = name.trim();
    if is_utc(trimmed) {
        return Ok(Zone::Fixed(0));
    }
    if let Ok(tz) = trimmed.parse::<chrono_tz::Tz>() {
        return Ok(Zone::Named(tz));
    }
    if let Some(tz) = chrono_tz::TZ_VARIANTS.iter().find(|tz| tz.name().eq_ignore_ascii_case(trimmed)) {
        return Ok(Zone::Named(*tz));
    }
    posix_offset(trimmed).map(Zone::Fixed).ok_or_else(unknown)
}

/// `[UTC|GMT][+|-]hh[:mm]`: seconds *east*, from a POSIX offset that counts west.
fn posix_offset(text: &str) -> Option<i64> {
    let upper = text.to_ascii_uppercase();
    let body = upper.strip_prefix("UTC").or_else(|| upper.strip_prefix("GMT")).unwrap_or(&upper);
    let (west, digits) = match body.as_bytes().first()? {
        b'+' => (1, &body[1..]),
        b'-' => (-1, &body[1..]),
        b'0'..=b'9' => (1, body),
        _ => return None,
    };
    let (h, m) = digits.split_once(':').unwrap_or((digits, "0"));
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=15).contains(&h) || !(0..60).contains(&m) || digits.is_empty() {
        return None;
    }
    Some(-west * (h * 3600 + m * 60))
}

impl Zone {
    /// The zone's offset from UTC at a UTC instant, in seconds east.
    pub fn offset_at(&self, utc_micros: i64) -> i64 {
        match self {
            Zone::Fixed(secs) => *secs,
            Zone::Named(tz) => tz.offset_from_utc_datetime(&to_naive(utc_micros)).fix().local_minus_utc() as i64,
        }
    }

    /// The wall-clock time in this zone at a UTC instant (`timestamptz AT TIME ZONE z`).
    pub fn to_local(&self, utc_micros: i64) -> Result<i64> {
        if !is_finite_timestamp(utc_micros) {
            return Ok(utc_micros);
        }
        utc_micros.checked_add(self.offset_at(utc_micros) * MICROS_PER_SECOND).ok_or_else(out_of_range)
    }

    /// The UTC instant of a wall-clock time in this zone (`timestamp AT TIME ZONE z`). A time
    /// that occurs twice (clocks set back) is the later instant, standard time; a time that
    /// does not occur (clocks set forward) is read with the offset in force before the change:
    /// PostgreSQL's choices.
    pub fn to_utc(&self, local_micros: i64) -> Result<i64> {
        if !is_finite_timestamp(local_micros) {
            return Ok(local_micros);
        }
        let offset = match self {
            Zone::Fixed(secs) => *secs,
            Zone::Named(tz) => {
                let local = to_naive(local_micros);
                match tz.from_local_datetime(&local) {
                    LocalResult::Single(dt) => dt.offset().fix().local_minus_utc() as i64,
                    LocalResult::Ambiguous(a, b) => {
                        let (a, b) = (a.offset().fix().local_minus_utc(), b.offset().fix().local_minus_utc());
                        a.min(b) as i64
                    }
                    LocalResult::None => {
                        let before = local - Duration::days(1);
                        tz.offset_from_utc_datetime(&before).fix().local_minus_utc() as i64
                    }
                }
            }
        };
        local_micros.checked_sub(offset * MICROS_PER_SECOND).ok_or_else(out_of_range)
    }
}

fn out_of_range() -> Error {
    Error::DatetimeOutOfRange("timestamp out of range".into())
}

/// `date_trunc(unit, ts, zone)`: truncation on the zone's calendar, back to UTC.
pub fn truncate_in(zone: &Zone, utc_micros: i64, unit: &str) -> Result<i64> {
    let local = zone.to_local(utc_micros)?;
    let truncated = super::datetime::truncate(local, unit)?;
    zone.to_utc(truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::datetime::parse_timestamp;

    fn ts(text: &str) -> i64 {
        parse_timestamp(text, true).unwrap()
    }

    #[test]
    fn names_offsets_and_daylight_saving() {
        let berlin = parse("europe/BERLIN").unwrap();
        assert_eq!(berlin.offset_at(ts("2024-07-01 12:00Z")), 7200);
        assert_eq!(berlin.offset_at(ts("2024-01-01 12:00Z")), 3600);
        // POSIX: '+02' is two hours west.
        assert_eq!(parse("+02").unwrap(), Zone::Fixed(-7200));
        assert_eq!(parse("UTC-05:30").unwrap(), Zone::Fixed(5 * 3600 + 1800));
        assert!(parse("Mars/Olympus").is_err());
        assert!(parse("+16").is_err());
        let ny = parse("America/New_York").unwrap();
        // 01:30 happens twice on 2024-11-03: the later (EST) instant.
        assert_eq!(ny.to_utc(parse_timestamp("2024-11-03 01:30", false).unwrap()).unwrap(), ts("2024-11-03 06:30Z"));
        // 02:30 never happens on 2024-03-10: read with the offset before the change (EST).
        assert_eq!(ny.to_utc(parse_timestamp("2024-03-10 02:30", false).unwrap()).unwrap(), ts("2024-03-10 07:30Z"));
    }
}
