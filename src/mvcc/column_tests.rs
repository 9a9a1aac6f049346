//! Column snapshots against storage: whatever path a full scan takes, it sees the rows a scan
//! of storage at the same version sees.

use super::columns::Lookup;
use super::*;
use crate::storage::memory::MemoryStorage;
use crate::storage::rowcodec::{decode_row, encode_row};
use crate::types::Value;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TABLE: [u8; 5] = [0x02, 0, 0, 0, 9];

fn mvcc() -> Arc<Mvcc> {
    let db = Mvcc::new(Arc::new(MemoryStorage::new())).unwrap();
    super::tests::LoopbackLog::install(&db);
    db
}

fn key(i: u32) -> Vec<u8> {
    let mut out = TABLE.to_vec();
    out.extend_from_slice(&i.to_be_bytes());
    out
}

fn row(i: u32, round: u32) -> Vec<u8> {
    let temp = if (i + round).is_multiple_of(7) { Value::Null } else { Value::Float8(i as f64 / 4.0 + round as f64) };
    let mut values = vec![Value::Int8(i as i64), Value::Text(format!("dev-{}", i % 5)), temp];
    if round % 3 == 1 {
        // Some rows are wider (a column added later) or hold another type.
        values.push(Value::Text(format!("r{round}")));
    }
    encode_row(&values)
}

/// Which path a full scan took.
#[derive(Debug, PartialEq)]
enum Path {
    Storage,
    Built,
    Snapshot,
}

/// The rows storage holds for the transaction, decoded and padded to `width`.
fn storage_rows(txn: &mut Transaction, width: usize) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    txn.for_each_prefix(&TABLE, |_, v| {
        let mut row = decode_row(v)?;
        row.resize(width, Value::Null);
        rows.push(row);
        Ok(true)
    })
    .unwrap();
    rows
}

/// A full scan as the executor runs it.
fn full_scan(txn: &mut Transaction, width: usize) -> (Vec<Vec<Value>>, Path) {
    match txn.column_lookup(&TABLE) {
        Lookup::Ready(snapshot) => {
            let version = txn.read_version();
            let mut rows = Vec::new();
            for chunk in snapshot.chunks() {
                for r in 0..chunk.rows() {
                    if chunk.visible(r, version) {
                        rows.push((0..width).map(|c| chunk.value(r, c)).collect());
                    }
                }
            }
            (rows, Path::Snapshot)
        }
        Lookup::Build(mut builder) => {
            let mut rows = Vec::new();
            txn.for_each_prefix(&TABLE, |k, v| {
                let mut row = decode_row(v)?;
                builder.push(k, &row);
                row.resize(width, Value::Null);
                rows.push(row);
                Ok(true)
            })
            .unwrap();
            builder.finish();
            (rows, Path::Built)
        }
        Lookup::Skip => (storage_rows(txn, width), Path::Storage),
    }
}

fn commit(db: &Arc<Mvcc>, writes: &[(u32, Option<u32>)]) {
    let mut txn = db.begin();
    for &(i, round) in writes {
        match round {
            Some(r) => txn.set(key(i), row(i, r)),
            None => txn.delete(key(i)),
        }
    }
    txn.commit().unwrap();
}

#[test]
fn the_second_full_scan_builds_and_the_third_reads_the_snapshot() {
    let db = mvcc();
    commit(&db, &(0..10).map(|i| (i, Some(0))).collect::<Vec<_>>());
    let paths: Vec<Path> = (0..3).map(|_| full_scan(&mut db.begin(), 3).1).collect();
    assert_eq!(paths, [Path::Storage, Path::Built, Path::Snapshot]);
    assert!(db.column_cache().bytes() > 0);
}

#[test]
fn appends_follow_the_snapshot_and_other_writes_drop_it() {
    let db = mvcc();
    commit(&db, &(0..10).map(|i| (i, Some(0))).collect::<Vec<_>>());
    full_scan(&mut db.begin(), 3);
    full_scan(&mut db.begin(), 3);
    let mut before = db.begin();

    // Rows past the last key are appended: an older reader does not see them, a newer one does.
    commit(&db, &[(10, Some(0)), (11, Some(0))]);
    let (rows, path) = full_scan(&mut before, 3);
    assert_eq!((rows.len(), path), (10, Path::Snapshot));
    let (rows, path) = full_scan(&mut db.begin(), 3);
    assert_eq!((rows.len(), path), (12, Path::Snapshot));
    drop(before);

    // An update of an existing row drops the snapshot.
    commit(&db, &[(3, Some(1))]);
    let mut fresh = db.begin();
    let expected = storage_rows(&mut db.begin(), 3);
    let (rows, path) = full_scan(&mut fresh, 3);
    assert_eq!((rows, path), (expected, Path::Built));
}

#[test]
fn own_writes_and_old_snapshots_read_storage() {
    let db = mvcc();
    commit(&db, &(0..10).map(|i| (i, Some(0))).collect::<Vec<_>>());
    let mut old = db.begin();
    commit(&db, &[(3, None)]);
    full_scan(&mut db.begin(), 3);
    full_scan(&mut db.begin(), 3);
    // Older than the table's last write: the snapshot may not match what it sees.
    let (rows, path) = full_scan(&mut old, 3);
    assert_eq!((rows.len(), path), (10, Path::Storage));

    let mut txn = db.begin();
    txn.set(key(20), row(20, 0));
    let (rows, path) = full_scan(&mut txn, 3);
    assert_eq!((rows.len(), path), (10, Path::Storage));
}

/// Builds a snapshot in a full scan that begins before `writes` commit and reads after.
fn build_around(db: &Arc<Mvcc>, writes: &[(u32, Option<u32>)]) {
    let mut txn = db.begin();
    let Lookup::Build(mut builder) = txn.column_lookup(&TABLE) else { panic!("expected a build") };
    commit(db, writes);
    txn.for_each_prefix(&TABLE, |k, v| {
        builder.push(k, &decode_row(v)?);
        Ok(true)
    })
    .unwrap();
    builder.finish();
}

#[test]
fn a_build_catches_up_with_appends_and_gives_up_on_other_writes() {
    let db = mvcc();
    commit(&db, &(0..10).map(|i| (i, Some(0))).collect::<Vec<_>>());
    full_scan(&mut db.begin(), 3);

    // The build reads at its snapshot while an append commits.
    build_around(&db, &[(10, Some(2))]);
    let (rows, path) = full_scan(&mut db.begin(), 3);
    assert_eq!((rows, path), (storage_rows(&mut db.begin(), 3), Path::Snapshot));

    // A build overtaken by an update is not installed.
    db.column_cache().reset(db.durable_version());
    full_scan(&mut db.begin(), 3);
    build_around(&db, &[(2, Some(3))]);
    assert_eq!(db.column_cache().bytes(), 0);
    // A build abandoned (dropped) lets the next scan build again.
    let mut txn = db.begin();
    let Lookup::Build(builder) = txn.column_lookup(&TABLE) else { panic!("expected a build") };
    drop(builder);
    assert_eq!(full_scan(&mut db.begin(), 3).1, Path::Built);
}

/// A build overtaken by more appends than it may hold (`MAX_PENDING`, 4 KiB in tests) is not
/// installed: the snapshot would miss them.
#[test]
fn a_build_gives_up_past_its_pending_limit() {
    let db = mvcc();
    commit(&db, &(0..10).map(|i| (i, Some(0))).collect::<Vec<_>>());
    full_scan(&mut db.begin(), 3);
    build_around(&db, &(10..200).map(|i| (i, Some(1))).collect::<Vec<_>>());
    assert_eq!(db.column_cache().bytes(), 0);
    let expected = storage_rows(&mut db.begin(), 3);
    let (rows, path) = full_scan(&mut db.begin(), 3);
    assert_eq!((rows.len(), path), (expected.len(), Path::Built));
    assert_eq!(full_scan(&mut db.begin(), 3), (expected, Path::Snapshot));
}

#[test]
fn snapshots_stay_within_the_budget() {
    let db = mvcc();
    commit(&db, &(0..1000).map(|i| (i, Some(0))).collect::<Vec<_>>());
    db.column_cache().set_budget(1000);
    for _ in 0..3 {
        assert_ne!(full_scan(&mut db.begin(), 3).1, Path::Snapshot);
    }
    assert_eq!(db.column_cache().bytes(), 0);
    db.column_cache().set_budget(0);
    assert_eq!(full_scan(&mut db.begin(), 3).1, Path::Storage);
}

/// Random commits (appends, updates, deletes, wider rows) and readers at random past
/// versions: every full scan, whichever path it takes, returns what storage holds.
#[test]
fn full_scans_always_match_storage() {
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(seed);
        let db = mvcc();
        let mut next = 0u32;
        let mut readers: Vec<Transaction> = Vec::new();
        let mut snapshot_reads = 0;
        for round in 0..60u32 {
            let mut writes = Vec::new();
            for _ in 0..rng.gen_range(1..20) {
                let choice = rng.gen_range(0..10);
                if choice < 7 || next == 0 {
                    writes.push((next, Some(round)));
                    next += 1;
                } else if choice < 9 {
                    writes.push((rng.gen_range(0..next), Some(round)));
                } else {
                    writes.push((rng.gen_range(0..next), None));
                }
            }
            writes.sort_by_key(|w| w.0);
            writes.dedup_by_key(|w| w.0);
            commit(&db, &writes);
            if rng.gen_bool(0.3) {
                readers.push(db.begin());
            }
            if readers.len() > 4 {
                readers.remove(rng.gen_range(0..readers.len()));
            }
            for _ in 0..rng.gen_range(1..4) {
                let mut fresh = db.begin();
                let reader = if readers.is_empty() || rng.gen_bool(0.5) {
                    &mut fresh
                } else {
                    let i = rng.gen_range(0..readers.len());
                    &mut readers[i]
                };
                let expected = storage_rows(reader, 4);
                let (rows, path) = full_scan(reader, 4);
                assert_eq!(rows, expected, "seed {seed} round {round} via {path:?}");
                snapshot_reads += (path == Path::Snapshot) as usize;
            }
        }
        assert!(snapshot_reads > 0, "seed {seed}: no scan read a snapshot");
    }
}

/// Snapshots of more rows than a chunk holds, and appends that cross into a new chunk.
#[test]
fn snapshots_span_chunks() {
    let db = mvcc();
    let rows = (1 << 16) - 10;
    commit(&db, &(0..rows).map(|i| (i, Some(0))).collect::<Vec<_>>());
    full_scan(&mut db.begin(), 4);
    assert_eq!(full_scan(&mut db.begin(), 4).1, Path::Built);
    let mut before = db.begin();
    commit(&db, &(rows..rows + 30).map(|i| (i, Some(1))).collect::<Vec<_>>());
    for reader in [&mut before, &mut db.begin()] {
        let expected = storage_rows(reader, 4);
        let (got, path) = full_scan(reader, 4);
        assert_eq!(path, Path::Snapshot);
        assert!(got == expected, "{} rows against {}", got.len(), expected.len());
    }
    let Lookup::Ready(snapshot) = db.begin().column_lookup(&TABLE) else { panic!("expected a snapshot") };
    assert_eq!(snapshot.chunks().len(), 2);
}
