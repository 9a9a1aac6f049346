//! The durable [`LogStore`]: the Raft log, hard state and latest snapshot in one sled tree.
//!
//! Keys of the tree:
//! - `e` ++ index (big-endian): a log entry (bincode);
//! - `h`: the hard state;
//! - `b`: the bounds `(offset, offset_term, last)`: entries `offset+1..=last` are the log,
//!   `offset` is the snapshot index (the compacted prefix) with its term;
//! - `m`: the latest snapshot's metadata and data length;
//! - `c` ++ snapshot index ++ chunk number (big-endian): the data of the snapshot at that index,
//!   in chunks of [`STORED_CHUNK`] bytes, so that sending a chunk reads one or two of them.
//!
//! A snapshot's chunks are written first, then its metadata with the bounds (atomically),
//! then the chunks of the snapshot it replaces are removed; chunks of any other snapshot
//! found at start-up are the garbage of a crash in between and are swept.
//!
//! Every operation rewrites the bounds, so after a crash the store is exactly as of some
//! prefix of its operations. Truncation is an atomic sled batch, as are a snapshot's record
//! and bounds. Appends, the hot path, are plain inserts with the bounds last (an atomic batch
//! costs two writes of sled's log buffer), and compaction (by a snapshot or not) writes the
//! bounds first, then plain removes (one huge batch holds memory): sled recovers its log up
//! to the first tear, so a torn one leaves entries outside the bounds. Those are garbage (as are entries left by truncation): ignored,
//! overwritten by later appends, and swept when the store is opened. The tree lives in the same sled database as the state machine, so one flush
//! ([`LogStore::sync`]) makes both durable.
//!
//! The terms of live entries are cached in memory (16 bytes per entry) because the node asks
//! for them constantly.

use super::store::LogStore;
use super::types::{Entry, Error, HardState, Index, Result, Snapshot, SnapshotMeta, Term};
use std::collections::BTreeMap;

const BOUNDS: &[u8] = b"b";
const HARD_STATE: &[u8] = b"h";
/// The metadata record of the latest snapshot.
const SNAPSHOT_META: &[u8] = b"m";
/// Where earlier versions kept the whole snapshot in one record (converted when opened).
const LEGACY_SNAPSHOT: &[u8] = b"s";
/// Bytes of snapshot data per stored chunk.
const STORED_CHUNK: usize = 64 * 1024;

fn chunk_key(index: Index, chunk: u64) -> [u8; 17] {
    let mut key = [b'c'; 17];
    key[1..9].copy_from_slice(&index.to_be_bytes());
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

/// A [`LogStore`] in a sled tree.
pub struct SledLogStore {
    tree: sled::Tree,
    offset: Index,
    offset_term: Term,
    /// Terms of entries `offset+1..=last`.
    terms: BTreeMap<Index, Term>,
    hard_state: HardState,
    snapshot_meta: Option<SnapshotMeta>,
    /// Length of the latest snapshot's data.
    snapshot_len: u64,
    /// Writes since the last sync that must be durable before the node acts on them.
    dirty: bool,
}

impl SledLogStore {
    /// Opens the store in `tree`, loading its bounds, hard state and entry terms.
    pub fn open(tree: sled::Tree) -> Result<Self> {
        let (offset, offset_term, last): (Index, Term, Index) = match tree.get(BOUNDS).map_err(storage)? {
            Some(bytes) => decode(&bytes)?,
            None => (0, 0, 0),
        };
        let hard_state = match tree.get(HARD_STATE).map_err(storage)? {
            Some(bytes) => decode(&bytes)?,
            None => HardState::default(),
        };
        if let Some(bytes) = tree.get(LEGACY_SNAPSHOT).map_err(storage)? {
            let snapshot: Snapshot = decode(&bytes)?;
            let index = snapshot.meta.index;
            for (i, chunk) in snapshot.data.chunks(STORED_CHUNK).enumerate() {
                tree.insert(&chunk_key(index, i as u64)[..], chunk).map_err(storage)?;
            }
            let mut batch = sled::Batch::default();
            batch.insert(SNAPSHOT_META, encode(&(&snapshot.meta, snapshot.data.len() as u64))?);
            batch.remove(LEGACY_SNAPSHOT);
            tree.apply_batch(batch).map_err(storage)?;
            tree.flush().map_err(storage)?;
        }
        let (snapshot_meta, snapshot_len) = match tree.get(SNAPSHOT_META).map_err(storage)? {
            Some(bytes) => {
                let (meta, len): (SnapshotMeta, u64) = decode(&bytes)?;
                (Some(meta), len)
            }
            None => (None, 0),
        };
        // Chunks of any other snapshot are garbage of a crash while one was replaced.
        let current = snapshot_meta.as_ref().map(|m| m.index);
        for item in tree.scan_prefix(b"c") {
            let (key, _) = item.map_err(storage)?;
            let index = key.get(1..9).and_then(|b| b.try_into().ok()).map(Index::from_be_bytes);
            if index != current {
                tree.remove(key).map_err(storage)?;
            }
        }
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
        Ok(Self { tree, offset, offset_term, terms, hard_state, snapshot_meta, snapshot_len, dirty: false })
    }

    fn last(&self) -> Index {
        self.terms.keys().next_back().copied().unwrap_or(self.offset)
    }

    /// The bounds record.
    fn bounds(&self) -> Result<Vec<u8>> {
        encode(&(self.offset, self.offset_term, self.last()))
    }

    /// Adds the bounds record to `batch` and applies it.
    fn commit(&mut self, mut batch: sled::Batch) -> Result<()> {
        batch.insert(BOUNDS, self.bounds()?);
        self.dirty = true;
        self.tree.apply_batch(batch).map_err(storage)
    }
}

impl SledLogStore {
    /// Up to `max_len` bytes of the latest snapshot's data from byte `offset`, read from the
    /// chunks that hold them.
    fn read_snapshot(&self, offset: u64, max_len: usize) -> Result<Vec<u8>> {
        let Some(index) = self.snapshot_meta.as_ref().map(|m| m.index) else { return Ok(Vec::new()) };
        let end = offset.saturating_add(max_len as u64).min(self.snapshot_len);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let chunk = at / STORED_CHUNK as u64;
            let bytes = self
                .tree
                .get(chunk_key(index, chunk))
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

    /// Removes the stored chunks of the snapshot at `index`.
    fn remove_chunks(&self, index: Index) -> Result<()> {
        for item in self.tree.range(chunk_key(index, 0)..=chunk_key(index, u64::MAX)) {
            let (key, _) = item.map_err(storage)?;
            self.tree.remove(key).map_err(storage)?;
        }
        Ok(())
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
        self.dirty = true;
        self.tree.insert(BOUNDS, self.bounds()?).map_err(storage)?;
        Ok(())
    }

    fn truncate(&mut self, from: Index) -> Result<()> {
        if from > self.last() {
            return Ok(());
        }
        if from <= self.offset {
            return Err(Error::Storage(format!("truncate from {from} inside compacted prefix {}", self.offset)));
        }
        let mut batch = sled::Batch::default();
        for index in self.terms.split_off(&from).into_keys() {
            batch.remove(&entry_key(index)[..]);
        }
        self.commit(batch)
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
        self.dirty = true;
        self.tree.insert(BOUNDS, self.bounds()?).map_err(storage)?;
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
        self.tree.insert(HARD_STATE, encode(&hs)?).map_err(storage)?;
        self.hard_state = hs;
        Ok(())
    }

    fn hard_state(&self) -> Result<HardState> {
        Ok(self.hard_state)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<()> {
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        if index < self.offset {
            return Err(Error::Storage(format!("snapshot at {index} older than compacted prefix {}", self.offset)));
        }
        // The new chunks under their own index, beside the current snapshot's; then the
        // metadata switches to them atomically with the bounds.
        let replaced = self.snapshot_meta.as_ref().map(|m| m.index).filter(|i| *i != index);
        if replaced.is_none() {
            self.remove_chunks(index)?;
        }
        for (i, chunk) in snapshot.data.chunks(STORED_CHUNK).enumerate() {
            self.tree.insert(&chunk_key(index, i as u64)[..], chunk).map_err(storage)?;
        }
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_META, encode(&(&snapshot.meta, snapshot.data.len() as u64))?);
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
        self.snapshot_meta = Some(snapshot.meta.clone());
        self.snapshot_len = snapshot.data.len() as u64;
        self.commit(batch)?;
        // After the atomic part, as in `compact`.
        for index in dropped.into_keys() {
            self.tree.remove(&entry_key(index)[..]).map_err(storage)?;
        }
        if let Some(old) = replaced {
            self.remove_chunks(old)?;
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Snapshot>> {
        let Some(meta) = self.snapshot_meta.clone() else { return Ok(None) };
        let data = self.read_snapshot(0, usize::try_from(self.snapshot_len).unwrap_or(usize::MAX))?;
        Ok(Some(Snapshot { meta, data }))
    }

    fn snapshot_chunk(&self, offset: u64, max_len: usize) -> Result<Option<(SnapshotMeta, Vec<u8>, u64)>> {
        let Some(meta) = self.snapshot_meta.clone() else { return Ok(None) };
        let data = self.read_snapshot(offset, max_len)?;
        Ok(Some((meta, data, self.snapshot_len)))
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
            let mut store = SledLogStore::open(db.open_tree("raft").unwrap()).unwrap();
            store.append(&[entry(1, 1), entry(2, 1)]).unwrap();
            store.sync().unwrap();
            // What survives of an append of 3 and 4 cut short before its bounds record.
            let tree = db.open_tree("raft").unwrap();
            tree.insert(&entry_key(3)[..], encode(&entry(3, 1)).unwrap()).unwrap();
            tree.insert(&entry_key(4)[..], encode(&entry(4, 1)).unwrap()).unwrap();
        }
        let mut store = SledLogStore::open(db.open_tree("raft").unwrap()).unwrap();
        assert!(db.open_tree("raft").unwrap().get(entry_key(4)).unwrap().is_none(), "garbage swept");
        assert_eq!(store.last_index().unwrap(), 2);
        assert_eq!(store.term(3).unwrap(), None);
        assert_eq!(store.entries(1, 10, 10).unwrap(), vec![entry(1, 1), entry(2, 1)]);
        store.append(&[entry(3, 2)]).unwrap();
        drop(store);
        let store = SledLogStore::open(db.open_tree("raft").unwrap()).unwrap();
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
            let mut store = SledLogStore::open(db.open_tree("raft").unwrap()).unwrap();
            store.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>()).unwrap();
            let meta = SnapshotMeta { index: 3, term: 1, ..Default::default() };
            store.save_snapshot(&Snapshot { meta, data: vec![] }).unwrap();
            // What a crash right after the snapshot and bounds records would have left.
            let tree = db.open_tree("raft").unwrap();
            tree.insert(&entry_key(2)[..], encode(&entry(2, 1)).unwrap()).unwrap();
        }
        let store = SledLogStore::open(db.open_tree("raft").unwrap()).unwrap();
        assert!(db.open_tree("raft").unwrap().get(entry_key(2)).unwrap().is_none(), "garbage swept");
        assert_eq!((store.first_index().unwrap(), store.last_index().unwrap()), (4, 5));
        assert_eq!(store.entries(4, 6, 10).unwrap(), vec![entry(4, 1), entry(5, 1)]);
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
            let tree = db.open_tree("raft").unwrap();
            tree.insert(BOUNDS, encode(&(3u64, 1u64, 3u64)).unwrap()).unwrap();
            tree.insert(LEGACY_SNAPSHOT, encode(&Snapshot { meta: meta.clone(), data: data.clone() }).unwrap())
                .unwrap();
        }
        let mut store = SledLogStore::open(db.open_tree("raft").unwrap()).unwrap();
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
        let tree = db.open_tree("raft").unwrap();
        assert_eq!(tree.scan_prefix(b"c").count(), 1, "the replaced snapshot's chunks are gone");
        // Chunks of a snapshot whose metadata never made it (a crash mid-replacement).
        tree.insert(&chunk_key(6, 0)[..], b"torn".to_vec()).unwrap();
        drop(store);
        let store = SledLogStore::open(db.open_tree("raft").unwrap()).unwrap();
        assert_eq!(tree.scan_prefix(b"c").count(), 1, "garbage swept");
        assert_eq!(store.snapshot().unwrap().unwrap(), Snapshot { meta: newer, data: b"small".to_vec() });
        assert_eq!(store.last_index().unwrap(), 6);
    }
}
