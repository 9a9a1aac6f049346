//! Aggregations answered from a table's summaries (see `timeseries::summary`) instead of its
//! rows: window aggregates and whole-table aggregates read a few records, whatever the
//! table's size; `GROUP BY date_trunc('hour', ts)` reads one record per bucket.

use super::aggregate::{Accumulator, Group, Total};
use super::Context;
use crate::error::Result;
use crate::sql::planner::plan::{Aggregate, AggregateFunction, Expr, Node};
use crate::sql::planner::summaries::summary_plan;
use crate::timeseries::summary::{self, ColumnSummary, Grain, Record};
use crate::types::{DataType, Value};
use std::collections::HashMap;

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
    if ctx.txn.has_writes_under(&table.row_prefix()) {
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
    // One group: each window's records (all the rows: every day's) are read once.
    let mut records: HashMap<(Grain, i64), Record> = HashMap::new();
    let mut accs = Vec::with_capacity(aggregates.len());
    for agg in aggregates {
        let (grain, start) = match agg.window {
            Some(w) => (w.grain(), w.start(ctx.now)),
            None => (Grain::Day, i64::MIN),
        };
        let record = match records.get(&(grain, start)) {
            Some(record) => record,
            None => {
                let record = summary::since(ctx.txn, table, grain, start)?;
                records.entry((grain, start)).or_insert(record)
            }
        };
        let Some(acc) = accumulator(agg, record, &table.columns)? else { return Ok(None) };
        accs.push(acc);
    }
    Ok(Some(vec![(Vec::new(), accs)]))
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
    let extreme = |v: i64, f: f64, t: &DataType| match t {
        DataType::Int2 => Value::Int2(v as i16),
        DataType::Int4 => Value::Int4(v as i32),
        DataType::Int8 => Value::Int8(v),
        DataType::Float4 => Value::Float4(f as f32),
        _ => Value::Float8(f),
    };
    let (count, total, value) = match (agg.function, column) {
        (CountStar, _) => (record.rows, Total::None, Value::Null),
        (Count, Some((s, _))) => (s.count(), Total::None, Value::Null),
        (Sum | Avg, Some((ColumnSummary::Int(s), _))) => (s.count, Total::Int(s.sum), Value::Null),
        (Sum | Avg, Some((ColumnSummary::Float(s), _))) if s.sum_exact => (s.count, Total::Float(s.sum()), Value::Null),
        (Min | Max, Some((ColumnSummary::Int(s), t))) if s.extremes_exact => {
            let v = if agg.function == Min { s.min } else { s.max };
            (s.count, Total::None, extreme(v, 0.0, t))
        }
        (Min | Max, Some((ColumnSummary::Float(s), t))) if s.extremes_exact => {
            let f = if agg.function == Min { s.min } else { s.max };
            (s.count, Total::None, extreme(0, f, t))
        }
        _ => return Ok(None),
    };
    Accumulator::from_totals(agg, count, total, value).map(Some)
}
