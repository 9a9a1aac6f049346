//! Garbage collection that visits only the marked key ranges removes exactly what a pass over
//! every key removes; marks survive what they must (old snapshots, failed passes) and collapse
//! to whole domains past their budget.

use super::gc::GcMarks;
use super::tests::LoopbackLog;
use super::*;
use crate::storage::memory::MemoryStorage;
use proptest::prelude::*;
use std::ops::Bound;

const TABLE: &[u8] = &[0x02, 0, 0, 0, 9];

/// Keys of a few series (a series byte, then eight bytes of "time"), so that a commit's
/// writes form runs of one series.
fn key(k: u8) -> Vec<u8> {
    let mut out = TABLE.to_vec();
    out.push(k / 8);
    out.extend_from_slice(&(k as u64).to_be_bytes());
    out
}

#[derive(Clone, Debug)]
enum Op {
    Commit(Vec<(u8, Option<u8>)>),
    Hold,
    Release,
    Gc,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0u8..32, prop::option::weighted(0.8, any::<u8>())), 1..10).prop_map(Op::Commit),
        1 => Just(Op::Hold),
        1 => Just(Op::Release),
        2 => Just(Op::Gc),
        1 => Just(Op::Reopen),
    ]
}

/// The stored row versions of a store, versions left out (two stores stamp different ones).
fn stored(storage: &MemoryStorage) -> Vec<(Vec<u8>, Vec<u8>)> {
    storage
        .scan_prefix(TABLE)
        .map(|item| {
            let (physical, value) = item.unwrap();
            (physical[..physical.len() - 8].to_vec(), value)
        })
        .collect()
}

/// A store over `storage`, committing through a loopback log of its own.
fn open_on(storage: &Arc<MemoryStorage>) -> (Arc<Mvcc>, Arc<LoopbackLog>) {
    let db = Mvcc::new(storage.clone()).unwrap();
    let log = LoopbackLog::install(&db);
    (db, log)
}

/// A store whose every pass visits every key, as before any write was marked.
fn gc_everything(db: &Mvcc) -> usize {
    lock(&db.gc_marks).everything = Some(db.durable_version());
    db.gc().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn marked_passes_remove_what_full_passes_remove(ops in prop::collection::vec(op(), 1..60)) {
        let storages = [Arc::new(MemoryStorage::new()), Arc::new(MemoryStorage::new())];
        let mut dbs = [open_on(&storages[0]), open_on(&storages[1])];
        let mut held: Vec<[Transaction; 2]> = Vec::new();
        for op in ops {
            match op {
                Op::Commit(writes) => {
                    for (db, _) in &dbs {
                        let mut t = db.begin();
                        for &(k, v) in &writes {
                            match v {
                                Some(v) => t.set(key(k), vec![v]),
                                None => t.delete(key(k)),
                            }
                        }
                        t.commit().unwrap();
                    }
                }
                Op::Hold => held.push([dbs[0].0.begin(), dbs[1].0.begin()]),
                Op::Release => {
                    if !held.is_empty() {
                        held.remove(0);
                    }
                }
                Op::Gc => {
                    let marked = dbs[0].0.gc().unwrap();
                    let full = gc_everything(&dbs[1].0);
                    prop_assert_eq!(marked, full);
                    prop_assert_eq!(stored(&storages[0]), stored(&storages[1]));
                }
                Op::Reopen => {
                    if held.is_empty() {
                        dbs = [open_on(&storages[0]), open_on(&storages[1])];
                    }
                }
            }
        }
    }
}

#[test]
fn a_pass_visits_only_what_was_written_since() {
    let storage = Arc::new(MemoryStorage::new());
    let (db, _log) = open_on(&storage);
    for v in 0..3u8 {
        let mut t = db.begin();
        t.set(key(1), vec![v]);
        t.set(key(20), vec![v]);
        t.commit().unwrap();
    }
    assert_eq!(db.gc().unwrap(), 4, "the first pass visits every key");
    assert_eq!(*lock(&db.gc_marks), GcMarks::default(), "nothing is left to visit");
    // Garbage that no write marked (as if it predated start-up) is left alone; a key written
    // since is visited whole.
    let unmarked = physical_key(&key(6), 1);
    storage.put(unmarked.clone(), vec![1, 7]).unwrap();
    storage.put(physical_key(&key(6), 2), vec![1, 8]).unwrap();
    let stale = physical_key(&key(5), 1);
    storage.put(stale.clone(), vec![1, 7]).unwrap();
    let mut t = db.begin();
    t.set(key(5), vec![8]);
    t.commit().unwrap();
    let mut t = db.begin();
    t.set(key(1), vec![9]);
    t.commit().unwrap();
    let ranges: Vec<Vec<u8>> = lock(&db.gc_marks).ranges.keys().cloned().collect();
    assert_eq!(ranges, vec![key(1), key(5)]);
    assert_eq!(db.gc().unwrap(), 2, "key 1's older version, and key 5's");
    assert!(storage.get(&stale).unwrap().is_none());
    assert!(storage.get(&unmarked).unwrap().is_some());
    // A reopened store visits every key once.
    drop(db);
    let (db, _log) = open_on(&storage);
    assert_eq!(db.gc().unwrap(), 1);
    assert!(storage.get(&unmarked).unwrap().is_none());
}

#[test]
fn marks_newer_than_the_watermark_stay_for_the_next_pass() {
    let (db, _log) = open_on(&Arc::new(MemoryStorage::new()));
    db.gc().unwrap();
    let mut t = db.begin();
    t.set(key(1), vec![1]);
    t.commit().unwrap();
    let reader = db.begin();
    let mut t = db.begin();
    t.set(key(1), vec![2]);
    t.commit().unwrap();
    assert_eq!(db.gc().unwrap(), 0, "the reader still reads version 1");
    assert_eq!(lock(&db.gc_marks).ranges.len(), 1);
    drop(reader);
    assert_eq!(db.gc().unwrap(), 1);
    assert!(lock(&db.gc_marks).ranges.is_empty());
}

#[test]
fn a_pass_removing_more_than_a_batch_resumes_where_it_stopped() {
    let storage = Arc::new(MemoryStorage::new());
    let (db, _log) = open_on(&storage);
    let wide = |i: u32| {
        let mut k = TABLE.to_vec();
        k.extend_from_slice(&i.to_be_bytes());
        k
    };
    for round in 0..2u8 {
        let mut t = db.begin();
        for i in 0..25_000 {
            t.set(wide(i), vec![round]);
        }
        t.commit().unwrap();
    }
    assert_eq!(db.gc_retiring(&[], Pace::Background).unwrap(), 25_000);
    let left = stored(&storage);
    assert_eq!(left.len(), 25_000);
    assert!(left.iter().all(|(_, v)| v == &[1, 1]));
    assert_eq!(db.begin().scan_prefix(TABLE).unwrap().len(), 25_000);
}

#[test]
fn ranges_past_the_budget_become_domains() {
    let mut marks = GcMarks::default();
    // Keys of different lengths never share a range.
    let keys: Vec<Vec<u8>> = (0..70_000u32)
        .map(|i| {
            let mut k = TABLE.to_vec();
            k.extend(std::iter::repeat_n(b'x', 1 + (i % 3) as usize));
            k.extend_from_slice(&i.to_be_bytes());
            k
        })
        .collect();
    marks.mark(5, keys.iter().map(Vec::as_slice));
    assert!(marks.ranges.len() < 70_000);
    assert_eq!(marks.domains.get(TABLE), Some(&5));
    // Later writes of a domain marked whole raise its version only.
    marks.mark(6, std::iter::once(keys[0].as_slice()));
    assert_eq!(marks.domains.get(TABLE), Some(&6));
}

#[test]
fn visits_are_ordered_and_do_not_overlap() {
    let mut marks = GcMarks::default();
    let other: &[u8] = &[0x02, 0, 0, 0, 3];
    let k = |table: &[u8], s: &str| {
        let mut out = table.to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    };
    marks.mark_range(&k(TABLE, "a"), &k(TABLE, "c"), 1);
    marks.mark_range(&k(TABLE, "b"), &k(TABLE, "d"), 2);
    marks.mark_range(&k(TABLE, "x"), &k(TABLE, "x"), 3);
    marks.mark_range(&k(other, "q"), &k(other, "q"), 4);
    let retired: std::collections::BTreeSet<&[u8]> = [other].into_iter().collect();
    let with_ff = |mut key: Vec<u8>| {
        key.extend_from_slice(&[0xff; 8]);
        Bound::Included(key)
    };
    assert_eq!(
        marks.visits(&retired),
        vec![
            (Bound::Included(other.to_vec()), Bound::Excluded(vec![0x02, 0, 0, 0, 4])),
            (Bound::Included(k(TABLE, "a")), with_ff(k(TABLE, "d"))),
            (Bound::Included(k(TABLE, "x")), with_ff(k(TABLE, "x"))),
        ]
    );
}

#[test]
fn an_install_is_visited_whole_until_no_reader_holds_the_watermark_below_it() {
    let (follower, _follower_log) = open_on(&Arc::new(MemoryStorage::new()));
    follower.gc().unwrap();
    let mut t = follower.begin();
    t.set(key(1), b"old".to_vec());
    t.commit().unwrap();
    let reader = follower.begin();
    let (leader, _leader_log) = open_on(&Arc::new(MemoryStorage::new()));
    let mut t = leader.begin();
    t.set(key(1), b"new".to_vec());
    t.commit().unwrap();
    follower.restore_snapshot(&leader.snapshot_at(leader.durable_version()).unwrap(), 1).unwrap();
    // The reader holds the watermark below the installed version: the follower's own version
    // of key 1 is not garbage yet, and the next pass must still visit everything.
    assert_eq!(follower.gc().unwrap(), 0);
    assert!(lock(&follower.gc_marks).everything.is_some());
    drop(reader);
    assert_eq!(follower.gc().unwrap(), 1);
    assert_eq!(lock(&follower.gc_marks).everything, None);
    assert_eq!(follower.begin().get(&key(1)).unwrap(), Some(b"new".to_vec()));
}

#[test]
fn a_range_never_spans_two_domains() {
    let mut marks = GcMarks::default();
    // Two keys of twelve bytes, of two tables, alike but for their last eight bytes.
    let a = [&TABLE[..4], &[9], &[0u8; 7][..]].concat();
    let b = [&TABLE[..4], &[10], &[0u8; 7][..]].concat();
    marks.mark(1, [a.as_slice(), b.as_slice()].into_iter());
    assert_eq!(marks.ranges.len(), 2);
}
