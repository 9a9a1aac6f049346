//! Commits through replication.
//!
//! Every commit goes through the [`Replicator`] (a single node is a Raft group of one); a
//! commit never writes storage itself. On the node that may commit (the Raft leader) the transaction is validated under the writer token, stamped with the next version
//! and *proposed*; the token is released at once, so the next commit can be validated and
//! proposed while this one is replicated (many commits share one log append and fsync). The
//! commit returns when the batch comes back out of the log, committed, and has been applied
//! here by [`Mvcc::apply_committed`]. Storage only ever holds committed batches.
//!
//! Batches proposed but not yet applied are *pending*: their keys are remembered so that
//! validation of later commits sees them. On any other node the commit is forwarded
//! ([`Replicator::forward`]) to the leader, which validates it the same way
//! ([`Mvcc::commit_request`]) against the snapshot version the transaction read here; the
//! versions mean the same on every node because every node applies the same log.

use super::{domain, lock, stored_writes, stored_writes_of, CommitRequest, Mvcc, Version, WriteBatch, APPLIED_KEY};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Resolves when a proposed batch is committed and applied here (Ok), or will never be.
pub type Waiter = mpsc::Receiver<Result<()>>;

/// How long a commit waits for its batch to come back out of the log before giving up with
/// "status unknown".
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Unversioned key holding the index of the last Raft entry applied to storage, written in
/// the same atomic batch as the entry's data.
pub const RAFT_APPLIED_KEY: &[u8] = crate::storage::keyspace::Local::RaftApplied.key();

/// Where commits go when storage is replicated.
pub trait Replicator: Send + Sync {
    /// This node's id in its group (1 to [`super::MAX_NODE_ID`]).
    fn node_id(&self) -> u64;

    /// Commits `request` on the leader when this node is not the one that commits; returns
    /// the commit version once this node has applied it. None when this node commits itself.
    fn forward(&self, request: &CommitRequest) -> Option<Result<Version>>;

    /// Proposes a validated batch. Called under the writer token, so batches are proposed in
    /// version order.
    fn propose(&self, batch: WriteBatch) -> Result<Waiter>;

    /// Returns once a read started now may be served here linearizably (every write
    /// acknowledged anywhere before the call is applied here).
    fn read_barrier(&self) -> Result<()>;

    /// True when [`Replicator::read_barrier`] would return at once, waiting for nobody.
    fn read_barrier_is_free(&self) -> bool {
        false
    }
}

/// Keys of proposed batches not yet applied, with their versions.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) keys: HashMap<Vec<u8>, Version>,
}

impl Mvcc {
    /// Installs the replicator; from now on commits go through it.
    pub fn set_replicator(&self, replicator: Arc<dyn Replicator>) {
        let _ = self.replicator.set(replicator);
    }

    /// Waits for the replicator's read barrier (nothing before one is installed: there is
    /// nothing to wait for before the node starts).
    pub fn read_barrier(&self) -> Result<()> {
        match self.replicator.get() {
            Some(r) => r.read_barrier(),
            None => Ok(()),
        }
    }

    /// True when [`Mvcc::read_barrier`] would return at once.
    pub fn read_barrier_is_free(&self) -> bool {
        self.replicator.get().is_none_or(|r| r.read_barrier_is_free())
    }

    fn replicator(&self) -> Result<&Arc<dyn Replicator>> {
        self.replicator.get().ok_or_else(|| Error::Internal("a commit before the node started".into()))
    }

    /// Commits a transaction's writes through the replicator: forwarded to the leader, or
    /// validated, proposed and awaited here.
    pub(super) fn commit(&self, request: CommitRequest) -> Result<Version> {
        if let Some(result) = self.replicator()?.forward(&request) {
            return result;
        }
        self.commit_request(&request)
    }

    /// Validates and proposes a commit on the leader (a local one or one forwarded by
    /// another node) and waits until it is applied here. Returns the commit version.
    pub fn commit_request(&self, request: &CommitRequest) -> Result<Version> {
        let replicator = self.replicator()?;
        let (version, waiter) = self.stage_commit(request, |batch| replicator.propose(batch))?;
        match waiter.recv_timeout(COMMIT_TIMEOUT) {
            Ok(Ok(())) => Ok(version),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::CommitUnknown(
                "the commit was not confirmed in time: it may or may not have been applied".into(),
            )),
        }
    }

    /// Validates `request` and stamps it with the next version under the writer token, then
    /// hands the batch to `propose` (still under the token, so that batches are proposed in
    /// version order). Its keys are pending until the batch is applied or abandoned.
    pub fn stage_commit<T>(
        &self,
        request: &CommitRequest,
        propose: impl FnOnce(WriteBatch) -> Result<T>,
    ) -> Result<(Version, T)> {
        let _token = self.writer_token();
        self.validate_request(request)?;
        let version = self.next_version();
        self.last_version.store(version, Ordering::SeqCst);
        {
            let mut pending = lock(&self.pending);
            let mut domains = lock(&self.domain_versions);
            for (key, _) in &request.writes {
                pending.keys.insert(key.clone(), version);
                domains.insert(domain(key), version);
            }
        }
        let batch = WriteBatch { version, writes: request.writes.clone() };
        match propose(batch) {
            Ok(proposed) => Ok((version, proposed)),
            Err(e) => {
                self.forget_pending(&request.writes, version);
                Err(e)
            }
        }
    }

    /// Fails with a serialization error if a commit after `request.read_version` (applied or
    /// pending) wrote a key the request writes or read, or a table it scanned.
    fn validate_request(&self, request: &CommitRequest) -> Result<()> {
        self.validate(
            request.read_version,
            request.writes.iter().map(|(k, _)| k.as_slice()).chain(request.read_keys.iter().map(Vec::as_slice)),
            request.read_domains.iter().map(Vec::as_slice),
        )
    }

    /// Fails with a serialization error if a commit after `read_version`, applied or pending,
    /// wrote one of `keys` (written or read) or a table in `domains` (scanned). Counts the
    /// conflicts for /metrics.
    pub(super) fn validate<'k>(
        &self,
        read_version: Version,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
        domains: impl Iterator<Item = &'k [u8]>,
    ) -> Result<()> {
        let result = self.find_conflict(read_version, keys, domains);
        if result.is_err() {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn find_conflict<'k>(
        &self,
        read_version: Version,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
        domains: impl Iterator<Item = &'k [u8]>,
    ) -> Result<()> {
        let conflict = || Error::Serialization("could not serialize access due to concurrent update".into());
        {
            let written = lock(&self.domain_versions);
            // Domains written before start-up (or a snapshot restore) are not in the map:
            // assume the worst.
            let floor = self.domain_floor.load(Ordering::SeqCst);
            for d in domains {
                if written.get(d).copied().unwrap_or(floor) > read_version {
                    return Err(conflict());
                }
            }
        }
        {
            let pending = lock(&self.pending);
            if keys.clone().any(|key| pending.keys.get(key).is_some_and(|v| *v > read_version)) {
                return Err(conflict());
            }
        }
        for key in keys {
            if self.latest_version(key)?.is_some_and(|v| v > read_version) {
                return Err(conflict());
            }
        }
        Ok(())
    }

    fn forget_pending(&self, writes: &[(Vec<u8>, Option<Vec<u8>>)], version: Version) {
        let mut pending = lock(&self.pending);
        for (key, _) in writes {
            if pending.keys.get(key) == Some(&version) {
                pending.keys.remove(key);
            }
        }
    }

    /// A proposed batch that will never commit (its log entry was replaced): its keys stop
    /// being pending.
    pub fn abandon(&self, batch: &WriteBatch) {
        self.forget_pending(&batch.writes, batch.version);
    }

    /// Applies the committed batch of Raft entry `index`: writes it with the applied index in
    /// one atomic storage batch, makes it visible to new snapshots and wakes commits waiting
    /// for it. Called by the replication driver, in log order, once per entry.
    /// A batch stamped below a version already applied is refused (the same way on every
    /// replica, which all apply the same log): applying it would change what snapshots
    /// already taken see.
    pub fn apply_committed(self: &Arc<Self>, batch: &WriteBatch, index: u64) -> Result<()> {
        let applied = self.applied.load(Ordering::SeqCst);
        if batch.version < applied {
            return Err(Error::Serialization(format!(
                "a batch at version {} arrived after version {applied} was applied",
                batch.version
            )));
        }
        // In order, not atomically: the log holds the batch, and the applied index comes
        // last, so after a crash either it survived with every write before it or the entry
        // is applied again (the same keys with the same values).
        let applied = [
            (APPLIED_KEY.to_vec(), batch.version.to_be_bytes().to_vec()),
            (RAFT_APPLIED_KEY.to_vec(), index.to_be_bytes().to_vec()),
        ];
        let derived = self.derived(batch)?;
        // Rows that go straight into segments are left out of the row versions; the blocks
        // and headers are written after the rows, before the applied markers.
        let sealed = self.segments_of_batch(batch)?;
        let (taken, records, metas) = match sealed {
            Some(s) => (s.taken, s.records, s.metas),
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        let rows = batch.writes.iter().enumerate().filter(|(i, _)| !taken.get(*i).copied().unwrap_or(false));
        let rows = stored_writes_of(batch.version, rows.map(|(_, w)| w));
        let mut writes = rows.chain(stored_writes(&derived)).chain(records).chain(applied).map(|(k, v)| (k, Some(v)));
        self.columns.applying(batch.version, &batch.writes);
        let stored = self.storage.apply_in_order(&mut writes);
        self.segments.settle_reserved(metas, stored.is_ok());
        stored.inspect_err(|_| self.columns.reset(batch.version))?;
        self.forget_pending(&batch.writes, batch.version);
        let written = batch.writes.iter().chain(&derived.writes).map(|(key, _)| key.as_slice());
        lock(&self.gc_marks).mark(batch.version, written);
        {
            let mut domains = lock(&self.domain_versions);
            for (key, _) in &batch.writes {
                let entry = domains.entry(domain(key)).or_insert(batch.version);
                *entry = (*entry).max(batch.version);
            }
        }
        self.note_definitions(batch.version, batch.writes.iter().map(|(key, _)| key.as_slice()));
        let _ = self.hlc.update_with_timestamp(&uhlc::Timestamp::new(uhlc::NTP64(batch.version), *self.hlc.get_id()));
        self.applied.fetch_max(batch.version, Ordering::SeqCst);
        self.last_version.fetch_max(batch.version, Ordering::SeqCst);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.publish(self.applied.load(Ordering::SeqCst));
        Ok(())
    }

    /// Records that Raft entry `index`, which carries no batch, was applied.
    pub fn apply_marker(&self, index: u64) -> Result<()> {
        self.storage.put(RAFT_APPLIED_KEY.to_vec(), index.to_be_bytes().to_vec())
    }

    /// The index of the last Raft entry applied to storage (0 when none).
    pub fn raft_applied_index(&self) -> Result<u64> {
        Ok(match self.storage.get(RAFT_APPLIED_KEY)? {
            Some(bytes) if bytes.len() == 8 => u64::from_be_bytes(bytes.as_slice().try_into().unwrap_or([0; 8])),
            Some(_) => return Err(Error::Corruption("malformed raft applied index".into())),
            None => 0,
        })
    }

    /// Makes `version` the newest visible version and wakes those waiting for it.
    pub(super) fn publish(&self, version: Version) {
        let mut durable = lock(&self.durable);
        *durable = (*durable).max(version);
        drop(durable);
        self.published.notify_all();
    }

    /// Blocks until `version` is visible here (applied), or `timeout` passes; true if it is.
    pub fn wait_visible(&self, version: Version, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut durable = lock(&self.durable);
        while *durable < version {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            durable = self.published.wait_timeout(durable, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// The newest version assigned to a commit here, applied or not.
    pub fn last_version(&self) -> Version {
        self.last_version.load(Ordering::SeqCst).max(self.applied.load(Ordering::SeqCst))
    }
}
