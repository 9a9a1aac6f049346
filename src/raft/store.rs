//! Durable storage of the Raft log, hard state and latest snapshot.

use super::types::{Entry, Error, HardState, Index, Result, Snapshot, SnapshotMeta, Term};

/// Storage used by a [`crate::raft::Node`] for everything that must survive a
/// crash: the log, the [`HardState`] and the latest [`Snapshot`].
///
/// The log is a contiguous range of entries `first_index()..=last_index()`,
/// preceded by the snapshot (if any), which stands for entries
/// `1..=snapshot.index`. With no snapshot, `first_index()` is 1. An empty log
/// has `last_index() == first_index() - 1`.
///
/// Writes may be buffered; [`LogStore::sync`] makes every earlier write
/// durable. The node calls `sync` before it returns a
/// [`crate::raft::Ready`], so everything a `Ready`'s messages depend on is
/// durable by the time the driver sees them. After a crash an
/// implementation must expose exactly the state as of some `sync` (or
/// later, in write order); never a reordering of writes.
///
/// Implementations are synchronous and single-threaded from the node's
/// point of view. All methods return [`Error::Storage`] on I/O failure;
/// the node then stops and must be rebuilt from storage.
pub trait LogStore {
    /// Appends `entries` after the current last index. The entries are
    /// contiguous and `entries[0].index == last_index() + 1`; otherwise an
    /// error is returned and nothing is written.
    fn append(&mut self, entries: &[Entry]) -> Result<()>;

    /// Removes every entry with index `>= from`. `from` must be
    /// `> snapshot index`; indexes past the end are a no-op.
    fn truncate(&mut self, from: Index) -> Result<()>;

    /// Entries in `[lo, hi)`, at most `max` of them. Errors if `lo` is below
    /// `first_index()`; `hi` is clamped to `last_index() + 1`.
    fn entries(&self, lo: Index, hi: Index, max: usize) -> Result<Vec<Entry>>;

    /// Term of the entry at `index`, the snapshot term for the snapshot
    /// index, 0 for index 0, `None` if compacted away or beyond the end.
    fn term(&self, index: Index) -> Result<Option<Term>>;

    /// Index of the first entry still in the log (snapshot index + 1).
    fn first_index(&self) -> Result<Index>;

    /// Index of the last entry (snapshot index if the log is empty).
    fn last_index(&self) -> Result<Index>;

    /// Discards entries with index `<= upto`. Only valid up to the current
    /// snapshot index (the prefix must be covered by a snapshot).
    fn compact(&mut self, upto: Index) -> Result<()>;

    /// Saves the hard state.
    fn save_hard_state(&mut self, hs: HardState) -> Result<()>;

    /// Loads the hard state (default if never saved).
    fn hard_state(&self) -> Result<HardState>;

    /// Saves `snapshot` as the latest snapshot and then drops the log prefix
    /// it covers: if the log has an entry at `snapshot.meta.index` with
    /// `snapshot.meta.term`, entries after it are kept; otherwise the whole
    /// log is discarded. Atomic with respect to crashes.
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<()>;

    /// A writer for the data of a snapshot that may run on another thread while the
    /// node goes on, so that a large snapshot is never held in memory; once it is finished,
    /// [`LogStore::save_written_snapshot`] makes it the latest snapshot. None (the default):
    /// the store takes snapshot data only through [`LogStore::save_snapshot`].
    fn snapshot_writer(&self) -> Result<Option<Box<dyn SnapshotWriter>>> {
        Ok(None)
    }

    /// Saves the data written by a finished [`LogStore::snapshot_writer`] as the latest
    /// snapshot, as [`LogStore::save_snapshot`] does.
    fn save_written_snapshot(&mut self, _meta: SnapshotMeta, _written: Written) -> Result<()> {
        Err(Error::Storage("this store takes snapshot data only whole".into()))
    }

    /// Drops data written by a [`LogStore::snapshot_writer`] that will not be saved (a newer
    /// snapshot got in first).
    fn discard_written(&mut self, _written: Written) {}

    /// The latest snapshot, if any.
    fn snapshot(&self) -> Result<Option<Snapshot>>;

    /// Metadata of the latest snapshot, if any.
    fn snapshot_meta(&self) -> Result<Option<SnapshotMeta>> {
        Ok(self.snapshot()?.map(|s| s.meta))
    }

    /// Reads up to `max_len` bytes of the latest snapshot's data starting at
    /// byte `offset`, returning the snapshot's metadata, the bytes and the
    /// data's total length (`None` if there is no snapshot). Used to send
    /// snapshots in chunks. The default loads the whole snapshot; stores
    /// holding large snapshots should override it.
    fn snapshot_chunk(&self, offset: u64, max_len: usize) -> Result<Option<(SnapshotMeta, Vec<u8>, u64)>> {
        Ok(self.snapshot()?.map(|s| {
            let bytes = chunk_of(&s.data, offset, max_len);
            let len = s.data.len() as u64;
            (s.meta, bytes, len)
        }))
    }

    /// Makes all previous writes durable.
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Writes the data of a snapshot into a [`LogStore`] (see [`LogStore::snapshot_writer`]).
/// Dropped unfinished, it removes what it wrote.
pub trait SnapshotWriter: std::io::Write + Send {
    /// Makes everything written durable.
    fn finish(self: Box<Self>) -> Result<Written>;
}

/// Snapshot data written into a store by a [`SnapshotWriter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Which data in the store (the store's own name for it).
    pub id: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// Reads the data of a store's latest snapshot front to back, a chunk at a time (see
/// [`LogStore::snapshot_chunk`]), so that it is never held whole.
pub struct SnapshotReader<'s, S: LogStore + ?Sized> {
    store: &'s S,
    meta: SnapshotMeta,
    len: u64,
    offset: u64,
    chunk: Vec<u8>,
    position: usize,
}

/// Bytes asked of the store at a time.
const READ_CHUNK: usize = 64 * 1024;

impl<'s, S: LogStore + ?Sized> SnapshotReader<'s, S> {
    /// A reader of `store`'s latest snapshot, if it has one.
    pub fn open(store: &'s S) -> Result<Option<Self>> {
        let Some((meta, chunk, len)) = store.snapshot_chunk(0, READ_CHUNK)? else { return Ok(None) };
        let offset = chunk.len() as u64;
        Ok(Some(SnapshotReader { store, meta, len, offset, chunk, position: 0 }))
    }

    /// The snapshot's metadata.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// The length of its data in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether its data is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<S: LogStore + ?Sized> std::io::Read for SnapshotReader<'_, S> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.position == self.chunk.len() {
            if self.offset >= self.len {
                return Ok(0);
            }
            let Some((meta, chunk, _)) =
                self.store.snapshot_chunk(self.offset, READ_CHUNK).map_err(std::io::Error::other)?
            else {
                return Err(std::io::Error::other("the snapshot being read is gone"));
            };
            if meta != self.meta || chunk.is_empty() {
                return Err(std::io::Error::other("the snapshot being read was replaced"));
            }
            self.offset += chunk.len() as u64;
            self.chunk = chunk;
            self.position = 0;
        }
        let n = out.len().min(self.chunk.len() - self.position);
        out[..n].copy_from_slice(&self.chunk[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// `data[offset..offset + max_len]`, clamped to the data.
fn chunk_of(data: &[u8], offset: u64, max_len: usize) -> Vec<u8> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
    let end = start.saturating_add(max_len).min(data.len());
    data[start..end].to_vec()
}

/// One write, as journaled by [`MemLogStore`] until `sync`.
#[derive(Clone, Debug)]
enum Op {
    Append(Vec<Entry>),
    Truncate(Index),
    Compact(Index),
    HardState(HardState),
    Snapshot(Snapshot),
}

#[derive(Clone, Debug, Default)]
struct MemState {
    /// Entries `offset+1 ..`.
    entries: Vec<Entry>,
    /// Index of the entry before `entries[0]` (the compacted prefix).
    offset: Index,
    /// Term at `offset` (0 when nothing compacted).
    offset_term: Term,
    hard_state: HardState,
    snapshot: Option<Snapshot>,
}

impl MemState {
    fn last_index(&self) -> Index {
        self.offset + self.entries.len() as Index
    }

    fn term(&self, index: Index) -> Option<Term> {
        if index == self.offset {
            return Some(self.offset_term);
        }
        if index < self.offset || index > self.last_index() {
            return None;
        }
        Some(self.entries[(index - self.offset - 1) as usize].term)
    }

    fn check(&self, op: &Op) -> Result<()> {
        match op {
            Op::Append(es) => {
                for (next, e) in (self.last_index() + 1..).zip(es.iter()) {
                    if e.index != next {
                        return Err(Error::Storage(format!("append of index {} at position {next}", e.index)));
                    }
                }
            }
            Op::Truncate(from) => {
                if *from <= self.offset {
                    return Err(Error::Storage(format!(
                        "truncate from {from} inside compacted prefix {}",
                        self.offset
                    )));
                }
            }
            Op::Compact(upto) => {
                let snap = self.snapshot.as_ref().map_or(0, |s| s.meta.index);
                if *upto > snap || *upto > self.last_index() {
                    return Err(Error::Storage(format!("compact to {upto} beyond snapshot {snap}")));
                }
            }
            Op::Snapshot(s) => {
                if s.meta.index < self.offset {
                    return Err(Error::Storage(format!(
                        "snapshot at {} older than compacted prefix {}",
                        s.meta.index, self.offset
                    )));
                }
            }
            Op::HardState(_) => {}
        }
        Ok(())
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Append(es) => self.entries.extend(es),
            Op::Truncate(from) => {
                if from <= self.last_index() {
                    self.entries.truncate((from - self.offset - 1) as usize);
                }
            }
            Op::Compact(upto) => {
                if upto > self.offset {
                    if let Some(t) = self.term(upto) {
                        self.entries.drain(..(upto - self.offset) as usize);
                        self.offset = upto;
                        self.offset_term = t;
                    }
                }
            }
            Op::HardState(hs) => self.hard_state = hs,
            Op::Snapshot(s) => {
                let (idx, term) = (s.meta.index, s.meta.term);
                if idx > self.offset && self.term(idx) == Some(term) {
                    self.entries.drain(..(idx - self.offset) as usize);
                } else if idx != self.offset || self.offset_term != term {
                    self.entries.clear();
                }
                self.offset = idx;
                self.offset_term = term;
                self.snapshot = Some(s);
            }
        }
    }
}

/// In-memory [`LogStore`] that models durability honestly: writes are
/// visible immediately but only become durable at [`LogStore::sync`];
/// [`MemLogStore::restart`] throws away everything not yet synced, as a
/// crash would.
#[derive(Clone, Debug, Default)]
pub struct MemLogStore {
    live: MemState,
    durable: MemState,
    pending: Vec<Op>,
}

impl MemLogStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a crash and restart: unsynced writes are lost.
    pub fn restart(&mut self) {
        self.pending.clear();
        self.live = self.durable.clone();
    }

    /// Number of writes not yet synced.
    pub fn unsynced_writes(&self) -> usize {
        self.pending.len()
    }

    fn write(&mut self, op: Op) -> Result<()> {
        self.live.check(&op)?;
        self.live.apply(op.clone());
        self.pending.push(op);
        Ok(())
    }
}

impl LogStore for MemLogStore {
    fn append(&mut self, entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(Op::Append(entries.to_vec()))
    }

    fn truncate(&mut self, from: Index) -> Result<()> {
        if from > self.live.last_index() {
            return Ok(());
        }
        self.write(Op::Truncate(from))
    }

    fn entries(&self, lo: Index, hi: Index, max: usize) -> Result<Vec<Entry>> {
        let s = &self.live;
        if lo <= s.offset {
            return Err(Error::Storage(format!("entries from {lo}: compacted up to {}", s.offset)));
        }
        let hi = hi.min(s.last_index() + 1);
        if lo >= hi {
            return Ok(Vec::new());
        }
        let a = (lo - s.offset - 1) as usize;
        let b = ((hi - s.offset - 1) as usize).min(a.saturating_add(max));
        Ok(s.entries[a..b].to_vec())
    }

    fn term(&self, index: Index) -> Result<Option<Term>> {
        Ok(self.live.term(index))
    }

    fn first_index(&self) -> Result<Index> {
        Ok(self.live.offset + 1)
    }

    fn last_index(&self) -> Result<Index> {
        Ok(self.live.last_index())
    }

    fn compact(&mut self, upto: Index) -> Result<()> {
        if upto <= self.live.offset {
            return Ok(());
        }
        self.write(Op::Compact(upto))
    }

    fn save_hard_state(&mut self, hs: HardState) -> Result<()> {
        self.write(Op::HardState(hs))
    }

    fn hard_state(&self) -> Result<HardState> {
        Ok(self.live.hard_state)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.write(Op::Snapshot(snapshot.clone()))
    }

    fn snapshot(&self) -> Result<Option<Snapshot>> {
        Ok(self.live.snapshot.clone())
    }

    fn snapshot_meta(&self) -> Result<Option<SnapshotMeta>> {
        Ok(self.live.snapshot.as_ref().map(|s| s.meta.clone()))
    }

    fn snapshot_chunk(&self, offset: u64, max_len: usize) -> Result<Option<(SnapshotMeta, Vec<u8>, u64)>> {
        Ok(self.live.snapshot.as_ref().map(|s| {
            let bytes = chunk_of(&s.data, offset, max_len);
            (s.meta.clone(), bytes, s.data.len() as u64)
        }))
    }

    fn sync(&mut self) -> Result<()> {
        for op in self.pending.drain(..) {
            self.durable.apply(op);
        }
        Ok(())
    }
}
