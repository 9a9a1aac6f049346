//! `time_bucket_gapfill`'s filling ([`Node::GapFill`]). After the aggregation, each partition
//! (the GROUP BY values other than the bucket) gets a row for every bucket of the range that
//! had no data, with NULL aggregates; then `locf` and `interpolate` compute their values over
//! each partition in bucket order. Partitions come out in the order of their values, each in
//! bucket order, as TimescaleDB returns them.

use super::eval::eval;
use super::{memory, Context, Row, Sink};
use crate::error::{Error, Result};
use crate::sql::functions::{bucket_width, time_bucket, time_units as units, time_value, Origin};
use crate::sql::planner::plan::{Expr, GapFill, GapFillCall, GapFillFunction, Node};
use crate::types::cast::{cast, CastKind};
use crate::types::{DataType, Value};
use std::cmp::Ordering;

/// The most buckets one partition's range may hold (a day of one-second buckets is 86,400).
const MAX_BUCKETS: i64 = 10_000_000;

pub fn execute(source: &Node, fill: &GapFill, ctx: &mut Context, sink: &mut Sink) -> Result<()> {
    let width_value = eval(&fill.width, &[], ctx)?;
    let width = bucket_width(&width_value)?.ok_or_else(|| invalid("bucket_width cannot be NULL"))?;
    let start = range_end(&fill.start, "start", ctx)?.iter().copied().max();
    let finish = range_end(&fill.finish, "finish", ctx)?.iter().copied().min();
    let (Some(start), Some(finish)) = (start, finish) else {
        return Err(Error::Internal("time_bucket_gapfill without a range".into()));
    };
    // The grid: the bucket of `start`, then every `width` while before `finish`.
    let first = units(&time_bucket(&width_value, &time_value(start, &fill.time_type)?, Origin::Default)?);
    let buckets = (finish as i128 - first as i128).max(0) / width as i128;
    if buckets > MAX_BUCKETS as i128 {
        return Err(Error::ProgramLimitExceeded(format!(
            "time_bucket_gapfill would fill {buckets} buckets per group; at most {MAX_BUCKETS} are allowed"
        )));
    }
    let grid = Grid { first, finish, width };

    let mut held = ctx.memory.reserve();
    let mut rows = super::collect_held(source, ctx, &mut held)?;
    let partition: Vec<usize> = (0..fill.groups).filter(|&c| c != fill.bucket).collect();
    // By partition, then bucket; NULLs last, as ORDER BY sorts them.
    rows.sort_by(|a, b| {
        partition
            .iter()
            .chain(std::iter::once(&fill.bucket))
            .map(|&c| a[c].sort_cmp(&b[c]))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    if rows.is_empty() && partition.is_empty() {
        // No data at all: the whole range is one gap.
        let template = vec![Value::Null; fill.columns];
        return fill_partition(Vec::new(), &template, fill, &grid, ctx, &mut held, sink).map(|_| ());
    }
    // Each partition's rows are moved out of the sorted list, not copied.
    let mut rows = rows.into_iter().peekable();
    while let Some(head) = rows.next() {
        let template = head.clone();
        let mut group = vec![head];
        while let Some(row) = rows.next_if(|r| partition.iter().all(|&c| r[c] == template[c])) {
            group.push(row);
        }
        if !fill_partition(group, &template, fill, &grid, ctx, &mut held, sink)? {
            break;
        }
    }
    Ok(())
}

/// The buckets to fill, in the time's units (microseconds, or integer steps).
struct Grid {
    first: i64,
    finish: i64,
    width: i64,
}

/// One row of a partition's output, and whether it came from the data.
struct Slot {
    row: Row,
    real: bool,
    /// The bucket in the time's units; None for a NULL bucket.
    time: Option<i64>,
}

/// Emits a partition's rows with its gaps filled; false when the sink wants no more.
fn fill_partition(
    data: Vec<Row>,
    template: &Row,
    fill: &GapFill,
    grid: &Grid,
    ctx: &mut Context,
    held: &mut memory::Reservation,
    sink: &mut Sink,
) -> Result<bool> {
    let mut slots: Vec<Slot> = Vec::with_capacity(data.len());
    let mut data = data.into_iter().peekable();
    let mut t = Some(grid.first);
    loop {
        let real = data.peek().map(|r| bucket_units(&r[fill.bucket]));
        let gap = t.filter(|&t| t < grid.finish);
        let take_real = match (real, gap) {
            (None, None) => break,
            (Some(_), None) => true,
            // NULL buckets sort last: the grid comes first.
            (None, Some(_)) | (Some(None), Some(_)) => false,
            (Some(Some(r)), Some(g)) => r <= g,
        };
        if take_real {
            let time = real.flatten();
            if time.is_some() && time == gap {
                t = step(gap, grid.width);
            }
            let row = data.next().unwrap_or_default();
            slots.push(Slot { row, real: true, time });
        } else if let Some(g) = gap {
            let mut row = template.clone();
            for value in row.iter_mut().skip(fill.groups) {
                *value = Value::Null;
            }
            row[fill.bucket] = time_value(g, &fill.time_type)?;
            held.add_row(&row)?;
            slots.push(Slot { row, real: false, time: Some(g) });
            t = step(gap, grid.width);
        }
    }
    let mut columns = Vec::with_capacity(fill.calls.len());
    for call in &fill.calls {
        columns.push(match call.function {
            GapFillFunction::Locf { treat_null_as_missing } => locf(call, treat_null_as_missing, &slots, ctx)?,
            GapFillFunction::Interpolate => interpolate(call, &slots, ctx)?,
        });
    }
    for (i, slot) in slots.into_iter().enumerate() {
        let mut row = slot.row;
        row.extend(columns.iter().map(|c| c[i].clone()));
        if !sink(ctx, row)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn step(t: Option<i64>, width: i64) -> Option<i64> {
    t.and_then(|t| t.checked_add(width))
}

/// `locf`: a gap takes the last value seen before it (or `prev`, evaluated on the gap's row,
/// when there is none); rows from the data keep theirs, unless NULLs count as missing.
fn locf(call: &GapFillCall, treat_null_as_missing: bool, slots: &[Slot], ctx: &mut Context) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(slots.len());
    let mut last: Option<Value> = None;
    for slot in slots {
        let value = if slot.real { eval(&call.value, &slot.row, ctx)? } else { Value::Null };
        let missing = !slot.real || (treat_null_as_missing && value.is_null());
        if !missing {
            last = Some(value.clone());
            out.push(value);
            continue;
        }
        out.push(match (&last, &call.prev) {
            (Some(v), _) => v.clone(),
            (None, Some(prev)) => eval(prev, &slot.row, ctx)?,
            (None, None) => Value::Null,
        });
    }
    Ok(out)
}

/// `interpolate`: a gap takes the value on the line between the nearest rows from the data
/// before and after it that have a value, by bucket time; NULL when either is missing.
fn interpolate(call: &GapFillCall, slots: &[Slot], ctx: &mut Context) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        out.push(if slot.real { eval(&call.value, &slot.row, ctx)? } else { Value::Null });
    }
    let known: Vec<(usize, i64, f64)> = slots
        .iter()
        .enumerate()
        .filter(|(i, s)| s.real && !out[*i].is_null())
        .filter_map(|(i, s)| Some((i, s.time?, out[i].as_f64()?)))
        .collect();
    let mut next = 0;
    for (i, slot) in slots.iter().enumerate() {
        while next < known.len() && known[next].0 < i {
            next += 1;
        }
        if slot.real {
            continue;
        }
        let (Some(t), Some(before), Some(after)) = (slot.time, next.checked_sub(1).map(|p| known[p]), known.get(next))
        else {
            continue;
        };
        let (_, t0, y0) = before;
        let (_, t1, y1) = *after;
        let y = y0 + (y1 - y0) * ((t - t0) as f64 / (t1 - t0) as f64);
        out[i] = like(&out[after.0], y)?;
    }
    Ok(out)
}

/// `y` in the type of `example`, as a cast from float8 makes it (integers rounded, out of
/// range an error).
fn like(example: &Value, y: f64) -> Result<Value> {
    let t = example.data_type().unwrap_or(DataType::Float8);
    cast(Value::Float8(y), &t, CastKind::Explicit)
}

/// The values of the range's bounds (`start` or `finish`), in the time's units.
fn range_end(bounds: &[Expr], what: &str, ctx: &mut Context) -> Result<Vec<i64>> {
    let mut out = Vec::with_capacity(bounds.len());
    for bound in bounds {
        let value = eval(bound, &[], ctx)?;
        if value.is_null() {
            return Err(invalid(&format!("{what} cannot be NULL")));
        }
        out.push(units(&value));
    }
    Ok(out)
}

fn invalid(message: &str) -> Error {
    Error::InvalidParameter(format!("invalid time_bucket_gapfill argument: {message}"))
}

fn bucket_units(v: &Value) -> Option<i64> {
    (!v.is_null()).then(|| units(v))
}
