//! Raft snapshots of the MVCC state: taking one at a version, and installing one received from
//! the leader without readers ever seeing a half-installed state.
//!
//! A snapshot at version `V` holds every stored version at or below `V` (physical keys and
//! stored values, in key order), encoded as a batch ([`super::batch`]) while storage is
//! scanned, straight into the Raft log store's chunks on a server. Installing it writes
//! those versions beside the ones already here and publishes `V` only at the end: versions
//! are the staging area. A reader's snapshot is older than `V` (this node had applied less
//! than the snapshot covers), so it never sees a version the install writes, and new readers
//! start at `V` once everything is in place. Nothing a reader may see is deleted: a key that
//! is live here at `V` but absent from the snapshot (the leader's garbage collection removed
//! its versions after a delete, or its table was dropped) gets a tombstone at `V` instead.
//!
//! A crash part-way through is harmless: Raft hands the snapshot over again at restart (the
//! applied index is written last), and installing it again writes the same keys and values.
//! So the versions go in as plain in-order writes (`Storage::apply_in_order`), not atomic
//! batches: sled holds every key of an atomic batch in memory until it is done, which made a
//! follower installing 400 MiB peak at 2.5 GiB (`docs/performance.md`).

use super::batch::{StreamEncoder, StreamReader};
use super::replication::RAFT_APPLIED_KEY;
use super::{decode_stored, lock, split_physical, Mvcc, Version, APPLIED_KEY};
use crate::error::{Error, Result};
use crate::storage::StorageBatch;
use std::io::{Read, Write};
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Unversioned keys (the applied markers) sort below this; everything from it is versioned.
const VERSIONED_START: u8 = 0x01;

/// Storage writes per batch while a snapshot is installed.
const INSTALL_BATCH: usize = 4096;

impl Mvcc {
    /// The state machine as of `version` for a Raft snapshot: every stored version at or
    /// below it (later ones, written while the scan runs, are left out, and garbage
    /// collection keeps what the scan still needs), written to `out` as storage is scanned,
    /// so that it is never held in memory. Runs beside the driver.
    pub fn snapshot_into<W: Write + ?Sized>(self: &Arc<Self>, version: Version, out: &mut W) -> Result<()> {
        let _pin = self.begin_at(version);
        let mut encoder = StreamEncoder::new(version, out)?;
        let start = Bound::Included(vec![VERSIONED_START]);
        let _gate = self.segments.gate.shared();
        // A segment row whose copy the row layout also holds is written once.
        let mut last: Vec<u8> = Vec::new();
        self.scan_layout((start, Bound::Unbounded), &mut |key, value, _| {
            if split_physical(key)?.1 <= version && key != last.as_slice() {
                encoder.push(key, Some(value))?;
                last.clear();
                last.extend_from_slice(key);
            }
            Ok(true)
        })
    }

    /// [`Mvcc::snapshot_into`] a buffer.
    pub fn snapshot_at(self: &Arc<Self>, version: Version) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.snapshot_into(version, &mut out)?;
        Ok(out)
    }

    /// Installs a snapshot taken by [`Mvcc::snapshot_at`] at Raft index `index` (see the
    /// module documentation).
    pub fn restore_snapshot(&self, data: &[u8], index: u64) -> Result<()> {
        self.restore_snapshot_from(&mut || Ok(data), index)
    }

    /// [`Mvcc::restore_snapshot`] from a stream that `open` starts from the beginning (it is
    /// read twice, never held whole).
    pub fn restore_snapshot_from<R: Read>(&self, open: &mut dyn FnMut() -> Result<R>, index: u64) -> Result<()> {
        let snapshot = StreamReader::new(open()?)?;
        let version = snapshot.version();
        let _token = self.writer_token();
        let tombstones = self.live_keys_missing_from(snapshot, version)?;
        let snapshot = StreamReader::new(open()?)?;
        if snapshot.version() != version {
            return Err(Error::Io("the snapshot changed while it was installed".into()));
        }
        let mut batch = StorageBatch::default();
        for write in snapshot {
            let (key, value) = write?;
            if let Some(value) = value {
                batch.put(key, value);
            }
            if batch.ops.len() >= INSTALL_BATCH {
                self.storage.apply_in_order(&mut std::mem::take(&mut batch).ops.into_iter())?;
            }
        }
        for key in tombstones {
            batch.put(super::physical_key(&key, version), vec![0]);
            if batch.ops.len() >= INSTALL_BATCH {
                self.storage.apply_in_order(&mut std::mem::take(&mut batch).ops.into_iter())?;
            }
        }
        self.storage.apply_in_order(&mut batch.ops.into_iter())?;
        // Last: the state is complete up to here.
        let mut markers = StorageBatch::default();
        markers.put(APPLIED_KEY.to_vec(), version.to_be_bytes().to_vec());
        markers.put(RAFT_APPLIED_KEY.to_vec(), index.to_be_bytes().to_vec());
        self.storage.apply(markers)?;
        lock(&self.pending).keys.clear();
        // Every table may have changed.
        lock(&self.domain_versions).clear();
        self.domain_floor.fetch_max(version, Ordering::SeqCst);
        self.definitions_version.fetch_max(version, Ordering::SeqCst);
        *lock(&self.gc_marks) = super::gc::GcMarks::everything(version);
        self.columns.reset(version);
        self.reset_derives();
        self.applied.fetch_max(version, Ordering::SeqCst);
        self.last_version.fetch_max(version, Ordering::SeqCst);
        self.publish(version);
        Ok(())
    }

    /// The logical keys whose newest version here at or below `version` is a value but that
    /// the snapshot does not hold: they were deleted on the leader.
    fn live_keys_missing_from<R: Read>(&self, snapshot: StreamReader<R>, version: Version) -> Result<Vec<Vec<u8>>> {
        let mut snapshot = snapshot.peekable();
        let mut missing = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        let start = Bound::Included(vec![VERSIONED_START]);
        let _gate = self.segments.gate.shared();
        self.scan_layout((start, Bound::Unbounded), &mut |physical, stored, _| {
            let (logical, v) = split_physical(physical)?;
            if v > version || last.as_deref() == Some(logical) {
                return Ok(true);
            }
            last = Some(logical.to_vec());
            if decode_stored(stored)?.is_none() {
                return Ok(true);
            }
            // Skip the snapshot's keys ordered before this one; is this one among them?
            let mut present = false;
            loop {
                let order = match snapshot.peek() {
                    None => break,
                    Some(Ok((key, _))) => split_physical(key)?.0.cmp(logical),
                    Some(Err(_)) => match snapshot.next() {
                        Some(Err(e)) => return Err(e),
                        _ => break,
                    },
                };
                if order == std::cmp::Ordering::Less {
                    snapshot.next();
                    continue;
                }
                present = order == std::cmp::Ordering::Equal;
                break;
            }
            if !present {
                missing.push(logical.to_vec());
            }
            Ok(true)
        })?;
        Ok(missing)
    }
}
