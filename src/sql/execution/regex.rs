//! Regular-expression matching for `~` and `~*`, on the `regex` crate (whose syntax covers the
//! POSIX-style patterns clients such as psql send). Compiled patterns are cached per thread.

use super::Interrupt;
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static CACHE: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
}

/// Runs `f` with `pattern` compiled (from the cache when it was compiled before).
fn with_compiled<T>(pattern: &str, f: impl FnOnce(&regex::Regex) -> T) -> Result<T> {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(pattern) {
            // `.` matches a newline too, as PostgreSQL's regular expressions (and SIMILAR
            // TO's `%` and `_`) do.
            let compiled = regex::RegexBuilder::new(pattern)
                .dot_matches_new_line(true)
                .build()
                .map_err(|e| Error::InvalidParameter(format!("invalid regular expression: {e}")))?;
            if cache.len() > 256 {
                cache.clear();
            }
            cache.insert(pattern.to_string(), compiled);
        }
        let compiled = cache.get(pattern).ok_or_else(|| Error::Internal("regex cache".into()))?;
        Ok(f(compiled))
    })
}

/// True if `pattern` matches anywhere in `text`.
pub fn is_match(pattern: &str, text: &str) -> Result<bool> {
    with_compiled(pattern, |re| re.is_match(text))
}

/// How many matches a long-running loop handles between checks of the cancel flag.
const MATCHES_PER_CHECK: usize = 4096;

/// `text` split at every match of `pattern` (`regexp_split_to_table`). As in PostgreSQL, an
/// empty match splits between characters, and empty matches at either end add nothing.
pub fn split(pattern: &str, text: &str, interrupt: Interrupt) -> Result<Vec<String>> {
    with_compiled(pattern, |re| {
        let mut pieces = Vec::new();
        let mut start = 0;
        for (n, m) in re.find_iter(text).enumerate() {
            if n.is_multiple_of(MATCHES_PER_CHECK) {
                interrupt.check()?;
            }
            if m.is_empty() && (m.start() == 0 || m.start() == text.len()) {
                continue;
            }
            pieces.push(text[start..m.start()].to_string());
            start = m.end();
        }
        pieces.push(text[start..].to_string());
        Ok(pieces)
    })?
}

/// The groups of one match (the whole match when the pattern has none), a group that did not
/// take part as None.
fn groups(caps: &regex::Captures) -> Vec<Option<String>> {
    if caps.len() == 1 {
        vec![caps.get(0).map(|m| m.as_str().to_string())]
    } else {
        caps.iter().skip(1).map(|g| g.map(|m| m.as_str().to_string())).collect()
    }
}

/// The groups of the first match of `pattern` in `text`; None when nothing matches.
pub fn captures(pattern: &str, text: &str) -> Result<Option<Vec<Option<String>>>> {
    with_compiled(pattern, |re| re.captures(text).map(|caps| groups(&caps)))
}

/// The groups of the first match, or of every match when `global`.
pub fn all_captures(pattern: &str, text: &str, global: bool, interrupt: Interrupt) -> Result<Vec<Vec<Option<String>>>> {
    with_compiled(pattern, |re| {
        let mut all = Vec::new();
        for (n, caps) in re.captures_iter(text).enumerate() {
            if n.is_multiple_of(MATCHES_PER_CHECK) {
                interrupt.check()?;
            }
            all.push(groups(&caps));
            if !global {
                break;
            }
        }
        Ok(all)
    })?
}

/// `text` with the first match of `pattern` (every match when `global`) replaced by
/// `replacement` (the regex crate's `${n}` syntax). The result is bounded by
/// [`crate::sql::functions::MAX_VALUE_BYTES`] before it is built (every match adds at most the
/// replacement's text and, per group reference, the source once), and both passes over the
/// text stop when the statement is cancelled.
pub fn replace(pattern: &str, text: &str, replacement: &str, global: bool, interrupt: Interrupt) -> Result<String> {
    with_compiled(pattern, |re| {
        let mut matches = 0usize;
        for _ in re.find_iter(text).take(if global { usize::MAX } else { 1 }) {
            if matches.is_multiple_of(MATCHES_PER_CHECK) {
                interrupt.check()?;
            }
            matches += 1;
        }
        let references = replacement.matches("${").count();
        let bound = text
            .len()
            .saturating_add(matches.saturating_mul(replacement.len()))
            .saturating_add(references.saturating_mul(text.len()));
        crate::sql::functions::check_value_size(bound)?;
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (n, caps) in re.captures_iter(text).take(matches).enumerate() {
            if n.is_multiple_of(MATCHES_PER_CHECK) {
                interrupt.check()?;
            }
            let Some(whole) = caps.get(0) else { continue };
            out.push_str(&text[last..whole.start()]);
            caps.expand(replacement, &mut out);
            last = whole.end();
        }
        out.push_str(&text[last..]);
        Ok(out)
    })?
}
