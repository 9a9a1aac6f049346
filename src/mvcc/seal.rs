//! Sealing: moving the settled versions of a table into segments (see [`super::segments`]).
//!
//! The walk goes through the table's keys in order, merged from the row layout and the
//! segments. Runs of keys between segments become new segments once they hold
//! [`MIN_SEAL_ROWS`] rows; a segment whose range has settled versions in the row layout (late
//! rows, updates, deletes) is rewritten with them folded in; a segment of fewer than half
//! [`MAX_SEGMENT_ROWS`] rows absorbs the run after it, and the next segment too when both fit
//! in one, so a table's newest segment grows instead of a tail of small ones piling up.
//!
//! A pass that did all its work remembers its watermark: while nothing is written to the
//! table above it, another pass with the same limits would find the same state, and returns
//! at once instead of walking (and decoding) the whole table again.

use super::segments::{Meta, Reserve, SegmentCodec, SegmentRow};
use super::{decode_stored, lock, split_physical, Mvcc, Version, WriteBatch};
use crate::error::Result;
use crate::storage::keyspace::Keyspace;
use crate::storage::StorageBatch;
use std::ops::Bound;
use std::sync::Arc;

/// Rows per segment at most: a rewrite splits larger ranges.
pub const MAX_SEGMENT_ROWS: usize = 8192;

/// Fewest rows of one series (keys alike but for their last eight bytes, the time) that a
/// batch must bring for them to go straight into a segment when it is applied.
pub const APPLY_SEAL_ROWS: usize = 256;

/// Fewest new rows sealed at once: a smaller run of rows between segments stays in the row
/// layout (the mutable head) until it grows.
pub const MIN_SEAL_ROWS: usize = 1024;

/// What sealing did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealStats {
    /// Segments written and replaced.
    pub written: usize,
    pub replaced: usize,
    /// Rows now in the written segments.
    pub rows: usize,
    /// Row-layout versions removed.
    pub removed: usize,
}

/// Segment sizes for [`Mvcc::seal_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealLimits {
    /// Fewest new rows sealed at once.
    pub min_rows: usize,
    /// Most rows in a segment.
    pub max_rows: usize,
}

impl Default for SealLimits {
    fn default() -> Self {
        SealLimits { min_rows: MIN_SEAL_ROWS, max_rows: MAX_SEGMENT_ROWS }
    }
}

/// A range being rebuilt: the segments it replaces, the rows it seals, the row versions it
/// removes.
#[derive(Default)]
struct Work {
    replaces: Vec<Arc<Meta>>,
    rows: Vec<SegmentRow>,
    deletes: Vec<Vec<u8>>,
    /// Rows that were in the row layout, and whether anything in the replaced segments' ranges
    /// changes.
    new_rows: usize,
    dirty: bool,
}

impl Mvcc {
    /// Seals the versions under `prefix` at or below the low watermark into segments encoded
    /// by `codec` (see the module documentation): runs of at least [`MIN_SEAL_ROWS`] rows
    /// between segments become segments, a segment with rows or deletes of its range in the
    /// row layout is rewritten, and a small segment absorbs the run after it.
    ///
    /// Per key, versions come newest first: row versions above the watermark stay; the first
    /// version at or below it is the one sealed (a tombstone seals nothing), and every row
    /// version at or below it goes. A segment row is sealed again when nothing newer at or below
    /// the watermark hides it, whatever its version, so rewriting a segment never loses a row.
    pub fn seal(&self, prefix: &[u8], codec: &Arc<dyn SegmentCodec>) -> Result<SealStats> {
        self.seal_with(prefix, codec, SealLimits::default())
    }

    /// [`Mvcc::seal`] with other segment sizes.
    pub fn seal_with(&self, prefix: &[u8], codec: &Arc<dyn SegmentCodec>, limits: SealLimits) -> Result<SealStats> {
        let _maintenance = lock(&self.segments.maintenance);
        let watermark = self.low_watermark();
        if self.sealed_unchanged(prefix, limits) {
            return Ok(SealStats::default());
        }
        let end = crate::storage::prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let range = (Bound::Included(prefix.to_vec()), end);
        // Only this sealing changes segments while it runs (it holds `maintenance`), and it
        // only replaces segments the walk has passed: no need to hold the gate.
        let metas: Vec<Arc<Meta>> =
            self.segments.overlapping(&range).into_iter().filter(|m| m.first.starts_with(prefix)).collect();
        let mut walk = SealWalk {
            mvcc: self,
            codec,
            limits,
            metas,
            next_meta: 0,
            inside: None,
            work: Work::default(),
            stats: SealStats::default(),
            given_up: false,
        };
        let mut key: Vec<u8> = Vec::new();
        let mut versions = KeyVersions::default();
        let mut have_key = false;
        let mut failed = Ok(());
        self.scan_layout(range, &mut |physical, stored, from_segment| {
            let (logical, version) = split_physical(physical)?;
            if !have_key || logical != key.as_slice() {
                if have_key {
                    let (sealed, deletes) = std::mem::take(&mut versions).settle();
                    if let Err(e) = walk.key(&key, sealed, deletes) {
                        failed = Err(e);
                        return Ok(false);
                    }
                }
                key.clear();
                key.extend_from_slice(logical);
                have_key = true;
            }
            let value = || Ok::<_, crate::error::Error>((version, decode_stored(stored)?.map(<[u8]>::to_vec)));
            if from_segment {
                if version > watermark {
                    if versions.above.is_none() && versions.base.is_none() {
                        versions.above = Some(value()?);
                    }
                } else if versions.base.is_none() {
                    versions.base = Some(value()?);
                }
            } else if version <= watermark {
                if versions.base.is_none() {
                    versions.base = Some(value()?);
                    versions.base_in_rows = true;
                }
                versions.deletes.push(physical.to_vec());
            }
            Ok(true)
        })?;
        failed?;
        if have_key {
            let (sealed, deletes) = versions.settle();
            walk.key(&key, sealed, deletes)?;
        }
        let (stats, complete) = walk.finish()?;
        if complete {
            lock(&self.sealed).insert(prefix.to_vec(), (limits, watermark));
        }
        Ok(stats)
    }

    /// Whether sealing `prefix` with `limits` would find the state the last complete pass
    /// left: nothing written to the table (applied or pending) above that pass's watermark.
    fn sealed_unchanged(&self, prefix: &[u8], limits: SealLimits) -> bool {
        let Some(&(sealed_limits, sealed_through)) = lock(&self.sealed).get(prefix) else {
            return false;
        };
        let floor = self.domain_floor.load(std::sync::atomic::Ordering::SeqCst);
        let written = lock(&self.domain_versions).get(super::domain_of(prefix)).copied().unwrap_or(floor);
        sealed_limits == limits && prefix.len() == super::domain_of(prefix).len() && written <= sealed_through
    }
}

/// A version of a key: its version and value (None: a tombstone).
type Found = (Version, Option<Vec<u8>>);

/// What the walk found of one key, newest first.
#[derive(Default)]
struct KeyVersions {
    /// A segment row above the watermark (written after it, or the watermark moved back for
    /// an older snapshot): it stays sealed.
    above: Option<Found>,
    /// The newest version at or below the watermark.
    base: Option<Found>,
    /// Whether `base` is a row version (the first of `deletes`).
    base_in_rows: bool,
    /// Row versions at or below the watermark.
    deletes: Vec<Vec<u8>>,
}

impl KeyVersions {
    /// The version to seal and the row versions to remove. Under a segment row above the
    /// watermark, the base stays in the row layout: older snapshots read it.
    fn settle(mut self) -> (Option<Found>, Vec<Vec<u8>>) {
        match self.above {
            Some(above) => {
                if self.base_in_rows {
                    self.deletes.remove(0);
                }
                (Some(above), self.deletes)
            }
            None => (self.base, self.deletes),
        }
    }
}

/// The state of [`Mvcc::seal`] walking a table's keys.
struct SealWalk<'a> {
    mvcc: &'a Mvcc,
    codec: &'a Arc<dyn SegmentCodec>,
    limits: SealLimits,
    /// The table's segments, in key order; `next_meta` is the first not yet entered.
    metas: Vec<Arc<Meta>>,
    next_meta: usize,
    /// The segment whose range the walk is in.
    inside: Option<Arc<Meta>>,
    work: Work,
    stats: SealStats,
    /// A piece of work was given up: the pass writes nothing more.
    given_up: bool,
}

impl SealWalk<'_> {
    /// The next key: what to seal of it and its row versions to remove.
    fn key(&mut self, key: &[u8], base: Option<Found>, deletes: Vec<Vec<u8>>) -> Result<()> {
        if self.inside.as_ref().is_some_and(|m| key > m.last.as_slice()) {
            self.inside = None;
            self.leave_segment()?;
        }
        // A segment passed without meeting any of its keys (every segment holds a row, so
        // this does not happen): leave it alone, and end the run at it.
        while self.metas.get(self.next_meta).is_some_and(|m| m.last.as_slice() < key) {
            self.next_meta += 1;
            self.end_run()?;
        }
        if self.inside.is_none() {
            if let Some(meta) = self.metas.get(self.next_meta).filter(|m| m.covers(key)).cloned() {
                self.next_meta += 1;
                // A small segment carried this far merges with this one if both fit in one.
                let merge = !self.work.replaces.is_empty() && self.work.rows.len() + meta.count <= self.limits.max_rows;
                if !merge {
                    self.end_run()?;
                }
                self.work.replaces.push(meta.clone());
                self.inside = Some(meta);
            }
        }
        if !deletes.is_empty() {
            self.work.dirty = true;
        }
        self.work.deletes.extend(deletes);
        if let Some((version, Some(value))) = base {
            self.work.rows.push(SegmentRow { key: key.to_vec(), value, version });
            if self.inside.is_none() {
                self.work.new_rows += 1;
            }
        }
        if self.inside.is_none() && self.work.rows.len() >= self.limits.max_rows {
            self.write()?;
        }
        Ok(())
    }

    /// Leaving a segment: a small one goes on into the run after it; a larger one is
    /// rewritten if anything in its range changes.
    fn leave_segment(&mut self) -> Result<()> {
        if self.work.rows.len() < self.limits.max_rows / 2 {
            return Ok(());
        }
        if self.work.dirty || self.work.replaces.len() > 1 {
            self.write()
        } else {
            self.work = Work::default();
            Ok(())
        }
    }

    /// The end of a run of rows between segments: written if it holds enough new rows,
    /// changes a segment it carries, or merges segments.
    fn end_run(&mut self) -> Result<()> {
        let changes = self.work.dirty && !self.work.replaces.is_empty();
        if self.work.new_rows >= self.limits.min_rows || changes || self.work.replaces.len() > 1 {
            self.write()
        } else {
            self.work = Work::default();
            Ok(())
        }
    }

    /// What the walk did, and whether it did all of it (no piece of work was given up).
    fn finish(mut self) -> Result<(SealStats, bool)> {
        if self.inside.take().is_some() {
            self.leave_segment()?;
        }
        self.end_run()?;
        Ok((self.stats, !self.given_up))
    }

    fn write(&mut self) -> Result<()> {
        let work = std::mem::take(&mut self.work);
        if self.given_up {
            return Ok(());
        }
        // Given up (readers stayed inside, or an apply took part of the range): the rest
        // waits for the next pass.
        self.given_up = !self.mvcc.write_work(work, self.codec, self.limits.max_rows, &mut self.stats)?;
        Ok(())
    }
}

impl Mvcc {
    /// Writes one piece of work; false if it was given up (see `Segments::swap`).
    fn write_work(
        &self,
        work: Work,
        codec: &Arc<dyn SegmentCodec>,
        max_rows: usize,
        stats: &mut SealStats,
    ) -> Result<bool> {
        if work.rows.is_empty() && work.replaces.is_empty() && work.deletes.is_empty() {
            return Ok(true);
        }
        let chunks = work.rows.len().div_ceil(max_rows.max(1)).max(1);
        let per_chunk = work.rows.len().div_ceil(chunks).max(1);
        let mut added = Vec::new();
        for rows in work.rows.chunks(per_chunk) {
            let mut meta = Meta::of(rows, codec.tag());
            let block = codec.encode(rows)?;
            meta.bytes = block.len();
            added.push((meta, block));
        }
        let (written, rows) = (added.len(), work.rows.len());
        let (replaced, removed) = (work.replaces.len(), work.deletes.len());
        let batch = StorageBatch { ops: work.deletes.into_iter().map(|k| (k, None)).collect() };
        if !self.segments.swap(self.storage.as_ref(), batch, &work.replaces, added)? {
            return Ok(false);
        }
        stats.written += written;
        stats.rows += rows;
        stats.replaced += replaced;
        stats.removed += removed;
        Ok(true)
    }

    /// Removes the segments of keys under the retired `prefixes` (retried by the next
    /// garbage collection if readers stay inside too long).
    pub(super) fn drop_segments_under(&self, prefixes: &[&[u8]]) -> Result<()> {
        let doomed = self.segments.under(prefixes);
        if !doomed.is_empty() {
            self.segments.swap(self.storage.as_ref(), StorageBatch::default(), &doomed, Vec::new())?;
        }
        Ok(())
    }
}

/// The rows of a batch stored as segments when it is applied (see [`Mvcc::segments_of_batch`]).
pub(super) struct BatchSegments {
    /// For each write of the batch, whether a segment holds it.
    pub(super) taken: Vec<bool>,
    /// Storage writes: each block, then its header (headers are what is loaded at start-up).
    pub(super) records: Vec<(Vec<u8>, Vec<u8>)>,
    /// The new segments, whose ranges are reserved until they are stored.
    pub(super) metas: Vec<Meta>,
}

/// The series of a write: its key but the last eight bytes, for a row (not a delete).
fn series_head(write: &(Vec<u8>, Option<Vec<u8>>)) -> Option<&[u8]> {
    let (key, value) = write;
    if value.is_none() || key.first() != Some(&Keyspace::Row.tag()) || key.len() < 5 + 8 {
        return None;
    }
    Some(&key[..key.len() - 8])
}

impl Mvcc {
    /// Sets [`APPLY_SEAL_ROWS`] (0: rows of applied batches always go to the row layout).
    pub fn set_apply_seal_rows(&self, rows: usize) {
        self.apply_seal_rows.store(if rows == 0 { usize::MAX } else { rows }, std::sync::atomic::Ordering::Relaxed);
    }

    /// Rows stored as segments straight away, without passing through the row layout: a
    /// batch's run of at least [`APPLY_SEAL_ROWS`] rows of one series of a table whose
    /// [`super::Derive`] names a codec (a bulk load), in pieces of at most
    /// [`MAX_SEGMENT_ROWS`], each where no segment is yet. The rows keep the batch's version,
    /// so snapshots from before it do not see them. Each replica decides for itself.
    pub(super) fn segments_of_batch(&self, batch: &WriteBatch) -> Result<Option<BatchSegments>> {
        let min = self.apply_seal_rows.load(std::sync::atomic::Ordering::Relaxed).max(1);
        if batch.writes.len() < min {
            return Ok(None);
        }
        let derives = self.derives.read().unwrap_or_else(|e| e.into_inner()).clone();
        if derives.is_empty() {
            return Ok(None);
        }
        let writes = &batch.writes;
        let mut out = BatchSegments { taken: vec![false; writes.len()], records: Vec::new(), metas: Vec::new() };
        let mut i = 0;
        while i < writes.len() {
            let Some(head) = series_head(&writes[i]) else {
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < writes.len() && series_head(&writes[j]) == Some(head) {
                j += 1;
            }
            let codec = if j - i >= min { derives.iter().find_map(|d| d.segment_codec(&head[..5])) } else { None };
            if let Some(codec) = codec {
                let per_chunk = (j - i).div_ceil((j - i).div_ceil(MAX_SEGMENT_ROWS));
                for start in (i..j).step_by(per_chunk) {
                    let end = (start + per_chunk).min(j);
                    if let Err(e) = self.segment_of_writes(batch, start..end, &codec, &mut out) {
                        self.segments.settle_reserved(std::mem::take(&mut out.metas), false);
                        return Err(e);
                    }
                }
            }
            i = j;
        }
        Ok(out.taken.contains(&true).then_some(out))
    }

    fn segment_of_writes(
        &self,
        batch: &WriteBatch,
        range: std::ops::Range<usize>,
        codec: &Arc<dyn SegmentCodec>,
        out: &mut BatchSegments,
    ) -> Result<()> {
        let rows: Vec<SegmentRow> = batch.writes[range.clone()]
            .iter()
            .filter_map(|(key, value)| {
                Some(SegmentRow { key: key.clone(), value: value.clone()?, version: batch.version })
            })
            .collect();
        let block = match codec.encode(&rows) {
            Ok(block) => block,
            Err(e) => {
                // The rows go to the row layout instead: an apply must not fail for this.
                tracing::warn!(error = %e, "rows of a batch could not be encoded as a segment");
                return Ok(());
            }
        };
        let mut meta = Meta::of(&rows, codec.tag());
        meta.bytes = block.len();
        match self.segments.reserve(&meta) {
            Reserve::Overlaps => return Ok(()),
            Reserve::Exists => {}
            Reserve::New => {
                out.records.push((Meta::data_key(&meta.last), block));
                out.records.push((Meta::head_key(&meta.last), meta.encode_head()));
                out.metas.push(meta);
            }
        }
        out.taken[range].iter_mut().for_each(|t| *t = true);
        Ok(())
    }
}
