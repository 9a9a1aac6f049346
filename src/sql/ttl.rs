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
//! table never conflict with expiry. A time-series table (its primary key ends with the time
//! column) is read by series: a round reads the last row of each series and the rows that
//! expire.
//! Other tables are read whole every round.
//! On an edge, expiry is not pushed to the cloud (`sync::outbox::keep_local`).

use super::execution::dml::delete_row_in;
use super::session::Engine;
use crate::catalog::{self, Table};
use crate::error::{Error, Result};
use crate::timeseries::summary;
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
        // A summarized table's time column ends its primary key.
        if table.summarized {
            return self.expire_series(table, ttl, column, now, deleted);
        }
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
            let full = doomed.len() == EXPIRE_BATCH;
            after = doomed.last().cloned();
            if !self.delete_expired(table, &mut doomed, &expired, deleted)? || !full {
                return Ok(());
            }
        }
    }

    /// Expires the rows of a time-series table (its primary key ends with its time column)
    /// by series, from the summaries' list of them: the newest time is each series' last
    /// row, and the expired rows of a series are the keys before its cutoff, so a round reads
    /// what expires and one row per series, not the whole table.
    fn expire_series(&self, table: &Table, ttl: i64, column: usize, now: i64, deleted: &mut u64) -> Result<()> {
        // One snapshot reads everything; each batch deletes in a transaction of its own.
        let mut read = self.mvcc().begin();
        let series = summary::series(&mut read, table)?;
        let mut newest = None;
        for prefix in &series {
            read.for_each_range_rev(prefix, None, None, None, |_, bytes| {
                newest = newest.max(time_of(&table.decode_row(bytes)?, column));
                Ok(false)
            })?;
        }
        let Some(newest) = newest else { return Ok(()) };
        let cutoff = now.min(newest).saturating_sub(ttl);
        let expired = |row: &[Value]| time_of(row, column).is_some_and(|t| t < cutoff);
        let mut doomed = Vec::new();
        for prefix in &series {
            let upper = summary::time_key(table, prefix, cutoff);
            let mut after: Option<Vec<u8>> = None;
            loop {
                let room = EXPIRE_BATCH - doomed.len();
                let mut found = 0;
                read.for_each_range(prefix, after.as_deref(), None, Some(&upper), |key, _| {
                    doomed.push(key.to_vec());
                    found += 1;
                    Ok(found < room)
                })?;
                if found < room {
                    break;
                }
                after = doomed.last().cloned();
                if !self.delete_expired(table, &mut doomed, &expired, deleted)? {
                    return Ok(());
                }
            }
        }
        self.delete_expired(table, &mut doomed, &expired, deleted)?;
        Ok(())
    }

    /// Deletes the rows at `doomed` (drained) that are still `expired`, with their index
    /// entries, in one transaction, adding them to `deleted`. False when the table's
    /// definition changed since it was read: expiry then stops until the next round.
    fn delete_expired(
        &self,
        table: &Table,
        doomed: &mut Vec<Vec<u8>>,
        expired: &dyn Fn(&[Value]) -> bool,
        deleted: &mut u64,
    ) -> Result<bool> {
        if doomed.is_empty() {
            return Ok(true);
        }
        let mut txn = self.mvcc().begin();
        // The definition the deletes follow (its index entries, its column positions) must be
        // the one in force: reading it here makes a concurrent change of the table conflict
        // with this transaction, and a change committed since the scan stops it.
        if catalog::get_table(&mut txn, &table.name)?.as_ref() != Some(table) {
            return Ok(false);
        }
        let mut batch = 0;
        for key in doomed.drain(..) {
            // Read again here: only this row's own changes conflict with its expiry.
            let Some(bytes) = txn.get(&key)? else { continue };
            let row = table.decode_row(&bytes)?;
            if expired(&row) {
                delete_row_in(&mut txn, table, &key, &row);
                batch += 1;
            }
        }
        // Retention is each site's own: the cloud keeps rows an edge expires.
        crate::sync::outbox::keep_local(&mut txn);
        txn.commit()?;
        *deleted += batch;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::Outcome;

    fn count(s: &mut crate::sql::Session, sql: &str) -> i64 {
        match s.run(sql).pop().unwrap().unwrap() {
            Outcome::Rows { rows, .. } => rows[0][0].as_i64().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    /// A time-series table expires by series, in batches that cross series, exactly the rows
    /// a table read whole expires; its summaries follow.
    #[test]
    fn series_expire_exactly_what_a_whole_read_expires() {
        let engine = crate::node::open_in_memory().unwrap();
        let mut s = engine.session("admin", "chronos");
        // Three devices with a reading a second for 8,000 seconds; with a ttl of 1,000 s from
        // the newest reading, the 6,999 before its cutoff expire per device (20,997: more than
        // two batches, which cross devices).
        let load = "SELECT 'dev-' || d, timestamptz '2024-01-01 00:00Z' + i * interval '1 second', i \
                    FROM generate_series(1, 3) d, generate_series(1, 8000) i";
        for sql in [
            "CREATE TABLE series (device TEXT, ts TIMESTAMPTZ, v INT, PRIMARY KEY (device, ts)) WITH (ttl = '1000 seconds')",
            "CREATE TABLE whole (device TEXT, ts TIMESTAMPTZ, v INT, PRIMARY KEY (ts, device)) WITH (ttl = '1000 seconds')",
        ] {
            for r in s.run(sql) {
                r.unwrap();
            }
        }
        for table in ["series", "whole"] {
            for r in s.run(&format!("INSERT INTO {table} {load}")) {
                r.unwrap();
            }
        }
        let now = crate::types::datetime::parse_timestamp("2030-01-01 00:00Z", true).unwrap();
        assert_eq!(engine.expire_ttl(now).unwrap(), 2 * 3 * 6_999);
        for table in ["series", "whole"] {
            let left = format!("SELECT count(*) FROM {table}");
            assert_eq!(count(&mut s, &left), 3 * 1_001, "{table}");
            let oldest = format!("SELECT min(v) FROM {table}");
            assert_eq!(count(&mut s, &oldest), 7_000, "{table}: the reading at the cutoff stays");
        }
        // The rows and the summaries (a whole-table count reads them) agree.
        assert_eq!(count(&mut s, "SELECT count(*) FROM series WHERE v > 0"), 3 * 1_001);
        let plan = s.run("EXPLAIN SELECT count(*) FROM series").pop().unwrap().unwrap();
        assert!(format!("{plan:?}").contains("ummar"), "{plan:?}");
        assert_eq!(engine.expire_ttl(now).unwrap(), 0, "nothing left to expire");
    }
}
