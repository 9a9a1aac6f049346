//! The durable [`LogStore`]: the Raft log, hard state and latest snapshot in two sled trees.
//!
//! Keys of the log tree (written once, removed by compaction and truncation):
//! - `e` ++ index (big-endian): a log entry (bincode);
//! - `c` ++ set ++ chunk number (big-endian): snapshot data, in chunks of [`STORED_CHUNK`]
//!   bytes, so that sending a chunk reads one or two of them. Each snapshot's data is a set of
//!   its own, written while the latest one stays readable (by a [`SnapshotWriter`] on another
//!   thread, for a snapshot built from the state machine).
//!
//! Keys of the state tree (small, rewritten by every operation):
//! - `h`: the hard state;
//! - `b`: the bounds `(offset, offset_term, last)`: entries `offset+1..=last` are the log,
//!   `offset` is the snapshot index (the compacted prefix) with its term;
//! - `m`: the latest snapshot's metadata, data length and data set.
//!
//! The records every operation rewrites have a tree of their own because sled rewrites a
//! whole leaf (up to 16 keys) when it consolidates the updates of one key: beside the oldest
//! entries, the bounds made every append rewrite a large one (an entry of a bulk load holds
//! megabytes) until compaction removed it. Earlier versions kept them in the log tree; `open`
//! moves them.
//!
//! A snapshot's chunks are written first, then its metadata with the bounds (atomically),
//! then the chunks of the snapshot it replaces are removed; chunks of any other set found at
//! start-up are the garbage of a crash in between and are swept.
//!
//! Every operation rewrites the bounds, so after a crash the store is exactly as of some
//! prefix of its operations. A snapshot's record and bounds are one atomic sled batch.
//! Appends, the hot path, are plain inserts with the bounds last (an atomic batch costs two
//! writes of sled's log buffer); truncation and compaction (by a snapshot or not) write the
//! bounds first, then plain removes (one huge batch holds memory). Both trees are in one sled
//! database, whose single log keeps writes in order and recovers up to the first tear, so a
//! torn operation leaves entries outside the bounds. Those are garbage: ignored, overwritten
//! by later appends, and swept when the store is opened. The trees live in the same sled
//! database as the state machine, so one flush ([`LogStore::sync`]) makes all durable.
//!
//! The terms of live entries are cached in memory (16 bytes per entry) because the node asks
//! for them constantly.

use super::store::{LogStore, SnapshotWriter, Written};
use super::types::{Entry, Error, HardState, Index, Result, Snapshot, SnapshotMeta, Term};
use std::collections::BTreeMap;

const BOUNDS: &[u8] = b"b";
const HARD_STATE: &[u8] = b"h";
/// The metadata record of the latest snapshot.
const SNAPSHOT_META: &[u8] = b"m";
/// Where earlier versions kept the whole snapshot in one record (converted when opened).
const LEGACY_SNAPSHOT: &[u8] = b"s";
/// The names of the two trees in a sled database.
pub const LOG_TREE: &str = "raft";
pub const STATE_TREE: &str = "raft-state";

/// Bytes of snapshot data per stored chunk.
const STORED_CHUNK: usize = 64 * 1024;

fn chunk_key(set: u64, chunk: u64) -> [u8; 17] {
    let mut key = [b'c'; 17];
    key[1..9].copy_from_slice(&set.to_be_bytes());
    key[9..].copy_from_slice(&chunk.to_be_bytes());
    key
}

fn entry_key(index: Index) -> [u8; 9] {
    let mut key = [b'e'; 9];
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

/// A storage failure, described by its cause (an I/O error by its own message: sled's
/// display of one is its debug form).
fn storage<E: std::fmt::Display + 'static>(e: E) -> Error {
    match (&e as &dyn std::any::Any).downcast_ref::<sled::Error>() {
        Some(sled::Error::Io(io)) if io.kind() == std::io::ErrorKind::StorageFull => {
            Error::DiskFull("no space left on device".into())
        }
        Some(sled::Error::Io(io)) => Error::Storage(io.to_string()),
        _ => Error::Storage(e.to_string()),
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(storage)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map(|(v, _)| v).map_err(storage)
}

/// A [`LogStore`] in two sled trees.
pub struct SledLogStore {
    /// Entries and snapshot chunks.
    tree: sled::Tree,
    /// Bounds, hard state and snapshot metadata.
    state: sled::Tree,
    offset: Index,
    offset_term: Term,
    /// Terms of entries `offset+1..=last`.
    terms: BTreeMap<Index, Term>,
    hard_state: HardState,
    snapshot_meta: Option<SnapshotMeta>,
    /// Length and set of the latest snapshot's data.
    snapshot_data: Written,
    /// The next set of snapshot chunks to write.
    next_set: std::sync::atomic::AtomicU64,
    /// Writes since the last sync that must be durable before the node acts on them.
    dirty: bool,
}

impl SledLogStore {
    /// Opens the store in the trees `tree` (the log) and `state` (two trees of one sled
    /// database), loading its bounds, hard state and entry terms.
    pub fn open(tree: sled::Tree, state: sled::Tree) -> Result<Self> {
        move_state_records(&tree, &state)?;
        let (offset, offset_term, last): (Index, Term, Index) = match state.get(BOUNDS).map_err(storage)? {
            Some(bytes) => decode(&bytes)?,
            None => (0, 0, 0),
        };
        let hard_state = match state.get(HARD_STATE).map_err(storage)? {
            Some(bytes) => decode(&bytes)?,
            None => HardState::default(),
        };
        if let Some(bytes) = tree.get(LEGACY_SNAPSHOT).map_err(storage)? {
            let snapshot: Snapshot = decode(&bytes)?;
            for (i, chunk) in snapshot.data.chunks(STORED_CHUNK).enumerate() {
                tree.insert(&chunk_key(1, i as u64)[..], chunk).map_err(storage)?;
            }
            state
                .insert(SNAPSHOT_META, encode(&(&snapshot.meta, snapshot.data.len() as u64, 1u64))?)
                .map_err(storage)?;
            tree.remove(LEGACY_SNAPSHOT).map_err(storage)?;
            tree.flush().map_err(storage)?;
        }
        let (snapshot_meta, snapshot_data) = match state.get(SNAPSHOT_META).map_err(storage)? {
            Some(bytes) => {
                let (meta, len, id): (SnapshotMeta, u64, u64) = decode(&bytes)?;
                (Some(meta), Written { id, len })
            }
            None => (None, Written { id: 0, len: 0 }),
        };
        // Chunks of any other set are garbage of a crash while a snapshot was written.
        let mut last_set = snapshot_data.id;
        for item in tree.scan_prefix(b"c") {
            let (key, _) = item.map_err(storage)?;
            let set = key.get(1..9).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes);
            last_set = last_set.max(set);
            if set != snapshot_data.id {
                tree.remove(key).map_err(storage)?;
            }
        }
        let next_set = std::sync::atomic::AtomicU64::new(last_set + 1);
        let mut terms = BTreeMap::new();
        if last > offset {
            for item in tree.range(entry_key(offset + 1)..=entry_key(last)) {
                let (_, bytes) = item.map_err(storage)?;
                let entry: Entry = decode(&bytes)?;
                terms.insert(entry.index, entry.term);
            }
            if terms.len() as u64 != last - offset {
                return Err(Error::Storage(format!(
                    "raft log has {} entries between {offset} and {last}",
                    terms.len()
                )));
            }
        }
        // Entries outside the bounds are garbage of torn appends or compactions.
        let garbage = tree
            .range(entry_key(0)..entry_key(offset + 1))
            .chain(tree.range(entry_key(last + 1)..=entry_key(u64::MAX)));
        for item in garbage {
            let (key, _) = item.map_err(storage)?;
            tree.remove(key).map_err(storage)?;
        }
        Ok(Self {
            tree,
            state,
            offset,
            offset_term,
            terms,
            hard_state,
            snapshot_meta,
            snapshot_data,
            next_set,
            dirty: false,
        })
    }

    fn last(&self) -> Index {
        self.terms.keys().next_back().copied().unwrap_or(self.offset)
    }

    /// The bounds record.
    fn bounds(&self) -> Result<Vec<u8>> {
        encode(&(self.offset, self.offset_term, self.last()))
    }

    /// Writes the bounds record.
    fn save_bounds(&mut self) -> Result<()> {
        self.dirty = true;
        self.state.insert(BOUNDS, self.bounds()?).map_err(storage)?;
        Ok(())
    }
}

/// Moves the records of the state tree out of the log tree, where earlier versions kept them:
/// copied first (one batch), then removed, so a crash in between leaves copies that are
/// current (the state tree is written only here before the move) and stale originals.
fn move_state_records(tree: &sled::Tree, state: &sled::Tree) -> Result<()> {
    let mut found = Vec::new();
    for key in [BOUNDS, HARD_STATE, SNAPSHOT_META] {
        if let Some(value) = tree.get(key).map_err(storage)? {
            found.push((key, value));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    if state.is_empty() {
        let mut batch = sled::Batch::default();
        for (key, value) in &found {
            batch.insert(*key, value.clone());
        }
        state.apply_batch(batch).map_err(storage)?;
    }
    for (key, _) in found {
        tree.remove(key).map_err(storage)?;
    }
    tree.flush().map_err(storage)?;
    Ok(())
}

impl SledLogStore {
    /// Up to `max_len` bytes of the latest snapshot's data from byte `offset`, read from the
    /// chunks that hold them.
    fn read_snapshot(&self, offset: u64, max_len: usize) -> Result<Vec<u8>> {
        let Some(index) = self.snapshot_meta.as_ref().map(|m| m.index) else { return Ok(Vec::new()) };
        let set = self.snapshot_data.id;
        let end = offset.saturating_add(max_len as u64).min(self.snapshot_data.len);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let chunk = at / STORED_CHUNK as u64;
            let bytes = self
                .tree
                .get(chunk_key(set, chunk))
                .map_err(storage)?
                .ok_or_else(|| Error::Storage(format!("chunk {chunk} of the snapshot at {index} is missing")))?;
            let from = (at - chunk * STORED_CHUNK as u64) as usize;
            let to = bytes.len().min(from + (end - at) as usize);
            if from >= to {
                return Err(Error::Storage(format!("chunk {chunk} of the snapshot at {index} is short")));
            }
            out.extend_from_slice(&bytes[from..to]);
            at += (to - from) as u64;
        }
        Ok(out)
    }

    /// A set of chunks nobody uses.
    fn new_set(&self) -> u64 {
        self.next_set.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }
}

fn remove_chunks(tree: &sled::Tree, set: u64) -> Result<()> {
    for item in tree.range(chunk_key(set, 0)..=chunk_key(set, u64::MAX)) {
        let (key, _) = item.map_err(storage)?;
        tree.remove(key).map_err(storage)?;
    }
    Ok(())
}

/// Writes a snapshot's data as chunks of the tree (see [`LogStore::snapshot_writer`]).
struct ChunkWriter {
    tree: sled::Tree,
    set: u64,
    buffer: Vec<u8>,
    chunks: u64,
    len: u64,
    done: bool,
}

impl ChunkWriter {
    fn store_chunk(&mut self) -> Result<()> {
        let chunk = std::mem::take(&mut self.buffer);
        self.len += chunk.len() as u64;
        self.tree.insert(&chunk_key(self.set, self.chunks)[..], chunk).map_err(storage)?;
        self.chunks += 1;
        Ok(())
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = bytes.len().min(STORED_CHUNK - self.buffer.len());
        if self.buffer.capacity() == 0 {
            self.buffer.reserve_exact(STORED_CHUNK);
        }
        self.buffer.extend_from_slice(&bytes[..n]);
        if self.buffer.len() == STORED_CHUNK {
            self.store_chunk().map_err(std::io::Error::other)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SnapshotWriter for ChunkWriter {
    fn finish(mut self: Box<Self>) -> Result<Written> {
        if !self.buffer.is_empty() {
            self.store_chunk()?;
        }
        self.tree.flush().map_err(storage)?;
        self.done = true;
        Ok(Written { id: self.set, len: self.len })
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = remove_chunks(&self.tree, self.set);
        }
    }
}

impl LogStore for SledLogStore {
    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let Some(first) = entries.first() else { return Ok(()) };
        for (next, e) in (self.last() + 1..).zip(entries) {
            if e.index != next {
                return Err(Error::Storage(format!("append of index {} at position {next}", e.index)));
            }
        }
        debug_assert_eq!(first.index, self.last() + 1);
        for e in entries {
            self.tree.insert(&entry_key(e.index)[..], encode(e)?).map_err(storage)?;
        }
        for e in entries {
            self.terms.insert(e.index, e.term);
        }
        self.save_bounds()
    }

    fn truncate(&mut self, from: Index) -> Result<()> {
        if from > self.last() {
            return Ok(());
        }
        if from <= self.offset {
            return Err(Error::Storage(format!("truncate from {from} inside compacted prefix {}", self.offset)));
        }
        // The bounds first, as in `compact`: entries past them are garbage.
        let dropped = self.terms.split_off(&from);
        self.save_bounds()?;
        for index in dropped.into_keys() {
            self.tree.remove(&entry_key(index)[..]).map_err(storage)?;
        }
        Ok(())
    }

    fn entries(&self, lo: Index, hi: Index, max: usize) -> Result<Vec<Entry>> {
        if lo <= self.offset {
            return Err(Error::Storage(format!("entries from {lo}: compacted up to {}", self.offset)));
        }
        let hi = hi.min(self.last() + 1);
        if lo >= hi {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in self.tree.range(entry_key(lo)..entry_key(hi)) {
            if out.len() >= max {
                break;
            }
            let (_, bytes) = item.map_err(storage)?;
            out.push(decode::<Entry>(&bytes)?);
        }
        if out.len() < max.min((hi - lo) as usize) {
            return Err(Error::Storage(format!("raft log entries {lo}..{hi} are missing")));
        }
        Ok(out)
    }

    fn term(&self, index: Index) -> Result<Option<Term>> {
        if index == self.offset {
            return Ok(Some(self.offset_term));
        }
        Ok(self.terms.get(&index).copied())
    }

    fn first_index(&self) -> Result<Index> {
        Ok(self.offset + 1)
    }

    fn last_index(&self) -> Result<Index> {
        Ok(self.last())
    }

    fn compact(&mut self, upto: Index) -> Result<()> {
        if upto <= self.offset {
            return Ok(());
        }
        let snap = self.snapshot_meta.as_ref().map_or(0, |s| s.index);
        if upto > snap || upto > self.last() {
            return Err(Error::Storage(format!("compact to {upto} beyond snapshot {snap}")));
        }
        let Some(term) = self.terms.get(&upto).copied() else {
            return Err(Error::Storage(format!("compact to {upto}: no such entry")));
        };
        let kept = self.terms.split_off(&(upto + 1));
        let dropped = std::mem::replace(&mut self.terms, kept);
        self.offset = upto;
        self.offset_term = term;
        // The bounds first, then plain removes: one atomic batch of thousands of removes
        // makes sled hold every intermediate node until it ends. A crash in between leaves
        // entries below the bounds, which `open` sweeps.
        self.save_bounds()?;
        for index in dropped.into_keys() {
            self.tree.remove(&entry_key(index)[..]).map_err(storage)?;
        }
        Ok(())
    }

    fn save_hard_state(&mut self, hs: HardState) -> Result<()> {
        // Term and vote must be durable before messages that depend on them; the commit
        // index can be recomputed, so a change of it alone does not need a flush of its own
        // (sled keeps writes in order: it is durable before anything applied after it).
        if (hs.term, hs.vote) != (self.hard_state.term, self.hard_state.vote) {
            self.dirty = true;
        }
        self.state.insert(HARD_STATE, encode(&hs)?).map_err(storage)?;
        self.hard_state = hs;
        Ok(())
    }

    fn hard_state(&self) -> Result<HardState> {
        Ok(self.hard_state)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<()> {
        let index = snapshot.meta.index;
        if index < self.offset {
            return Err(Error::Storage(format!("snapshot at {index} older than compacted prefix {}", self.offset)));
        }
        // The new chunks in a set of their own, beside the current snapshot's; then the
        // metadata switches to them atomically with the bounds.
        let set = self.new_set();
        for (i, chunk) in snapshot.data.chunks(STORED_CHUNK).enumerate() {
            self.tree.insert(&chunk_key(set, i as u64)[..], chunk).map_err(storage)?;
        }
        self.save_written_snapshot(snapshot.meta.clone(), Written { id: set, len: snapshot.data.len() as u64 })
    }

    fn snapshot_writer(&self) -> Result<Option<Box<dyn SnapshotWriter>>> {
        let writer = ChunkWriter {
            tree: self.tree.clone(),
            set: self.new_set(),
            buffer: Vec::new(),
            chunks: 0,
            len: 0,
            done: false,
        };
        Ok(Some(Box::new(writer)))
    }

    fn discard_written(&mut self, written: Written) {
        if self.snapshot_meta.is_none() || written.id != self.snapshot_data.id {
            let _ = remove_chunks(&self.tree, written.id);
        }
    }

    fn save_written_snapshot(&mut self, meta: SnapshotMeta, written: Written) -> Result<()> {
        let (index, term) = (meta.index, meta.term);
        if index < self.offset {
            let _ = remove_chunks(&self.tree, written.id);
            return Err(Error::Storage(format!("snapshot at {index} older than compacted prefix {}", self.offset)));
        }
        let replaced = self.snapshot_meta.is_some().then_some(self.snapshot_data.id).filter(|id| *id != written.id);
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_META, encode(&(&meta, written.len, written.id))?);
        let dropped = if index > self.offset && self.terms.get(&index) == Some(&term) {
            let kept = self.terms.split_off(&(index + 1));
            std::mem::replace(&mut self.terms, kept)
        } else if index != self.offset || self.offset_term != term {
            std::mem::take(&mut self.terms)
        } else {
            BTreeMap::new()
        };
        self.offset = index;
        self.offset_term = term;
        self.snapshot_meta = Some(meta);
        self.snapshot_data = written;
        batch.insert(BOUNDS, self.bounds()?);
        self.dirty = true;
        self.state.apply_batch(batch).map_err(storage)?;
        // After the atomic part, as in `compact`.
        for index in dropped.into_keys() {
            self.tree.remove(&entry_key(index)[..]).map_err(storage)?;
        }
        if let Some(old) = replaced {
            remove_chunks(&self.tree, old)?;
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Snapshot>> {
        let Some(meta) = self.snapshot_meta.clone() else { return Ok(None) };
        let data = self.read_snapshot(0, usize::try_from(self.snapshot_data.len).unwrap_or(usize::MAX))?;
        Ok(Some(Snapshot { meta, data }))
    }

    fn snapshot_chunk(&self, offset: u64, max_len: usize) -> Result<Option<(SnapshotMeta, Vec<u8>, u64)>> {
        let Some(meta) = self.snapshot_meta.clone() else { return Ok(None) };
        let data = self.read_snapshot(offset, max_len)?;
        Ok(Some((meta, data, self.snapshot_data.len)))
    }

    fn snapshot_meta(&self) -> Result<Option<SnapshotMeta>> {
        Ok(self.snapshot_meta.clone())
    }

    fn sync(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.dirty) {
            return Ok(());
        }
        self.tree.flush().map(|_| ()).map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::EntryData;

    fn open_in(db: &sled::Db) -> SledLogStore {
        SledLogStore::open(db.open_tree(LOG_TREE).unwrap(), db.open_tree(STATE_TREE).unwrap()).unwrap()
    }

    fn entry(index: Index, term: Term) -> Entry {
        Entry { index, term, data: EntryData::Command(index.to_be_bytes().to_vec()) }
    }

    /// A crash in the middle of an append leaves entries past the stored bounds; they are not
    /// part of the log after a restart and later appends overwrite them.
    #[test]
    fn a_torn_append_leaves_the_log_as_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        {
            let mut store = open_in(&db);
            store.append(&[entry(1, 1), entry(2, 1)]).unwrap();
            store.sync().unwrap();
            // What survives of an append of 3 and 4 cut short before its bounds record.
            let tree = db.open_tree(LOG_TREE).unwrap();
            tree.insert(&entry_key(3)[..], encode(&entry(3, 1)).unwrap()).unwrap();
            tree.insert(&entry_key(4)[..], encode(&entry(4, 1)).unwrap()).unwrap();
        }
        let mut store = open_in(&db);
        assert!(db.open_tree(LOG_TREE).unwrap().get(entry_key(4)).unwrap().is_none(), "garbage swept");
        assert_eq!(store.last_index().unwrap(), 2);
        assert_eq!(store.term(3).unwrap(), None);
        assert_eq!(store.entries(1, 10, 10).unwrap(), vec![entry(1, 1), entry(2, 1)]);
        store.append(&[entry(3, 2)]).unwrap();
        drop(store);
        let store = open_in(&db);
        assert_eq!(store.last_index().unwrap(), 3);
        assert_eq!(store.entries(1, 10, 10).unwrap(), vec![entry(1, 1), entry(2, 1), entry(3, 2)]);
    }

    /// A snapshot's compaction cut short after its bounds record leaves entries below them:
    /// swept at the next open, the log itself as compacted.
    #[test]
    fn a_torn_snapshot_compaction_leaves_the_compacted_log() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        {
            let mut store = open_in(&db);
            store.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>()).unwrap();
            let meta = SnapshotMeta { index: 3, term: 1, ..Default::default() };
            store.save_snapshot(&Snapshot { meta, data: vec![] }).unwrap();
            // What a crash right after the snapshot and bounds records would have left.
            let tree = db.open_tree(LOG_TREE).unwrap();
            tree.insert(&entry_key(2)[..], encode(&entry(2, 1)).unwrap()).unwrap();
        }
        let store = open_in(&db);
        assert!(db.open_tree(LOG_TREE).unwrap().get(entry_key(2)).unwrap().is_none(), "garbage swept");
        assert_eq!((store.first_index().unwrap(), store.last_index().unwrap()), (4, 5));
        assert_eq!(store.entries(4, 6, 10).unwrap(), vec![entry(4, 1), entry(5, 1)]);
    }

    /// A log kept by an earlier version, with its bounds and hard state in the log tree, opens
    /// as it was, and those records move to the state tree (also when an earlier move was cut
    /// short after the copy).
    #[test]
    fn records_of_the_earlier_layout_move_to_the_state_tree() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let hs = HardState { term: 2, vote: Some(1), commit: 3 };
        let tree = db.open_tree(LOG_TREE).unwrap();
        for i in 1..=3 {
            tree.insert(&entry_key(i)[..], encode(&entry(i, 1)).unwrap()).unwrap();
        }
        tree.insert(BOUNDS, encode(&(0u64, 0u64, 3u64)).unwrap()).unwrap();
        tree.insert(HARD_STATE, encode(&hs).unwrap()).unwrap();
        let check = |store: &SledLogStore| {
            assert_eq!(store.hard_state().unwrap(), hs);
            assert_eq!(store.entries(1, 4, 10).unwrap(), (1..=3).map(|i| entry(i, 1)).collect::<Vec<_>>());
            assert!(tree.get(BOUNDS).unwrap().is_none() && tree.get(HARD_STATE).unwrap().is_none());
        };
        let mut store = open_in(&db);
        check(&store);
        store.append(&[entry(4, 2)]).unwrap();
        drop(store);
        // A stale copy left in the log tree by a move cut short is dropped, not used.
        tree.insert(BOUNDS, encode(&(0u64, 0u64, 3u64)).unwrap()).unwrap();
        let store = open_in(&db);
        check(&store);
        assert_eq!(store.last_index().unwrap(), 4);
    }

    /// Snapshot data is stored in chunks: any byte range reads back as written, a replaced
    /// snapshot's chunks are removed, a snapshot kept by an earlier version in one record is
    /// converted, and chunks left by a crash during a replacement are swept.
    #[test]
    fn snapshots_are_stored_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..(3 * STORED_CHUNK + 123)).map(|i| (i * 7 % 251) as u8).collect();
        let meta = SnapshotMeta { index: 3, term: 1, ..Default::default() };
        {
            // As an earlier version stored it.
            let tree = db.open_tree(LOG_TREE).unwrap();
            tree.insert(BOUNDS, encode(&(3u64, 1u64, 3u64)).unwrap()).unwrap();
            tree.insert(LEGACY_SNAPSHOT, encode(&Snapshot { meta: meta.clone(), data: data.clone() }).unwrap())
                .unwrap();
        }
        let mut store = open_in(&db);
        assert_eq!(store.snapshot().unwrap().unwrap().data, data);
        for (offset, len) in
            [(0, 10), (STORED_CHUNK as u64 - 5, 10), (100, 2 * STORED_CHUNK), (data.len() as u64 - 3, 64)]
        {
            let (m, bytes, total) = store.snapshot_chunk(offset, len).unwrap().unwrap();
            assert_eq!((m, total), (meta.clone(), data.len() as u64));
            let end = (offset as usize + len).min(data.len());
            assert_eq!(bytes, data[offset as usize..end]);
        }
        assert!(store.snapshot_chunk(data.len() as u64 + 5, 10).unwrap().unwrap().1.is_empty());

        store.append(&(4..=6).map(|i| entry(i, 1)).collect::<Vec<_>>()).unwrap();
        let newer = SnapshotMeta { index: 5, term: 1, ..Default::default() };
        store.save_snapshot(&Snapshot { meta: newer.clone(), data: b"small".to_vec() }).unwrap();
        let tree = db.open_tree(LOG_TREE).unwrap();
        assert_eq!(tree.scan_prefix(b"c").count(), 1, "the replaced snapshot's chunks are gone");
        // Chunks of a snapshot whose metadata never made it (a crash mid-replacement).
        tree.insert(&chunk_key(99, 0)[..], b"torn".to_vec()).unwrap();
        drop(store);
        let store = open_in(&db);
        assert_eq!(tree.scan_prefix(b"c").count(), 1, "garbage swept");
        assert_eq!(store.snapshot().unwrap().unwrap(), Snapshot { meta: newer.clone(), data: b"small".to_vec() });
        assert_eq!(store.last_index().unwrap(), 6);

        // Written from another thread while the current snapshot stays readable.
        let mut store = store;
        let mut writer = store.snapshot_writer().unwrap().unwrap();
        let written = std::thread::spawn(move || {
            for piece in data.chunks(1000) {
                std::io::Write::write_all(&mut writer, piece).unwrap();
            }
            writer.finish().unwrap()
        });
        let abandoned = store.snapshot_writer().unwrap().unwrap();
        assert_eq!(store.snapshot().unwrap().unwrap().data, b"small", "the current one is untouched");
        let written = written.join().unwrap();
        drop(abandoned);
        let newest = SnapshotMeta { index: 6, term: 1, ..Default::default() };
        store.save_written_snapshot(newest.clone(), written).unwrap();
        let got = store.snapshot().unwrap().unwrap();
        assert_eq!((got.meta, got.data.len()), (newest, 3 * STORED_CHUNK + 123));
        assert_eq!(tree.scan_prefix(b"c").count(), 4, "only the newest snapshot's chunks are left");
        drop(store);
        let store = open_in(&db);
        assert_eq!(
            store.snapshot_chunk(STORED_CHUNK as u64, 3).unwrap().unwrap().1,
            got.data[STORED_CHUNK..STORED_CHUNK + 3]
        );
    }
}
