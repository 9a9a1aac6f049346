//! Batches of messages written as rows: one transaction per batch, committed before any of
//! its messages is acknowledged to the broker. A message that cannot be written (bad payload,
//! unknown table, a type or constraint error, no privilege) is kept in the bounded
//! dead-letter table `chronos_mqtt_rejected` in the same transaction instead, so a bad message
//! never holds up the good ones around it.

use super::mapping::{Mappings, Rows};
use super::{Metrics, Reason};
use crate::catalog::{self, Table};
use crate::error::{Error, Result};
use crate::sql::session::Writer as As;
use crate::sql::{Engine, Outcome, Session};
use crate::types::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The dead-letter table. Its rows are a ring of `keep` slots: message `seq` goes to slot
/// `seq % keep`, replacing the one `keep` rejections older.
pub const REJECTED_TABLE: &str = "chronos_mqtt_rejected";

const CREATE_REJECTED: &str = "CREATE TABLE IF NOT EXISTS chronos_mqtt_rejected (
    slot integer PRIMARY KEY,
    seq bigint NOT NULL,
    received_at timestamptz NOT NULL,
    topic text NOT NULL,
    reason text NOT NULL,
    sqlstate text NOT NULL,
    error text NOT NULL,
    payload text NOT NULL
)";

/// The payload bytes kept of a rejected message.
const KEPT_PAYLOAD: usize = 4096;

/// Commits retried at once after a serialization failure (another writer got in first).
const COMMIT_RETRIES: usize = 5;

/// A message received from the broker.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub topic: String,
    pub payload: bytes::Bytes,
    /// Receive time: microseconds since the epoch, from the node's hybrid clock.
    pub received: i64,
}

/// Writes batches of messages in a session of the ingestion role.
pub struct BatchWriter {
    engine: Arc<Engine>,
    session: Session,
    mappings: Mappings,
    keep: u64,
    next_seq: u64,
    metrics: Arc<Metrics>,
}

/// What became of a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub rows: u64,
    pub rejected: u64,
}

struct Rejection {
    message: usize,
    reason: Reason,
    error: Error,
}

impl BatchWriter {
    /// A writer for `role`; creates the dead-letter table if it is missing.
    pub fn open(engine: Arc<Engine>, role: &str, mappings: Mappings, keep: u64, metrics: Arc<Metrics>) -> Result<Self> {
        let mut admin = engine.session(catalog::roles::ADMIN, "chronos");
        let mut next_seq = 1;
        for result in admin.run(&format!("{CREATE_REJECTED}; SELECT coalesce(max(seq), 0) FROM {REJECTED_TABLE}")) {
            if let Outcome::Rows { rows, .. } = result? {
                if let Some(Value::Int8(max)) = rows.first().and_then(|r| r.first()) {
                    next_seq = *max as u64 + 1;
                }
            }
        }
        let session = engine.session(role, "chronos");
        Ok(Self { engine, session, mappings, keep: keep.max(1), next_seq, metrics })
    }

    /// Writes `batch` in one transaction and commits it. An error means nothing of the batch
    /// was committed (or, for [`Error::CommitUnknown`], that it may have been): none of its
    /// messages may be acknowledged, and the batch is written again later.
    pub fn write(&mut self, batch: &[Incoming]) -> Result<Written> {
        let mut attempt = 0;
        loop {
            match self.try_write(batch) {
                Err(Error::Serialization(_)) if attempt < COMMIT_RETRIES => attempt += 1,
                other => return other,
            }
        }
    }

    fn try_write(&mut self, batch: &[Incoming]) -> Result<Written> {
        let mut rejections = Vec::new();
        let decoded = self.decode(batch, &mut rejections)?;
        self.begin()?;
        // Every message's rows at once, grouped into one INSERT per table and shape; if any
        // fails, again message by message, to find the ones that fail.
        let rows = match self.insert_grouped(&decoded) {
            Ok(n) => n,
            Err(_) => {
                self.rollback();
                self.begin()?;
                self.insert_each(&decoded, &mut rejections)?
            }
        };
        let rejected = rejections.len() as u64;
        let first_seq = self.next_seq;
        if let Err(e) = self.reject(batch, &rejections).and_then(|()| self.commit()) {
            self.next_seq = first_seq;
            self.rollback();
            return Err(e);
        }
        for r in &rejections {
            self.metrics.rejected(r.reason);
            tracing::warn!(topic = %batch[r.message].topic, reason = r.reason.name(), error = %r.error, "mqtt message rejected");
        }
        Ok(Written { rows, rejected })
    }

    /// The rows of each message, or its rejection.
    fn decode(&self, batch: &[Incoming], rejections: &mut Vec<Rejection>) -> Result<Vec<(usize, Rows)>> {
        let mut txn = self.engine.mvcc().begin();
        let mut tables: HashMap<String, Option<Table>> = HashMap::new();
        let mut out = Vec::with_capacity(batch.len());
        for (i, message) in batch.iter().enumerate() {
            let Some(route) = self.mappings.route(&message.topic) else {
                let error = Error::InvalidParameter(format!("no mapping takes topic \"{}\"", message.topic));
                rejections.push(Rejection { message: i, reason: Reason::Topic, error });
                continue;
            };
            if !tables.contains_key(&route.table) {
                let table = catalog::get_table(&mut txn, &route.table)?;
                tables.insert(route.table.clone(), table);
            }
            let Some(table) = tables.get(&route.table).and_then(Option::as_ref) else {
                let error = Error::UndefinedTable(route.table.clone());
                rejections.push(Rejection { message: i, reason: Reason::Table, error });
                continue;
            };
            match self.mappings.rows(&route, table, &message.payload, message.received) {
                Ok(rows) => out.push((i, rows)),
                Err(error) => rejections.push(Rejection { message: i, reason: Reason::of(&error), error }),
            }
        }
        Ok(out)
    }

    fn insert_grouped(&mut self, decoded: &[(usize, Rows)]) -> Result<u64> {
        let mut groups: Vec<(&Rows, Vec<Vec<Value>>)> = Vec::new();
        let mut index: HashMap<(&str, &[String], bool), usize> = HashMap::new();
        for (_, rows) in decoded {
            let key = (rows.table.as_str(), rows.targets.as_slice(), rows.upsert);
            let g = *index.entry(key).or_insert_with(|| {
                groups.push((rows, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.extend(rows.rows.iter().cloned());
        }
        let mut written = 0;
        for (shape, rows) in groups {
            written += self.session.insert_values(&shape.table, &shape.targets, rows, shape.upsert, As::Role)?;
        }
        Ok(written)
    }

    fn insert_each(&mut self, decoded: &[(usize, Rows)], rejections: &mut Vec<Rejection>) -> Result<u64> {
        let mut written = 0;
        for (i, rows) in decoded {
            let mark = self.session.mark().ok_or_else(|| Error::Internal("no transaction for a batch".into()))?;
            let r = &rows;
            match self.session.insert_values(&r.table, &r.targets, r.rows.clone(), r.upsert, As::Role) {
                Ok(n) => written += n,
                Err(e @ (Error::Io(_) | Error::DiskFull(_) | Error::Corruption(_) | Error::Internal(_))) => {
                    return Err(e)
                }
                Err(error) => {
                    self.session.rewind(&mark);
                    rejections.push(Rejection { message: *i, reason: Reason::of(&error), error });
                }
            }
        }
        rejections.sort_by_key(|r| r.message);
        Ok(written)
    }

    /// Keeps the rejected messages in the dead-letter table.
    fn reject(&mut self, batch: &[Incoming], rejections: &[Rejection]) -> Result<()> {
        if rejections.is_empty() {
            return Ok(());
        }
        let targets: Vec<String> = ["slot", "seq", "received_at", "topic", "reason", "sqlstate", "error", "payload"]
            .map(String::from)
            .to_vec();
        let mut rows = Vec::with_capacity(rejections.len());
        for r in rejections.iter().rev().take(self.keep as usize).rev() {
            let message = &batch[r.message];
            let seq = self.next_seq;
            self.next_seq += 1;
            let payload = &message.payload[..message.payload.len().min(KEPT_PAYLOAD)];
            rows.push(vec![
                Value::Int4((seq % self.keep) as i32),
                Value::Int8(seq as i64),
                Value::TimestampTz(message.received),
                Value::Text(message.topic.clone()),
                Value::Text(r.reason.name().to_string()),
                Value::Text(r.error.sqlstate().to_string()),
                Value::Text(r.error.to_string()),
                Value::Text(String::from_utf8_lossy(payload).replace('\0', "\u{fffd}")),
            ]);
        }
        self.session.insert_values(REJECTED_TABLE, &targets, rows, true, As::Server).map(|_| ())
    }

    fn begin(&mut self) -> Result<()> {
        match self.session.run("BEGIN").pop() {
            Some(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    fn commit(&mut self) -> Result<()> {
        match self.session.run("COMMIT").pop() {
            Some(Ok(Outcome::Command { tag })) if tag == "COMMIT" => Ok(()),
            Some(Err(e)) => Err(e),
            other => Err(Error::Internal(format!("COMMIT of an ingested batch answered {other:?}"))),
        }
    }

    fn rollback(&mut self) {
        let _ = self.session.run("ROLLBACK");
    }
}
