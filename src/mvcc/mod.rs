//! Multi-version concurrency control over [`Storage`].
//!
//! Every logical key holds a history of versions, each stamped with the HLC time of the commit
//! that wrote it; a delete writes a tombstone version. A [`Transaction`] reads the newest version
//! at or below its snapshot version, so readers see one consistent state and never wait for
//! writers. Writes are buffered in the transaction (it sees its own writes) and leave it as one
//! [`WriteBatch`] at commit.
//!
//! There is one commit path, for a single node (a Raft group of one) and a cluster alike (see
//! [`replication`]): the commit is validated (a transaction whose writes or reads overlap a
//! commit made after its snapshot is aborted with a serialization failure, SQLSTATE 40001,
//! which makes committed transactions serializable), stamped with the next version, proposed
//! to the [`Replicator`], and acknowledged once its batch comes back out of the log committed
//! and [`Mvcc::apply_committed`] has written it. Storage only ever holds committed batches;
//! durability is the log's (a batch lost from storage in a crash is applied again from it).
//!
//! Physical layout: `logical key ++ !version` (big-endian, inverted so the newest version comes
//! first), value `[0]` for a tombstone or `[1] ++ bytes`. Logical keys are self-delimiting
//! (see `storage::keycode`), so the version is always the last eight bytes. The last applied
//! version and Raft index are stored under [`APPLIED_KEY`] and [`RAFT_APPLIED_KEY`], written
//! last of the in-order writes of a Raft entry's apply.

mod batch;
pub mod columns;
mod counters;
mod gc;
mod reads;
mod replication;
mod reverse;
mod seal;
pub mod segments;
mod snapshot;

pub use batch::{decode_batch, encode_batch};
pub use counters::CounterBlock;
pub use gc::Pace;
pub use reads::Reads;
pub use replication::{Replicator, Waiter, RAFT_APPLIED_KEY};
pub use seal::{SealLimits, SealStats, MAX_SEGMENT_ROWS, MIN_SEAL_ROWS};
pub use segments::{block_rows, DecodedBlock, SegmentCodec, SegmentRow};

use crate::error::{Error, Result};
use crate::storage::keyspace::{Keyspace, Local};
use crate::storage::{prefix_end, Storage};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// A commit timestamp: an HLC time as a 64-bit NTP-style number. Strictly increasing per node.
pub type Version = u64;

/// Unversioned key holding the last applied version (outside every logical keyspace).
pub const APPLIED_KEY: &[u8] = Local::Applied.key();

/// Where an earlier version kept a large batch while applying it in pieces (a redo record).
const LEGACY_REDO_KEY: &[u8] = Local::LegacyRedo.key();

/// A write of a batch: `(logical key, Some(value))`, or `(logical key, None)` for a delete.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// The writes of one committed transaction, stamped with its commit version. Applying the same
/// batch twice leaves the same state as applying it once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteBatch {
    pub version: Version,
    /// `(logical key, Some(value))` writes and `(logical key, None)` deletes, in key order.
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// A transaction's commit as the node that validates it needs it: what it read (as of
/// `read_version`) and what it writes. Sent to the leader when committing on another node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommitRequest {
    pub read_version: Version,
    /// `(logical key, Some(value))` writes and `(logical key, None)` deletes, in key order.
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Keys read by point lookups.
    pub read_keys: Vec<Vec<u8>>,
    /// Conflict domains (tables) scanned.
    pub read_domains: Vec<Vec<u8>>,
}

/// The storage writes of a batch: each logical write at the batch's version (a value gets a
/// leading 1, a tombstone is a lone 0).
fn stored_writes(batch: &WriteBatch) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    stored_writes_of(batch.version, batch.writes.iter())
}

/// [`stored_writes`] of some of a batch's writes.
fn stored_writes_of<'a>(
    version: Version,
    writes: impl Iterator<Item = &'a (Vec<u8>, Option<Vec<u8>>)> + 'a,
) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a {
    writes.map(move |(key, value)| {
        let physical = physical_key(key, version);
        match value {
            Some(v) => {
                let mut stored = Vec::with_capacity(v.len() + 1);
                stored.push(1);
                stored.extend_from_slice(v);
                (physical, stored)
            }
            None => (physical, vec![0]),
        }
    })
}

/// Moves the applied version and Raft index from where earlier versions kept them (see
/// `Local::key`), in one atomic batch.
fn move_applied_records(storage: &dyn Storage) -> Result<()> {
    let mut batch = crate::storage::StorageBatch::default();
    for (old, new) in [(Local::LegacyApplied, Local::Applied), (Local::LegacyRaftApplied, Local::RaftApplied)] {
        if let Some(value) = storage.get(old.key())? {
            if storage.get(new.key())?.is_none() {
                batch.put(new.key().to_vec(), value);
            }
            batch.delete(old.key().to_vec());
        }
    }
    if !batch.is_empty() {
        storage.apply(batch)?;
        storage.flush()?;
    }
    Ok(())
}

/// The version of the last batch applied to `storage` (0 when none).
pub fn applied_version(storage: &dyn Storage) -> Result<Version> {
    Ok(match storage.get(APPLIED_KEY)? {
        Some(bytes) if bytes.len() == 8 => {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(&bytes);
            u64::from_be_bytes(buf)
        }
        Some(_) => return Err(Error::Corruption("malformed applied version".into())),
        None => 0,
    })
}

fn physical_key(key: &[u8], version: Version) -> Vec<u8> {
    debug_assert!(key.first() >= Some(&Keyspace::FIRST_LOGICAL), "a logical key in the local keyspace");
    let mut physical = Vec::with_capacity(key.len() + 8);
    physical.extend_from_slice(key);
    physical.extend_from_slice(&(!version).to_be_bytes());
    physical
}

/// Splits a physical key into its logical key and version.
fn split_physical(physical: &[u8]) -> Result<(&[u8], Version)> {
    if physical.len() < 8 {
        return Err(Error::Corruption("versioned key too short".into()));
    }
    let (key, suffix) = physical.split_at(physical.len() - 8);
    let mut buf = [0u8; 8];
    buf.copy_from_slice(suffix);
    Ok((key, !u64::from_be_bytes(buf)))
}

fn decode_stored(stored: &[u8]) -> Result<Option<&[u8]>> {
    match stored.split_first() {
        Some((0, _)) => Ok(None),
        Some((1, rest)) => Ok(Some(rest)),
        _ => Err(Error::Corruption("malformed versioned value".into())),
    }
}

/// How far ahead of this node's wall clock a time received from another node may be (see
/// [`Mvcc::observe_clock`]).
pub const MAX_CLOCK_DRIFT: std::time::Duration = std::time::Duration::from_secs(10);

/// The MVCC store: owns the storage, the writer token, the HLC and the visibility watermark.
pub struct Mvcc {
    storage: Arc<dyn Storage>,
    hlc: uhlc::HLC,
    /// Highest applied version.
    applied: AtomicU64,
    /// Held while a commit is validated and proposed, so that batches are proposed in version
    /// order and each validation sees every earlier proposal.
    writer_busy: Mutex<bool>,
    writer_free: Condvar,
    /// The newest version new snapshots read: applied, and durable in the log.
    durable: Mutex<Version>,
    published: Condvar,
    /// For each conflict domain (a table), the version of the last commit that wrote it.
    domain_versions: Mutex<HashMap<Vec<u8>, Version>>,
    /// Snapshot versions in use, for garbage collection.
    active: Mutex<BTreeMap<Version, usize>>,
    /// Transactions committed with writes since start-up.
    commits: AtomicU64,
    /// Commits that failed validation (serialization failures) since start-up.
    conflicts: AtomicU64,
    /// Where commits go (see [`replication`]); set once, when the node starts.
    replicator: OnceLock<Arc<dyn Replicator>>,
    /// Keys of proposed, not yet applied batches.
    pending: Mutex<replication::Pending>,
    /// The newest version assigned to a commit (may be pending).
    last_version: AtomicU64,
    /// Commits are stamped after this time: a reference clock adopted from elsewhere (an
    /// edge takes the cloud's), however far it is ahead of the local one.
    clock_floor: AtomicU64,
    /// Conflict domains missing from `domain_versions` count as written at this version (the
    /// state at start-up or at the last snapshot restore).
    domain_floor: AtomicU64,
    /// The version of the last applied commit that wrote a definition (see [`reads`]).
    definitions_version: AtomicU64,
    /// The time part of the last [`Mvcc::unique_id`].
    last_unique_id: AtomicU64,
    /// This node's reserved blocks of counter values, by counter key (see [`counters`]).
    counters: Mutex<HashMap<Vec<u8>, counters::CounterBlock>>,
    /// Column snapshots of tables for full scans (see [`columns`]).
    columns: Arc<columns::ColumnCache>,
    /// What derives writes from each applied batch (see [`Derive`]); installed at start-up.
    derives: std::sync::RwLock<Vec<Arc<dyn Derive>>>,
    /// Sealed segments (see [`segments`]).
    segments: segments::Segments,
    /// Fewest rows of one series a batch must bring for them to be stored as a segment when
    /// it is applied ([`seal::APPLY_SEAL_ROWS`]).
    apply_seal_rows: std::sync::atomic::AtomicUsize,
    /// Where garbage collection looks for garbage (see [`gc`]).
    gc_marks: Mutex<gc::GcMarks>,
    /// For each table prefix, the limits and watermark of its last complete sealing pass
    /// (see [`seal`]): a table nobody wrote since is not walked again.
    sealed: Mutex<HashMap<Vec<u8>, (SealLimits, Version)>>,
}

/// Writes derived from each committed batch and made with it, at its version: the layers above
/// keep data that follows from the rows (time-series summaries) exactly as of every snapshot.
/// `before` reads the state just before the batch, so applying a batch again derives the same
/// writes. Deriving must be deterministic (every replica derives the same writes from the same
/// log) and fails only for I/O.
pub trait Derive: Send + Sync {
    fn derive(&self, batch: &WriteBatch, before: &mut Transaction) -> Result<Vec<Write>>;

    /// The whole state was replaced (a snapshot was installed): forget what was cached.
    fn reset(&self) {}

    /// The codec that stores the rows of the table whose keys start with `domain` as
    /// segments when a batch brings many of them at once (see `segments`), as of the batch
    /// just derived from; None keeps them in the row layout.
    fn segment_codec(&self, _domain: &[u8]) -> Option<Arc<dyn SegmentCodec>> {
        None
    }
}

impl Mvcc {
    /// Opens the MVCC layer over `storage`, resuming from the stored applied version.
    pub fn new(storage: Arc<dyn Storage>) -> Result<Arc<Self>> {
        if storage.get(LEGACY_REDO_KEY)?.is_some() {
            return Err(Error::Corruption(
                "this database holds a half-applied batch of an earlier version's local commit path: open it once \
                 with that version to finish it"
                    .into(),
            ));
        }
        move_applied_records(storage.as_ref())?;
        let applied = applied_version(storage.as_ref())?;
        let segments = segments::Segments::load(storage.as_ref())?;
        Ok(Arc::new(Self {
            storage,
            hlc: uhlc::HLCBuilder::new().with_clock(crate::clock::ntp64).with_max_delta(MAX_CLOCK_DRIFT).build(),
            applied: AtomicU64::new(applied),
            writer_busy: Mutex::new(false),
            writer_free: Condvar::new(),
            durable: Mutex::new(applied),
            published: Condvar::new(),
            domain_versions: Mutex::new(HashMap::new()),
            active: Mutex::new(BTreeMap::new()),
            commits: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            replicator: OnceLock::new(),
            pending: Mutex::new(Default::default()),
            last_version: AtomicU64::new(applied),
            clock_floor: AtomicU64::new(0),
            domain_floor: AtomicU64::new(applied),
            definitions_version: AtomicU64::new(applied),
            last_unique_id: AtomicU64::new(0),
            counters: Mutex::new(HashMap::new()),
            columns: Arc::new(columns::ColumnCache::new(applied)),
            derives: Default::default(),
            segments,
            apply_seal_rows: std::sync::atomic::AtomicUsize::new(seal::APPLY_SEAL_ROWS),
            gc_marks: Mutex::new(gc::GcMarks::everything(applied)),
            sealed: Mutex::new(HashMap::new()),
        }))
    }

    /// Adds writes derived from every batch applied from now on (see [`Derive`]). Derives
    /// write disjoint keyspaces.
    pub fn add_derive(&self, derive: Arc<dyn Derive>) {
        self.derives.write().unwrap_or_else(|e| e.into_inner()).push(derive);
    }

    /// The writes derived from `batch` (none without a [`Derive`]).
    fn derived(self: &Arc<Self>, batch: &WriteBatch) -> Result<WriteBatch> {
        let derives = self.derives.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut writes = Vec::new();
        if !derives.is_empty() {
            let mut before = self.begin_at(batch.version.saturating_sub(1));
            for derive in &derives {
                writes.extend(derive.derive(batch, &mut before)?);
            }
        }
        Ok(WriteBatch { version: batch.version, writes })
    }

    /// Every installed [`Derive`], for a snapshot install.
    fn reset_derives(&self) {
        for derive in self.derives.read().unwrap_or_else(|e| e.into_inner()).iter() {
            derive.reset();
        }
    }

    /// The current time of this node: its HLC, and at least every version applied or
    /// assigned and the adopted clock (see [`Mvcc::adopt_clock`]).
    pub fn clock_now(&self) -> Version {
        self.hlc
            .new_timestamp()
            .get_time()
            .as_u64()
            .max(self.last_version())
            .max(self.clock_floor.load(Ordering::SeqCst))
    }

    /// Takes `reference` as a time this node's commits must follow, however far ahead of the
    /// local clock it is: an edge adopts the cloud's clock from each answer, so a gateway whose
    /// clock is behind (no real-time clock, a reset) stamps its next writes after the cloud's.
    pub fn adopt_clock(&self, reference: Version) {
        let _ = self.hlc.update_with_timestamp(&uhlc::Timestamp::new(uhlc::NTP64(reference), *self.hlc.get_id()));
        self.clock_floor.fetch_max(reference, Ordering::SeqCst);
    }

    /// Merges a time received from another node into the clock, so that every later commit
    /// here is stamped after it; refuses a time more than [`MAX_CLOCK_DRIFT`] ahead of this
    /// node's wall clock (SQLSTATE 22008).
    pub fn observe_clock(&self, remote: Version) -> Result<()> {
        self.hlc.update_with_timestamp(&uhlc::Timestamp::new(uhlc::NTP64(remote), *self.hlc.get_id())).map_err(|_| {
            let ahead = uhlc::NTP64(remote.saturating_sub(crate::clock::ntp64().as_u64())).to_duration();
            Error::DatetimeOutOfRange(format!(
                "a clock {:.3} s ahead of this node's exceeds the maximum drift of {} s",
                ahead.as_secs_f64(),
                MAX_CLOCK_DRIFT.as_secs()
            ))
        })
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Transactions committed with writes since start-up.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Commits that failed validation since start-up.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// The newest durable version: what new snapshots read.
    pub fn durable_version(&self) -> Version {
        *lock(&self.durable)
    }

    /// Begins a transaction for a client statement: after the replicator's read barrier, so
    /// the snapshot includes every write acknowledged before (linearizable reads).
    pub fn begin_read(self: &Arc<Self>) -> Result<Transaction> {
        self.read_barrier()?;
        Ok(self.begin())
    }

    /// Begins a transaction reading the oldest state any snapshot in use may read (what
    /// garbage collection keeps): what it sees, every snapshot sees.
    pub fn begin_oldest(self: &Arc<Self>) -> Transaction {
        let version = self.low_watermark();
        self.begin_at(version)
    }

    /// Begins a transaction reading the newest durable state.
    pub fn begin(self: &Arc<Self>) -> Transaction {
        let version = self.durable_version();
        self.begin_at(version)
    }

    fn begin_at(self: &Arc<Self>, version: Version) -> Transaction {
        *lock(&self.active).entry(version).or_insert(0) += 1;
        Transaction {
            mvcc: self.clone(),
            read_version: version,
            writes: BTreeMap::new(),
            read_keys: BTreeSet::new(),
            read_domains: BTreeSet::new(),
            recording: None,
            reads_left: None,
        }
    }

    /// Waits for and takes the writer token, released when the guard drops.
    fn writer_token(&self) -> WriterGuard<'_> {
        self.acquire_writer();
        WriterGuard { mvcc: self }
    }

    fn acquire_writer(&self) {
        let mut busy = lock(&self.writer_busy);
        while *busy {
            busy = self.writer_free.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy = true;
    }

    /// The next commit version: the HLC time, strictly above every version applied or
    /// assigned before.
    fn next_version(&self) -> Version {
        let now = self.hlc.new_timestamp().get_time().as_u64();
        now.max(self.applied.load(Ordering::SeqCst) + 1)
            .max(self.last_version.load(Ordering::SeqCst) + 1)
            .max(self.clock_floor.load(Ordering::SeqCst) + 1)
    }

    /// The column snapshots of tables (see [`columns`]).
    pub fn column_cache(&self) -> &Arc<columns::ColumnCache> {
        &self.columns
    }

    /// The version of the oldest snapshot anyone may still read.
    fn low_watermark(&self) -> Version {
        let durable = self.durable_version();
        lock(&self.active).keys().next().copied().map_or(durable, |v| v.min(durable))
    }

    /// The newest version of `key` at or below `version`: `Some(None)` for a tombstone.
    fn read_at(&self, key: &[u8], version: Version) -> Result<Option<Option<Vec<u8>>>> {
        Ok(self.read_versioned(key, version)?.map(|(_, value)| value))
    }

    /// Like [`Mvcc::read_at`], with the version found.
    fn read_versioned(&self, key: &[u8], version: Version) -> Result<Option<(Version, Option<Vec<u8>>)>> {
        let _gate = self.segments.gate.shared();
        let start = physical_key(key, version);
        let end = physical_key(key, 0);
        let mut found = None;
        for item in self.storage.scan((Bound::Included(start), Bound::Included(end))) {
            let (physical, stored) = item?;
            let (logical, v) = split_physical(&physical)?;
            if logical == key {
                found = Some((v, decode_stored(&stored)?.map(<[u8]>::to_vec)));
                break;
            }
        }
        if let Some((sealed, value)) = self.segment_row(key)? {
            if sealed <= version && found.as_ref().is_none_or(|(v, _)| *v < sealed) {
                return Ok(Some((sealed, Some(value))));
            }
        }
        Ok(found)
    }

    /// The newest committed version of `key`, if any.
    fn latest_version(&self, key: &[u8]) -> Result<Option<Version>> {
        Ok(self.read_versioned(key, Version::MAX)?.map(|(version, _)| version))
    }
}

/// Locks `m`, also after a holder panicked (a panic is contained to its statement or
/// connection; the server goes on).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The right to commit, held within a call; released on drop.
struct WriterGuard<'a> {
    mvcc: &'a Mvcc,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.mvcc.release_writer();
    }
}

impl Mvcc {
    fn release_writer(&self) {
        *lock(&self.writer_busy) = false;
        self.writer_free.notify_one();
    }
}

/// Versions of one key a scan walks over before it seeks past them instead.
const SEEK_AFTER_SKIPPING: usize = 16;

/// The conflict domain of a key: its keyspace tag and table id, so that a scan of a table
/// conflicts with any later write to it.
fn domain(key: &[u8]) -> Vec<u8> {
    domain_of(key).to_vec()
}

/// [`domain`], borrowed.
fn domain_of(key: &[u8]) -> &[u8] {
    &key[..key.len().min(5)]
}

/// The writes of a transaction at a SAVEPOINT.
#[derive(Clone, Debug)]
pub struct Savepoint {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// A transaction: a snapshot to read and a buffer of writes.
pub struct Transaction {
    mvcc: Arc<Mvcc>,
    read_version: Version,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    read_keys: BTreeSet<Vec<u8>>,
    read_domains: BTreeSet<Vec<u8>>,
    /// Reads made while [`Transaction::record_reads`] runs.
    recording: Option<reads::Reads>,
    /// Stored entries reads may still visit ([`Transaction::limit_reads`]).
    reads_left: Option<usize>,
}

impl Transaction {
    /// The MVCC store this transaction belongs to.
    pub fn mvcc(&self) -> &Arc<Mvcc> {
        &self.mvcc
    }

    /// The snapshot version this transaction reads.
    pub fn read_version(&self) -> Version {
        self.read_version
    }

    /// True if the transaction has buffered writes.
    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    /// True if the transaction has buffered writes under `prefix`.
    pub fn has_writes_under(&self, prefix: &[u8]) -> bool {
        let own = match prefix_end(prefix) {
            Some(end) => {
                self.writes.range::<[u8], _>((Bound::Included(prefix), Bound::Excluded(end.as_slice()))).next()
            }
            None => self.writes.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded)).next(),
        };
        own.is_some()
    }

    /// Counts as a scan of everything under `prefix` for validation: a commit writing there
    /// after this snapshot conflicts with this transaction. For reads of data derived from
    /// those keys (summaries of a table's rows).
    pub fn note_scan(&mut self, prefix: &[u8]) {
        self.note_domain(prefix);
    }

    /// Reads `key` as of the snapshot with the version that wrote it: `Some((version, None))`
    /// for a tombstone, and `u64::MAX` as the version of this transaction's own writes.
    pub fn get_versioned(&mut self, key: &[u8]) -> Result<Option<(Version, Option<Vec<u8>>)>> {
        if let Some(v) = self.writes.get(key) {
            return Ok(Some((Version::MAX, v.clone())));
        }
        reads::spend(&mut self.reads_left, 1)?;
        self.note_key(key);
        self.mvcc.read_versioned(key, self.read_version)
    }

    /// Reads `key` as of the snapshot, seeing this transaction's own writes.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        reads::spend(&mut self.reads_left, 1)?;
        self.note_key(key);
        Ok(self.mvcc.read_at(key, self.read_version)?.flatten())
    }

    /// Buffers a write.
    pub fn set(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    /// Buffers a delete.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// What a full scan of the table rows under `prefix` should read (see [`columns`]): a
    /// column snapshot when one is valid for this transaction, a builder for one, or storage.
    /// Counts as a scan of the table for validation.
    pub fn column_lookup(&mut self, prefix: &[u8]) -> columns::Lookup {
        self.column_lookup_with(prefix, true)
    }

    /// The column snapshot of the table rows under `prefix`, if one is ready and valid for
    /// this transaction (see [`columns`]); neither starts a build nor counts as a full scan
    /// for deciding on one. Counts as a scan of the table for validation.
    pub fn column_snapshot(&mut self, prefix: &[u8]) -> Option<Arc<columns::ColumnSnapshot>> {
        match self.column_lookup_with(prefix, false) {
            columns::Lookup::Ready(snapshot) => Some(snapshot),
            _ => None,
        }
    }

    fn column_lookup_with(&mut self, prefix: &[u8], build: bool) -> columns::Lookup {
        self.note_domain(prefix);
        if domain(prefix) != prefix {
            return columns::Lookup::Skip;
        }
        if self.has_writes_under(prefix) {
            return columns::Lookup::Skip;
        }
        self.mvcc.columns.lookup(&domain(prefix), self.read_version, build)
    }

    /// Visible pairs whose logical key starts with `prefix`, in key order, own writes included.
    pub fn scan_prefix(&mut self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.for_each_prefix(prefix, |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `f` with each visible pair under `prefix`, in key order, until it returns false.
    /// Streams from storage: memory use does not grow with the number of keys.
    pub fn for_each_prefix(&mut self, prefix: &[u8], f: impl FnMut(&[u8], &[u8]) -> Result<bool>) -> Result<()> {
        self.for_each_from(prefix, None, f)
    }

    /// Up to `limit` visible pairs under `prefix` whose keys come after `after`, in key order.
    /// Repeated calls page through a prefix without holding a storage iterator between pages.
    pub fn scan_page(&mut self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::with_capacity(limit.min(1024));
        self.for_each_from(prefix, after, |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Like [`Self::for_each_prefix`], starting after the logical key `after` when given.
    pub fn for_each_from(
        &mut self,
        prefix: &[u8],
        after: Option<&[u8]>,
        f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.for_each_range(prefix, after, None, None, f)
    }

    /// Visible pairs under `prefix` with keys in `[lower, upper)` (each bound optional), after
    /// `after` when given, in key order, until `f` returns false.
    pub fn for_each_range(
        &mut self,
        prefix: &[u8],
        after: Option<&[u8]>,
        lower: Option<&[u8]>,
        upper: Option<&[u8]>,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.note_domain(prefix);
        let _gate = self.mvcc.segments.gate.shared();
        let end = match upper {
            Some(u) => Some(u.to_vec()),
            None => prefix_end(prefix),
        };
        let own_start = match (after, lower) {
            (Some(a), _) => Bound::Excluded(a),
            (None, Some(l)) => Bound::Included(l),
            (None, None) => Bound::Included(prefix),
        };
        let own_end = match &end {
            Some(e) => Bound::Excluded(e.as_slice()),
            None => Bound::Unbounded,
        };
        if let (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e)) = (&own_start, &own_end) {
            if s >= e {
                return Ok(());
            }
        }
        let own: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            self.writes.range::<[u8], _>((own_start, own_end)).map(|(k, v)| (k.clone(), v.clone())).collect();
        reads::spend(&mut self.reads_left, own.len())?;
        let mut own = own.into_iter().peekable();
        let read_version = self.read_version;
        // Emits own writes ordered at or before `upto` (all of them when None); false = stop.
        type Own = std::iter::Peekable<std::vec::IntoIter<(Vec<u8>, Option<Vec<u8>>)>>;
        type Visit<'v> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'v;
        let emit_own = |upto: Option<&[u8]>, own: &mut Own, f: &mut Visit| -> Result<bool> {
            while let Some((k, _)) = own.peek() {
                if upto.is_some_and(|u| k.as_slice() > u) {
                    break;
                }
                if let Some((k, Some(v))) = own.next() {
                    if !f(&k, &v)? {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        };
        let storage_start = match (after, lower) {
            (Some(a), _) => {
                let mut start = a.to_vec();
                start.extend_from_slice(&[0xff; 8]);
                Bound::Excluded(start)
            }
            (None, Some(l)) => Bound::Included(l.to_vec()),
            (None, None) => Bound::Included(prefix.to_vec()),
        };
        let storage_end = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        // The newest visible version of each key comes first; later versions of the same key
        // are skipped. `last_key` is reused to avoid an allocation per row. A key with many
        // versions in a row to skip (one rewritten often since the last garbage collection)
        // is jumped over with a new seek instead.
        let mut last_key: Vec<u8> = Vec::new();
        let mut have_last = false;
        let mut stopped = false;
        let mut skipped = 0;
        let writes = &self.writes;
        let reads_left = &mut self.reads_left;
        let no_own_writes = writes.is_empty();
        let mut start = storage_start;
        loop {
            let mut restart = None;
            self.mvcc.scan_layout((start, storage_end.clone()), &mut |physical, stored, _| {
                reads::spend(reads_left, 1)?;
                let (logical, version) = split_physical(physical)?;
                let seen = have_last && last_key.as_slice() == logical;
                if version > read_version || seen {
                    skipped += 1;
                    if skipped >= SEEK_AFTER_SKIPPING {
                        skipped = 0;
                        restart = Some(if seen {
                            let mut after = logical.to_vec();
                            after.extend_from_slice(&[0xff; 8]);
                            Bound::Excluded(after)
                        } else {
                            Bound::Included(physical_key(logical, read_version))
                        });
                        return Ok(false);
                    }
                    return Ok(true);
                }
                skipped = 0;
                last_key.clear();
                last_key.extend_from_slice(logical);
                have_last = true;
                if no_own_writes {
                    if let Some(value) = decode_stored(stored)? {
                        if !f(logical, value)? {
                            stopped = true;
                            return Ok(false);
                        }
                    }
                    return Ok(true);
                }
                if !emit_own(Some(logical), &mut own, &mut f)? {
                    stopped = true;
                    return Ok(false);
                }
                if writes.contains_key(logical) {
                    return Ok(true);
                }
                if let Some(value) = decode_stored(stored)? {
                    if !f(logical, value)? {
                        stopped = true;
                        return Ok(false);
                    }
                }
                Ok(true)
            })?;
            match restart {
                Some(next) if !stopped => start = next,
                _ => break,
            }
        }
        if !stopped {
            emit_own(None, &mut own, &mut f)?;
        }
        Ok(())
    }

    /// Commits: the writes are validated against every commit made after the snapshot,
    /// proposed and applied (see [`replication`]). Returns the commit version (None for a
    /// read-only transaction).
    pub fn commit(mut self) -> Result<Option<Version>> {
        if self.writes.is_empty() {
            return Ok(None);
        }
        let request = CommitRequest {
            read_version: self.read_version,
            writes: std::mem::take(&mut self.writes).into_iter().collect(),
            read_keys: std::mem::take(&mut self.read_keys).into_iter().collect(),
            read_domains: std::mem::take(&mut self.read_domains).into_iter().collect(),
        };
        self.mvcc.commit(request).map(Some)
    }

    /// Marks the current state of the transaction's writes, to return to with
    /// [`Transaction::rollback_to`].
    pub fn savepoint(&self) -> Savepoint {
        Savepoint { writes: self.writes.clone() }
    }

    /// Undoes every write made since `savepoint`. Reads stay recorded: validating more reads
    /// than needed can only cause a spurious conflict, never a missed one.
    pub fn rollback_to(&mut self, savepoint: &Savepoint) {
        self.writes = savepoint.writes.clone();
    }

    /// Discards the transaction's writes.
    pub fn rollback(self) {
        drop(self)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let mut active = lock(&self.mvcc.active);
        if let Some(count) = active.get_mut(&self.read_version) {
            *count -= 1;
            if *count == 0 {
                active.remove(&self.read_version);
            }
        }
    }
}

#[cfg(test)]
mod column_tests;
#[cfg(test)]
mod gc_tests;
#[cfg(test)]
mod segment_tests;
#[cfg(test)]
mod tests;

/// The largest node id: [`Mvcc::unique_id`] keeps the id in its low 8 bits.
pub const MAX_NODE_ID: u64 = 255;

impl Mvcc {
    /// A cluster-unique, per node increasing 63-bit id, e.g. for hidden row ids (rows of
    /// different nodes must never share one): the high 55 bits count HLC time since
    /// 2020-01-01 in units of 2^-24 s (about 60 ns; they last until the 2080s), strictly
    /// increasing on this node, and the low 8 bits are this node's id.
    pub fn unique_id(&self) -> i64 {
        const NTP64_2020: u64 = 1_577_836_800 << 32;
        let time = self.hlc.new_timestamp().get_time().as_u64().saturating_sub(NTP64_2020) >> 8;
        let previous = self
            .last_unique_id
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(time.max(last + 1)))
            .unwrap_or_else(|last| last);
        let high = time.max(previous + 1) & ((1 << 55) - 1);
        let node = self.replicator.get().map_or(0, |r| r.node_id()) & MAX_NODE_ID;
        ((high << 8) | node) as i64
    }
}
