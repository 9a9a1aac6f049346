//! Set-returning functions (`generate_series`, `unnest`, `jsonb_array_elements`, …) and the
//! [`Node::ProjectSet`] operator that runs them for each input row.

use super::{arith, eval::eval, Context, Row, Sink};
use crate::error::{Error, Result};
use crate::sql::planner::plan::{BinaryOp, Node, SetCall};
use crate::types::Value;
use std::cmp::Ordering;

/// Rows produced before the cancel flag is checked again.
const CHECK_EVERY: u64 = 4096;

/// Runs [`Node::ProjectSet`]: each input row followed by the calls' columns, in lockstep.
pub fn project_set(source: &Node, calls: &[SetCall], ctx: &mut Context, sink: &mut Sink) -> Result<()> {
    super::ops::execute(source, ctx, &mut |ctx, row| {
        let mut arguments = Vec::with_capacity(calls.len());
        for call in calls {
            let mut values = Vec::with_capacity(call.args.len());
            for a in &call.args {
                values.push(eval(a, &row, ctx)?);
            }
            arguments.push(values);
        }
        if let [call] = calls {
            // A single call streams: `generate_series(1, 1e9) LIMIT 3` stops early.
            let mut more = true;
            let args = arguments.pop().unwrap_or_default();
            run_call(call, args, ctx, &mut |ctx, values| {
                let mut out = Vec::with_capacity(row.len() + values.len());
                out.extend(row.iter().cloned());
                out.extend(values);
                more = sink(ctx, out)?;
                Ok(more)
            })?;
            return Ok(more);
        }
        let mut outputs: Vec<Vec<Row>> = Vec::with_capacity(calls.len());
        for (call, args) in calls.iter().zip(arguments) {
            let mut rows = Vec::new();
            run_call(call, args, ctx, &mut |_, values| {
                rows.push(values);
                Ok(true)
            })?;
            outputs.push(rows);
        }
        let longest = outputs.iter().map(Vec::len).max().unwrap_or(0);
        for k in 0..longest {
            let mut out = row.clone();
            for (call, rows) in calls.iter().zip(&outputs) {
                match rows.get(k) {
                    Some(values) => out.extend(values.iter().cloned()),
                    None => out.extend(std::iter::repeat_n(Value::Null, call.width)),
                }
            }
            if !sink(ctx, out)? {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

/// Produces the rows of `call` into `sink`, numbered when it asks for ordinality.
fn run_call(call: &SetCall, args: Vec<Value>, ctx: &mut Context, sink: &mut Sink) -> Result<()> {
    if !call.ordinality {
        return execute(call.name, args, ctx, sink);
    }
    let mut number = 0i64;
    execute(call.name, args, ctx, &mut |ctx, mut values| {
        number += 1;
        values.push(Value::Int8(number));
        sink(ctx, values)
    })
}

/// Produces the rows of one call of `name` into `sink` until it returns false.
pub fn execute(name: &str, args: Vec<Value>, ctx: &mut Context, sink: &mut Sink) -> Result<()> {
    let mut args = args.into_iter();
    let first = args.next().unwrap_or(Value::Null);
    let items: Vec<Row> = match name {
        "generate_series" => {
            let mut all = vec![first];
            all.extend(args);
            return generate_series(all, ctx, sink);
        }
        "_pg_expandarray" => match first {
            Value::Array(items) => (items.into_iter().zip(1..)).map(|(v, n)| vec![v, Value::Int4(n)]).collect(),
            // A catalog vector or array kept as text (`pg_index.indkey`: `1 2`,
            // `pg_constraint.conkey`: `{1,2}`): its numbers.
            Value::Text(vector) => (vector.split([' ', ',', '{', '}']))
                .filter(|s| !s.is_empty())
                .zip(1..)
                .map(|(s, n)| {
                    let x = s
                        .parse::<i16>()
                        .map_err(|_| Error::InvalidText(format!("invalid input syntax for type smallint: \"{s}\"")))?;
                    Ok(vec![Value::Int2(x), Value::Int4(n)])
                })
                .collect::<Result<_>>()?,
            _ => Vec::new(),
        },
        "unnest" => match first {
            Value::Array(items) => items.into_iter().map(|v| vec![v]).collect(),
            Value::Null => Vec::new(),
            other => vec![vec![other]],
        },
        "jsonb_array_elements" | "jsonb_array_elements_text" => match first {
            Value::Jsonb(serde_json::Value::Array(items)) => {
                let as_text = name.ends_with("_text");
                items.into_iter().map(|j| vec![crate::sql::functions::json::sql_value(j, as_text)]).collect()
            }
            Value::Null => Vec::new(),
            Value::Jsonb(serde_json::Value::Object(_)) => {
                return Err(Error::InvalidParameter("cannot extract elements from an object".into()))
            }
            _ => return Err(Error::InvalidParameter("cannot extract elements from a scalar".into())),
        },
        "jsonb_object_keys" | "jsonb_each" | "jsonb_each_text" => match first {
            Value::Jsonb(serde_json::Value::Object(mut map)) => {
                let keys: Vec<String> = crate::types::value::jsonb_key_order(&map).into_iter().cloned().collect();
                keys.into_iter()
                    .map(|k| {
                        let value = map.remove(&k).unwrap_or(serde_json::Value::Null);
                        match name {
                            "jsonb_object_keys" => vec![Value::Text(k)],
                            "jsonb_each" => vec![Value::Text(k), Value::Jsonb(value)],
                            _ => vec![Value::Text(k), crate::sql::functions::json::sql_value(value, true)],
                        }
                    })
                    .collect()
            }
            Value::Null => Vec::new(),
            Value::Jsonb(j) => {
                let kind = match j {
                    serde_json::Value::Array(_) => "an array",
                    _ => "a scalar",
                };
                return Err(Error::InvalidParameter(if name == "jsonb_object_keys" {
                    format!("cannot call {name} on {kind}")
                } else {
                    format!("cannot call {name} on a non-object")
                }));
            }
            other => return Err(Error::InvalidParameter(format!("cannot call {name} on {other}"))),
        },
        "regexp_split_to_table" => {
            let pattern = args.next().unwrap_or(Value::Null);
            let (Value::Text(text), Value::Text(pattern)) = (first, pattern) else { return Ok(()) };
            super::regex::split(&pattern, &text, ctx.interrupt())?
                .into_iter()
                .map(|piece| vec![Value::Text(piece)])
                .collect()
        }
        "regexp_matches" => {
            let (pattern, flags) = (args.next().unwrap_or(Value::Null), args.next());
            let flags = match flags {
                Some(Value::Text(f)) => f,
                Some(_) => return Ok(()),
                None => String::new(),
            };
            let (Value::Text(text), Value::Text(pattern)) = (first, pattern) else { return Ok(()) };
            crate::sql::functions::text::regexp_matches(&text, &pattern, &flags, ctx.interrupt())?
                .into_iter()
                .map(|groups| {
                    vec![Value::Array(groups.into_iter().map(|g| g.map_or(Value::Null, Value::Text)).collect())]
                })
                .collect()
        }
        other => return Err(Error::UndefinedFunction(format!("function {other} does not exist"))),
    };
    for (produced, item) in items.into_iter().enumerate() {
        if (produced as u64 + 1).is_multiple_of(CHECK_EVERY) {
            ctx.check_cancel()?;
        }
        if !sink(ctx, item)? {
            break;
        }
    }
    Ok(())
}

fn generate_series(args: Vec<Value>, ctx: &mut Context, sink: &mut Sink) -> Result<()> {
    let mut args = args.into_iter();
    let (start, stop) = (args.next().unwrap_or(Value::Null), args.next().unwrap_or(Value::Null));
    let step = match args.next() {
        Some(s) => s,
        None => match &start {
            Value::Int8(_) => Value::Int8(1),
            Value::Numeric(_) => Value::Numeric(1.into()),
            _ => Value::Int4(1),
        },
    };
    if start.is_null() || stop.is_null() || step.is_null() {
        return Ok(());
    }
    let zero = match &step {
        Value::Interval(iv) => iv.months == 0 && iv.days == 0 && iv.micros == 0,
        other => other.as_f64() == Some(0.0),
    };
    if zero {
        return Err(Error::InvalidParameter("step size cannot equal zero".into()));
    }
    let descending = match &step {
        Value::Interval(iv) => iv.total_micros() < 0,
        other => other.as_f64().is_some_and(|f| f < 0.0),
    };
    let mut current = start;
    let mut produced = 0u64;
    loop {
        let past_end = match current.compare(&stop) {
            Some(Ordering::Greater) => !descending,
            Some(Ordering::Less) => descending,
            _ => false,
        };
        if past_end {
            return Ok(());
        }
        produced += 1;
        if produced.is_multiple_of(CHECK_EVERY) {
            ctx.check_cancel()?;
        }
        if !sink(ctx, vec![current.clone()])? {
            return Ok(());
        }
        current = match arith::arithmetic_in(BinaryOp::Add, &current, &step, &ctx.session.zone) {
            Ok(next) => next,
            // Stepping past the type's range ends the series, as in PostgreSQL.
            Err(Error::NumericOutOfRange(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
    }
}
