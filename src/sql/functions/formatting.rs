//! `to_char` for numbers and date/times, and its inverses `to_date`, `to_timestamp(text,
//! format)` and `to_number`, with PostgreSQL's template patterns.

use super::Signature;
use crate::error::{Error, Result};
use crate::types::cast::to_decimal;
use crate::types::datetime::{self, MICROS_PER_SECOND};
use crate::types::timezone::{self, Zone};
use crate::types::{DataType, Value};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use rust_decimal::{Decimal, RoundingStrategy};

/// Resolves one of these functions, or None when `name` is not one of them.
pub fn resolve(name: &str, args: &[DataType]) -> Option<Signature> {
    use DataType as T;
    let sig = |name: &'static str, arg_types: Vec<DataType>, return_type: DataType| {
        Some(Signature { name, arg_types, return_type })
    };
    match (name, args) {
        ("to_char", [T::Timestamp, _]) => sig("to_char", vec![T::Timestamp, T::Text], T::Text),
        ("to_char", [T::TimestampTz | T::Unknown, _]) => sig("to_char", vec![T::TimestampTz, T::Text], T::Text),
        ("to_char", [T::Date, _]) => sig("to_char", vec![T::Timestamp, T::Text], T::Text),
        // PostgreSQL has no to_char(time): a time is cast to an interval.
        ("to_char", [T::Interval | T::Time, _]) => sig("to_char_interval", vec![T::Interval, T::Text], T::Text),
        ("to_char", [t, _]) if t.is_numeric() => {
            let t = if matches!(t, T::Float4 | T::Float8) { T::Float8 } else { T::Numeric(None) };
            sig("to_char", vec![t, T::Text], T::Text)
        }
        ("to_date", [_, _]) => sig("to_date", vec![T::Text, T::Text], T::Date),
        ("to_timestamp", [_, _]) => sig("to_timestamp_text", vec![T::Text, T::Text], T::TimestampTz),
        ("to_number", [_, _]) => sig("to_number", vec![T::Text, T::Text], T::Numeric(None)),
        _ => None,
    }
}

/// Evaluates a function [`resolve`] returned; None when `name` is not one of them.
pub fn call(name: &str, args: &[Value], zone: &Zone) -> Option<Result<Value>> {
    let text = |i: usize| match args.get(i) {
        Some(Value::Text(s)) => s.as_str(),
        _ => "",
    };
    Some(match (name, args.first()) {
        ("to_char", Some(Value::Timestamp(t))) => format_datetime(*t, None, text(1)).map(Value::Text),
        ("to_char", Some(Value::TimestampTz(t))) if datetime::is_finite_timestamp(*t) => {
            let offset = zone.offset_at(*t);
            let local = t.saturating_add(offset * MICROS_PER_SECOND);
            format_datetime(local, Some((offset, zone.abbreviation_at(*t))), text(1)).map(Value::Text)
        }
        ("to_char", Some(Value::TimestampTz(_))) => Ok(Value::Text(String::new())),
        ("to_char_interval", Some(Value::Interval(i))) => {
            super::interval_format::format_interval(i, text(1)).map(Value::Text)
        }
        ("to_char", Some(v)) => format_number(v, text(1)).map(Value::Text),
        ("to_date", _) => parse_datetime(text(0), text(1))
            .and_then(|dt| datetime::check_date(datetime::naive_to_date(dt.date()) as i64))
            .map(Value::Date),
        ("to_timestamp_text", _) => parse_datetime(text(0), text(1))
            .and_then(datetime::from_naive)
            .and_then(|local| zone.to_utc(local))
            .and_then(datetime::check_timestamp)
            .map(Value::TimestampTz),
        ("to_number", _) => parse_number(text(0), text(1)).map(Value::Numeric),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Numbers

/// `to_char(number, format)`: `9` (digit or blank), `0` (digit or zero), `.`/`D`, `,`/`G`,
/// `S`, `MI`, `PL`, `SG`, `PR`, `FM` (no padding), other characters as they are.
fn format_number(value: &Value, fmt: &str) -> Result<String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Tok {
        Nine,
        Zero,
        Point,
        Group,
        Sign,
        Minus,
        Plus,
        SignAny,
        Brackets,
        Lit(char),
    }
    let upper: Vec<char> = fmt.to_ascii_uppercase().chars().collect();
    let original: Vec<char> = fmt.chars().collect();
    let mut toks = Vec::new();
    let mut fill = false;
    let mut i = 0;
    while i < upper.len() {
        let rest: String = upper[i..].iter().take(2).collect();
        let (tok, len) = match (upper[i], rest.as_str()) {
            (_, "FM") => {
                fill = true;
                i += 2;
                continue;
            }
            (_, "MI") => (Tok::Minus, 2),
            (_, "PL") => (Tok::Plus, 2),
            (_, "SG") => (Tok::SignAny, 2),
            (_, "PR") => (Tok::Brackets, 2),
            ('9', _) => (Tok::Nine, 1),
            ('0', _) => (Tok::Zero, 1),
            ('.' | 'D', _) => (Tok::Point, 1),
            (',' | 'G', _) => (Tok::Group, 1),
            ('S', _) => (Tok::Sign, 1),
            ('E', _) if upper[i..].starts_with(&['E', 'E', 'E', 'E']) => {
                return Err(Error::FeatureNotSupported("EEEE in to_char formats".into()))
            }
            _ => (Tok::Lit(original[i]), 1),
        };
        toks.push(tok);
        i += len;
    }
    let point = toks.iter().position(|t| *t == Tok::Point);
    let is_digit = |t: &Tok| matches!(t, Tok::Nine | Tok::Zero);
    let int_positions = toks[..point.unwrap_or(toks.len())].iter().filter(|t| is_digit(t)).count();
    let frac_positions = point.map_or(0, |p| toks[p..].iter().filter(|t| is_digit(t)).count());
    // NaN prints as such; an infinity fills every digit position with `#`, as an overflow.
    let (decimal, infinite) = match value.as_f64() {
        Some(f) if f.is_nan() => return Ok(" NaN".into()),
        Some(f) if f.is_infinite() => (if f < 0.0 { Decimal::NEGATIVE_ONE } else { Decimal::ONE }, true),
        _ => (to_decimal(value)?, false),
    };
    // Floats round half to even (PostgreSQL prints them with printf), exact numbers half away
    // from zero.
    let strategy = match value {
        Value::Float4(_) | Value::Float8(_) => RoundingStrategy::MidpointNearestEven,
        _ => RoundingStrategy::MidpointAwayFromZero,
    };
    let rounded = decimal.round_dp_with_strategy(frac_positions as u32, strategy);
    let negative = rounded.is_sign_negative() && !rounded.is_zero();
    let abs = rounded.abs();
    let mut int_digits = abs.trunc().to_string();
    if int_digits == "0" && (frac_positions > 0 || !abs.is_zero()) {
        int_digits.clear();
    }
    let mut frac_digits = abs.fract().to_string().trim_start_matches('0').trim_start_matches('.').to_string();
    while frac_digits.len() < frac_positions {
        frac_digits.push('0');
    }
    let overflow = infinite || int_digits.len() > int_positions;
    let explicit_sign = toks.iter().any(|t| matches!(t, Tok::Sign | Tok::Minus | Tok::SignAny | Tok::Brackets));
    let first_zero = toks[..point.unwrap_or(toks.len())].iter().filter(|t| is_digit(t)).position(|t| *t == Tok::Zero);
    let mut out = String::new();
    let mut int_seen = 0usize;
    let mut frac_seen = 0usize;
    let mut printed = false;
    let mut sign_placed = false;
    let lead = int_positions.saturating_sub(int_digits.len());
    let int_chars: Vec<char> = int_digits.chars().collect();
    let frac_chars: Vec<char> = frac_digits.chars().collect();
    // The sign next to the first printed digit (default, or an `S` that starts the format).
    let default_sign = if negative { '-' } else { ' ' };
    let leading_s = toks.first() == Some(&Tok::Sign);
    let place_sign = |out: &mut String, placed: &mut bool| {
        if *placed {
            return;
        }
        *placed = true;
        if leading_s {
            out.push(if negative { '-' } else { '+' });
        } else if toks.contains(&Tok::Brackets) {
            out.push(if negative { '<' } else { ' ' });
        } else if !explicit_sign && (negative || !fill) {
            out.push(default_sign);
        }
    };
    for (k, tok) in toks.iter().enumerate() {
        let in_int = point.is_none_or(|p| k < p);
        match tok {
            Tok::Nine | Tok::Zero if in_int => {
                let position = int_seen;
                int_seen += 1;
                if overflow {
                    place_sign(&mut out, &mut sign_placed);
                    out.push('#');
                    continue;
                }
                if position < lead {
                    if first_zero.is_some_and(|z| position >= z) {
                        place_sign(&mut out, &mut sign_placed);
                        out.push('0');
                        printed = true;
                    } else if !fill {
                        out.push(' ');
                    }
                } else {
                    place_sign(&mut out, &mut sign_placed);
                    out.push(int_chars[position - lead]);
                    printed = true;
                }
            }
            Tok::Nine | Tok::Zero => {
                let digit = if overflow { '#' } else { frac_chars.get(frac_seen).copied().unwrap_or('0') };
                frac_seen += 1;
                out.push(digit);
            }
            Tok::Point => {
                place_sign(&mut out, &mut sign_placed);
                out.push('.');
            }
            Tok::Group => {
                if printed {
                    out.push(',');
                } else if !fill {
                    out.push(' ');
                }
            }
            Tok::Sign if k == 0 => {}
            Tok::Sign => out.push(if negative { '-' } else { '+' }),
            Tok::Minus => out.push(if negative {
                '-'
            } else if fill {
                '\0'
            } else {
                ' '
            }),
            Tok::Plus => out.push(if negative { ' ' } else { '+' }),
            Tok::SignAny => out.push(if negative { '-' } else { '+' }),
            Tok::Brackets => out.push(if negative { '>' } else { ' ' }),
            Tok::Lit(c) => out.push(*c),
        }
    }
    if !sign_placed {
        let mut prefix = String::new();
        place_sign(&mut prefix, &mut sign_placed);
        out.insert_str(0, &prefix);
    }
    let mut out: String = out.chars().filter(|c| *c != '\0').collect();
    if fill {
        // FM drops the trailing zeros that `9` positions after the point would print.
        if let Some(p) = point {
            let nines_after: Vec<bool> = toks[p..].iter().filter(|t| is_digit(t)).map(|t| *t == Tok::Nine).collect();
            let mut trim = 0;
            for (digit, nine) in frac_chars.iter().zip(&nines_after).rev() {
                if *nine && *digit == '0' {
                    trim += 1;
                } else {
                    break;
                }
            }
            if trim > 0 {
                if let Some(idx) = out.rfind('.') {
                    let keep = idx + 1 + frac_positions - trim;
                    let tail: String = out[idx + 1 + frac_positions..].to_string();
                    out.truncate(keep);
                    out.push_str(&tail);
                }
            }
        }
    }
    Ok(out)
}

/// `to_number(text, format)`: the digits, decimal point and sign of `text`; group separators,
/// currency and blanks are skipped, `-` or `<…>` make it negative.
fn parse_number(text: &str, fmt: &str) -> Result<Decimal> {
    let upper = fmt.to_ascii_uppercase();
    let decimal_point = upper.contains('.') || upper.contains('D');
    let mut digits = String::new();
    let mut negative = false;
    let mut seen_point = false;
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '.' if decimal_point && !seen_point => {
                seen_point = true;
                digits.push('.');
            }
            '-' | '<' => negative = true,
            _ => {}
        }
    }
    if digits.is_empty() || digits == "." {
        return Err(Error::InvalidText(format!("invalid input syntax for type numeric: \"{text}\"")));
    }
    let d: Decimal =
        digits.parse().map_err(|_| Error::InvalidText(format!("invalid input syntax for type numeric: \"{text}\"")))?;
    Ok(if negative { -d } else { d })
}

// ---------------------------------------------------------------------------------------
// Dates and times

/// One template pattern of a date/time format.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Field {
    Hh24,
    Hh12,
    Mi,
    Ss,
    Ms,
    Us,
    Ff(u8),
    Ssss,
    Meridiem { dots: bool, upper: bool },
    YearComma,
    Year(u8),
    IsoYear(u8),
    Era { dots: bool, upper: bool },
    MonthName(Case),
    MonthAbbrev(Case),
    Mm,
    DayName(Case),
    DayAbbrev(Case),
    Ddd,
    Iddd,
    Dd,
    D,
    Id,
    W,
    Ww,
    Iw,
    Cc,
    J,
    Q,
    Roman { upper: bool },
    Tz { upper: bool },
    Tzh,
    Tzm,
    Of,
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Case {
    Upper,
    Capital,
    Lower,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Field { field: Field, fill: bool, ordinal: Option<bool> },
    Literal(String),
}

/// Patterns, longest first so that `HH24` wins over `HH` and `YYYY` over `YY`.
const PATTERNS: &[(&str, Field)] = &[
    ("HH24", Field::Hh24),
    ("HH12", Field::Hh12),
    ("SSSSS", Field::Ssss),
    ("SSSS", Field::Ssss),
    ("Y,YYY", Field::YearComma),
    ("IYYY", Field::IsoYear(4)),
    ("YYYY", Field::Year(4)),
    ("IDDD", Field::Iddd),
    ("A.M.", Field::Meridiem { dots: true, upper: true }),
    ("P.M.", Field::Meridiem { dots: true, upper: true }),
    ("a.m.", Field::Meridiem { dots: true, upper: false }),
    ("p.m.", Field::Meridiem { dots: true, upper: false }),
    ("B.C.", Field::Era { dots: true, upper: true }),
    ("A.D.", Field::Era { dots: true, upper: true }),
    ("b.c.", Field::Era { dots: true, upper: false }),
    ("a.d.", Field::Era { dots: true, upper: false }),
    ("MONTH", Field::MonthName(Case::Upper)),
    ("Month", Field::MonthName(Case::Capital)),
    ("month", Field::MonthName(Case::Lower)),
    ("IYY", Field::IsoYear(3)),
    ("YYY", Field::Year(3)),
    ("MON", Field::MonthAbbrev(Case::Upper)),
    ("Mon", Field::MonthAbbrev(Case::Capital)),
    ("mon", Field::MonthAbbrev(Case::Lower)),
    ("DAY", Field::DayName(Case::Upper)),
    ("Day", Field::DayName(Case::Capital)),
    ("day", Field::DayName(Case::Lower)),
    ("DDD", Field::Ddd),
    ("FF1", Field::Ff(1)),
    ("FF2", Field::Ff(2)),
    ("FF3", Field::Ff(3)),
    ("FF4", Field::Ff(4)),
    ("FF5", Field::Ff(5)),
    ("FF6", Field::Ff(6)),
    ("TZH", Field::Tzh),
    ("TZM", Field::Tzm),
    ("HH", Field::Hh12),
    ("MI", Field::Mi),
    ("SS", Field::Ss),
    ("MS", Field::Ms),
    ("US", Field::Us),
    ("AM", Field::Meridiem { dots: false, upper: true }),
    ("PM", Field::Meridiem { dots: false, upper: true }),
    ("am", Field::Meridiem { dots: false, upper: false }),
    ("pm", Field::Meridiem { dots: false, upper: false }),
    ("BC", Field::Era { dots: false, upper: true }),
    ("AD", Field::Era { dots: false, upper: true }),
    ("bc", Field::Era { dots: false, upper: false }),
    ("ad", Field::Era { dots: false, upper: false }),
    ("IY", Field::IsoYear(2)),
    ("YY", Field::Year(2)),
    ("MM", Field::Mm),
    ("DY", Field::DayAbbrev(Case::Upper)),
    ("Dy", Field::DayAbbrev(Case::Capital)),
    ("dy", Field::DayAbbrev(Case::Lower)),
    ("DD", Field::Dd),
    ("ID", Field::Id),
    ("WW", Field::Ww),
    ("IW", Field::Iw),
    ("CC", Field::Cc),
    ("RM", Field::Roman { upper: true }),
    ("rm", Field::Roman { upper: false }),
    ("TZ", Field::Tz { upper: true }),
    ("tz", Field::Tz { upper: false }),
    ("OF", Field::Of),
    ("Y", Field::Year(1)),
    ("I", Field::IsoYear(1)),
    ("D", Field::D),
    ("W", Field::W),
    ("J", Field::J),
    ("Q", Field::Q),
];

/// Splits a format into fields (with their FM prefix and TH/th suffix) and literal text
/// (quoted text, backslash escapes and every other character).
fn parse_format(fmt: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = fmt;
    let mut fill = false;
    let push_literal = |parts: &mut Vec<Part>, s: &str| match parts.last_mut() {
        Some(Part::Literal(l)) => l.push_str(s),
        _ => parts.push(Part::Literal(s.to_string())),
    };
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("FM") || rest.starts_with("fm") {
            fill = true;
            rest = &rest[2..];
            continue;
        }
        if rest.starts_with("FX") || rest.starts_with("TM") || rest.starts_with("tm") {
            rest = &rest[2..];
            continue;
        }
        if c == '"' {
            let end = rest[1..].find('"').map_or(rest.len(), |e| e + 1);
            push_literal(&mut parts, &rest[1..end]);
            rest = rest.get(end + 1..).unwrap_or("");
            continue;
        }
        if c == '\\' {
            let next = rest[1..].chars().next();
            let len = 1 + next.map_or(0, char::len_utf8);
            push_literal(&mut parts, &rest[1..len]);
            rest = &rest[len..];
            continue;
        }
        // Patterns that print words match their case exactly (`Month`, `MONTH`); numeric
        // ones in any case (`yyyy-mm-dd`).
        let numeric = |f: &Field| {
            !matches!(
                f,
                Field::MonthName(_)
                    | Field::MonthAbbrev(_)
                    | Field::DayName(_)
                    | Field::DayAbbrev(_)
                    | Field::Meridiem { .. }
                    | Field::Era { .. }
                    | Field::Roman { .. }
                    | Field::Tz { .. }
            )
        };
        let found = PATTERNS.iter().find(|(p, _)| rest.starts_with(p)).or_else(|| {
            PATTERNS
                .iter()
                .find(|(p, f)| numeric(f) && rest.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p)))
        });
        if let Some((name, field)) = found {
            rest = &rest[name.len()..];
            let ordinal = if rest.starts_with("TH") {
                rest = &rest[2..];
                Some(true)
            } else if rest.starts_with("th") {
                rest = &rest[2..];
                Some(false)
            } else {
                None
            };
            parts.push(Part::Field { field: *field, fill, ordinal });
            fill = false;
            continue;
        }
        push_literal(&mut parts, &rest[..c.len_utf8()]);
        rest = &rest[c.len_utf8()..];
    }
    parts
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const ROMAN: [&str; 12] = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"];

fn cased(s: &str, case: Case) -> String {
    match case {
        Case::Upper => s.to_uppercase(),
        Case::Capital => s.to_string(),
        Case::Lower => s.to_lowercase(),
    }
}

fn ordinal_suffix(n: i64, upper: bool) -> &'static str {
    let suffix = match (n % 100, n % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    };
    match (upper, suffix) {
        (false, s) => s,
        (true, "st") => "ST",
        (true, "nd") => "ND",
        (true, "rd") => "RD",
        (true, _) => "TH",
    }
}

/// `to_char(timestamp, format)`; `with_tz` says whether the value is a `timestamptz` (shown
/// in UTC, the session zone).
/// `to_char` of a wall-clock time; of a `timestamptz`, with its zone's offset (seconds east)
/// and abbreviation then.
fn format_datetime(micros: i64, zone: Option<(i64, String)>, fmt: &str) -> Result<String> {
    let with_tz = zone.is_some();
    let (offset, abbreviation) = zone.unwrap_or_default();
    if !datetime::is_finite_timestamp(micros) {
        return Ok(String::new());
    }
    let dt = datetime::to_naive(micros);
    let date = dt.date();
    let year = date.year();
    let shown_year = if year <= 0 { 1 - year } else { year } as i64;
    let frac = micros.rem_euclid(MICROS_PER_SECOND);
    render(fmt, |field, fill, ordinal| {
        let number = |n: i64, width: usize| padded(n, width, fill, ordinal);
        let name = |s: String, width: usize| if fill { s } else { format!("{s:<width$}") };
        let hour12 = match dt.hour() % 12 {
            0 => 12,
            h => h,
        } as i64;
        let text = match field {
            Field::Hh24 => number(dt.hour() as i64, 2),
            Field::Hh12 => number(hour12, 2),
            Field::Mi => number(dt.minute() as i64, 2),
            Field::Ss => number(dt.second() as i64, 2),
            Field::Ms => number(frac / 1000, 3),
            Field::Us => number(frac, 6),
            Field::Ff(n) => number(frac / 10i64.pow(6 - n as u32), n as usize),
            Field::Ssss => number(dt.num_seconds_from_midnight() as i64, 1),
            Field::Meridiem { dots, upper } => meridiem(dt.hour() >= 12, dots, upper),
            Field::YearComma => {
                let s = format!("{shown_year:04}");
                let (thousands, rest) = s.split_at(s.len() - 3);
                format!("{thousands},{rest}")
            }
            Field::Year(4) => number(shown_year, 4),
            Field::Year(n) => number(shown_year % 10i64.pow(n as u32), n as usize),
            Field::IsoYear(4) => number(date.iso_week().year() as i64, 4),
            Field::IsoYear(n) => number(date.iso_week().year() as i64 % 10i64.pow(n as u32), n as usize),
            Field::Era { dots, upper } => {
                let s = match (year <= 0, dots) {
                    (true, false) => "BC",
                    (false, false) => "AD",
                    (true, true) => "B.C.",
                    (false, true) => "A.D.",
                };
                if upper {
                    s.to_string()
                } else {
                    s.to_lowercase()
                }
            }
            Field::MonthName(case) => name(cased(MONTHS[date.month0() as usize], case), 9),
            Field::MonthAbbrev(case) => cased(&MONTHS[date.month0() as usize][..3], case),
            Field::Mm => number(date.month() as i64, 2),
            Field::DayName(case) => name(cased(DAYS[date.weekday().num_days_from_sunday() as usize], case), 9),
            Field::DayAbbrev(case) => cased(&DAYS[date.weekday().num_days_from_sunday() as usize][..3], case),
            Field::Ddd => number(date.ordinal() as i64, 3),
            Field::Iddd => {
                let week = date.iso_week();
                let days = (week.week() as i64 - 1) * 7 + date.weekday().number_from_monday() as i64;
                number(days, 3)
            }
            Field::Dd => number(date.day() as i64, 2),
            Field::D => number(date.weekday().number_from_sunday() as i64, 1),
            Field::Id => number(date.weekday().number_from_monday() as i64, 1),
            Field::W => number((date.day() as i64 - 1) / 7 + 1, 1),
            Field::Ww => number((date.ordinal() as i64 - 1) / 7 + 1, 2),
            Field::Iw => number(date.iso_week().week() as i64, 2),
            Field::Cc => number(if year > 0 { (year as i64 - 1) / 100 + 1 } else { -((shown_year - 1) / 100 + 1) }, 2),
            Field::J => number(date.num_days_from_ce() as i64 + 1_721_425, 1),
            Field::Q => number((date.month0() / 3 + 1) as i64, 1),
            Field::Roman { upper } => {
                let r = name(ROMAN[date.month0() as usize].to_string(), 4);
                if upper {
                    r
                } else {
                    r.to_lowercase()
                }
            }
            Field::Tz { upper } => match (with_tz, upper) {
                (false, _) => String::new(),
                (true, true) => abbreviation.clone(),
                (true, false) => abbreviation.to_lowercase(),
            },
            Field::Tzh if with_tz => format!("{}{:02}", if offset < 0 { '-' } else { '+' }, offset.abs() / 3600),
            Field::Tzm if with_tz => format!("{:02}", offset.abs() / 60 % 60),
            Field::Of if with_tz => timezone::format_offset(offset),
            Field::Tzh | Field::Tzm | Field::Of => String::new(),
        };
        Ok(text)
    })
}

/// Writes `fmt` with each template field replaced by `field(field, fill, ordinal)`: `fill` is
/// FM (no padding), `ordinal` a TH or th suffix (upper case or not).
pub(super) fn render(fmt: &str, mut field: impl FnMut(Field, bool, Option<bool>) -> Result<String>) -> Result<String> {
    let mut out = String::new();
    for part in parse_format(fmt) {
        match part {
            Part::Literal(l) => out.push_str(&l),
            Part::Field { field: f, fill, ordinal } => out.push_str(&field(f, fill, ordinal)?),
        }
    }
    Ok(out)
}

/// A number as C's `%0*d` prints it (zero-padded to `width` characters, the sign among them;
/// unpadded with FM), with its ordinal suffix.
pub(super) fn padded(n: i64, width: usize, fill: bool, ordinal: Option<bool>) -> String {
    let mut s = if fill { n.to_string() } else { format!("{n:0width$}") };
    if let Some(upper) = ordinal {
        s.push_str(ordinal_suffix(n.abs(), upper));
    }
    s
}

/// AM/PM in one of its four spellings.
pub(super) fn meridiem(pm: bool, dots: bool, upper: bool) -> String {
    let s = match (pm, dots) {
        (false, false) => "AM",
        (true, false) => "PM",
        (false, true) => "A.M.",
        (true, true) => "P.M.",
    };
    if upper {
        s.to_string()
    } else {
        s.to_lowercase()
    }
}

/// The unread rest of a `to_date`/`to_timestamp` input.
struct Cursor<'a> {
    text: &'a str,
    input: Vec<char>,
    pos: usize,
}

impl Cursor<'_> {
    fn invalid(&self, what: &str) -> Error {
        Error::DataException("22007", format!("invalid value for \"{what}\" in \"{}\"", self.text))
    }

    fn skip_spaces(&mut self) {
        while self.pos < self.input.len() && self.input[self.pos].is_whitespace() {
            self.pos += 1;
        }
    }

    /// Up to `limit` digits (a sign first when `signed`): the number and how many were read.
    fn digits(&mut self, limit: usize, signed: bool, what: &str) -> Result<(i64, usize)> {
        let start = self.pos;
        if signed && self.pos < self.input.len() && matches!(self.input[self.pos], '-' | '+') {
            self.pos += 1;
        }
        while self.pos < self.input.len() && self.input[self.pos].is_ascii_digit() && self.pos - start < limit {
            self.pos += 1;
        }
        let s: String = self.input[start..self.pos].iter().collect();
        s.parse::<i64>().map(|v| (v, self.pos - start)).map_err(|_| self.invalid(what))
    }

    /// The index of the name in `choices` (cut to `len` characters) the input starts with.
    fn word(&mut self, choices: &[&str], len: Option<usize>, what: &str) -> Result<usize> {
        let rest: String = self.input[self.pos..].iter().collect::<String>().to_lowercase();
        for (i, choice) in choices.iter().enumerate() {
            let candidate = match len {
                Some(n) => choice[..n].to_lowercase(),
                None => choice.to_lowercase(),
            };
            if rest.starts_with(&candidate) {
                self.pos += candidate.chars().count();
                return Ok(i);
            }
        }
        Err(self.invalid(what))
    }
}

/// Reads a date/time from `text` by `fmt` (`to_date`, `to_timestamp`): fields take their
/// digits (at most their width when the next part is another field), separators in the
/// format match any non-alphanumeric character of the input, names match
/// case-insensitively, missing fields default to 0001-01-01 00:00:00.
fn parse_datetime(text: &str, fmt: &str) -> Result<NaiveDateTime> {
    let parts = parse_format(fmt);
    let mut cur = Cursor { text, input: text.chars().collect(), pos: 0 };
    let (mut year, mut month, mut day) = (1i64, 1u32, 1u32);
    let (mut hour, mut minute, mut second, mut micros) = (0u32, 0u32, 0u32, 0i64);
    let (mut pm, mut twelve, mut bc, mut doy) = (None, false, false, None);
    for (k, part) in parts.iter().enumerate() {
        let field = match part {
            Part::Literal(l) => {
                for c in l.chars() {
                    if c.is_whitespace() {
                        cur.skip_spaces();
                    } else if cur.pos < cur.input.len()
                        && (cur.input[cur.pos] == c || !cur.input[cur.pos].is_alphanumeric())
                    {
                        cur.pos += 1;
                    }
                }
                continue;
            }
            Part::Field { field, .. } => *field,
        };
        cur.skip_spaces();
        let width = |max: usize| if matches!(parts.get(k + 1), Some(Part::Field { .. })) { max } else { usize::MAX };
        match field {
            Field::Year(4) | Field::YearComma => year = cur.digits(width(4), true, "YYYY")?.0,
            Field::Year(n) | Field::IsoYear(n) => {
                let (v, len) = cur.digits(width(n as usize), false, "YY")?;
                // Two-digit years pick the century nearest 2020, as PostgreSQL does.
                year = if len <= 2 && n < 4 {
                    if v < 70 {
                        2000 + v
                    } else {
                        1900 + v
                    }
                } else {
                    v
                };
            }
            Field::Mm => month = cur.digits(width(2), false, "MM")?.0 as u32,
            Field::MonthName(_) => month = cur.word(&MONTHS, None, "Month")? as u32 + 1,
            Field::MonthAbbrev(_) => month = cur.word(&MONTHS, Some(3), "Mon")? as u32 + 1,
            Field::Roman { .. } => {
                let romans: Vec<&str> = ROMAN.iter().rev().copied().collect();
                month = 12 - cur.word(&romans, None, "RM")? as u32;
            }
            Field::Dd => day = cur.digits(width(2), false, "DD")?.0 as u32,
            Field::Ddd | Field::Iddd => doy = Some(cur.digits(width(3), false, "DDD")?.0),
            Field::DayName(_) => {
                cur.word(&DAYS, None, "Day")?;
            }
            Field::DayAbbrev(_) => {
                cur.word(&DAYS, Some(3), "Dy")?;
            }
            Field::Hh24 => hour = cur.digits(width(2), false, "HH24")?.0 as u32,
            Field::Hh12 => {
                hour = cur.digits(width(2), false, "HH12")?.0 as u32;
                twelve = true;
            }
            Field::Mi => minute = cur.digits(width(2), false, "MI")?.0 as u32,
            Field::Ss => second = cur.digits(width(2), false, "SS")?.0 as u32,
            Field::Ms | Field::Us | Field::Ff(_) => {
                let (v, len) = cur.digits(width(6), false, "MS")?;
                // The digits read are the leading ones: "5" in MS is 500 ms.
                let scale: u32 = if field == Field::Ms { 3 } else { 6 };
                let value = v * 10i64.pow(scale.saturating_sub(len as u32));
                micros = if scale == 3 { value * 1000 } else { value };
            }
            Field::Ssss => {
                let secs = cur.digits(width(5), false, "SSSS")?.0;
                (hour, minute, second) = ((secs / 3600) as u32, (secs / 60 % 60) as u32, (secs % 60) as u32);
            }
            Field::Meridiem { .. } => pm = Some(cur.word(&["a.m.", "p.m.", "am", "pm"], None, "AM")? % 2 == 1),
            Field::Era { .. } => bc = cur.word(&["b.c.", "a.d.", "bc", "ad"], None, "BC")? % 2 == 0,
            Field::Tz { .. } | Field::Tzh | Field::Tzm | Field::Of => {
                return Err(Error::FeatureNotSupported("time zone fields in to_timestamp formats".into()))
            }
            Field::D | Field::Id | Field::W | Field::Ww | Field::Iw | Field::Cc | Field::J | Field::Q => {
                cur.digits(width(7), false, "field")?;
            }
        }
    }
    if twelve && !(1..=12).contains(&hour) {
        return Err(Error::DataException("22007", format!("hour \"{hour}\" is invalid for the 12-hour clock")));
    }
    if twelve || pm.is_some() {
        hour = hour % 12 + if pm == Some(true) { 12 } else { 0 };
    }
    if bc {
        year = 1 - year;
    }
    let out_of_range = || Error::DatetimeOutOfRange(format!("date/time field value out of range: \"{text}\""));
    let year = i32::try_from(year).map_err(|_| out_of_range())?;
    let date = match doy {
        Some(d) => NaiveDate::from_yo_opt(year, u32::try_from(d).map_err(|_| out_of_range())?),
        None => NaiveDate::from_ymd_opt(year, month, day),
    }
    .ok_or_else(out_of_range)?;
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros as u32).ok_or_else(out_of_range)?;
    Ok(date.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_split_into_fields_and_literals() {
        let parts = parse_format("FMDD \"at\" HH24th");
        assert_eq!(parts[0], Part::Field { field: Field::Dd, fill: true, ordinal: None });
        assert_eq!(parts[1], Part::Literal(" at ".into()));
        assert_eq!(parts[2], Part::Field { field: Field::Hh24, fill: false, ordinal: Some(false) });
    }
}
