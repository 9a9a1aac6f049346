use super::*;
use crate::storage::memory::MemoryStorage;

/// A store committing through an in-process log of its own (see [`LoopbackLog`]).
fn open() -> (Arc<Mvcc>, Arc<LoopbackLog>) {
    let db = Mvcc::new(Arc::new(MemoryStorage::new())).unwrap();
    let log = LoopbackLog::install(&db);
    (db, log)
}

fn mvcc() -> Arc<Mvcc> {
    open().0
}

fn key(table: u8, k: &str) -> Vec<u8> {
    let mut out = vec![0x02, 0, 0, 0, table];
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

#[test]
fn snapshot_reads_do_not_see_later_commits() {
    let db = mvcc();
    let mut t1 = db.begin();
    t1.set(key(1, "a"), b"1".to_vec());
    t1.commit().unwrap();

    let mut reader = db.begin();
    let mut t2 = db.begin();
    t2.set(key(1, "a"), b"2".to_vec());
    t2.set(key(1, "b"), b"3".to_vec());
    t2.commit().unwrap();

    assert_eq!(reader.get(&key(1, "a")).unwrap(), Some(b"1".to_vec()));
    assert_eq!(reader.get(&key(1, "b")).unwrap(), None);
    assert_eq!(reader.scan_prefix(&[0x02]).unwrap().len(), 1);
    let mut fresh = db.begin();
    assert_eq!(fresh.get(&key(1, "a")).unwrap(), Some(b"2".to_vec()));
    assert_eq!(fresh.scan_prefix(&[0x02]).unwrap().len(), 2);
}

#[test]
fn transactions_see_their_own_writes_in_scans() {
    let db = mvcc();
    let mut t = db.begin();
    t.set(key(1, "b"), b"b".to_vec());
    t.commit().unwrap();

    let mut t = db.begin();
    t.set(key(1, "a"), b"a".to_vec());
    t.set(key(1, "c"), b"c".to_vec());
    t.delete(key(1, "b"));
    let got: Vec<Vec<u8>> = t.scan_prefix(&[0x02]).unwrap().into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, vec![b"a".to_vec(), b"c".to_vec()]);
    t.rollback();

    let mut t = db.begin();
    let got: Vec<Vec<u8>> = t.scan_prefix(&[0x02]).unwrap().into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, vec![b"b".to_vec()]);
}

#[test]
fn write_write_conflict_aborts_the_later_committer() {
    let db = mvcc();
    let mut t1 = db.begin();
    let mut t2 = db.begin();
    t1.set(key(1, "x"), b"1".to_vec());
    t2.set(key(1, "x"), b"2".to_vec());
    t1.commit().unwrap();
    let err = t2.commit().unwrap_err();
    assert_eq!(err.sqlstate(), "40001");
    assert_eq!(db.begin().get(&key(1, "x")).unwrap(), Some(b"1".to_vec()));
}

#[test]
fn write_skew_is_prevented_by_read_validation() {
    // Each transaction reads the table and writes a different key: serial execution would
    // let the second see the first's write, so one of them must abort.
    let db = mvcc();
    let mut t1 = db.begin();
    let mut t2 = db.begin();
    assert!(t1.scan_prefix(&key(1, "")[..5]).unwrap().is_empty());
    assert!(t2.scan_prefix(&key(1, "")[..5]).unwrap().is_empty());
    t1.set(key(1, "a"), b"1".to_vec());
    t2.set(key(1, "b"), b"1".to_vec());
    t1.commit().unwrap();
    assert_eq!(t2.commit().unwrap_err().sqlstate(), "40001");
}

#[test]
fn apply_is_idempotent_and_versions_increase() {
    let storage = Arc::new(MemoryStorage::new());
    let db = Mvcc::new(storage.clone()).unwrap();
    let batch = WriteBatch { version: 10, writes: vec![(key(1, "a"), Some(b"v".to_vec()))] };
    db.apply_committed(&batch, 1).unwrap();
    let before = storage.scan_prefix(&[0x02]).count();
    db.apply_committed(&batch, 1).unwrap();
    assert_eq!(storage.scan_prefix(&[0x02]).count(), before);
    assert_eq!(applied_version(storage.as_ref()).unwrap(), 10);
    let next = WriteBatch { version: 11, writes: vec![(key(1, "a"), None)] };
    db.apply_committed(&next, 2).unwrap();
    assert_eq!(applied_version(storage.as_ref()).unwrap(), 11);
    assert_eq!(db.begin().get(&key(1, "a")).unwrap(), None);
}

/// A database written by an earlier version, with its applied version and Raft index under
/// the old keys, opens where it stopped, and the records move.
#[test]
fn applied_records_of_the_earlier_layout_move() {
    use crate::storage::keyspace::Local;
    let storage = Arc::new(MemoryStorage::new());
    storage.put(Local::LegacyApplied.key().to_vec(), 42u64.to_be_bytes().to_vec()).unwrap();
    storage.put(Local::LegacyRaftApplied.key().to_vec(), 7u64.to_be_bytes().to_vec()).unwrap();
    let db = Mvcc::new(storage.clone()).unwrap();
    assert_eq!(db.durable_version(), 42);
    assert_eq!(db.raft_applied_index().unwrap(), 7);
    assert_eq!(storage.get(Local::LegacyApplied.key()).unwrap(), None);
    assert_eq!(storage.get(Local::LegacyRaftApplied.key()).unwrap(), None);
    assert_eq!(applied_version(storage.as_ref()).unwrap(), 42);
}

#[test]
fn gc_removes_only_unreadable_versions() {
    let db = mvcc();
    for v in 0..5u8 {
        let mut t = db.begin();
        t.set(key(1, "a"), vec![v]);
        t.commit().unwrap();
    }
    let mut t = db.begin();
    t.set(key(1, "gone"), b"x".to_vec());
    t.commit().unwrap();
    let old_reader = db.begin();
    let mut t = db.begin();
    t.delete(key(1, "gone"));
    t.set(key(1, "a"), vec![9]);
    t.commit().unwrap();

    // The old reader pins the versions it can see.
    let removed = db.gc().unwrap();
    assert_eq!(removed, 4);
    let mut old_reader = old_reader;
    assert_eq!(old_reader.get(&key(1, "a")).unwrap(), Some(vec![4]));
    assert_eq!(old_reader.get(&key(1, "gone")).unwrap(), Some(b"x".to_vec()));
    drop(old_reader);

    // Now only the newest version of "a" remains, and nothing of "gone".
    let removed = db.gc().unwrap();
    assert_eq!(removed, 3);
    assert_eq!(db.storage().scan_prefix(&[0x02]).count(), 1);
    assert_eq!(db.begin().get(&key(1, "a")).unwrap(), Some(vec![9]));
}

#[test]
fn concurrent_commits_are_all_durable_and_distinct() {
    let db = mvcc();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let db = db.clone();
            std::thread::spawn(move || {
                for j in 0..50 {
                    let mut t = db.begin();
                    t.set(key(1, &format!("{i}-{j}")), vec![1]);
                    t.commit().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(db.begin().scan_prefix(&[0x02]).unwrap().len(), 400);
    assert_eq!(db.durable_version(), db.applied.load(Ordering::SeqCst));
}

#[test]
fn scan_pages_resume_after_a_key() {
    let db = mvcc();
    let mut t = db.begin();
    for k in ["a", "b", "c", "d"] {
        t.set(key(1, k), k.as_bytes().to_vec());
    }
    t.commit().unwrap();
    let mut t = db.begin();
    t.set(key(1, "bb"), b"bb".to_vec());
    t.delete(key(1, "c"));
    let prefix = &key(1, "")[..5];
    let mut seen = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = t.scan_page(prefix, after.as_deref(), 2).unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().0.clone());
        seen.extend(page.into_iter().map(|(_, v)| String::from_utf8(v).unwrap()));
    }
    assert_eq!(seen, vec!["a", "b", "bb", "d"]);
}

#[test]
fn batches_survive_their_log_encoding() {
    let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> =
        (0..1000u32).map(|i| (key(1, &format!("{i:05}")), (i % 7 != 0).then(|| i.to_be_bytes().to_vec()))).collect();
    let batch = WriteBatch { version: 42, writes };
    let bytes = encode_batch(&batch);
    assert_eq!(decode_batch(&bytes).unwrap(), batch);
    for cut in [0, 7, 16, bytes.len() / 2, bytes.len() - 1] {
        assert!(decode_batch(&bytes[..cut]).is_err(), "a batch cut at {cut} bytes is refused");
    }
}

/// A snapshot is written without a count (as storage is scanned) and read to its end.
#[test]
fn snapshots_are_read_to_their_end() {
    let db = mvcc();
    let mut t = db.begin();
    for i in 0..300u32 {
        t.set(key(1, &format!("{i:05}")), vec![7; (i % 50) as usize]);
    }
    t.commit().unwrap();
    let version = db.durable_version();
    let bytes = db.snapshot_at(version).unwrap();
    let batch = decode_batch(&bytes).unwrap();
    assert_eq!((batch.version, batch.writes.len()), (version, 300));
    assert!(decode_batch(&bytes[..bytes.len() - 1]).is_err(), "a snapshot cut short is refused");
}

/// A replicator that commits proposals in order on a thread after a delay, as a log would,
/// and can hold them back to keep batches pending.
pub(super) struct LoopbackLog {
    mvcc: std::sync::Weak<Mvcc>,
    queue: Mutex<Vec<(WriteBatch, std::sync::mpsc::Sender<Result<()>>)>>,
    held: std::sync::atomic::AtomicBool,
    index: AtomicU64,
}

impl LoopbackLog {
    pub(super) fn install(db: &Arc<Mvcc>) -> Arc<LoopbackLog> {
        let log = Arc::new(LoopbackLog {
            mvcc: Arc::downgrade(db),
            queue: Mutex::new(Vec::new()),
            held: Default::default(),
            index: AtomicU64::new(0),
        });
        db.set_replicator(log.clone());
        log
    }

    /// Commits everything proposed so far, in order.
    fn drain(&self) {
        let Some(db) = self.mvcc.upgrade() else { return };
        let queued = std::mem::take(&mut *lock(&self.queue));
        for (batch, done) in queued {
            let index = self.index.fetch_add(1, Ordering::SeqCst) + 1;
            db.apply_committed(&batch, index).unwrap();
            let _ = done.send(Ok(()));
        }
    }
}

impl Replicator for LoopbackLog {
    fn node_id(&self) -> u64 {
        7
    }
    fn forward(&self, _: &CommitRequest) -> Option<Result<Version>> {
        None
    }
    fn propose(&self, batch: WriteBatch) -> Result<Waiter> {
        let (tx, rx) = std::sync::mpsc::channel();
        lock(&self.queue).push((batch, tx));
        if !self.held.load(Ordering::SeqCst) {
            self.drain();
        }
        Ok(rx)
    }
    fn read_barrier(&self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn replicated_commits_apply_in_order_with_the_raft_index() {
    let db = mvcc();
    for i in 0..3 {
        let mut t = db.begin();
        t.set(key(1, &format!("k{i}")), vec![i]);
        t.commit().unwrap();
    }
    assert_eq!(db.raft_applied_index().unwrap(), 3);
    assert_eq!(db.begin().scan_prefix(&[0x02]).unwrap().len(), 3);
}

#[test]
fn replicated_validation_sees_pending_batches() {
    let (db, log) = open();
    let mut seed = db.begin();
    seed.set(key(1, "a"), b"0".to_vec());
    seed.commit().unwrap();

    log.held.store(true, Ordering::SeqCst);
    let mut t1 = db.begin();
    let mut t2 = db.begin();
    t1.get(&key(1, "a")).unwrap();
    t2.get(&key(1, "a")).unwrap();
    t1.set(key(1, "a"), b"1".to_vec());
    t2.set(key(1, "a"), b"2".to_vec());
    // t1 is proposed but not applied: storage does not have it yet, validation must still see it.
    let db1 = db.clone();
    let first = std::thread::spawn(move || t1.commit());
    while lock(&log.queue).is_empty() {
        std::thread::yield_now();
    }
    assert_eq!(t2.commit().unwrap_err().sqlstate(), "40001");
    log.drain();
    first.join().unwrap().unwrap();
    assert_eq!(db1.begin().get(&key(1, "a")).unwrap(), Some(b"1".to_vec()));

    // Commits that do not overlap are proposed together while earlier ones are pending.
    let mut handles = Vec::new();
    for i in 0..4u8 {
        let db = db.clone();
        handles.push(std::thread::spawn(move || {
            let mut t = db.begin();
            t.set(key(2, &format!("k{i}")), vec![i]);
            t.commit()
        }));
    }
    while lock(&log.queue).len() < 4 {
        std::thread::yield_now();
    }
    log.drain();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(db.begin().scan_prefix(&key(2, "")[..5]).unwrap().len(), 4);
}

#[test]
fn snapshot_restore_replaces_the_state() {
    // The target is behind: everything it has is older than the snapshot.
    let target = mvcc();
    let mut t = target.begin();
    t.set(key(1, "stale"), b"x".to_vec());
    t.commit().unwrap();
    let source = mvcc();
    let mut t = source.begin();
    t.set(key(1, "a"), b"1".to_vec());
    t.commit().unwrap();
    let data = source.snapshot_at(source.durable_version()).unwrap();
    // Later commits are not in the snapshot.
    let mut later = source.begin();
    later.set(key(1, "later"), b"2".to_vec());
    later.commit().unwrap();

    // A reader from before the install keeps its state throughout.
    let mut before = target.begin();
    target.restore_snapshot(&data, 7).unwrap();
    assert_eq!(before.get(&key(1, "stale")).unwrap(), Some(b"x".to_vec()));
    assert_eq!(before.get(&key(1, "a")).unwrap(), None);
    let mut r = target.begin();
    assert_eq!(r.get(&key(1, "a")).unwrap(), Some(b"1".to_vec()));
    assert_eq!(r.get(&key(1, "stale")).unwrap(), None);
    assert_eq!(target.begin().get(&key(1, "later")).unwrap(), None);
    assert_eq!(target.raft_applied_index().unwrap(), 7);
    // Installing it again (after a crash part-way) changes nothing.
    drop(before);
    let stored = |db: &Arc<Mvcc>| db.storage().scan_prefix(&[0x02]).count();
    let count = stored(&target);
    target.restore_snapshot(&data, 7).unwrap();
    assert_eq!(stored(&target), count);
    assert_eq!(target.begin().scan_prefix(&[0x02]).unwrap(), vec![(key(1, "a"), b"1".to_vec())]);
}

/// A row deleted on the leader whose versions its garbage collection then removed is in no
/// snapshot: a follower that still has the row must not keep it.
#[test]
fn a_snapshot_deletes_rows_the_leader_collected() {
    let leader = mvcc();
    let follower = mvcc();
    for db in [&leader, &follower] {
        let mut t = db.begin();
        t.set(key(1, "gone"), b"x".to_vec());
        t.set(key(1, "kept"), b"y".to_vec());
        t.commit().unwrap();
    }
    let mut t = leader.begin();
    t.delete(key(1, "gone"));
    t.commit().unwrap();
    leader.gc().unwrap();
    let data = leader.snapshot_at(leader.durable_version()).unwrap();
    follower.restore_snapshot(&data, 3).unwrap();
    assert_eq!(follower.begin().scan_prefix(&[0x02]).unwrap(), vec![(key(1, "kept"), b"y".to_vec())]);
}

#[test]
fn reverse_scans_mirror_forward_scans() {
    let db = mvcc();
    for round in 0..3u8 {
        let mut t = db.begin();
        for i in 0..20u8 {
            if (i + round) % 4 == 0 {
                t.delete(key(1, &format!("k{i:02}")));
            } else {
                t.set(key(1, &format!("k{i:02}")), vec![i, round]);
            }
        }
        t.commit().unwrap();
    }
    let mut old = db.begin();
    let mut extra = db.begin();
    extra.set(key(1, "k01"), b"after old".to_vec());
    extra.commit().unwrap();
    let mut t = db.begin();
    t.set(key(1, "k05"), b"own".to_vec());
    t.set(key(1, "k99"), b"own-last".to_vec());
    t.set(key(1, "k000"), b"own-first".to_vec());
    t.delete(key(1, "k07"));
    let prefix = &key(1, "")[..5];
    for txn in [&mut old, &mut t] {
        let mut forward = Vec::new();
        txn.for_each_range(prefix, None, None, None, |k, v| {
            forward.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })
        .unwrap();
        let mut backward = Vec::new();
        txn.for_each_range_rev(prefix, None, None, None, |k, v| {
            backward.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })
        .unwrap();
        backward.reverse();
        assert_eq!(forward, backward);
        // Bounds, a resume point and stopping early.
        let (lo, hi) = (key(1, "k03"), key(1, "k12"));
        let mut bounded = Vec::new();
        txn.for_each_range_rev(prefix, Some(&key(1, "k10")), Some(&lo), Some(&hi), |k, _| {
            bounded.push(k.to_vec());
            Ok(bounded.len() < 3)
        })
        .unwrap();
        let want: Vec<Vec<u8>> =
            forward.iter().map(|(k, _)| k.clone()).filter(|k| *k >= lo && *k < key(1, "k10")).rev().take(3).collect();
        assert_eq!(bounded, want);
    }
}

#[test]
fn unique_ids_increase_and_carry_the_node_id() {
    let db = Mvcc::new(Arc::new(MemoryStorage::new())).unwrap();
    let plain: Vec<i64> = (0..1000).map(|_| db.unique_id()).collect();
    assert!(plain.windows(2).all(|w| w[0] < w[1]), "ids increase");
    assert!(plain.iter().all(|id| *id > 0 && id & 0xFF == 0), "no replicator: node bits are 0");
    let _log = LoopbackLog::install(&db);
    let ids: Vec<i64> = (0..1000).map(|_| db.unique_id()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert!(ids.iter().all(|id| id & 0xFF == 7), "low 8 bits are the node id");
    assert!(ids[0] > plain[999]);
}

/// Raft's apply writes in order, not atomically: after a crash that kept only some of an
/// entry's writes, applying the entry again gives exactly the state of one clean apply.
#[test]
fn an_entry_applied_again_after_a_torn_apply_leaves_one_copy() {
    let batch = WriteBatch {
        version: 1_000,
        writes: (0..10).map(|i| (key(1, &format!("k{i}")), if i == 3 { None } else { Some(vec![i]) })).collect(),
    };
    let clean = Arc::new(MemoryStorage::new());
    Mvcc::new(clean.clone()).unwrap().apply_committed(&batch, 5).unwrap();

    let torn = Arc::new(MemoryStorage::new());
    for (k, v) in stored_writes(&batch).take(4) {
        torn.put(k, v).unwrap();
    }
    let db = Mvcc::new(torn.clone()).unwrap();
    assert_eq!(db.raft_applied_index().unwrap(), 0, "the applied index is written last");
    assert_eq!(db.begin().scan_prefix(&key(1, "")[..5]).unwrap().len(), 0, "nothing visible before it");
    db.apply_committed(&batch, 5).unwrap();

    let all = |s: &MemoryStorage| s.scan((Bound::Unbounded, Bound::Unbounded)).collect::<Result<Vec<_>>>().unwrap();
    assert_eq!(all(&torn), all(&clean));
    assert_eq!(db.raft_applied_index().unwrap(), 5);
    assert_eq!(db.begin().scan_prefix(&key(1, "")[..5]).unwrap().len(), 9);
}

/// A database left with a half-applied batch by an earlier version's local commit path is
/// refused, not opened with the batch silently half there.
#[test]
fn a_database_with_an_earlier_redo_record_is_refused() {
    let storage = Arc::new(MemoryStorage::new());
    storage.put(LEGACY_REDO_KEY.to_vec(), vec![0; 16]).unwrap();
    assert_eq!(Mvcc::new(storage).err().map(|e| e.sqlstate()), Some("XX001"));
}

/// Keys with many versions (more than a scan walks over before seeking past them) read the
/// same as with few: at an old snapshot, at the newest, with own writes among them, and with
/// deletes.
#[test]
fn scans_over_keys_with_many_versions_see_each_snapshot() {
    let db = mvcc();
    let write = |k: &str, v: Option<String>| {
        let mut t = db.begin();
        match v {
            Some(v) => t.set(key(1, k), v.into_bytes()),
            None => t.delete(key(1, k)),
        }
        t.commit().unwrap();
    };
    let mut snapshots = Vec::new();
    for i in 0..100 {
        write("a", Some(format!("a{i}")));
        if i % 3 == 0 {
            write("c", Some(format!("c{i}")));
        }
        if i == 10 {
            write("b", Some("b".into()));
        }
        if i == 60 {
            write("b", None);
        }
        if i % 25 == 5 {
            snapshots.push((i, db.begin()));
        }
    }
    let values = |t: &mut Transaction| -> Vec<String> {
        t.scan_prefix(&[0x02]).unwrap().into_iter().map(|(_, v)| String::from_utf8(v).unwrap()).collect()
    };
    for (i, mut t) in snapshots {
        let c = i - i % 3;
        let mut expected = vec![format!("a{i}")];
        if (10..60).contains(&i) {
            expected.push("b".into());
        }
        expected.push(format!("c{c}"));
        assert_eq!(values(&mut t), expected, "snapshot after {i}");
    }
    let mut t = db.begin();
    assert_eq!(values(&mut t), vec!["a99".to_string(), "c99".to_string()]);
    t.set(key(1, "b"), b"own".to_vec());
    assert_eq!(values(&mut t), vec!["a99".to_string(), "own".to_string(), "c99".to_string()]);
}

/// Reads made under `record_reads` are returned; a commit writing a definition moves
/// `definitions_version` (a row write does not), so a snapshot taken before it no longer
/// matches one after; a replayed read of the definition makes a later commit conflict.
#[test]
fn recorded_definition_reads_tell_when_a_plan_still_holds() {
    let db = mvcc();
    let definition = crate::storage::keyspace::Keyspace::Catalog.key(b"t");
    let mut t = db.begin();
    t.set(definition.clone(), b"v1".to_vec());
    t.commit().unwrap();

    let mut planning = db.begin();
    let (value, reads) = planning.record_reads(|txn| txn.get(&definition).unwrap());
    assert_eq!(value, Some(b"v1".to_vec()));
    assert!(reads.only_definitions());
    let planned_at = planning.read_version();
    let (_, row_reads) = planning.record_reads(|txn| txn.get(&key(1, "a")).unwrap());
    assert!(!row_reads.only_definitions());

    let mut rows = db.begin();
    rows.set(key(1, "a"), b"1".to_vec());
    rows.commit().unwrap();
    let mut executing = db.begin();
    assert!(executing.definitions_as_of(planned_at), "a row write changes no definition");
    executing.replay_reads(&reads);
    executing.set(key(1, "b"), b"2".to_vec());

    let mut alter = db.begin();
    alter.set(definition.clone(), b"v2".to_vec());
    alter.commit().unwrap();
    assert!(!db.begin().definitions_as_of(planned_at), "the definition changed after the plan");
    assert!(matches!(executing.commit(), Err(Error::Serialization(_))), "the replayed read conflicts");

    let mut own = db.begin();
    own.set(crate::storage::keyspace::Keyspace::View.key(b"v"), b"x".to_vec());
    assert!(!own.definitions_as_of(own.read_version()), "its own definition writes");
}
