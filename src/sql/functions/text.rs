//! String, regular-expression and array functions: `format`, `regexp_replace`,
//! `regexp_match`, `substring(… FROM pattern)`, `overlay`, `translate`, `chr`, `ascii`, `to_hex`, `quote_ident`, `quote_literal`,
//! `string_to_array`, `array_to_string`, `array_append` and friends, `num_nulls`,
//! `pg_size_pretty`.

use super::Signature;
use crate::error::{Error, Result};
use crate::sql::execution::{regex, Interrupt};
use crate::types::timezone::Zone;
use crate::types::{DataType, Value};

/// Resolves one of these functions, or None when `name` is not one of them.
pub fn resolve(name: &str, args: &[DataType]) -> Option<Signature> {
    use DataType as T;
    let text = T::Text;
    let text_array = T::Array(Box::new(T::Text));
    let sig = |name: &'static str, arg_types: Vec<DataType>, return_type: DataType| {
        Some(Signature { name, arg_types, return_type })
    };
    let n = args.len();
    // The element type of an array argument (text for an untyped literal).
    let element = |t: &DataType| match t {
        T::Array(e) => Some((**e).clone()),
        T::Unknown => Some(T::Text),
        _ => None,
    };
    match (name, n) {
        ("format", _) if n >= 1 => sig("format", [vec![text], vec![T::Unknown; n - 1]].concat(), T::Text),
        ("regexp_replace", 3 | 4) => sig("regexp_replace", vec![text; n], T::Text),
        ("regexp_match", 2 | 3) => sig("regexp_match", vec![text; n], text_array),
        ("regexp_like", 2 | 3) => sig("regexp_like", vec![text; n], T::Bool),
        ("substring_regex", 2) => sig("substring_regex", vec![text; 2], T::Text),
        ("translate", 3) => sig("translate", vec![text; 3], T::Text),
        ("like_escape", 2) => sig("like_escape", vec![text; 2], T::Text),
        ("similar_to_escape", 1 | 2) => sig("similar_to_escape", vec![text; n], T::Text),
        ("overlay", 3) => sig("overlay", vec![text.clone(), text, T::Int4], T::Text),
        ("overlay", 4) => sig("overlay", vec![text.clone(), text, T::Int4, T::Int4], T::Text),
        ("chr", 1) => sig("chr", vec![T::Int4], T::Text),
        ("ascii", 1) => sig("ascii", vec![text], T::Int4),
        ("to_hex", 1) => sig("to_hex", vec![if args[0] == T::Int8 { T::Int8 } else { T::Int4 }], T::Text),
        ("quote_ident", 1) => sig("quote_ident", vec![text], T::Text),
        ("quote_literal", 1) => sig("quote_literal", vec![text], T::Text),
        ("quote_nullable", 1) => sig("quote_nullable", vec![text], T::Text),
        ("string_to_array", 2 | 3) => sig("string_to_array", vec![text; n], text_array),
        ("array_to_string", 2 | 3) => {
            // Catalog columns that PostgreSQL types as arrays (datacl, relacl) are text
            // here, already joined.
            let array = match &args[0] {
                T::Array(_) | T::Text => args[0].clone(),
                _ => text_array,
            };
            sig("array_to_string", [vec![array], vec![text; n - 1]].concat(), T::Text)
        }
        ("array_append", 2) => {
            let e = element(&args[0])?;
            sig("array_append", vec![T::Array(Box::new(e.clone())), e.clone()], T::Array(Box::new(e)))
        }
        ("array_prepend", 2) => {
            let e = element(&args[1])?;
            sig("array_prepend", vec![e.clone(), T::Array(Box::new(e.clone()))], T::Array(Box::new(e)))
        }
        ("array_cat", 2) => {
            let e = element(&args[0]).or_else(|| element(&args[1]))?;
            let a = T::Array(Box::new(e));
            sig("array_cat", vec![a.clone(), a.clone()], a)
        }
        ("array_position" | "array_remove", 2) => {
            let e = element(&args[0])?;
            let a = T::Array(Box::new(e.clone()));
            match name {
                "array_position" => sig("array_position", vec![a, e], T::Int4),
                _ => sig("array_remove", vec![a.clone(), e], a),
            }
        }
        ("num_nulls" | "num_nonnulls", _) if n >= 1 => {
            sig(if name == "num_nulls" { "num_nulls" } else { "num_nonnulls" }, vec![T::Unknown; n], T::Int4)
        }
        ("pg_size_pretty", 1) => sig("pg_size_pretty", vec![T::Int8], T::Text),
        _ => None,
    }
}

/// Functions here that are not NULL-in-NULL-out.
pub fn is_strict(name: &str) -> bool {
    !matches!(
        name,
        "format"
            | "quote_nullable"
            | "array_to_string"
            | "string_to_array"
            | "array_append"
            | "array_prepend"
            | "array_cat"
            | "array_position"
            | "array_remove"
            | "num_nulls"
            | "num_nonnulls"
    )
}

/// Evaluates a function [`resolve`] returned; None when `name` is not one of them.
pub fn call(name: &str, args: &[Value], zone: &Zone, interrupt: Interrupt) -> Option<Result<Value>> {
    let text = |i: usize| match args.get(i) {
        Some(Value::Text(s)) => Some(s.as_str()),
        _ => None,
    };
    let s = |i: usize| text(i).unwrap_or_default();
    let items = |i: usize| match args.get(i) {
        Some(Value::Array(items)) => Some(items.as_slice()),
        _ => None,
    };
    Some(Ok(match name {
        "format" => return Some(format(s(0), &args[1..], zone).map(Value::Text)),
        "like_escape" => return Some(like_escape(s(0), s(1)).map(Value::Text)),
        "similar_to_escape" => return Some(similar_to_regex(s(0), text(1).unwrap_or("\\")).map(Value::Text)),
        "regexp_replace" => {
            return Some(regexp_replace(s(0), s(1), s(2), text(3).unwrap_or(""), interrupt).map(Value::Text))
        }
        "regexp_match" => {
            let pattern = match flagged(s(1), text(2).unwrap_or("")) {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            };
            return Some(regex::captures(&pattern, s(0)).map(|found| match found {
                Some(groups) => Value::Array(groups.into_iter().map(|g| g.map_or(Value::Null, Value::Text)).collect()),
                None => Value::Null,
            }));
        }
        "regexp_like" => {
            let pattern = match flagged(s(1), text(2).unwrap_or("")) {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            };
            return Some(regex::is_match(&pattern, s(0)).map(Value::Bool));
        }
        "substring_regex" => {
            // The first parenthesized group if the pattern has one, else the whole match.
            return Some(regex::captures(s(1), s(0)).map(|found| match found {
                Some(groups) => groups.into_iter().next().flatten().map_or(Value::Null, Value::Text),
                None => Value::Null,
            }));
        }
        "translate" => {
            let (from, to): (Vec<char>, Vec<char>) = (s(1).chars().collect(), s(2).chars().collect());
            Value::Text(
                s(0).chars()
                    .filter_map(|c| match from.iter().position(|f| *f == c) {
                        Some(i) => to.get(i).copied(),
                        None => Some(c),
                    })
                    .collect(),
            )
        }
        "chr" => {
            let code = args[0].as_i64().unwrap_or(0);
            match u32::try_from(code).ok().and_then(char::from_u32) {
                Some('\0') => return Some(Err(Error::InvalidParameter("null character not permitted".into()))),
                Some(c) => Value::Text(c.to_string()),
                None => {
                    return Some(Err(Error::InvalidParameter(format!(
                        "requested character not valid for encoding: {code}"
                    ))))
                }
            }
        }
        "overlay" => {
            // The characters from `start` (1-based) for `count` (the replacement's length by
            // default) give way to the replacement.
            let chars: Vec<char> = s(0).chars().collect();
            let replacement = s(1);
            let start = args[2].as_i64().unwrap_or(1);
            let count = args.get(3).and_then(Value::as_i64).unwrap_or(replacement.chars().count() as i64);
            if start < 1 || count < 0 {
                return Some(Err(Error::DataException("22011", "negative substring length not allowed".into())));
            }
            let head: String = chars.iter().take(start as usize - 1).collect();
            let tail: String = chars.iter().skip((start - 1 + count) as usize).collect();
            Value::Text(format!("{head}{replacement}{tail}"))
        }
        "ascii" => Value::Int4(s(0).chars().next().map_or(0, |c| c as i32)),
        "to_hex" => match &args[0] {
            Value::Int4(v) => Value::Text(format!("{:x}", *v as u32)),
            other => Value::Text(format!("{:x}", other.as_i64().unwrap_or(0) as u64)),
        },
        "quote_ident" => Value::Text(quote_ident(s(0))),
        "quote_literal" => Value::Text(quote_literal(s(0))),
        "quote_nullable" => match text(0) {
            Some(t) => Value::Text(quote_literal(t)),
            None => Value::Text("NULL".into()),
        },
        "string_to_array" => match text(0) {
            None => Value::Null,
            Some("") => Value::Array(Vec::new()),
            Some(input) => {
                let pieces: Vec<String> = match text(1) {
                    None => input.chars().map(String::from).collect(),
                    Some("") => vec![input.to_string()],
                    Some(delimiter) => input.split(delimiter).map(String::from).collect(),
                };
                let null = text(2);
                Value::Array(
                    pieces
                        .into_iter()
                        .map(|p| if Some(p.as_str()) == null { Value::Null } else { Value::Text(p) })
                        .collect(),
                )
            }
        },
        "array_to_string" if matches!(args.first(), Some(Value::Text(_))) => args[0].clone(),
        "array_to_string" => match (items(0), text(1)) {
            (Some(items), Some(delimiter)) => {
                let null = text(2);
                let shown: Vec<String> = items
                    .iter()
                    .filter_map(|v| match v {
                        Value::Null => null.map(String::from),
                        Value::Text(t) => Some(t.clone()),
                        other => Some(other.in_zone(zone).to_string()),
                    })
                    .collect();
                Value::Text(shown.join(delimiter))
            }
            _ => Value::Null,
        },
        "array_append" | "array_prepend" => {
            let (array, item) = if name == "array_append" { (0, 1) } else { (1, 0) };
            let mut out = items(array).map(<[Value]>::to_vec).unwrap_or_default();
            let item = args[item].clone();
            if name == "array_append" {
                out.push(item);
            } else {
                out.insert(0, item);
            }
            Value::Array(out)
        }
        "array_cat" => match (items(0), items(1)) {
            (None, None) => Value::Null,
            (a, b) => Value::Array([a.unwrap_or_default(), b.unwrap_or_default()].concat()),
        },
        "array_position" => match items(0) {
            Some(list) => list
                .iter()
                .position(|v| !v.is_null() && v == &args[1] || v.is_null() && args[1].is_null())
                .map_or(Value::Null, |i| Value::Int4(i as i32 + 1)),
            None => Value::Null,
        },
        "array_remove" => match items(0) {
            Some(list) => Value::Array(
                list.iter()
                    .filter(|v| !(v.is_null() && args[1].is_null() || !v.is_null() && **v == args[1]))
                    .cloned()
                    .collect(),
            ),
            None => Value::Null,
        },
        "num_nulls" => Value::Int4(args.iter().filter(|v| v.is_null()).count() as i32),
        "num_nonnulls" => Value::Int4(args.iter().filter(|v| !v.is_null()).count() as i32),
        "pg_size_pretty" => Value::Text(size_pretty(args[0].as_i64().unwrap_or(0))),
        _ => return None,
    }))
}

/// An identifier quoted when it needs to be (anything but lower-case letters, digits and `_`).
pub fn quote_ident(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// A string literal; with a backslash it becomes an escape string (`E'…'`), as in PostgreSQL.
fn quote_literal(s: &str) -> String {
    let body = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// A regular expression with PostgreSQL's flags applied (`i` case-insensitive; `g` is the
/// caller's); other flags are refused.
fn flagged(pattern: &str, flags: &str) -> Result<String> {
    let mut prefix = String::new();
    for f in flags.chars() {
        match f {
            'i' => prefix.push_str("(?i)"),
            'c' | 'g' => {}
            'n' | 'm' => prefix.push_str("(?m)"),
            's' => prefix.push_str("(?s)"),
            other => return Err(Error::InvalidParameter(format!("invalid regular expression option: \"{other}\""))),
        }
    }
    Ok(prefix + pattern)
}

/// `regexp_matches`: the groups of the first match, or of every match with flag `g`.
pub fn regexp_matches(
    text: &str,
    pattern: &str,
    flags: &str,
    interrupt: Interrupt,
) -> Result<Vec<Vec<Option<String>>>> {
    let pattern = flagged(pattern, flags)?;
    regex::all_captures(&pattern, text, flags.contains('g'), interrupt)
}

/// `regexp_replace`: the first match (every one with flag `g`) replaced; `\1`…`\9` in the
/// replacement are the groups and `\&` the whole match.
fn regexp_replace(source: &str, pattern: &str, replacement: &str, flags: &str, interrupt: Interrupt) -> Result<String> {
    let pattern = flagged(pattern, flags)?;
    // PostgreSQL's replacement syntax in the regex crate's: `\1` is `${1}`, `$` is literal.
    let mut rewritten = String::with_capacity(replacement.len());
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                rewritten.push_str(&format!("${{{d}}}"));
                chars.next();
            }
            ('\\', Some('&')) => {
                rewritten.push_str("${0}");
                chars.next();
            }
            ('\\', Some('\\')) => {
                rewritten.push('\\');
                chars.next();
            }
            ('$', _) => rewritten.push_str("$$"),
            (other, _) => rewritten.push(other),
        }
    }
    regex::replace(&pattern, source, &rewritten, flags.contains('g'), interrupt)
}

/// `format(fmt, …)`: `%s` (NULL is empty), `%I` (identifier), `%L` (literal, NULL as NULL),
/// `%%`, with `%n$` positions and `-`/width.
fn format(fmt: &str, args: &[Value], zone: &Zone) -> Result<String> {
    let bad = |m: &str| Error::InvalidParameter(m.to_string());
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut spec = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '$' || d == '-' {
                spec.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let (position, rest) = match spec.split_once('$') {
            Some((p, rest)) => (Some(p.parse::<usize>().map_err(|_| bad("invalid argument position"))?), rest),
            None => (None, spec.as_str()),
        };
        let left = rest.starts_with('-');
        let width: usize = rest.trim_start_matches('-').parse().unwrap_or(0);
        super::check_value_size(out.len().saturating_add(width))?;
        let index = match position {
            Some(0) => return Err(bad("format specifies argument 0, but arguments are numbered from 1")),
            Some(p) => p - 1,
            None => next,
        };
        next = index + 1;
        let kind = chars.next().ok_or_else(|| bad("unterminated format() type specifier"))?;
        let arg = args.get(index).ok_or_else(|| bad("too few arguments for format()"))?;
        let shown = match (kind, arg) {
            ('s', Value::Null) => String::new(),
            ('s', Value::Text(t)) => t.clone(),
            ('s', other) => other.in_zone(zone).to_string(),
            ('I', Value::Null) => {
                return Err(Error::DataException(
                    "22004",
                    "null values cannot be formatted as an SQL identifier".into(),
                ))
            }
            ('I', v) => quote_ident(&text_of(v, zone)),
            ('L', Value::Null) => "NULL".to_string(),
            ('L', v) => quote_literal(&text_of(v, zone)),
            (other, _) => return Err(bad(&format!("unrecognized format() type specifier \"{other}\""))),
        };
        let pad = width.saturating_sub(shown.chars().count());
        if left {
            out.push_str(&shown);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&shown);
        }
    }
    Ok(out)
}

fn text_of(v: &Value, zone: &Zone) -> String {
    match v {
        Value::Text(t) => t.clone(),
        other => other.in_zone(zone).to_string(),
    }
}

/// `pg_size_pretty`: bytes, kB, MB, GB, TB, PB, rounding half up once a unit reaches 10240.
fn size_pretty(bytes: i64) -> String {
    let mut value = bytes;
    for unit in ["bytes", "kB", "MB", "GB", "TB"] {
        if value.abs() < 10 * 1024 {
            return format!("{value} {unit}");
        }
        // Halve-and-round as PostgreSQL does: divide by 512, then round the last bit.
        let half = value / 512;
        value = (half + if half >= 0 { 1 } else { -1 }) / 2;
    }
    format!("{value} PB")
}
/// The escape character of `LIKE`/`SIMILAR TO … ESCAPE e`: None for an empty one; more than
/// one character is 22025.
fn escape_char(escape: &str) -> Result<Option<char>> {
    let mut chars = escape.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Ok(None),
        (Some(c), None) => Ok(Some(c)),
        _ => Err(Error::DataException(
            "22025",
            "invalid escape string: Escape string must be empty or one character.".into(),
        )),
    }
}

/// A `SIMILAR TO` pattern as the regular expression it means, as PostgreSQL's
/// `similar_to_escape` writes it: anchored at both ends, `%` and `_` as `.*` and `.`, groups
/// made non-capturing, `.`, `^`, `$` and backslashes literal, bracket expressions copied, and
/// `escape` (empty: none; more than one character is 22025) making the next character literal.
/// An escaped double quote separates the parts `substring` would return.
pub fn similar_to_regex(pattern: &str, escape: &str) -> Result<String> {
    let escape = escape_char(escape)?;
    let mut out = String::from("^(?:");
    let (mut after_escape, mut in_class, mut quotes) = (false, false, 0);
    for c in pattern.chars() {
        if after_escape {
            after_escape = false;
            if c == '"' && !in_class {
                out.push_str(match quotes {
                    0 => "){1,1}?(",
                    1 => "){1,1}(?:",
                    _ => {
                        return Err(Error::DataException(
                            "2201B",
                            "SQL regular expression may not contain more than two escape-double-quote separators"
                                .into(),
                        ))
                    }
                });
                quotes += 1;
            } else {
                out.push('\\');
                out.push(c);
            }
        } else if Some(c) == escape {
            after_escape = true;
        } else if in_class {
            if c == '\\' {
                out.push('\\');
            }
            out.push(c);
            in_class = c != ']';
        } else {
            match c {
                '[' => {
                    out.push('[');
                    in_class = true;
                }
                '%' => out.push_str(".*"),
                '_' => out.push('.'),
                '(' => out.push_str("(?:"),
                '\\' | '.' | '^' | '$' => {
                    out.push('\\');
                    out.push(c);
                }
                other => out.push(other),
            }
        }
    }
    out.push_str(")$");
    Ok(out)
}

/// `pattern` with its escape character `escape` turned into LIKE's own, the backslash, as
/// PostgreSQL's `like_escape` does for `LIKE … ESCAPE`: an empty `escape` makes every
/// character literal; more than one character is 22025.
pub fn like_escape(pattern: &str, escape: &str) -> Result<String> {
    let escape = escape_char(escape)?;
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            out.push('\\');
            match chars.next() {
                Some(next) => out.push(next),
                None => {
                    return Err(Error::DataException("22025", "LIKE pattern must not end with escape character".into()))
                }
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(out)
}
