//! The Raft node state machine: roles, election, replication, reads,
//! snapshots and membership changes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::Rng;

use super::store::LogStore;
use super::types::{
    ConfChange, Entry, EntryData, Error, HardState, Index, Membership, Message, MessageBody, NodeId, ReadId, ReadState,
    Result, Role, Snapshot, SnapshotMeta, Term,
};

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
    /// applied since the last snapshot (0 = never ask).
    pub snapshot_threshold: u64,
    /// Maximum committed entries handed out per [`Ready`].
    pub max_apply_batch: usize,
}

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
/// 2. If `snapshot` is set, restore the state machine from it.
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
    /// Snapshot to restore into the state machine before applying entries.
    pub snapshot: Option<Snapshot>,
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

#[derive(Debug)]
struct IncomingSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
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
    snapshot_to_apply: Option<Snapshot>,
    snapshot_requested: bool,
    snapshot_index: Index,
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
        let snapshot_to_apply = if applied < snapshot_index { store.snapshot()? } else { None };
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
            snapshot_index,
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
    /// Whether a leader lease is currently valid (leader only).
    pub fn lease_valid(&self) -> bool {
        match &self.role {
            RoleState::Leader(ls) => self.cfg.lease_reads && !ls.lease_disabled && ls.now < ls.lease_expiry,
            _ => false,
        }
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
        self.store.save_snapshot(Snapshot { meta: SnapshotMeta { index, term, membership }, data })?;
        self.snapshot_index = index;
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
        }
        let applied = self.applied;
        let (now, later): (Vec<ReadState>, Vec<ReadState>) =
            self.ready_reads.drain(..).partition(|r| r.index <= applied);
        self.ready_reads = later;
        rd.reads = now;
        rd.failed_reads = std::mem::take(&mut self.failed_reads);
        if self.cfg.snapshot_threshold > 0
            && !self.snapshot_requested
            && self.applied >= self.snapshot_index + self.cfg.snapshot_threshold
        {
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

    // ----- leader ---------------------------------------------------------------

    fn check_can_propose(&self) -> Result<()> {
        match &self.role {
            RoleState::Leader(ls) if ls.transfer.is_some() => Err(Error::TransferInProgress),
            RoleState::Leader(_) => Ok(()),
            _ => Err(Error::NotLeader(self.leader())),
        }
    }

    fn append_own(&mut self, data: EntryData) -> Result<Index> {
        let index = self.last_index()? + 1;
        self.append_to_log(&[Entry { index, term: self.term, data }])?;
        if let Some(ls) = leader_mut(&mut self.role) {
            ls.broadcast_needed = true;
        }
        self.maybe_commit()?;
        Ok(index)
    }

    fn maybe_commit(&mut self) -> Result<()> {
        let last = self.last_index()?;
        let RoleState::Leader(ls) = &self.role else {
            return Ok(());
        };
        let mut matches: Vec<Index> = self
            .membership
            .voters
            .iter()
            .map(|v| if *v == self.id { last } else { ls.progress.get(v).map_or(0, |p| p.match_index) })
            .collect();
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let q = matches.get(self.membership.quorum() - 1).copied().unwrap_or(0);
        // Raft §5.4.2: only entries of the current term are committed by counting.
        if q > self.commit && self.store.term(q)? == Some(self.term) {
            self.commit = q;
            self.on_leader_commit()?;
        }
        Ok(())
    }

    fn on_leader_commit(&mut self) -> Result<()> {
        let commit = self.commit;
        let mut waiting = Vec::new();
        if let Some(ls) = leader_mut(&mut self.role) {
            if commit >= ls.term_start {
                waiting = std::mem::take(&mut ls.reads_waiting);
            }
            // Tell followers at once (a heartbeat carries the commit index) rather than at the
            // next heartbeat interval: they apply sooner, and a commit made through a
            // follower returns sooner.
            ls.read_heartbeat_needed = true;
        }
        for id in waiting {
            self.register_read(id);
        }
        // A leader that removed itself steps down once the removal commits.
        let removal_committed = self.conf_history.last().is_none_or(|(i, _)| *i <= commit);
        if !self.is_voter() && removal_committed {
            self.become_follower(self.term, None);
        }
        Ok(())
    }

    fn register_read(&mut self, id: ReadId) {
        let lease = self.lease_valid();
        let commit = self.commit;
        let Some(ls) = leader_mut(&mut self.role) else {
            return;
        };
        if lease {
            self.ready_reads.push(ReadState { id, index: commit });
        } else {
            ls.reads_pending.push_back((id, commit, ls.seq + 1));
            ls.read_heartbeat_needed = true;
        }
    }

    fn flush_leader_sends(&mut self) -> Result<()> {
        let (hb, bc) = match leader_mut(&mut self.role) {
            Some(ls) => {
                let r = (ls.read_heartbeat_needed, ls.broadcast_needed);
                ls.broadcast_needed = false;
                r
            }
            None => return Ok(()),
        };
        if hb {
            self.broadcast_heartbeat();
            self.check_reads();
        }
        if bc {
            let peers: Vec<NodeId> = match &self.role {
                RoleState::Leader(ls) => ls.progress.keys().copied().collect(),
                _ => Vec::new(),
            };
            for p in peers {
                while self.send_append(p, false)? {}
            }
        }
        Ok(())
    }

    fn broadcast_heartbeat(&mut self) {
        let commit = self.commit;
        let Some(ls) = leader_mut(&mut self.role) else {
            return;
        };
        ls.seq += 1;
        ls.heartbeat_elapsed = 0;
        ls.read_heartbeat_needed = false;
        ls.sent.push_back((ls.seq, ls.now));
        if ls.sent.len() > 4096 {
            ls.sent.pop_front();
        }
        for (peer, pr) in &ls.progress {
            self.msgs.push(Message {
                from: self.id,
                to: *peer,
                term: self.term,
                body: MessageBody::Heartbeat { commit: commit.min(pr.match_index), seq: ls.seq },
            });
        }
    }

    /// Confirms pending reads acknowledged by a quorum and extends the lease.
    fn check_reads(&mut self) {
        let id = self.id;
        let quorum = self.membership.quorum();
        let lease_len = self.cfg.election_timeout - self.cfg.lease_drift.min(self.cfg.election_timeout);
        let voters = &self.membership.voters;
        let Some(ls) = leader_mut(&mut self.role) else {
            return;
        };
        let mut acks: Vec<u64> = voters
            .iter()
            .map(|v| if *v == id { ls.seq } else { ls.progress.get(v).map_or(0, |p| p.acked_seq) })
            .collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let qs = acks.get(quorum - 1).copied().unwrap_or(0);
        while let Some(&(rid, index, seq)) = ls.reads_pending.front() {
            if seq > qs {
                break;
            }
            ls.reads_pending.pop_front();
            self.ready_reads.push(ReadState { id: rid, index });
        }
        while ls.sent.front().is_some_and(|(s, _)| *s < qs) {
            ls.sent.pop_front();
        }
        if let Some(&(s, t)) = ls.sent.front() {
            if s == qs {
                ls.lease_expiry = ls.lease_expiry.max(t + lease_len);
            }
        }
    }

    /// Sends the next append (or snapshot chunk) to `to` if flow control
    /// allows. Returns whether an append carrying entries was sent and more
    /// may follow.
    fn send_append(&mut self, to: NodeId, allow_empty: bool) -> Result<bool> {
        let last = self.last_index()?;
        let (commit, term, id) = (self.commit, self.term, self.id);
        let max_inflight = self.cfg.max_inflight;
        let max_entries = self.cfg.max_append_entries;
        let Some(ls) = leader_mut(&mut self.role) else {
            return Ok(false);
        };
        let Some(pr) = ls.progress.get_mut(&to) else {
            return Ok(false);
        };
        match pr.state {
            ProgressState::Snapshot { .. } => {
                if !pr.paused {
                    self.send_snapshot_chunk(to)?;
                }
                return Ok(false);
            }
            ProgressState::Probe if pr.paused => return Ok(false),
            ProgressState::Replicate if pr.inflight.len() >= max_inflight => return Ok(false),
            _ => {}
        }
        let next = pr.next_index.min(last + 1).max(1);
        let prev = next - 1;
        let prev_term = self.store.term(prev)?;
        let entries = match prev_term {
            Some(_) if next <= last => self.store.entries(next, last + 1, max_entries).ok(),
            Some(_) => Some(Vec::new()),
            None => None,
        };
        let (Some(prev_term), Some(entries)) = (prev_term, entries) else {
            // Needed entries were compacted: switch to sending the snapshot.
            pr.state = ProgressState::Snapshot { index: 0, term: 0, offset: 0 };
            pr.paused = false;
            pr.inflight.clear();
            self.send_snapshot_chunk(to)?;
            return Ok(false);
        };
        if entries.is_empty() && !allow_empty {
            return Ok(false);
        }
        let sent_last = entries.last().map(|e| e.index);
        match (pr.state, sent_last) {
            (ProgressState::Replicate, Some(l)) => {
                pr.next_index = l + 1;
                pr.inflight.push_back(l);
            }
            (ProgressState::Probe, _) => pr.paused = true,
            _ => {}
        }
        let more = sent_last.is_some() && pr.state == ProgressState::Replicate;
        self.msgs.push(Message {
            from: id,
            to,
            term,
            body: MessageBody::Append { prev_index: prev, prev_term, entries, commit },
        });
        Ok(more)
    }

    fn send_snapshot_chunk(&mut self, to: NodeId) -> Result<()> {
        let Some(meta) = self.store.snapshot_meta()? else {
            return Ok(());
        };
        let chunk = self.cfg.snapshot_chunk_size;
        let wanted = match leader_mut(&mut self.role).and_then(|ls| ls.progress.get(&to)) {
            Some(pr) => match pr.state {
                ProgressState::Snapshot { index, term, offset } if index == meta.index && term == meta.term => offset,
                _ => 0,
            },
            None => return Ok(()),
        };
        let Some((meta, data, len)) = self.store.snapshot_chunk(wanted, chunk)? else {
            return Ok(());
        };
        // An offset past the end (bogus acknowledgement) restarts the transfer.
        let (offset, data) = if wanted <= len {
            (wanted, data)
        } else {
            match self.store.snapshot_chunk(0, chunk)? {
                Some((_, d, _)) => (0, d),
                None => return Ok(()),
            }
        };
        let Some(pr) = leader_mut(&mut self.role).and_then(|ls| ls.progress.get_mut(&to)) else {
            return Ok(());
        };
        pr.state = ProgressState::Snapshot { index: meta.index, term: meta.term, offset };
        pr.paused = true;
        let done = offset + data.len() as u64 >= len;
        let body = MessageBody::InstallSnapshot { meta, offset, data, done };
        self.send(to, body);
        Ok(())
    }

    fn maybe_send_timeout_now(&mut self, from: NodeId) -> Result<()> {
        let last = self.last_index()?;
        let Some(ls) = leader_mut(&mut self.role) else {
            return Ok(());
        };
        let Some(t) = &ls.transfer else { return Ok(()) };
        if t.target != from {
            return Ok(());
        }
        let caught_up = ls.progress.get(&from).is_some_and(|p| p.match_index == last);
        if caught_up {
            ls.lease_disabled = true;
            self.send(from, MessageBody::TimeoutNow);
        } else {
            while self.send_append(from, false)? {}
        }
        Ok(())
    }

    fn leader_tick(&mut self) -> Result<()> {
        self.since_leader_contact = 0;
        let et = self.cfg.election_timeout;
        let hb_interval = self.cfg.heartbeat_interval;
        let check_quorum = self.cfg.check_quorum;
        let id = self.id;
        let quorum = self.membership.quorum();
        let voters = &self.membership.voters;
        let Some(ls) = leader_mut(&mut self.role) else {
            return Ok(());
        };
        ls.now += 1;
        ls.heartbeat_elapsed += 1;
        ls.check_quorum_elapsed += 1;
        if let Some(t) = &mut ls.transfer {
            t.elapsed += 1;
            if t.elapsed >= et {
                ls.transfer = None;
            }
        }
        let mut step_down = false;
        if ls.check_quorum_elapsed >= et {
            ls.check_quorum_elapsed = 0;
            let active =
                voters.iter().filter(|v| **v == id || ls.progress.get(v).is_some_and(|p| p.recent_active)).count();
            for p in ls.progress.values_mut() {
                p.recent_active = false;
            }
            step_down = check_quorum && active < quorum;
        }
        let heartbeat = ls.heartbeat_elapsed >= hb_interval;
        if step_down {
            self.become_follower(self.term, None);
            return Ok(());
        }
        if heartbeat {
            self.broadcast_heartbeat();
            self.check_reads();
        }
        Ok(())
    }

    fn tick_inner(&mut self) -> Result<()> {
        if self.is_leader() {
            return self.leader_tick();
        }
        self.election_elapsed += 1;
        self.since_leader_contact = self.since_leader_contact.saturating_add(1);
        if self.election_elapsed >= self.randomized_timeout {
            self.reset_election_timer();
            self.campaign(false)?;
        }
        Ok(())
    }

    // ----- message handling -------------------------------------------------------

    fn step_inner(&mut self, msg: Message) -> Result<()> {
        if msg.to != self.id || msg.from == self.id || msg.from == 0 || !is_sane(&msg) {
            return Ok(());
        }
        let from = msg.from;
        if msg.term > self.term {
            match &msg.body {
                MessageBody::PreVote { .. } => {}
                MessageBody::PreVoteResponse { granted: true } => {}
                MessageBody::Vote { transfer: false, .. } if self.in_lease() => {
                    // Leader stickiness: a live leader exists; ignore.
                    return Ok(());
                }
                MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::InstallSnapshot { .. } => {
                    self.become_follower(msg.term, Some(from))
                }
                _ => self.become_follower(msg.term, None),
            }
        } else if msg.term < self.term {
            match &msg.body {
                MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::InstallSnapshot { .. }
                    if self.cfg.check_quorum || self.cfg.pre_vote =>
                {
                    // Tell the stale leader about the newer term so it steps down.
                    self.send(from, MessageBody::AppendResponse { index: 0, reject: Some((0, 0)) });
                }
                MessageBody::PreVote { .. } => {
                    self.send(from, MessageBody::PreVoteResponse { granted: false });
                }
                _ => {}
            }
            return Ok(());
        }

        match msg.body {
            MessageBody::PreVote { last_index, last_term } => {
                let grant = msg.term > self.term && !self.in_lease() && self.log_up_to_date(last_index, last_term)?;
                let term = if grant { msg.term } else { self.term };
                self.msgs.push(Message {
                    from: self.id,
                    to: from,
                    term,
                    body: MessageBody::PreVoteResponse { granted: grant },
                });
            }
            MessageBody::Vote { last_index, last_term, .. } => {
                let no_leader = self.leader().is_none();
                let can_vote = self.vote == Some(from) || (self.vote.is_none() && no_leader);
                let grant = can_vote && self.log_up_to_date(last_index, last_term)?;
                if grant {
                    self.vote = Some(from);
                    self.election_elapsed = 0;
                }
                self.send(from, MessageBody::VoteResponse { granted: grant });
            }
            MessageBody::PreVoteResponse { granted } => {
                if let RoleState::PreCandidate { votes } = &mut self.role {
                    if granted && msg.term == self.term + 1 && self.membership.voters.contains(&from) {
                        votes.insert(from);
                        if votes.len() >= self.membership.quorum() {
                            self.become_candidate(false)?;
                        }
                    }
                }
            }
            MessageBody::VoteResponse { granted } => {
                if let RoleState::Candidate { votes } = &mut self.role {
                    if granted && self.membership.voters.contains(&from) {
                        votes.insert(from);
                        if votes.len() >= self.membership.quorum() {
                            self.become_leader()?;
                        }
                    }
                }
            }
            MessageBody::Append { prev_index, prev_term, entries, commit } => {
                if self.accept_leader(from) {
                    self.handle_append(from, prev_index, prev_term, entries, commit)?;
                }
            }
            MessageBody::Heartbeat { commit, seq } => {
                if self.accept_leader(from) {
                    let last = self.last_index()?;
                    if commit > self.commit {
                        self.commit = commit.min(last).max(self.commit);
                    }
                    self.send(from, MessageBody::HeartbeatResponse { seq });
                }
            }
            MessageBody::InstallSnapshot { meta, offset, data, done } => {
                if self.accept_leader(from) {
                    self.handle_snapshot_chunk(from, meta, offset, data, done)?;
                }
            }
            MessageBody::AppendResponse { index, reject } => {
                self.handle_append_response(from, index, reject)?;
            }
            MessageBody::HeartbeatResponse { seq } => {
                self.handle_heartbeat_response(from, seq)?;
            }
            MessageBody::SnapshotResponse { index, next_offset, done } => {
                self.handle_snapshot_response(from, index, next_offset, done)?;
            }
            MessageBody::TimeoutNow => {
                if matches!(self.role, RoleState::Follower { .. }) {
                    self.campaign(true)?;
                }
            }
        }
        Ok(())
    }

    fn log_up_to_date(&self, last_index: Index, last_term: Term) -> Result<bool> {
        let (li, lt) = (self.last_index()?, self.last_term()?);
        Ok(last_term > lt || (last_term == lt && last_index >= li))
    }

    /// A leader-only message at our term: follow its sender. Returns false
    /// if we are ourselves the leader (impossible unless malformed).
    fn accept_leader(&mut self, from: NodeId) -> bool {
        match self.role {
            RoleState::Leader(_) => return false,
            RoleState::Follower { leader: Some(l) } if l == from => {}
            _ => self.become_follower(self.term, Some(from)),
        }
        self.election_elapsed = 0;
        self.since_leader_contact = 0;
        true
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        mut prev_index: Index,
        mut prev_term: Term,
        mut entries: Vec<Entry>,
        leader_commit: Index,
    ) -> Result<()> {
        // Contiguity was checked by `is_sane`; terms must not go backwards
        // nor exceed the leader's.
        let mut t = prev_term;
        for e in &entries {
            if e.term > self.term || e.term < t {
                return Ok(()); // malformed
            }
            t = e.term;
        }
        if prev_index < self.commit {
            // Entries up to our commit index are known to match; skip them.
            let skip = (self.commit - prev_index) as usize;
            if skip >= entries.len() {
                let c = self.commit;
                self.send(from, MessageBody::AppendResponse { index: c, reject: None });
                return Ok(());
            }
            prev_term = entries[skip - 1].term;
            prev_index = self.commit;
            entries.drain(..skip);
        }
        if self.store.term(prev_index)? != Some(prev_term) {
            let hint_index = self.find_conflict_by_term(prev_index, prev_term)?;
            let hint_term = self.store.term(hint_index)?.unwrap_or(0);
            self.send(from, MessageBody::AppendResponse { index: prev_index, reject: Some((hint_index, hint_term)) });
            return Ok(());
        }
        let match_index = prev_index + entries.len() as Index;
        let mut start = entries.len();
        for (k, e) in entries.iter().enumerate() {
            match self.store.term(e.index)? {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    if e.index <= self.commit {
                        return Ok(()); // would rewrite committed history: malformed
                    }
                    self.truncate_log(e.index)?;
                    start = k;
                    break;
                }
                None => {
                    start = k;
                    break;
                }
            }
        }
        if start < entries.len() {
            self.append_to_log(&entries[start..])?;
        }
        let new_commit = leader_commit.min(match_index);
        if new_commit > self.commit {
            self.commit = new_commit;
        }
        self.send(from, MessageBody::AppendResponse { index: match_index, reject: None });
        Ok(())
    }

    fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    ) -> Result<()> {
        let index = meta.index;
        if index <= self.commit {
            self.incoming = None;
            self.send(from, MessageBody::SnapshotResponse { index, next_offset: 0, done: true });
            return Ok(());
        }
        let have = match &self.incoming {
            Some(inc) if inc.meta == meta => inc.data.len() as u64,
            _ => 0,
        };
        if offset == 0 && have == 0 {
            self.incoming = Some(IncomingSnapshot { meta: meta.clone(), data: Vec::new() });
        }
        if offset != have || (data.is_empty() && !done) {
            // Out of order or a resumable restart: ask for what we need next.
            if have == 0 && offset != 0 {
                self.incoming = None;
            }
            self.send(from, MessageBody::SnapshotResponse { index, next_offset: have, done: false });
            return Ok(());
        }
        let Some(inc) = self.incoming.as_mut() else {
            return Ok(());
        };
        inc.data.extend_from_slice(&data);
        let next_offset = inc.data.len() as u64;
        if !done {
            self.send(from, MessageBody::SnapshotResponse { index, next_offset, done: false });
            return Ok(());
        }
        let Some(inc) = self.incoming.take() else {
            return Ok(());
        };
        let snap = Snapshot { meta: inc.meta, data: inc.data };
        self.store.save_snapshot(snap.clone())?;
        let last = self.store.last_index()?;
        self.conf_history.retain(|(i, _)| *i > index && *i <= last);
        self.snapshot_index = index;
        self.commit = index;
        self.applied = index;
        self.snapshot_requested = false;
        self.recompute_membership()?;
        self.snapshot_to_apply = Some(snap);
        self.send(from, MessageBody::SnapshotResponse { index, next_offset, done: true });
        Ok(())
    }

    fn handle_append_response(&mut self, from: NodeId, index: Index, reject: Option<(Index, Term)>) -> Result<()> {
        let last = self.last_index()?;
        let probe_hint = match reject {
            Some((hi, ht)) => Some(self.find_conflict_by_term(hi, ht)?),
            None => None,
        };
        let Some(ls) = leader_mut(&mut self.role) else {
            return Ok(());
        };
        let Some(pr) = ls.progress.get_mut(&from) else {
            return Ok(());
        };
        pr.recent_active = true;
        match probe_hint {
            None => {
                if index > last {
                    return Ok(()); // malformed
                }
                while pr.inflight.front().is_some_and(|i| *i <= index) {
                    pr.inflight.pop_front();
                }
                let probe_confirmed = index == pr.match_index && pr.state == ProgressState::Probe;
                if index > pr.match_index || probe_confirmed {
                    pr.match_index = index;
                    pr.next_index = pr.next_index.max(index + 1);
                    match pr.state {
                        ProgressState::Probe => {
                            pr.state = ProgressState::Replicate;
                            pr.paused = false;
                            pr.inflight.clear();
                            pr.next_index = index + 1;
                        }
                        ProgressState::Snapshot { index: si, .. } if index >= si => {
                            pr.become_probe();
                            pr.next_index = index + 1;
                        }
                        _ => {}
                    }
                    self.maybe_commit()?;
                    self.maybe_send_timeout_now(from)?;
                }
            }
            Some(hint) => {
                if index <= pr.match_index {
                    // Stale: the follower already matched beyond this point.
                    return Ok(());
                }
                match pr.state {
                    ProgressState::Replicate => pr.become_probe(),
                    ProgressState::Probe if pr.next_index.saturating_sub(1) != index => return Ok(()),
                    ProgressState::Snapshot { .. } => return Ok(()),
                    ProgressState::Probe => {}
                }
                pr.paused = false;
                pr.next_index = (hint + 1).min(index).max(pr.match_index + 1);
            }
        }
        while self.send_append(from, false)? {}
        Ok(())
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, seq: u64) -> Result<()> {
        let last = self.last_index()?;
        let max_inflight = self.cfg.max_inflight;
        let Some(ls) = leader_mut(&mut self.role) else {
            return Ok(());
        };
        let max_seq = ls.seq;
        let Some(pr) = ls.progress.get_mut(&from) else {
            return Ok(());
        };
        pr.recent_active = true;
        if seq <= max_seq {
            pr.acked_seq = pr.acked_seq.max(seq);
        }
        pr.paused = false;
        if pr.state == ProgressState::Replicate && pr.inflight.len() >= max_inflight {
            pr.inflight.pop_front();
        }
        let behind = pr.match_index < last;
        if behind {
            self.send_append(from, true)?;
        }
        self.check_reads();
        Ok(())
    }

    fn handle_snapshot_response(&mut self, from: NodeId, index: Index, next_offset: u64, done: bool) -> Result<()> {
        let Some(ls) = leader_mut(&mut self.role) else {
            return Ok(());
        };
        let Some(pr) = ls.progress.get_mut(&from) else {
            return Ok(());
        };
        pr.recent_active = true;
        let ProgressState::Snapshot { index: si, term, .. } = pr.state else {
            return Ok(());
        };
        if index != si {
            return Ok(());
        }
        if done {
            pr.match_index = pr.match_index.max(index);
            pr.become_probe();
            pr.next_index = pr.match_index + 1;
            self.maybe_commit()?;
            while self.send_append(from, false)? {}
        } else {
            pr.state = ProgressState::Snapshot { index: si, term, offset: next_offset };
            pr.paused = false;
            self.send_snapshot_chunk(from)?;
        }
        Ok(())
    }
}
