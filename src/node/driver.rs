//! The replica driver: the Raft node and the apply step as one state machine, events in and
//! commands out.
//!
//! [`Driver`] never blocks, sleeps, spawns a thread or reads a clock. Time arrives as
//! [`Input::Tick`]; everything that happens elsewhere (messages to peers, answers to callers,
//! building a snapshot) leaves as an [`Output`]. The replica's thread (`replica.rs`) is a thin
//! shell that turns channels and timers into inputs and carries out the outputs; the
//! simulator (`tests/replica_sim.rs`) drives the same state machine directly, with the real
//! MVCC apply, failing storage and restarts.
//!
//! Applying a committed entry can fail in two ways, told apart by [`Error::is_deterministic`]:
//! - **Deterministically**: the entry itself is bad (it does not decode, or the engine refuses
//!   it). Every replica fails the same way on the same bytes, so every replica records the
//!   entry as applied without effect, and its proposer gets the error. Halting instead would
//!   stop the whole group on one bad entry.
//! - **Transiently** (I/O, a full disk): nothing after the entry is applied and the entry is
//!   tried again with a growing backoff; meanwhile proposals are refused with the error at
//!   once. Past `apply_retry_ticks` of failing the driver gives up ([`Driver::handle`] returns
//!   the error, and the process stops rather than serve stale data as a zombie).
//!
//! A failure of the Raft log itself is never retried: after a failed fsync nobody knows what
//! is on disk, so the driver stops at once.

use crate::error::{Error, Result};
use crate::mvcc::{decode_batch, encode_batch, Mvcc, Version, WriteBatch};
use crate::raft::{
    self, ConfChange, Entry, EntryData, Index, LogStore, Membership, NodeId, ReadState, Ready, SnapshotReader, Term,
};
use rand::rngs::StdRng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Names a caller waiting for an answer ([`Output::Done`], [`Output::Read`]); chosen by
/// whoever drives the state machine, unique among the outstanding ones.
pub type Ticket = u64;

/// Settings of the driver.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    pub raft: raft::Config,
    /// Ticks to wait before building a snapshot again after a build failed.
    pub snapshot_retry_ticks: u64,
    /// Ticks a transient apply failure may last before the driver gives up.
    pub apply_retry_ticks: u64,
}

impl DriverConfig {
    /// Defaults for node `id`, with a 50 ms tick in mind.
    pub fn new(id: NodeId) -> Self {
        let mut raft = raft::Config::new(id);
        raft.lease_reads = true;
        Self { raft, snapshot_retry_ticks: 200, apply_retry_ticks: 60 }
    }
}

/// What happens to the driver.
pub enum Input {
    /// One unit of time passed.
    Tick,
    /// A message from a peer.
    Message(raft::Message),
    /// Replicate a validated batch ([`Mvcc::stage_commit`]); answered with [`Output::Done`]
    /// once it is applied here.
    Propose(WriteBatch, Ticket),
    /// A linearizable read point; answered with [`Output::Read`].
    ReadIndex(Ticket),
    /// Propose a membership change; answered with [`Output::Done`] once it is in the log.
    ChangeMembership(ConfChange, Ticket),
    /// Start a leadership transfer; answered with [`Output::Done`] once it started.
    Transfer(NodeId, Ticket),
    /// The snapshot asked for with [`Output::BuildSnapshot`] at this index is built.
    SnapshotBuilt(Index, Built),
    /// Building the snapshot failed; it is tried again later.
    SnapshotFailed,
}

/// A built snapshot.
pub enum Built {
    /// Held in memory, for a store without a [`raft::SnapshotWriter`].
    Data(Vec<u8>),
    /// Written into the log store by the writer handed out with [`Output::BuildSnapshot`].
    Written(raft::Written),
}

/// What the driver asks of its surroundings.
pub enum Output {
    /// Send a message to a peer (best effort).
    Send(raft::Message),
    /// The answer to a proposal, membership change or transfer.
    Done(Ticket, Result<()>),
    /// The answer to a read index request: a version to read at once it is visible.
    Read(Ticket, Result<Version>),
    /// Build a snapshot of the engine at `version` (everything applied up to Raft index
    /// `index`, and nothing after) off the driver, into `writer` when there is one, and hand
    /// it back with [`Input::SnapshotBuilt`] or [`Input::SnapshotFailed`].
    BuildSnapshot { index: Index, version: Version, writer: Option<Box<dyn raft::SnapshotWriter>> },
}

/// Committed work waiting to be applied, in log order.
enum Work {
    /// Install the log store's latest snapshot, described by this.
    Restore(raft::SnapshotMeta),
    Apply(Entry),
}

impl Work {
    /// The Raft index the work brings the engine to.
    fn index(&self) -> Index {
        match self {
            Work::Restore(meta) => meta.index,
            Work::Apply(entry) => entry.index,
        }
    }
}

/// A proposal waiting for its entry.
struct Proposal {
    term: Term,
    batch: WriteBatch,
    ticket: Ticket,
}

/// A transient apply failure being retried.
struct Stall {
    error: Error,
    since: u64,
    attempts: u32,
    retry_at: u64,
}

/// How a piece of work failed.
enum Failure {
    /// The same bytes fail the same way on every replica.
    Deterministic(Error),
    /// Local trouble: try again.
    Transient(Error),
}

impl Failure {
    fn of(error: Error) -> Failure {
        if error.is_deterministic() {
            Failure::Deterministic(error)
        } else {
            Failure::Transient(error)
        }
    }
}

/// The longest backoff between two attempts at a failing apply, in ticks.
const MAX_APPLY_BACKOFF: u64 = 16;

/// A Raft error as the crate's: storage failures keep whether the disk is full.
pub(crate) fn from_raft(e: raft::Error) -> Error {
    match e {
        raft::Error::DiskFull(s) => Error::DiskFull(format!("could not write to disk: {s}")),
        e => Error::Io(format!("raft: {e}")),
    }
}

/// The error of a write refused because this node cannot apply (or stopped after `failure`).
pub(crate) fn refused(failure: &Error) -> Error {
    let message = format!("this node stopped accepting writes after a storage failure: {failure}");
    match failure {
        Error::DiskFull(_) => Error::DiskFull(message),
        _ => Error::Io(message),
    }
}

/// A proposal whose index another leader's entry took, applied here: it never committed.
fn leadership_changed() -> Error {
    Error::Serialization("leadership changed; retry the transaction".into())
}

/// A proposal whose entry left this node's log before it committed.
fn replaced_here() -> Error {
    Error::CommitUnknown("leadership changed before the commit was confirmed; it may or may not be applied".into())
}

/// The Raft node of this process and the apply step into its engine.
pub struct Driver<S: LogStore> {
    node: raft::Node<S>,
    config: DriverConfig,
    /// Ticks seen.
    now: u64,
    /// The last index whose work is applied to the engine (Raft hands work out before it is
    /// applied: the backlog is the difference).
    applied: Index,
    backlog: VecDeque<Work>,
    stall: Option<Stall>,
    waiters: BTreeMap<Index, Proposal>,
    /// Read index requests not answered yet (their ids are their tickets).
    reads: BTreeSet<Ticket>,
    /// Confirmed reads waiting for the backlog to be applied.
    confirmed: Vec<ReadState>,
    /// As leader: the index of this term's first entry; versions may be assigned once it is
    /// applied (every entry of earlier terms is applied by then).
    ready_at: Option<Index>,
    /// Raft asked for a snapshot; it is built once the backlog is applied.
    snapshot_wanted: bool,
    /// A snapshot is being built.
    snapshotting: bool,
    /// When to build a snapshot again after a build failed.
    retry_snapshot_at: Option<u64>,
    snapshots_installed: u64,
    /// Entries recorded as applied without effect after a deterministic failure.
    skipped: u64,
}

impl<S: LogStore> Driver<S> {
    /// A driver over the log in `store`, for an engine that has applied up to the index it
    /// recorded itself.
    pub fn new(config: DriverConfig, bootstrap: Membership, store: S, mvcc: &Mvcc, rng: StdRng) -> Result<Self> {
        // The engine's own applied index: a stored snapshot newer than it is handed out by the
        // first `Ready` and counts once it is installed.
        let applied = mvcc.raft_applied_index()?;
        let node = raft::Node::new(config.raft.clone(), bootstrap, store, applied, rng).map_err(from_raft)?;
        Ok(Driver {
            node,
            config,
            now: 0,
            applied,
            backlog: VecDeque::new(),
            stall: None,
            waiters: BTreeMap::new(),
            reads: BTreeSet::new(),
            confirmed: Vec::new(),
            ready_at: None,
            snapshot_wanted: false,
            snapshotting: false,
            retry_snapshot_at: None,
            snapshots_installed: 0,
            skipped: 0,
        })
    }

    /// The Raft node.
    pub fn node(&self) -> &raft::Node<S> {
        &self.node
    }

    /// The log store, once the driver is done with (a restart reopens it).
    pub fn into_store(self) -> S {
        self.node.into_store()
    }

    /// The last Raft index applied to the engine.
    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// Whether this node is the group's only voter (it may have learners).
    pub fn single_voter(&self) -> bool {
        let voters = &self.node.membership().voters;
        voters.len() == 1 && voters.contains(&self.node.id())
    }

    /// Whether this node is the group's only member (voters and learners alike).
    pub fn alone(&self) -> bool {
        let mut members = self.node.membership().all();
        members.next() == Some(self.node.id()) && members.next().is_none()
    }

    /// A leader that has applied every entry of earlier terms: it may assign versions.
    pub fn is_ready(&self) -> bool {
        self.node.is_leader() && self.ready_at.is_some_and(|at| self.applied >= at)
    }

    /// The transient apply failure being retried, if any.
    pub fn stalled(&self) -> Option<&Error> {
        self.stall.as_ref().map(|s| &s.error)
    }

    /// Snapshots received from a leader and installed.
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed
    }

    /// Entries recorded as applied without effect because they failed deterministically.
    pub fn skipped_entries(&self) -> u64 {
        self.skipped
    }

    /// A group of one elects itself at once instead of after an election timeout, so that a
    /// single node serves writes as soon as it listens.
    pub fn elect_alone(&mut self, mvcc: &Arc<Mvcc>, out: &mut Vec<Output>) -> Result<()> {
        if !self.single_voter() {
            return Ok(());
        }
        for _ in 0..4 * self.node.config().election_timeout {
            if self.node.is_leader() {
                break;
            }
            let rd = self.node.tick().map_err(from_raft)?;
            self.process(mvcc, rd, out)?;
        }
        Ok(())
    }

    /// Takes one input. An error means the driver cannot go on: call [`Driver::fail`].
    pub fn handle(&mut self, mvcc: &Arc<Mvcc>, input: Input, out: &mut Vec<Output>) -> Result<()> {
        match input {
            Input::Tick => {
                self.now += 1;
                let rd = self.node.tick().map_err(from_raft)?;
                self.process(mvcc, rd, out)?;
                if self.stall.as_ref().is_some_and(|s| self.now >= s.retry_at) {
                    self.apply_backlog(mvcc, out)?;
                }
                if self.retry_snapshot_at.is_some_and(|at| self.now >= at) {
                    self.retry_snapshot_at = None;
                    self.start_snapshot(mvcc, out)?;
                }
                self.replace_marker_snapshot(mvcc, out)?;
            }
            Input::Message(message) => {
                let rd = self.node.step(message).map_err(from_raft)?;
                self.process(mvcc, rd, out)?;
            }
            Input::Propose(batch, ticket) => self.propose(mvcc, batch, ticket, out)?,
            Input::ReadIndex(ticket) => match self.node.read_index(ticket) {
                Ok(()) => {
                    self.reads.insert(ticket);
                }
                Err(raft::Error::NotLeader(leader)) => out.push(Output::Read(ticket, Err(Error::NotLeader(leader)))),
                Err(_) => out.push(Output::Read(ticket, Err(Error::NotLeader(None)))),
            },
            Input::ChangeMembership(change, ticket) => {
                let result = match self.node.propose_conf_change(change) {
                    Ok(_) => Ok(()),
                    Err(raft::Error::NotLeader(leader)) => Err(Error::NotLeader(leader)),
                    Err(e @ (raft::Error::Storage(_) | raft::Error::DiskFull(_))) => return Err(from_raft(e)),
                    Err(other) => Err(Error::InvalidParameter(other.to_string())),
                };
                out.push(Output::Done(ticket, result));
            }
            Input::Transfer(to, ticket) => {
                let result = self.node.transfer_leadership(to).map_err(|e| match e {
                    raft::Error::NotLeader(leader) => Error::NotLeader(leader),
                    other => Error::InvalidParameter(other.to_string()),
                });
                out.push(Output::Done(ticket, result));
            }
            Input::SnapshotBuilt(index, built) => {
                self.snapshotting = false;
                match built {
                    Built::Data(data) => self.node.compact(index, data),
                    Built::Written(written) => self.node.compact_written(index, written),
                }
                .map_err(from_raft)?;
            }
            Input::SnapshotFailed => {
                // Raft asks once per compaction: the driver tries again itself, later.
                self.snapshotting = false;
                self.retry_snapshot_at = Some(self.now + self.config.snapshot_retry_ticks);
            }
        }
        self.track_leadership()
    }

    /// Acts on everything the inputs so far produced: one log append and one fsync for all
    /// of them. Call after a round of [`Driver::handle`].
    pub fn advance(&mut self, mvcc: &Arc<Mvcc>, out: &mut Vec<Output>) -> Result<()> {
        loop {
            let rd = self.node.ready().map_err(from_raft)?;
            if rd.is_empty() {
                return Ok(());
            }
            self.process(mvcc, rd, out)?;
        }
    }

    /// Answers every waiting caller after the driver failed with `error`.
    pub fn fail(&mut self, error: &Error, out: &mut Vec<Output>) {
        for (_, p) in std::mem::take(&mut self.waiters) {
            out.push(Output::Done(p.ticket, Err(Error::CommitUnknown(error.to_string()))));
        }
        for ticket in std::mem::take(&mut self.reads) {
            out.push(Output::Read(ticket, Err(error.clone())));
        }
    }

    fn propose(&mut self, mvcc: &Mvcc, batch: WriteBatch, ticket: Ticket, out: &mut Vec<Output>) -> Result<()> {
        let refusal = match (&self.stall, self.is_ready()) {
            (Some(stall), _) => Some(refused(&stall.error)),
            (None, false) => Some(leadership_changed()),
            (None, true) => None,
        };
        if let Some(error) = refusal {
            mvcc.abandon(&batch);
            out.push(Output::Done(ticket, Err(error)));
            return Ok(());
        }
        match self.node.propose(encode_batch(&batch)) {
            Ok(index) => {
                let term = self.node.term();
                if let Some(old) = self.waiters.insert(index, Proposal { term, batch, ticket }) {
                    // An earlier term's proposal at this index: gone from this log, though
                    // another node may still hold it and commit it as a later leader.
                    mvcc.abandon(&old.batch);
                    out.push(Output::Done(old.ticket, Err(replaced_here())));
                }
            }
            Err(e @ (raft::Error::Storage(_) | raft::Error::DiskFull(_))) => {
                mvcc.abandon(&batch);
                out.push(Output::Done(ticket, Err(Error::CommitUnknown(e.to_string()))));
                return Err(from_raft(e));
            }
            Err(_) => {
                mvcc.abandon(&batch);
                out.push(Output::Done(ticket, Err(leadership_changed())));
            }
        }
        Ok(())
    }

    /// Notices a new leadership of this node and records where its term starts.
    fn track_leadership(&mut self) -> Result<()> {
        if self.node.is_leader() {
            if self.ready_at.is_none() {
                self.ready_at = Some(self.node.store().last_index().map_err(from_raft)?);
            }
        } else {
            self.ready_at = None;
        }
        Ok(())
    }

    fn process(&mut self, mvcc: &Arc<Mvcc>, rd: Ready, out: &mut Vec<Output>) -> Result<()> {
        self.track_leadership()?;
        out.extend(rd.messages.into_iter().map(Output::Send));
        if let Some(snapshot) = rd.snapshot {
            // It covers whatever is still waiting up to its index (possible only while a
            // stall holds the backlog): that work is superseded.
            self.backlog.retain(|work| work.index() > snapshot.index);
            self.backlog.push_back(Work::Restore(snapshot));
        }
        self.backlog.extend(rd.committed_entries.into_iter().map(Work::Apply));
        self.confirmed.extend(rd.reads);
        for ticket in rd.failed_reads {
            if self.reads.remove(&ticket) {
                out.push(Output::Read(ticket, Err(Error::NotLeader(self.node.leader()))));
            }
        }
        if rd.snapshot_request.is_some() {
            self.snapshot_wanted = true;
        }
        if !self.node.is_leader() && !self.waiters.is_empty() {
            self.drop_replaced(mvcc, out)?;
        }
        if self.stall.is_none() {
            self.apply_backlog(mvcc, out)?;
        }
        Ok(())
    }

    /// Answers proposals whose entries a new leader removed from this node's log: nothing
    /// else would answer them until another entry lands at the same index. Their outcome is
    /// unknown, not failed: another node may still hold the entry and, as a later leader,
    /// commit it.
    fn drop_replaced(&mut self, mvcc: &Mvcc, out: &mut Vec<Output>) -> Result<()> {
        let store = self.node.store();
        let last = store.last_index().map_err(from_raft)?;
        let mut gone = Vec::new();
        for (index, p) in self.waiters.range(self.applied + 1..) {
            let replaced = *index > last || store.term(*index).map_err(from_raft)?.is_some_and(|t| t != p.term);
            if replaced {
                gone.push(*index);
            }
        }
        for index in gone {
            if let Some(p) = self.waiters.remove(&index) {
                mvcc.abandon(&p.batch);
                out.push(Output::Done(p.ticket, Err(replaced_here())));
            }
        }
        Ok(())
    }

    /// Applies the backlog in order, then serves what waited for it.
    fn apply_backlog(&mut self, mvcc: &Arc<Mvcc>, out: &mut Vec<Output>) -> Result<()> {
        while let Some(work) = self.backlog.pop_front() {
            match self.perform(mvcc, &work) {
                Ok(()) => self.finish(mvcc, work, out),
                Err(Failure::Transient(error)) => {
                    self.backlog.push_front(work);
                    return self.stalled_on(error);
                }
                Err(Failure::Deterministic(error)) => {
                    let Work::Apply(entry) = &work else {
                        // A snapshot cannot be skipped: the state it replaces is gone.
                        return Err(Error::Corruption(format!("cannot install the leader's snapshot: {error}")));
                    };
                    if let Err(e) = mvcc.apply_marker(entry.index) {
                        self.backlog.push_front(work);
                        return self.stalled_on(e);
                    }
                    tracing::error!(index = entry.index, %error, "a committed entry was refused; it is applied without effect");
                    self.skipped += 1;
                    self.applied = entry.index;
                    if let Some(p) = self.waiters.remove(&entry.index) {
                        mvcc.abandon(&p.batch);
                        // The refused entry is this proposal's only if the terms match.
                        let error = if p.term == entry.term { error } else { leadership_changed() };
                        out.push(Output::Done(p.ticket, Err(error)));
                    }
                }
            }
            if self.stall.take().is_some() {
                tracing::info!("applying committed entries again");
            }
        }
        let version = mvcc.durable_version();
        for read in std::mem::take(&mut self.confirmed) {
            if self.reads.remove(&read.id) {
                out.push(Output::Read(read.id, Ok(version)));
            }
        }
        if std::mem::take(&mut self.snapshot_wanted) {
            if self.alone() {
                // Nobody asks a group of one for a snapshot (a restart resumes from the data
                // itself, whose applied index is at or past this one): compact the log with
                // an empty snapshot, which marks the compaction point and is never sent. Once
                // the group grows, a real one replaces it (see `replace_marker_snapshot`).
                self.node.compact(self.applied, Vec::new()).map_err(from_raft)?;
            } else {
                self.start_snapshot(mvcc, out)?;
            }
        }
        Ok(())
    }

    fn perform(&self, mvcc: &Arc<Mvcc>, work: &Work) -> std::result::Result<(), Failure> {
        match work {
            Work::Restore(meta) => {
                let store = self.node.store();
                // Read from the store a chunk at a time, twice (see `restore_snapshot_from`).
                let mut open = || match SnapshotReader::open(store).map_err(from_raft)? {
                    Some(reader) if reader.meta() == meta => Ok(reader),
                    _ => Err(Error::Io(format!("the snapshot at index {} is no longer stored", meta.index))),
                };
                mvcc.restore_snapshot_from(&mut open, meta.index).map_err(Failure::of)
            }
            Work::Apply(entry) => match &entry.data {
                // The bytes are the same on every replica: a batch that does not decode
                // fails everywhere, whatever kind of error says so.
                EntryData::Command(bytes) => {
                    let batch = decode_batch(bytes).map_err(Failure::Deterministic)?;
                    mvcc.apply_committed(&batch, entry.index).map_err(Failure::of)
                }
                EntryData::Noop | EntryData::Membership(_) => mvcc.apply_marker(entry.index).map_err(Failure::of),
            },
        }
    }

    /// Records a transient failure of the backlog's first work; an error once it has lasted
    /// too long.
    fn stalled_on(&mut self, error: Error) -> Result<()> {
        let now = self.now;
        let stall = self.stall.get_or_insert_with(|| {
            tracing::warn!(%error, "applying a committed entry failed; trying again");
            Stall { error: error.clone(), since: now, attempts: 0, retry_at: now }
        });
        stall.error = error;
        stall.attempts += 1;
        if now.saturating_sub(stall.since) >= self.config.apply_retry_ticks {
            return Err(stall.error.clone());
        }
        stall.retry_at = now + (1u64 << stall.attempts.min(8)).min(MAX_APPLY_BACKOFF);
        Ok(())
    }

    /// Completes applied work: answers its proposer.
    fn finish(&mut self, mvcc: &Mvcc, work: Work, out: &mut Vec<Output>) {
        match work {
            Work::Restore(meta) => {
                let index = meta.index;
                self.applied = self.applied.max(index);
                self.snapshots_installed += 1;
                tracing::info!(index, term = meta.term, "installed a snapshot from the leader");
                // Proposals the snapshot covers either are in it or were lost: nobody can tell.
                let covered: Vec<Index> = self.waiters.range(..=index).map(|(i, _)| *i).collect();
                for index in covered {
                    if let Some(p) = self.waiters.remove(&index) {
                        mvcc.abandon(&p.batch);
                        out.push(Output::Done(p.ticket, Err(Error::CommitUnknown("replaced by a snapshot".into()))));
                    }
                }
            }
            Work::Apply(entry) => {
                self.applied = entry.index;
                if let Some(p) = self.waiters.remove(&entry.index) {
                    if p.term == entry.term {
                        out.push(Output::Done(p.ticket, Ok(())));
                    } else {
                        // Another leader's entry took this index: the proposal is gone.
                        mvcc.abandon(&p.batch);
                        out.push(Output::Done(p.ticket, Err(leadership_changed())));
                    }
                }
            }
        }
    }

    /// Starts building a snapshot of the engine at the applied index, unless one is being
    /// built. Everything up to this index is applied, and nothing later: the pair names one
    /// state.
    fn start_snapshot(&mut self, mvcc: &Mvcc, out: &mut Vec<Output>) -> Result<()> {
        if self.snapshotting {
            return Ok(());
        }
        if !self.backlog.is_empty() {
            self.snapshot_wanted = true;
            return Ok(());
        }
        // Straight into the log store where it can take it, so that it is never held whole.
        let writer = self.node.store().snapshot_writer().map_err(from_raft)?;
        self.snapshotting = true;
        out.push(Output::BuildSnapshot { index: self.applied, version: mvcc.durable_version(), writer });
        Ok(())
    }

    /// A group that compacted while it was alone holds an empty snapshot, which cannot be
    /// sent; once it has other members, one that needs compacted entries waits for a real
    /// snapshot: build it.
    fn replace_marker_snapshot(&mut self, mvcc: &Mvcc, out: &mut Vec<Output>) -> Result<()> {
        if self.alone() || self.snapshotting || self.retry_snapshot_at.is_some() || !self.node.is_leader() {
            return Ok(());
        }
        let Some((meta, _, len)) = self.node.store().snapshot_chunk(0, 0).map_err(from_raft)? else {
            return Ok(());
        };
        if len == 0 && self.applied > meta.index {
            self.start_snapshot(mvcc, out)?;
        }
        Ok(())
    }
}
