//! `chronos_segments`: for each time-series table, its rows sealed into column segments and
//! the bytes they take (`mvcc::segments`, `timeseries::segment`).

use super::{text, Columns};
use crate::catalog;
use crate::error::Result;
use crate::sql::execution::{Context, Row};
use crate::types::{DataType, Value};

pub const SEGMENTS: Columns =
    cols!["table_name": Text, "segments": Int8, "sealed_rows": Int8, "bytes": Int8, "bits_per_row": Float8];

/// The rows of `chronos_segments`: one per time-series table.
pub fn rows(ctx: &mut Context) -> Result<Vec<Row>> {
    let mvcc = ctx.txn.mvcc().clone();
    let mut out = Vec::new();
    for table in catalog::list_tables(ctx.txn)? {
        if table.time_series_column().is_none() {
            continue;
        }
        let (segments, bytes, rows) = mvcc.segment_totals_under(&table.row_prefix());
        let bits = if rows == 0 { Value::Null } else { Value::Float8((bytes * 8) as f64 / rows as f64) };
        out.push(vec![
            text(table.name),
            Value::Int8(segments as i64),
            Value::Int8(rows as i64),
            Value::Int8(bytes as i64),
            bits,
        ]);
    }
    Ok(out)
}
