//! What a transaction read, recorded so that work made from the reads can be reused by a
//! later transaction.
//!
//! Planning a statement reads only definitions (tables, types, views, sequences, roles), and
//! its plan is what those definitions said as of the planning snapshot. Every applied commit
//! that writes a definition raises [`Mvcc::definitions_version`]; a plan made at snapshot `p`
//! still holds for a transaction at snapshot `r` while no definition was written after
//! `min(p, r)` and the transaction wrote none itself. A transaction that reuses the plan
//! replays the reads its planning made ([`Transaction::replay_reads`]), so a definition
//! changed before it commits is a serialization failure exactly as if it had planned again.

use super::{domain, Mvcc, Transaction, Version};
use crate::error::{Error, Result};
use crate::storage::keyspace::Keyspace;
use std::sync::atomic::Ordering;

/// Keys and conflict domains read while recording ([`Transaction::record_reads`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reads {
    keys: Vec<Vec<u8>>,
    domains: Vec<Vec<u8>>,
}

impl Reads {
    /// True if everything read was a definition.
    pub fn only_definitions(&self) -> bool {
        self.keys.iter().chain(&self.domains).all(|k| Keyspace::is_definition(k))
    }
}

impl Mvcc {
    /// The version of the last applied commit that wrote a definition (at least the version
    /// the store was opened or last restored at).
    pub fn definitions_version(&self) -> Version {
        self.definitions_version.load(Ordering::SeqCst)
    }

    /// Called before a batch becomes visible: raises [`Mvcc::definitions_version`] if the
    /// batch writes a definition.
    pub(super) fn note_definitions<'k>(&self, version: Version, mut keys: impl Iterator<Item = &'k [u8]>) {
        if keys.any(Keyspace::is_definition) {
            self.definitions_version.fetch_max(version, Ordering::SeqCst);
        }
    }
}

/// Counts `entries` visited against a transaction's limit.
pub(super) fn spend(reads_left: &mut Option<usize>, entries: usize) -> Result<()> {
    match reads_left {
        Some(left) if *left < entries => Err(Error::ReadLimit),
        Some(left) => {
            *left -= entries;
            Ok(())
        }
        None => Ok(()),
    }
}

impl Transaction {
    /// Lets the reads that follow visit at most `entries` entries (each key looked up, each
    /// stored version a scan passes over, and each of the transaction's own writes a scan
    /// takes in) before failing with [`Error::ReadLimit`]; None lifts the limit.
    pub fn limit_reads(&mut self, entries: Option<usize>) {
        self.reads_left = entries;
    }

    /// Records a point read for validation.
    pub(super) fn note_key(&mut self, key: &[u8]) {
        if let Some(r) = &mut self.recording {
            r.keys.push(key.to_vec());
        }
        self.read_keys.insert(key.to_vec());
    }

    /// Records a scan of the conflict domain of `prefix` for validation.
    pub(super) fn note_domain(&mut self, prefix: &[u8]) {
        if let Some(r) = &mut self.recording {
            r.domains.push(domain(prefix));
        }
        self.read_domains.insert(domain(prefix));
    }

    /// Runs `f` and returns, with its result, every read it made.
    pub fn record_reads<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> (T, Reads) {
        let outer = self.recording.replace(Reads::default());
        let result = f(self);
        let mut reads = std::mem::replace(&mut self.recording, outer).unwrap_or_default();
        for list in [&mut reads.keys, &mut reads.domains] {
            list.sort_unstable();
            list.dedup();
        }
        if let Some(outer) = &mut self.recording {
            outer.keys.extend(reads.keys.iter().cloned());
            outer.domains.extend(reads.domains.iter().cloned());
        }
        (result, reads)
    }

    /// Counts `reads` as made by this transaction, for validation at commit.
    pub fn replay_reads(&mut self, reads: &Reads) {
        for key in &reads.keys {
            self.note_key(key);
        }
        for d in &reads.domains {
            self.note_domain(d);
        }
    }

    /// True if this transaction wrote a definition (its own reads of definitions see it).
    pub fn wrote_definitions(&self) -> bool {
        Keyspace::DEFINITIONS.iter().any(|k| self.has_writes_under(&[k.tag()]))
    }

    /// True if the definitions this snapshot sees are those a snapshot at `version` saw:
    /// none was written after the older of the two, and none by this transaction.
    pub fn definitions_as_of(&self, version: Version) -> bool {
        self.mvcc.definitions_version() <= version.min(self.read_version) && !self.wrote_definitions()
    }
}
