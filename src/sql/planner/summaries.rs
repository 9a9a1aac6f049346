//! Which aggregations a table's summaries answer (see `timeseries::summary`): the planner's
//! side of `execution::summaries`, shared with EXPLAIN.

use super::plan::{Aggregate, AggregateFunction, BinaryOp, Expr, Node};
use super::select::split_conjunction;
use crate::catalog::Table;
use crate::timeseries::summary::Grain;
use crate::types::{DataType, Value};

/// An aggregation the summaries of `table` can answer.
pub struct SummaryPlan<'a> {
    pub table: &'a Table,
    /// Grouped by the buckets of this grain (`GROUP BY date_trunc('hour', ts)` or
    /// `time_bucket('1 hour', ts)` over the time column); None: one group.
    pub buckets: Option<Grain>,
    /// The WHERE clause: bounds on the time column, each `time op value` with `op` one of
    /// `<`, `<=`, `>`, `>=` and a value that does not read the row (all must hold).
    pub bounds: Vec<(BinaryOp, Expr)>,
}

/// The plan of an aggregation answered from summaries, if it is one: the whole of a
/// summarized table read (no WHERE), grouped by nothing or by the buckets of one grain, each
/// aggregate a count, or a sum, average, minimum or maximum of an integer or float column.
/// Without GROUP BY the aggregates may be window aggregates (`avg_1h(x)`, over a window) or
/// plain ones (over every row); grouped, plain ones only. Whether the summaries answer is
/// decided as it runs: not in a transaction that wrote the table, nor for an extreme or a
/// float sum they no longer know exactly.
pub fn summary_plan<'a>(source: &'a Node, group_by: &[Expr], aggregates: &[Aggregate]) -> Option<SummaryPlan<'a>> {
    let Node::Scan { table, filter, with_key: false, .. } = source else { return None };
    let time = table.time_series_column().filter(|_| table.summarized)?;
    let buckets = match group_by {
        [] => None,
        [bucket] => Some(bucket_grain(bucket, time)?),
        _ => return None,
    };
    let bounds = match filter {
        None => Vec::new(),
        // A time range, of one group: its buckets are added up, the rows of its partial
        // minutes read.
        Some(f) if buckets.is_none() && aggregates.iter().all(|a| a.window.is_none()) => time_bounds(f, time)?,
        Some(_) => return None,
    };
    let summarizable = |agg: &Aggregate| {
        let column = match agg.args[..] {
            [] => None,
            [Expr::Column(c)] => Some(table.columns.get(c)?),
            _ => return None,
        };
        let numeric = column.is_some_and(|c| {
            matches!(
                c.data_type,
                DataType::Int2 | DataType::Int4 | DataType::Int8 | DataType::Float4 | DataType::Float8
            )
        });
        let supported = match agg.function {
            AggregateFunction::CountStar | AggregateFunction::Count => true,
            AggregateFunction::Sum | AggregateFunction::Avg | AggregateFunction::Min | AggregateFunction::Max => {
                numeric
            }
            _ => false,
        };
        // A window aggregate's FILTER is its window; grouped queries take plain aggregates.
        let filtered = match agg.window {
            Some(_) => buckets.is_some(),
            None => agg.filter.is_some(),
        };
        (supported && !filtered && !agg.distinct && agg.order_by.is_empty()).then_some(())
    };
    let all = !aggregates.is_empty() && aggregates.iter().all(|a| summarizable(a).is_some());
    all.then_some(SummaryPlan { table, buckets, bounds })
}

/// The terms of `filter` as bounds on column `time`, if it is made of nothing else.
fn time_bounds(filter: &Expr, time: usize) -> Option<Vec<(BinaryOp, Expr)>> {
    let column = Expr::Column(time);
    let mut bounds = Vec::new();
    for term in split_conjunction(filter.clone()) {
        bounds.push(term.bound_on(&column)?);
    }
    Some(bounds)
}

/// The grain of `date_trunc('minute'|'hour'|'day', time)` or `time_bucket(interval, time)` of
/// one minute, hour or day, over the time column (buckets in UTC; in a session in another
/// zone, `date_trunc` of a `timestamptz` is bound with that zone and not answered here).
fn bucket_grain(e: &Expr, time: usize) -> Option<Grain> {
    let Expr::Function { name, args, .. } = e else { return None };
    let (width, column) = match (*name, &args[..]) {
        ("date_trunc", [Expr::Constant(Value::Text(unit)), column]) => {
            let grain = match unit.to_lowercase().as_str() {
                "minute" => Grain::Minute,
                "hour" => Grain::Hour,
                "day" => Grain::Day,
                _ => return None,
            };
            (grain.micros(), column)
        }
        ("time_bucket", [Expr::Constant(Value::Interval(iv)), column]) if iv.months == 0 => {
            (i64::try_from(iv.total_micros()).ok()?, column)
        }
        _ => return None,
    };
    if *column != Expr::Column(time) {
        return None;
    }
    Grain::ALL.into_iter().find(|g| g.micros() == width)
}
