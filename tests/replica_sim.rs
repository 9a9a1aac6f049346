//! Deterministic simulation of the replica driver (`chronos::node::driver`) with the real MVCC
//! engine applying its entries.
//!
//! Every seed builds a group of three or five nodes in one process, driven by one seeded `StdRng`: a lossy
//! network (drops, delays, partitions), crashes that keep only what was synced to each node's
//! log and a prefix of its unflushed storage writes, failed log fsyncs (the node stops and is
//! restarted, as the process would be), storage that fails applies for a while (torn in the
//! middle of a batch; short failures are retried, long ones stop the node), snapshot builds
//! that fail, and clients that commit through `Mvcc::stage_commit` and read at read-index
//! points. Some proposals are bad on purpose: a batch stamped below the applied version,
//! which every replica must refuse the same way.
//!
//! Checked as it runs: whenever a node has applied index `i`, what it shows equals what every
//! other node showed at `i` (the applied state is a function of the committed log), and a
//! read at a read-index point sees every commit acknowledged before it was asked. Checked at
//! the end, once faults stop and the group converges: every node shows the same rows, every
//! acknowledged commit is there, no refused or rejected one is.
//!
//! * `cargo test --test replica_sim` runs the default seeds.
//! * `REPLICA_SIM_SEEDS=N` runs N seeds (`REPLICA_SIM_FIRST=F` starts at seed F instead of 0),
//!   `REPLICA_SIM_SEED=S` replays one; a failure prints the seed to replay.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chronos::error::{Error, Result};
use chronos::mvcc::{CommitRequest, Mvcc, WriteBatch};
use chronos::node::driver::{Built, Driver, DriverConfig, Input, Output, Ticket};
use chronos::raft::{self, Entry, HardState, Index, LogStore, MemLogStore, Membership, NodeId, Snapshot, Term};
use chronos::storage::{KeyValue, ScanIterator, Storage, StorageBatch};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const DEFAULT_SEEDS: u64 = 24;
const STEPS_PER_TICK: u64 = 4;

// ----- storage that crashes and fails ---------------------------------------------------------

/// An ordered map that forgets a suffix of its unflushed writes in a crash (a prefix of the
/// writes survives, as the `Storage` contract promises) and fails writes on demand.
#[derive(Default)]
struct SimStorage {
    state: Mutex<StorageState>,
}

#[derive(Default)]
struct StorageState {
    live: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Undo records of the writes since the last flush, oldest first.
    unflushed: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// While set, writes fail intermittently (decided by this generator); an in-order write
    /// that fails gets a few of its writes in first.
    failing: Option<StdRng>,
}

impl StorageState {
    /// Whether this write fails; if so, how many of its writes get in first.
    fn fails(&mut self) -> Option<usize> {
        let rng = self.failing.as_mut()?;
        rng.gen_bool(0.7).then(|| rng.gen_range(0..4))
    }
}

impl StorageState {
    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let old = match value {
            Some(v) => self.live.insert(key.clone(), v),
            None => self.live.remove(&key),
        };
        self.unflushed.push((key, old));
    }
}

fn io_error() -> Error {
    Error::Io("simulated write failure".into())
}

impl SimStorage {
    /// Keeps the first `keep` unflushed writes and forgets the rest.
    fn crash(&self, keep: usize) {
        let mut s = self.state.lock().unwrap();
        while s.unflushed.len() > keep {
            let (key, old) = s.unflushed.pop().unwrap();
            match old {
                Some(v) => s.live.insert(key, v),
                None => s.live.remove(&key),
            };
        }
        s.unflushed.clear();
        s.failing = None;
    }

    fn unflushed(&self) -> usize {
        self.state.lock().unwrap().unflushed.len()
    }

    fn set_failing(&self, failing: Option<StdRng>) {
        self.state.lock().unwrap().failing = failing;
    }
}

impl Storage for SimStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.state.lock().unwrap().live.get(key).cloned())
    }

    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> ScanIterator<'_> {
        let s = self.state.lock().unwrap();
        let items: Vec<Result<KeyValue>> = s.live.range(range).map(|(k, v)| Ok((k.clone(), v.clone()))).collect();
        Box::new(items.into_iter())
    }

    fn apply(&self, batch: StorageBatch) -> Result<()> {
        let mut s = self.state.lock().unwrap();
        if s.fails().is_some() {
            return Err(io_error());
        }
        for (key, value) in batch.ops {
            s.write(key, value);
        }
        Ok(())
    }

    fn apply_in_order(&self, writes: &mut dyn Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        let mut s = self.state.lock().unwrap();
        if let Some(torn) = s.fails() {
            // Torn: some of the writes get in before the failure.
            for (key, value) in writes.take(torn) {
                s.write(key, value);
            }
            return Err(io_error());
        }
        for (key, value) in writes {
            s.write(key, value);
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.state.lock().unwrap().unflushed.clear();
        Ok(())
    }
}

// ----- a log that fails its fsync -------------------------------------------------------------

/// A node's Raft log: the in-memory store (which forgets unsynced writes in a crash), sharing
/// its fsync with the engine's storage as the log tree and the data share one sled database.
struct SimLog {
    inner: MemLogStore,
    storage: Arc<SimStorage>,
    fail_sync: Arc<AtomicBool>,
}

impl LogStore for SimLog {
    fn append(&mut self, entries: &[Entry]) -> raft::Result<()> {
        self.inner.append(entries)
    }
    fn truncate(&mut self, from: Index) -> raft::Result<()> {
        self.inner.truncate(from)
    }
    fn entries(&self, lo: Index, hi: Index, max: usize) -> raft::Result<Vec<Entry>> {
        self.inner.entries(lo, hi, max)
    }
    fn term(&self, index: Index) -> raft::Result<Option<Term>> {
        self.inner.term(index)
    }
    fn first_index(&self) -> raft::Result<Index> {
        self.inner.first_index()
    }
    fn last_index(&self) -> raft::Result<Index> {
        self.inner.last_index()
    }
    fn compact(&mut self, upto: Index) -> raft::Result<()> {
        self.inner.compact(upto)
    }
    fn save_hard_state(&mut self, hs: HardState) -> raft::Result<()> {
        self.inner.save_hard_state(hs)
    }
    fn hard_state(&self) -> raft::Result<HardState> {
        self.inner.hard_state()
    }
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> raft::Result<()> {
        self.inner.save_snapshot(snapshot)
    }
    fn snapshot(&self) -> raft::Result<Option<Snapshot>> {
        self.inner.snapshot()
    }
    fn sync(&mut self) -> raft::Result<()> {
        if self.fail_sync.swap(false, Ordering::SeqCst) {
            return Err(raft::Error::Storage("simulated fsync failure".into()));
        }
        self.inner.sync()?;
        self.storage.flush().map_err(|e| raft::Error::Storage(e.to_string()))
    }
}

// ----- the simulation ---------------------------------------------------------------------------

struct SimNode {
    storage: Arc<SimStorage>,
    fail_sync: Arc<AtomicBool>,
    /// Running: the driver and its engine.
    up: Option<(Driver<SimLog>, Arc<Mvcc>)>,
    /// Down: the log, until `restart_at`.
    down: Option<MemLogStore>,
    restart_at: u64,
    /// Bumped at every crash: work scheduled for an earlier incarnation is dropped.
    incarnation: u64,
    /// Storage fails applies until this tick.
    failing_until: u64,
    tick_offset: u64,
    /// The last applied index whose state was checked.
    checked: Index,
}

/// What a client asked, by ticket.
enum Call {
    Write {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// A batch stamped below the applied version: must be refused everywhere.
    Bad {
        key: Vec<u8>,
    },
    /// A read point; every key acknowledged before the call must be visible at it.
    Read {
        acked_before: usize,
    },
}

#[derive(Default, Debug)]
struct Stats {
    acked: u64,
    refused: u64,
    unknown: u64,
    bad_refused: u64,
    reads: u64,
    crashes: u64,
    fsync_failures: u64,
    stalls_survived: u64,
    fatal_stalls: u64,
    snapshots_built: u64,
    snapshots_failed: u64,
    snapshots_installed: u64,
    skipped: u64,
}

struct Sim {
    rng: StdRng,
    /// Voters in the group (3 or 5: with five, an entry cut from one log can still commit).
    size: u64,
    /// Raft entries between snapshots (0: never).
    threshold: u64,
    step: u64,
    tick: u64,
    nodes: BTreeMap<NodeId, SimNode>,
    net: Vec<(u64, raft::Message)>,
    partition: Option<BTreeSet<NodeId>>,
    /// Snapshots being built: (due step, node, incarnation, index, version).
    builds: Vec<(u64, NodeId, u64, Index, u64)>,
    calls: HashMap<(NodeId, Ticket), Call>,
    next_ticket: Ticket,
    next_key: u64,
    /// Acknowledged writes, in order.
    acked: Vec<(Vec<u8>, Vec<u8>)>,
    /// Keys that must never appear (refused, or bad).
    absent: BTreeSet<Vec<u8>>,
    /// What a node showed at each applied index.
    digests: HashMap<Index, BTreeMap<Vec<u8>, Vec<u8>>>,
    faults: bool,
    drop_p: f64,
    max_delay: u64,
    crash_p: f64,
    stall_p: f64,
    stats: Stats,
}

fn driver_config(id: NodeId, threshold: u64) -> DriverConfig {
    let mut c = DriverConfig::new(id);
    c.raft.election_timeout = 10;
    c.raft.heartbeat_interval = 2;
    c.raft.snapshot_threshold = threshold;
    c.raft.snapshot_chunk_size = 512;
    c.raft.max_apply_batch = 8;
    c.snapshot_retry_ticks = 20;
    c.apply_retry_ticks = 12;
    c
}

/// The rows a node shows (everything under `k/` and `bad/` visible to a new transaction),
/// with its applied version under the empty key.
fn state(mvcc: &Arc<Mvcc>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = rows(mvcc);
    state.insert(Vec::new(), mvcc.durable_version().to_be_bytes().to_vec());
    state
}

/// The rows a node shows (everything under `k/` and `bad/` visible to a new transaction).
fn rows(mvcc: &Arc<Mvcc>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut txn = mvcc.begin();
    let mut rows: BTreeMap<Vec<u8>, Vec<u8>> = txn.scan_prefix(b"k/").expect("scan").into_iter().collect();
    rows.extend(txn.scan_prefix(b"bad/").expect("scan"));
    rows
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let threshold = *[0u64, 6, 25].choose(&mut rng).unwrap();
        let size = *[3u64, 5].choose(&mut rng).unwrap();
        let mut sim = Sim {
            drop_p: *[0.0, 0.05].choose(&mut rng).unwrap(),
            max_delay: *[2u64, 8].choose(&mut rng).unwrap(),
            crash_p: *[0.0, 0.004, 0.01].choose(&mut rng).unwrap(),
            stall_p: *[0.0, 0.004, 0.01].choose(&mut rng).unwrap(),
            rng,
            size,
            threshold,
            step: 0,
            tick: 0,
            nodes: BTreeMap::new(),
            net: Vec::new(),
            partition: None,
            builds: Vec::new(),
            calls: HashMap::new(),
            next_ticket: 1,
            next_key: 0,
            acked: Vec::new(),
            absent: BTreeSet::new(),
            digests: HashMap::new(),
            faults: true,
            stats: Stats::default(),
        };
        for id in 1..=size {
            let storage = Arc::new(SimStorage::default());
            let tick_offset = sim.rng.gen_range(0..STEPS_PER_TICK);
            sim.nodes.insert(
                id,
                SimNode {
                    storage,
                    fail_sync: Arc::new(AtomicBool::new(false)),
                    up: None,
                    down: Some(MemLogStore::new()),
                    restart_at: 0,
                    incarnation: 0,
                    failing_until: 0,
                    tick_offset,
                    checked: 0,
                },
            );
            sim.start(id);
        }
        sim
    }

    /// Opens node `id` from what it kept: its log and its storage.
    fn start(&mut self, id: NodeId) {
        let threshold = self.threshold;
        let rng = StdRng::seed_from_u64(self.rng.gen());
        let n = self.nodes.get_mut(&id).unwrap();
        let inner = n.down.take().expect("a stopped node");
        let mvcc = Mvcc::new(n.storage.clone()).expect("open the engine");
        let log = SimLog { inner, storage: n.storage.clone(), fail_sync: n.fail_sync.clone() };
        let voters = Membership::with_voters(1..=self.size);
        let driver = Driver::new(driver_config(id, threshold), voters, log, &mvcc, rng).expect("open the driver");
        // The applied version is written just before the applied index: a crash between the
        // two leaves the next entry's writes visible until it is applied again (idempotently).
        // The state is checked again from the next entry applied on.
        n.checked = driver.applied_index();
        n.up = Some((driver, mvcc));
    }

    /// Stops node `id` as a crash would: unsynced log writes and a suffix of unflushed
    /// storage writes are lost; callers waiting on it never hear back.
    fn crash(&mut self, id: NodeId, down_ticks: u64) {
        let keep = {
            let n = &self.nodes[&id];
            let unflushed = n.storage.unflushed();
            self.rng.gen_range(0..=unflushed)
        };
        let n = self.nodes.get_mut(&id).unwrap();
        let Some((driver, _)) = n.up.take() else { return };
        let mut log = driver.into_store().inner;
        log.restart();
        n.storage.crash(keep);
        n.down = Some(log);
        n.incarnation += 1;
        n.failing_until = 0;
        n.fail_sync.store(false, Ordering::SeqCst);
        n.restart_at = self.tick + down_ticks;
        self.stats.crashes += 1;
        // Whoever waited on this node learns nothing: the outcome is unknown.
        let lost: Vec<_> = self.calls.keys().filter(|(node, _)| *node == id).copied().collect();
        for key in lost {
            if let Some(Call::Write { .. }) = self.calls.remove(&key) {
                self.stats.unknown += 1;
            }
        }
    }

    /// Gives node `id` an input and acts on what comes out.
    fn input(&mut self, id: NodeId, input: Input) {
        let mut out = Vec::new();
        let result = {
            let Some((driver, mvcc)) = self.nodes.get_mut(&id).and_then(|n| n.up.as_mut()) else { return };
            driver.handle(mvcc, input, &mut out).and_then(|()| driver.advance(mvcc, &mut out))
        };
        if let Err(e) = &result {
            let (driver, _) = self.nodes.get_mut(&id).unwrap().up.as_mut().unwrap();
            driver.fail(e, &mut out);
        }
        self.outputs(id, out);
        self.check_applied(id);
        if let Err(e) = result {
            // The process exits on a failure it cannot retry; its supervisor restarts it.
            match e {
                Error::Io(ref m) if m.contains("fsync") => self.stats.fsync_failures += 1,
                _ => self.stats.fatal_stalls += 1,
            }
            let down = self.rng.gen_range(5..40);
            self.crash(id, down);
        }
    }

    fn outputs(&mut self, id: NodeId, out: Vec<Output>) {
        for output in out {
            match output {
                Output::Send(message) => {
                    if self.rng.gen_bool(self.drop_p) {
                        continue;
                    }
                    let at = self.step + self.rng.gen_range(1..=self.max_delay);
                    self.net.push((at, message));
                }
                Output::Done(ticket, result) => self.done(id, ticket, result),
                Output::Read(ticket, result) => self.read(id, ticket, result),
                Output::BuildSnapshot { index, version, writer } => {
                    assert!(writer.is_none(), "the in-memory log takes snapshots whole");
                    let due = self.step + self.rng.gen_range(1..20);
                    let incarnation = self.nodes[&id].incarnation;
                    self.builds.push((due, id, incarnation, index, version));
                }
            }
        }
    }

    fn done(&mut self, id: NodeId, ticket: Ticket, result: Result<()>) {
        match (self.calls.remove(&(id, ticket)), result) {
            (Some(Call::Write { key, value }), Ok(())) => {
                self.stats.acked += 1;
                self.acked.push((key, value));
            }
            (Some(Call::Write { key, .. }), Err(Error::Serialization(m))) => {
                assert!(m.contains("leadership changed"), "a valid write was refused: {m}");
                // Refused before it reached the log, or its entry was replaced: never applied.
                self.stats.refused += 1;
                self.absent.insert(key);
            }
            (Some(Call::Write { .. }), Err(e)) => {
                assert!(matches!(e, Error::CommitUnknown(_) | Error::Io(_)), "unexpected commit error: {e:?}");
                self.stats.unknown += 1;
            }
            (Some(Call::Bad { key }), Ok(())) => panic!("a batch below the applied version was applied: {key:?}"),
            (Some(Call::Bad { key }), Err(_)) => {
                self.stats.bad_refused += 1;
                self.absent.insert(key);
            }
            (Some(Call::Read { .. }), _) => panic!("a read answered as a commit"),
            (None, _) => {}
        }
    }

    fn read(&mut self, id: NodeId, ticket: Ticket, result: Result<u64>) {
        let Some(Call::Read { acked_before }) = self.calls.remove(&(id, ticket)) else { return };
        let Ok(version) = result else { return };
        let (_, mvcc) = self.nodes[&id].up.as_ref().expect("a running node answered");
        assert!(mvcc.durable_version() >= version, "a read point that is not visible on the node that gave it");
        let shown = rows(mvcc);
        for (key, value) in &self.acked[..acked_before] {
            assert_eq!(shown.get(key), Some(value), "node {id}: a read point misses an acknowledged write");
        }
        self.stats.reads += 1;
    }

    /// What node `id` shows must be what every node showed at the same applied index.
    fn check_applied(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).unwrap();
        let Some((driver, mvcc)) = n.up.as_ref() else { return };
        let applied = driver.applied_index();
        if applied == n.checked {
            return;
        }
        n.checked = applied;
        let shown = state(mvcc);
        match self.digests.get(&applied) {
            Some(seen) if seen != &shown => {
                let differ: Vec<String> = seen
                    .keys()
                    .chain(shown.keys())
                    .filter(|k| seen.get(*k) != shown.get(*k))
                    .map(|k| String::from_utf8_lossy(k).to_string())
                    .collect();
                panic!("node {id} shows other rows than another node did at index {applied}: {differ:?}");
            }
            Some(_) => {}
            None => {
                self.digests.insert(applied, shown);
            }
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes.iter().find(|(_, n)| n.up.as_ref().is_some_and(|(d, _)| d.is_ready())).map(|(id, _)| *id)
    }

    /// Issues one client request to the leader, if there is one; returns whom it asked.
    fn client(&mut self) -> Option<(NodeId, Ticket)> {
        let id = self.leader()?;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let roll: f64 = self.rng.gen();
        let mvcc = self.nodes[&id].up.as_ref().unwrap().1.clone();
        if roll < 0.1 {
            self.calls.insert((id, ticket), Call::Read { acked_before: self.acked.len() });
            self.input(id, Input::ReadIndex(ticket));
        } else if roll < 0.14 && mvcc.durable_version() > 1 {
            let key = format!("bad/{}", self.next_key).into_bytes();
            self.next_key += 1;
            // Far below the applied version, or just below it.
            let version = if self.rng.gen_bool(0.5) { 1 } else { mvcc.durable_version() - 1 };
            let batch = WriteBatch { version, writes: vec![(key.clone(), Some(b"never".to_vec()))] };
            self.calls.insert((id, ticket), Call::Bad { key });
            self.input(id, Input::Propose(batch, ticket));
        } else {
            let key = format!("k/{:06}", self.next_key).into_bytes();
            let value = format!("v{}", self.rng.gen::<u32>()).into_bytes();
            self.next_key += 1;
            let request = CommitRequest {
                read_version: mvcc.durable_version(),
                writes: vec![(key.clone(), Some(value.clone()))],
                read_keys: Vec::new(),
                read_domains: Vec::new(),
            };
            match mvcc.stage_commit(&request, Ok) {
                Ok((_, batch)) => {
                    self.calls.insert((id, ticket), Call::Write { key, value });
                    self.input(id, Input::Propose(batch, ticket));
                }
                Err(e) => panic!("unique keys cannot conflict: {e:?}"),
            }
        }
        Some((id, ticket))
    }

    fn deliver(&mut self) {
        let step = self.step;
        let (mut due, rest): (Vec<_>, Vec<_>) = self.net.drain(..).partition(|(at, _)| *at <= step);
        self.net = rest;
        due.shuffle(&mut self.rng);
        for (_, message) in due {
            let reachable = match &self.partition {
                Some(side) => side.contains(&message.from) == side.contains(&message.to),
                None => true,
            };
            if reachable {
                self.input(message.to, Input::Message(message));
            }
        }
        let (due, rest): (Vec<_>, Vec<_>) = self.builds.drain(..).partition(|b| b.0 <= step);
        self.builds = rest;
        for (_, id, incarnation, index, version) in due {
            let n = &self.nodes[&id];
            if n.incarnation != incarnation {
                continue;
            }
            let Some((_, mvcc)) = n.up.as_ref() else { continue };
            let input = if self.faults && self.rng.gen_bool(0.2) {
                self.stats.snapshots_failed += 1;
                Input::SnapshotFailed
            } else {
                self.stats.snapshots_built += 1;
                Input::SnapshotBuilt(index, Built::Data(mvcc.snapshot_at(version).expect("snapshot")))
            };
            self.input(id, input);
        }
    }

    fn faults(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let n = &self.nodes[&id];
            if n.up.is_none() {
                if self.tick >= n.restart_at {
                    self.start(id);
                }
                continue;
            }
            if n.failing_until != 0 && self.tick >= n.failing_until {
                n.storage.set_failing(None);
                self.nodes.get_mut(&id).unwrap().failing_until = 0;
                self.stats.stalls_survived += 1;
            }
            if !self.faults {
                continue;
            }
            if self.rng.gen_bool(self.crash_p) {
                let down = self.rng.gen_range(1..60);
                self.crash(id, down);
            } else if self.rng.gen_bool(self.crash_p / 2.0) {
                self.nodes[&id].fail_sync.store(true, Ordering::SeqCst);
            } else if self.nodes[&id].failing_until == 0 && self.rng.gen_bool(self.stall_p) {
                // Mostly shorter than the driver's patience, sometimes longer.
                let ticks = self.rng.gen_range(1..20);
                let failing = StdRng::seed_from_u64(self.rng.gen());
                let n = self.nodes.get_mut(&id).unwrap();
                n.storage.set_failing(Some(failing));
                n.failing_until = self.tick + ticks;
            }
        }
        if self.faults && self.rng.gen_bool(0.01) {
            // A minority cut off from the rest: one node, or (of five) two.
            let mut ids: Vec<NodeId> = (1..=self.size).collect();
            ids.shuffle(&mut self.rng);
            let minority = self.rng.gen_range(1..=(self.size - 1) / 2) as usize;
            self.partition = Some(ids[..minority].iter().copied().collect());
        } else if self.partition.is_some() && (!self.faults || self.rng.gen_bool(0.05)) {
            self.partition = None;
        }
    }

    fn run_steps(&mut self, steps: u64, clients: bool) {
        for _ in 0..steps {
            self.step += 1;
            self.deliver();
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                if self.step % STEPS_PER_TICK == self.nodes[&id].tick_offset {
                    self.input(id, Input::Tick);
                }
            }
            if self.step.is_multiple_of(STEPS_PER_TICK) {
                self.tick += 1;
                self.faults();
            }
            if clients && self.rng.gen_bool(0.3) {
                self.client();
            }
        }
    }

    fn converged(&self) -> bool {
        let applied: Vec<Option<(Index, Index)>> = self
            .nodes
            .values()
            .map(|n| n.up.as_ref().map(|(d, _)| (d.applied_index(), d.node().commit_index())))
            .collect();
        self.leader().is_some()
            && applied.iter().all(|a| a.is_some_and(|(applied, commit)| applied == commit))
            && applied.windows(2).all(|w| w[0].map(|a| a.0) == w[1].map(|a| a.0))
    }

    fn run(mut self) -> Stats {
        self.run_steps(6000, true);
        // Heal: no more faults, everyone back, and a last write that must reach everyone.
        self.faults = false;
        for n in self.nodes.values() {
            n.storage.set_failing(None);
        }
        let mut settle = 0;
        while !self.converged() || self.leader().is_none() {
            self.run_steps(STEPS_PER_TICK, false);
            settle += 1;
            assert!(settle < 5000, "the group did not converge after the faults stopped");
        }
        self.client_until_acked();
        for (id, n) in &self.nodes {
            let (driver, mvcc) = n.up.as_ref().unwrap();
            let shown = rows(mvcc);
            for (key, value) in &self.acked {
                assert_eq!(shown.get(key), Some(value), "node {id} lost an acknowledged write");
            }
            for key in &self.absent {
                assert!(!shown.contains_key(key), "node {id} shows a refused write {key:?}");
            }
            assert!(shown.keys().all(|k| k.starts_with(b"k/")), "node {id} shows a bad batch");
            self.stats.snapshots_installed += driver.snapshots_installed();
            self.stats.skipped += driver.skipped_entries();
        }
        // Every caller heard back (those of crashed nodes excepted: they were dropped).
        let unanswered: Vec<_> = self.calls.iter().map(|(k, c)| (k, matches!(c, Call::Read { .. }))).collect();
        assert!(unanswered.is_empty(), "callers never answered: {unanswered:?}");
        let shown: Vec<_> = self.nodes.values().map(|n| rows(&n.up.as_ref().unwrap().1)).collect();
        assert!(shown.windows(2).all(|w| w[0] == w[1]), "the nodes show different rows");
        self.stats
    }

    /// Commits one more write and waits for it to reach every node.
    fn client_until_acked(&mut self) {
        let before = self.acked.len();
        let mut rounds = 0;
        let mut asked = None;
        // Until every caller has heard back, too: a proposal still in flight is committed by
        // the next one or dropped with its leader's log.
        while self.acked.len() == before || !self.converged() || !self.calls.is_empty() {
            if self.acked.len() == before && asked.is_none_or(|call| !self.calls.contains_key(&call)) {
                asked = self.client();
            }
            self.run_steps(STEPS_PER_TICK, false);
            rounds += 1;
            if rounds >= 5000 {
                let waiting: Vec<_> = self
                    .calls
                    .iter()
                    .map(|(k, c)| {
                        (
                            k,
                            match c {
                                Call::Write { .. } => "write",
                                Call::Bad { .. } => "bad",
                                Call::Read { .. } => "read",
                            },
                        )
                    })
                    .collect();
                let state: Vec<_> = self
                    .nodes
                    .iter()
                    .map(|(id, n)| {
                        n.up.as_ref().map(|(d, _)| {
                            (
                                *id,
                                d.node().role(),
                                d.node().term(),
                                d.applied_index(),
                                d.node().commit_index(),
                                d.node().store().last_index(),
                                d.is_ready(),
                            )
                        })
                    })
                    .collect();
                panic!(
                    "a write after the faults stopped was never acknowledged; waiting: {waiting:?}; nodes: {state:?}"
                );
            }
        }
    }
}

fn run_seed(seed: u64) -> Stats {
    let result = std::panic::catch_unwind(|| Sim::new(seed).run());
    match result {
        Ok(stats) => stats,
        Err(e) => {
            eprintln!("replica_sim failed: replay with REPLICA_SIM_SEED={seed}");
            std::panic::resume_unwind(e)
        }
    }
}

#[test]
fn replicas_apply_the_committed_log_through_faults() {
    let replay = std::env::var("REPLICA_SIM_SEED").is_ok();
    let seeds: Vec<u64> = match std::env::var("REPLICA_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("REPLICA_SIM_SEED is a number")],
        Err(_) => {
            let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse().ok());
            let first = var("REPLICA_SIM_FIRST").unwrap_or(0);
            (first..first + var("REPLICA_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect()
        }
    };
    let mut total = Stats::default();
    for seed in seeds {
        let s = run_seed(seed);
        total.acked += s.acked;
        total.refused += s.refused;
        total.unknown += s.unknown;
        total.bad_refused += s.bad_refused;
        total.reads += s.reads;
        total.crashes += s.crashes;
        total.fsync_failures += s.fsync_failures;
        total.stalls_survived += s.stalls_survived;
        total.fatal_stalls += s.fatal_stalls;
        total.snapshots_built += s.snapshots_built;
        total.snapshots_failed += s.snapshots_failed;
        total.snapshots_installed += s.snapshots_installed;
        total.skipped += s.skipped;
    }
    eprintln!("{total:?}");
    if replay {
        return;
    }
    // The faults the simulation is for did happen.
    assert!(total.acked > 0 && total.reads > 0, "{total:?}");
    assert!(total.crashes > 0 && total.fsync_failures > 0 && total.stalls_survived > 0, "{total:?}");
    assert!(total.bad_refused > 0 && total.skipped > 0, "{total:?}");
    assert!(total.snapshots_built > 0 && total.snapshots_failed > 0 && total.snapshots_installed > 0, "{total:?}");
}

// ----- a scripted scenario ------------------------------------------------------------------------

/// Five drivers over a network the test steers message by message.
struct Group {
    nodes: BTreeMap<NodeId, (Driver<SimLog>, Arc<Mvcc>)>,
    outbox: Vec<raft::Message>,
    answers: HashMap<Ticket, Result<()>>,
}

impl Group {
    fn new(size: u64) -> Group {
        let mut nodes = BTreeMap::new();
        for id in 1..=size {
            let storage = Arc::new(SimStorage::default());
            let mvcc = Mvcc::new(storage.clone()).unwrap();
            let log = SimLog { inner: MemLogStore::new(), storage, fail_sync: Arc::new(AtomicBool::new(false)) };
            let voters = Membership::with_voters(1..=size);
            let rng = StdRng::seed_from_u64(id);
            nodes.insert(id, (Driver::new(driver_config(id, 0), voters, log, &mvcc, rng).unwrap(), mvcc));
        }
        Group { nodes, outbox: Vec::new(), answers: HashMap::new() }
    }

    fn input(&mut self, id: NodeId, input: Input) {
        let (driver, mvcc) = self.nodes.get_mut(&id).unwrap();
        let mut out = Vec::new();
        driver.handle(mvcc, input, &mut out).and_then(|()| driver.advance(mvcc, &mut out)).unwrap();
        for output in out {
            match output {
                Output::Send(message) => self.outbox.push(message),
                Output::Done(ticket, result) => {
                    self.answers.insert(ticket, result);
                }
                Output::Read(..) | Output::BuildSnapshot { .. } => {}
            }
        }
    }

    fn driver(&self, id: NodeId) -> &Driver<SimLog> {
        &self.nodes[&id].0
    }

    /// Ticks `ticking` and delivers what `link` lets through (the rest is lost), until `done`
    /// holds; checked after every delivery, so the messages still queued then are dropped.
    fn run_until(&mut self, ticking: &[NodeId], link: impl Fn(NodeId, NodeId) -> bool, done: impl Fn(&Group) -> bool) {
        for _ in 0..2000 {
            for &id in ticking {
                self.input(id, Input::Tick);
                if done(self) {
                    self.outbox.clear();
                    return;
                }
            }
            while !self.outbox.is_empty() {
                for message in std::mem::take(&mut self.outbox) {
                    if link(message.from, message.to) {
                        self.input(message.to, Input::Message(message));
                        if done(self) {
                            self.outbox.clear();
                            return;
                        }
                    }
                }
            }
        }
        panic!("the scenario did not reach its next step");
    }

    fn leader_among(&self, ids: &[NodeId]) -> Option<NodeId> {
        ids.iter().copied().find(|id| self.driver(*id).node().is_leader())
    }
}

/// A proposal cut from its leader's log can still be committed by a later leader that holds
/// it, so its proposer must hear "outcome unknown", never "failed, retry" (a retry would
/// apply it twice). Five voters: A leads and gets W to B only; C wins with D and E and
/// reaches only A (cutting W from A's log), then dies; B wins with D and E and commits W.
#[test]
fn a_proposal_cut_from_its_log_can_still_commit_elsewhere() {
    let mut g = Group::new(5);
    let all: Vec<NodeId> = (1..=5).collect();
    g.run_until(&all, |_, _| true, |g| g.leader_among(&all).is_some_and(|l| g.driver(l).is_ready()));
    let a = g.leader_among(&all).unwrap();
    let last = g.driver(a).node().store().last_index().unwrap();
    g.run_until(&all, |_, _| true, |g| all.iter().all(|id| g.driver(*id).applied_index() == last));
    let others: Vec<NodeId> = all.iter().copied().filter(|id| *id != a).collect();
    let (b, rest) = (others[0], &others[1..]);

    // A proposes W; only B gets it.
    let mvcc = g.nodes[&a].1.clone();
    let request = CommitRequest {
        read_version: mvcc.durable_version(),
        writes: vec![(b"k/w".to_vec(), Some(b"w".to_vec()))],
        read_keys: Vec::new(),
        read_domains: Vec::new(),
    };
    let (_, batch) = mvcc.stage_commit(&request, Ok).unwrap();
    g.input(a, Input::Propose(batch, 1));
    let w = last + 1;
    g.run_until(
        &[],
        |f, t| (f, t) == (a, b) || (f, t) == (b, a),
        |g| g.driver(b).node().store().last_index().unwrap() == w,
    );

    // One of C, D, E wins with the votes of the other two; its first entry reaches nobody.
    let cde = rest.to_vec();
    g.run_until(&cde, |f, t| cde.contains(&f) && cde.contains(&t), |g| g.leader_among(&cde).is_some());
    let c = g.leader_among(&cde).unwrap();
    let de: Vec<NodeId> = cde.iter().copied().filter(|id| *id != c).collect();
    // C reaches A alone: A steps down and W leaves its log.
    g.run_until(&[c], |f, t| (f, t) == (c, a) || (f, t) == (a, c), |g| g.answers.contains_key(&1));
    let answer = g.answers[&1].clone();
    assert!(matches!(answer, Err(Error::CommitUnknown(_))), "W's proposer was told {answer:?}");

    // C is gone. B, holding W, wins with D and E and commits W.
    let bde = [b, de[0], de[1]];
    g.run_until(
        &bde,
        |f, t| bde.contains(&f) && bde.contains(&t),
        |g| g.driver(b).node().is_leader() && g.driver(b).applied_index() > w,
    );
    let shown = rows(&g.nodes[&b].1);
    assert_eq!(shown.get(b"k/w".as_slice()), Some(&b"w".to_vec()), "W was committed after all");
}
