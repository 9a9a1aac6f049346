//! Time zones: a session's (`SET TIME ZONE`, the `TimeZone` parameter), `AT TIME ZONE`,
//! `timezone()` and `date_trunc(…, zone)`. IANA names from the compiled-in tz database
//! (case-insensitive, as PostgreSQL matches them), the UTC aliases, and POSIX-style offsets,
//! where `'+02'` and `'UTC+2'` mean two hours *west* of Greenwich as in PostgreSQL (an
//! `INTERVAL` zone counts east, ISO style).
//!
//! A `timestamptz` is an instant; what a session's zone changes is how one is read from text
//! without an offset, printed, cast to and from the types without a zone, split into fields
//! (`extract`, `date_trunc`, `to_char`) and moved by days and months (`+ interval`): all on the
//! zone's wall clock, as PostgreSQL does.

use super::datetime::{self, is_finite_timestamp, to_naive, Written, MICROS_PER_DAY, MICROS_PER_SECOND};
use super::value::Interval;
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
    // Offsets first: no zone's name starts like one, and the scan by name below is long.
    if trimmed.starts_with(['<', '+', '-']) || trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        return posix_offset(trimmed).map(Zone::Fixed).ok_or_else(unknown);
    }
    if let Ok(tz) = trimmed.parse::<chrono_tz::Tz>() {
        return Ok(Zone::Named(tz));
    }
    if let Some(tz) = chrono_tz::TZ_VARIANTS.iter().find(|tz| tz.name().eq_ignore_ascii_case(trimmed)) {
        return Ok(Zone::Named(*tz));
    }
    posix_offset(trimmed).map(Zone::Fixed).ok_or_else(unknown)
}

/// `[UTC|GMT|<abbreviation>][+|-]hh[:mm]`: seconds *east*, from a POSIX offset that counts
/// west.
fn posix_offset(text: &str) -> Option<i64> {
    let text = match text.strip_prefix('<') {
        Some(bracketed) => &bracketed[bracketed.find('>')? + 1..],
        None => text,
    };
    let upper = text.to_ascii_uppercase();
    let body = upper.strip_prefix("UTC").or_else(|| upper.strip_prefix("GMT")).unwrap_or(&upper);
    let (west, digits) = match body.as_bytes().first()? {
        b'+' => (1, &body[1..]),
        b'-' => (-1, &body[1..]),
        b'0'..=b'9' => (1, body),
        _ => return None,
    };
    let mut fields = digits.splitn(3, ':');
    let mut field = || fields.next().map_or(Some(0), |f| f.parse::<i64>().ok());
    let (h, m, s) = (field()?, field()?, field()?);
    if !(0..=15).contains(&h) || !(0..60).contains(&m) || !(0..60).contains(&s) || digits.is_empty() {
        return None;
    }
    Some(-west * (h * 3600 + m * 60 + s))
}

impl Zone {
    pub const UTC: Zone = Zone::Fixed(0);

    /// A name [`parse`] reads back as this zone: a tz database name, `UTC`, or a fixed offset
    /// in POSIX form (`<+05:30>-05:30`).
    pub fn name(&self) -> String {
        match self {
            Zone::Named(tz) => tz.name().to_string(),
            Zone::Fixed(0) => "UTC".into(),
            Zone::Fixed(secs) => format!("<{}>{}", format_offset(*secs), format_offset(-secs)),
        }
    }

    /// The zone's offset from UTC at a UTC instant, in seconds east.
    pub fn offset_at(&self, utc_micros: i64) -> i64 {
        match self {
            Zone::Fixed(secs) => *secs,
            Zone::Named(tz) => tz.offset_from_utc_datetime(&to_naive(utc_micros)).fix().local_minus_utc() as i64,
        }
    }

    /// The zone's abbreviation at a UTC instant as `to_char`'s `TZ` shows it (`CEST`), or its
    /// offset where it has none.
    pub fn abbreviation_at(&self, utc_micros: i64) -> String {
        use chrono_tz::OffsetName;
        match self {
            Zone::Named(tz) => {
                let offset = tz.offset_from_utc_datetime(&to_naive(utc_micros));
                offset.abbreviation().map_or_else(|| format_offset(self.offset_at(utc_micros)), str::to_string)
            }
            Zone::Fixed(0) => "UTC".into(),
            Zone::Fixed(secs) => format_offset(*secs),
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

/// A session's `TimeZone` setting: the zone, and the setting as `SHOW` reports it (a zone's
/// name as the tz database spells it, anything else as written). `LOCAL` and `DEFAULT` are the
/// server's zone, UTC.
pub fn setting(value: &str) -> Result<(Zone, String)> {
    let trimmed = value.trim();
    if trimmed.eq_ignore_ascii_case("local") || trimmed.eq_ignore_ascii_case("default") {
        return Ok((Zone::UTC, "UTC".into()));
    }
    // A number is hours east of UTC (ISO's sign, unlike a POSIX offset), shown as PostgreSQL
    // shows it, in POSIX form: `-7` is `<-07>+07`.
    if let Ok(hours) = trimmed.parse::<f64>() {
        let secs = (hours * 3600.0).round();
        if secs.is_nan() || secs.abs() >= 16.0 * 3600.0 {
            return Err(Error::InvalidParameter(format!("time zone \"{value}\" not recognized")));
        }
        let zone = Zone::Fixed(secs as i64);
        return Ok((zone, zone.name()));
    }
    let zone = parse(trimmed)?;
    let shown = match zone {
        Zone::Named(tz) => tz.name().to_string(),
        Zone::Fixed(_) if is_utc(trimmed) => "UTC".into(),
        Zone::Fixed(_) => trimmed.to_string(),
    };
    Ok((zone, shown))
}

/// A UTC offset as PostgreSQL prints it after a time: `+HH`, `-HH:MM`, `+HH:MM:SS`.
pub fn format_offset(secs: i64) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let secs = secs.unsigned_abs();
    let mut out = format!("{sign}{:02}", secs / 3600);
    if !secs.is_multiple_of(3600) {
        out.push_str(&format!(":{:02}", secs / 60 % 60));
        if !secs.is_multiple_of(60) {
            out.push_str(&format!(":{:02}", secs % 60));
        }
    }
    out
}

/// A `timestamptz` as text: the zone's wall-clock time and its offset then.
pub fn format_timestamptz(utc: i64, zone: &Zone) -> String {
    if !is_finite_timestamp(utc) {
        return datetime::format_timestamp(utc);
    }
    let offset = zone.offset_at(utc);
    datetime::format_timestamp_with(utc.saturating_add(offset * MICROS_PER_SECOND), &format_offset(offset))
}

/// Parses a `timestamptz`: a time without an offset or a zone's name is `zone`'s wall-clock time.
pub fn parse_timestamptz(text: &str, zone: &Zone) -> Result<i64> {
    match datetime::parse_written(text, true)? {
        Written::Instant(utc) => Ok(utc),
        Written::Local(local, named) => {
            let zone = match named {
                Some(name) => written_zone(name, text, "timestamp with time zone")?,
                None => *zone,
            };
            datetime::check_timestamp(zone.to_utc(local)?)
        }
    }
}

/// The zone a timestamp's text names after its time: a name with a `/` that is no zone is
/// 22023, another word 22007, as PostgreSQL tells them apart.
pub(super) fn written_zone(name: &str, text: &str, type_name: &str) -> Result<Zone> {
    parse(name).map_err(|_| {
        if name.contains('/') {
            Error::InvalidParameter(format!("time zone \"{}\" not recognized", name.to_lowercase()))
        } else {
            datetime::invalid(type_name, text)
        }
    })
}

/// `extract(field FROM timestamptz)`: the fields of the zone's wall-clock time; `timezone`,
/// `timezone_hour` and `timezone_minute` are the zone's offset then, `epoch` the instant's.
pub fn extract(utc: i64, field: &str, zone: &Zone) -> Result<f64> {
    if !is_finite_timestamp(utc) {
        return datetime::extract(utc, field);
    }
    let offset = zone.offset_at(utc);
    Ok(match datetime::canonical_unit(field).as_str() {
        "timezone" => offset as f64,
        "timezone_hour" => (offset / 3600) as f64,
        "timezone_minute" => (offset / 60 % 60) as f64,
        "epoch" => datetime::extract(utc, field)?,
        _ => datetime::extract(zone.to_local(utc)?, field)?,
    })
}

/// `timestamptz + interval`: months and then days are added on the zone's calendar (so a day
/// across a daylight-saving change is 23 or 25 hours), then the time part, as PostgreSQL does.
pub fn add_interval(utc: i64, iv: &Interval, zone: &Zone) -> Result<i64> {
    if !is_finite_timestamp(utc) || *zone == Zone::UTC {
        return datetime::add_interval(utc, iv);
    }
    let mut t = utc;
    if iv.months != 0 {
        let months = Interval { months: iv.months, days: 0, micros: 0 };
        t = zone.to_utc(datetime::add_interval(zone.to_local(t)?, &months)?)?;
    }
    if iv.days != 0 {
        let local = zone.to_local(t)?.checked_add(iv.days as i64 * MICROS_PER_DAY).ok_or_else(out_of_range)?;
        t = zone.to_utc(local)?;
    }
    datetime::check_timestamp(t.checked_add(iv.micros).ok_or_else(out_of_range)?)
}

/// `age(a, b)` of two instants, on the zone's calendar.
pub fn age(a: i64, b: i64, zone: &Zone) -> Result<Interval> {
    Ok(datetime::age(zone.to_local(a)?, zone.to_local(b)?))
}

/// The zone's wall-clock date of an instant.
pub fn date_of(utc: i64, zone: &Zone) -> Result<i32> {
    datetime::timestamp_to_date(zone.to_local(utc)?)
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
    fn a_sessions_zone_reads_prints_and_moves_timestamps_on_its_wall_clock() {
        let (berlin, shown) = setting("europe/berlin").unwrap();
        assert_eq!(shown, "Europe/Berlin");
        let t = parse_timestamptz("2024-07-01 12:00", &berlin).unwrap();
        assert_eq!(t, ts("2024-07-01 10:00Z"));
        assert_eq!(format_timestamptz(t, &berlin), "2024-07-01 12:00:00+02");
        assert_eq!(format_timestamptz(t, &Zone::UTC), "2024-07-01 10:00:00+00");
        // An explicit offset or a zone's name wins over the session's zone.
        assert_eq!(parse_timestamptz("2024-07-01 12:00+00", &berlin).unwrap(), ts("2024-07-01 12:00Z"));
        assert_eq!(parse_timestamptz("2024-07-01 12:00 Etc/GMT+5", &berlin).unwrap(), ts("2024-07-01 17:00Z"));
        assert_eq!(parse_timestamptz("infinity", &berlin).unwrap(), datetime::TIMESTAMP_INFINITY);
        // One day across the start of summer time is 23 hours.
        let day = Interval { months: 0, days: 1, micros: 0 };
        let before = parse_timestamptz("2024-03-30 12:00", &berlin).unwrap();
        assert_eq!(add_interval(before, &day, &berlin).unwrap() - before, 23 * datetime::MICROS_PER_HOUR);
        assert_eq!(extract(t, "hour", &berlin).unwrap(), 12.0);
        assert_eq!(extract(t, "timezone", &berlin).unwrap(), 7200.0);
        // Numbers count east; a POSIX offset west; both print as PostgreSQL prints them.
        assert_eq!(setting("-7").unwrap(), (Zone::Fixed(-7 * 3600), "<-07>+07".into()));
        assert_eq!(parse(&Zone::Fixed(19800).name()).unwrap(), Zone::Fixed(19800));
        assert_eq!(format_timestamptz(t, &Zone::Fixed(19800)), "2024-07-01 15:30:00+05:30");
        assert!(setting("Mars/Olympus").is_err());
        assert_eq!(setting("LOCAL").unwrap(), (Zone::UTC, "UTC".into()));
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
