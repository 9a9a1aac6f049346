//! Window functions: each call partitions the input, orders each partition and computes one
//! value per row over its frame (see [`Frame`]).

use super::aggregate::Accumulator;
use super::arith::arithmetic_in;
use super::eval::eval;
use super::ops::compare_keys;
use super::{Context, Row, Sink};
use crate::error::{Error, Result};
use crate::sql::planner::plan::{
    BinaryOp, Frame, FrameBound, FrameExclusion, FrameUnits, Node, WindowCall, WindowFunction,
};
use crate::types::timezone::Zone;
use crate::types::{DataType, Value};
use std::cmp::Ordering;
use std::collections::HashMap;

pub fn execute(source: &Node, calls: &[WindowCall], ctx: &mut Context, sink: &mut Sink) -> Result<()> {
    let mut held = ctx.memory.reserve();
    let rows = super::collect_held(source, ctx, &mut held)?;
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

/// A partition's rows in order, as [`frame_bounds`] needs them.
struct Ordered<'a> {
    /// The first ORDER BY value of each row (for RANGE offsets).
    keys: Vec<&'a Value>,
    /// The positions of the rows with a non-NULL first ORDER BY value (NULLs sort first or
    /// last, so they are one run).
    values: std::ops::Range<usize>,
    peer_start: &'a [usize],
    peer_end: &'a [usize],
    descending: bool,
    /// The session's time zone (a `timestamptz` offset by days moves on its calendar).
    zone: Zone,
}

impl<'a> Ordered<'a> {
    fn new(keys: Vec<&'a Value>, peer_start: &'a [usize], peer_end: &'a [usize], descending: bool, zone: Zone) -> Self {
        let lo = keys.iter().position(|k| !k.is_null()).unwrap_or(0);
        let hi = keys.iter().rposition(|k| !k.is_null()).map_or(lo, |i| i + 1);
        Ordered { keys, values: lo..hi, peer_start, peer_end, descending, zone }
    }

    /// For a RANGE offset bound at `pos`: the first (`start`) or last position whose value is
    /// within the offset (past the partition's rows when none is: an empty frame). A NULL
    /// current value's offset bounds are its peers (the other NULLs), as in PostgreSQL;
    /// NULLs are never within an offset of a value.
    fn value_bound(&self, pos: usize, offset: &Value, preceding: bool, start: bool) -> Result<i64> {
        let current = self.keys[pos];
        if current.is_null() {
            return Ok(if start { self.peer_start[pos] } else { self.peer_end[pos] } as i64);
        }
        let (lo, hi) = (self.values.start, self.values.end);
        let backwards = preceding != self.descending; // toward smaller values
        let op = if backwards { BinaryOp::Sub } else { BinaryOp::Add };
        // A float column takes its offset as a float (PostgreSQL's in_range for float8).
        let float_offset;
        let offset = match (current, offset) {
            (Value::Float4(_) | Value::Float8(_), o) if !matches!(o, Value::Float4(_) | Value::Float8(_)) => {
                float_offset = Value::Float8(o.as_f64().unwrap_or(0.0));
                &float_offset
            }
            _ => offset,
        };
        let target = match arithmetic_in(op, current, offset, &self.zone) {
            Ok(t) => t,
            // Past the end of the type's range: before or after every value, in order.
            Err(Error::NumericOutOfRange(_) | Error::DatetimeOutOfRange(_)) => {
                let before_all = backwards != self.descending;
                return Ok(match (start, before_all) {
                    (true, true) => lo as i64,
                    (true, false) => hi as i64,
                    (false, true) => lo as i64 - 1,
                    (false, false) => hi as i64 - 1,
                });
            }
            Err(e) => return Err(e),
        };
        // Position in order of the first value not before the target, and past the last
        // value not after it.
        let cmp = |k: &Value| k.compare(&target).unwrap_or_else(|| k.sort_cmp(&target));
        let in_order = |k: &Value| if self.descending { cmp(k).reverse() } else { cmp(k) };
        let slice = &self.keys[lo..hi];
        Ok(if start {
            (lo + slice.partition_point(|k| in_order(k) == Ordering::Less)) as i64
        } else {
            (lo + slice.partition_point(|k| in_order(k) != Ordering::Greater)) as i64 - 1
        })
    }
}

/// The first and last position (inclusive, in partition order) of each row's frame; `None`
/// for an empty frame.
fn frame_bounds(frame: &Frame, ordered: &Ordered) -> Result<Vec<Option<(usize, usize)>>> {
    let len = ordered.keys.len();
    // GROUPS: each row's peer group, and where each group starts and ends.
    let mut group = vec![0usize; len];
    let (mut group_start, mut group_end) = (Vec::new(), Vec::new());
    if frame.units == FrameUnits::Groups {
        for (pos, g) in group.iter_mut().enumerate() {
            if ordered.peer_start[pos] == pos {
                group_start.push(pos);
                group_end.push(ordered.peer_end[pos]);
            }
            *g = group_start.len() - 1;
        }
    }
    let groups = group_start.len();
    (0..len)
        .map(|pos| {
            if frame.units == FrameUnits::Groups {
                let back = |n: u64| group[pos].checked_sub(n as usize);
                let ahead = |n: u64| group[pos].saturating_add(n as usize);
                let start = match &frame.start {
                    FrameBound::Preceding(n) => back(*n).map_or(0, |g| group_start[g]) as i64,
                    FrameBound::Following(n) => group_start.get(ahead(*n)).map_or(len, |s| *s) as i64,
                    FrameBound::CurrentRow => ordered.peer_start[pos] as i64,
                    FrameBound::UnboundedFollowing => len as i64,
                    _ => 0,
                };
                let end = match &frame.end {
                    FrameBound::Preceding(n) => back(*n).map_or(-1, |g| group_end[g] as i64),
                    FrameBound::Following(n) => group_end[ahead(*n).min(groups - 1)] as i64,
                    FrameBound::CurrentRow => ordered.peer_end[pos] as i64,
                    FrameBound::UnboundedPreceding => -1,
                    _ => len as i64 - 1,
                };
                return Ok(if end < 0 || start > end { None } else { Some((start as usize, end as usize)) });
            }
            let rows = frame.units == FrameUnits::Rows;
            let start = match &frame.start {
                FrameBound::UnboundedPreceding => 0,
                FrameBound::Preceding(n) => pos.saturating_sub(*n as usize) as i64,
                FrameBound::CurrentRow if rows => pos as i64,
                FrameBound::CurrentRow => ordered.peer_start[pos] as i64,
                FrameBound::Following(n) => pos.saturating_add(*n as usize) as i64,
                FrameBound::ValuePreceding(o) => ordered.value_bound(pos, o, true, true)?,
                FrameBound::ValueFollowing(o) => ordered.value_bound(pos, o, false, true)?,
                FrameBound::UnboundedFollowing => len as i64,
            };
            let end = match &frame.end {
                FrameBound::UnboundedFollowing => len as i64 - 1,
                FrameBound::Following(n) => (pos.saturating_add(*n as usize)).min(len - 1) as i64,
                FrameBound::CurrentRow if rows => pos as i64,
                FrameBound::CurrentRow => ordered.peer_end[pos] as i64,
                FrameBound::Preceding(n) => pos as i64 - *n as i64,
                FrameBound::ValuePreceding(o) => ordered.value_bound(pos, o, true, false)?,
                FrameBound::ValueFollowing(o) => ordered.value_bound(pos, o, false, false)?,
                FrameBound::UnboundedPreceding => -1,
            };
            Ok(if end < 0 || start > end { None } else { Some((start as usize, end as usize)) })
        })
        .collect()
}

/// The positions of a row's frame in order, less the rows its exclusion leaves out.
fn frame_rows(frame: &Frame, bounds: Option<(usize, usize)>, pos: usize, ordered: &Ordered) -> Vec<usize> {
    let Some((start, end)) = bounds else { return Vec::new() };
    let (first_peer, last_peer) = (ordered.peer_start[pos], ordered.peer_end[pos]);
    let outside_peers = |p: usize| p < first_peer || p > last_peer;
    (start..=end)
        .filter(|&p| match frame.exclude {
            FrameExclusion::NoOthers => true,
            FrameExclusion::CurrentRow => p != pos,
            FrameExclusion::Group => outside_peers(p),
            FrameExclusion::Ties => p == pos || outside_peers(p),
        })
        .collect()
}

/// RANGE offsets need an ORDER BY value that numbers or intervals can be added to.
fn check_range_key(frame: &Frame, keys: &[Vec<Value>]) -> Result<()> {
    if !frame.has_value_offset() {
        return Ok(());
    }
    let Some(t) = keys.iter().filter_map(|k| k.first()).find_map(Value::data_type) else { return Ok(()) };
    if t.is_numeric() || matches!(t, DataType::Date | DataType::Timestamp | DataType::TimestampTz | DataType::Interval)
    {
        return Ok(());
    }
    Err(Error::FeatureNotSupported(format!(
        "RANGE with offset PRECEDING/FOLLOWING is not supported for column type {t}"
    )))
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
    check_range_key(&call.frame, &order_keys)?;
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
        let ordered = Ordered::new(
            part.iter().map(|&i| order_keys[i].first().unwrap_or(&Value::Null)).collect(),
            &peer_start,
            &peer_end,
            call.order_by.first().is_some_and(|k| k.descending),
            ctx.session.zone,
        );
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
                        return Err(Error::DataException(
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
                let bounds = frame_bounds(&call.frame, &ordered)?;
                for (pos, &i) in part.iter().enumerate() {
                    let rows = frame_rows(&call.frame, bounds[pos], pos, &ordered);
                    let at = if call.function == WindowFunction::FirstValue { rows.first() } else { rows.last() };
                    out[i] = match at {
                        Some(&p) => value_at(p, ctx)?,
                        None => Value::Null,
                    };
                }
            }
            WindowFunction::NthValue => {
                let bounds = frame_bounds(&call.frame, &ordered)?;
                for (pos, &i) in part.iter().enumerate() {
                    let n = eval(&call.args[1], &rows[i], ctx)?;
                    let Some(n) = n.as_i64() else {
                        out[i] = Value::Null;
                        continue;
                    };
                    if n <= 0 {
                        return Err(Error::DataException(
                            "22016",
                            "argument of nth_value must be greater than zero".into(),
                        ));
                    }
                    out[i] = match frame_rows(&call.frame, bounds[pos], pos, &ordered).get(n as usize - 1) {
                        Some(&p) => value_at(p, ctx)?,
                        None => Value::Null,
                    };
                }
            }
            WindowFunction::Aggregate(function) => {
                let bounds = frame_bounds(&call.frame, &ordered)?;
                let args_at = |pos: usize, ctx: &mut Context| -> Result<Vec<Value>> {
                    call.args.iter().map(|a| eval(a, &rows[part[pos]], ctx)).collect()
                };
                let fresh = || Accumulator::for_function(*function, call.return_type.clone(), false);
                if call.frame.start == FrameBound::UnboundedPreceding && call.frame.exclude == FrameExclusion::NoOthers
                {
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
                            Some(_) => acc.finish(&ctx.session.zone)?,
                            None => fresh().finish(&ctx.session.zone)?,
                        };
                    }
                } else {
                    for (pos, &i) in part.iter().enumerate() {
                        let mut acc = fresh();
                        for p in frame_rows(&call.frame, bounds[pos], pos, &ordered) {
                            acc.add(&args_at(p, ctx)?)?;
                        }
                        out[i] = acc.finish(&ctx.session.zone)?;
                    }
                }
            }
        }
    }
    Ok(out)
}
