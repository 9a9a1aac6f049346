//! The edge outbox: the row changes of each committed batch, captured while the batch is
//! applied and kept until the cloud has committed them.
//!
//! One record per batch that wrote rows, under `[Outbox tag, version (8 bytes, big-endian)]`,
//! written by [`Capture`] in the batch's own atomic write, at its version, on every replica
//! (from the replicated batch alone, so replicas agree). Its value names the tables it holds
//! rows of (a varint count, then per table its id and its lineage, 4 bytes big-endian each,
//! and its name, varint length and bytes), then lists the batch's row writes in key order: a varint count, then per
//! write the row key (varint length, bytes), a flag (0: delete, 1: value) and for a value its
//! row-codec bytes (varint length, bytes). The n-th write of the record at version v is the
//! change at [`Position`] `(v, n)`. Changes are pushed to the table of their lineage (see
//! [`crate::catalog::Table::lineage`]), so a table truncated (given a new id) or renamed since
//! still takes the changes made before; a table dropped since takes none.
//!
//! Records are trimmed by ordinary commits once the cloud acknowledges them ([`trim`]). Not
//! captured: rows of tables without a primary key (their keys are row ids drawn on this node,
//! which mean nothing on the cloud), and the deletes of TTL expiry (see [`keep_local`]).
//! TRUNCATE is captured as a delete of each row the table had ([`truncated_rows`]); other DDL
//! is not captured (a table reaches the cloud with its definition in each push).

use super::{edge_key, Position};
use crate::catalog::{CATALOG, ROW};
use crate::error::{Error, Result};
use crate::mvcc::{lock, Derive, Transaction, Write, WriteBatch};
use crate::storage::keyspace::Keyspace;
use crate::storage::varint;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const OUTBOX: Keyspace = Keyspace::Outbox;

/// A captured change, as read back from the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct Captured {
    pub position: Position,
    /// The table's lineage (see [`crate::catalog::Table::lineage`]).
    pub lineage: u32,
    /// The table's name when the change was made.
    pub table: String,
    /// The primary key, order-preserving encoded (the row key without the table prefix).
    pub key: Vec<u8>,
    pub row: Option<Vec<u8>>,
}

/// The length of a row key's prefix: tag and table id.
const ROW_PREFIX: usize = 5;

/// The table id of a row key.
fn table_id(key: &[u8]) -> Option<u32> {
    key.get(1..ROW_PREFIX).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn record_key(version: u64) -> Vec<u8> {
    OUTBOX.key(&version.to_be_bytes())
}

fn record_version(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key.get(1..9).and_then(|b| b.try_into().ok()).ok_or_else(malformed)?;
    Ok(u64::from_be_bytes(bytes))
}

fn malformed() -> Error {
    Error::Corruption("malformed outbox record".into())
}

/// A table as a record names it: id, lineage, name.
type Named<'a> = (u32, u32, &'a str);

fn encode(tables: &[Named], writes: &[&Write]) -> Vec<u8> {
    let size: usize = writes.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 8).sum();
    let mut out = Vec::with_capacity(size + 4 + tables.len() * 16);
    varint::put(&mut out, tables.len() as u64);
    for (id, lineage, name) in tables {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&lineage.to_be_bytes());
        varint::put(&mut out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
    }
    varint::put(&mut out, writes.len() as u64);
    for (key, value) in writes {
        varint::put(&mut out, key.len() as u64);
        out.extend_from_slice(key);
        match value {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                varint::put(&mut out, v.len() as u64);
                out.extend_from_slice(v);
            }
        }
    }
    out
}

fn take<'a>(input: &mut &'a [u8]) -> Result<&'a [u8]> {
    let len = usize::try_from(varint::take(input)?).map_err(|_| malformed())?;
    if input.len() < len {
        return Err(malformed());
    }
    let (bytes, rest) = input.split_at(len);
    *input = rest;
    Ok(bytes)
}

fn take_u32(input: &mut &[u8]) -> Result<u32> {
    let (bytes, rest) = input.split_first_chunk::<4>().ok_or_else(malformed)?;
    *input = rest;
    Ok(u32::from_be_bytes(*bytes))
}

/// The tables of a record as (id, lineage, name); `input` is left at the count of its changes.
fn take_tables(input: &mut &[u8]) -> Result<Vec<(u32, u32, String)>> {
    let n = varint::take(input)?;
    let mut tables = Vec::new();
    for _ in 0..n {
        let (id, lineage) = (take_u32(input)?, take_u32(input)?);
        let name = String::from_utf8(take(input)?.to_vec()).map_err(|_| malformed())?;
        tables.push((id, lineage, name));
    }
    Ok(tables)
}

/// The changes of the record at `version` from index `from` on, each passed to `f` until it
/// returns false. Changes before `from` are stepped over without being copied.
fn decode(version: u64, mut input: &[u8], from: u32, mut f: impl FnMut(Captured) -> Result<bool>) -> Result<()> {
    let tables = take_tables(&mut input)?;
    let count = varint::take(&mut input)?;
    for index in 0..count {
        let key = take(&mut input)?;
        let (&flag, rest) = input.split_first().ok_or_else(malformed)?;
        input = rest;
        let row = match flag {
            0 => None,
            1 => Some(take(&mut input)?),
            _ => return Err(malformed()),
        };
        let index = u32::try_from(index).map_err(|_| malformed())?;
        if index < from {
            continue;
        }
        let id = table_id(key).ok_or_else(malformed)?;
        let (_, lineage, table) = tables.iter().find(|(t, _, _)| *t == id).ok_or_else(malformed)?;
        let change = Captured {
            position: Position { version, index },
            lineage: *lineage,
            table: table.clone(),
            key: key[ROW_PREFIX..].to_vec(),
            row: row.map(<[u8]>::to_vec),
        };
        if !f(change)? {
            break;
        }
    }
    Ok(())
}

fn record_len(mut input: &[u8]) -> Result<u64> {
    take_tables(&mut input)?;
    varint::take(&mut input)
}

/// Captures the row changes of each applied batch once the database is an edge: the
/// [`Derive`] of the outbox.
#[derive(Default)]
pub struct Capture {
    /// Whether the database is an edge, as of the last batch applied (None: read it again).
    enabled: Mutex<Option<bool>>,
    /// The tables as of the last batch applied (None: read them again).
    tables: Mutex<Option<Arc<Tables>>>,
    /// The bytes of the outbox's records on this replica, as of the last batch applied
    /// (None: count them again).
    bytes: Mutex<Option<u64>>,
}

/// A table as capture needs it: its lineage, its name, whether it has a primary key.
#[derive(Clone)]
struct Known {
    lineage: u32,
    name: String,
    keyed: bool,
}

impl Known {
    fn of(table: crate::catalog::Table) -> Known {
        Known { lineage: table.lineage(), keyed: !table.primary_key.is_empty() && !table.no_sync, name: table.name }
    }
}

/// The tables by id.
type Tables = HashMap<u32, Known>;

impl Capture {
    /// The bytes of the outbox's records (counted once, then followed batch by batch).
    pub fn backlog_bytes(&self, txn: &mut Transaction) -> Result<u64> {
        if let Some(bytes) = *lock(&self.bytes) {
            return Ok(bytes);
        }
        let bytes = backlog(txn)?.bytes;
        *lock(&self.bytes) = Some(bytes);
        Ok(bytes)
    }

    /// Follows the outbox's size through a batch that writes `added` bytes of records and
    /// deletes the records it deletes (a trim).
    fn count(&self, batch: &WriteBatch, before: &mut Transaction, added: u64) -> Result<()> {
        if lock(&self.bytes).is_none() {
            return Ok(());
        }
        let mut removed = 0;
        for (key, _) in batch.writes.iter().filter(|(k, v)| k.first() == Some(&OUTBOX.tag()) && v.is_none()) {
            removed += before.get(key)?.map_or(0, |v| v.len() as u64);
        }
        if let Some(bytes) = lock(&self.bytes).as_mut() {
            *bytes = (*bytes + added).saturating_sub(removed);
        }
        Ok(())
    }

    fn enabled(&self, batch: &WriteBatch, before: &mut Transaction) -> Result<bool> {
        let key = edge_key();
        if let Ok(i) = batch.writes.binary_search_by(|(k, _)| k.as_slice().cmp(&key)) {
            // Read again at the next batch: this one may yet fail to apply.
            *lock(&self.enabled) = None;
            return Ok(batch.writes[i].1.is_some());
        }
        if let Some(enabled) = *lock(&self.enabled) {
            return Ok(enabled);
        }
        let enabled = before.get(&key)?.is_some();
        *lock(&self.enabled) = Some(enabled);
        Ok(enabled)
    }

    /// The tables after `batch` (and those it dropped or truncated).
    /// Shared, not copied, while no batch changes the catalog.
    fn tables(&self, batch: &WriteBatch, before: &mut Transaction) -> Result<Arc<Tables>> {
        let cached = lock(&self.tables).clone();
        let tables = match cached {
            Some(tables) => tables,
            None => {
                let tables: Tables =
                    crate::catalog::list_tables(before)?.into_iter().map(|t| (t.id, Known::of(t))).collect();
                let tables = Arc::new(tables);
                *lock(&self.tables) = Some(tables.clone());
                tables
            }
        };
        let ddl: Vec<&Write> = batch.writes.iter().filter(|(k, _)| k.first() == Some(&CATALOG.tag())).collect();
        if ddl.is_empty() {
            return Ok(tables);
        }
        // Read again at the next batch: this one may yet fail to apply.
        *lock(&self.tables) = None;
        let mut tables = (*tables).clone();
        for (_, value) in ddl {
            if let Some(table) = value.as_deref().map(crate::catalog::decode_table).transpose()? {
                tables.insert(table.id, Known::of(table));
            }
        }
        Ok(Arc::new(tables))
    }
}

/// The [`META`](crate::catalog::META) record whose write in a batch keeps the batch's row
/// changes on this node: TTL expiry, whose retention is each site's own.
fn local_only_key() -> Vec<u8> {
    crate::catalog::META.record("sync/local-only")
}

/// Keeps the row changes of `txn` out of the outbox (see [`local_only_key`]).
pub fn keep_local(txn: &mut Transaction) {
    txn.delete(local_only_key());
}

impl Derive for Capture {
    fn derive(&self, batch: &WriteBatch, before: &mut Transaction) -> Result<Vec<Write>> {
        // First, so that the batch marking the database as an edge clears what was cached.
        let enabled = self.enabled(batch, before)?;
        let local = local_only_key();
        if !enabled || batch.writes.binary_search_by(|(k, _)| k.as_slice().cmp(&local)).is_ok() {
            return Ok(Vec::new());
        }
        let first = batch.writes.partition_point(|(k, _)| k.first() < Some(&ROW.tag()));
        let rows = &batch.writes[first..];
        let rows = &rows[..rows.partition_point(|(k, _)| k.first() == Some(&ROW.tag()))];
        let ddl = batch.writes.iter().any(|(k, _)| k.first() == Some(&CATALOG.tag()));
        if rows.is_empty() && !ddl {
            self.count(batch, before, 0)?;
            return Ok(Vec::new());
        }
        let tables = self.tables(batch, before)?;
        let (truncated, retired) = if ddl { truncated_rows(batch, before, rows)? } else { Default::default() };
        // Rows of tables keyed by a row id are never captured, nor rows written under an id
        // the batch retires (inserted, then truncated or dropped in the same transaction).
        let captured_id =
            |key: &[u8]| table_id(key).filter(|id| tables.get(id).is_some_and(|t| t.keyed) && !retired.contains(id));
        let captured: Vec<&Write> =
            truncated.iter().chain(rows.iter()).filter(|(k, _)| captured_id(k).is_some()).collect();
        if captured.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<u32> = captured.iter().filter_map(|(k, _)| table_id(k)).collect();
        ids.sort_unstable();
        ids.dedup();
        let named: Vec<Named> = ids.iter().map(|id| (*id, tables[id].lineage, tables[id].name.as_str())).collect();
        let record = encode(&named, &captured);
        self.count(batch, before, record.len() as u64)?;
        Ok(vec![(record_key(batch.version), Some(record))])
    }

    fn reset(&self) {
        *lock(&self.enabled) = None;
        *lock(&self.tables) = None;
        *lock(&self.bytes) = None;
    }
}

/// The rows a TRUNCATE in `batch` removes, as deletes under the table's new id (the cloud
/// deletes exactly the rows this edge had, each by last-writer-wins), except those `rows`
/// writes again in the same batch; and the table ids the batch retires (truncated or dropped).
/// TRUNCATE gives a table a new id and keeps its lineage (`sql::ddl::truncate`); a table
/// dropped and created again under its name has a new lineage, and its old rows are not
/// deleted on the cloud (DROP is not synced).
fn truncated_rows(batch: &WriteBatch, before: &mut Transaction, rows: &[Write]) -> Result<(Vec<Write>, Vec<u32>)> {
    let (mut deletes, mut retired) = (Vec::new(), Vec::new());
    for (key, value) in batch.writes.iter().filter(|(k, _)| k.first() == Some(&CATALOG.tag())) {
        let Some(old) = before.get(key)?.map(|b| crate::catalog::decode_table(&b)).transpose()? else { continue };
        let new = value.as_deref().map(crate::catalog::decode_table).transpose()?;
        if new.as_ref().is_some_and(|n| n.id == old.id) {
            continue;
        }
        retired.push(old.id);
        let Some(new) = new.filter(|n| n.lineage() == old.lineage() && !old.primary_key.is_empty()) else { continue };
        let (old_prefix, new_prefix) = (old.row_prefix(), new.row_prefix());
        before.for_each_prefix(&old_prefix, |row_key, _| {
            let mut moved = new_prefix.clone();
            moved.extend_from_slice(&row_key[old_prefix.len()..]);
            if rows.binary_search_by(|(k, _)| k.as_slice().cmp(&moved)).is_err() {
                deletes.push((moved, None));
            }
            Ok(true)
        })?;
    }
    Ok((deletes, retired))
}

/// Reads the changes after `after` (from the start when None) in position order, at most
/// `max_rows` of them and about `max_bytes`; also says whether more remain.
pub fn read(
    txn: &mut Transaction,
    after: Option<Position>,
    max_rows: usize,
    max_bytes: usize,
) -> Result<(Vec<Captured>, bool)> {
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut more = false;
    let prefix = [OUTBOX.tag()];
    let start = after.map(|p| record_key(p.version));
    let lower = start.as_deref();
    txn.for_each_range(&prefix, None, lower, None, |key, value| {
        let version = record_version(key)?;
        let from = match after {
            Some(a) if a.version == version => a.index + 1,
            _ => 0,
        };
        decode(version, value, from, |change| {
            if out.len() >= max_rows || (bytes >= max_bytes && !out.is_empty()) {
                more = true;
                return Ok(false);
            }
            bytes += change.key.len() + change.row.as_ref().map_or(0, Vec::len);
            out.push(change);
            Ok(true)
        })?;
        Ok(!more)
    })?;
    Ok((out, more))
}

/// Deletes the records whose every change is at or before `through`; returns how many.
pub fn trim(txn: &mut Transaction, through: Position) -> Result<usize> {
    let mut doomed = Vec::new();
    let upper = record_key(through.version.saturating_add(1));
    txn.for_each_range(&[OUTBOX.tag()], None, None, Some(&upper), |key, value| {
        let version = record_version(key)?;
        if version < through.version || u64::from(through.index) + 1 >= record_len(value)? {
            doomed.push(key.to_vec());
        }
        Ok(true)
    })?;
    let n = doomed.len();
    for key in doomed {
        txn.delete(key);
    }
    Ok(n)
}

/// The version of the oldest change waiting in the outbox.
pub fn oldest(txn: &mut Transaction) -> Result<Option<u64>> {
    let mut oldest = None;
    txn.for_each_prefix(&[OUTBOX.tag()], |key, _| {
        oldest = Some(record_version(key)?);
        Ok(false)
    })?;
    Ok(oldest)
}

/// The edge this database is: its id and its incarnation, a random id drawn when the
/// database was marked, which tells the cloud a re-created or cloned edge from the one it has
/// synced.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub id: String,
    pub incarnation: String,
}

/// The edge this database is, if it is one.
pub fn edge(txn: &mut Transaction) -> Result<Option<Edge>> {
    let Some(bytes) = txn.get(&edge_key())? else { return Ok(None) };
    let text = String::from_utf8(bytes).map_err(|_| Error::Corruption("the edge record".into()))?;
    let (id, incarnation) = text.split_once('/').ok_or_else(|| Error::Corruption("the edge record".into()))?;
    Ok(Some(Edge { id: id.to_string(), incarnation: incarnation.to_string() }))
}

/// What waits in the outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Backlog {
    /// Changes in the records not yet trimmed.
    pub changes: u64,
    /// Their bytes as stored.
    pub bytes: u64,
    /// The version of the oldest.
    pub oldest: Option<u64>,
}

/// Counts the outbox (reads all of it).
pub fn backlog(txn: &mut Transaction) -> Result<Backlog> {
    let mut backlog = Backlog::default();
    txn.for_each_prefix(&[OUTBOX.tag()], |key, value| {
        backlog.oldest = backlog.oldest.or(Some(record_version(key)?));
        backlog.changes += record_len(value)?;
        backlog.bytes += value.len() as u64;
        Ok(true)
    })?;
    Ok(backlog)
}

/// Marks this database as edge `id` with a new incarnation (its changes are captured from
/// the next batch on); true if it was not marked yet, an error if it is another edge.
pub fn mark_edge(txn: &mut Transaction, id: &str) -> Result<bool> {
    match edge(txn)? {
        Some(existing) if existing.id == id => Ok(false),
        Some(existing) => Err(Error::InvalidParameter(format!(
            "this database is edge \"{}\"; it cannot sync as \"{id}\"",
            existing.id
        ))),
        None => {
            let incarnation = uuid::Uuid::new_v4().simple().to_string();
            txn.set(edge_key(), format!("{id}/{incarnation}").into_bytes());
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_positions_follow_write_order() {
        let writes: Vec<Write> = vec![(vec![2, 0, 0, 0, 1, 7], Some(vec![1, 2, 3])), (vec![2, 0, 0, 0, 1, 8], None)];
        let refs: Vec<&Write> = writes.iter().collect();
        let bytes = encode(&[(1, 9, "t")], &refs);
        let mut seen = Vec::new();
        decode(42, &bytes, 0, |c| {
            seen.push(c);
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].position, Position { version: 42, index: 0 });
        assert_eq!((seen[0].lineage, seen[0].table.as_str(), seen[0].key.as_slice()), (9, "t", &[7u8][..]));
        assert_eq!(seen[0].row.as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(seen[1].position, Position { version: 42, index: 1 });
        assert_eq!(seen[1].row, None);
        assert_eq!(record_len(&bytes).unwrap(), 2);
        // Truncated records are refused, never read short.
        for cut in 0..bytes.len() {
            assert!(decode(42, &bytes[..cut], 0, |_| Ok(true)).is_err(), "a record cut at {cut} decoded");
        }
    }
}
