//! Test support shared by the integration tests.
#![allow(dead_code)]

pub mod cluster;
pub mod lin;

use chronos::raft::{LogStore, Snapshot, SnapshotMeta, SnapshotReader};
use std::io::Read;

/// The snapshot a `Ready` asked to restore, read from the store the way a state machine
/// reads it (a chunk at a time); its metadata must be the store's latest.
pub fn stored_snapshot<S: LogStore>(store: &S, meta: SnapshotMeta) -> Snapshot {
    let mut reader = SnapshotReader::open(store).expect("read the store").expect("a stored snapshot");
    assert_eq!(reader.meta(), &meta, "the snapshot to restore is not the store's latest");
    let mut data = Vec::new();
    reader.read_to_end(&mut data).expect("read the snapshot");
    assert_eq!(data.len() as u64, reader.len());
    Snapshot { meta, data }
}
