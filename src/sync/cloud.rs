//! The cloud side of sync: a push applied as one transaction, merged row by row by
//! last-writer-wins, with the edge's cursor.
//!
//! Each row the cloud received from an edge has a stamp under `[Stamp tag] ++ row key without
//! its tag`: the edge commit's HLC time, the origin (edge id) and whether the change was a
//! delete. The stamp is written in the same commit as the row, so both have the same MVCC
//! version; a row whose newest version is newer than its stamp was written on the cloud itself
//! after, and its stamp is that version with the empty origin. A change is applied when its
//! `(time, origin)` is greater than the row's stamp (a row without one takes any change), so
//! the winner does not depend on the order changes arrive in. A delete from an edge keeps its
//! stamp (a tombstone) so that an older write from another edge cannot bring the row back.
//!
//! The edge's cursor (the greatest [`Position`] committed) is a [`META`] record written in the
//! same transaction; changes at or before it are skipped, so a retried push applies nothing
//! twice. Rows and index entries are written as SQL writes them, and the batch is committed
//! through the Raft log like any other, so summaries and TTL follow.

use super::{valid_edge_id, Ack, Change, Position, Push};
use crate::catalog::{self, Table, META};
use crate::error::{Error, Result};
use crate::mvcc::{Mvcc, Transaction};
use crate::sql::execution::dml;
use crate::storage::keyspace::Keyspace;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The origin of writes made on the cloud itself: smaller than every edge id, so an edge's
/// change wins a tie of times.
pub const LOCAL_ORIGIN: &str = "";

/// Commits retried after a serialization failure (another push of the same edge at once).
const ATTEMPTS: usize = 10;

fn cursor_key(edge: &str) -> Vec<u8> {
    META.record(&format!("sync/cursor/{edge}"))
}

/// The cursor of `edge` (everything it pushed at or before it is committed here) and the
/// incarnation of the edge database it came from. Stored as the position (8 + 4 bytes,
/// big-endian), then the incarnation.
pub fn cursor(txn: &mut Transaction, edge: &str) -> Result<Option<(Position, String)>> {
    let Some(bytes) = txn.get(&cursor_key(edge))? else { return Ok(None) };
    let corrupt = || Error::Corruption(format!("sync cursor of edge {edge}"));
    let (position, incarnation) = bytes.split_first_chunk::<12>().ok_or_else(corrupt)?;
    let position = Position {
        version: u64::from_be_bytes(position[..8].try_into().map_err(|_| corrupt())?),
        index: u32::from_be_bytes(position[8..].try_into().map_err(|_| corrupt())?),
    };
    Ok(Some((position, String::from_utf8(incarnation.to_vec()).map_err(|_| corrupt())?)))
}

/// Every edge that pushed here, with its cursor.
pub fn edges(txn: &mut Transaction) -> Result<Vec<(String, Position)>> {
    let prefix = cursor_key("");
    // The record name is encoded text: without its two-byte terminator it is a prefix of the
    // others.
    let prefix = &prefix[..prefix.len() - 2];
    let mut names = Vec::new();
    txn.for_each_prefix(prefix, |key, _| {
        let mut rest = &key[1..];
        if let Ok(crate::types::Value::Text(name)) = crate::storage::keycode::decode_value(&mut rest) {
            names.push(name["sync/cursor/".len()..].to_string());
        }
        Ok(true)
    })?;
    let mut out = Vec::new();
    for name in names {
        if let Some((position, _)) = cursor(txn, &name)? {
            out.push((name, position));
        }
    }
    Ok(out)
}

/// The record of the tombstone horizon: the time (a version) below which deletes' stamps may
/// have been purged ([`purge_tombstones`]).
fn horizon_key() -> Vec<u8> {
    META.record("sync/tombstone_horizon")
}

fn horizon(txn: &mut Transaction) -> Result<u64> {
    Ok(match txn.get(&horizon_key())? {
        Some(bytes) => u64::from_be_bytes(
            bytes.try_into().map_err(|_| Error::Corruption("malformed sync tombstone horizon".into()))?,
        ),
        None => 0,
    })
}

/// Stamps purged per transaction.
const PURGE_BATCH: usize = 10_000;

/// Removes the stamps of deleted rows (tombstones) older than `cutoff` (a version), and
/// raises the tombstone horizon to it in the same transactions: from then on a push holding a
/// change made before the horizon is refused, since it could bring back a row whose delete is
/// forgotten. Run by the leader; replicated like any commit. Returns how many it removed.
pub fn purge_tombstones(mvcc: &Arc<Mvcc>, cutoff: u64) -> Result<u64> {
    let mut doomed = Vec::new();
    {
        let mut read = mvcc.begin_read()?;
        read.for_each_prefix(&[Keyspace::Stamp.tag()], |key, value| {
            // Tombstones old enough (a time of 0 is a delete made here, dated by its version,
            // read below); floor records (TRUNCATE) hold nothing and stay.
            let time = value.get(..8).map(|t| u64::from_be_bytes(t.try_into().unwrap_or([0xff; 8])));
            if value.get(8) == Some(&1) && time.is_some_and(|t| t < cutoff) {
                doomed.push(key.to_vec());
            }
            Ok(true)
        })?;
    }
    let mut purged = 0;
    for chunk in doomed.chunks(PURGE_BATCH) {
        let mut txn = mvcc.begin();
        let mut batch = 0;
        for key in chunk {
            // Read again here: a push that wrote this row since conflicts with the purge.
            let Some((version, Some(bytes))) = txn.get_versioned(key)? else { continue };
            let stamp = Stamp::decode(&bytes, version)?;
            if stamp.deleted && stamp.time < cutoff {
                txn.delete(key.clone());
                batch += 1;
            }
        }
        if batch == 0 {
            continue;
        }
        // The horizon covers what this transaction forgets, in the same commit.
        if horizon(&mut txn)? < cutoff {
            txn.set(horizon_key(), cutoff.to_be_bytes().to_vec());
        }
        txn.commit()?;
        purged += batch;
    }
    Ok(purged)
}

/// A row's last-writer-wins stamp.
#[derive(Clone, Debug, PartialEq)]
struct Stamp {
    time: u64,
    origin: String,
    deleted: bool,
}

impl Stamp {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.origin.len());
        out.extend_from_slice(&self.time.to_be_bytes());
        out.push(u8::from(self.deleted));
        out.extend_from_slice(self.origin.as_bytes());
        out
    }

    /// The stamp stored as `bytes` at `version`: a time of 0 is a delete made on the cloud
    /// itself (`catalog::LOCAL_DELETE_STAMP`), whose time is its version.
    fn decode(bytes: &[u8], version: u64) -> Result<Stamp> {
        let bad = || Error::Corruption("malformed sync stamp".into());
        if bytes.len() < 9 {
            return Err(bad());
        }
        let time = u64::from_be_bytes(bytes[..8].try_into().map_err(|_| bad())?);
        Ok(Stamp {
            time: if time == 0 { version } else { time },
            deleted: bytes[8] == 1,
            origin: String::from_utf8(bytes[9..].to_vec()).map_err(|_| bad())?,
        })
    }
}

/// What a cloud member's sync service did since start-up (`/metrics`).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Pushes committed.
    pub pushes: AtomicU64,
    /// Changes applied (past the cursor, whether or not they won their row).
    pub changes: AtomicU64,
    /// Pushes refused (a token, a clock, a table, a constraint).
    pub refused: AtomicU64,
    /// Of those, refused for a clock too far ahead.
    pub clock_refused: AtomicU64,
}

/// Applies `push` and commits it; the edge's cursor afterwards.
pub fn apply(mvcc: &Arc<Mvcc>, push: &Push, metrics: &Metrics) -> Result<Ack> {
    let result = apply_counted(mvcc, push, metrics);
    if result.is_err() {
        metrics.refused.fetch_add(1, Ordering::Relaxed);
    }
    result
}

fn apply_counted(mvcc: &Arc<Mvcc>, push: &Push, metrics: &Metrics) -> Result<Ack> {
    if !valid_edge_id(&push.edge) {
        return Err(Error::InvalidParameter(format!("invalid edge id \"{}\"", push.edge)));
    }
    let newest = push.tables.iter().flat_map(|t| &t.changes).map(|c| c.position).max();
    if newest > push.through {
        return Err(Error::InvalidParameter(format!("edge {}: a push holds changes past its end", push.edge)));
    }
    let newest = push.through.map_or(0, |p| p.version);
    if newest > push.clock {
        return Err(Error::InvalidParameter(format!(
            "edge {}: a change is stamped after the push was sent ({newest} > {})",
            push.edge, push.clock
        )));
    }
    mvcc.observe_clock(push.clock).inspect_err(|_| {
        metrics.clock_refused.fetch_add(1, Ordering::Relaxed);
    })?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = std::time::Instant::now();
        let mut txn = mvcc.begin_read()?;
        let stored = cursor(&mut txn, &push.edge)?;
        if let Some((_, incarnation)) = stored.as_ref().filter(|(_, i)| *i != push.incarnation) {
            return Err(Error::NotInPrerequisiteState(format!(
                "edge {} pushes from another database than the one this cloud synced (incarnation {}, not {incarnation}): \
                 a re-created or cloned edge must sync under a new edge id",
                push.edge, push.incarnation
            )));
        }
        let before = stored.map(|(position, _)| position);
        // (0, 0) is what an edge hears before anything was committed here.
        if push.after.filter(|p| *p != Position::default()) > before {
            return Err(Error::NotInPrerequisiteState(format!(
                "edge {} was told its changes through {:?} are committed, but this cloud has them only through {:?}: \
                 it lost acknowledged changes (restored from an older backup?)",
                push.edge, push.after, before
            )));
        }
        let horizon = horizon(&mut txn)?;
        // A role named after the edge limits what it may write.
        let role = catalog::roles::get_role(&mut txn, &push.edge)?;
        let mut last = before;
        let mut applied = 0;
        for table_changes in push.tables.iter().filter(|t| !t.changes.is_empty()) {
            let (table, created) = ensure_table(&mut txn, &table_changes.definition)?;
            if let Some(role) = &role {
                authorize(role, &table, created, &table_changes.changes)?;
            }
            // Nothing was ever deleted from a table this push creates.
            let horizon = if created { 0 } else { horizon };
            // Changes made before the table was last truncated here stay out.
            let floor = match txn.get_versioned(&table.stamp_floor_key())? {
                Some((version, Some(_))) => version,
                _ => 0,
            };
            for change in &table_changes.changes {
                if before.is_some_and(|c| change.position <= c) {
                    continue;
                }
                // A tie goes to the edge, as against a delete's stamp (the cloud's origin is
                // the smallest).
                if change.position.version >= floor {
                    merge(&mut txn, &table, change, &push.edge, horizon)?;
                }
                applied += 1;
                last = last.max(Some(change.position));
            }
        }
        last = last.max(push.through);
        if last != before {
            let last = last.expect("the cursor moved");
            let mut value = last.version.to_be_bytes().to_vec();
            value.extend_from_slice(&last.index.to_be_bytes());
            value.extend_from_slice(push.incarnation.as_bytes());
            txn.set(cursor_key(&push.edge), value);
        }
        let merged = started.elapsed();
        match txn.commit() {
            Ok(_) => {
                tracing::debug!(
                    edge = %push.edge,
                    changes = applied,
                    merge_ms = merged.as_millis() as u64,
                    commit_ms = (started.elapsed() - merged).as_millis() as u64,
                    "sync push applied"
                );
                metrics.pushes.fetch_add(1, Ordering::Relaxed);
                metrics.changes.fetch_add(applied, Ordering::Relaxed);
                return Ok(Ack { cursor: last.unwrap_or_default(), clock: mvcc.clock_now() });
            }
            Err(Error::Serialization(_)) if attempt < ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Refuses (42501) changes that the edge's role may not make: creating a table takes a
/// superuser; rows written take INSERT and UPDATE on the table (a change may be either, by
/// last-writer-wins), rows deleted take DELETE.
fn authorize(role: &catalog::roles::Role, table: &Table, created: bool, changes: &[Change]) -> Result<()> {
    use catalog::roles::privilege;
    if created && !role.superuser {
        return Err(Error::InsufficientPrivilege(format!(
            "edge {} may not create table \"{}\" on the cloud: its role is not a superuser",
            role.name, table.name
        )));
    }
    let mut needed = 0;
    for change in changes {
        needed |= if change.row.is_some() { privilege::INSERT | privilege::UPDATE } else { privilege::DELETE };
    }
    let missing = needed & !role.privileges_on(table);
    if missing != 0 {
        return Err(Error::InsufficientPrivilege(format!(
            "permission denied for table {}: edge {} lacks {}",
            table.name,
            role.name,
            privilege::describe(missing)
        )));
    }
    Ok(())
}

/// The cloud's table for an edge's definition: created from it when missing; an error when it
/// differs in its columns' names and types or its primary key.
fn ensure_table(txn: &mut Transaction, definition: &[u8]) -> Result<(Table, bool)> {
    let edge = catalog::decode_table(definition)?;
    check_definition(&edge)?;
    if let Some(table) = catalog::get_table(txn, &edge.name)? {
        let columns = |t: &Table| t.columns.iter().map(|c| (c.name.clone(), c.data_type.clone())).collect::<Vec<_>>();
        if columns(&table) != columns(&edge) || table.primary_key != edge.primary_key {
            return Err(Error::InvalidTableDefinition(format!(
                "table \"{}\" on the cloud does not match the edge's: its columns or primary key differ",
                edge.name
            )));
        }
        if !table.sync_merged {
            let mut table = table;
            table.sync_merged = true;
            catalog::save_table(txn, &table)?;
            return Ok((table, false));
        }
        return Ok((table, false));
    }
    for index in &edge.indexes {
        if catalog::find_index(txn, &index.name)?.is_some() || catalog::get_table(txn, &index.name)?.is_some() {
            return Err(Error::DuplicateTable(index.name.clone()));
        }
    }
    let mut table = edge;
    table.id = catalog::next_id(txn, "table_id")?;
    table.grants.clear();
    // Retention is each site's own: the cloud keeps what edges expire unless given a TTL.
    table.ttl = None;
    // The cloud's table syncs on (as a cloud that is an edge itself), whatever the edge's.
    table.no_sync = false;
    table.sync_merged = true;
    catalog::save_table(txn, &table)?;
    Ok((table, true))
}

/// Refuses a definition from an edge that no table of this engine could have: no columns or
/// no primary key, duplicate or empty names, key or index columns out of range.
fn check_definition(table: &Table) -> Result<()> {
    let refuse =
        |why: &str| Err(Error::InvalidTableDefinition(format!("table \"{}\" from an edge: {why}", table.name)));
    let width = table.columns.len();
    let mut names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    if table.name.is_empty() || width == 0 || names.iter().any(|n| n.is_empty()) {
        return refuse("empty name or no columns");
    }
    if names.windows(2).any(|w| w[0] == w[1]) {
        return refuse("two columns of one name");
    }
    if table.primary_key.is_empty() {
        return refuse("no primary key: it cannot sync");
    }
    let in_range = |columns: &[usize]| !columns.is_empty() && columns.iter().all(|&c| c < width);
    if !in_range(&table.primary_key) || !table.indexes.iter().all(|i| in_range(&i.columns) && !i.name.is_empty()) {
        return refuse("a key or index names a column it does not have");
    }
    Ok(())
}

/// Applies one change if it is newer than what the row holds. A change made at or before the
/// tombstone `horizon` to a row with neither a stamp nor a version here is refused: the row
/// may be one deleted before the horizon, whose stamp is purged.
fn merge(txn: &mut Transaction, table: &Table, change: &Change, origin: &str, horizon: u64) -> Result<()> {
    let mut row_key = table.row_prefix();
    row_key.extend_from_slice(&change.key);
    let stamp_key = Table::stamp_key(&row_key);
    let current = txn.get_versioned(&row_key)?;
    let recorded = txn.get_versioned(&stamp_key)?;
    let existing = match (&current, &recorded) {
        (Some((row_version, _)), Some((stamp_version, Some(stamp)))) if stamp_version >= row_version => {
            Some(Stamp::decode(stamp, *stamp_version)?)
        }
        (None, Some((stamp_version, Some(stamp)))) => Some(Stamp::decode(stamp, *stamp_version)?),
        (Some((row_version, _)), _) => {
            Some(Stamp { time: *row_version, origin: LOCAL_ORIGIN.to_string(), deleted: false })
        }
        (None, _) => {
            if change.position.version <= horizon {
                return Err(Error::NotInPrerequisiteState(format!(
                    "edge {origin} pushes a change of table \"{}\" made at version {}, at or before this cloud's \
                     tombstone horizon ({horizon}), to a row the cloud holds nothing of: it may be a row deleted \
                     before the horizon, whose delete is forgotten here (see docs/sync.md)",
                    table.name, change.position.version
                )));
            }
            None
        }
    };
    if existing.is_some_and(|e| (e.time, e.origin.as_str()) >= (change.position.version, origin)) {
        return Ok(());
    }
    if let Some((_, Some(old))) = &current {
        let old = table.decode_row(old)?;
        dml::delete_row_in(txn, table, &row_key, &old);
    }
    if let Some(bytes) = &change.row {
        let row = decode_row(table, bytes)?;
        if table.row_key(&row, None) != row_key {
            return Err(Error::InvalidParameter(format!(
                "a change of table \"{}\" names a key its row does not have",
                table.name
            )));
        }
        dml::check_not_null(table, &row)?;
        let pk = &row_key[table.row_prefix().len()..];
        for index in table.indexes.iter().filter(|i| i.unique) {
            if index.columns.iter().any(|&c| row[c].is_null()) {
                continue;
            }
            let (entry, _) = table.index_entry(index, &row, pk);
            if txn.get(&entry)?.is_some_and(|holder| holder != pk) {
                return Err(Error::UniqueViolation {
                    constraint: index.name.clone(),
                    detail: format!("a row from edge {origin} duplicates a key of the cloud's \"{}\"", table.name),
                });
            }
        }
        dml::write_row_in(txn, table, &row_key, &row);
    }
    let stamp = Stamp { time: change.position.version, origin: origin.to_string(), deleted: change.row.is_none() };
    txn.set(stamp_key, stamp.encode());
    Ok(())
}

/// A row from an edge, whose table has the same columns here (see [`ensure_table`]): refused
/// when it has more values than columns.
fn decode_row(table: &Table, bytes: &[u8]) -> Result<Vec<crate::types::Value>> {
    let mut row = crate::storage::rowcodec::decode_row(bytes)?;
    if row.len() > table.columns.len() {
        return Err(Error::InvalidParameter(format!("a row of table \"{}\" has too many values", table.name)));
    }
    // Rows from before a column was added are shorter, as in `Table::decode_row`.
    row.resize(table.columns.len(), crate::types::Value::Null);
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_refuse_short_bytes() {
        let stamp = Stamp { time: 7, origin: "farm-a".into(), deleted: true };
        assert_eq!(Stamp::decode(&stamp.encode(), 9).unwrap(), stamp);
        assert!(Stamp::decode(&[0; 8], 9).is_err());
        let local = Stamp { time: 9, origin: LOCAL_ORIGIN.into(), deleted: true };
        assert_eq!(Stamp::decode(&catalog::LOCAL_DELETE_STAMP, 9).unwrap(), local);
    }
}
