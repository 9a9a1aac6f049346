//! Sealed segments read exactly like the row layout: random writes, snapshots held across
//! sealing, garbage collection and snapshot installs, checked against a model.

use super::seal::SealLimits;
use super::segments::PlainCodec;
use super::tests::LoopbackLog;
use super::*;
use crate::storage::memory::MemoryStorage;
use proptest::prelude::*;

const TABLE: &[u8] = &[0x02, 0, 0, 0, 7];

fn key(k: u8) -> Vec<u8> {
    // Series of eight keys (a table, a series byte, then eight bytes of "time"), so that
    // commits bring runs of one series that an apply stores as a segment.
    let mut out = TABLE.to_vec();
    out.push(k / 8);
    out.extend_from_slice(&(k as u64 * 1000).to_be_bytes());
    out
}

/// Stores runs of rows of [`TABLE`] as plain segments when a batch is applied.
struct PlainLayout;

impl Derive for PlainLayout {
    fn derive(&self, _: &WriteBatch, _: &mut Transaction) -> Result<Vec<Write>> {
        Ok(Vec::new())
    }

    fn segment_codec(&self, domain: &[u8]) -> Option<Arc<dyn SegmentCodec>> {
        (domain == TABLE).then(codec)
    }
}

/// A store over `storage` whose applies store runs of two or more rows of a series as
/// segments when `bulk`.
fn open_on(storage: &Arc<MemoryStorage>, bulk: bool) -> (Arc<Mvcc>, Arc<LoopbackLog>) {
    let db = Mvcc::new(storage.clone()).unwrap();
    if bulk {
        db.add_derive(Arc::new(PlainLayout));
        db.set_apply_seal_rows(2);
    }
    let log = LoopbackLog::install(&db);
    (db, log)
}

#[derive(Clone, Debug)]
enum Op {
    /// A transaction writing (key, value or delete) pairs.
    Commit(Vec<(u8, Option<u8>)>),
    /// Start holding a snapshot.
    Hold,
    /// Stop holding the oldest snapshot.
    Release,
    Seal,
    Gc,
    /// Take a Raft snapshot and install it on a fresh node, then compare that node too.
    Reinstall,
    /// Reopen the storage (the in-memory headers are loaded again).
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0u8..40, prop::option::weighted(0.8, any::<u8>())), 1..12).prop_map(Op::Commit),
        1 => Just(Op::Hold),
        1 => Just(Op::Release),
        3 => Just(Op::Seal),
        1 => Just(Op::Gc),
        1 => Just(Op::Reinstall),
        1 => Just(Op::Reopen),
    ]
}

type Model = std::collections::BTreeMap<Vec<u8>, Vec<u8>>;

fn codec() -> Arc<dyn SegmentCodec> {
    Arc::new(PlainCodec)
}

/// Every way of reading `txn` agrees with `model`.
fn check(txn: &mut Transaction, model: &Model) {
    for k in 0..40u8 {
        assert_eq!(txn.get(&key(k)).unwrap().as_ref(), model.get(&key(k)), "get {k}");
    }
    let forward = txn.scan_prefix(TABLE).unwrap();
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(forward, want, "forward scan");
    let mut backward = Vec::new();
    txn.for_each_range_rev(TABLE, None, None, None, |k, v| {
        backward.push((k.to_vec(), v.to_vec()));
        Ok(true)
    })
    .unwrap();
    backward.reverse();
    assert_eq!(backward, want, "reverse scan");
    let (lo, hi) = (key(10), key(30));
    let mut bounded = Vec::new();
    txn.for_each_range(TABLE, None, Some(&lo), Some(&hi), |k, _| {
        bounded.push(k.to_vec());
        Ok(true)
    })
    .unwrap();
    let want: Vec<Vec<u8>> = model.keys().filter(|k| **k >= lo && **k < hi).cloned().collect();
    assert_eq!(bounded, want, "bounded scan");
}

fn run(ops: Vec<Op>, limits: SealLimits, bulk: bool) {
    let storage = Arc::new(MemoryStorage::new());
    let (mut db, mut _log) = open_on(&storage, bulk);
    let mut model = Model::new();
    let mut held: Vec<(Transaction, Model)> = Vec::new();
    for op in ops {
        match op {
            Op::Commit(writes) => {
                let mut t = db.begin();
                let mut next = model.clone();
                for (k, v) in writes {
                    match v {
                        Some(v) => {
                            t.set(key(k), vec![v; 1 + (k as usize % 5)]);
                            next.insert(key(k), vec![v; 1 + (k as usize % 5)]);
                        }
                        None => {
                            t.delete(key(k));
                            next.remove(&key(k));
                        }
                    }
                }
                t.commit().unwrap();
                model = next;
            }
            Op::Hold => held.push((db.begin(), model.clone())),
            Op::Release => {
                if !held.is_empty() {
                    held.remove(0);
                }
            }
            Op::Seal => {
                db.seal_with(TABLE, &codec(), limits).unwrap();
            }
            Op::Gc => {
                db.gc().unwrap();
            }
            Op::Reinstall => {
                let snapshot = db.snapshot_at(db.durable_version()).unwrap();
                let other = Mvcc::new(Arc::new(MemoryStorage::new())).unwrap();
                other.restore_snapshot(&snapshot, 1).unwrap();
                check(&mut other.begin(), &model);
                // And over this node's own segments.
                let again = db.snapshot_at(db.durable_version()).unwrap();
                db.restore_snapshot(&again, 1).unwrap();
            }
            Op::Reopen => {
                if held.is_empty() {
                    (db, _log) = open_on(&storage, bulk);
                }
            }
        }
        check(&mut db.begin(), &model);
        for (txn, model) in &mut held {
            check(txn, model);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sealed_reads_match_the_row_layout(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, SealLimits { min_rows: 3, max_rows: 6 }, false);
    }

    #[test]
    fn sealed_reads_match_with_large_segments(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, SealLimits { min_rows: 1, max_rows: 64 }, false);
    }

    #[test]
    fn rows_sealed_as_batches_apply_read_like_the_row_layout(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, SealLimits { min_rows: 2, max_rows: 6 }, true);
    }
}

#[test]
fn sealing_moves_rows_into_segments_and_keeps_later_writes_apart() {
    let storage = Arc::new(MemoryStorage::new());
    let db = Mvcc::new(storage.clone()).unwrap();
    let _log = LoopbackLog::install(&db);
    let mut t = db.begin();
    for k in 0..30 {
        t.set(key(k), vec![k]);
    }
    t.commit().unwrap();
    let reader = db.begin();
    let stats = db.seal_with(TABLE, &codec(), SealLimits { min_rows: 4, max_rows: 8 }).unwrap();
    assert_eq!(stats, SealStats { written: 4, replaced: 0, rows: 30, removed: 30 });
    assert_eq!(storage.scan_prefix(TABLE).count(), 0, "every row version moved");
    assert_eq!(db.segment_totals().0, 4);

    // A later delete stays in the row layout; the reader from before still sees the row.
    let mut t = db.begin();
    t.delete(key(3));
    t.set(key(4), b"new".to_vec());
    t.commit().unwrap();
    drop(reader);
    let mut now = db.begin();
    assert_eq!(now.get(&key(3)).unwrap(), None);
    assert_eq!(now.get(&key(4)).unwrap(), Some(b"new".to_vec()));
    drop(now);
    // Garbage collection keeps the tombstone over the sealed row; sealing folds both in.
    db.gc().unwrap();
    assert_eq!(db.begin().get(&key(3)).unwrap(), None);
    let stats = db.seal_with(TABLE, &codec(), SealLimits { min_rows: 4, max_rows: 8 }).unwrap();
    assert_eq!((stats.replaced, stats.removed), (1, 2));
    assert_eq!(storage.scan_prefix(TABLE).count(), 0);
    assert_eq!(db.begin().scan_prefix(TABLE).unwrap().len(), 29);
}

#[test]
fn small_neighbouring_segments_merge() {
    let db = Mvcc::new(Arc::new(MemoryStorage::new())).unwrap();
    let _log = LoopbackLog::install(&db);
    let limits = SealLimits { min_rows: 1, max_rows: 16 };
    // Three seals of three new keys each, every key after the last: three small segments…
    for round in 0..3u8 {
        let mut t = db.begin();
        for k in 0..3u8 {
            t.set(key(round * 3 + k), vec![round, k]);
        }
        t.commit().unwrap();
        let stats = db.seal_with(TABLE, &codec(), SealLimits { min_rows: 3, max_rows: 3 }).unwrap();
        assert_eq!(stats.written, 1);
    }
    assert_eq!(db.segment_totals().0, 3);
    // …which the next seal merges into one, changing nothing a reader sees.
    let before = db.begin().scan_prefix(TABLE).unwrap();
    let stats = db.seal_with(TABLE, &codec(), limits).unwrap();
    assert_eq!((stats.written, stats.replaced, stats.rows), (1, 3, 9));
    assert_eq!(db.segment_totals(), (1, db.segment_totals().1, 9));
    assert_eq!(db.begin().scan_prefix(TABLE).unwrap(), before);
    // Nothing left to do.
    assert_eq!(db.seal_with(TABLE, &codec(), limits).unwrap(), SealStats::default());
}

/// A batch stored partly as segments, torn anywhere by a crash and applied again on restart,
/// leaves exactly the state of one clean apply.
#[test]
fn a_bulk_batch_applied_again_after_a_torn_apply_leaves_one_copy() {
    // Two series of five rows (segments) and a lone row and a delete (row layout).
    let mut writes: Vec<Write> = (0..5u8).chain(8..13).map(|k| (key(k), Some(vec![k]))).collect();
    writes.push((key(20), Some(vec![20])));
    writes.push((key(33), None));
    let batch = WriteBatch { version: 1_000, writes };
    let clean = Arc::new(MemoryStorage::new());
    let (db, _log) = open_on(&clean, true);
    db.set_apply_seal_rows(5);
    db.apply_committed(&batch, 5).unwrap();
    assert_eq!(db.segment_totals().0, 2, "each series a segment");
    let all = |s: &MemoryStorage| s.scan((Bound::Unbounded, Bound::Unbounded)).collect::<Result<Vec<_>>>().unwrap();
    let writes = all(&clean);
    let want = db.begin().scan_prefix(TABLE).unwrap();
    assert_eq!(want.len(), 11);
    // The storage writes of the apply, in its order, are: the rows, blocks and headers, and
    // the applied markers last. Replay every prefix of them.
    let order = apply_order(&clean);
    for cut in 0..=order.len() {
        let torn = Arc::new(MemoryStorage::new());
        for (k, v) in &order[..cut] {
            torn.put(k.clone(), v.clone()).unwrap();
        }
        let (again, _log) = open_on(&torn, true);
        again.set_apply_seal_rows(5);
        again.apply_committed(&batch, 5).unwrap();
        assert_eq!(again.begin().scan_prefix(TABLE).unwrap(), want, "torn after {cut} writes");
        assert_eq!(all(&torn), writes, "torn after {cut} writes");
    }
}

/// The writes a clean apply left in `storage`, in the order the apply makes them: row
/// versions, then each block before its header, then the applied markers.
fn apply_order(storage: &MemoryStorage) -> Vec<(Vec<u8>, Vec<u8>)> {
    let all: Vec<(Vec<u8>, Vec<u8>)> =
        storage.scan((Bound::Unbounded, Bound::Unbounded)).collect::<Result<Vec<_>>>().unwrap();
    let rank = |k: &[u8]| {
        if k.starts_with(crate::storage::keyspace::Local::SegmentData.key()) {
            (1, k.strip_prefix(crate::storage::keyspace::Local::SegmentData.key()).unwrap().to_vec(), 0)
        } else if k.starts_with(crate::storage::keyspace::Local::SegmentHead.key()) {
            (1, k.strip_prefix(crate::storage::keyspace::Local::SegmentHead.key()).unwrap().to_vec(), 1)
        } else if k.first() == Some(&0) {
            (2, k.to_vec(), 0)
        } else {
            (0, k.to_vec(), 0)
        }
    };
    let mut ordered = all;
    ordered.sort_by_key(|(k, _)| rank(k));
    ordered
}

/// A reader that stays inside (a backup streaming) makes sealing give its pass up, not wait:
/// nothing changes, and the next pass does the work.
#[test]
fn sealing_gives_up_while_a_reader_stays_inside() {
    let db = Mvcc::new(Arc::new(MemoryStorage::new())).unwrap();
    let _log = LoopbackLog::install(&db);
    let mut t = db.begin();
    for k in 0..20u8 {
        t.set(key(k), vec![k]);
    }
    t.commit().unwrap();
    let limits = SealLimits { min_rows: 1, max_rows: 64 };
    let reader = db.segments.gate.shared();
    let started = std::time::Instant::now();
    assert_eq!(db.seal_with(TABLE, &codec(), limits).unwrap(), SealStats::default());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(db.segment_totals().0, 0);
    drop(reader);
    assert_eq!(db.begin().scan_prefix(TABLE).unwrap().len(), 20);
    assert_eq!(db.seal_with(TABLE, &codec(), limits).unwrap().rows, 20);
    assert_eq!(db.begin().scan_prefix(TABLE).unwrap().len(), 20);
}

#[test]
fn a_table_nobody_wrote_since_its_last_seal_is_not_walked_again() {
    let storage = Arc::new(MemoryStorage::new());
    let db = Mvcc::new(storage.clone()).unwrap();
    let _log = LoopbackLog::install(&db);
    let limits = SealLimits { min_rows: 1, max_rows: 64 };
    let mut t = db.begin();
    for k in 0..10 {
        t.set(key(k), vec![k]);
    }
    t.commit().unwrap();
    assert_eq!(db.seal_with(TABLE, &codec(), limits).unwrap().rows, 10);
    // A row no commit wrote (so the table's last write is still below the pass's watermark):
    // the next pass with the same limits does not walk the table, and does not see it…
    storage.put(physical_key(&key(20), 1), vec![1, 20]).unwrap();
    assert_eq!(db.seal_with(TABLE, &codec(), limits).unwrap(), SealStats::default());
    // …while other limits, or a write to the table, make the next pass walk it again.
    assert_ne!(db.seal_with(TABLE, &codec(), SealLimits { min_rows: 1, max_rows: 32 }).unwrap(), SealStats::default());
    storage.put(physical_key(&key(21), 1), vec![1, 21]).unwrap();
    let mut t = db.begin();
    t.set(key(30), vec![30]);
    t.commit().unwrap();
    let stats = db.seal_with(TABLE, &codec(), SealLimits { min_rows: 1, max_rows: 32 }).unwrap();
    assert_eq!(stats.removed, 2, "the row nobody wrote, and the new one, moved into segments");
    assert_eq!(db.begin().scan_prefix(TABLE).unwrap().len(), 13);
}
