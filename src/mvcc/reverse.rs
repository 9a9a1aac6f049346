//! Scans in descending key order (`ORDER BY key DESC LIMIT n` stops after n rows).
//!
//! Going backwards, the versions of one logical key come oldest first (physical keys hold the
//! inverted version), so the visible version of a key is only known when the scan moves past
//! the key: the newest version at or below the snapshot wins.

use super::{decode_stored, split_physical, Transaction};
use crate::error::Result;
use crate::storage::prefix_end;
use std::ops::Bound;

/// A pair visitor; returns false to stop.
type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;
/// Own writes in range, in key order (taken from the end).
type OwnWrites = Vec<(Vec<u8>, Option<Vec<u8>>)>;

impl Transaction {
    /// Visible pairs under `prefix` with keys in `[lower, upper)` (each bound optional) and
    /// before `before` when given, in descending key order, own writes included, until `f`
    /// returns false.
    pub fn for_each_range_rev(
        &mut self,
        prefix: &[u8],
        before: Option<&[u8]>,
        lower: Option<&[u8]>,
        upper: Option<&[u8]>,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.note_domain(prefix);
        let start = lower.unwrap_or(prefix).to_vec();
        // The exclusive end: `before` (a logical key: its versions sort after it), else the
        // upper bound, else the end of the prefix.
        let end = match (before, upper) {
            (Some(b), _) => Some(b.to_vec()),
            (None, Some(u)) => Some(u.to_vec()),
            (None, None) => prefix_end(prefix),
        };
        if end.as_ref().is_some_and(|e| start >= *e) {
            return Ok(());
        }
        let own_end = match &end {
            Some(e) => Bound::Excluded(e.as_slice()),
            None => Bound::Unbounded,
        };
        let mut own: OwnWrites = self
            .writes
            .range::<[u8], _>((Bound::Included(start.as_slice()), own_end))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        super::reads::spend(&mut self.reads_left, own.len())?;
        let read_version = self.read_version;
        let writes = &self.writes;
        // Emits own writes ordered after `key` (all of them when None), newest key first.
        let emit_own = |key: Option<&[u8]>, own: &mut OwnWrites, f: &mut Visit| -> Result<bool> {
            while let Some((k, _)) = own.last() {
                if key.is_some_and(|key| k.as_slice() <= key) {
                    break;
                }
                if let Some((k, Some(v))) = own.pop() {
                    if !f(&k, &v)? {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        };
        // The key being passed and its newest visible value so far (None: a tombstone or no
        // visible version yet).
        let mut current: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
        let mut stopped = false;
        let storage_end = match &end {
            Some(e) => Bound::Excluded(e.clone()),
            None => Bound::Unbounded,
        };
        // Emits a finished key: own writes after it first; the key itself unless the
        // transaction wrote it (its own version was emitted instead).
        let finish = |key: Vec<u8>, value: Option<Vec<u8>>, own: &mut OwnWrites, f: &mut Visit| -> Result<bool> {
            if !emit_own(Some(&key), own, f)? {
                return Ok(false);
            }
            if writes.contains_key(&key) {
                return Ok(true);
            }
            match value {
                Some(v) => f(&key, &v),
                None => Ok(true),
            }
        };
        let mvcc = self.mvcc.clone();
        let _gate = mvcc.segments.gate.shared();
        for item in mvcc.scan_layout_rev((Bound::Included(start.clone()), storage_end)) {
            super::reads::spend(&mut self.reads_left, 1)?;
            let (physical, stored) = item?;
            let (logical, version) = split_physical(&physical)?;
            if current.as_ref().is_some_and(|(k, _)| k.as_slice() != logical) {
                let (k, v) = current.take().unwrap_or_default();
                if !finish(k, v, &mut own, &mut f)? {
                    stopped = true;
                    break;
                }
            }
            let entry = current.get_or_insert_with(|| (logical.to_vec(), None));
            if version <= read_version {
                // Oldest first: each visible version replaces the previous one.
                entry.1 = decode_stored(&stored)?.map(<[u8]>::to_vec);
            }
        }
        if !stopped {
            if let Some((k, v)) = current.take() {
                if !finish(k, v, &mut own, &mut f)? {
                    return Ok(());
                }
            }
            emit_own(None, &mut own, &mut f)?;
        }
        Ok(())
    }
}
