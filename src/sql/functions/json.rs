//! `jsonb` functions and the functions behind its operators (`#>`, `#>>`, `?`, `?|`, `?&`,
//! `@>`, `<@`, `-`, `#-`), with PostgreSQL's semantics and errors.

use super::Signature;
use crate::error::{Error, Result};
use crate::types::timezone::Zone;
use crate::types::{DataType, Value};
use serde_json::Value as Json;

/// The function an operator on `jsonb` stands for.
pub fn operator_function(symbol: &str) -> Option<&'static str> {
    Some(match symbol {
        "#>" => "jsonb_path",
        "#>>" => "jsonb_path_text",
        "#-" => "jsonb_delete_path",
        "?" => "jsonb_exists",
        "?|" => "jsonb_exists_any",
        "?&" => "jsonb_exists_all",
        "@>" => "jsonb_contains",
        "<@" => "jsonb_contained",
        "-" => "jsonb_delete",
        _ => return None,
    })
}

/// Resolves a `jsonb` function, or None when `name` is not one (or not with `args.len()`
/// arguments).
pub fn resolve(name: &str, args: &[DataType]) -> Option<Signature> {
    use DataType as T;
    let text_array = || T::Array(Box::new(T::Text));
    let sig = |name: &'static str, arg_types: Vec<DataType>, return_type: DataType| {
        Some(Signature { name, arg_types, return_type })
    };
    let n = args.len();
    match (name, n) {
        ("jsonb_path", 2) => sig("jsonb_path", vec![T::Jsonb, text_array()], T::Jsonb),
        ("jsonb_path_text", 2) => sig("jsonb_path_text", vec![T::Jsonb, text_array()], T::Text),
        ("jsonb_extract_path", _) if n >= 2 => {
            sig("jsonb_extract_path", [vec![T::Jsonb], vec![T::Text; n - 1]].concat(), T::Jsonb)
        }
        ("jsonb_extract_path_text", _) if n >= 2 => {
            sig("jsonb_extract_path_text", [vec![T::Jsonb], vec![T::Text; n - 1]].concat(), T::Text)
        }
        ("jsonb_delete_path", 2) => sig("jsonb_delete_path", vec![T::Jsonb, text_array()], T::Jsonb),
        ("jsonb_exists", 2) => sig("jsonb_exists", vec![T::Jsonb, T::Text], T::Bool),
        ("jsonb_exists_any", 2) => sig("jsonb_exists_any", vec![T::Jsonb, text_array()], T::Bool),
        ("jsonb_exists_all", 2) => sig("jsonb_exists_all", vec![T::Jsonb, text_array()], T::Bool),
        ("jsonb_contains", 2) => sig("jsonb_contains", vec![T::Jsonb, T::Jsonb], T::Bool),
        ("jsonb_contained", 2) => sig("jsonb_contained", vec![T::Jsonb, T::Jsonb], T::Bool),
        ("jsonb_delete", 2) => {
            let key = match &args[1] {
                t if t.is_integer() => T::Int4,
                T::Array(_) => text_array(),
                _ => T::Text,
            };
            sig("jsonb_delete", vec![T::Jsonb, key], T::Jsonb)
        }
        ("jsonb_build_object", _) => sig("jsonb_build_object", vec![T::Unknown; n], T::Jsonb),
        ("jsonb_build_array", _) => sig("jsonb_build_array", vec![T::Unknown; n], T::Jsonb),
        ("jsonb_array_length", 1) => sig("jsonb_array_length", vec![T::Jsonb], T::Int4),
        ("jsonb_strip_nulls", 1) => sig("jsonb_strip_nulls", vec![T::Jsonb], T::Jsonb),
        ("jsonb_set", 3) => sig("jsonb_set", vec![T::Jsonb, text_array(), T::Jsonb], T::Jsonb),
        ("jsonb_set", 4) => sig("jsonb_set", vec![T::Jsonb, text_array(), T::Jsonb, T::Bool], T::Jsonb),
        _ => None,
    }
}

/// Functions here that are not NULL-in-NULL-out.
pub fn is_strict(name: &str) -> bool {
    !matches!(name, "jsonb_build_object" | "jsonb_build_array")
}

/// Evaluates a function [`resolve`] returned; None when `name` is not one of them.
pub fn call(name: &str, args: &[Value], zone: &Zone) -> Option<Result<Value>> {
    let json = |i: usize| match args.get(i) {
        Some(Value::Jsonb(j)) => j,
        _ => &Json::Null,
    };
    let texts = |i: usize| -> Vec<String> {
        match args.get(i) {
            Some(Value::Array(items)) => {
                items.iter().map(|v| if v.is_null() { String::new() } else { text(v) }).collect()
            }
            Some(v) => vec![text(v)],
            None => Vec::new(),
        }
    };
    let result = match name {
        "jsonb_path" | "jsonb_path_text" => Ok(path_value(json(0), &texts(1), name.ends_with("_text"))),
        "jsonb_extract_path" | "jsonb_extract_path_text" => {
            let path: Vec<String> = args[1..].iter().map(text).collect();
            Ok(path_value(json(0), &path, name.ends_with("_text")))
        }
        "jsonb_delete_path" => Ok(Value::Jsonb(delete_path(json(0).clone(), &texts(1)))),
        "jsonb_exists" => Ok(Value::Bool(exists(json(0), &text(&args[1])))),
        "jsonb_exists_any" => Ok(Value::Bool(texts(1).iter().any(|k| exists(json(0), k)))),
        "jsonb_exists_all" => Ok(Value::Bool(texts(1).iter().all(|k| exists(json(0), k)))),
        "jsonb_contains" => Ok(Value::Bool(contains(json(0), json(1), true))),
        "jsonb_contained" => Ok(Value::Bool(contains(json(1), json(0), true))),
        "jsonb_delete" => delete(json(0).clone(), &args[1]).map(Value::Jsonb),
        "jsonb_build_object" => build_object(args, zone).map(Value::Jsonb),
        "jsonb_build_array" => Ok(Value::Jsonb(Json::Array(args.iter().map(|v| to_json(v, zone)).collect()))),
        "jsonb_array_length" => match json(0) {
            Json::Array(items) => Ok(Value::Int4(items.len() as i32)),
            Json::Object(_) => Err(Error::InvalidParameter("cannot get array length of a non-array".into())),
            _ => Err(Error::InvalidParameter("cannot get array length of a scalar".into())),
        },
        "jsonb_strip_nulls" => Ok(Value::Jsonb(strip_nulls(json(0).clone()))),
        "jsonb_set" => {
            let create = !matches!(args.get(3), Some(Value::Bool(false)));
            Ok(Value::Jsonb(set_path(json(0).clone(), &texts(1), json(2).clone(), create)))
        }
        _ => return None,
    };
    Some(result)
}

/// A SQL value as JSON, as `to_jsonb` converts it: numbers stay numbers, date/time values
/// become ISO 8601 strings (a `timestamptz` in the session's zone `zone`), arrays become JSON
/// arrays.
pub fn to_json(v: &Value, zone: &Zone) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int2(_) | Value::Int4(_) | Value::Int8(_) => Json::from(v.as_i64().unwrap_or(0)),
        Value::Float4(_) | Value::Float8(_) => {
            serde_json::Number::from_f64(v.as_f64().unwrap_or(0.0)).map(Json::Number).unwrap_or(Json::Null)
        }
        Value::Numeric(d) => serde_json::from_str(&d.to_string()).unwrap_or(Json::Null),
        Value::Jsonb(j) => j.clone(),
        Value::Array(items) => Json::Array(items.iter().map(|v| to_json(v, zone)).collect()),
        Value::Timestamp(_) => Json::String(v.to_string().replacen(' ', "T", 1)),
        Value::TimestampTz(_) => {
            // "2024-01-01 10:00:00+00" → "2024-01-01T10:00:00+00:00"
            let mut s = v.in_zone(zone).to_string().replacen(' ', "T", 1);
            if s.len() > 3 && matches!(s.as_bytes()[s.len() - 3], b'+' | b'-') {
                s.push_str(":00");
            }
            Json::String(s)
        }
        other => Json::String(text(other)),
    }
}

/// A value's text, booleans as PostgreSQL writes them.
fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Bool(b) => (if *b { "true" } else { "false" }).to_string(),
        other => other.to_string(),
    }
}

/// The value at `path` (`#>`, `#>>`): object keys and array positions (negative from the end).
fn path_value(j: &Json, path: &[String], as_text: bool) -> Value {
    let found = path.iter().try_fold(j, |at, step| match at {
        Json::Object(map) => map.get(step),
        Json::Array(items) => array_index(items.len(), step).and_then(|i| items.get(i)),
        _ => None,
    });
    found.map_or(Value::Null, |v| sql_value(v.clone(), as_text))
}

/// `->` and `->>` on a JSONB value with a text key or an integer index.
pub fn get(j: &Value, key: &Value, as_text: bool) -> Value {
    let Value::Jsonb(json) = j else { return Value::Null };
    let found = match (json, key) {
        (_, Value::Text(k)) => json.get(k.as_str()),
        (Json::Array(items), index) => {
            index.as_i64().and_then(|i| array_position(items.len(), i)).and_then(|i| items.get(i))
        }
        _ => None,
    };
    found.map_or(Value::Null, |v| sql_value(v.clone(), as_text))
}

/// A JSON value as SQL sees it: `jsonb`, or as text for `->>`, `#>>` and the `_text`
/// functions (JSON null is SQL NULL, strings lose their quotes).
pub fn sql_value(j: Json, as_text: bool) -> Value {
    match j {
        Json::Null if as_text => Value::Null,
        Json::String(s) if as_text => Value::Text(s),
        other if as_text => Value::Text(Value::Jsonb(other).to_string()),
        other => Value::Jsonb(other),
    }
}

/// `?`: a key of an object, a string element of an array, or the string itself.
fn exists(j: &Json, key: &str) -> bool {
    match j {
        Json::Object(map) => map.contains_key(key),
        Json::Array(items) => items.iter().any(|i| matches!(i, Json::String(s) if s == key)),
        Json::String(s) => s == key,
        _ => false,
    }
}

/// `@>`: every member of `b` is in `a`, recursively; an array may contain a scalar at the top.
fn contains(a: &Json, b: &Json, top: bool) -> bool {
    match (a, b) {
        (Json::Object(am), Json::Object(bm)) => {
            bm.iter().all(|(k, bv)| am.get(k).is_some_and(|av| contains(av, bv, false)))
        }
        (Json::Array(ai), Json::Array(bi)) => bi.iter().all(|bv| {
            ai.iter().any(|av| match (av, bv) {
                (Json::Array(_) | Json::Object(_), _) => contains(av, bv, false),
                _ => scalar_eq(av, bv),
            })
        }),
        (Json::Array(ai), scalar) if top && !matches!(scalar, Json::Object(_)) => {
            ai.iter().any(|av| scalar_eq(av, scalar))
        }
        (a, b) => scalar_eq(a, b),
    }
}

/// Equality of JSON scalars; numbers compare by value (`1.0` equals `1`).
fn scalar_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// `jsonb - key` (keys of an object, string elements of an array), `- index`, `- keys[]`.
fn delete(j: Json, what: &Value) -> Result<Json> {
    match (j, what) {
        (Json::Object(_), v) if v.as_i64().is_some() => {
            Err(Error::InvalidParameter("cannot delete from object using integer index".into()))
        }
        (Json::Array(mut items), v) if v.as_i64().is_some() => {
            if let Some(i) = v.as_i64().and_then(|i| array_position(items.len(), i)) {
                items.remove(i);
            }
            Ok(Json::Array(items))
        }
        (Json::Object(mut map), v) => {
            for key in keys_of(v) {
                map.remove(&key);
            }
            Ok(Json::Object(map))
        }
        (Json::Array(items), v) => {
            let keys = keys_of(v);
            Ok(Json::Array(items.into_iter().filter(|i| !matches!(i, Json::String(s) if keys.contains(s))).collect()))
        }
        _ => Err(Error::InvalidParameter("cannot delete from scalar".into())),
    }
}

fn keys_of(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter(|i| !i.is_null()).map(text).collect(),
        other => vec![text(other)],
    }
}

/// `#-`: removes the member at `path`.
fn delete_path(mut j: Json, path: &[String]) -> Json {
    let Some((last, parents)) = path.split_last() else { return j };
    let Some(at) = member_mut(&mut j, parents) else { return j };
    match at {
        Json::Object(map) => {
            map.remove(last);
        }
        Json::Array(items) => {
            if let Some(i) = array_index(items.len(), last) {
                items.remove(i);
            }
        }
        _ => {}
    }
    j
}

/// The member at `path`, if there is one.
fn member_mut<'a>(j: &'a mut Json, path: &[String]) -> Option<&'a mut Json> {
    path.iter().try_fold(j, |at, step| match at {
        Json::Object(map) => map.get_mut(step),
        Json::Array(items) => array_index(items.len(), step).and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

/// An existing position of an array of `len` from a path step (negative from the end).
fn array_index(len: usize, step: &str) -> Option<usize> {
    array_position(len, step.parse().ok()?)
}

/// An existing position of an array of `len` (negative counts from the end).
fn array_position(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    usize::try_from(i).ok().filter(|i| *i < len)
}

/// `jsonb_set`: replaces the value at `path`, or adds it when its parent exists and `create`
/// (array positions past either end add at that end).
fn set_path(mut j: Json, path: &[String], value: Json, create: bool) -> Json {
    let Some((last, parents)) = path.split_last() else { return j };
    let Some(at) = member_mut(&mut j, parents) else { return j };
    match at {
        Json::Object(map) if create || map.contains_key(last) => {
            map.insert(last.clone(), value);
        }
        Json::Array(items) => match (array_index(items.len(), last), last.parse::<i64>()) {
            (Some(i), _) => items[i] = value,
            (None, Ok(i)) if create => {
                if i < 0 {
                    items.insert(0, value)
                } else {
                    items.push(value)
                }
            }
            _ => {}
        },
        _ => {}
    }
    j
}

fn strip_nulls(j: Json) -> Json {
    match j {
        Json::Object(map) => {
            Json::Object(map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, strip_nulls(v))).collect())
        }
        Json::Array(items) => Json::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn build_object(args: &[Value], zone: &Zone) -> Result<Json> {
    if !args.len().is_multiple_of(2) {
        return Err(Error::InvalidParameter("argument list must have even number of elements".into()));
    }
    let mut map = serde_json::Map::new();
    for (i, pair) in args.chunks(2).enumerate() {
        if pair[0].is_null() {
            return Err(Error::InvalidParameter(format!("argument {}: key must not be null", 2 * i + 1)));
        }
        // A key is the value as JSON would show it (a timestamptz in ISO 8601, in the
        // session's zone), unquoted.
        let key = match to_json(&pair[0], zone) {
            Json::String(s) => s,
            other => other.to_string(),
        };
        map.insert(key, to_json(&pair[1], zone));
    }
    Ok(Json::Object(map))
}
