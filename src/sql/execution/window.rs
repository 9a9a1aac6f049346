//! Window functions: each call partitions the input, orders each partition and computes one
//! value per row over its frame (see [`Frame`]).

use super::aggregate::Accumulator;
use super::eval::eval;
use super::ops::compare_keys;
use super::{Context, Row, Sink};
use crate::error::Result;
use crate::sql::planner::plan::{Frame, FrameBound, Node, WindowCall, WindowFunction};
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

/// The first and last position (inclusive, in partition order) of each row's frame; `None`
/// for an empty frame.
fn frame_bounds(frame: &Frame, len: usize, peer_start: &[usize], peer_end: &[usize]) -> Vec<Option<(usize, usize)>> {
    (0..len)
        .map(|pos| {
            let start = match frame.start {
                FrameBound::UnboundedPreceding => 0,
                FrameBound::Preceding(n) => pos.saturating_sub(n as usize),
                FrameBound::CurrentRow if frame.rows => pos,
                FrameBound::CurrentRow => peer_start[pos],
                FrameBound::Following(n) => pos.saturating_add(n as usize),
                FrameBound::UnboundedFollowing => len,
            };
            let end = match frame.end {
                FrameBound::UnboundedFollowing => len as i64 - 1,
                FrameBound::Following(n) => (pos.saturating_add(n as usize)).min(len - 1) as i64,
                FrameBound::CurrentRow if frame.rows => pos as i64,
                FrameBound::CurrentRow => peer_end[pos] as i64,
                FrameBound::Preceding(n) => pos as i64 - n as i64,
                FrameBound::UnboundedPreceding => -1,
            };
            if end < 0 || start as i64 > end {
                None
            } else {
                Some((start, end as usize))
            }
        })
        .collect()
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
        let len = part.len();
        let mut peer_start = vec![0; len];
        for pos in 1..len {
            peer_start[pos] = if peers(part[pos - 1], part[pos]) { peer_start[pos - 1] } else { pos };
        }
        let mut peer_end = vec![len.saturating_sub(1); len];
        for pos in (0..len.saturating_sub(1)).rev() {
            peer_end[pos] = if peers(part[pos], part[pos + 1]) { peer_end[pos + 1] } else { pos };
        }
        let value_at = |pos: usize, ctx: &mut Context| eval(&call.args[0], &rows[part[pos]], ctx);
        match &call.function {
            WindowFunction::RowNumber => {
                for (pos, &i) in part.iter().enumerate() {
                    out[i] = Value::Int8(pos as i64 + 1);
                }
            }
            WindowFunction::Rank | WindowFunction::DenseRank => {
                let mut dense = 0i64;
                for (pos, &i) in part.iter().enumerate() {
                    if peer_start[pos] == pos {
                        dense += 1;
                    }
                    let rank = peer_start[pos] as i64 + 1;
                    out[i] = Value::Int8(if call.function == WindowFunction::Rank { rank } else { dense });
                }
            }
            WindowFunction::PercentRank | WindowFunction::CumeDist => {
                for (pos, &i) in part.iter().enumerate() {
                    out[i] = Value::Float8(if call.function == WindowFunction::PercentRank {
                        if len > 1 {
                            peer_start[pos] as f64 / (len - 1) as f64
                        } else {
                            0.0
                        }
                    } else {
                        (peer_end[pos] + 1) as f64 / len as f64
                    });
                }
            }
            WindowFunction::Ntile => {
                for (pos, &i) in part.iter().enumerate() {
                    let buckets = eval(&call.args[0], &rows[i], ctx)?.as_i64().unwrap_or(1);
                    if buckets <= 0 {
                        return Err(crate::error::Error::DataException(
                            "22014",
                            "argument of ntile must be greater than zero".into(),
                        ));
                    }
                    // As PostgreSQL: the first len % n buckets get one extra row.
                    let (n, len) = (buckets as usize, len);
                    let base = len / n;
                    let extra = len % n;
                    let big = extra * (base + 1);
                    let bucket = if pos < big { pos / (base + 1) } else { extra + (pos - big) / base.max(1) };
                    out[i] = Value::Int4(bucket as i32 + 1);
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
                    out[i] = if target >= 0 && (target as usize) < len {
                        value_at(target as usize, ctx)?
                    } else {
                        match call.args.get(2) {
                            Some(e) => eval(e, row, ctx)?,
                            None => Value::Null,
                        }
                    };
                }
            }
            WindowFunction::FirstValue | WindowFunction::LastValue => {
                let bounds = frame_bounds(&call.frame, len, &peer_start, &peer_end);
                for (pos, &i) in part.iter().enumerate() {
                    out[i] = match bounds[pos] {
                        Some((s, e)) => value_at(if call.function == WindowFunction::FirstValue { s } else { e }, ctx)?,
                        None => Value::Null,
                    };
                }
            }
            WindowFunction::Aggregate(function) => {
                let bounds = frame_bounds(&call.frame, len, &peer_start, &peer_end);
                let args_at = |pos: usize, ctx: &mut Context| -> Result<Vec<Value>> {
                    call.args.iter().map(|a| eval(a, &rows[part[pos]], ctx)).collect()
                };
                let fresh = || Accumulator::for_function(*function, call.return_type.clone(), false);
                if call.frame.start == FrameBound::UnboundedPreceding {
                    // Frames only grow: accumulate incrementally.
                    let mut acc = fresh();
                    let mut added = 0usize;
                    for (pos, &i) in part.iter().enumerate() {
                        if let Some((_, end)) = bounds[pos] {
                            while added <= end {
                                acc.add(&args_at(added, ctx)?)?;
                                added += 1;
                            }
                        }
                        out[i] = match bounds[pos] {
                            Some(_) => acc.finish()?,
                            None => fresh().finish()?,
                        };
                    }
                } else {
                    for (pos, &i) in part.iter().enumerate() {
                        let mut acc = fresh();
                        if let Some((s, e)) = bounds[pos] {
                            for p in s..=e {
                                acc.add(&args_at(p, ctx)?)?;
                            }
                        }
                        out[i] = acc.finish()?;
                    }
                }
            }
        }
    }
    Ok(out)
}
