//! Set-returning functions used in FROM: `generate_series` and `unnest`.

use super::{arith, Context, Sink};
use crate::error::{Error, Result};
use crate::sql::planner::plan::BinaryOp;
use crate::types::Value;
use std::cmp::Ordering;

/// Rows produced before the cancel flag is checked again.
const CHECK_EVERY: u64 = 4096;

pub fn execute(name: &str, args: Vec<Value>, ctx: &mut Context, sink: &mut Sink) -> Result<()> {
    match name {
        "generate_series" => generate_series(args, ctx, sink),
        "unnest" => {
            let items = match args.into_iter().next() {
                Some(Value::Array(items)) => items,
                Some(Value::Null) | None => Vec::new(),
                Some(other) => vec![other],
            };
            for item in items {
                if !sink(ctx, vec![item])? {
                    break;
                }
            }
            Ok(())
        }
        other => Err(Error::UndefinedFunction(format!("function {other} does not exist"))),
    }
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
        current = match arith::arithmetic(BinaryOp::Add, &current, &step) {
            Ok(next) => next,
            // Stepping past the type's range ends the series, as in PostgreSQL.
            Err(Error::NumericOutOfRange(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
    }
}
