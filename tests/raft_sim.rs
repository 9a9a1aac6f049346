//! Deterministic whole-cluster simulation of the Raft module.
//!
//! Every seed builds a cluster of 3 or 5 nodes in one process, driven by a
//! single seeded `StdRng`: a lossy network (drops, delays, duplicates,
//! reorders, partitions), crashes that keep only what was synced to each
//! node's `MemLogStore`, restarts, membership changes, leadership transfers,
//! log compaction with chunked snapshot installs, and clients issuing puts
//! and linearizable gets against a key-value state machine. Invariants are
//! checked as the run goes; at the end the client history is checked for
//! linearizability.
//!
//! * `cargo test --test raft_sim` runs the default seeds.
//! * `RAFT_SIM_SEEDS=N` runs N seeds (soak; `RAFT_SIM_FIRST=F` starts at
//!   seed F instead of 0), `RAFT_SIM_SEED=S` replays exactly one seed.
//! * A failure prints `RAFT_SIM_SEED=S` to replay it.

#[path = "raft_support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use chronos::raft::{
    ConfChange, Config, Entry, EntryData, Index, LogStore, MemLogStore, Membership, Message, MessageBody, Node, NodeId,
    Ready, Term,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use support::lin::{check_history, Op, OpKind};

fn trace() -> bool {
    std::env::var("RAFT_SIM_TRACE").is_ok()
}

const DEFAULT_SEEDS: u64 = 500;
/// Simulation steps per node tick. Nodes tick at staggered offsets.
const STEPS_PER_TICK: u64 = 4;

/// The application: a tiny durable key-value state machine. Durable means it
/// survives crashes together with its applied index, as a real state
/// machine persisting `applied` atomically with its data would.
#[derive(Clone, Debug, Default)]
struct Kv {
    map: BTreeMap<String, String>,
    applied: Index,
}

impl Kv {
    fn apply(&mut self, e: &Entry) {
        if let EntryData::Command(cmd) = &e.data {
            if let Some((_, _, key, value)) = decode(cmd) {
                self.map.insert(key, value);
            }
        }
        self.applied = e.index;
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut s = format!("{}\n", self.applied);
        for (k, v) in &self.map {
            s.push_str(&format!("{k}={v}\n"));
        }
        s.into_bytes()
    }

    fn restore(data: &[u8]) -> Kv {
        let s = String::from_utf8_lossy(data);
        let mut lines = s.lines();
        let applied = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let map = lines.filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect();
        Kv { map, applied }
    }

    fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.map.hash(&mut h);
        h.finish()
    }
}

fn encode(client: usize, op: u64, key: &str, value: &str) -> Vec<u8> {
    format!("{client} {op} {key} {value}").into_bytes()
}

fn decode(cmd: &[u8]) -> Option<(usize, u64, String, String)> {
    let s = std::str::from_utf8(cmd).ok()?;
    let mut it = s.split(' ');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.into(), it.next()?.into()))
}

struct SimNode {
    cfg: Config,
    bootstrap: Membership,
    node: Option<Node<MemLogStore>>,
    down_store: Option<MemLogStore>,
    restart_at: u64,
    tick_offset: u64,
    kv: Kv,
}

enum PendingKind {
    Put { node: NodeId, index: Index, cmd: Vec<u8> },
    Get { node: NodeId, read_id: u64, key: String },
}

struct Pending {
    hist: usize,
    kind: PendingKind,
    deadline: u64,
}

#[derive(Clone, Debug)]
struct Params {
    n: usize,
    ticks: u64,
    drop: f64,
    dup: f64,
    max_delay: u64,
    crash_p: f64,
    partition_p: f64,
    membership: bool,
    transfers: bool,
    lease: bool,
    check_quorum: bool,
    pre_vote: bool,
    clock_skew: f64,
    snapshot_threshold: u64,
    chunk: usize,
    max_append: usize,
    max_inflight: usize,
    clients: usize,
    keys: usize,
}

struct Sim {
    rng: StdRng,
    p: Params,
    step: u64,
    clock: u64,
    nodes: BTreeMap<NodeId, SimNode>,
    net: Vec<(u64, Message)>,
    partition: Option<BTreeSet<NodeId>>,
    next_node_id: NodeId,
    history: Vec<Op>,
    failed_ops: BTreeSet<usize>,
    clients: Vec<Option<Pending>>,
    next_op: u64,
    acked_puts: Vec<(Index, Vec<u8>)>,
    /// Every entry applied anywhere: index -> (term, data).
    committed: BTreeMap<Index, (Term, EntryData)>,
    /// State-machine digest after applying each index.
    digests: HashMap<Index, u64>,
    leaders: BTreeMap<Term, NodeId>,
    max_leader_term: Term,
    checked_leaders: BTreeSet<(NodeId, Term)>,
    faults_on: bool,
    stats: Stats,
}

#[derive(Default, Debug)]
struct Stats {
    delivered: u64,
    crashes: u64,
    snapshots_installed: u64,
    conf_changes: u64,
    transfers: u64,
    puts_ok: u64,
    gets_ok: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = if rng.gen_bool(0.5) { 3 } else { 5 };
        let p = Params {
            n,
            ticks: 2000,
            drop: *[0.0, 0.02, 0.1].choose(&mut rng).unwrap_or(&0.0),
            dup: *[0.0, 0.05].choose(&mut rng).unwrap_or(&0.0),
            max_delay: *[2u64, 6, 12, 40].choose(&mut rng).unwrap_or(&2),
            crash_p: *[0.0, 0.01, 0.05].choose(&mut rng).unwrap_or(&0.0),
            partition_p: *[0.0, 0.01, 0.03].choose(&mut rng).unwrap_or(&0.0),
            membership: rng.gen_bool(0.5),
            transfers: rng.gen_bool(0.5),
            lease: false,
            check_quorum: rng.gen_bool(0.75),
            pre_vote: rng.gen_bool(0.75),
            clock_skew: *[0.0, 0.03].choose(&mut rng).unwrap_or(&0.0),
            snapshot_threshold: *[0u64, 8, 40].choose(&mut rng).unwrap_or(&0),
            chunk: *[7usize, 50, 4096].choose(&mut rng).unwrap_or(&50),
            max_append: *[1usize, 4].choose(&mut rng).unwrap_or(&4),
            max_inflight: *[1usize, 3].choose(&mut rng).unwrap_or(&3),
            clients: 4,
            keys: 4,
        };
        let mut p = p;
        p.lease = p.check_quorum && rng.gen_bool(0.6);
        let mut sim = Sim {
            rng,
            p,
            step: 0,
            clock: 0,
            nodes: BTreeMap::new(),
            net: Vec::new(),
            partition: None,
            next_node_id: n as NodeId + 1,
            history: Vec::new(),
            failed_ops: BTreeSet::new(),
            clients: Vec::new(),
            next_op: 0,
            acked_puts: Vec::new(),
            committed: BTreeMap::new(),
            digests: HashMap::new(),
            leaders: BTreeMap::new(),
            max_leader_term: 0,
            checked_leaders: BTreeSet::new(),
            faults_on: false,
            stats: Stats::default(),
        };
        sim.clients = (0..sim.p.clients).map(|_| None).collect();
        let voters = Membership::with_voters(1..=n as NodeId);
        for id in 1..=n as NodeId {
            sim.add_node(id, voters.clone());
        }
        sim
    }

    fn config(&self, id: NodeId) -> Config {
        let mut c = Config::new(id);
        c.election_timeout = 10;
        c.heartbeat_interval = 2;
        c.max_append_entries = self.p.max_append;
        c.max_inflight = self.p.max_inflight;
        c.lease_reads = self.p.lease;
        c.check_quorum = self.p.check_quorum;
        c.pre_vote = self.p.pre_vote;
        c.lease_drift = 2;
        c.snapshot_chunk_size = self.p.chunk;
        c.snapshot_threshold = self.p.snapshot_threshold;
        c.max_apply_batch = 16;
        c
    }

    fn add_node(&mut self, id: NodeId, bootstrap: Membership) {
        let cfg = self.config(id);
        let rng = StdRng::seed_from_u64(self.rng.gen());
        let node = Node::new(cfg.clone(), bootstrap.clone(), MemLogStore::new(), 0, rng).expect("new node");
        let tick_offset = self.rng.gen_range(0..STEPS_PER_TICK);
        self.nodes.insert(
            id,
            SimNode {
                cfg,
                bootstrap,
                node: Some(node),
                down_store: None,
                restart_at: 0,
                tick_offset,
                kv: Kv::default(),
            },
        );
        self.drain_ready(id);
    }

    fn now_event(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    // ----- network ---------------------------------------------------------------

    fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        match &self.partition {
            Some(side) => side.contains(&a) == side.contains(&b),
            None => true,
        }
    }

    fn send(&mut self, msg: Message) {
        if self.rng.gen_bool(self.p.drop) {
            return;
        }
        let copies = if self.rng.gen_bool(self.p.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.step + self.rng.gen_range(1..=self.p.max_delay);
            self.net.push((at, msg.clone()));
        }
    }

    fn deliver_due(&mut self) {
        let step = self.step;
        let (mut due, rest): (Vec<_>, Vec<_>) = self.net.drain(..).partition(|(at, _)| *at <= step);
        self.net = rest;
        due.shuffle(&mut self.rng);
        for (_, msg) in due {
            if !self.reachable(msg.from, msg.to) {
                continue;
            }
            if trace() {
                eprintln!("[{}] {} -> {} t{} {:?}", self.step, msg.from, msg.to, msg.term, msg.body);
            }
            let to = msg.to;
            let Some(node) = self.nodes.get_mut(&to).and_then(|n| n.node.as_mut()) else {
                continue;
            };
            self.stats.delivered += 1;
            let rd = node.step(msg).expect("step");
            self.handle_ready(to, rd);
        }
    }

    // ----- outputs -------------------------------------------------------------------

    fn drain_ready(&mut self, id: NodeId) {
        loop {
            let Some(node) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) else {
                return;
            };
            let rd = node.ready().expect("ready");
            if rd.is_empty() {
                return;
            }
            self.handle_ready(id, rd);
        }
    }

    fn handle_ready(&mut self, id: NodeId, rd: Ready) {
        let Some(sn) = self.nodes.get(&id) else {
            return;
        };
        if let Some(node) = &sn.node {
            assert_eq!(node.store().unsynced_writes(), 0, "node {id}: Ready returned before sync");
        }
        // Targeted fault: crash a node right after it granted a vote (its
        // vote must have been persisted), or right after it acknowledged
        // entries (they must have been persisted).
        let risky = rd.messages.iter().any(|m| {
            matches!(
                m.body,
                MessageBody::VoteResponse { granted: true } | MessageBody::AppendResponse { reject: None, .. }
            )
        });
        let crash_after = self.faults_on
            && risky
            && self.p.crash_p > 0.0
            && self.rng.gen_bool(0.02)
            && self.nodes.values().filter(|sn| sn.node.is_none()).count() < (self.p.n - 1) / 2;
        for m in rd.messages {
            self.send(m);
        }
        if let Some(meta) = rd.snapshot {
            let sn = self.nodes.get_mut(&id).expect("node");
            let snap = support::stored_snapshot(sn.node.as_ref().expect("a running node").store(), meta);
            assert!(
                snap.meta.index > sn.kv.applied,
                "node {id}: snapshot {} does not advance applied {}",
                snap.meta.index,
                sn.kv.applied
            );
            let kv = Kv::restore(&snap.data);
            assert_eq!(kv.applied, snap.meta.index, "snapshot data/index mismatch");
            if let Some(d) = self.digests.get(&kv.applied) {
                assert_eq!(*d, kv.digest(), "node {id}: snapshot state differs at {}", kv.applied);
            }
            if let Some((t, _)) = self.committed.get(&snap.meta.index) {
                assert_eq!(*t, snap.meta.term, "snapshot term differs from committed entry");
            }
            sn.kv = kv;
            self.stats.snapshots_installed += 1;
        }
        for e in &rd.committed_entries {
            let sn = self.nodes.get_mut(&id).expect("node");
            assert_eq!(
                e.index,
                sn.kv.applied + 1,
                "node {id}: applied {} then entry {} (gap or double apply)",
                sn.kv.applied,
                e.index
            );
            sn.kv.apply(e);
            let digest = sn.kv.digest();
            match self.committed.get(&e.index) {
                Some((t, d)) => assert!(
                    *t == e.term && *d == e.data,
                    "state machine safety: node {id} applied {:?} at {} but {:?} was applied elsewhere",
                    (e.term, &e.data),
                    e.index,
                    (t, d)
                ),
                None => {
                    self.committed.insert(e.index, (e.term, e.data.clone()));
                }
            }
            let d = self.digests.entry(e.index).or_insert(digest);
            assert_eq!(*d, digest, "node {id}: state digest differs at {}", e.index);
            self.complete_puts(id, e);
        }
        for r in rd.reads {
            self.complete_get(id, r.id);
        }
        for r in rd.failed_reads {
            self.fail_get(id, r);
        }
        if let Some(_idx) = rd.snapshot_request {
            let sn = self.nodes.get_mut(&id).expect("node");
            let (applied, data) = (sn.kv.applied, sn.kv.snapshot());
            if let Some(node) = sn.node.as_mut() {
                node.compact(applied, data).expect("compact");
            }
        }
        if crash_after {
            self.crash_for(id, 1, 10);
        }
    }

    fn complete_puts(&mut self, id: NodeId, e: &Entry) {
        for c in 0..self.clients.len() {
            let Some(p) = &self.clients[c] else { continue };
            let PendingKind::Put { node, index, cmd } = &p.kind else {
                continue;
            };
            if *node != id || *index != e.index {
                continue;
            }
            let hist = p.hist;
            let cmd = cmd.clone();
            if e.data == EntryData::Command(cmd.clone()) {
                let t = self.now_event();
                self.history[hist].ret = Some(t);
                self.acked_puts.push((e.index, cmd));
                self.stats.puts_ok += 1;
            } else {
                // Another entry was committed at that index: ours never will be.
                self.failed_ops.insert(hist);
            }
            self.clients[c] = None;
        }
    }

    fn complete_get(&mut self, id: NodeId, read_id: u64) {
        for c in 0..self.clients.len() {
            let Some(p) = &self.clients[c] else { continue };
            let PendingKind::Get { node, read_id: r, key } = &p.kind else {
                continue;
            };
            if *node != id || *r != read_id {
                continue;
            }
            let hist = p.hist;
            let value = self.nodes[&id].kv.map.get(key).cloned();
            let t = self.now_event();
            self.history[hist].kind = OpKind::Get(value);
            self.history[hist].ret = Some(t);
            self.stats.gets_ok += 1;
            self.clients[c] = None;
        }
    }

    fn fail_get(&mut self, id: NodeId, read_id: u64) {
        for c in 0..self.clients.len() {
            let Some(p) = &self.clients[c] else { continue };
            let PendingKind::Get { node, read_id: r, .. } = &p.kind else {
                continue;
            };
            if *node == id && *r == read_id {
                self.failed_ops.insert(p.hist);
                self.clients[c] = None;
            }
        }
    }

    // ----- clients -------------------------------------------------------------------

    fn current_leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(id, sn)| sn.node.as_ref().map(|n| (*id, n)))
            .filter(|(_, n)| n.is_leader())
            .max_by_key(|(_, n)| n.term())
            .map(|(id, _)| id)
    }

    fn client_step(&mut self, issue: bool) {
        let tick = self.step / STEPS_PER_TICK;
        for c in 0..self.clients.len() {
            if let Some(p) = &self.clients[c] {
                if tick >= p.deadline {
                    // Outcome unknown: a put stays pending forever, a get is dropped.
                    if matches!(p.kind, PendingKind::Get { .. }) {
                        self.failed_ops.insert(p.hist);
                    }
                    self.clients[c] = None;
                }
                continue;
            }
            if !issue || !self.rng.gen_bool(0.3) {
                continue;
            }
            // Clients talk to any node that believes it is leader, stale or not.
            let believers: Vec<NodeId> = self
                .nodes
                .iter()
                .filter(|(_, sn)| sn.node.as_ref().is_some_and(|n| n.is_leader()))
                .map(|(id, _)| *id)
                .collect();
            let Some(&leader) = believers.choose(&mut self.rng) else {
                continue;
            };
            let key = format!("k{}", self.rng.gen_range(0..self.p.keys));
            self.next_op += 1;
            let op = self.next_op;
            let deadline = tick + 30;
            if self.rng.gen_bool(0.5) {
                let value = format!("v{op}");
                let cmd = encode(c, op, &key, &value);
                let node = self.nodes.get_mut(&leader).and_then(|n| n.node.as_mut()).expect("leader");
                let invoke = self.clock + 1;
                if let Ok(index) = node.propose(cmd.clone()) {
                    self.clock = invoke;
                    self.history.push(Op { client: c, key, kind: OpKind::Put(value), invoke, ret: None });
                    let hist = self.history.len() - 1;
                    self.clients[c] =
                        Some(Pending { hist, kind: PendingKind::Put { node: leader, index, cmd }, deadline });
                    self.drain_ready(leader);
                }
            } else {
                let node = self.nodes.get_mut(&leader).and_then(|n| n.node.as_mut()).expect("leader");
                let invoke = self.clock + 1;
                if node.read_index(op).is_ok() {
                    self.clock = invoke;
                    self.history.push(Op { client: c, key: key.clone(), kind: OpKind::Get(None), invoke, ret: None });
                    let hist = self.history.len() - 1;
                    self.clients[c] =
                        Some(Pending { hist, kind: PendingKind::Get { node: leader, read_id: op, key }, deadline });
                    self.drain_ready(leader);
                }
            }
        }
    }

    // ----- faults ----------------------------------------------------------------------

    fn crash(&mut self, id: NodeId) {
        self.crash_for(id, 5, 60);
    }

    fn crash_for(&mut self, id: NodeId, min_ticks: u64, max_ticks: u64) {
        let tick = self.step / STEPS_PER_TICK;
        let delay = self.rng.gen_range(min_ticks..max_ticks);
        let sn = self.nodes.get_mut(&id).expect("node");
        let Some(node) = sn.node.take() else { return };
        let mut store = node.into_store();
        store.restart();
        sn.down_store = Some(store);
        sn.restart_at = tick + delay;
        self.stats.crashes += 1;
    }

    fn restart(&mut self, id: NodeId) {
        let seed = self.rng.gen();
        let sn = self.nodes.get_mut(&id).expect("node");
        let Some(store) = sn.down_store.take() else {
            return;
        };
        let node = Node::new(sn.cfg.clone(), sn.bootstrap.clone(), store, sn.kv.applied, StdRng::seed_from_u64(seed))
            .expect("restart");
        assert!(node.applied_index() >= sn.kv.applied, "applied went backwards");
        sn.node = Some(node);
        self.drain_ready(id);
    }

    fn faults(&mut self) {
        let tick = self.step / STEPS_PER_TICK;
        // Restarts.
        let due: Vec<NodeId> =
            self.nodes.iter().filter(|(_, sn)| sn.node.is_none() && sn.restart_at <= tick).map(|(id, _)| *id).collect();
        for id in due {
            self.restart(id);
        }
        // Crashes: keep a majority of the original cluster size up.
        let down = self.nodes.values().filter(|sn| sn.node.is_none()).count();
        if down < (self.p.n - 1) / 2 && self.rng.gen_bool(self.p.crash_p) {
            let up: Vec<NodeId> = self.nodes.iter().filter(|(_, sn)| sn.node.is_some()).map(|(id, _)| *id).collect();
            let target = match self.current_leader() {
                Some(l) if self.rng.gen_bool(0.5) => Some(l),
                _ => up.choose(&mut self.rng).copied(),
            };
            if let Some(id) = target {
                self.crash(id);
            }
        }
        // Partitions.
        if self.partition.is_some() {
            if self.rng.gen_bool(0.05) {
                self.partition = None;
            }
        } else if self.rng.gen_bool(self.p.partition_p) {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            let mut side: BTreeSet<NodeId> = ids.into_iter().filter(|_| self.rng.gen_bool(0.4)).collect();
            if let Some(l) = self.current_leader() {
                if self.rng.gen_bool(0.5) {
                    // Isolate the leader, possibly with one companion.
                    side.retain(|_| self.rng.gen_bool(0.2));
                    side.insert(l);
                }
            }
            self.partition = Some(side);
        }
        let Some(leader) = self.current_leader() else {
            return;
        };
        // Membership changes.
        if self.p.membership && self.rng.gen_bool(0.02) {
            let m = self.nodes[&leader].node.as_ref().expect("leader").membership().clone();
            let change = if let Some(&l) = m.learners.iter().next() {
                if self.rng.gen_bool(0.7) {
                    ConfChange::Promote(l)
                } else {
                    ConfChange::Remove(l)
                }
            } else if m.voters.len() <= 3 || (m.voters.len() < 5 && self.rng.gen_bool(0.5)) {
                ConfChange::AddLearner(self.next_node_id)
            } else {
                let vs: Vec<NodeId> = m.voters.iter().copied().collect();
                ConfChange::Remove(*vs.choose(&mut self.rng).expect("voter"))
            };
            let node = self.nodes.get_mut(&leader).and_then(|n| n.node.as_mut()).expect("leader");
            if node.propose_conf_change(change).is_ok() {
                self.stats.conf_changes += 1;
                self.drain_ready(leader);
                if let ConfChange::AddLearner(id) = change {
                    self.next_node_id += 1;
                    self.add_node(id, Membership::default());
                }
            }
        }
        // Leadership transfers.
        if self.p.transfers && self.rng.gen_bool(0.01) {
            let Some(node) = self.nodes.get_mut(&leader).and_then(|n| n.node.as_mut()) else {
                return;
            };
            let vs: Vec<NodeId> = node.membership().voters.iter().copied().filter(|v| *v != leader).collect();
            if let Some(&t) = vs.choose(&mut self.rng) {
                if node.transfer_leadership(t).is_ok() {
                    self.stats.transfers += 1;
                    self.drain_ready(leader);
                }
            }
        }
    }

    // ----- invariants --------------------------------------------------------------------

    fn check_leaders(&mut self) {
        let mut new_leaders = Vec::new();
        for (id, sn) in &self.nodes {
            let Some(n) = &sn.node else { continue };
            if !n.is_leader() {
                continue;
            }
            let prev = *self.leaders.entry(n.term()).or_insert(*id);
            assert_eq!(prev, *id, "two leaders in term {}: {} and {}", n.term(), prev, id);
            if !self.checked_leaders.contains(&(*id, n.term())) {
                new_leaders.push((*id, n.term()));
            }
        }
        for (id, term) in new_leaders {
            self.checked_leaders.insert((id, term));
            if term > self.max_leader_term {
                // Leader completeness: a leader newer than every earlier one holds
                // every entry applied (hence committed) so far.
                let n = self.nodes[&id].node.as_ref().expect("leader");
                let from = n.snapshot_index() + 1;
                for (idx, (t, _)) in self.committed.range(from..) {
                    let have = n.store().term(*idx).expect("term");
                    assert_eq!(
                        have,
                        Some(*t),
                        "leader completeness: leader {id} of term {term} lacks committed entry {idx}"
                    );
                }
                if let Some(meta) = n.store().snapshot_meta().expect("meta") {
                    if let Some((t, _)) = self.committed.get(&meta.index) {
                        assert_eq!(*t, meta.term, "leader {id} snapshot term mismatch");
                    }
                }
                self.max_leader_term = term;
            }
        }
    }

    fn log_of(n: &Node<MemLogStore>) -> (Index, Vec<Entry>) {
        let s = n.store();
        let first = s.first_index().expect("first");
        let last = s.last_index().expect("last");
        (first, s.entries(first, last + 1, usize::MAX).expect("entries"))
    }

    fn check_logs(&self) {
        let logs: Vec<(NodeId, Index, Index, Vec<Entry>)> = self
            .nodes
            .iter()
            .filter_map(|(id, sn)| {
                let n = sn.node.as_ref()?;
                let (first, es) = Self::log_of(n);
                Some((*id, first, n.commit_index(), es))
            })
            .collect();
        // Committed prefixes agree with what was applied anywhere.
        for (id, first, commit, es) in &logs {
            for e in es.iter().take_while(|e| e.index <= *commit) {
                if let Some((t, d)) = self.committed.get(&e.index) {
                    assert!(*t == e.term && *d == e.data, "node {id}: committed entry {} changed", e.index);
                }
            }
            let _ = first;
        }
        // Log matching.
        for (i, (a, fa, _, ea)) in logs.iter().enumerate() {
            for (b, fb, _, eb) in logs.iter().skip(i + 1) {
                let lo = (*fa).max(*fb);
                let get = |es: &[Entry], f: Index, idx: Index| es.get((idx - f) as usize).cloned();
                let hi = (fa + ea.len() as Index).min(fb + eb.len() as Index);
                let mut last_match = None;
                for idx in (lo..hi).rev() {
                    if get(ea, *fa, idx).map(|e| e.term) == get(eb, *fb, idx).map(|e| e.term) {
                        last_match = Some(idx);
                        break;
                    }
                }
                if let Some(m) = last_match {
                    for idx in lo..=m {
                        assert_eq!(
                            get(ea, *fa, idx),
                            get(eb, *fb, idx),
                            "log matching violated between {a} and {b} at {idx} (match at {m})"
                        );
                    }
                }
            }
        }
    }

    // ----- main loop ----------------------------------------------------------------------

    fn tick_nodes(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let sn = self.nodes.get_mut(&id).expect("node");
            if !(self.step + sn.tick_offset).is_multiple_of(STEPS_PER_TICK) {
                continue;
            }
            // Slow clocks, within the lease's drift allowance.
            if self.p.clock_skew > 0.0 && self.rng.gen_bool(self.p.clock_skew) {
                continue;
            }
            let Some(node) = sn.node.as_mut() else {
                continue;
            };
            let rd = node.tick().expect("tick");
            self.handle_ready(id, rd);
            self.drain_ready(id);
        }
    }

    fn run_steps(&mut self, ticks: u64, faults: bool, clients: bool) {
        self.faults_on = faults;
        let end = self.step + ticks * STEPS_PER_TICK;
        while self.step < end {
            self.step += 1;
            self.tick_nodes();
            self.deliver_due();
            if self.step.is_multiple_of(STEPS_PER_TICK) {
                if faults {
                    self.faults();
                }
                self.client_step(clients);
                if (self.step / STEPS_PER_TICK).is_multiple_of(25) {
                    self.check_logs();
                }
            }
            self.check_leaders();
        }
    }

    fn run(&mut self) {
        self.run_steps(self.p.ticks, true, true);
        // Heal everything and let the cluster settle.
        self.partition = None;
        let down: Vec<NodeId> = self.nodes.iter().filter(|(_, sn)| sn.node.is_none()).map(|(id, _)| *id).collect();
        for id in down {
            self.restart(id);
        }
        self.p.drop = 0.0;
        self.p.dup = 0.0;
        self.p.max_delay = self.p.max_delay.min(4);
        self.run_steps(60, false, true);
        // Quiesce: no new client operations; run until every member has
        // applied everything the leader committed (bounded).
        for _ in 0..100 {
            self.reconcile_members();
            self.run_steps(10, false, false);
            if self.converged() {
                break;
            }
        }
        self.check_logs();
        self.final_checks();
    }

    /// Keeps exactly the members of the most advanced node's membership
    /// running: nodes that are not members (removed nodes, or learners whose
    /// addition never committed) are shut down, as an operator would. Without
    /// Pre-Vote and CheckQuorum a removed node could otherwise disrupt the
    /// cluster forever (Raft thesis §4.2.3), or linger as a zombie leader of
    /// an old term. Shut-down nodes come back if they become members again
    /// (an uncommitted removal can be rolled back).
    fn reconcile_members(&mut self) {
        let Some(m) = self
            .nodes
            .values()
            .filter_map(|sn| sn.node.as_ref())
            .max_by_key(|n| (n.commit_index(), n.term()))
            .map(|n| n.membership().clone())
        else {
            return;
        };
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let up = self.nodes[&id].node.is_some();
            if up && !m.contains(id) {
                self.crash(id);
            } else if !up && m.contains(id) {
                self.restart(id);
            }
        }
    }

    fn converged(&self) -> bool {
        let Some(leader) = self.current_leader() else {
            return false;
        };
        let Some(ln) = self.nodes[&leader].node.as_ref() else {
            return false;
        };
        let commit = ln.commit_index();
        ln.membership()
            .all()
            .all(|id| self.nodes.get(&id).and_then(|sn| sn.node.as_ref()).is_some_and(|n| n.applied_index() == commit))
    }

    fn final_checks(&mut self) {
        let leader = self.current_leader().unwrap_or_else(|| panic!("no leader after healing"));
        let ln = self.nodes[&leader].node.as_ref().expect("leader");
        let members: Vec<NodeId> = ln.membership().all().collect();
        let commit = ln.commit_index();
        for id in &members {
            let sn = &self.nodes[id];
            let n = sn.node.as_ref().expect("member up");
            assert_eq!(
                n.applied_index(),
                commit,
                "member {id} did not converge: applied {} vs leader {leader} commit {commit}; \
                 member role {:?} term {} commit {} last {:?} snap {}; leader term {} progress {:?}; membership {:?}",
                n.applied_index(),
                n.role(),
                n.term(),
                n.commit_index(),
                n.store().last_index(),
                n.snapshot_index(),
                ln.term(),
                ln.progress(*id),
                ln.membership()
            );
            assert_eq!(sn.kv.map, self.nodes[&leader].kv.map, "member {id} state differs");
        }
        // No acknowledged write lost.
        for (idx, cmd) in &self.acked_puts {
            match self.committed.get(idx) {
                Some((_, EntryData::Command(c))) if c == cmd => {}
                other => panic!("acknowledged put at {idx} lost: {other:?}"),
            }
        }
        let ops: Vec<Op> = self
            .history
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.failed_ops.contains(i))
            .map(|(_, o)| o.clone())
            .collect();
        if let Err(e) = check_history(&ops) {
            panic!("linearizability violated: {e}");
        }
    }
}

fn run_seed(seed: u64) -> Result<Stats, String> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut sim = Sim::new(seed);
        sim.run();
        sim.stats
    }));
    result.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

#[test]
fn simulate_many_seeds() {
    let seeds: Vec<u64> = match std::env::var("RAFT_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("RAFT_SIM_SEED must be a number")],
        Err(_) => {
            let n = std::env::var("RAFT_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEEDS);
            let first: u64 = std::env::var("RAFT_SIM_FIRST").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            (first..first + n).collect()
        }
    };
    let start = Instant::now();
    let mut total = Stats::default();
    for &seed in &seeds {
        match run_seed(seed) {
            Ok(s) => {
                total.delivered += s.delivered;
                total.crashes += s.crashes;
                total.snapshots_installed += s.snapshots_installed;
                total.conf_changes += s.conf_changes;
                total.transfers += s.transfers;
                total.puts_ok += s.puts_ok;
                total.gets_ok += s.gets_ok;
            }
            Err(e) => {
                eprintln!("simulation failed: {e}");
                eprintln!("RAFT_SIM_SEED={seed}");
                panic!("RAFT_SIM_SEED={seed}");
            }
        }
    }
    eprintln!("{} seeds in {:?}: {total:?}", seeds.len(), start.elapsed());
}
