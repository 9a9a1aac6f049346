//! Garbage collection of old versions.
//!
//! A version can go once no snapshot can read it: for each logical key, everything older than
//! the newest version at or below the low watermark (the oldest snapshot in use), and that
//! version too when it is a tombstone. GC is local to a node and changes nothing any reader can
//! see, so it is not replicated.

use super::{decode_stored, split_physical, Mvcc};
use crate::error::Result;
use crate::storage::keyspace::Keyspace;
use crate::storage::StorageBatch;
use std::collections::BTreeSet;
use std::ops::Bound;

const GC_BATCH: usize = 10_000;

impl Mvcc {
    /// Removes versions no snapshot can read; returns how many were removed.
    pub fn gc(&self) -> Result<usize> {
        self.gc_retiring(&[])
    }

    /// Like [`Mvcc::gc`], and also removes every version of the keys under `retired`:
    /// keyspaces nobody reads any more (a dropped or truncated table's), as seen by a
    /// transaction from [`Mvcc::begin_oldest`], so that no snapshot still reads them.
    pub fn gc_retiring(&self, retired: &[Vec<u8>]) -> Result<usize> {
        let retired: BTreeSet<&[u8]> = retired.iter().map(Vec::as_slice).collect();
        for prefix in &retired {
            self.columns.forget(prefix);
        }
        // Retired prefixes are table prefixes, none a prefix of another: the greatest one at
        // or below a key is the only one the key can start with.
        let is_retired = |logical: &[u8]| {
            retired
                .range::<[u8], _>((Bound::Unbounded, Bound::Included(logical)))
                .next_back()
                .is_some_and(|p| logical.starts_with(p))
        };
        let _maintenance = super::lock(&self.segments.maintenance);
        let watermark = self.low_watermark();
        let mut removed = 0;
        let mut batch = StorageBatch::default();
        let mut current: Option<Vec<u8>> = None;
        // Whether the current key already has its visible-at-watermark version kept.
        let mut settled = false;
        // A tombstone to remove once every older version of its key is queued: removed last,
        // so a concurrent scan (a Raft snapshot being built) that still sees an older version
        // of the key also sees the tombstone above it, never a deleted row come back. Kept
        // when a segment holds an older version of its key (only sealing removes that one).
        let mut tombstone: Option<Vec<u8>> = None;
        let start = Bound::Included(vec![Keyspace::FIRST_LOGICAL]);
        {
            let _gate = self.segments.gate.shared();
            self.scan_layout_with((start, Bound::Unbounded), false, &mut |physical, stored, from_segment| {
                let (logical, version) = split_physical(physical)?;
                if current.as_deref() != Some(logical) {
                    if let Some(t) = tombstone.take() {
                        batch.delete(t);
                    }
                    current = Some(logical.to_vec());
                    settled = false;
                }
                if from_segment {
                    // Sealed: left to sealing, and it keeps a tombstone above it. Row versions
                    // below it are garbage only if it is at or below the watermark.
                    tombstone = None;
                    settled |= version <= watermark;
                } else if is_retired(logical) {
                    batch.delete(physical.to_vec());
                } else if version <= watermark {
                    if settled {
                        batch.delete(physical.to_vec());
                    } else {
                        settled = true;
                        if decode_stored(stored)?.is_none() {
                            tombstone = Some(physical.to_vec());
                        }
                    }
                }
                if batch.ops.len() >= GC_BATCH {
                    removed += batch.ops.len();
                    self.storage.apply(std::mem::take(&mut batch))?;
                }
                Ok(true)
            })?;
        }
        if let Some(t) = tombstone {
            batch.delete(t);
        }
        removed += batch.ops.len();
        if !batch.is_empty() {
            self.storage.apply(batch)?;
        }
        let retired: Vec<&[u8]> = retired.into_iter().collect();
        self.drop_segments_under(&retired)?;
        Ok(removed)
    }
}
