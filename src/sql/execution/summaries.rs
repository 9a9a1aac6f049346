//! Aggregations answered from a table's summaries (see `timeseries::summary`) instead of its
//! rows: window aggregates and whole-table aggregates read a few records, whatever the
//! table's size; `GROUP BY date_trunc('hour', ts)` reads one record per bucket.

use super::aggregate::{Accumulator, Group, Total};
use super::eval::eval;
use super::{Context, Row};
use crate::catalog::{Table, CATALOG};
use crate::error::Result;
use crate::sql::planner::plan::{Aggregate, AggregateFunction, BinaryOp, Expr, Node, Window};
use crate::sql::planner::summaries::summary_plan;
use crate::timeseries::summary::{self, ColumnSummary, Piece, Record};
use crate::types::{DataType, Value};
use std::collections::hash_map::{Entry, HashMap};

/// The groups of an aggregation filled from summaries, or None when the rows must be read
/// (see [`summary_plan`]; also when this transaction wrote the table, whose summaries follow
/// committed rows only, or when a summary no longer knows an extreme or a sum exactly).
pub fn answer(
    source: &Node,
    group_by: &[Expr],
    aggregates: &[Aggregate],
    ctx: &mut Context,
) -> Result<Option<Vec<Group>>> {
    let Some(plan) = summary_plan(source, group_by, aggregates) else { return Ok(None) };
    let table = plan.table;
    // Summaries follow committed rows and definitions: not this transaction's own.
    if ctx.txn.has_writes_under(&table.row_prefix()) || ctx.txn.has_writes_under(&[CATALOG.tag()]) {
        return Ok(None);
    }
    if let Some(grain) = plan.buckets {
        let time_type = table.time_series_column().map(|c| table.columns[c].data_type.clone());
        let mut groups = Vec::new();
        let mut exact = true;
        summary::each_bucket(ctx.txn, table, grain, |bucket, record| {
            let key = match time_type {
                Some(DataType::Timestamp) => Value::Timestamp(bucket),
                _ => Value::TimestampTz(bucket),
            };
            match accumulators(aggregates, &record, &table.columns)? {
                Some(accs) => groups.push((vec![key], accs)),
                None => exact = false,
            }
            Ok(())
        })?;
        return Ok(exact.then_some(groups));
    }
    // One group: each window's records, or those of the WHERE clause's time range (every
    // row's without one) and the rows of its partial minutes, are read once.
    let mut read: HashMap<Option<Window>, (Record, Vec<Row>)> = HashMap::new();
    let mut accs = Vec::with_capacity(aggregates.len());
    for agg in aggregates {
        let (record, rows) = match read.entry(agg.window) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let Some(range) = read_range(ctx, table, agg.window, &plan.bounds)? else { return Ok(None) };
                e.insert(range)
            }
        };
        let Some(mut acc) = accumulator(agg, record, &table.columns)? else { return Ok(None) };
        for row in rows {
            match agg.args[..] {
                [Expr::Column(c)] => acc.add(std::slice::from_ref(&row[c]))?,
                _ => acc.add(&[])?,
            }
        }
        accs.push(acc);
    }
    Ok(Some(vec![(Vec::new(), accs)]))
}

/// The summary of a window's rows (or of those within `bounds`) and the rows of its partial
/// minutes; None when the bounds are not times the summaries can take.
fn read_range(
    ctx: &mut Context,
    table: &Table,
    window: Option<Window>,
    bounds: &[(BinaryOp, Expr)],
) -> Result<Option<(Record, Vec<Row>)>> {
    let (lo, hi) = match window {
        Some(w) => (Some(w.start(ctx.now)), None),
        None => match time_range(bounds, ctx)? {
            Some(range) => range,
            None => return Ok(None),
        },
    };
    let mut record = Record::empty(table);
    let mut rows = Vec::new();
    if lo.zip(hi).is_none_or(|(l, h)| l < h) {
        for piece in summary::cover(lo, hi) {
            match piece {
                Piece::Buckets(grain, start, end) => record.merge(&summary::range(ctx.txn, table, grain, start, end)?),
                Piece::Rows(start, end) => rows_between(ctx, table, start, end, &mut rows)?,
            }
        }
    }
    Ok(Some((record, rows)))
}

/// Times beyond this many microseconds from 1970 (infinities among them) are left to the rows.
const FAR: i64 = 1 << 62;

/// The range `[lo, hi)` the bounds allow (an empty one when a bound is NULL); None when one is
/// not a time, or too far out to be bucketed.
fn time_range(bounds: &[(BinaryOp, Expr)], ctx: &mut Context) -> Result<Option<(Option<i64>, Option<i64>)>> {
    let (mut lo, mut hi): (Option<i64>, Option<i64>) = (None, None);
    for (op, e) in bounds {
        let t = match eval(e, &[], ctx)? {
            Value::Null => return Ok(Some((Some(0), Some(0)))),
            Value::Timestamp(t) | Value::TimestampTz(t) if t.abs() < FAR => t,
            _ => return Ok(None),
        };
        match op {
            BinaryOp::GtEq => lo = lo.max(Some(t)),
            BinaryOp::Gt => lo = lo.max(Some(t + 1)),
            BinaryOp::Lt => hi = Some(hi.map_or(t, |h| h.min(t))),
            _ => hi = Some(hi.map_or(t + 1, |h| h.min(t + 1))),
        }
    }
    Ok(Some((lo, hi)))
}

/// Appends the rows of `table` with times in `[lo, hi)`: one range of keys per series (each
/// value of the primary key's columns before the time), from the summaries' list of them.
fn rows_between(ctx: &mut Context, table: &Table, lo: i64, hi: i64, out: &mut Vec<Row>) -> Result<()> {
    if table.time_series_column().is_none() {
        return Ok(());
    }
    for series in summary::series(ctx.txn, table)? {
        ctx.check_cancel()?;
        let (lower, upper) = (summary::time_key(table, &series, lo), summary::time_key(table, &series, hi));
        ctx.txn.for_each_range(&series, None, Some(&lower), Some(&upper), |_, bytes| {
            out.push(table.decode_row(bytes)?);
            Ok(true)
        })?;
    }
    Ok(())
}

fn accumulators(
    aggregates: &[Aggregate],
    record: &Record,
    columns: &[crate::catalog::Column],
) -> Result<Option<Vec<Accumulator>>> {
    let mut accs = Vec::with_capacity(aggregates.len());
    for agg in aggregates {
        let Some(acc) = accumulator(agg, record, columns)? else { return Ok(None) };
        accs.push(acc);
    }
    Ok(Some(accs))
}

/// One aggregate's accumulator from a record; None when the record does not know the answer
/// exactly.
fn accumulator(agg: &Aggregate, record: &Record, columns: &[crate::catalog::Column]) -> Result<Option<Accumulator>> {
    use AggregateFunction::*;
    let column = match agg.args[..] {
        [Expr::Column(c)] => Some((&record.columns[c], &columns[c].data_type)),
        _ => None,
    };
    // An extreme of no values is NULL (rows of partial minutes may follow).
    let extreme = |s: &ColumnSummary, t: &DataType| {
        let max = agg.function == Max;
        match s {
            _ if s.count() == 0 => Value::Null,
            ColumnSummary::Int(s) => {
                let v = if max { s.max } else { s.min };
                match t {
                    DataType::Int2 => Value::Int2(v as i16),
                    DataType::Int4 => Value::Int4(v as i32),
                    _ => Value::Int8(v),
                }
            }
            ColumnSummary::Float(s) => {
                let v = if max { s.max } else { s.min };
                if *t == DataType::Float4 {
                    Value::Float4(v as f32)
                } else {
                    Value::Float8(v)
                }
            }
            ColumnSummary::Count(_) => Value::Null,
        }
    };
    let (count, total, value) = match (agg.function, column) {
        (CountStar, _) => (record.rows, Total::None, Value::Null),
        (Count, Some((s, _))) => (s.count(), Total::None, Value::Null),
        (Sum | Avg, Some((ColumnSummary::Int(s), _))) => (s.count, Total::Int(s.sum), Value::Null),
        (Sum | Avg, Some((ColumnSummary::Float(s), _))) if s.sum_exact => (s.count, Total::Float(s.sum()), Value::Null),
        (Min | Max, Some((s @ ColumnSummary::Int(i), t))) if i.extremes_exact => {
            (s.count(), Total::None, extreme(s, t))
        }
        (Min | Max, Some((s @ ColumnSummary::Float(f), t))) if f.extremes_exact => {
            (s.count(), Total::None, extreme(s, t))
        }
        _ => return Ok(None),
    };
    Accumulator::from_totals(agg, count, total, value).map(Some)
}
