//! A small synchronous in-process cluster for unit tests: messages are
//! queued and delivered on demand, with per-link blocking and an optional
//! drop filter.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chronos::raft::{
    Config, Entry, EntryData, Index, MemLogStore, Membership, Message, Node, NodeId, ReadId, ReadState, Ready, Snapshot,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// May modify the message; return false to drop it.
pub type Filter = Box<dyn FnMut(&mut Message) -> bool>;

pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Node<MemLogStore>>,
    pub cfgs: BTreeMap<NodeId, Config>,
    pub bootstrap: BTreeMap<NodeId, Membership>,
    pub queue: VecDeque<Message>,
    /// Directed links that drop everything.
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    /// Return false to drop a message.
    pub filter: Option<Filter>,
    /// Applied entries per node (the "state machine").
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
    pub reads: BTreeMap<NodeId, Vec<ReadState>>,
    pub failed_reads: BTreeMap<NodeId, Vec<ReadId>>,
    pub restored: BTreeMap<NodeId, Vec<Snapshot>>,
    /// Every message delivered, for inspection.
    pub delivered: Vec<Message>,
    pub auto_compact: bool,
    seed: u64,
}

pub fn cfg(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.election_timeout = 10;
    c.heartbeat_interval = 2;
    c
}

/// Snapshot bytes of the test state machine: the applied commands joined.
pub fn state_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if let EntryData::Command(c) = &e.data {
            out.extend_from_slice(c);
            out.push(b';');
        }
    }
    out
}

impl Cluster {
    pub fn new(ids: &[NodeId], mk: impl Fn(NodeId) -> Config) -> Cluster {
        let voters = Membership::with_voters(ids.iter().copied());
        let mut c = Cluster::empty();
        for &id in ids {
            c.add_node(mk(id), voters.clone(), MemLogStore::new(), 0);
        }
        c
    }

    pub fn empty() -> Cluster {
        Cluster {
            nodes: BTreeMap::new(),
            cfgs: BTreeMap::new(),
            bootstrap: BTreeMap::new(),
            queue: VecDeque::new(),
            blocked: BTreeSet::new(),
            filter: None,
            applied: BTreeMap::new(),
            reads: BTreeMap::new(),
            failed_reads: BTreeMap::new(),
            restored: BTreeMap::new(),
            delivered: Vec::new(),
            auto_compact: false,
            seed: 1,
        }
    }

    pub fn add_node(&mut self, cfg: Config, bootstrap: Membership, store: MemLogStore, applied: Index) {
        let id = cfg.id;
        self.seed += 1;
        let node =
            Node::new(cfg.clone(), bootstrap.clone(), store, applied, StdRng::seed_from_u64(self.seed * 7919 + id))
                .expect("node");
        self.cfgs.insert(id, cfg);
        self.bootstrap.insert(id, bootstrap);
        self.nodes.insert(id, node);
        self.applied.entry(id).or_default();
        self.ready(id);
    }

    pub fn node(&self, id: NodeId) -> &Node<MemLogStore> {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node<MemLogStore> {
        self.nodes.get_mut(&id).expect("node")
    }

    pub fn handle(&mut self, id: NodeId, rd: Ready) {
        self.queue.extend(rd.messages);
        if let Some(meta) = rd.snapshot {
            let s = super::stored_snapshot(self.nodes[&id].store(), meta);
            // Restoring replaces the state machine with the snapshot's.
            let list = self.applied.entry(id).or_default();
            list.clear();
            list.push(Entry { index: s.meta.index, term: s.meta.term, data: EntryData::Command(s.data.clone()) });
            self.restored.entry(id).or_default().push(s);
        }
        self.applied.entry(id).or_default().extend(rd.committed_entries);
        self.reads.entry(id).or_default().extend(rd.reads);
        self.failed_reads.entry(id).or_default().extend(rd.failed_reads);
        if let (Some(idx), true) = (rd.snapshot_request, self.auto_compact) {
            let data = state_bytes(&self.applied[&id]);
            self.node_mut(id).compact(idx, data).expect("compact");
        }
    }

    pub fn ready(&mut self, id: NodeId) {
        let rd = self.node_mut(id).ready().expect("ready");
        self.handle(id, rd);
    }

    pub fn tick(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.get_mut(&id) {
            let rd = n.tick().expect("tick");
            self.handle(id, rd);
        }
    }

    pub fn tick_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.tick(id);
        }
    }

    /// Delivers queued messages (and the ones they cause) until quiet.
    pub fn deliver(&mut self) {
        let mut budget = 1_000_000;
        while let Some(m) = self.queue.front() {
            budget -= 1;
            if budget < 20 {
                eprintln!("storm: {m:?}");
            }
            assert!(budget > 0, "message storm");
            self.deliver_one();
        }
    }

    /// Delivers the oldest queued message (the ones it causes join the back of the queue);
    /// false when none was queued.
    pub fn deliver_one(&mut self) -> bool {
        let Some(mut m) = self.queue.pop_front() else {
            return false;
        };
        if self.blocked.contains(&(m.from, m.to)) {
            return true;
        }
        if let Some(f) = self.filter.as_mut() {
            if !f(&mut m) {
                return true;
            }
        }
        let to = m.to;
        let Some(n) = self.nodes.get_mut(&to) else {
            return true;
        };
        self.delivered.push(m.clone());
        let rd = n.step(m).expect("step");
        self.handle(to, rd);
        true
    }

    /// Ticks everyone and delivers, `rounds` times.
    pub fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.tick_all();
            self.deliver();
        }
    }

    pub fn leaders(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, n)| n.is_leader()).map(|(id, _)| *id).collect()
    }

    /// Runs until exactly one leader exists (panics after a bound).
    pub fn elect(&mut self) -> NodeId {
        for _ in 0..1000 {
            self.tick_all();
            self.deliver();
            let ls = self.leaders();
            if ls.len() == 1 {
                let l = ls[0];
                // Let the leader commit its empty entry.
                self.deliver();
                return l;
            }
        }
        panic!("no leader elected");
    }

    pub fn isolate(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for o in ids {
            if o != id {
                self.blocked.insert((id, o));
                self.blocked.insert((o, id));
            }
        }
    }

    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.blocked.insert((x, y));
                self.blocked.insert((y, x));
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    pub fn propose(&mut self, id: NodeId, data: &[u8]) -> Index {
        let idx = self.node_mut(id).propose(data.to_vec()).expect("propose");
        self.ready(id);
        self.deliver();
        idx
    }

    /// Crashes a node: only synced state survives.
    pub fn crash(&mut self, id: NodeId) -> MemLogStore {
        let n = self.nodes.remove(&id).expect("node");
        let mut store = n.into_store();
        store.restart();
        store
    }

    /// Restarts a crashed node from its store; the state machine is
    /// rebuilt by re-applying from index 0 (or the snapshot).
    pub fn restart(&mut self, id: NodeId, store: MemLogStore) {
        self.applied.insert(id, Vec::new());
        let cfg = self.cfgs[&id].clone();
        let bs = self.bootstrap[&id].clone();
        self.add_node(cfg, bs, store, 0);
    }

    pub fn applied_commands(&self, id: NodeId) -> Vec<Vec<u8>> {
        self.applied[&id]
            .iter()
            .filter_map(|e| match &e.data {
                EntryData::Command(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }
}
