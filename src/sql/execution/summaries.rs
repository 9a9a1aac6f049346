//! Window aggregates answered from a table's summaries (see `timeseries::summary`) instead
//! of its rows: a few records per window, whatever the table's size.

use super::aggregate::{Accumulator, Total};
use super::Context;
use crate::error::Result;
use crate::sql::planner::plan::{summary_source, Aggregate, AggregateFunction, Expr, Node, Window};
use crate::timeseries::summary::{self, ColumnSummary, Record};
use crate::types::{DataType, Value};
use std::collections::HashMap;

/// The accumulators of `aggregates` filled from summaries, or None when the rows must be read
/// (see [`summary_source`]; also when this transaction wrote the table, whose summaries follow
/// committed rows only, or when a summary no longer knows an extreme or a sum exactly).
pub fn answer(
    source: &Node,
    group_by: &[Expr],
    aggregates: &[Aggregate],
    ctx: &mut Context,
) -> Result<Option<Vec<Accumulator>>> {
    let Some(table) = summary_source(source, group_by, aggregates) else { return Ok(None) };
    if ctx.txn.has_writes_under(&table.row_prefix()) {
        return Ok(None);
    }
    let mut records: HashMap<Window, Record> = HashMap::new();
    let mut accumulators = Vec::with_capacity(aggregates.len());
    for agg in aggregates {
        let Some(window) = agg.window else { return Ok(None) };
        let record = match records.get(&window) {
            Some(record) => record,
            None => {
                let record = summary::since(ctx.txn, table, window.grain(), window.start(ctx.now))?;
                records.entry(window).or_insert(record)
            }
        };
        let column = match agg.args[..] {
            [Expr::Column(c)] => Some((&record.columns[c], &table.columns[c].data_type)),
            _ => None,
        };
        let Some(accumulator) = accumulator(agg, record, column)? else { return Ok(None) };
        accumulators.push(accumulator);
    }
    Ok(Some(accumulators))
}

/// One aggregate's accumulator from the window's record; None when the record does not know
/// the answer exactly.
fn accumulator(
    agg: &Aggregate,
    record: &Record,
    column: Option<(&ColumnSummary, &DataType)>,
) -> Result<Option<Accumulator>> {
    use AggregateFunction::*;
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
