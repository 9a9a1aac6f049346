//! Dates, timestamps and intervals: PostgreSQL's text forms and calendar arithmetic.
//!
//! Timestamps are microseconds since the Unix epoch: a TIMESTAMP's count is a wall-clock time,
//! a TIMESTAMPTZ's an instant (UTC). Reading and printing a TIMESTAMPTZ in a session's time
//! zone is [`super::timezone`]'s.

use super::value::Interval;
use crate::error::{Error, Result};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
pub const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default().and_hms_opt(0, 0, 0).unwrap_or_default()
}

/// The calendar date-time of a timestamp (clamped to the calendar's range: values beyond it
/// are refused on input by [`check_timestamp`]).
pub fn to_naive(micros: i64) -> NaiveDateTime {
    let fallback = if micros < 0 { NaiveDateTime::MIN } else { NaiveDateTime::MAX };
    epoch().checked_add_signed(Duration::microseconds(micros)).unwrap_or(fallback)
}

/// `timestamp 'infinity'` / `'-infinity'` (also `timestamptz`): the largest and smallest
/// values, later and earlier than every other; stored, sent in binary and compared as they are.
pub const TIMESTAMP_INFINITY: i64 = i64::MAX;
pub const TIMESTAMP_NEG_INFINITY: i64 = i64::MIN;
/// `date 'infinity'` / `'-infinity'`.
pub const DATE_INFINITY: i32 = i32::MAX;
pub const DATE_NEG_INFINITY: i32 = i32::MIN;

pub fn is_finite_timestamp(micros: i64) -> bool {
    micros != TIMESTAMP_INFINITY && micros != TIMESTAMP_NEG_INFINITY
}

pub fn is_finite_date(days: i32) -> bool {
    days != DATE_INFINITY && days != DATE_NEG_INFINITY
}

/// A date as a timestamp at its midnight (infinite dates stay infinite).
pub fn date_to_timestamp(days: i32) -> i64 {
    match days {
        DATE_INFINITY => TIMESTAMP_INFINITY,
        DATE_NEG_INFINITY => TIMESTAMP_NEG_INFINITY,
        d => d as i64 * MICROS_PER_DAY,
    }
}

/// The date of a timestamp (infinite timestamps give infinite dates).
pub fn timestamp_to_date(micros: i64) -> Result<i32> {
    match micros {
        TIMESTAMP_INFINITY => Ok(DATE_INFINITY),
        TIMESTAMP_NEG_INFINITY => Ok(DATE_NEG_INFINITY),
        m => check_date(m.div_euclid(MICROS_PER_DAY)),
    }
}

/// `+1` for `infinity`, `-1` for `-infinity` (any case, optionally signed `+`).
fn infinity_sign(text: &str) -> Option<i8> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("infinity") || t.eq_ignore_ascii_case("+infinity") {
        Some(1)
    } else if t.eq_ignore_ascii_case("-infinity") {
        Some(-1)
    } else {
        None
    }
}

/// PostgreSQL's timestamp range: 4713 BC to 294276 AD.
const TIMESTAMP_YEARS: std::ops::RangeInclusive<i32> = -4712..=294_276;
/// Dates: from 4713 BC to the end of the calendar this implementation computes with.
const DATE_YEARS: std::ops::RangeInclusive<i32> = -4712..=262_142;

/// `micros` if it is a timestamp in range (22008 otherwise).
pub fn check_timestamp(micros: i64) -> Result<i64> {
    if !is_finite_timestamp(micros) {
        return Ok(micros);
    }
    match epoch().checked_add_signed(Duration::microseconds(micros)) {
        Some(dt) if TIMESTAMP_YEARS.contains(&dt.year()) => Ok(micros),
        _ => Err(Error::DatetimeOutOfRange("timestamp out of range".into())),
    }
}

/// `days` (since 1970-01-01) if it is a date in range (22008 otherwise).
pub fn check_date(days: i64) -> Result<i32> {
    if days == DATE_INFINITY as i64 || days == DATE_NEG_INFINITY as i64 {
        return Ok(days as i32);
    }
    let date = i32::try_from(days).ok().and_then(|d| epoch().date().checked_add_signed(Duration::days(d as i64)));
    match date {
        Some(d) if DATE_YEARS.contains(&d.year()) => Ok(days as i32),
        _ => Err(Error::DatetimeOutOfRange("date out of range".into())),
    }
}

/// The timestamp of a calendar date-time.
pub fn from_naive(dt: NaiveDateTime) -> Result<i64> {
    (dt - epoch()).num_microseconds().ok_or_else(|| Error::DatetimeOutOfRange("timestamp out of range".into()))
}

pub fn date_to_naive(days: i32) -> NaiveDate {
    let fallback = if days < 0 { NaiveDate::MIN } else { NaiveDate::MAX };
    epoch().date().checked_add_signed(Duration::days(days as i64)).unwrap_or(fallback)
}

pub fn naive_to_date(d: NaiveDate) -> i32 {
    (d - epoch().date()).num_days() as i32
}

/// `YYYY-MM-DD`; years before 1 AD as PostgreSQL writes them (`0044-03-15 BC`: there is no
/// year 0, so astronomical year -43 is 44 BC).
fn format_ymd(date: NaiveDate) -> (String, bool) {
    let year = date.year();
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year };
    (format!("{shown:04}-{:02}-{:02}", date.month(), date.day()), bc)
}

pub fn format_date(days: i32) -> String {
    match days {
        DATE_INFINITY => return "infinity".into(),
        DATE_NEG_INFINITY => return "-infinity".into(),
        _ => {}
    }
    let (s, bc) = format_ymd(date_to_naive(days));
    if bc {
        s + " BC"
    } else {
        s
    }
}

/// A timestamp as text; `zone` (e.g. `+00`) follows the time, and ` BC` comes last.
pub(super) fn format_timestamp_with(micros: i64, zone: &str) -> String {
    match micros {
        TIMESTAMP_INFINITY => return "infinity".into(),
        TIMESTAMP_NEG_INFINITY => return "-infinity".into(),
        _ => {}
    }
    let dt = to_naive(micros);
    let (mut s, bc) = format_ymd(dt.date());
    s.push_str(&dt.format(" %H:%M:%S").to_string());
    let frac = micros.rem_euclid(MICROS_PER_SECOND);
    if frac != 0 {
        let f = format!(".{frac:06}");
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str(zone);
    if bc {
        s.push_str(" BC");
    }
    s
}

pub fn format_timestamp(micros: i64) -> String {
    format_timestamp_with(micros, "")
}

/// A `time` (microseconds since midnight) as PostgreSQL prints it: `HH:MM:SS[.ffffff]`.
pub fn format_time(micros: i64) -> String {
    let secs = micros / MICROS_PER_SECOND;
    let frac = micros % MICROS_PER_SECOND;
    let mut out = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

/// A UTC offset as `timestamptz` and `timetz` input write it, `±HH[:MM[:SS]]` or `±HHMM`:
/// seconds east; None when malformed (ASCII digits only, so no slice splits a character).
pub fn parse_utc_offset(text: &str) -> Option<i32> {
    let (sign, body) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    if !body.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let parts: Vec<&str> = if body.contains(':') {
        body.split(':').collect()
    } else if body.len() == 4 {
        vec![&body[..2], &body[2..]]
    } else {
        vec![body]
    };
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let field = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<i32>().ok());
    let (h, m, s) = (field(0)?, field(1)?, field(2)?);
    if m > 59 || s > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + s))
}

/// A time of day rounded to `precision` fractional digits of a second, half up as PostgreSQL
/// rounds `TIME(p)`; 6 and above keep every digit, a negative precision is 22023.
pub fn round_micros(micros: i64, precision: i64) -> Result<i64> {
    if precision < 0 {
        return Err(Error::InvalidParameter(format!("TIME({precision}) precision must not be negative")));
    }
    if precision >= 6 {
        return Ok(micros);
    }
    let unit = 10i64.pow((6 - precision) as u32);
    Ok((micros + unit / 2).div_euclid(unit) * unit)
}

/// Parses a `time`: `HH:MM[:SS[.fraction]]` with an optional `AM`/`PM`, or a timestamp whose
/// time of day is taken; `24:00:00` is the end of the day.
pub fn parse_time(text: &str) -> Result<i64> {
    let err = || invalid("time", text);
    let out_of_range = || Error::DatetimeOutOfRange(format!("date/time field value out of range: \"{text}\""));
    let lower = text.trim().to_ascii_lowercase();
    if lower == "allballs" {
        return Ok(0);
    }
    // A date in front (`2024-01-01 12:00`, `2024-01-01T12:00`) is read and dropped.
    let clock = match lower.split_once([' ', 't']) {
        Some((date, rest)) if date.contains('-') => {
            parse_date(date)?;
            rest.trim()
        }
        _ => lower.as_str(),
    };
    let (clock, meridiem) = match clock.strip_suffix("am").or_else(|| clock.strip_suffix("a.m.")) {
        Some(c) => (c.trim_end(), Some(false)),
        None => match clock.strip_suffix("pm").or_else(|| clock.strip_suffix("p.m.")) {
            Some(c) => (c.trim_end(), Some(true)),
            None => (clock, None),
        },
    };
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts[..2].iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(err());
    }
    let mut hour: i64 = parts[0].parse().map_err(|_| err())?;
    let minute: i64 = parts[1].parse().map_err(|_| err())?;
    let seconds: f64 = match parts.get(2) {
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            s.parse().map_err(|_| err())?
        }
        Some(_) => return Err(err()),
        None => 0.0,
    };
    match meridiem {
        Some(_) if !(1..=12).contains(&hour) => return Err(out_of_range()),
        Some(pm) => hour = hour % 12 + if pm { 12 } else { 0 },
        None => {}
    }
    let micros = (seconds * 1e6).round() as i64;
    if minute > 59 || micros > 60 * MICROS_PER_SECOND {
        return Err(out_of_range());
    }
    let total = hour * MICROS_PER_HOUR + minute * MICROS_PER_MINUTE + micros;
    if total > MICROS_PER_DAY {
        return Err(out_of_range());
    }
    Ok(total)
}

/// Removes a trailing ` BC` era marker: the text without it, and whether it was there.
fn strip_era(text: &str) -> (&str, bool) {
    let t = text.trim_end();
    match t.len().checked_sub(3).and_then(|i| t.get(i..).map(|e| (i, e))) {
        Some((i, era)) if era.eq_ignore_ascii_case(" bc") => (t[..i].trim_end(), true),
        _ => (t, false),
    }
}

/// Parses `YYYY-MM-DD` (a year as written, BC when `bc`; there is no year 0) out of `input`,
/// the whole text of a value of type `type_name`.
fn parse_ymd(text: &str, bc: bool, input: &str, type_name: &str) -> Result<NaiveDate> {
    let out_of_range = || Error::DatetimeOutOfRange(format!("date/time field value out of range: \"{input}\""));
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        // Three numbers that make no date (month 13, February 30) are out of range (22008);
        // anything else is unreadable (22007).
        let parts: Vec<&str> = text.split('-').collect();
        if parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            out_of_range()
        } else {
            invalid(type_name, input)
        }
    })?;
    match date.year() {
        0 => Err(out_of_range()),
        y if y < 0 => Err(invalid(type_name, input)),
        y if bc => date.with_year(1 - y).ok_or_else(|| invalid(type_name, input)),
        _ => Ok(date),
    }
}

/// Unreadable date/time text: SQLSTATE 22007 (invalid_datetime_format), as in PostgreSQL.
pub(super) fn invalid(type_name: &str, text: &str) -> Error {
    Error::DataException("22007", format!("invalid input syntax for type {type_name}: \"{text}\""))
}

/// Parses a date: `YYYY-MM-DD`, optionally followed by a time that is ignored.
pub fn parse_date(text: &str) -> Result<i32> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("epoch") {
        return Ok(0);
    }
    match infinity_sign(t) {
        Some(1) => return Ok(DATE_INFINITY),
        Some(_) => return Ok(DATE_NEG_INFINITY),
        None => {}
    }
    let (t, bc) = strip_era(t);
    let date_part = t.split([' ', 'T']).next().unwrap_or("");
    parse_ymd(date_part, bc, text, "date").map(naive_to_date)
}

/// Parses a timestamp; one `with_tz` is read in UTC unless it names its zone or offset (see
/// [`super::timezone::parse_timestamptz`] for a session's zone).
pub fn parse_timestamp(text: &str, with_tz: bool) -> Result<i64> {
    if with_tz {
        return super::timezone::parse_timestamptz(text, &super::timezone::Zone::UTC);
    }
    Ok(match parse_written(text, false)? {
        Written::Instant(t) | Written::Local(t, None) => t,
        Written::Local(t, Some(name)) => {
            super::timezone::written_zone(name, text, "timestamp")?;
            t
        }
    })
}

/// A timestamp as written: an instant (`epoch`, `±infinity`, or a time with a UTC offset when
/// `with_tz`), or a wall-clock time and the name of the zone written after it, if any.
pub enum Written<'a> {
    Instant(i64),
    Local(i64, Option<&'a str>),
}

/// Parses a timestamp's text. A `timestamp` (not `with_tz`) ignores any zone or offset, as
/// PostgreSQL's does.
pub fn parse_written(text: &str, with_tz: bool) -> Result<Written<'_>> {
    let type_name = if with_tz { "timestamp with time zone" } else { "timestamp" };
    let t = text.trim();
    if t.eq_ignore_ascii_case("epoch") {
        return Ok(Written::Instant(0));
    }
    match infinity_sign(t) {
        Some(1) => return Ok(Written::Instant(TIMESTAMP_INFINITY)),
        Some(_) => return Ok(Written::Instant(TIMESTAMP_NEG_INFINITY)),
        None => {}
    }
    let err = || invalid(type_name, text);
    let (t, bc) = strip_era(t);
    // Split off the date.
    let (date_str, rest) = match t.find([' ', 'T']) {
        Some(i) => (&t[..i], t[i + 1..].trim_start()),
        None => (t, ""),
    };
    // A date followed directly by a zone: "2024-01-01Z", "2024-01-01+02".
    let (date_str, rest) = match date_str.get(10..) {
        Some(zone) if !zone.is_empty() && rest.is_empty() => (&date_str[..10], zone),
        _ => (date_str, rest),
    };
    let date = parse_ymd(date_str, bc, text, type_name)?;
    // Split the time from a zone: a name last ("Europe/Berlin", "Etc/GMT+5"), or an offset.
    let mut offset_secs: Option<i64> = None;
    let mut zone_name = None;
    let mut time_str = rest;
    let last_word = rest.rfind(' ').map_or(rest, |i| &rest[i + 1..]);
    if let Some(stripped) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
        time_str = stripped.trim_end();
        offset_secs = Some(0);
    } else if let Some(stripped) = rest.strip_suffix("UTC") {
        time_str = stripped.trim_end();
        offset_secs = Some(0);
    } else if last_word.starts_with(|c: char| c.is_ascii_alphabetic()) {
        zone_name = Some(last_word);
        time_str = rest[..rest.len() - last_word.len()].trim_end();
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let zone = &rest[pos..];
        offset_secs = match parse_utc_offset(zone) {
            Some(offset) if offset.abs() < 16 * 3600 => Some(offset as i64),
            Some(_) => {
                return Err(Error::DataException("22009", format!("time zone displacement out of range: \"{text}\"")))
            }
            None => return Err(err()),
        };
        time_str = rest[..pos].trim_end();
    }
    let (time, carry) = if time_str.is_empty() || time_str.chars().all(|c| c == ' ') {
        (NaiveTime::MIN, 0)
    } else {
        match parse_clock(time_str) {
            Some(TimeOfDay::Valid(t, carry)) => (t, carry),
            Some(TimeOfDay::OutOfRange) => {
                return Err(Error::DatetimeOutOfRange(format!("date/time field value out of range: \"{text}\"")))
            }
            None => return Err(err()),
        }
    };
    let micros = from_naive(date.and_time(time))? + carry;
    Ok(match offset_secs {
        Some(offset) if with_tz => Written::Instant(micros - offset * MICROS_PER_SECOND),
        _ => Written::Local(micros, zone_name),
    })
}

/// A time of day as written: valid (with microseconds to carry past it: `24:00:00` is the
/// next midnight and a leap second `:60` the next minute, as PostgreSQL reads them), or
/// well-formed but out of range (`25:00` is 22008, not 22007).
enum TimeOfDay {
    Valid(NaiveTime, i64),
    OutOfRange,
}

/// Parses `hh[:mm[:ss[.ffffff]]]`; None when it is not a time at all.
fn parse_clock(s: &str) -> Option<TimeOfDay> {
    let mut parts = s.split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next().unwrap_or("0").parse().ok()?;
    let sec_str = parts.next().unwrap_or("0");
    if parts.next().is_some() {
        return None;
    }
    let (sec, frac) = match sec_str.split_once('.') {
        Some((s, f)) => (s, f),
        None => (sec_str, ""),
    };
    let sec: u32 = sec.parse().ok()?;
    let mut micros: u32 = 0;
    if !frac.is_empty() {
        if !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let padded = format!("{:0<6}", &frac[..frac.len().min(6)]);
        micros = padded.parse().ok()?;
    }
    Some(match NaiveTime::from_hms_micro_opt(h, m, sec, micros) {
        Some(t) => TimeOfDay::Valid(t, 0),
        None if (h, m, sec, micros) == (24, 0, 0, 0) => TimeOfDay::Valid(NaiveTime::MIN, MICROS_PER_DAY),
        None if sec == 60 => match NaiveTime::from_hms_micro_opt(h, m, 59, micros) {
            Some(t) => TimeOfDay::Valid(t, MICROS_PER_SECOND),
            None => TimeOfDay::OutOfRange,
        },
        None => TimeOfDay::OutOfRange,
    })
}

/// Parses an interval: `1 day 02:00:00`, `3 hours`, `-1 week`, `2 mons`, `1.5 days`, `10m`,
/// `7d`, and an optional trailing `ago`.
pub fn parse_interval(text: &str) -> Result<Interval> {
    let err = || invalid("interval", text);
    let overflow = || Error::DataException("22015", format!("interval field value out of range: \"{text}\""));
    let mut iv = Interval::default();
    let lower = text.trim().to_ascii_lowercase();
    if let Some(iso) = lower.strip_prefix('p') {
        return parse_iso_interval(iso).ok_or_else(err);
    }
    let (body, ago) = match lower.strip_suffix("ago") {
        Some(b) => (b.trim_end().to_string(), true),
        None => (lower.clone(), false),
    };
    // Tokenize into numbers and words, splitting "10m" into "10" "m"; a sign apart from its
    // number ("1 mon - 1 day") belongs to it.
    let mut tokens: Vec<String> = Vec::new();
    let mut sign = None;
    for word in body.split_whitespace() {
        if word == "-" || word == "+" {
            if sign.is_some() {
                return Err(err());
            }
            sign = Some(word);
            continue;
        }
        let signed;
        let word = match sign.take() {
            Some(s) if !word.starts_with(['-', '+']) => {
                signed = format!("{s}{word}");
                signed.as_str()
            }
            Some(_) => return Err(err()),
            None => word,
        };
        let split = word.find(|c: char| c.is_ascii_alphabetic());
        match split {
            Some(i) if i > 0 && !word.contains(':') => {
                tokens.push(word[..i].to_string());
                tokens.push(word[i..].to_string());
            }
            _ => tokens.push(word.to_string()),
        }
    }
    if tokens.is_empty() || sign.is_some() {
        return Err(err());
    }
    let mut i = 0;
    while i < tokens.len() {
        let tok = &tokens[i];
        if tok.contains(':') {
            let (neg, t) = match tok.strip_prefix('-') {
                Some(t) => (true, t),
                None => (false, tok.strip_prefix('+').unwrap_or(tok)),
            };
            let mut parts = t.split(':');
            let h: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
            let m: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
            let s: f64 = parts.next().map(|p| p.parse().map_err(|_| err())).transpose()?.unwrap_or(0.0);
            let micros = h
                .checked_mul(MICROS_PER_HOUR)
                .and_then(|h| m.checked_mul(MICROS_PER_MINUTE).and_then(|m| h.checked_add(m)))
                .and_then(|hm| hm.checked_add(to_micros(s * 1e6)?))
                .ok_or_else(overflow)?;
            iv.micros = iv.micros.checked_add(if neg { -micros } else { micros }).ok_or_else(overflow)?;
            i += 1;
            continue;
        }
        let number: f64 = tok.parse().map_err(|_| err())?;
        let unit = tokens.get(i + 1).map(String::as_str).unwrap_or("second");
        let unit_used = tokens.get(i + 1).is_some();
        if !is_unit(unit) {
            return Err(err());
        }
        add_unit(&mut iv, number, unit).ok_or_else(overflow)?;
        i += if unit_used { 2 } else { 1 };
    }
    if ago {
        iv = Interval {
            months: iv.months.checked_neg().ok_or_else(overflow)?,
            days: iv.days.checked_neg().ok_or_else(overflow)?,
            micros: iv.micros.checked_neg().ok_or_else(overflow)?,
        };
    }
    Ok(iv)
}

/// Whether `unit` is an interval unit [`add_unit`] knows.
fn is_unit(unit: &str) -> bool {
    add_unit(&mut Interval::default(), 0.0, unit).is_some()
}

/// A float rounded to whole microseconds, if it fits.
fn to_micros(f: f64) -> Option<i64> {
    let r = f.round();
    (r.is_finite() && r.abs() < 9.2e18).then_some(r as i64)
}

/// A float's whole part as an i32 field, if it fits.
fn to_field(f: f64) -> Option<i32> {
    let t = f.trunc();
    (t.is_finite() && t >= i32::MIN as f64 && t <= i32::MAX as f64).then_some(t as i32)
}

/// Adds `n` units to an interval. None for an unknown unit or a field out of range.
/// An ISO 8601 duration after its `P`: `1Y2M3W4DT5H6M7.5S` (any part optional, fractions
/// allowed, `M` is months before the `T` and minutes after it).
fn parse_iso_interval(body: &str) -> Option<Interval> {
    let mut iv = Interval::default();
    let (date_part, time_part) = match body.split_once('t') {
        Some((d, t)) => (d, Some(t)),
        None => (body, None),
    };
    if date_part.is_empty() && time_part.is_none_or(str::is_empty) {
        return None;
    }
    let mut read = |part: &str, units: &[(char, &str)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || matches!(c, '.' | '-' | '+') {
                number.push(c);
                continue;
            }
            let unit = units.iter().find(|(designator, _)| *designator == c)?.1;
            add_unit(&mut iv, number.parse().ok()?, unit)?;
            number.clear();
        }
        number.is_empty().then_some(())
    };
    read(date_part, &[('y', "years"), ('m', "months"), ('w', "weeks"), ('d', "days")])?;
    if let Some(time) = time_part {
        read(time, &[('h', "hours"), ('m', "minutes"), ('s', "seconds")])?;
    }
    Some(iv)
}

fn add_unit(iv: &mut Interval, n: f64, unit: &str) -> Option<()> {
    let unit = unit.trim_end_matches(',');
    let add_micros = |iv: &mut Interval, f: f64| -> Option<()> {
        iv.micros = iv.micros.checked_add(to_micros(f)?)?;
        Some(())
    };
    let add_days = |iv: &mut Interval, days: f64| -> Option<()> {
        iv.days = iv.days.checked_add(to_field(days)?)?;
        iv.micros = iv.micros.checked_add(to_micros(days.fract() * MICROS_PER_DAY as f64)?)?;
        Some(())
    };
    let add_months = |iv: &mut Interval, months: f64| -> Option<()> {
        iv.months = iv.months.checked_add(to_field(months.round())?)?;
        Some(())
    };
    match unit {
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" => add_micros(iv, n)?,
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => add_micros(iv, n * 1e3)?,
        "second" | "seconds" | "s" | "sec" | "secs" => add_micros(iv, n * 1e6)?,
        "minute" | "minutes" | "m" | "min" | "mins" => add_micros(iv, n * MICROS_PER_MINUTE as f64)?,
        "hour" | "hours" | "h" | "hr" | "hrs" => add_micros(iv, n * MICROS_PER_HOUR as f64)?,
        "day" | "days" | "d" => add_days(iv, n)?,
        "week" | "weeks" | "w" => add_days(iv, n * 7.0)?,
        "month" | "months" | "mon" | "mons" => {
            iv.months = iv.months.checked_add(to_field(n)?)?;
            add_days(iv, n.fract() * 30.0)?;
        }
        "year" | "years" | "y" | "yr" | "yrs" => add_months(iv, n * 12.0)?,
        "decade" | "decades" => add_months(iv, n * 120.0)?,
        "century" | "centuries" => add_months(iv, n * 1200.0)?,
        _ => return None,
    }
    Some(())
}

/// PostgreSQL's `postgres` IntervalStyle output.
pub fn format_interval(iv: &Interval) -> String {
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    let years = iv.months / 12;
    let months = iv.months % 12;
    for (value, unit) in [(years as i64, "year"), (months as i64, "mon"), (iv.days as i64, "day")] {
        if value == 0 {
            continue;
        }
        if !is_zero {
            out.push(' ');
        }
        if is_before && value > 0 {
            out.push('+');
        }
        out.push_str(&format!("{value} {unit}{}", if value != 1 { "s" } else { "" }));
        is_before = value < 0;
        is_zero = false;
    }
    if iv.micros != 0 || is_zero {
        let minus = iv.micros < 0;
        let abs = iv.micros.unsigned_abs();
        let hours = abs / MICROS_PER_HOUR as u64;
        let minutes = (abs / MICROS_PER_MINUTE as u64) % 60;
        let secs = (abs / MICROS_PER_SECOND as u64) % 60;
        let frac = abs % MICROS_PER_SECOND as u64;
        if !is_zero {
            out.push(' ');
        }
        out.push_str(if minus {
            "-"
        } else if is_before {
            "+"
        } else {
            ""
        });
        out.push_str(&format!("{hours:02}:{minutes:02}:{secs:02}"));
        if frac != 0 {
            out.push_str(format!(".{frac:06}").trim_end_matches('0'));
        }
    }
    out
}

/// `ts + iv` with calendar months, as PostgreSQL computes it.
pub fn add_interval(micros: i64, iv: &Interval) -> Result<i64> {
    if !is_finite_timestamp(micros) {
        return Ok(micros);
    }
    let overflow = || Error::DatetimeOutOfRange("timestamp out of range".into());
    let mut dt = to_naive(micros);
    if iv.months != 0 {
        let months = chrono::Months::new(iv.months.unsigned_abs());
        dt = if iv.months > 0 { dt.checked_add_months(months) } else { dt.checked_sub_months(months) }
            .ok_or_else(overflow)?;
    }
    let base = from_naive(dt)?;
    base.checked_add(iv.days as i64 * MICROS_PER_DAY).and_then(|v| v.checked_add(iv.micros)).ok_or_else(overflow)
}

/// A unit or field name of `date_trunc` and `extract` in the one spelling this module matches:
/// lower case, and PostgreSQL's abbreviations and plurals (`ms`, `msec`, `min`, `hrs`, `mon`,
/// `qtr`, `yr`, `dec`, `c`, `mil`, `millennia` …) as the full singular name. Other names are
/// returned lower-cased.
pub fn canonical_unit(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "microsecond" | "microseconds" | "microsecon" | "us" | "usec" | "usecs" | "useconds" => "microseconds",
        "millisecond" | "milliseconds" | "millisecon" | "ms" | "msec" | "msecs" | "mseconds" => "milliseconds",
        "second" | "seconds" | "sec" | "secs" | "s" => "second",
        "minute" | "minutes" | "min" | "mins" | "m" => "minute",
        "hour" | "hours" | "hr" | "hrs" | "h" => "hour",
        "day" | "days" | "d" => "day",
        "week" | "weeks" | "w" => "week",
        "month" | "months" | "mon" | "mons" => "month",
        "quarter" | "qtr" => "quarter",
        "year" | "years" | "yr" | "yrs" | "y" => "year",
        "decade" | "decades" | "dec" | "decs" => "decade",
        "century" | "centuries" | "cent" | "c" => "century",
        "millennium" | "millennia" | "mil" | "mils" => "millennium",
        _ => return lower,
    };
    canonical.to_string()
}

/// Truncates a timestamp to a unit (`date_trunc`).
pub fn truncate(micros: i64, unit: &str) -> Result<i64> {
    if !is_finite_timestamp(micros) {
        return Ok(micros);
    }
    let dt = to_naive(micros);
    let date = dt.date();
    let unit_err = || Error::InvalidParameter(format!("unit \"{unit}\" not recognized for type timestamp"));
    let truncated = match canonical_unit(unit).as_str() {
        "microseconds" | "microsecond" => return Ok(micros),
        "milliseconds" | "millisecond" => return Ok(micros - micros.rem_euclid(1000)),
        "second" | "seconds" => return Ok(micros - micros.rem_euclid(MICROS_PER_SECOND)),
        "minute" | "minutes" => return Ok(micros - micros.rem_euclid(MICROS_PER_MINUTE)),
        "hour" | "hours" => return Ok(micros - micros.rem_euclid(MICROS_PER_HOUR)),
        "day" | "days" => return Ok(micros - micros.rem_euclid(MICROS_PER_DAY)),
        "week" | "weeks" => {
            let back = date.weekday().num_days_from_monday() as i64;
            date - Duration::days(back)
        }
        "month" | "months" => date.with_day(1).ok_or_else(unit_err)?,
        "quarter" => {
            let m = (date.month() - 1) / 3 * 3 + 1;
            NaiveDate::from_ymd_opt(date.year(), m, 1).ok_or_else(unit_err)?
        }
        "year" | "years" => NaiveDate::from_ymd_opt(date.year(), 1, 1).ok_or_else(unit_err)?,
        "decade" => NaiveDate::from_ymd_opt(date.year().div_euclid(10) * 10, 1, 1).ok_or_else(unit_err)?,
        "century" => {
            let y = date.year();
            NaiveDate::from_ymd_opt(((y - 1) / 100) * 100 + 1, 1, 1).ok_or_else(unit_err)?
        }
        "millennium" => {
            let y = date.year();
            NaiveDate::from_ymd_opt(((y - 1) / 1000) * 1000 + 1, 1, 1).ok_or_else(unit_err)?
        }
        _ => return Err(unit_err()),
    };
    from_naive(truncated.and_time(NaiveTime::MIN))
}

/// The Julian day of 1970-01-01.
pub const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// A field of a timestamp (`extract`/`date_part`), as f64; `epoch` is seconds since 1970.
pub fn extract(micros: i64, field: &str) -> Result<f64> {
    if !is_finite_timestamp(micros) {
        // Fields that grow with time are ±Infinity, the others undefined (NaN: NULL to SQL).
        let sign = if micros > 0 { 1.0 } else { -1.0 };
        return Ok(match canonical_unit(field).as_str() {
            "epoch" | "year" | "years" | "decade" | "century" | "millennium" | "isoyear" | "julian" => {
                sign * f64::INFINITY
            }
            _ => f64::NAN,
        });
    }
    let dt = to_naive(micros);
    let secs_frac = dt.second() as f64 + (micros.rem_euclid(MICROS_PER_SECOND)) as f64 / 1e6;
    Ok(match canonical_unit(field).as_str() {
        "epoch" => micros as f64 / 1e6,
        "year" | "years" => dt.year() as f64,
        "month" | "months" => dt.month() as f64,
        "day" | "days" => dt.day() as f64,
        "hour" | "hours" => dt.hour() as f64,
        "minute" | "minutes" => dt.minute() as f64,
        "second" | "seconds" => secs_frac,
        "milliseconds" => secs_frac * 1e3,
        "microseconds" => secs_frac * 1e6,
        "dow" => dt.weekday().num_days_from_sunday() as f64,
        "isodow" => dt.weekday().number_from_monday() as f64,
        "doy" => dt.ordinal() as f64,
        "week" => dt.iso_week().week() as f64,
        "quarter" => ((dt.month() - 1) / 3 + 1) as f64,
        "decade" => (dt.year().div_euclid(10)) as f64,
        "century" => ((dt.year() - 1) / 100 + 1) as f64,
        "millennium" => ((dt.year() - 1) / 1000 + 1) as f64,
        "isoyear" => dt.iso_week().year() as f64,
        // The Julian day: days since 4714-11-24 BC, the time of day as its fraction.
        "julian" => {
            (micros.div_euclid(MICROS_PER_DAY) + UNIX_EPOCH_JULIAN_DAY) as f64
                + micros.rem_euclid(MICROS_PER_DAY) as f64 / MICROS_PER_DAY as f64
        }
        "timezone" | "timezone_hour" | "timezone_minute" => 0.0,
        _ => return Err(Error::InvalidParameter(format!("unit \"{field}\" not recognized for type timestamp"))),
    })
}

/// A field of a `time` (`extract(field from time)`).
pub fn extract_time(micros: i64, field: &str) -> Result<f64> {
    let seconds = (micros % MICROS_PER_MINUTE) as f64 / 1e6;
    Ok(match canonical_unit(field).as_str() {
        "epoch" => micros as f64 / 1e6,
        "hour" => (micros / MICROS_PER_HOUR) as f64,
        "minute" => (micros / MICROS_PER_MINUTE % 60) as f64,
        "second" => seconds,
        "milliseconds" => seconds * 1e3,
        "microseconds" => seconds * 1e6,
        _ => {
            return Err(Error::FeatureNotSupported(format!(
                "unit \"{field}\" not supported for type time without time zone"
            )))
        }
    })
}

/// A field of an interval (`extract(field from interval)`).
pub fn extract_interval(iv: &Interval, field: &str) -> Result<f64> {
    Ok(match canonical_unit(field).as_str() {
        "epoch" => (iv.months as f64 / 12.0 * 365.25 * 86400.0) + iv.days as f64 * 86400.0 + iv.micros as f64 / 1e6,
        "year" | "years" => (iv.months / 12) as f64,
        "month" | "months" => (iv.months % 12) as f64,
        "day" | "days" => iv.days as f64,
        "hour" | "hours" => (iv.micros / MICROS_PER_HOUR) as f64,
        "minute" | "minutes" => ((iv.micros / MICROS_PER_MINUTE) % 60) as f64,
        "second" | "seconds" => (iv.micros % MICROS_PER_MINUTE) as f64 / 1e6,
        _ => return Err(Error::InvalidParameter(format!("unit \"{field}\" not recognized for type interval"))),
    })
}

/// `age(a, b)`: the symbolic difference in years, months and days, as PostgreSQL computes it.
pub fn age(a: i64, b: i64) -> Interval {
    let (x, y, negate) = if a >= b { (to_naive(a), to_naive(b), false) } else { (to_naive(b), to_naive(a), true) };
    let mut months = (x.year() - y.year()) * 12 + x.month() as i32 - y.month() as i32;
    let mut days = x.day() as i32 - y.day() as i32;
    let mut micros = (x.time() - y.time()).num_microseconds().unwrap_or(0);
    if micros < 0 {
        micros += MICROS_PER_DAY;
        days -= 1;
    }
    // Borrow the length of the earlier time's month, as PostgreSQL does.
    let first = y.date().with_day(1).unwrap_or(y.date());
    let next = first.checked_add_months(chrono::Months::new(1)).unwrap_or(first);
    let month_days = (next - first).num_days() as i32;
    while days < 0 {
        days += month_days;
        months -= 1;
    }
    let iv = Interval { months, days, micros };
    if negate {
        Interval { months: -iv.months, days: -iv.days, micros: -iv.micros }
    } else {
        iv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_trip_through_postgres_text() {
        let cases = [
            ("1 day 02:00:00", "1 day 02:00:00"),
            ("3 hours", "03:00:00"),
            ("7d", "7 days"),
            ("-1 day", "-1 days"),
            ("14 months", "1 year 2 mons"),
            ("1 hour ago", "-01:00:00"),
            ("0 seconds", "00:00:00"),
            ("1.5 seconds", "00:00:01.5"),
        ];
        for (input, want) in cases {
            assert_eq!(format_interval(&parse_interval(input).unwrap()), want, "{input}");
        }
        let mixed = Interval { months: 0, days: -1, micros: 2 * MICROS_PER_HOUR };
        assert_eq!(format_interval(&mixed), "-1 days +02:00:00");
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn timestamps_parse_zones_and_fractions() {
        let base = parse_timestamp("2024-01-01 10:00:00", true).unwrap();
        assert_eq!(parse_timestamp("2024-01-01T10:00:00Z", true).unwrap(), base);
        assert_eq!(parse_timestamp("2024-01-01Z", true).unwrap(), base - 10 * MICROS_PER_HOUR);
        assert_eq!(parse_timestamp("2024-01-01 12:00:00+02", true).unwrap(), base);
        assert_eq!(parse_timestamp("2024-01-01 04:30:00-05:30", true).unwrap(), base);
        assert_eq!(format_timestamp(base + 500_000), "2024-01-01 10:00:00.5");
        assert!(parse_timestamp("2024-13-01", false).is_err());
        assert!(parse_timestamp("yesterday-ish", false).is_err());
    }

    #[test]
    fn date_trunc_and_extract() {
        let ts = parse_timestamp("2024-05-17 13:45:12.25", false).unwrap();
        assert_eq!(format_timestamp(truncate(ts, "hour").unwrap()), "2024-05-17 13:00:00");
        assert_eq!(format_timestamp(truncate(ts, "month").unwrap()), "2024-05-01 00:00:00");
        assert_eq!(format_timestamp(truncate(ts, "week").unwrap()), "2024-05-13 00:00:00");
        assert_eq!(extract(ts, "second").unwrap(), 12.25);
        assert_eq!(extract(ts, "dow").unwrap(), 5.0);
    }
}
