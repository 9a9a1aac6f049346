//! The sync views: `chronos_sync_status` on an edge (its worker and its outbox) and
//! `chronos_sync_edges` on the cloud (every edge that pushed, with the time of the newest
//! change committed from it).

use super::{text, Columns};
use crate::error::Result;
use crate::sql::execution::{Context, Row};
use crate::sync::{self, cloud, outbox};
use crate::types::{DataType, Value};

pub const STATUS: Columns = cols![
    "edge_id": Text, "state": Text, "target": Text, "backlog_changes": Int8, "oldest_pending": TimestampTz,
    "pushes": Int8, "rows_sent": Int8, "bytes_sent": Int8, "errors": Int8, "last_error": Text,
    "last_success": TimestampTz,
];
pub const EDGES: Columns =
    cols!["edge_id": Text, "last_change": TimestampTz, "cursor_version": Int8, "cursor_index": Int4];

fn time(version: Option<u64>) -> Value {
    version.map_or(Value::Null, |v| Value::TimestampTz(sync::hlc_micros(v)))
}

/// The rows of `chronos_sync_status`: one on an edge, none elsewhere.
pub fn status(ctx: &mut Context) -> Result<Vec<Row>> {
    let Some(edge) = outbox::edge(ctx.txn)? else { return Ok(Vec::new()) };
    let backlog = outbox::backlog(ctx.txn)?;
    let report = ctx.session.sync.as_ref().map(|s| s.report());
    let counter =
        |f: fn(&sync::worker::Report) -> u64| report.as_ref().map_or(Value::Null, |r| Value::Int8(f(r) as i64));
    Ok(vec![vec![
        text(edge.id),
        report.as_ref().map_or(Value::Null, |r| text(r.state.name())),
        report.as_ref().map_or(Value::Null, |r| text(&r.target)),
        Value::Int8(backlog.changes as i64),
        time(backlog.oldest),
        counter(|r| r.pushes),
        counter(|r| r.rows_sent),
        counter(|r| r.bytes_sent),
        counter(|r| r.errors),
        report.as_ref().and_then(|r| r.last_error.clone()).map_or(Value::Null, text),
        time(report.as_ref().and_then(|r| r.last_success)),
    ]])
}

/// The rows of `chronos_sync_edges`.
pub fn edges(ctx: &mut Context) -> Result<Vec<Row>> {
    Ok(cloud::edges(ctx.txn)?
        .into_iter()
        .map(|(edge, cursor)| {
            vec![
                text(edge),
                time(Some(cursor.version)),
                Value::Int8(cursor.version as i64),
                Value::Int4(cursor.index as i32),
            ]
        })
        .collect())
}
