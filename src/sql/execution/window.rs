//! Window functions: each call partitions the input, orders each partition and computes one
//! value per row. The default frame is PostgreSQL's: the whole partition without ORDER BY,
//! otherwise from the partition's start to the current row's last peer.

use super::aggregate::Accumulator;
use super::eval::eval;
use super::ops::compare_keys;
use super::{Context, Row, Sink};
use crate::error::Result;
use crate::sql::planner::plan::{Node, WindowCall, WindowFunction};
use crate::types::Value;
use std::cmp::Ordering;
use std::collections::HashMap;

pub fn execute(source: &Node, calls: &[WindowCall], ctx: &mut Context, sink: &mut Sink) -> Result<()> {
    let rows = super::collect(source, ctx)?;
    let mut results: Vec<Vec<Value>> = vec![Vec::with_capacity(calls.len()); rows.len()];
    for call in calls {
        let values = compute(call, &rows, ctx)?;
        for (out, v) in results.iter_mut().zip(values) {
            out.push(v);
        }
    }
    for (mut row, extra) in rows.into_iter().zip(results) {
        row.extend(extra);
        if !sink(ctx, row)? {
            break;
        }
    }
    Ok(())
}

fn compute(call: &WindowCall, rows: &[Row], ctx: &mut Context) -> Result<Vec<Value>> {
    // Partition, keeping first-seen order.
    let mut partitions: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<Vec<Value>, usize> = HashMap::new();
    let mut order_keys: Vec<Vec<Value>> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let mut key = Vec::with_capacity(call.partition_by.len());
        for e in &call.partition_by {
            key.push(eval(e, row, ctx)?);
        }
        let mut ok = Vec::with_capacity(call.order_by.len());
        for k in &call.order_by {
            ok.push(eval(&k.expr, row, ctx)?);
        }
        order_keys.push(ok);
        let p = *by_key.entry(key).or_insert_with(|| {
            partitions.push(Vec::new());
            partitions.len() - 1
        });
        partitions[p].push(i);
    }
    let mut out = vec![Value::Null; rows.len()];
    for mut part in partitions {
        part.sort_by(|&a, &b| compare_keys(&order_keys[a], &order_keys[b], &call.order_by));
        let peers =
            |x: usize, y: usize| compare_keys(&order_keys[x], &order_keys[y], &call.order_by) == Ordering::Equal;
        // Index (in `part`) of the last peer of each position.
        let mut last_peer = vec![0; part.len()];
        let mut end = part.len();
        for pos in (0..part.len()).rev() {
            if pos + 1 < part.len() && !peers(part[pos], part[pos + 1]) {
                end = pos + 1;
            }
            last_peer[pos] = if call.order_by.is_empty() { part.len() - 1 } else { end - 1 };
        }
        match &call.function {
            WindowFunction::RowNumber => {
                for (pos, &i) in part.iter().enumerate() {
                    out[i] = Value::Int8(pos as i64 + 1);
                }
            }
            WindowFunction::Rank | WindowFunction::DenseRank => {
                let mut rank = 0i64;
                let mut dense = 0i64;
                for (pos, &i) in part.iter().enumerate() {
                    if pos == 0 || !peers(part[pos - 1], i) {
                        rank = pos as i64 + 1;
                        dense += 1;
                    }
                    out[i] = Value::Int8(if call.function == WindowFunction::Rank { rank } else { dense });
                }
            }
            WindowFunction::Lag | WindowFunction::Lead => {
                for (pos, &i) in part.iter().enumerate() {
                    let row = &rows[i];
                    let offset = match call.args.get(1) {
                        Some(e) => eval(e, row, ctx)?.as_i64().unwrap_or(1),
                        None => 1,
                    };
                    let target =
                        if call.function == WindowFunction::Lag { pos as i64 - offset } else { pos as i64 + offset };
                    out[i] = if target >= 0 && (target as usize) < part.len() {
                        eval(&call.args[0], &rows[part[target as usize]], ctx)?
                    } else {
                        match call.args.get(2) {
                            Some(e) => eval(e, row, ctx)?,
                            None => Value::Null,
                        }
                    };
                }
            }
            WindowFunction::FirstValue => {
                if let Some(&first) = part.first() {
                    let v = eval(&call.args[0], &rows[first], ctx)?;
                    for &i in &part {
                        out[i] = v.clone();
                    }
                }
            }
            WindowFunction::LastValue => {
                for (pos, &i) in part.iter().enumerate() {
                    out[i] = eval(&call.args[0], &rows[part[last_peer[pos]]], ctx)?;
                }
            }
            WindowFunction::Aggregate(function) => {
                let mut acc = Accumulator::for_function(*function, call.return_type.clone(), false);
                let mut added = 0usize;
                for (pos, &i) in part.iter().enumerate() {
                    while added <= last_peer[pos] {
                        let mut args = Vec::with_capacity(call.args.len());
                        for a in &call.args {
                            args.push(eval(a, &rows[part[added]], ctx)?);
                        }
                        acc.add(&args)?;
                        added += 1;
                    }
                    out[i] = acc.finish()?;
                }
            }
        }
    }
    Ok(out)
}
