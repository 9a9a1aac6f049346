//! Regular-expression matching for `~` and `~*`, on the `regex` crate (whose syntax covers the
//! POSIX-style patterns clients such as psql send). Compiled patterns are cached per thread.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static CACHE: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
}

/// True if `pattern` matches anywhere in `text`.
pub fn is_match(pattern: &str, text: &str) -> Result<bool> {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(pattern) {
            let compiled = regex::Regex::new(pattern)
                .map_err(|e| Error::InvalidParameter(format!("invalid regular expression: {e}")))?;
            if cache.len() > 256 {
                cache.clear();
            }
            cache.insert(pattern.to_string(), compiled);
        }
        Ok(cache.get(pattern).is_some_and(|re| re.is_match(text)))
    })
}
