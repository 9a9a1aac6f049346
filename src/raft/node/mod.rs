//! The Raft node state machine: roles, election, replication, reads,
//! snapshots and membership changes.
//!
//! This file holds the node's state, its public inputs and outputs, and the
//! role transitions; [`leader`] the leader's work (proposals, commit, reads
//! and leases, replication and snapshots to each peer) and [`handling`] the
//! handling of every incoming message.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::Rng;

use super::store::LogStore;
use super::types::{
    ConfChange, Entry, EntryData, Error, HardState, Index, Membership, Message, MessageBody, NodeId, ReadId, ReadState,
    Result, Role, Snapshot, SnapshotMeta, Term,
};

mod handling;
mod leader;

/// Tunables of a node. All durations are in ticks of the driver's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// Base election timeout. Followers wait a random time in
    /// `[election_timeout, 2 * election_timeout)` without hearing from a
    /// leader before campaigning. Also the CheckQuorum period and the
    /// leader-stickiness window.
    pub election_timeout: u64,
    /// Ticks between leader heartbeats (must be `< election_timeout`).
    pub heartbeat_interval: u64,
    /// Maximum entries in one `Append` message (batching).
    pub max_append_entries: usize,
    /// Maximum unacknowledged `Append` messages per follower while
    /// pipelining (flow control).
    pub max_inflight: usize,
    /// Run a Pre-Vote round before incrementing the term.
    pub pre_vote: bool,
    /// Leaders step down if a quorum has not been heard from within an
    /// election timeout; followers that heard from a leader within an
    /// election timeout refuse (pre-)votes (leader stickiness).
    pub check_quorum: bool,
    /// Serve reads from a leader lease when valid (requires `check_quorum`).
    pub lease_reads: bool,
    /// Clock-drift allowance subtracted from the lease duration
    /// (`election_timeout - lease_drift` ticks after the acknowledged
    /// heartbeat was sent). Must be `< election_timeout`.
    pub lease_drift: u64,
    /// Bytes per `InstallSnapshot` chunk.
    pub snapshot_chunk_size: usize,
    /// Ask the application for a snapshot once this many entries have been
    /// applied since the last snapshot (0 = never ask). A leader sending its
    /// snapshot to a follower that answers waits up to [`SNAPSHOT_HOLD`] thresholds, so that
    /// the follower can go on from the log once it has installed that snapshot
    /// instead of needing a newer one.
    pub snapshot_threshold: u64,
    /// Also ask for one once the commands applied since the last snapshot hold this many
    /// bytes (0 = never): a few bulk loads make a long log in bytes, not in entries.
    pub snapshot_threshold_bytes: u64,
    /// Maximum committed entries handed out per [`Ready`].
    pub max_apply_batch: usize,
}

/// How many snapshot thresholds of entries a leader keeps, at most, while it sends its
/// snapshot to a follower. Compacting sooner would leave a follower that took long to receive
/// and install one snapshot (its log far behind: after a partition, a restart) needing the
/// next, again and again, while writes go on.
pub const SNAPSHOT_HOLD: u64 = 4;

impl Config {
    /// Sensible defaults for node `id`.
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            election_timeout: 10,
            heartbeat_interval: 2,
            max_append_entries: 64,
            max_inflight: 8,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            lease_drift: 2,
            snapshot_chunk_size: 64 * 1024,
            snapshot_threshold: 0,
            snapshot_threshold_bytes: 0,
            max_apply_batch: 1024,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |s: &str| Err(Error::Invalid(s.to_string()));
        if self.id == 0 {
            return bad("node id 0 is reserved");
        }
        if self.election_timeout < 2 || self.heartbeat_interval == 0 {
            return bad("election_timeout must be >= 2 and heartbeat_interval >= 1");
        }
        if self.heartbeat_interval >= self.election_timeout {
            return bad("heartbeat_interval must be < election_timeout");
        }
        if self.max_append_entries == 0 || self.max_inflight == 0 {
            return bad("max_append_entries and max_inflight must be >= 1");
        }
        if self.snapshot_chunk_size == 0 || self.max_apply_batch == 0 {
            return bad("snapshot_chunk_size and max_apply_batch must be >= 1");
        }
        if self.lease_reads && (!self.check_quorum || self.lease_drift >= self.election_timeout) {
            return bad("lease_reads needs check_quorum and lease_drift < election_timeout");
        }
        Ok(())
    }
}

/// Everything the driver must act on after an input.
///
/// Contract, in this order:
/// 1. Everything these outputs depend on (log entries, hard state,
///    snapshots) has already been written to the [`LogStore`] and made
///    durable with [`LogStore::sync`] before `ready()` returned, so
///    `messages` may be sent at once.
/// 2. If `snapshot` is set, restore the state machine from the store's latest
///    snapshot, which it describes (read it with [`crate::raft::SnapshotReader`]).
/// 3. Apply `committed_entries` in order.
/// 4. Only then serve `reads` (each may be answered from local state) and
///    fail `failed_reads` (the client should retry, possibly elsewhere).
/// 5. If `snapshot_request` is `Some(_)`, take a snapshot of the state
///    machine when convenient and hand it to [`Node::compact`].
#[derive(Debug, Default)]
#[must_use]
pub struct Ready {
    /// Messages to send to other nodes (unordered, unreliable delivery is fine).
    pub messages: Vec<Message>,
    /// The snapshot in the store to restore into the state machine before applying entries.
    pub snapshot: Option<SnapshotMeta>,
    /// Newly committed entries to apply, in index order, each exactly once.
    pub committed_entries: Vec<Entry>,
    /// Reads that may now be served.
    pub reads: Vec<ReadState>,
    /// Reads that will never be confirmed here (leadership lost).
    pub failed_reads: Vec<ReadId>,
    /// The node would like a snapshot; carries the node's applied index.
    pub snapshot_request: Option<Index>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.snapshot.is_none()
            && self.committed_entries.is_empty()
            && self.reads.is_empty()
            && self.failed_reads.is_empty()
            && self.snapshot_request.is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProgressState {
    /// Unknown match: one `Append` at a time, backing off on rejection.
    Probe,
    /// Known match: pipeline up to `max_inflight` appends.
    Replicate,
    /// Sending the snapshot at `index`/`term`, next chunk from `offset`.
    Snapshot { index: Index, term: Term, offset: u64 },
}

#[derive(Clone, Debug)]
struct Progress {
    match_index: Index,
    next_index: Index,
    state: ProgressState,
    /// Probe/snapshot: a message is outstanding, wait for a response or heartbeat.
    paused: bool,
    /// Last index of each unacknowledged append (Replicate state).
    inflight: VecDeque<Index>,
    /// Heard from since the last CheckQuorum round.
    recent_active: bool,
    /// Heard from in the CheckQuorum round before that: with `recent_active`, whether the
    /// follower answered within the last one to two election timeouts.
    was_active: bool,
    /// Highest heartbeat sequence acknowledged in this term.
    acked_seq: u64,
}

impl Progress {
    fn new(next_index: Index) -> Self {
        Progress {
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            paused: false,
            inflight: VecDeque::new(),
            recent_active: false,
            was_active: false,
            acked_seq: 0,
        }
    }

    fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.paused = false;
        self.inflight.clear();
    }
}

#[derive(Debug)]
struct Transfer {
    target: NodeId,
    elapsed: u64,
}

#[derive(Debug)]
struct LeaderState {
    progress: BTreeMap<NodeId, Progress>,
    heartbeat_elapsed: u64,
    check_quorum_elapsed: u64,
    /// Ticks since this node became leader.
    now: u64,
    /// Sequence number of the last heartbeat round.
    seq: u64,
    /// `(seq, tick sent)` of heartbeat rounds not yet acknowledged by a quorum.
    sent: VecDeque<(u64, u64)>,
    /// The lease is valid while `now < lease_expiry`.
    lease_expiry: u64,
    /// Set once a `TimeoutNow` was sent: another node may win this term's
    /// successor election without waiting out the lease.
    lease_disabled: bool,
    /// Index of this term's first entry; reads wait until it is committed.
    term_start: Index,
    /// Reads waiting for `term_start` to commit.
    reads_waiting: Vec<ReadId>,
    /// Reads waiting for a quorum to acknowledge heartbeat `seq`: (id, index, seq).
    reads_pending: VecDeque<(ReadId, Index, u64)>,
    read_heartbeat_needed: bool,
    broadcast_needed: bool,
    transfer: Option<Transfer>,
}

#[derive(Debug)]
enum RoleState {
    Follower { leader: Option<NodeId> },
    PreCandidate { votes: BTreeSet<NodeId> },
    Candidate { votes: BTreeSet<NodeId> },
    Leader(Box<LeaderState>),
}

/// Terms, indexes and offsets above this are rejected as malformed, so that
/// arithmetic on them can never overflow.
const MAX_SANE: u64 = 1 << 62;

/// Whether every number in `msg` is below [`MAX_SANE`] and its entries are
/// contiguous after `prev_index`.
fn is_sane(msg: &Message) -> bool {
    let ok = |v: u64| v < MAX_SANE;
    ok(msg.term)
        && match &msg.body {
            MessageBody::PreVote { last_index, last_term } | MessageBody::Vote { last_index, last_term, .. } => {
                ok(*last_index) && ok(*last_term)
            }
            MessageBody::PreVoteResponse { .. } | MessageBody::VoteResponse { .. } | MessageBody::TimeoutNow => true,
            MessageBody::Append { prev_index, prev_term, entries, commit } => {
                ok(*prev_index)
                    && ok(*prev_term)
                    && ok(*commit)
                    && entries.iter().zip(prev_index + 1..).all(|(e, i)| e.index == i && ok(e.term))
            }
            MessageBody::AppendResponse { index, reject } => ok(*index) && reject.is_none_or(|(i, t)| ok(i) && ok(t)),
            MessageBody::Heartbeat { commit, seq } => ok(*commit) && ok(*seq),
            MessageBody::HeartbeatResponse { seq } => ok(*seq),
            MessageBody::InstallSnapshot { meta, offset, data, .. } => {
                ok(meta.index) && ok(meta.term) && ok(*offset) && ok(data.len() as u64)
            }
            MessageBody::SnapshotResponse { index, next_offset, .. } => ok(*index) && ok(*next_offset),
        }
}

fn leader_mut(role: &mut RoleState) -> Option<&mut LeaderState> {
    match role {
        RoleState::Leader(ls) => Some(ls),
        _ => None,
    }
}

/// A snapshot being received from the leader, chunk by chunk.
struct IncomingSnapshot {
    meta: SnapshotMeta,
    /// Bytes received so far.
    received: u64,
    sink: SnapshotSink,
}

/// Where a received snapshot goes until it is complete.
enum SnapshotSink {
    /// Straight into the store (see [`LogStore::snapshot_writer`]): never held whole.
    Store(Box<dyn crate::raft::SnapshotWriter>),
    /// Memory, for a store that takes snapshots only whole.
    Memory(Vec<u8>),
}

/// A Raft node: a deterministic state machine driven by [`Node::tick`],
/// [`Node::step`], [`Node::propose`], [`Node::read_index`] and friends,
/// whose outputs are collected with [`Node::ready`] (`tick` and `step`
/// return the `Ready` directly).
///
/// Promises:
/// * At most one leader per term; committed entries are never lost or
///   changed; every node hands out the same committed entries in the same
///   order, each exactly once per incarnation, starting right after the
///   applied index given to [`Node::new`].
/// * Reads returned in [`Ready::reads`] are linearizable once the
///   committed entries of the same `Ready` are applied.
/// * Malformed, duplicated, reordered or stale messages are ignored or
///   rejected; they never cause a panic.
/// * All randomness comes from the `StdRng` passed to [`Node::new`].
pub struct Node<S: LogStore> {
    cfg: Config,
    id: NodeId,
    store: S,
    rng: StdRng,
    term: Term,
    vote: Option<NodeId>,
    commit: Index,
    applied: Index,
    persisted_hs: HardState,
    role: RoleState,
    bootstrap: Membership,
    membership: Membership,
    /// Membership entries still in the log: (index, membership).
    conf_history: Vec<(Index, Membership)>,
    election_elapsed: u64,
    randomized_timeout: u64,
    /// Ticks since a leader was last heard from (0 at start-up, so a
    /// restarted node conservatively assumes a leader may be alive).
    since_leader_contact: u64,
    msgs: Vec<Message>,
    ready_reads: Vec<ReadState>,
    failed_reads: Vec<ReadId>,
    incoming: Option<IncomingSnapshot>,
    snapshot_to_apply: Option<SnapshotMeta>,
    snapshot_requested: bool,
    snapshot_index: Index,
    /// Bytes of the commands handed out to apply since `snapshot_index` last moved.
    applied_bytes: u64,
    /// Elections this node started (as a candidate, not pre-votes) since it was created.
    elections: u64,
    /// Snapshots this node sent whole to followers since it was created.
    snapshots_sent: u64,
}

impl<S: LogStore> Node<S> {
    /// Creates a node from whatever `store` holds (empty for a new node).
    ///
    /// `bootstrap` is the membership used until the log or a snapshot says
    /// otherwise: the initial voters for the founding members, empty for a
    /// node that is going to be added later. `applied` is the index the
    /// application's state machine has durably applied (0 for an empty
    /// one); committed entries after it will be handed out again. If the
    /// stored snapshot is newer than `applied`, the first `Ready` carries it.
    pub fn new(cfg: Config, bootstrap: Membership, store: S, applied: Index, rng: StdRng) -> Result<Self> {
        cfg.validate()?;
        let hs = store.hard_state()?;
        let snap_meta = store.snapshot_meta()?;
        let snapshot_index = snap_meta.as_ref().map_or(0, |m| m.index);
        let first = store.first_index()?;
        let last = store.last_index()?;
        let mut conf_history = Vec::new();
        let mut lo = first;
        while lo <= last {
            let batch = store.entries(lo, last + 1, 1024)?;
            let Some(tail) = batch.last() else { break };
            lo = tail.index + 1;
            for e in &batch {
                if let EntryData::Membership(m) = &e.data {
                    conf_history.push((e.index, m.clone()));
                }
            }
        }
        let commit = hs.commit.max(snapshot_index).min(last);
        if applied > commit {
            return Err(Error::Invalid(format!("applied index {applied} is beyond the commit index {commit}")));
        }
        let snapshot_to_apply = if applied < snapshot_index { store.snapshot_meta()? } else { None };
        let mut node = Node {
            id: cfg.id,
            cfg,
            store,
            rng,
            term: hs.term,
            vote: hs.vote,
            commit,
            applied: applied.max(snapshot_index),
            persisted_hs: hs,
            role: RoleState::Follower { leader: None },
            bootstrap,
            membership: Membership::default(),
            conf_history,
            election_elapsed: 0,
            randomized_timeout: 0,
            since_leader_contact: 0,
            msgs: Vec::new(),
            ready_reads: Vec::new(),
            failed_reads: Vec::new(),
            incoming: None,
            snapshot_to_apply,
            snapshot_requested: false,
            applied_bytes: 0,
            snapshot_index,
            elections: 0,
            snapshots_sent: 0,
        };
        node.recompute_membership()?;
        node.reset_election_timer();
        Ok(node)
    }

    // ----- accessors -------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Current term.
    pub fn term(&self) -> Term {
        self.term
    }
    /// Current role.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower { .. } => Role::Follower,
            RoleState::PreCandidate { .. } => Role::PreCandidate,
            RoleState::Candidate { .. } => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }
    /// Whether this node is the leader of its current term.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }
    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        match self.role {
            RoleState::Leader(_) => Some(self.id),
            RoleState::Follower { leader } => leader,
            _ => None,
        }
    }
    /// Highest committed index known to this node.
    pub fn commit_index(&self) -> Index {
        self.commit
    }
    /// Highest index handed out for application (in a `Ready`).
    pub fn applied_index(&self) -> Index {
        self.applied
    }
    /// Index of the latest snapshot (0 if none).
    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }
    /// The membership in force (the latest one in the log).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
    /// Ticks left of the leader lease: 0 when there is none (not the leader, leases off or
    /// disabled for a transfer, or run out).
    pub fn lease_ticks_left(&self) -> u64 {
        match &self.role {
            RoleState::Leader(ls) if self.cfg.lease_reads && !ls.lease_disabled => {
                ls.lease_expiry.saturating_sub(ls.now)
            }
            _ => 0,
        }
    }
    /// Whether a leader lease is currently valid (leader only).
    pub fn lease_valid(&self) -> bool {
        match &self.role {
            RoleState::Leader(ls) => self.cfg.lease_reads && !ls.lease_disabled && ls.now < ls.lease_expiry,
            _ => false,
        }
    }
    /// Elections this node started as a candidate since it was created.
    pub fn elections(&self) -> u64 {
        self.elections
    }
    /// Snapshots this node sent whole (every chunk) to followers since it was created.
    pub fn snapshots_sent(&self) -> u64 {
        self.snapshots_sent
    }
    /// Leader only: `(match_index, next_index)` of a peer.
    pub fn progress(&self, peer: NodeId) -> Option<(Index, Index)> {
        match &self.role {
            RoleState::Leader(ls) => ls.progress.get(&peer).map(|p| (p.match_index, p.next_index)),
            _ => None,
        }
    }
    /// Whether committed entries are waiting to be handed out.
    pub fn has_pending_apply(&self) -> bool {
        self.commit > self.applied
    }
    /// The node's configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// Read access to the storage.
    pub fn store(&self) -> &S {
        &self.store
    }
    /// Consumes the node, returning its storage (e.g. to simulate a crash).
    pub fn into_store(self) -> S {
        self.store
    }

    // ----- inputs ----------------------------------------------------------

    /// Advances the logical clock by one tick and returns the outputs.
    pub fn tick(&mut self) -> Result<Ready> {
        self.tick_inner()?;
        self.ready()
    }

    /// Processes a message from another node and returns the outputs.
    pub fn step(&mut self, msg: Message) -> Result<Ready> {
        self.step_inner(msg)?;
        self.ready()
    }

    /// Proposes an application command. Leader only. Returns the index the
    /// command was appended at, in the current term ([`Node::term`]); it is
    /// committed if and only if the entry later handed out as committed at
    /// this index has this term. Call [`Node::ready`] afterwards.
    pub fn propose(&mut self, command: Vec<u8>) -> Result<Index> {
        self.check_can_propose()?;
        self.append_own(EntryData::Command(command))
    }

    /// Proposes a single-server membership change. Leader only; refused
    /// while another change is uncommitted or before this leader committed
    /// an entry of its term. The change takes effect on each node as soon as
    /// the entry is appended to its log. Call [`Node::ready`] afterwards.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<Index> {
        self.check_can_propose()?;
        let term_start = match &self.role {
            RoleState::Leader(ls) => ls.term_start,
            _ => return Err(Error::NotLeader(self.leader())),
        };
        let pending = self.conf_history.last().is_some_and(|(i, _)| *i > self.commit);
        if self.commit < term_start || pending {
            return Err(Error::ConfChangePending);
        }
        let m = self.membership.apply(&change)?;
        self.append_own(EntryData::Membership(m))
    }

    /// Requests a linearizable read identified by `id`. Leader only. The
    /// read shows up in [`Ready::reads`] once it is safe to serve (at once
    /// with a valid lease, otherwise after a heartbeat round), or in
    /// [`Ready::failed_reads`] if leadership is lost first. Call
    /// [`Node::ready`] afterwards.
    pub fn read_index(&mut self, id: ReadId) -> Result<()> {
        let commit = self.commit;
        let Some(ls) = leader_mut(&mut self.role) else {
            return Err(Error::NotLeader(self.leader()));
        };
        if commit < ls.term_start {
            ls.reads_waiting.push(id);
            return Ok(());
        }
        self.register_read(id);
        Ok(())
    }

    /// Starts a leadership transfer to voter `target`: once its log is up
    /// to date it is told to campaign at once. Proposals are refused until
    /// the transfer completes or an election timeout passes.
    pub fn transfer_leadership(&mut self, target: NodeId) -> Result<()> {
        if !self.is_leader() {
            return Err(Error::NotLeader(self.leader()));
        }
        if target == self.id || !self.membership.voters.contains(&target) {
            return Err(Error::Invalid(format!("cannot transfer leadership to {target}")));
        }
        if let Some(ls) = leader_mut(&mut self.role) {
            ls.transfer = Some(Transfer { target, elapsed: 0 });
        }
        self.maybe_send_timeout_now(target)?;
        Ok(())
    }

    /// Hands in a snapshot of the application state machine taken at
    /// applied index `index` (normally the value of
    /// [`Ready::snapshot_request`] or the application's current applied
    /// index). The node stores it and compacts the log up to `index`.
    pub fn compact(&mut self, index: Index, data: Vec<u8>) -> Result<()> {
        self.compact_with(index, |store, meta| store.save_snapshot(&Snapshot { meta, data }))
    }

    /// Like [`Node::compact`], for a snapshot whose data was written into the store by a
    /// [`LogStore::snapshot_writer`].
    /// Data the node does not adopt (a newer snapshot got in first) is discarded.
    pub fn compact_written(&mut self, index: Index, written: crate::raft::Written) -> Result<()> {
        let mut adopted = false;
        let result = self.compact_with(index, |store, meta| {
            adopted = true;
            store.save_written_snapshot(meta, written)
        });
        if !adopted {
            self.store.discard_written(written);
        }
        result
    }

    fn compact_with(&mut self, index: Index, save: impl FnOnce(&mut S, SnapshotMeta) -> Result<()>) -> Result<()> {
        self.snapshot_requested = false;
        if index <= self.snapshot_index {
            return Ok(());
        }
        if index > self.applied {
            return Err(Error::Invalid(format!("snapshot index {index} beyond applied index {}", self.applied)));
        }
        let term =
            self.store.term(index)?.ok_or_else(|| Error::Invalid(format!("no term for snapshot index {index}")))?;
        let membership = self.membership_at(index)?;
        save(&mut self.store, SnapshotMeta { index, term, membership })?;
        self.snapshot_index = index;
        self.applied_bytes = 0;
        self.conf_history.retain(|(i, _)| *i > index);
        Ok(())
    }

    /// Collects pending outputs. Makes the store durable first (see the
    /// contract on [`Ready`]). Call after every input.
    pub fn ready(&mut self) -> Result<Ready> {
        self.flush_leader_sends()?;
        let hs = HardState { term: self.term, vote: self.vote, commit: self.commit };
        if hs != self.persisted_hs {
            self.store.save_hard_state(hs)?;
            self.persisted_hs = hs;
        }
        self.store.sync()?;
        let mut rd = Ready { snapshot: self.snapshot_to_apply.take(), ..Ready::default() };
        if self.commit > self.applied {
            rd.committed_entries = self.store.entries(self.applied + 1, self.commit + 1, self.cfg.max_apply_batch)?;
            if let Some(e) = rd.committed_entries.last() {
                self.applied = e.index;
            }
            for e in &rd.committed_entries {
                if let EntryData::Command(data) = &e.data {
                    self.applied_bytes = self.applied_bytes.saturating_add(data.len() as u64);
                }
            }
        }
        let applied = self.applied;
        let (now, later): (Vec<ReadState>, Vec<ReadState>) =
            self.ready_reads.drain(..).partition(|r| r.index <= applied);
        self.ready_reads = later;
        rd.reads = now;
        rd.failed_reads = std::mem::take(&mut self.failed_reads);
        let threshold = self.cfg.snapshot_threshold;
        let bytes = self.cfg.snapshot_threshold_bytes;
        let due = (threshold > 0 && self.applied >= self.snapshot_index.saturating_add(threshold))
            || (bytes > 0 && self.applied_bytes >= bytes && self.applied > self.snapshot_index);
        // Only for a follower that answers: one that is down would hold every compaction.
        let sending = matches!(&self.role, RoleState::Leader(ls)
        if ls.progress.values().any(|p| {
            (p.recent_active || p.was_active) && matches!(p.state, ProgressState::Snapshot { .. })
        }));
        let held_long_enough = threshold > 0
            && self.applied >= self.snapshot_index.saturating_add(threshold.saturating_mul(SNAPSHOT_HOLD));
        if !self.snapshot_requested && due && (!sending || held_long_enough) {
            self.snapshot_requested = true;
            rd.snapshot_request = Some(self.applied);
        }
        rd.messages = std::mem::take(&mut self.msgs);
        Ok(rd)
    }

    // ----- internals: helpers -------------------------------------------------

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.msgs.push(Message { from: self.id, to, term: self.term, body });
    }

    fn last_index(&self) -> Result<Index> {
        self.store.last_index()
    }

    fn last_term(&self) -> Result<Term> {
        let last = self.store.last_index()?;
        self.store.term(last)?.ok_or_else(|| Error::Storage(format!("no term for last index {last}")))
    }

    fn is_voter(&self) -> bool {
        self.membership.voters.contains(&self.id)
    }

    fn in_lease(&self) -> bool {
        self.cfg.check_quorum && self.since_leader_contact < self.cfg.election_timeout
    }

    fn reset_election_timer(&mut self) {
        let et = self.cfg.election_timeout;
        self.election_elapsed = 0;
        self.randomized_timeout = self.rng.gen_range(et..2 * et);
    }

    fn recompute_membership(&mut self) -> Result<()> {
        self.membership = match self.conf_history.last() {
            Some((_, m)) => m.clone(),
            None => match self.store.snapshot_meta()? {
                Some(meta) => meta.membership,
                None => self.bootstrap.clone(),
            },
        };
        self.sync_progress()
    }

    fn membership_at(&self, index: Index) -> Result<Membership> {
        if let Some((_, m)) = self.conf_history.iter().rev().find(|(i, _)| *i <= index) {
            return Ok(m.clone());
        }
        Ok(match self.store.snapshot_meta()? {
            Some(meta) => meta.membership,
            None => self.bootstrap.clone(),
        })
    }

    /// Leader: keep one progress per member other than self.
    fn sync_progress(&mut self) -> Result<()> {
        let next = self.store.last_index()? + 1;
        let id = self.id;
        let members = &self.membership;
        if let Some(ls) = leader_mut(&mut self.role) {
            ls.progress.retain(|p, _| members.contains(*p));
            for m in members.all() {
                if m != id {
                    ls.progress.entry(m).or_insert_with(|| Progress::new(next));
                }
            }
            ls.broadcast_needed = true;
        }
        Ok(())
    }

    /// Appends entries to the local log, tracking membership entries.
    fn append_to_log(&mut self, entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.store.append(entries)?;
        let mut changed = false;
        for e in entries {
            if let EntryData::Membership(m) = &e.data {
                self.conf_history.push((e.index, m.clone()));
                changed = true;
            }
        }
        if changed {
            self.recompute_membership()?;
        }
        Ok(())
    }

    fn truncate_log(&mut self, from: Index) -> Result<()> {
        self.store.truncate(from)?;
        let before = self.conf_history.len();
        self.conf_history.retain(|(i, _)| *i < from);
        if self.conf_history.len() != before {
            self.recompute_membership()?;
        }
        Ok(())
    }

    /// Largest index `<= index` whose term is `<= term` (or the first index
    /// whose term is unknown), used for fast backtracking.
    fn find_conflict_by_term(&self, index: Index, term: Term) -> Result<Index> {
        let mut i = index.min(self.store.last_index()?);
        loop {
            match self.store.term(i)? {
                Some(t) if t > term && i > 0 => i -= 1,
                _ => return Ok(i),
            }
        }
    }

    // ----- role transitions -----------------------------------------------------

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        if let RoleState::Leader(ls) = &mut self.role {
            self.failed_reads.append(&mut ls.reads_waiting);
            self.failed_reads.extend(ls.reads_pending.drain(..).map(|(id, _, _)| id));
        }
        self.role = RoleState::Follower { leader };
        self.reset_election_timer();
    }

    fn campaign(&mut self, transfer: bool) -> Result<()> {
        if !self.is_voter() {
            return Ok(());
        }
        if self.cfg.pre_vote && !transfer {
            self.become_pre_candidate()
        } else {
            self.become_candidate(transfer)
        }
    }

    fn become_pre_candidate(&mut self) -> Result<()> {
        self.role = RoleState::PreCandidate { votes: BTreeSet::from([self.id]) };
        self.reset_election_timer();
        if self.membership.quorum() <= 1 {
            return self.become_candidate(false);
        }
        let (last_index, last_term) = (self.last_index()?, self.last_term()?);
        let voters: Vec<NodeId> = self.membership.voters.iter().copied().collect();
        for v in voters.into_iter().filter(|v| *v != self.id) {
            self.msgs.push(Message {
                from: self.id,
                to: v,
                term: self.term + 1,
                body: MessageBody::PreVote { last_index, last_term },
            });
        }
        Ok(())
    }

    fn become_candidate(&mut self, transfer: bool) -> Result<()> {
        self.elections += 1;
        self.term += 1;
        self.vote = Some(self.id);
        self.role = RoleState::Candidate { votes: BTreeSet::from([self.id]) };
        self.reset_election_timer();
        if self.membership.quorum() <= 1 {
            return self.become_leader();
        }
        let (last_index, last_term) = (self.last_index()?, self.last_term()?);
        let voters: Vec<NodeId> = self.membership.voters.iter().copied().collect();
        let me = self.id;
        for v in voters.into_iter().filter(|v| *v != me) {
            self.send(v, MessageBody::Vote { last_index, last_term, transfer });
        }
        Ok(())
    }

    fn become_leader(&mut self) -> Result<()> {
        let last = self.last_index()?;
        self.role = RoleState::Leader(Box::new(LeaderState {
            progress: BTreeMap::new(),
            heartbeat_elapsed: 0,
            check_quorum_elapsed: 0,
            now: 0,
            seq: 0,
            sent: VecDeque::new(),
            lease_expiry: 0,
            lease_disabled: false,
            term_start: last + 1,
            reads_waiting: Vec::new(),
            reads_pending: VecDeque::new(),
            read_heartbeat_needed: false,
            broadcast_needed: true,
            transfer: None,
        }));
        self.since_leader_contact = 0;
        self.sync_progress()?;
        self.append_own(EntryData::Noop)?;
        Ok(())
    }
}
