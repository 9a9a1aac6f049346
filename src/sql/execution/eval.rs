//! Expression evaluation with SQL's three-valued logic.

use super::{arith, Context, Row};
use crate::error::{Error, Result};
use crate::sql::functions;
use crate::sql::planner::plan::{BinaryOp, Expr, Subquery, UnaryOp};
use crate::types::cast::{cast_in, CastKind};
use crate::types::timezone::Zone;
use crate::types::Value;
use std::cmp::Ordering;
use std::sync::Arc;

/// Evaluates `expr` over `row`.
pub fn eval(expr: &Expr, row: &[Value], ctx: &mut Context) -> Result<Value> {
    // Leaves, the most common nodes, need no check of the stack.
    match expr {
        Expr::Constant(v) => Ok(v.clone()),
        Expr::Column(i) => row.get(*i).cloned().ok_or_else(|| Error::Internal(format!("column #{i} out of range"))),
        _ => eval_composite(expr, row, ctx),
    }
}

/// Evaluates an expression with operands: the recursion over a deep expression grows the
/// stack on the heap instead of overflowing it.
#[recursive::recursive]
fn eval_composite(expr: &Expr, row: &[Value], ctx: &mut Context) -> Result<Value> {
    Ok(match expr {
        Expr::Constant(v) => v.clone(),
        Expr::Column(i) => row.get(*i).cloned().ok_or_else(|| Error::Internal(format!("column #{i} out of range")))?,
        Expr::Outer(i) => ctx
            .outer
            .last()
            .and_then(|r| r.get(*i))
            .cloned()
            .ok_or_else(|| Error::Internal(format!("outer column #{i} out of range")))?,
        Expr::Param(i) => ctx
            .params
            .get(*i)
            .cloned()
            .ok_or_else(|| Error::InvalidParameter(format!("there is no parameter ${}", i + 1)))?,
        Expr::Unary(UnaryOp::Not, e) => match eval(e, row, ctx)? {
            Value::Bool(b) => Value::Bool(!b),
            Value::Null => Value::Null,
            other => return Err(type_error("NOT", &other)),
        },
        Expr::Unary(UnaryOp::Negate, e) => negate(eval(e, row, ctx)?)?,
        Expr::Binary(BinaryOp::And, l, r) => {
            let left = truth(eval(l, row, ctx)?)?;
            if left == Some(false) {
                return Ok(Value::Bool(false));
            }
            match (left, truth(eval(r, row, ctx)?)?) {
                (_, Some(false)) => Value::Bool(false),
                (Some(true), Some(true)) => Value::Bool(true),
                _ => Value::Null,
            }
        }
        Expr::Binary(BinaryOp::Or, l, r) => {
            let left = truth(eval(l, row, ctx)?)?;
            if left == Some(true) {
                return Ok(Value::Bool(true));
            }
            match (left, truth(eval(r, row, ctx)?)?) {
                (_, Some(true)) => Value::Bool(true),
                (Some(false), Some(false)) => Value::Bool(false),
                _ => Value::Null,
            }
        }
        Expr::Binary(op, l, r) => match (in_place(l, row), in_place(r, row)) {
            (Some(left), Some(right)) => binary(*op, left, right, &ctx.session.zone)?,
            _ => {
                let left = eval(l, row, ctx)?;
                let right = eval(r, row, ctx)?;
                binary(*op, &left, &right, &ctx.session.zone)?
            }
        },
        Expr::IsNull(e) => Value::Bool(match eval(e, row, ctx)? {
            // A row IS NULL when every field is.
            Value::Record(fields) => fields.iter().all(Value::is_null),
            v => v.is_null(),
        }),
        Expr::IsDistinct(l, r) => {
            let (a, b) = (eval(l, row, ctx)?, eval(r, row, ctx)?);
            Value::Bool(match (a.is_null(), b.is_null()) {
                (true, true) => false,
                (true, false) | (false, true) => true,
                _ => a.compare(&b) != Some(Ordering::Equal),
            })
        }
        Expr::Like { expr, pattern, case_insensitive } => {
            let (v, p) = (eval(expr, row, ctx)?, eval(pattern, row, ctx)?);
            match (v, p) {
                (Value::Text(s), Value::Text(p)) => Value::Bool(like(&s, &p, *case_insensitive)?),
                _ => Value::Null,
            }
        }
        Expr::InList { expr, list } => {
            let v = eval(expr, row, ctx)?;
            if v.is_null() {
                return Ok(Value::Null);
            }
            let mut candidates = Vec::with_capacity(list.len());
            for item in list {
                candidates.push(eval(item, row, ctx)?);
            }
            membership(&v, candidates.iter())
        }
        Expr::InSubquery { expr, subquery } => {
            let v = eval(expr, row, ctx)?;
            let rows = run_subquery(subquery, row, ctx)?;
            if v.is_null() {
                return Ok(if rows.is_empty() { Value::Bool(false) } else { Value::Null });
            }
            membership(&v, rows.iter().map(|r| r.first().unwrap_or(&Value::Null)))
        }
        Expr::Exists(subquery) => Value::Bool(!run_subquery(subquery, row, ctx)?.is_empty()),
        Expr::ScalarSubquery(subquery) => {
            let rows = run_subquery(subquery, row, ctx)?;
            if rows.len() > 1 {
                return Err(Error::CardinalityViolation(
                    "more than one row returned by a subquery used as an expression".into(),
                ));
            }
            rows.first().and_then(|r| r.first().cloned()).unwrap_or(Value::Null)
        }
        Expr::ArraySubquery(subquery) => {
            let rows = run_subquery(subquery, row, ctx)?;
            Value::Array(rows.iter().map(|r| r.first().cloned().unwrap_or(Value::Null)).collect())
        }
        Expr::Case { operand, whens, otherwise } => {
            let subject = match operand {
                Some(o) => Some(eval(o, row, ctx)?),
                None => None,
            };
            for (when, then) in whens {
                let w = eval(when, row, ctx)?;
                let hit = match &subject {
                    Some(s) => !s.is_null() && !w.is_null() && s.compare(&w) == Some(Ordering::Equal),
                    None => truth(w)? == Some(true),
                };
                if hit {
                    return eval(then, row, ctx);
                }
            }
            match otherwise {
                Some(e) => eval(e, row, ctx)?,
                None => Value::Null,
            }
        }
        Expr::Cast(e, t) => cast_in(eval(e, row, ctx)?, t, CastKind::Explicit, &ctx.session.zone)?,
        Expr::Function { name, args, .. } => match *name {
            "coalesce" => {
                for a in args {
                    let v = eval(a, row, ctx)?;
                    if !v.is_null() {
                        return Ok(v);
                    }
                }
                Value::Null
            }
            "nullif" => {
                let a = eval(&args[0], row, ctx)?;
                let b = eval(&args[1], row, ctx)?;
                if !a.is_null() && !b.is_null() && a.compare(&b) == Some(Ordering::Equal) {
                    Value::Null
                } else {
                    a
                }
            }
            "op_any" | "op_all" => {
                let all = *name == "op_all";
                let left = eval(&args[0], row, ctx)?;
                let items = match eval(&args[1], row, ctx)? {
                    Value::Array(items) => items,
                    Value::Null => return Ok(Value::Null),
                    other => vec![other],
                };
                let op = match &args[2] {
                    Expr::Constant(Value::Text(s)) => match s.as_str() {
                        "Eq" => BinaryOp::Eq,
                        "NotEq" => BinaryOp::NotEq,
                        "Lt" => BinaryOp::Lt,
                        "LtEq" => BinaryOp::LtEq,
                        "Gt" => BinaryOp::Gt,
                        _ => BinaryOp::GtEq,
                    },
                    _ => BinaryOp::Eq,
                };
                // ANY: true if some comparison is true; ALL: false if some is false; NULLs make
                // the answer NULL otherwise.
                let mut saw_null = false;
                for item in &items {
                    match truth(binary(op, &left, item, &ctx.session.zone)?)? {
                        Some(true) if !all => return Ok(Value::Bool(true)),
                        Some(false) if all => return Ok(Value::Bool(false)),
                        None => saw_null = true,
                        _ => {}
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Bool(all)
                }
            }
            "greatest" | "least" => {
                let mut best = Value::Null;
                for a in args {
                    let v = eval(a, row, ctx)?;
                    if v.is_null() {
                        continue;
                    }
                    let better = best.is_null()
                        || match v.compare(&best) {
                            Some(Ordering::Greater) => *name == "greatest",
                            Some(Ordering::Less) => *name == "least",
                            _ => false,
                        };
                    if better {
                        best = v;
                    }
                }
                best
            }
            _ => {
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(eval(a, row, ctx)?);
                }
                match *name {
                    "assign_cast" => cast_in(
                        values.pop().unwrap_or(Value::Null),
                        expr_type(expr),
                        CastKind::Assignment,
                        &ctx.session.zone,
                    )?,
                    "array" => Value::Array(values),
                    "row" => Value::Record(values),
                    // A set-returning call's columns as one row: NULL where the call has run out
                    // of rows (every column NULL; each such function has a column never NULL).
                    "set_row" if values.iter().all(Value::is_null) => Value::Null,
                    "set_row" => Value::Record(values),
                    "record_field" => match &mut values[..] {
                        [Value::Record(fields), Value::Int4(i)] => fields
                            .get_mut(*i as usize)
                            .map(|v| std::mem::replace(v, Value::Null))
                            .unwrap_or(Value::Null),
                        _ => Value::Null,
                    },
                    "row_is_not_null" => Value::Bool(
                        matches!(&values[..], [Value::Record(fields)] if !fields.iter().any(Value::is_null)),
                    ),
                    "current_user" | "session_user" | "user" => Value::Text(ctx.session.user.clone()),
                    "current_database" => Value::Text(ctx.session.database.clone()),
                    "current_schema" => Value::Text("public".into()),
                    "version" => Value::Text(crate::sql::SERVER_VERSION_STRING.to_string()),
                    "pg_backend_pid" => Value::Int4(ctx.session.backend_pid),
                    "set_config" | "current_setting" => settings_call(name, values, ctx)?,
                    _ if super::catalog_fns::handles(name) => super::catalog_fns::call(name, values, ctx)?,
                    _ if super::sequences::handles(name) => super::sequences::call(name, values, ctx)?,
                    _ => functions::call(name, values, ctx.now, &ctx.session.zone, ctx.interrupt())?,
                }
            }
        },
    })
}

fn expr_type(expr: &Expr) -> &crate::types::DataType {
    match expr {
        Expr::Function { return_type, .. } => return_type,
        _ => &crate::types::DataType::Unknown,
    }
}

/// `v IN (candidates)` for a non-NULL `v`: true on a match, else NULL if a candidate was NULL,
/// else false.
fn membership<'a>(v: &Value, candidates: impl Iterator<Item = &'a Value>) -> Value {
    let mut saw_null = false;
    for candidate in candidates {
        if candidate.is_null() {
            saw_null = true;
        } else if v.compare(candidate) == Some(Ordering::Equal) {
            return Value::Bool(true);
        }
    }
    if saw_null {
        Value::Null
    } else {
        Value::Bool(false)
    }
}

/// Applies a binary operator (not AND/OR) to two values; NULL in, NULL out.
/// A constant or a column of the row, read where it is (operators take their operands by
/// reference, so the common `column op constant` copies nothing).
fn in_place<'a>(e: &'a Expr, row: &'a [Value]) -> Option<&'a Value> {
    match e {
        Expr::Constant(v) => Some(v),
        Expr::Column(i) => row.get(*i),
        _ => None,
    }
}

pub fn binary(op: BinaryOp, left: &Value, right: &Value, zone: &Zone) -> Result<Value> {
    if left.is_null() || right.is_null() {
        return Ok(Value::Null);
    }
    Ok(match op {
        BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq => {
            let ord = left.compare(right).ok_or_else(|| {
                Error::UndefinedFunction(format!(
                    "operator does not exist: {} {} {}",
                    left.data_type().map(|t| t.to_string()).unwrap_or_default(),
                    arith::op_symbol(op),
                    right.data_type().map(|t| t.to_string()).unwrap_or_default()
                ))
            })?;
            Value::Bool(match op {
                BinaryOp::Eq => ord == Ordering::Equal,
                BinaryOp::NotEq => ord != Ordering::Equal,
                BinaryOp::Lt => ord == Ordering::Less,
                BinaryOp::LtEq => ord != Ordering::Greater,
                BinaryOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            })
        }
        BinaryOp::Concat => match (left, right) {
            (Value::Text(a), Value::Text(b)) => {
                crate::sql::functions::check_value_size(a.len() + b.len())?;
                Value::Text(format!("{a}{b}"))
            }
            (Value::Bytea(a), Value::Bytea(b)) => {
                crate::sql::functions::check_value_size(a.len() + b.len())?;
                Value::Bytea([a.as_slice(), b.as_slice()].concat())
            }
            (Value::Jsonb(serde_json::Value::Array(a)), Value::Jsonb(serde_json::Value::Array(b))) => {
                Value::Jsonb(serde_json::Value::Array(a.iter().chain(b.iter()).cloned().collect()))
            }
            (Value::Jsonb(serde_json::Value::Object(a)), Value::Jsonb(serde_json::Value::Object(b))) => {
                let mut merged = a.clone();
                merged.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
                Value::Jsonb(serde_json::Value::Object(merged))
            }
            (a, b) => Value::Text(format!("{}{}", text_of(a, zone), text_of(b, zone))),
        },
        BinaryOp::JsonGet => functions::json::get(left, right, false),
        BinaryOp::JsonGetText => functions::json::get(left, right, true),
        BinaryOp::RegexMatch { case_insensitive } => match (left, right) {
            (Value::Text(s), Value::Text(p)) => Value::Bool(regex_match(s, p, case_insensitive)?),
            _ => Value::Null,
        },
        BinaryOp::And | BinaryOp::Or => return Err(Error::Internal("AND/OR evaluated as a plain operator".into())),
        _ => arith::arithmetic_in(op, left, right, zone)?,
    })
}

fn text_of(v: &Value, zone: &Zone) -> String {
    match v {
        Value::Bool(b) => (if *b { "true" } else { "false" }).to_string(),
        other => other.in_zone(zone).to_string(),
    }
}

/// The truth value of a boolean (None for NULL).
pub fn truth(v: Value) -> Result<Option<bool>> {
    match v {
        Value::Bool(b) => Ok(Some(b)),
        Value::Null => Ok(None),
        other => Err(type_error("a boolean condition", &other)),
    }
}

fn type_error(what: &str, v: &Value) -> Error {
    Error::DatatypeMismatch(format!(
        "argument of {what} must be type boolean, not type {}",
        v.data_type().map(|t| t.to_string()).unwrap_or_default()
    ))
}

fn negate(v: Value) -> Result<Value> {
    let range = |t: &str| Error::NumericOutOfRange(format!("{t} out of range"));
    Ok(match v {
        Value::Null => Value::Null,
        Value::Int2(i) => Value::Int2(i.checked_neg().ok_or_else(|| range("smallint"))?),
        Value::Int4(i) => Value::Int4(i.checked_neg().ok_or_else(|| range("integer"))?),
        Value::Int8(i) => Value::Int8(i.checked_neg().ok_or_else(|| range("bigint"))?),
        Value::Float4(f) => Value::Float4(-f),
        Value::Float8(f) => Value::Float8(-f),
        Value::Numeric(d) => Value::Numeric(-d),
        Value::NumericNaN => Value::NumericNaN,
        Value::NumericInf { negative } => Value::NumericInf { negative: !negative },
        Value::Interval(iv) => {
            Value::Interval(crate::types::value::Interval { months: -iv.months, days: -iv.days, micros: -iv.micros })
        }
        other => {
            return Err(Error::UndefinedFunction(format!(
                "operator does not exist: - {}",
                other.data_type().map(|t| t.to_string()).unwrap_or_default()
            )))
        }
    })
}

/// Runs a subquery for the current row; uncorrelated ones run once per statement.
fn run_subquery(subquery: &Subquery, row: &[Value], ctx: &mut Context) -> Result<Arc<Vec<Row>>> {
    if !subquery.correlated {
        if let Some(rows) = ctx.subquery_cache.get(&subquery.id) {
            return Ok(rows.clone());
        }
    }
    ctx.outer.push(row.to_vec());
    let result = super::collect(&subquery.node, ctx);
    ctx.outer.pop();
    let rows = Arc::new(result?);
    if !subquery.correlated {
        ctx.subquery_cache.insert(subquery.id, rows.clone());
    }
    Ok(rows)
}

/// `set_config(name, value, is_local)` (the value, applied as `SET` once the statement has
/// run; `is_local` as `SET LOCAL`) and `current_setting(name [, missing_ok])`.
fn settings_call(name: &str, values: Vec<Value>, ctx: &mut Context) -> Result<Value> {
    let text = |i: usize| match values.get(i) {
        Some(Value::Text(s)) => Some(s.to_ascii_lowercase()),
        _ => None,
    };
    let Some(setting) = text(0) else { return Ok(Value::Null) };
    let setting = if setting == "time zone" { "timezone".to_string() } else { setting };
    if name == "set_config" {
        let value = match values.get(1) {
            Some(Value::Text(v)) => v.clone(),
            _ => String::new(),
        };
        ctx.setting_changes.push((setting, value.clone()));
        return Ok(Value::Text(value));
    }
    match ctx.setting(&setting) {
        Some(value) => Ok(Value::Text(value.to_string())),
        None if matches!(values.get(1), Some(Value::Bool(true))) => Ok(Value::Null),
        None => Err(Error::UndefinedObject(format!("unrecognized configuration parameter \"{setting}\""))),
    }
}

/// SQL LIKE: `%` any run, `_` one character, `\` escapes.
pub fn like(s: &str, pattern: &str, case_insensitive: bool) -> Result<bool> {
    let (s, pattern) = if case_insensitive {
        (s.to_lowercase(), pattern.to_lowercase())
    } else {
        (s.to_string(), pattern.to_string())
    };
    let text: Vec<char> = s.chars().collect();
    let mut pat: Vec<(char, bool)> = Vec::new(); // (char, is_literal)
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) => pat.push((n, true)),
                None => {
                    return Err(Error::DataException("22025", "LIKE pattern must not end with escape character".into()))
                }
            }
        } else {
            pat.push((c, false));
        }
    }
    // Iterative matching with backtracking on the last '%'.
    let (mut ti, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < text.len() {
        if pi < pat.len() && !pat[pi].1 && pat[pi].0 == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < pat.len() && ((!pat[pi].1 && pat[pi].0 == '_') || pat[pi].0 == text[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return Ok(false);
        }
    }
    while pi < pat.len() && !pat[pi].1 && pat[pi].0 == '%' {
        pi += 1;
    }
    Ok(pi == pat.len())
}

/// A small regular-expression matcher for `~`: supports literals, `.`, `*`, `+`, `?`, `^`,
/// `$`, character classes `[...]`; anything else is rejected rather than misinterpreted.
fn regex_match(s: &str, pattern: &str, case_insensitive: bool) -> Result<bool> {
    let (s, pattern) = if case_insensitive {
        (s.to_lowercase(), pattern.to_lowercase())
    } else {
        (s.to_string(), pattern.to_string())
    };
    super::regex::is_match(&pattern, &s)
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like("sensor-12", "sensor-%", false).unwrap());
        assert!(like("abc", "a_c", false).unwrap());
        assert!(!like("abc", "a_", false).unwrap());
        assert!(like("ABC", "a%", true).unwrap());
        assert!(like("a%c", "a\\%c", false).unwrap());
        assert!(!like("abc", "a\\%c", false).unwrap());
        assert!(like("", "%", false).unwrap());
        assert!(like("mississippi", "%iss%pi", false).unwrap());
    }
}
