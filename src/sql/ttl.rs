//! TTL: rows older than their table's time to live expire.
//!
//! A table created `WITH (ttl = '7d')` (or `WITH TTL=7d`) keeps the rows whose time column is
//! within the TTL of `min(now, newest time in the table)`. Measured against the newest row as
//! well as the clock, one future-dated row cannot expire the whole table, and a gateway whose
//! clock is wrong by years keeps its data. The time column is the one `WITH (time_column =
//! …)` names, else the last primary-key column if it is a timestamp, else the table's first
//! timestamp column (`Table::time_column`); a row whose time is NULL never expires. Months in the TTL count as 30 days. The boundary: a row expires when its time is
//! strictly older than the cutoff.
//!
//! Expiry runs on the node that may commit (the Raft leader, or a single node): it scans the
//! table in a snapshot, then deletes expired rows and their index entries in ordinary
//! transactions of at most [`EXPIRE_BATCH`] rows, so it is replicated like any delete and a
//! restart never brings a row back. Each row is read again in the deleting transaction, so a
//! row updated meanwhile (given a newer time) is left alone, and concurrent inserts into the
//! table never conflict with expiry. With the row layout every round reads the whole table.
//! On an edge, expiry is not pushed to the cloud (`sync::outbox::keep_local`).

use super::execution::dml::delete_row_in;
use super::session::Engine;
use crate::catalog::{self, Table};
use crate::error::{Error, Result};
use crate::types::Value;
use std::sync::atomic::Ordering;

/// Rows deleted per transaction.
pub const EXPIRE_BATCH: usize = 10_000;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The TTL of `table` in microseconds, if it has one.
pub fn ttl_micros(table: &Table) -> Result<Option<i64>> {
    let Some(text) = &table.ttl else { return Ok(None) };
    let interval = crate::types::datetime::parse_interval(text)?;
    let micros = (interval.months as i64 * 30 + interval.days as i64)
        .checked_mul(MICROS_PER_DAY)
        .and_then(|days| days.checked_add(interval.micros))
        .filter(|micros| *micros > 0)
        .ok_or_else(|| Error::InvalidParameter(format!("ttl must be a positive interval, not \"{text}\"")))?;
    Ok(Some(micros))
}

/// Refuses a table whose TTL is not a positive interval or that has no time column to
/// measure it by.
pub fn check(table: &Table) -> Result<()> {
    if ttl_micros(table)?.is_some() && table.time_column().is_none() {
        return Err(Error::InvalidParameter(format!(
            "table \"{}\" has a ttl but no timestamp column to measure it by",
            table.name
        )));
    }
    Ok(())
}

fn time_of(row: &[Value], column: usize) -> Option<i64> {
    match row.get(column) {
        Some(Value::Timestamp(t) | Value::TimestampTz(t)) => Some(*t),
        _ => None,
    }
}

impl Engine {
    /// Deletes the expired rows of every table with a TTL, as of `now` (microseconds, the
    /// clock `now()` reads). Returns how many rows it deleted.
    /// A table that fails (a conflict, a TTL stored before it was validated) is skipped with
    /// a warning until the next round; the others go on.
    pub fn expire_ttl(&self, now: i64) -> Result<u64> {
        let tables = catalog::list_tables(&mut self.mvcc().begin())?;
        let mut expired = 0;
        for table in tables.iter().filter(|t| t.ttl.is_some()) {
            let mut deleted = 0;
            if let Err(e) = self.expire_table(table, now, &mut deleted) {
                tracing::warn!(table = %table.name, error = %e, "ttl expiry of a table failed; it runs again later");
            }
            self.ttl_expired.fetch_add(deleted, Ordering::Relaxed);
            expired += deleted;
        }
        Ok(expired)
    }

    /// Rows expired by TTL since start-up.
    pub fn ttl_expired_rows(&self) -> u64 {
        self.ttl_expired.load(Ordering::Relaxed)
    }

    /// Expires the rows of `table`, adding each committed batch to `deleted`.
    fn expire_table(&self, table: &Table, now: i64, deleted: &mut u64) -> Result<()> {
        let (Some(ttl), Some(column)) = (ttl_micros(table)?, table.time_column()) else { return Ok(()) };
        let prefix = table.row_prefix();
        let mut newest = None;
        self.mvcc().begin().for_each_prefix(&prefix, |_, bytes| {
            newest = newest.max(time_of(&table.decode_row(bytes)?, column));
            Ok(true)
        })?;
        let Some(newest) = newest else { return Ok(()) };
        let cutoff = now.min(newest).saturating_sub(ttl);
        let expired = |row: &[Value]| time_of(row, column).is_some_and(|t| t < cutoff);
        // Each batch resumes after the previous one's last key (not over its tombstones).
        let mut after: Option<Vec<u8>> = None;
        loop {
            let mut doomed = Vec::new();
            self.mvcc().begin().for_each_from(&prefix, after.as_deref(), |key, bytes| {
                if expired(&table.decode_row(bytes)?) {
                    doomed.push(key.to_vec());
                }
                Ok(doomed.len() < EXPIRE_BATCH)
            })?;
            let mut txn = self.mvcc().begin();
            // The definition the deletes follow (its index entries, its column positions) must
            // be the one in force: reading it here makes a concurrent change of the table
            // conflict with this transaction, and a change committed since the scan stops it.
            if catalog::get_table(&mut txn, &table.name)?.as_ref() != Some(table) {
                return Ok(());
            }
            let mut batch = 0;
            for key in &doomed {
                // Read again here: only this row's own changes conflict with its expiry.
                let Some(bytes) = txn.get(key)? else { continue };
                let row = table.decode_row(&bytes)?;
                if expired(&row) {
                    delete_row_in(&mut txn, table, key, &row);
                    batch += 1;
                }
            }
            // Retention is each site's own: the cloud keeps rows an edge expires.
            crate::sync::outbox::keep_local(&mut txn);
            txn.commit()?;
            *deleted += batch;
            if doomed.len() < EXPIRE_BATCH {
                return Ok(());
            }
            after = doomed.pop();
        }
    }
}
