//! Property tests of the log stores against a simple model: appends,
//! truncations, snapshots, compactions, hard states, syncs and restarts.
//! `MemLogStore` restarts as after a crash (losing exactly the unsynced
//! writes); `SledLogStore` is synced, closed and reopened from its files.

use std::collections::BTreeMap;

use chronos::raft::{
    Entry, EntryData, HardState, Index, LogStore, MemLogStore, Membership, SledLogStore, Snapshot, SnapshotMeta, Term,
};
use proptest::prelude::*;

#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    log: BTreeMap<Index, Term>,
    offset: Index,
    offset_term: Term,
    hs: HardState,
    snapshot: Option<(Index, Term)>,
}

impl Model {
    fn term(&self, i: Index) -> Option<Term> {
        if i == self.offset {
            Some(self.offset_term)
        } else {
            self.log.get(&i).copied()
        }
    }
    fn last(&self) -> Index {
        self.log.keys().next_back().copied().unwrap_or(self.offset)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append { n: usize, term_bump: u64, bad_index: bool },
    Truncate(usize),
    Snapshot { pos: usize, matching: bool },
    Compact(usize),
    HardState(u64, u64),
    Sync,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..5, 0u64..2, prop::bool::weighted(0.1))
            .prop_map(|(n, term_bump, bad_index)| Op::Append { n, term_bump, bad_index }),
        2 => (0usize..20).prop_map(Op::Truncate),
        1 => (0usize..20, any::<bool>()).prop_map(|(pos, matching)| Op::Snapshot { pos, matching }),
        1 => (0usize..20).prop_map(Op::Compact),
        1 => (0u64..10, 0u64..50).prop_map(|(t, c)| Op::HardState(t, c)),
        2 => Just(Op::Sync),
        1 => Just(Op::Restart),
    ]
}

fn mk_entry(index: Index, term: Term) -> Entry {
    Entry { index, term, data: EntryData::Command(index.to_le_bytes().to_vec()) }
}

/// A store under test and how it restarts.
trait Harness {
    fn store(&mut self) -> &mut dyn LogStore;
    /// Restarts the store. Returns true if unsynced writes are lost (a crash), false if the
    /// store was synced first (a clean reopen).
    fn restart(&mut self) -> bool;
    /// Writes not yet synced, when the store can tell.
    fn unsynced(&self) -> Option<usize>;
}

impl Harness for MemLogStore {
    fn store(&mut self) -> &mut dyn LogStore {
        self
    }
    fn restart(&mut self) -> bool {
        MemLogStore::restart(self);
        true
    }
    fn unsynced(&self) -> Option<usize> {
        Some(self.unsynced_writes())
    }
}

struct Sled {
    dir: tempfile::TempDir,
    store: Option<SledLogStore>,
}

impl Sled {
    fn open(dir: tempfile::TempDir) -> Self {
        // sled lets go of its lock file from its own threads after the last handle is dropped:
        // a reopen right after a restart may find it still held for a moment.
        let mut waited = 0;
        let db = loop {
            match sled::Config::new().path(dir.path()).open() {
                Ok(db) => break db,
                Err(e) if waited < 500 && e.to_string().contains("could not acquire lock") => {
                    waited += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("reopening sled: {e}"),
            }
        };
        let store = SledLogStore::open(
            db.open_tree(chronos::raft::LOG_TREE).unwrap(),
            db.open_tree(chronos::raft::STATE_TREE).unwrap(),
        )
        .unwrap();
        Sled { dir, store: Some(store) }
    }
}

impl Harness for Sled {
    fn store(&mut self) -> &mut dyn LogStore {
        self.store.as_mut().unwrap()
    }
    fn restart(&mut self) -> bool {
        self.store().sync().unwrap();
        self.store = None;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        *self = Sled::open(dir);
        false
    }
    fn unsynced(&self) -> Option<usize> {
        None
    }
}

fn check(store: &dyn LogStore, m: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(store.first_index().unwrap(), m.offset + 1);
    prop_assert_eq!(store.last_index().unwrap(), m.last());
    prop_assert_eq!(store.hard_state().unwrap(), m.hs);
    let meta = store.snapshot_meta().unwrap().map(|s| (s.index, s.term));
    prop_assert_eq!(meta, m.snapshot);
    for i in m.offset.saturating_sub(2)..m.last() + 3 {
        prop_assert_eq!(store.term(i).unwrap(), m.term(i), "term({})", i);
    }
    let es = store.entries(m.offset + 1, m.last() + 1, usize::MAX).unwrap();
    let got: Vec<(Index, Term)> = es.iter().map(|e| (e.index, e.term)).collect();
    let want: Vec<(Index, Term)> = m.log.iter().map(|(i, t)| (*i, *t)).collect();
    prop_assert_eq!(got, want);
    for e in &es {
        prop_assert_eq!(&e.data, &mk_entry(e.index, e.term).data);
    }
    // Bounded reads.
    let two = store.entries(m.offset + 1, m.last() + 1, 2).unwrap();
    prop_assert_eq!(two.len(), m.log.len().min(2));
    if m.offset > 0 {
        prop_assert!(store.entries(m.offset, m.last() + 1, 10).is_err(), "compacted range readable");
    }
    Ok(())
}

fn run(h: &mut dyn Harness, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut live = Model::default();
    let mut durable = Model::default();
    for op in ops {
        match op {
            Op::Append { n, term_bump, bad_index } => {
                let last = live.last();
                let base = live.term(last).unwrap_or(0) + term_bump;
                let start = if bad_index { last + 2 } else { last + 1 };
                let es: Vec<Entry> = (0..n as u64).map(|k| mk_entry(start + k, base)).collect();
                let r = h.store().append(&es);
                if bad_index {
                    prop_assert!(r.is_err());
                } else {
                    prop_assert!(r.is_ok());
                    for e in &es {
                        live.log.insert(e.index, e.term);
                    }
                }
            }
            Op::Truncate(k) => {
                let from = live.offset + (k as u64 % (live.log.len() as u64 + 3));
                let r = h.store().truncate(from);
                if from <= live.offset && from <= live.last() {
                    prop_assert!(r.is_err());
                } else {
                    prop_assert!(r.is_ok());
                    live.log.retain(|i, _| *i < from);
                }
            }
            Op::Snapshot { pos, matching } => {
                let idx = live.offset + (pos as u64 % (live.log.len() as u64 + 2));
                let term = match live.term(idx) {
                    Some(t) if matching => t,
                    Some(t) => t + 1,
                    None => live.term(live.last()).unwrap_or(0) + 1,
                };
                let snap = Snapshot {
                    meta: SnapshotMeta { index: idx, term, membership: Membership::with_voters([1]) },
                    data: vec![idx as u8],
                };
                prop_assert!(h.store().save_snapshot(&snap).is_ok());
                if live.term(idx) == Some(term) {
                    live.log.retain(|i, _| *i > idx);
                } else {
                    live.log.clear();
                }
                live.offset = idx;
                live.offset_term = term;
                live.snapshot = Some((idx, term));
            }
            Op::Compact(k) => {
                let upto = live.offset + (k as u64 % (live.log.len() as u64 + 2));
                let snap = live.snapshot.map_or(0, |s| s.0);
                let r = h.store().compact(upto);
                if upto <= live.offset {
                    prop_assert!(r.is_ok());
                } else if upto > snap || upto > live.last() {
                    prop_assert!(r.is_err());
                } else {
                    prop_assert!(r.is_ok());
                    live.offset_term = live.term(upto).unwrap();
                    live.log.retain(|i, _| *i > upto);
                    live.offset = upto;
                }
            }
            Op::HardState(t, c) => {
                let hs = HardState { term: t, vote: if t % 2 == 0 { Some(t) } else { None }, commit: c };
                h.store().save_hard_state(hs).unwrap();
                live.hs = hs;
            }
            Op::Sync => {
                h.store().sync().unwrap();
                durable = live.clone();
            }
            Op::Restart => {
                if h.restart() {
                    live = durable.clone();
                } else {
                    durable = live.clone();
                }
            }
        }
        check(h.store(), &live)?;
        if h.unsynced() == Some(0) {
            prop_assert_eq!(&live, &durable);
        }
    }
    // Everything synced survives a restart unchanged.
    h.store().sync().unwrap();
    h.restart();
    check(h.store(), &live)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mem_log_store_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        run(&mut MemLogStore::new(), ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sled_log_store_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        run(&mut Sled::open(tempfile::tempdir().unwrap()), ops)?;
    }
}
