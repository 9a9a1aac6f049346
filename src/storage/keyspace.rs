//! The keyspaces of storage: the first byte of every key says which one it belongs to.
//!
//! This is the one list of them. The tags are the discriminants of [`Keyspace`], so the
//! compiler refuses two keyspaces with the same tag; the records of the unversioned
//! [`Keyspace::Local`] keyspace are listed in [`Local`] and checked here, at compile time, to
//! be distinct and prefix-free. Everything else builds keys through these types rather than
//! from bytes of its own.

use super::keycode;
use crate::types::Value;

/// A keyspace, by its tag (the first byte of its keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Keyspace {
    /// This node's own unversioned records, outside MVCC (see [`Local`]).
    Local = 0x00,
    /// Table definitions, by name (JSON).
    Catalog = 0x01,
    /// Rows: table id, then primary key.
    Row = 0x02,
    /// Index entries: table id, index id, indexed values (and primary key).
    Index = 0x03,
    /// Counters, retired key prefixes and cluster records (members' addresses).
    Meta = 0x04,
    /// Roles and their grants.
    Role = 0x05,
    /// User-defined types.
    Type = 0x06,
    /// Sequences.
    Sequence = 0x07,
    /// Views.
    View = 0x08,
    /// Time-series summaries kept on apply: table id, then grain and bucket
    /// (see `timeseries::summary`).
    Summary = 0x09,
    /// Changes waiting to be pushed to the cloud, on an edge: one record per captured batch,
    /// by version (see `sync::outbox`).
    Outbox = 0x0A,
    /// On the cloud, the last-writer-wins stamp of each row written by sync: `Row` key without
    /// its tag (see `sync::cloud`).
    Stamp = 0x0B,
}

impl Keyspace {
    /// The tag: the first byte of every key of this keyspace.
    pub const fn tag(self) -> u8 {
        self as u8
    }

    /// The keyspaces that hold definitions (tables, roles, types, sequences, views):
    /// everything planning a statement reads.
    pub const DEFINITIONS: [Keyspace; 5] =
        [Keyspace::Catalog, Keyspace::Role, Keyspace::Type, Keyspace::Sequence, Keyspace::View];

    /// True for a key of one of the [`Keyspace::DEFINITIONS`].
    pub fn is_definition(key: &[u8]) -> bool {
        key.first().is_some_and(|tag| Keyspace::DEFINITIONS.iter().any(|k| k.tag() == *tag))
    }

    /// The first tag of the versioned (MVCC) keyspaces: every logical key sorts at or after it.
    pub const FIRST_LOGICAL: u8 = Keyspace::Catalog.tag();

    /// A key of this keyspace: the tag, then `rest`.
    pub fn key(self, rest: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + rest.len());
        key.push(self.tag());
        key.extend_from_slice(rest);
        key
    }

    /// The key of the record called `name` in this keyspace (the name is order-preserving
    /// encoded text, so records never collide with one another or with a prefix of another).
    pub fn record(self, name: &str) -> Vec<u8> {
        let mut key = vec![self.tag()];
        keycode::encode_value(&Value::Text(name.to_string()), &mut key);
        key
    }
}

/// In [`Keyspace::Meta`], the raw name before a member's id (8 bytes, big-endian) in the key
/// of its internode address. Other records of the keyspace have encoded names
/// ([`Keyspace::record`]), which start with a type tag that is never a lowercase letter.
pub const MEMBER_ADDRESS: &[u8] = b"member/";

/// The records of [`Keyspace::Local`]: unversioned, written by the engine itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    /// The version of the last batch applied.
    Applied,
    /// The index of the last Raft entry applied.
    RaftApplied,
    /// The redo record of a commit path that no longer exists; only looked for, to refuse a
    /// database that holds one.
    LegacyRedo,
    /// The version of the backup a data directory was restored from, until the node first
    /// starts on it (`node::backup`).
    Restored,
    /// The family of sealed-segment headers: this key, then the segment's last logical key
    /// (`mvcc::segments`).
    SegmentHead,
    /// The family of sealed-segment bodies, keyed like [`Local::SegmentHead`].
    SegmentData,
    /// Where earlier versions kept [`Local::Applied`] and [`Local::RaftApplied`]; moved when
    /// the engine opens (see `mvcc::move_applied_records`).
    LegacyApplied,
    LegacyRaftApplied,
}

impl Local {
    const ALL: [Local; 8] = [
        Local::Applied,
        Local::RaftApplied,
        Local::LegacyRedo,
        Local::Restored,
        Local::SegmentHead,
        Local::SegmentData,
        Local::LegacyApplied,
        Local::LegacyRaftApplied,
    ];

    /// The record's key.
    ///
    /// [`Local::Applied`] and [`Local::RaftApplied`] are written by every commit. sled rewrites
    /// a whole leaf (up to 16 keys) when it consolidates a key's updates, so they sort after the
    /// segment families (`~` follows every letter): their leaf holds small segment headers and
    /// catalog records, not segment bodies.
    pub const fn key(self) -> &'static [u8] {
        match self {
            Local::Applied => b"\x00~applied",
            Local::RaftApplied => b"\x00~raft",
            Local::LegacyApplied => b"\x00applied",
            Local::LegacyRaftApplied => b"\x00raft",
            Local::LegacyRedo => b"\x00redo",
            Local::Restored => b"\x00restored",
            Local::SegmentHead => b"\x00segh",
            Local::SegmentData => b"\x00segd",
        }
    }
}

/// Whether `a` is a prefix of `b` (or equal to it).
const fn is_prefix(a: &[u8], b: &[u8]) -> bool {
    if a.len() > b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// Every local record lives in the local keyspace, and none is a prefix of another.
const _: () = {
    let mut i = 0;
    while i < Local::ALL.len() {
        let key = Local::ALL[i].key();
        assert!(key.len() > 1 && key[0] == Keyspace::Local.tag(), "a local record outside the local keyspace");
        let mut j = 0;
        while j < Local::ALL.len() {
            assert!(i == j || !is_prefix(key, Local::ALL[j].key()), "two local records overlap");
            j += 1;
        }
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_by_every_commit_sort_after_segments() {
        for family in [Local::SegmentHead, Local::SegmentData] {
            let last_segment = [family.key(), &[0xff; 4]].concat();
            assert!(Local::Applied.key() > last_segment.as_slice());
            assert!(Local::RaftApplied.key() > last_segment.as_slice());
        }
        assert!(Local::Applied.key() < [Keyspace::Catalog.tag()].as_slice());
    }

    #[test]
    fn records_of_different_names_never_prefix_each_other() {
        let a = Keyspace::Meta.record("member/1");
        let b = Keyspace::Meta.record("member/10");
        assert_ne!(a, b);
        assert!(!b.starts_with(&a) && !a.starts_with(&b));
        assert_eq!(a[0], Keyspace::Meta.tag());
        // Raw member address names never meet encoded record names.
        assert_ne!(a[1], MEMBER_ADDRESS[0]);
    }
}
