//! Minute, hour and day summaries of time-series tables, kept on apply, from which the window
//! aggregates (`avg_1h(x)`, `max_7d(x)`, …) are answered without reading rows.
//!
//! A summarized table (see [`Table::summarized`]) has one [`Record`] per grain and bucket that
//! holds rows: its row count and, per column, the count, sum, minimum and maximum of the
//! values. The records are ordinary MVCC keys of the [`Keyspace::Summary`] keyspace, written
//! at the version of the batch whose rows they follow, by [`Summaries`] while the batch is
//! applied (on every replica alike, from the replicated batch alone). So a snapshot reads the
//! summaries of exactly the rows it sees, and inserts, updates, deletes, TTL expiry and every
//! other writer keep them correct without knowing about them.
//!
//! Key: tag, table id (4 bytes, big-endian), grain (one byte), then the bucket's start as an
//! order-preserving encoded bigint (microseconds since 1970, the same units as a timestamp's
//! value). Buckets are aligned to UTC: a minute starts at second 0, an hour at minute 0, a
//! day at midnight UTC. Beside them, an empty record per series (each value of the primary
//! key's columns before the time: a device) lists it, under tag, table id, 0x10 and the
//! series' encoded values, so the rows of one short time range are read with one key range
//! per series (see [`series`]). A series stays listed when its rows are deleted, until the
//! table is truncated or its columns change.
//!
//! Applying a batch that changes a summarized table's columns (ALTER TABLE … ADD COLUMN, DROP
//! COLUMN, ALTER TYPE) or makes a table summarized rebuilds its records from its rows, which
//! such a batch rewrites anyway. TRUNCATE and DROP retire the records with the rows.

pub mod record;

pub use record::{ColumnSummary, FloatSummary, IntSummary, Record};

use crate::catalog::{self, Table, TableId, CATALOG, ROW, SUMMARY};
use crate::error::{Error, Result};
use crate::mvcc::{lock, Derive, Transaction, Write, WriteBatch};
use crate::storage::keycode;
use crate::types::{DataType, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

const MICROS_PER_MINUTE: i64 = 60_000_000;

/// The width of a summary bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grain {
    Minute = 0,
    Hour = 1,
    Day = 2,
}

impl Grain {
    pub const ALL: [Grain; 3] = [Grain::Minute, Grain::Hour, Grain::Day];

    pub fn micros(self) -> i64 {
        match self {
            Grain::Minute => MICROS_PER_MINUTE,
            Grain::Hour => 60 * MICROS_PER_MINUTE,
            Grain::Day => 24 * 60 * MICROS_PER_MINUTE,
        }
    }

    /// The start of the bucket holding time `t` (the lowest bucket for times below it).
    pub fn bucket(self, t: i64) -> i64 {
        t.div_euclid(self.micros()).checked_mul(self.micros()).unwrap_or(i64::MIN)
    }
}

/// The window of a window aggregate (`avg_1h`, `avg_24h`, `avg_7d`): the rows whose time is
/// at or after the start of the current bucket of its grain, less its span. So `avg_1h` reads
/// the current minute and the 60 whole minutes before it, `avg_24h` the current hour and the
/// 24 hours before it, `avg_7d` the current (UTC) day and the 7 days before it; rows dated in
/// the future count too, as they do for `ts >= now() - interval '1 hour'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    Hour,
    Day,
    Week,
}

impl Window {
    /// The window named by a function's suffix (`1h`, `24h`, `7d`).
    pub fn from_suffix(suffix: &str) -> Option<Window> {
        Some(match suffix {
            "1h" => Window::Hour,
            "24h" => Window::Day,
            "7d" => Window::Week,
            _ => return None,
        })
    }

    pub fn suffix(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
        }
    }

    /// The grain whose buckets the window is made of.
    pub fn grain(self) -> Grain {
        match self {
            Window::Hour => Grain::Minute,
            Window::Day => Grain::Hour,
            Window::Week => Grain::Day,
        }
    }

    /// How far the window reaches back before the start of the current bucket.
    pub fn span_micros(self) -> i64 {
        match self {
            Window::Hour => Grain::Hour.micros(),
            Window::Day => Grain::Day.micros(),
            Window::Week => 7 * Grain::Day.micros(),
        }
    }

    /// The first time in the window at time `now`.
    pub fn start(self, now: i64) -> i64 {
        self.grain().bucket(now).saturating_sub(self.span_micros())
    }
}

/// The key of the record of `table`'s bucket starting at `bucket`.
fn record_key(table: TableId, grain: Grain, bucket: i64) -> Vec<u8> {
    let mut key = grain_prefix(table, grain);
    keycode::encode_value(&Value::Int8(bucket), &mut key);
    key
}

/// The tag after the table id of the series records (grains are 0 to 2).
const SERIES: u8 = 0x10;

/// The key of the record listing one series of `table`: `series` is the encoded values of
/// the primary key's columns before the time (empty when it has none).
fn series_key(table: TableId, series: &[u8]) -> Vec<u8> {
    let mut key = vec![SUMMARY.tag()];
    key.extend_from_slice(&table.to_be_bytes());
    key.push(SERIES);
    key.extend_from_slice(series);
    key
}

/// The series of a row key: its primary key's values before the time, encoded.
fn series_of<'k>(table: &Table, row_key: &'k [u8]) -> Result<&'k [u8]> {
    let body = row_key.get(5..).ok_or_else(|| Error::Corruption("row key too short".into()))?;
    let mut rest = body;
    for _ in 1..table.primary_key.len() {
        keycode::decode_value(&mut rest)?;
    }
    Ok(&body[..body.len() - rest.len()])
}

/// The key prefixes of every series of `table` that has held rows (each a row-key prefix:
/// the table's row prefix and the series' values), in key order.
pub fn series(txn: &mut Transaction, table: &Table) -> Result<Vec<Vec<u8>>> {
    txn.note_scan(&table.row_prefix());
    let prefix = series_key(table.id, &[]);
    let mut out = Vec::new();
    txn.for_each_prefix(&prefix, |key, _| {
        let mut series = table.row_prefix();
        series.extend_from_slice(&key[prefix.len()..]);
        out.push(series);
        Ok(true)
    })?;
    Ok(out)
}

/// The key in `series` (a row-key prefix, as [`series`] lists them) of the row at time `t`:
/// a bound of a time range within the series.
pub fn time_key(table: &Table, series: &[u8], t: i64) -> Vec<u8> {
    let time = table.time_series_column().map(|c| &table.columns[c].data_type);
    let value = match time {
        Some(DataType::Timestamp) => Value::Timestamp(t),
        _ => Value::TimestampTz(t),
    };
    let mut key = series.to_vec();
    keycode::encode_value(&value, &mut key);
    key
}

fn grain_prefix(table: TableId, grain: Grain) -> Vec<u8> {
    let mut key = vec![SUMMARY.tag()];
    key.extend_from_slice(&table.to_be_bytes());
    key.push(grain as u8);
    key
}

/// The summary of the rows of `table` whose time is in `[start, end)` (bucket starts of
/// `grain`; None: unbounded), as `txn` sees them. Reading it counts as reading the table's
/// rows for serializable validation. The caller checks the table is summarized and that `txn`
/// has not written its rows itself (the summaries follow committed rows only).
pub fn range(
    txn: &mut Transaction,
    table: &Table,
    grain: Grain,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<Record> {
    txn.note_scan(&table.row_prefix());
    let prefix = grain_prefix(table.id, grain);
    let lower = start.map(|s| record_key(table.id, grain, s));
    let upper = end.map(|e| record_key(table.id, grain, e));
    let mut total = Record::empty(table);
    txn.for_each_range(&prefix, None, lower.as_deref(), upper.as_deref(), |_, bytes| {
        total.merge(&Record::decode(table, bytes)?);
        Ok(true)
    })?;
    Ok(total)
}

/// How the rows with times in `[lo, hi)` (None: unbounded) are read: whole buckets from the
/// summaries, the largest grain first, and the rows of the partial minutes at the ends.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    /// The records of `grain` with bucket starts in `[start, end)`.
    Buckets(Grain, Option<i64>, Option<i64>),
    /// The rows with times in `[start, end)`, less than a minute.
    Rows(i64, i64),
}

/// The pieces of `[lo, hi)`, in time order.
pub fn cover(lo: Option<i64>, hi: Option<i64>) -> Vec<Piece> {
    let mut pieces = Vec::new();
    cover_at(lo, hi, Grain::ALL.len(), &mut pieces);
    pieces
}

/// Covers `[lo, hi)` with the grains below `level` (`Grain::ALL[level - 1]` the largest).
fn cover_at(lo: Option<i64>, hi: Option<i64>, level: usize, out: &mut Vec<Piece>) {
    if let (Some(l), Some(h)) = (lo, hi) {
        if l >= h {
            return;
        }
    }
    let Some(grain) = level.checked_sub(1).map(|i| Grain::ALL[i]) else {
        // Below a minute; both ends are finite here, a minute's grain covered the rest.
        if let (Some(l), Some(h)) = (lo, hi) {
            out.push(Piece::Rows(l, h));
        }
        return;
    };
    let w = grain.micros();
    // The first bucket start at or after `lo`, and the last at or before `hi`.
    let first = lo.map(|l| {
        let floor = grain.bucket(l);
        if floor == l {
            l
        } else {
            floor.checked_add(w).unwrap_or(i64::MAX)
        }
    });
    let last = hi.map(|h| grain.bucket(h));
    let whole = match (first, last) {
        (Some(f), Some(l)) => f < l,
        _ => true,
    };
    if whole {
        // An unbounded end is all buckets.
        if lo.is_some() {
            cover_at(lo, first, level - 1, out);
        }
        out.push(Piece::Buckets(grain, first, last));
        if hi.is_some() {
            cover_at(last, hi, level - 1, out);
        }
    } else {
        cover_at(lo, hi, level - 1, out);
    }
}

/// Calls `f` with the start and the record of each bucket of `grain` that holds rows of
/// `table`, in time order (see [`since`] for what the caller checks).
pub fn each_bucket(
    txn: &mut Transaction,
    table: &Table,
    grain: Grain,
    mut f: impl FnMut(i64, Record) -> Result<()>,
) -> Result<()> {
    txn.note_scan(&table.row_prefix());
    let prefix = grain_prefix(table.id, grain);
    txn.for_each_prefix(&prefix, |key, bytes| {
        let mut rest = &key[prefix.len()..];
        let Value::Int8(bucket) = keycode::decode_value(&mut rest)? else {
            return Err(Error::Corruption(format!("summary key of table {}", table.name)));
        };
        f(bucket, Record::decode(table, bytes)?)?;
        Ok(true)
    })
}

/// Keeps the summaries: the [`Derive`] of the MVCC store.
#[derive(Default)]
pub struct Summaries {
    /// The table definitions as of the last batch applied, while no batch changed them.
    catalog: Mutex<Option<Arc<Catalog>>>,
    /// Series records known to be stored (at most [`KNOWN_SERIES`]), while no batch changed
    /// the catalog: a row of a listed series is written without reading its record.
    known_series: Mutex<HashSet<Vec<u8>>>,
}

/// How many stored series records [`Summaries`] remembers.
const KNOWN_SERIES: usize = 100_000;

/// Table definitions by catalog key and by id.
#[derive(Clone, Default)]
struct Catalog {
    by_key: HashMap<Vec<u8>, Arc<Table>>,
    by_id: HashMap<TableId, Arc<Table>>,
}

impl Catalog {
    fn load(txn: &mut Transaction) -> Result<Catalog> {
        let mut catalog = Catalog::default();
        for (key, bytes) in txn.scan_prefix(&[CATALOG.tag()])? {
            catalog.put(key, Some(&bytes))?;
        }
        Ok(catalog)
    }

    /// Sets (or with None removes) the definition stored under `key`.
    fn put(&mut self, key: Vec<u8>, bytes: Option<&[u8]>) -> Result<()> {
        if let Some(old) = self.by_key.remove(&key) {
            // Unless a rename in the same batch has already put the table under its new name.
            if self.by_id.get(&old.id).is_some_and(|t| Arc::ptr_eq(t, &old)) {
                self.by_id.remove(&old.id);
            }
        }
        if let Some(bytes) = bytes {
            let table = Arc::new(catalog::decode_table(bytes)?);
            self.by_id.insert(table.id, table.clone());
            self.by_key.insert(key, table);
        }
        Ok(())
    }
}

/// What decides a record's layout: a change of it rebuilds the table's records.
fn same_shape(a: &Table, b: &Table) -> bool {
    a.summarized
        && a.time_series_column() == b.time_series_column()
        && a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| x.data_type == y.data_type)
}

/// The table id of a row key.
fn table_of(key: &[u8]) -> Result<TableId> {
    let id = key.get(1..5).ok_or_else(|| Error::Corruption("row key too short".into()))?;
    Ok(TableId::from_be_bytes([id[0], id[1], id[2], id[3]]))
}

/// The time of a row of a summarized table.
fn time_of(table: &Table, row: &[Value]) -> Option<i64> {
    match row.get(table.time_series_column()?) {
        Some(Value::Timestamp(t) | Value::TimestampTz(t)) => Some(*t),
        _ => None,
    }
}

/// The records a batch changes, each with whether it existed before the batch.
#[derive(Default)]
struct Changes {
    records: BTreeMap<Vec<u8>, (Record, bool)>,
    /// Series records to write (true) or delete (false).
    series: BTreeMap<Vec<u8>, bool>,
}

impl Changes {
    /// Adds (`add`) or removes a row of `table` in each grain's bucket.
    fn update(&mut self, before: &mut Transaction, table: &Table, row: &[Value], add: bool) -> Result<()> {
        let Some(time) = time_of(table, row) else { return Ok(()) };
        for grain in Grain::ALL {
            let key = record_key(table.id, grain, grain.bucket(time));
            let (record, _) = match self.records.entry(key) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let loaded = match before.get(e.key())? {
                        Some(bytes) => (Record::decode(table, &bytes)?, true),
                        None => (Record::empty(table), false),
                    };
                    e.insert(loaded)
                }
            };
            if add {
                record.add(row);
            } else {
                record.remove(row);
            }
        }
        Ok(())
    }

    /// Lists the series of a row of `table` written by the batch, unless it is listed.
    fn list(
        &mut self,
        before: &mut Transaction,
        known: &Mutex<HashSet<Vec<u8>>>,
        table: &Table,
        row_key: &[u8],
    ) -> Result<()> {
        let key = series_key(table.id, series_of(table, row_key)?);
        if self.series.contains_key(&key) || lock(known).contains(&key) {
            return Ok(());
        }
        if before.get(&key)?.is_some() {
            // Remembered only once stored: this batch may yet fail to apply.
            let mut known = lock(known);
            if known.len() < KNOWN_SERIES {
                known.insert(key);
            }
            return Ok(());
        }
        self.series.insert(key, true);
        Ok(())
    }

    /// Replaces every record of `table` by records computed from its rows after `batch`.
    fn rebuild(&mut self, before: &mut Transaction, table: &Table, batch: &WriteBatch) -> Result<()> {
        for grain in Grain::ALL {
            for (key, _) in before.scan_prefix(&grain_prefix(table.id, grain))? {
                self.records.insert(key, (Record::empty(table), true));
            }
        }
        for (key, _) in before.scan_prefix(&series_key(table.id, &[]))? {
            self.series.insert(key, false);
        }
        let mut listed: HashSet<Vec<u8>> = HashSet::new();
        let prefix = table.row_prefix();
        let start = batch.writes.partition_point(|(k, _)| k.as_slice() < prefix.as_slice());
        let end = start + batch.writes[start..].partition_point(|(k, _)| k.starts_with(&prefix));
        let written = &batch.writes[start..end];
        let mut fresh: BTreeMap<Vec<u8>, Record> = BTreeMap::new();
        let mut add = |row: &[Value]| {
            if let Some(time) = time_of(table, row) {
                for grain in Grain::ALL {
                    let key = record_key(table.id, grain, grain.bucket(time));
                    fresh.entry(key).or_insert_with(|| Record::empty(table)).add(row);
                }
            }
        };
        let mut count = |key: &[u8]| -> Result<()> {
            listed.insert(series_key(table.id, series_of(table, key)?));
            Ok(())
        };
        before.for_each_prefix(&prefix, |key, bytes| {
            if written.binary_search_by(|(k, _)| k.as_slice().cmp(key)).is_err() {
                add(&table.decode_row(bytes)?);
                count(key)?;
            }
            Ok(true)
        })?;
        for (key, value) in written {
            if let Some(bytes) = value {
                add(&table.decode_row(bytes)?);
                count(key)?;
            }
        }
        for (key, record) in fresh {
            let existed = self.records.get(&key).is_some_and(|(_, existed)| *existed);
            self.records.insert(key, (record, existed));
        }
        for key in listed {
            self.series.insert(key, true);
        }
        Ok(())
    }

    fn into_writes(self) -> Vec<Write> {
        let mut writes = Vec::with_capacity(self.records.len() + self.series.len());
        for (key, (record, existed)) in self.records {
            if record.rows > 0 {
                writes.push((key, Some(record.encode())));
            } else if existed {
                writes.push((key, None));
            }
        }
        for (key, put) in self.series {
            writes.push((key, put.then(Vec::new)));
        }
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        writes
    }
}

impl Summaries {
    /// The definitions as of `before`.
    fn catalog(&self, before: &mut Transaction) -> Result<Arc<Catalog>> {
        if let Some(catalog) = lock(&self.catalog).as_ref() {
            return Ok(catalog.clone());
        }
        let catalog = Arc::new(Catalog::load(before)?);
        *lock(&self.catalog) = Some(catalog.clone());
        Ok(catalog)
    }
}

impl Derive for Summaries {
    /// Time-series tables (the primary key ends with the time) take batches of rows as
    /// column segments.
    fn segment_codec(&self, domain: &[u8]) -> Option<Arc<dyn crate::mvcc::SegmentCodec>> {
        let id = table_of(domain).ok()?;
        let catalog = lock(&self.catalog).clone()?;
        catalog.by_id.get(&id)?.time_series_column()?;
        Some(Arc::new(crate::timeseries::segment::ColumnCodec))
    }

    fn derive(&self, batch: &WriteBatch, before: &mut Transaction) -> Result<Vec<Write>> {
        let (mut ddl, mut rows) = (false, false);
        for (key, _) in &batch.writes {
            match key.first() {
                Some(&t) if t == CATALOG.tag() => ddl = true,
                Some(&t) if t == ROW.tag() => rows = true,
                _ => {}
            }
        }
        if !ddl && !rows {
            return Ok(Vec::new());
        }
        let old = self.catalog(before)?;
        let new = if ddl {
            // Read again at the next batch: this one may yet fail to apply and come again.
            *lock(&self.catalog) = None;
            lock(&self.known_series).clear();
            let mut new = (*old).clone();
            for (key, value) in batch.writes.iter().filter(|(k, _)| k.first() == Some(&CATALOG.tag())) {
                new.put(key.clone(), value.as_deref())?;
            }
            Arc::new(new)
        } else {
            old.clone()
        };
        let mut changes = Changes::default();
        let mut rebuilt = Vec::new();
        if ddl {
            for table in new.by_id.values().filter(|t| t.summarized) {
                if old.by_id.get(&table.id).is_some_and(|o| !same_shape(o, table)) {
                    changes.rebuild(before, table, batch)?;
                    rebuilt.push(table.id);
                }
            }
        }
        for (key, value) in batch.writes.iter().filter(|(k, _)| k.first() == Some(&ROW.tag())) {
            let id = table_of(key)?;
            let Some(table) = new.by_id.get(&id).filter(|t| t.summarized && !rebuilt.contains(&id)) else { continue };
            let old = before.get(key)?;
            if let Some(bytes) = &old {
                changes.update(before, table, &table.decode_row(bytes)?, false)?;
            }
            if let Some(bytes) = value {
                changes.update(before, table, &table.decode_row(bytes)?, true)?;
            }
            if old.is_none() && value.is_some() {
                changes.list(before, &self.known_series, table, key)?;
            }
        }
        Ok(changes.into_writes())
    }

    fn reset(&self) {
        *lock(&self.catalog) = None;
        lock(&self.known_series).clear();
    }
}

#[cfg(test)]
mod tests;
