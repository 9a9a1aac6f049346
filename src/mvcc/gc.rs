//! Garbage collection of old versions.
//!
//! A version can go once no snapshot can read it: for each logical key, everything older than
//! the newest version at or below the low watermark (the oldest snapshot in use), and that
//! version too when it is a tombstone. GC is local to a node and changes nothing any reader can
//! see, so it is not replicated.
//!
//! Only writes make garbage, so a pass visits only the key ranges written since a pass last
//! covered them ([`GcMarks`]), not every key: a table nobody writes costs nothing, and a hot
//! row of a large table costs one short range read. Every key is visited after start-up (the
//! writes before it were not marked) and after a Raft snapshot was installed, until a pass
//! whose watermark reached the applied or installed version has.

use super::{decode_stored, domain_of, split_physical, Mvcc, Version};
use crate::error::Result;
use crate::storage::keyspace::Keyspace;
use crate::storage::StorageBatch;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Removals per storage batch: a pass's scan stops after each and resumes at the next key.
const GC_BATCH: usize = 10_000;

/// A range of physical keys.
type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Most key ranges marked at once; past it, their domains are marked whole instead.
const MAX_MARKED_RANGES: usize = 65_536;

/// Most writes of one batch that one marked range covers.
const RANGE_WRITES: usize = 256;

/// Where garbage may be: the key ranges written since a garbage collection pass last covered
/// them, each with the newest version written in it. A pass whose watermark is below that
/// version keeps the mark: the version it leaves behind is not garbage yet.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct GcMarks {
    /// Every key, up to this version: at start-up (the applied version) and after a snapshot
    /// was installed (its version). A pass whose watermark is below it keeps it, like any
    /// other mark: readers from before an install may hold the watermark back.
    pub(super) everything: Option<Version>,
    /// First logical key of a range → its last logical key and newest version.
    pub(super) ranges: BTreeMap<Vec<u8>, (Vec<u8>, Version)>,
    /// Domains (tables, indexes) marked whole, when there were too many ranges.
    pub(super) domains: BTreeMap<Vec<u8>, Version>,
}

impl GcMarks {
    pub(super) fn everything(through: Version) -> Self {
        GcMarks { everything: Some(through), ..GcMarks::default() }
    }

    /// Marks the logical keys of a batch written at `version`. Runs of ascending keys of one
    /// series (alike but for their last eight bytes, as a time-series table's) make one range;
    /// a bulk load of new keys covers no older key with it.
    pub(super) fn mark<'k>(&mut self, version: Version, keys: impl Iterator<Item = &'k [u8]>) {
        let mut run: Option<(&[u8], &[u8], usize)> = None;
        for key in keys {
            if let Some((first, last, writes)) = &mut run {
                if key >= *last && *writes < RANGE_WRITES && same_series(last, key) {
                    *last = key;
                    *writes += 1;
                    continue;
                }
                self.mark_range(first, last, version);
            }
            run = Some((key, key, 1));
        }
        if let Some((first, last, _)) = run {
            self.mark_range(first, last, version);
        }
    }

    pub(super) fn mark_range(&mut self, first: &[u8], last: &[u8], version: Version) {
        if let Some(marked) = self.domains.get_mut(domain_of(first)) {
            *marked = (*marked).max(version);
            return;
        }
        let (end, newest) = self.ranges.entry(first.to_vec()).or_insert_with(|| (last.to_vec(), version));
        if last > end.as_slice() {
            *end = last.to_vec();
        }
        *newest = (*newest).max(version);
        if self.ranges.len() > MAX_MARKED_RANGES {
            for (first, (_, version)) in std::mem::take(&mut self.ranges) {
                let marked = self.domains.entry(domain_of(&first).to_vec()).or_insert(version);
                *marked = (*marked).max(version);
            }
        }
    }

    /// Puts back the marks a pass took: those it did not settle (newer than its watermark),
    /// or all of them when it failed (`settled` None).
    fn restore(&mut self, taken: GcMarks, settled: Option<Version>) {
        let keep = |version: Version| settled.is_none_or(|watermark| version > watermark);
        if let Some(through) = taken.everything.filter(|through| keep(*through)) {
            self.everything = Some(self.everything.map_or(through, |v| v.max(through)));
        }
        for (domain, version) in taken.domains {
            if keep(version) {
                let marked = self.domains.entry(domain).or_insert(version);
                *marked = (*marked).max(version);
            }
        }
        for (first, (last, version)) in taken.ranges {
            if keep(version) {
                self.mark_range(&first, &last, version);
            }
        }
    }

    /// The physical key ranges to visit, in key order, none overlapping another.
    pub(super) fn visits(&self, retired: &BTreeSet<&[u8]>) -> Vec<KeyRange> {
        if self.everything.is_some() {
            return vec![(Bound::Included(vec![Keyspace::FIRST_LOGICAL]), Bound::Unbounded)];
        }
        // Logical (first, last) ranges; a prefix's last key is the greatest key under it.
        let mut ranges: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        for prefix in retired.iter().copied().chain(self.domains.keys().map(Vec::as_slice)) {
            ranges.push((prefix.to_vec(), None));
        }
        for (first, (last, _)) in &self.ranges {
            if !self.domains.contains_key(domain_of(first)) {
                ranges.push((first.clone(), Some(last.clone())));
            }
        }
        ranges.sort();
        let mut visits: Vec<(Vec<u8>, Bound<Vec<u8>>)> = Vec::new();
        for (first, last) in ranges {
            let end = match last {
                Some(mut last) => {
                    last.extend_from_slice(&[0xff; 8]);
                    Bound::Included(last)
                }
                None => crate::storage::prefix_end(&first).map_or(Bound::Unbounded, Bound::Excluded),
            };
            if let Some((_, previous_end)) = visits.last_mut() {
                if covers(previous_end, Some(&first)) {
                    if !covers(previous_end, end_key(&end)) {
                        *previous_end = end;
                    }
                    continue;
                }
            }
            visits.push((first, end));
        }
        visits.into_iter().map(|(first, end)| (Bound::Included(first), end)).collect()
    }
}

/// Whether two keys are of one series: of one domain, and alike but for their last eight
/// bytes. (A range is the business of its first key's domain.)
fn same_series(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.len() > 8 && a[..a.len() - 8] == b[..b.len() - 8] && domain_of(a) == domain_of(b)
}

/// Whether the range ending at `end` reaches `key`.
fn covers(end: &Bound<Vec<u8>>, key: Option<&[u8]>) -> bool {
    match (end, key) {
        (Bound::Unbounded, _) => true,
        (_, None) => false,
        (Bound::Included(e), Some(k)) => k <= e.as_slice(),
        (Bound::Excluded(e), Some(k)) => k < e.as_slice(),
    }
}

/// A range's end as a key (None: unbounded).
fn end_key(end: &Bound<Vec<u8>>) -> Option<&[u8]> {
    match end {
        Bound::Included(e) | Bound::Excluded(e) => Some(e),
        Bound::Unbounded => None,
    }
}

/// How a garbage collection pass shares the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// As fast as it can (VACUUM: the statement waits for it).
    AtOnce,
    /// In the background: after each batch of removals it rests three times as long as it
    /// worked, so that removing a dropped table's million keys takes a quarter of one core
    /// instead of stalling the writes beside it. It stops resting while an [`Pace::AtOnce`]
    /// pass waits for it.
    Background,
}

/// Most a background pass rests at once.
const MAX_REST: Duration = Duration::from_secs(1);

impl Mvcc {
    /// Removes versions no snapshot can read; returns how many were removed.
    pub fn gc(&self) -> Result<usize> {
        self.gc_retiring(&[], Pace::AtOnce)
    }

    /// Like [`Mvcc::gc`], and also removes every version of the keys under `retired`:
    /// keyspaces nobody reads any more (a dropped or truncated table's), as seen by a
    /// transaction from [`Mvcc::begin_oldest`], so that no snapshot still reads them.
    pub fn gc_retiring(&self, retired: &[Vec<u8>], pace: Pace) -> Result<usize> {
        let retired: BTreeSet<&[u8]> = retired.iter().map(Vec::as_slice).collect();
        for prefix in &retired {
            self.columns.forget(prefix);
        }
        let _maintenance = match pace {
            Pace::AtOnce => {
                self.segments.hurried.fetch_add(1, Ordering::SeqCst);
                let held = super::lock(&self.segments.maintenance);
                self.segments.hurried.fetch_sub(1, Ordering::SeqCst);
                held
            }
            Pace::Background => super::lock(&self.segments.maintenance),
        };
        let watermark = self.low_watermark();
        let marks = std::mem::take(&mut *super::lock(&self.gc_marks));
        let removed = self.collect(&marks.visits(&retired), &retired, watermark, pace);
        super::lock(&self.gc_marks).restore(marks, removed.as_ref().ok().map(|_| watermark));
        let removed = removed?;
        super::lock(&self.sealed).retain(|prefix, _| !retired.contains(prefix.as_slice()));
        let retired: Vec<&[u8]> = retired.into_iter().collect();
        self.drop_segments_under(&retired)?;
        Ok(removed)
    }

    /// Removes the garbage of the keys in `visits`, and every version under `retired`. The
    /// scan stops at a key after each batch of removals, applies it, and goes on from there:
    /// no storage iterator lives across a write or a rest.
    fn collect(&self, visits: &[KeyRange], retired: &BTreeSet<&[u8]>, watermark: Version, pace: Pace) -> Result<usize> {
        // Retired prefixes are table prefixes, none a prefix of another: the greatest one at
        // or below a key is the only one the key can start with.
        let is_retired = |logical: &[u8]| {
            retired
                .range::<[u8], _>((Bound::Unbounded, Bound::Included(logical)))
                .next_back()
                .is_some_and(|p| logical.starts_with(p))
        };
        let mut removed = 0;
        let mut worked_since = Instant::now();
        for (first, end) in visits {
            let mut start = first.clone();
            loop {
                let mut batch = StorageBatch::default();
                let mut resume: Option<Vec<u8>> = None;
                let mut current: Option<Vec<u8>> = None;
                // Whether the current key already has its visible-at-watermark version kept.
                let mut settled = false;
                // A tombstone to remove once every older version of its key is queued: removed
                // last, so a concurrent scan (a Raft snapshot being built) that still sees an
                // older version of the key also sees the tombstone above it, never a deleted
                // row come back. Kept when a segment holds an older version of its key (only
                // sealing removes that one).
                let mut tombstone: Option<Vec<u8>> = None;
                {
                    let _gate = self.segments.gate.shared();
                    self.scan_layout_with((start, end.clone()), false, &mut |physical, stored, from_segment| {
                        let (logical, version) = split_physical(physical)?;
                        if current.as_deref() != Some(logical) {
                            if let Some(t) = tombstone.take() {
                                batch.delete(t);
                            }
                            if batch.ops.len() >= GC_BATCH {
                                resume = Some(logical.to_vec());
                                return Ok(false);
                            }
                            current = Some(logical.to_vec());
                            settled = false;
                        }
                        if from_segment {
                            // Sealed: left to sealing, and it keeps a tombstone above it. Row
                            // versions below it are garbage only if it is at or below the
                            // watermark.
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
                let Some(key) = resume else { break };
                if pace == Pace::Background && self.segments.hurried.load(Ordering::SeqCst) == 0 {
                    std::thread::sleep((worked_since.elapsed() * 3).min(MAX_REST));
                    worked_since = Instant::now();
                }
                start = Bound::Included(key);
            }
        }
        Ok(removed)
    }
}
