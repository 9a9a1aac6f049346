//! The catalog: tables, columns, primary keys, secondary indexes and TTL.
//!
//! Definitions are stored as ordinary MVCC keys (tag [`CATALOG`]) and read through the same
//! [`Transaction`] as data, so DDL is transactional, snapshot-consistent and replicated exactly
//! like rows. This module also owns the keyspace layout of rows and index entries.
//!
//! Keyspaces (first byte of every logical key):
//! - [`CATALOG`] `name`: a table definition (JSON).
//! - [`META`] `name`: counters such as the next table id, and the key prefixes of dropped and
//!   truncated tables awaiting garbage collection (`retired/…`).
//! - [`ROW`] `table id` `primary key`: a row (see `storage::rowcodec`).
//! - [`INDEX`] `table id` `index id` `indexed values` [`primary key`]: an index entry. A unique
//!   index whose values contain no NULL stores the primary key as the entry's value, so two
//!   writers of the same value write the same key and conflict; other entries append the
//!   primary key to the key and store nothing.

pub mod roles;
pub mod sequences;
pub mod types;
pub mod views;

use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use crate::storage::keycode;
use crate::storage::keyspace::Keyspace;
use crate::types::{DataType, Value};
use serde::{Deserialize, Serialize};

// The tags come from the one list of keyspaces (`storage::keyspace`).
pub const CATALOG: Keyspace = Keyspace::Catalog;
pub const META: Keyspace = Keyspace::Meta;
pub const ROW: Keyspace = Keyspace::Row;
pub const INDEX: Keyspace = Keyspace::Index;
pub const SUMMARY: Keyspace = Keyspace::Summary;

/// A table id, unique for the life of the database.
pub type TableId = u32;

/// A column of a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    /// The DEFAULT expression as SQL text, evaluated at insert time.
    pub default: Option<String>,
    /// `GENERATED ALWAYS AS IDENTITY`: values come from the default only, unless an INSERT
    /// says `OVERRIDING SYSTEM VALUE`.
    #[serde(default)]
    pub generated_always: bool,
    /// `COMMENT ON COLUMN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Column {
    /// A nullable column without a default or comment.
    pub fn new(name: String, data_type: DataType) -> Column {
        Column { name, data_type, nullable: true, default: None, generated_always: false, comment: None }
    }
}

/// A secondary index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub id: u32,
    pub name: String,
    /// Positions of the indexed columns in the table.
    pub columns: Vec<usize>,
    pub unique: bool,
    /// Created by a UNIQUE constraint of CREATE TABLE (shown as a constraint by the catalog
    /// views) rather than by CREATE INDEX.
    #[serde(default)]
    pub constraint: bool,
}

/// A CHECK constraint: rows written must not make `expr` false.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    /// The condition as SQL text over the table's unqualified column names, bound again by
    /// each statement that writes the table (`sql::planner::checks`).
    pub expr: String,
    /// Added with `NOT VALID`: rows written since are checked, rows already there may not
    /// meet it until `ALTER TABLE … VALIDATE CONSTRAINT` has checked them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_valid: bool,
}

/// A table definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub id: TableId,
    pub name: String,
    pub columns: Vec<Column>,
    /// Positions of the primary key columns; empty means rows are keyed by a hidden row id.
    pub primary_key: Vec<usize>,
    pub indexes: Vec<Index>,
    /// Rows older than this (by their first timestamp column) expire; `WITH (ttl = '7d')`.
    pub ttl: Option<String>,
    /// Next id for a new index.
    pub next_index_id: u32,
    /// Privileges granted to roles other than the built-in ones, as [`roles::privilege`] bits.
    #[serde(default)]
    pub grants: std::collections::BTreeMap<String, u8>,
    /// Minute, hour and day summaries of the rows are kept on apply (`timeseries::summary`):
    /// set for a time-series table (see [`Table::time_series_column`]) when it is created or
    /// altered; tables from before summaries existed get them at their next ALTER TABLE.
    #[serde(default)]
    pub summarized: bool,
    /// The id the table was created with, kept by TRUNCATE (which gives the table a fresh
    /// id) and RENAME: what edge sync follows a table by. None: [`Table::id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<TableId>,
    /// CHECK constraints, sorted by name (the order PostgreSQL evaluates them in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// `COMMENT ON TABLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// On a cloud, edges' changes are merged into this table by last-writer-wins
    /// (`sync::cloud`): so that none of them older than a delete made here brings a row back,
    /// DELETE leaves a stamp per row ([`LOCAL_DELETE_STAMP`]) and TRUNCATE a floor
    /// ([`Table::stamp_floor_key`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sync_merged: bool,
    /// On an edge, the table's changes are not pushed to the cloud (`WITH (sync = off)`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_sync: bool,
    /// The time column named by `WITH (time_column = ts)`, fixed when the table is created
    /// (the window summaries are kept by it); None: see [`Table::time_column`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_time: Option<usize>,
}

/// The last-writer-wins stamp a delete made on the cloud leaves (see [`Table::sync_merged`]):
/// time 0, which stands for the stamp's own version (the delete's commit), deleted, no
/// origin. `sync::cloud` reads and writes the stamps.
pub const LOCAL_DELETE_STAMP: [u8; 9] = [0, 0, 0, 0, 0, 0, 0, 0, 1];

impl Table {
    /// A table of `columns` keyed by `primary_key` and nothing else yet: no indexes, TTL,
    /// constraints or grants. Its id is given when it is created.
    pub fn new(name: String, columns: Vec<Column>, primary_key: Vec<usize>) -> Table {
        Table {
            id: 0,
            name,
            columns,
            primary_key,
            indexes: Vec::new(),
            ttl: None,
            next_index_id: 1,
            grants: Default::default(),
            summarized: false,
            lineage: None,
            checks: Vec::new(),
            comment: None,
            sync_merged: false,
            no_sync: false,
            declared_time: None,
        }
    }

    /// The id the table was created with (see [`Table::lineage`]).
    pub fn lineage(&self) -> TableId {
        self.lineage.unwrap_or(self.id)
    }

    /// The position of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The name of the primary key constraint.
    pub fn pkey_name(&self) -> String {
        format!("{}_pkey", self.name)
    }

    /// The encoded primary key of a row (the hidden row id for tables without one).
    pub fn row_key(&self, row: &[Value], rowid: Option<i64>) -> Vec<u8> {
        let mut key = self.row_prefix();
        if self.primary_key.is_empty() {
            keycode::encode_value(&Value::Int8(rowid.unwrap_or_default()), &mut key);
        } else {
            for &i in &self.primary_key {
                keycode::encode_value(&row[i], &mut key);
            }
        }
        key
    }

    /// Decodes a stored row, NULL-padded to the table's width (rows stored before a column
    /// was added are shorter).
    pub fn decode_row(&self, bytes: &[u8]) -> Result<Vec<Value>> {
        let mut row = crate::storage::rowcodec::decode_row(bytes)?;
        row.resize(self.columns.len(), Value::Null);
        Ok(row)
    }

    /// The prefix of the table's time-series summaries (see `timeseries::summary`).
    pub fn summary_prefix(&self) -> Vec<u8> {
        let mut key = vec![SUMMARY.tag()];
        key.extend_from_slice(&self.id.to_be_bytes());
        key
    }

    /// The column whose time TTL and the window aggregates go by: the one named by
    /// `WITH (time_column = …)`, else the last primary-key column when it is a timestamp or
    /// timestamptz, else the first such column.
    pub fn time_column(&self) -> Option<usize> {
        let is_time = |c: usize| matches!(self.columns[c].data_type, DataType::Timestamp | DataType::TimestampTz);
        self.declared_time
            .or_else(|| self.primary_key.last().copied().filter(|c| is_time(*c)))
            .or_else(|| (0..self.columns.len()).find(|c| is_time(*c)))
    }

    /// The time column of a time-series table: its primary key ends with it.
    pub fn time_series_column(&self) -> Option<usize> {
        self.time_column().filter(|c| self.primary_key.last() == Some(c))
    }

    /// The prefix under which every row of the table lives.
    pub fn row_prefix(&self) -> Vec<u8> {
        let mut key = vec![ROW.tag()];
        key.extend_from_slice(&self.id.to_be_bytes());
        key
    }

    /// The key of the last-writer-wins stamp of the row at `row_key` (see
    /// [`Table::sync_merged`]).
    pub fn stamp_key(row_key: &[u8]) -> Vec<u8> {
        Keyspace::Stamp.key(&row_key[1..])
    }

    /// The key whose version is this table's TRUNCATE on a cloud: changes from edges made
    /// before it are not applied (see [`Table::sync_merged`]). It sorts before every row's
    /// stamp.
    pub fn stamp_floor_key(&self) -> Vec<u8> {
        Table::stamp_key(&self.row_prefix())
    }

    /// The prefix of one index's entries.
    pub fn index_prefix(&self, index: &Index) -> Vec<u8> {
        let mut key = vec![INDEX.tag()];
        key.extend_from_slice(&self.id.to_be_bytes());
        key.extend_from_slice(&index.id.to_be_bytes());
        key
    }

    /// The prefix under which every index entry of the table lives.
    pub fn all_indexes_prefix(&self) -> Vec<u8> {
        let mut key = vec![INDEX.tag()];
        key.extend_from_slice(&self.id.to_be_bytes());
        key
    }

    /// The index entry `(key, value)` for a row, given its encoded primary key (without the
    /// table prefix).
    pub fn index_entry(&self, index: &Index, row: &[Value], pk: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut key = self.index_prefix(index);
        let mut has_null = false;
        for &i in &index.columns {
            has_null |= row[i].is_null();
            keycode::encode_value(&row[i], &mut key);
        }
        if index.unique && !has_null {
            (key, pk.to_vec())
        } else {
            key.extend_from_slice(pk);
            (key, Vec::new())
        }
    }
}

/// The key of the record named `name` in keyspace `tag` (tables, roles, types, counters).
fn record_key(keyspace: Keyspace, name: &str) -> Vec<u8> {
    keyspace.record(name)
}

/// Reads the JSON record `name` of keyspace `tag`; `what` names it in corruption errors.
fn get_record<T: serde::de::DeserializeOwned>(
    txn: &mut Transaction,
    tag: Keyspace,
    name: &str,
    what: &str,
) -> Result<Option<T>> {
    match txn.get(&record_key(tag, name))? {
        Some(bytes) => Ok(Some(decode_record(&bytes, what)?)),
        None => Ok(None),
    }
}

/// Every JSON record of keyspace `tag`, by name.
fn list_records<T: serde::de::DeserializeOwned>(txn: &mut Transaction, tag: Keyspace, what: &str) -> Result<Vec<T>> {
    txn.scan_prefix(&[tag.tag()])?.into_iter().map(|(_, bytes)| decode_record(&bytes, what)).collect()
}

/// Writes the JSON record `name` of keyspace `tag`.
fn put_record<T: Serialize>(txn: &mut Transaction, tag: Keyspace, name: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
    txn.set(record_key(tag, name), bytes);
    Ok(())
}

fn decode_record<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corruption(format!("{what}: {e}")))
}

/// Reads a table definition.
pub fn get_table(txn: &mut Transaction, name: &str) -> Result<Option<Table>> {
    get_record(txn, CATALOG, name, &format!("table {name}"))
}

/// Reads a table definition, failing with 42P01 if it does not exist.
pub fn must_get_table(txn: &mut Transaction, name: &str) -> Result<Table> {
    get_table(txn, name)?.ok_or_else(|| Error::UndefinedTable(name.to_string()))
}

/// A table definition as stored under its [`CATALOG`] key.
pub fn decode_table(bytes: &[u8]) -> Result<Table> {
    decode_record(bytes, "table")
}

/// Every table, by name.
pub fn list_tables(txn: &mut Transaction) -> Result<Vec<Table>> {
    list_records(txn, CATALOG, "table")
}

/// Writes a table definition (create or alter).
pub fn save_table(txn: &mut Transaction, table: &Table) -> Result<()> {
    put_record(txn, CATALOG, &table.name, table)
}

/// Removes a table definition (not its rows).
pub fn remove_table(txn: &mut Transaction, name: &str) {
    txn.delete(record_key(CATALOG, name));
}

/// Names of [`META`] records marking retired key prefixes.
const RETIRED: &str = "retired/";

/// Retires the rows, index entries and summaries of `table` (dropped, or truncated and given a fresh id):
/// no new snapshot reads them, and garbage collection removes them once no snapshot can
/// (see [`retired_prefixes`]). Costs four records, however many rows the table had.
pub fn retire_table_keys(txn: &mut Transaction, table: &Table) {
    let stamps = Table::stamp_key(&table.row_prefix());
    for prefix in [table.row_prefix(), table.all_indexes_prefix(), table.summary_prefix(), stamps] {
        let hex: String = prefix.iter().map(|b| format!("{b:02x}")).collect();
        txn.set(record_key(META, &format!("{RETIRED}{hex}")), prefix);
    }
}

/// The key prefixes retired by [`retire_table_keys`] that `txn` sees.
pub fn retired_prefixes(txn: &mut Transaction) -> Result<Vec<Vec<u8>>> {
    let mut prefixes = Vec::new();
    for (key, value) in txn.scan_prefix(&[META.tag()])? {
        let mut name = &key[1..];
        if let Ok(Value::Text(name)) = keycode::decode_value(&mut name) {
            if name.starts_with(RETIRED) {
                prefixes.push(value);
            }
        }
    }
    Ok(prefixes)
}

/// Allocates the next value of a named counter.
pub fn next_id(txn: &mut Transaction, counter: &str) -> Result<u32> {
    let key = record_key(META, counter);
    let current = match txn.get(&key)? {
        Some(bytes) if bytes.len() == 4 => u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        Some(_) => return Err(Error::Corruption(format!("counter {counter}"))),
        None => 1,
    };
    txn.set(key, (current + 1).to_be_bytes().to_vec());
    Ok(current)
}

/// Finds the table owning an index by the index's name.
pub fn find_index(txn: &mut Transaction, index_name: &str) -> Result<Option<(Table, usize)>> {
    for table in list_tables(txn)? {
        if let Some(i) = table.indexes.iter().position(|ix| ix.name == index_name) {
            return Ok(Some((table, i)));
        }
    }
    Ok(None)
}
