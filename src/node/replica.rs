//! The replica: drives a [`raft::Node`] for this process and connects it to the MVCC engine.
//!
//! One OS thread (the *driver*) owns the Raft node and its [`SledLogStore`]. Everything else
//! talks to it through a channel: messages from peers, proposals of validated batches, read
//! index requests. After each input the driver drains whatever else is queued (so many
//! proposals share one log append, one fsync and one `Append` message), then acts on the
//! node's `Ready`: sends messages, restores snapshots, applies committed entries to the MVCC
//! store ([`Mvcc::apply_committed`]), answers reads and wakes the commits that waited.
//!
//! [`Replica`] is the engine's [`Replicator`]: on the leader, commits are proposed here; on
//! other nodes they are forwarded to the leader through the [`Transport`]. Reads wait for a
//! barrier first: nothing on a single-voter leader, a read index confirmed by a quorum on a
//! leader, and the leader's applied version on a follower (unless the session asked for stale
//! follower reads).

use super::driver::{from_raft, refused, Built, Driver, DriverConfig, Input, Output, Ticket};
use crate::error::{Error, Result};
use crate::mvcc::{lock, CommitRequest, Mvcc, Replicator, Version, Waiter, WriteBatch};
use crate::raft::{self, ConfChange, Index, LogStore, Membership, NodeId, Role, Term};
use crate::storage::keyspace::{Keyspace, MEMBER_ADDRESS};
use rand::SeedableRng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// How this node reaches the others.
pub trait Transport: Send + Sync {
    /// Sends a Raft message (best effort: Raft copes with loss).
    fn send(&self, message: raft::Message);
    /// Commits `request` on node `leader`; returns the commit version.
    fn commit(&self, leader: NodeId, request: &CommitRequest) -> Result<Version>;
    /// Asks node `leader` for a linearizable read point: its applied version once it has
    /// confirmed its leadership.
    fn read_index(&self, leader: NodeId) -> Result<Version>;
    /// Starts (with an address) or stops (None) talking to member `id`.
    fn set_peer(&self, id: NodeId, address: Option<&str>) -> Result<()>;
    /// The members this node can reach.
    fn peers(&self) -> Vec<NodeId>;
}

/// A transport for a group of one: there is nobody to talk to.
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&self, _: raft::Message) {}
    fn commit(&self, leader: NodeId, _: &CommitRequest) -> Result<Version> {
        Err(Error::Io(format!("no route to node {leader}")))
    }
    fn read_index(&self, leader: NodeId) -> Result<Version> {
        Err(Error::Io(format!("no route to node {leader}")))
    }
    fn set_peer(&self, id: NodeId, _: Option<&str>) -> Result<()> {
        Err(Error::InvalidParameter(format!("a single node cannot reach node {id}: start members with `chronos node`")))
    }
    fn peers(&self) -> Vec<NodeId> {
        Vec::new()
    }
}

/// The MVCC key holding the internode address of member `id`, replicated like any write so
/// that every member can reach members that joined after it started. (Its name is raw bytes,
/// not an encoded record name, as every version so far has written it: see
/// `storage::keyspace`.)
fn member_address_key(id: NodeId) -> Vec<u8> {
    Keyspace::Meta.key(&[MEMBER_ADDRESS, &id.to_be_bytes()].concat())
}

/// Settings of the replica.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    pub id: NodeId,
    /// The founding voters (this node included).
    pub voters: Vec<NodeId>,
    /// Length of one Raft tick.
    pub tick: Duration,
    /// Election timeout in ticks (randomized up to twice this).
    pub election_ticks: u64,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: u64,
    /// Take a snapshot and compact the log after this many applied entries (0: never).
    pub snapshot_threshold: u64,
    /// … or after this many bytes of applied commands (0: never).
    pub snapshot_threshold_bytes: u64,
}

impl ReplicaConfig {
    /// Defaults for node `id` among `voters`.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Self {
        Self {
            id,
            voters,
            tick: Duration::from_millis(50),
            election_ticks: 10,
            heartbeat_ticks: 2,
            snapshot_threshold: 50_000,
            snapshot_threshold_bytes: 0,
        }
    }
}

/// The replica's state as others see it (`/health`, routing of commits and reads).
#[derive(Default)]
pub struct Status {
    role: AtomicU8,
    term: AtomicU64,
    leader: AtomicU64,
    commit: AtomicU64,
    applied: AtomicU64,
    /// Leader that has applied everything from earlier terms: may assign versions.
    ready: Mutex<bool>,
    ready_changed: Condvar,
    single_voter: AtomicBool,
    /// Until when this leader's lease lets it serve reads without asking its followers, on
    /// the monotonic clock: a reader checks the time itself, so a lease never outlives its
    /// real duration because the Raft thread did not run (a pause, a slow write) to revoke it.
    lease_until: Mutex<Option<Instant>>,
    snapshots_installed: AtomicU64,
    elections: AtomicU64,
    snapshots_sent: AtomicU64,
    /// The leader's replication progress: each other member's match index (empty elsewhere).
    matched: Mutex<Vec<(NodeId, Index)>>,
    membership: Mutex<Membership>,
    /// Why the driver stopped, once it has after a storage failure.
    failure: Mutex<Option<Error>>,
    /// Why applying committed entries keeps failing, while the driver retries.
    stall: Mutex<Option<Error>>,
    /// Messages from peers queued for the driver.
    inbound: AtomicUsize,
}

/// A snapshot of [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusView {
    pub role: &'static str,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit: Index,
    pub applied: Index,
    /// Snapshots received from a leader and installed since start-up.
    pub snapshots_installed: u64,
    /// Elections this member started as a candidate since start-up.
    pub elections: u64,
    /// Snapshots this member sent whole to followers since start-up.
    pub snapshots_sent: u64,
    /// On the leader, each other member's match index: the last entry it is known to hold.
    pub matched: Vec<(NodeId, Index)>,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
}

impl Status {
    pub fn view(&self) -> StatusView {
        let role = match self.role.load(Ordering::SeqCst) {
            1 => "Leader",
            2 => "Candidate",
            3 => "Learner",
            _ => "Follower",
        };
        let leader = self.leader.load(Ordering::SeqCst);
        let membership = lock(&self.membership).clone();
        StatusView {
            role,
            term: self.term.load(Ordering::SeqCst),
            leader: (leader != 0).then_some(leader),
            commit: self.commit.load(Ordering::SeqCst),
            applied: self.applied.load(Ordering::SeqCst),
            snapshots_installed: self.snapshots_installed.load(Ordering::SeqCst),
            elections: self.elections.load(Ordering::SeqCst),
            snapshots_sent: self.snapshots_sent.load(Ordering::SeqCst),
            matched: lock(&self.matched).clone(),
            voters: membership.voters.into_iter().collect(),
            learners: membership.learners.into_iter().collect(),
        }
    }

    fn is_ready(&self) -> bool {
        *self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the driver stopped, if it did after a storage failure.
    pub fn failure(&self) -> Option<Error> {
        lock(&self.failure).clone()
    }

    fn fail(&self, error: &Error) {
        lock(&self.failure).get_or_insert_with(|| error.clone());
        self.set_ready(false);
        // Wake anyone waiting for a leader: there will be none here.
        self.ready_changed.notify_all();
    }

    fn set_ready(&self, ready: bool) {
        let mut r = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        if *r != ready {
            *r = ready;
            self.ready_changed.notify_all();
        }
    }

    /// Waits up to `timeout` for this node to become a ready leader or to know another leader.
    fn wait_for_leader(&self, timeout: Duration) -> Option<NodeId> {
        let deadline = Instant::now() + timeout;
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let leader = self.leader.load(Ordering::SeqCst);
            if *ready || (leader != 0 && self.role.load(Ordering::SeqCst) != 1) {
                return Some(leader);
            }
            if lock(&self.failure).is_some() {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // Leadership can also change without `ready` changing: poll as well.
            ready = self
                .ready_changed
                .wait_timeout(ready, left.min(Duration::from_millis(10)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// What the driver thread receives.
enum Event {
    Message(raft::Message),
    Propose(WriteBatch, mpsc::Sender<Result<()>>),
    ReadIndex(mpsc::Sender<Result<Version>>),
    /// Start a leadership transfer to this voter.
    Transfer(NodeId, mpsc::Sender<Result<()>>),
    /// Propose a single-server membership change.
    ChangeMembership(ConfChange, mpsc::Sender<Result<()>>),
    /// A snapshot built off the driver thread at a Raft index.
    Built(Index, Built),
    /// Building a snapshot failed.
    SnapshotFailed,
    Stop,
}

/// This process's member of the Raft group.
pub struct Replica {
    id: NodeId,
    events: Mutex<mpsc::Sender<Event>>,
    status: Arc<Status>,
    /// The engine owns its replica (as its [`Replicator`]), not the other way round: the
    /// driver stops once the engine is gone.
    mvcc: Weak<Mvcc>,
    transport: Arc<dyn Transport>,
    driver: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How long the driver waits for more proposals before an fsync (see `Driver::run`).
const GROUP_COMMIT_WINDOW: Duration = Duration::from_micros(500);

/// How long the driver waits before building a snapshot again after a build failed.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(10);

/// How long applying a committed entry may keep failing (I/O) before the node stops.
const APPLY_RETRY: Duration = Duration::from_secs(3);

/// How often a request refused with "not the leader" is sent again (to the new leader).
const FORWARD_ATTEMPTS: usize = 50;

/// Messages from peers that may wait for the driver at once.
const MAX_INBOUND_MESSAGES: usize = 8192;

/// How long a statement waits for a leader to exist before failing.
const LEADER_WAIT: Duration = Duration::from_secs(10);

impl Replica {
    /// Starts the driver over the log in `store` and installs the replica as `mvcc`'s
    /// replicator.
    pub fn start<S: LogStore + Send + 'static>(
        config: ReplicaConfig,
        mut store: S,
        mvcc: Arc<Mvcc>,
        transport: Arc<dyn Transport>,
    ) -> Result<Arc<Replica>> {
        super::backup::adopt_restored(&mut store, &mvcc, config.id, &config.voters)?;
        let mut driver_config = DriverConfig::new(config.id);
        driver_config.raft.election_timeout = config.election_ticks;
        driver_config.raft.heartbeat_interval = config.heartbeat_ticks;
        driver_config.raft.snapshot_threshold = config.snapshot_threshold;
        driver_config.raft.snapshot_threshold_bytes = config.snapshot_threshold_bytes;
        let ticks = |d: Duration| (d.as_millis() / config.tick.as_millis().max(1)).max(1) as u64;
        driver_config.snapshot_retry_ticks = ticks(SNAPSHOT_RETRY);
        driver_config.apply_retry_ticks = ticks(APPLY_RETRY);
        let rng = rand::rngs::StdRng::from_entropy();
        let driver = Driver::new(driver_config, Membership::with_voters(config.voters.clone()), store, &mvcc, rng)?;
        let status = Arc::new(Status::default());
        status.single_voter.store(config.voters.len() == 1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        let mut runner = Runner {
            driver,
            mvcc: Arc::downgrade(&mvcc),
            transport: transport.clone(),
            status: status.clone(),
            replies: HashMap::new(),
            next_ticket: 1,
            tick: config.tick,
            max_catch_up_ticks: 2 * config.election_ticks + 2,
            last_tick: Instant::now(),
            events: tx.clone(),
            last_round: 0,
            peers_synced: Membership::default(),
        };
        runner.publish();
        let handle = std::thread::Builder::new()
            .name(format!("raft-{}", config.id))
            .spawn(move || runner.run(rx))
            .map_err(|e| Error::Io(e.to_string()))?;
        let replica = Arc::new(Replica {
            id: config.id,
            events: Mutex::new(tx),
            status,
            mvcc: Arc::downgrade(&mvcc),
            transport,
            driver: Mutex::new(Some(handle)),
        });
        mvcc.set_replicator(replica.clone());
        Ok(replica)
    }

    /// Why this node stopped accepting writes, once a storage failure stopped its driver.
    pub fn failure(&self) -> Option<Error> {
        self.status.failure()
    }

    /// Why applying committed entries keeps failing here, while the driver retries.
    pub fn stalled(&self) -> Option<Error> {
        lock(&self.status.stall).clone()
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The replica's state.
    pub fn status(&self) -> StatusView {
        self.status.view()
    }

    pub fn mvcc(&self) -> Result<Arc<Mvcc>> {
        self.mvcc.upgrade().ok_or_else(|| Error::Io("the engine has shut down".into()))
    }

    fn send(&self, event: Event) -> Result<()> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(event)
            .map_err(|_| Error::Io("the replica has stopped".into()))
    }

    /// Hands a message from a peer to the driver. Messages for another node, and from a node
    /// that is neither a member nor a configured peer, are refused.
    pub fn receive(&self, message: raft::Message) -> Result<()> {
        if message.to != self.id {
            return Err(Error::InvalidParameter(format!("a message for node {} reached node {}", message.to, self.id)));
        }
        let from = message.from;
        let member = {
            let membership = lock(&self.status.membership);
            membership.voters.contains(&from) || membership.learners.contains(&from)
        };
        if !member && !self.transport.peers().contains(&from) {
            return Err(Error::InvalidParameter(format!("node {from} is not a member")));
        }
        // Peers' messages wait for the driver in a bounded queue: past it they are dropped,
        // which Raft tolerates (they are sent again), rather than held without limit.
        if self.status.inbound.fetch_add(1, Ordering::SeqCst) >= MAX_INBOUND_MESSAGES {
            self.status.inbound.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Io(format!("the message queue is full; a message from node {from} was dropped")));
        }
        self.send(Event::Message(message))
    }

    /// Commits a request forwarded by another node; this node must be the leader.
    pub fn commit_forwarded(&self, request: &CommitRequest) -> Result<Version> {
        if !self.status.is_ready() {
            return Err(Error::NotLeader(self.status.view().leader));
        }
        self.mvcc()?.commit_request(request)
    }

    /// Answers another node's read index request: the applied version once leadership is
    /// confirmed.
    pub fn read_index_forwarded(&self) -> Result<Version> {
        if !self.status.is_ready() {
            return Err(Error::NotLeader(self.status.view().leader));
        }
        self.local_read_index()
    }

    /// Adds member `id`, reachable at `address`, as a learner (this node must lead): its
    /// address is committed first (every member learns it), then the change is proposed. The
    /// new member, started with `--join`, catches up from the leader; promote it then.
    pub fn add_member(&self, id: NodeId, address: &str) -> Result<()> {
        let leader = self.status.view().leader;
        if leader != Some(self.id) {
            return Err(Error::NotLeader(leader));
        }
        if id == 0 || id > crate::mvcc::MAX_NODE_ID {
            return Err(Error::InvalidParameter(format!("node id {id} is out of range: ids are 1 to 255")));
        }
        if !address.contains(':') {
            return Err(Error::InvalidParameter(format!("\"{address}\" is not a host:port address")));
        }
        // The leader talks to it from now on (a single node's transport refuses: it cannot grow).
        self.transport.set_peer(id, Some(address))?;
        let mut txn = self.mvcc()?.begin();
        txn.set(member_address_key(id), address.as_bytes().to_vec());
        txn.commit()?;
        self.change_membership(ConfChange::AddLearner(id))
    }

    /// Proposes `change` (this node must lead); returns once it is in the leader's log.
    pub fn change_membership(&self, change: ConfChange) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        self.send(Event::ChangeMembership(change, tx))?;
        rx.recv_timeout(LEADER_WAIT).map_err(|_| Error::Io("membership change timed out".into()))?
    }

    /// Starts moving leadership to voter `to` (this node must lead): `to` campaigns as soon as
    /// its log is up to date; meanwhile new commits wait. Returns once the transfer started.
    pub fn transfer_leadership(&self, to: NodeId) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        self.send(Event::Transfer(to, tx))?;
        rx.recv_timeout(LEADER_WAIT).map_err(|_| Error::Io("leadership transfer timed out".into()))?
    }

    fn local_read_index(&self) -> Result<Version> {
        let (tx, rx) = mpsc::channel();
        self.send(Event::ReadIndex(tx))?;
        rx.recv_timeout(LEADER_WAIT).map_err(|_| Error::Io("read index timed out".into()))?
    }

    /// Stops the driver (after it has handled what is queued).
    pub fn stop(&self) {
        let _ = self.send(Event::Stop);
        if let Some(handle) = self.driver.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }

    /// The leader to talk to (None: this node, ready to commit), waiting for an election if
    /// there is none.
    fn leader(&self) -> Result<Option<NodeId>> {
        let leader = self.status.wait_for_leader(LEADER_WAIT);
        // The driver's failure, or one a statement met in storage that the driver has not
        // acted on yet (it does at its next tick).
        let failure = self.status.failure().or_else(|| self.mvcc.upgrade().and_then(|m| m.storage().failure()));
        if let Some(failure) = failure {
            return Err(refused(&failure));
        }
        match leader {
            Some(_) if self.status.is_ready() => Ok(None),
            Some(leader) => Ok(Some(leader)),
            None => Err(Error::Io("no Raft leader: is a majority of the cluster up?".into())),
        }
    }
}

impl Replicator for Replica {
    fn node_id(&self) -> u64 {
        self.id
    }

    fn forward(&self, request: &CommitRequest) -> Option<Result<Version>> {
        let mut attempts = 0;
        loop {
            let leader = match self.leader() {
                Ok(None) => return None,
                Ok(Some(leader)) => leader,
                Err(e) => return Some(Err(e)),
            };
            match self.transport.commit(leader, request) {
                // Nothing was done: ask again once the new leader is known.
                Err(Error::NotLeader(_)) if attempts < FORWARD_ATTEMPTS => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(20 * attempts as u64));
                }
                Err(e) => return Some(Err(e)),
                Ok(version) => {
                    // Read-your-writes on this node: wait until the commit is applied here too.
                    let mvcc = match self.mvcc() {
                        Ok(mvcc) => mvcc,
                        Err(e) => return Some(Err(e)),
                    };
                    return Some(if mvcc.wait_visible(version, LEADER_WAIT) {
                        Ok(version)
                    } else {
                        Err(Error::CommitUnknown(format!(
                            "committed as version {version} but not applied here in time"
                        )))
                    });
                }
            }
        }
    }

    fn propose(&self, batch: WriteBatch) -> Result<Waiter> {
        let (tx, rx) = mpsc::channel();
        self.send(Event::Propose(batch, tx))?;
        Ok(rx)
    }

    fn read_barrier_is_free(&self) -> bool {
        self.status.is_ready()
            && (self.status.single_voter.load(Ordering::SeqCst)
                || lock(&self.status.lease_until).is_some_and(|until| Instant::now() < until))
    }

    fn read_barrier(&self) -> Result<()> {
        if self.read_barrier_is_free() {
            return Ok(());
        }
        let mut attempts = 0;
        let version = loop {
            let result = match self.leader()? {
                None => self.local_read_index(),
                Some(leader) => self.transport.read_index(leader),
            };
            match result {
                Err(Error::NotLeader(_)) if attempts < FORWARD_ATTEMPTS => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(20 * attempts as u64));
                }
                other => break other?,
            }
        };
        if self.mvcc()?.wait_visible(version, LEADER_WAIT) {
            Ok(())
        } else {
            Err(Error::Io(format!("this node has not caught up with version {version}")))
        }
    }
}

/// A caller waiting for the driver.
enum Reply {
    Done(mpsc::Sender<Result<()>>),
    Read(mpsc::Sender<Result<Version>>),
}

/// The driver's thread: turns channels and the clock into the [`Driver`]'s inputs and
/// carries out its outputs.
struct Runner<S: LogStore> {
    driver: Driver<S>,
    mvcc: Weak<Mvcc>,
    transport: Arc<dyn Transport>,
    status: Arc<Status>,
    replies: HashMap<Ticket, Reply>,
    next_ticket: Ticket,
    tick: Duration,
    /// The most ticks delivered at once after this thread did not run for a while: enough for
    /// every Raft timer (lease, election, check-quorum) to run out.
    max_catch_up_ticks: u64,
    /// When the latest tick delivered was due.
    last_tick: Instant,
    /// The thread's own queue, for work finished on other threads.
    events: mpsc::Sender<Event>,
    /// Proposals taken in the last round: the next round waits briefly for as many.
    last_round: usize,
    /// The membership whose every member the transport can reach.
    peers_synced: Membership,
}

impl<S: LogStore> Runner<S> {
    fn run(&mut self, events: mpsc::Receiver<Event>) {
        let mut out = Vec::new();
        if let Some(mvcc) = self.mvcc.upgrade() {
            let started = self.driver.elect_alone(&mvcc, &mut out);
            if !self.finish_round(started, &mut out) {
                return;
            }
        }
        let mut next_tick = Instant::now() + self.tick;
        loop {
            // The engine owns the replica: once it is gone, nobody is left to serve.
            let Some(mvcc) = self.mvcc.upgrade() else { return };
            let wait = next_tick.saturating_duration_since(Instant::now());
            let mut stop = false;
            let received = match events.recv_timeout(wait) {
                Ok(event) => Some(event),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            // Time first: the ticks due are delivered before any event is decided on, so that
            // a read is never served from a lease judged on a clock that stood still while
            // this thread did not run (a paused process, a slow write).
            let mut result = self.catch_up(&mvcc, &mut next_tick, &mut out);
            if let (Ok(()), Some(event)) = (&result, received) {
                result = {
                    let mut proposals = usize::from(matches!(event, Event::Propose(..)));
                    let mut r = self.handle(&mvcc, event, &mut stop, &mut out);
                    // Take everything else that is queued before acting: one append and one
                    // fsync for all of it. When the last round carried more proposals than
                    // have arrived, their senders are probably about to propose again: wait
                    // a little for them rather than fsync for a few.
                    let window = Instant::now() + GROUP_COMMIT_WINDOW;
                    while r.is_ok() && !stop {
                        let next = match events.try_recv() {
                            Ok(event) => Some(event),
                            Err(_) if proposals > 0 && proposals < self.last_round => {
                                let left = window.saturating_duration_since(Instant::now());
                                if left.is_zero() {
                                    None
                                } else {
                                    events.recv_timeout(left).ok()
                                }
                            }
                            Err(_) => None,
                        };
                        let Some(event) = next else { break };
                        proposals += usize::from(matches!(event, Event::Propose(..)));
                        // Time may have passed while this thread waited for the event or did
                        // not run at all: its ticks come first, as for the round's first.
                        r = self
                            .catch_up(&mvcc, &mut next_tick, &mut out)
                            .and_then(|()| self.handle(&mvcc, event, &mut stop, &mut out));
                    }
                    if proposals > 0 {
                        self.last_round = proposals;
                    }
                    r
                };
            }
            let result = result.and_then(|()| self.driver.advance(&mvcc, &mut out));
            if !self.finish_round(result, &mut out) || stop {
                return;
            }
        }
    }

    /// Delivers the ticks due by now: one per tick length since the last, at most
    /// `max_catch_up_ticks`. Once per tick, a storage failure met outside the driver (a
    /// statement's read or write) stops the node as one met by the driver does, and the
    /// transport's peers follow the membership.
    fn catch_up(&mut self, mvcc: &Arc<Mvcc>, next_tick: &mut Instant, out: &mut Vec<Output>) -> Result<()> {
        let now = Instant::now();
        if now < *next_tick {
            return Ok(());
        }
        let behind = (now - *next_tick).as_nanos();
        let tick = self.tick.as_nanos().max(1);
        let due = 1 + behind / tick;
        let delivered = due.min(u128::from(self.max_catch_up_ticks));
        // Ticks keep their schedule (no fraction of one lost per catch-up): the latest was due
        // `behind % tick` ago. Past the cap, the schedule starts again from now.
        self.last_tick = if delivered == due { now - Duration::from_nanos((behind % tick) as u64) } else { now };
        *next_tick = self.last_tick + self.tick;
        for _ in 0..delivered {
            self.driver.handle(mvcc, Input::Tick, out)?;
        }
        if let Some(failure) = mvcc.storage().failure() {
            return Err(failure);
        }
        self.sync_peers(mvcc);
        Ok(())
    }

    /// Carries out the round's outputs and publishes the state; false once the driver
    /// failed (everyone waiting has been answered).
    fn finish_round(&mut self, result: Result<()>, out: &mut Vec<Output>) -> bool {
        if let Err(e) = &result {
            // A storage failure: the node cannot go on safely.
            tracing::error!(error = %e, "raft driver stopped");
            self.driver.fail(e, out);
        }
        for output in out.drain(..) {
            self.carry_out(output);
        }
        self.publish();
        match result {
            Ok(()) => true,
            Err(e) => {
                for (_, reply) in self.replies.drain() {
                    match reply {
                        Reply::Done(tx) => drop(tx.send(Err(e.clone()))),
                        Reply::Read(tx) => drop(tx.send(Err(e.clone()))),
                    }
                }
                self.status.fail(&e);
                false
            }
        }
    }

    fn ticket(&mut self, reply: Reply) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.replies.insert(ticket, reply);
        ticket
    }

    fn handle(&mut self, mvcc: &Arc<Mvcc>, event: Event, stop: &mut bool, out: &mut Vec<Output>) -> Result<()> {
        let input = match event {
            Event::Message(message) => {
                self.status.inbound.fetch_sub(1, Ordering::SeqCst);
                Input::Message(message)
            }
            Event::Propose(batch, done) => Input::Propose(batch, self.ticket(Reply::Done(done))),
            Event::ReadIndex(done) => Input::ReadIndex(self.ticket(Reply::Read(done))),
            Event::ChangeMembership(change, done) => Input::ChangeMembership(change, self.ticket(Reply::Done(done))),
            Event::Transfer(to, done) => Input::Transfer(to, self.ticket(Reply::Done(done))),
            Event::Built(index, built) => Input::SnapshotBuilt(index, built),
            Event::SnapshotFailed => Input::SnapshotFailed,
            Event::Stop => {
                *stop = true;
                return Ok(());
            }
        };
        self.driver.handle(mvcc, input, out)
    }

    fn carry_out(&mut self, output: Output) {
        match output {
            Output::Send(message) => self.transport.send(message),
            Output::Done(ticket, result) => {
                if let Some(Reply::Done(tx)) = self.replies.remove(&ticket) {
                    let _ = tx.send(result);
                }
            }
            Output::Read(ticket, result) => {
                if let Some(Reply::Read(tx)) = self.replies.remove(&ticket) {
                    let _ = tx.send(result);
                }
            }
            Output::BuildSnapshot { index, version, writer } => self.build_snapshot(index, version, writer),
        }
    }

    /// Builds a snapshot on its own thread (dumping the engine takes a while) and hands it
    /// back to the driver.
    fn build_snapshot(&mut self, index: Index, version: Version, writer: Option<Box<dyn raft::SnapshotWriter>>) {
        let Some(mvcc) = self.mvcc.upgrade() else { return };
        let events = self.events.clone();
        let spawned = std::thread::Builder::new().name("raft-snapshot".into()).spawn(move || {
            let build = || match writer {
                Some(mut writer) => mvcc
                    .snapshot_into(version, &mut writer)
                    .and_then(|()| writer.finish().map_err(from_raft))
                    .map(Built::Written),
                None => mvcc.snapshot_at(version).map(Built::Data),
            };
            // The driver must hear back whatever happens, or it never compacts again.
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(build))
                .unwrap_or_else(|_| Err(Error::Internal("building a snapshot panicked".into())));
            let event = match built {
                Ok(built) => Event::Built(index, built),
                Err(e) => {
                    tracing::warn!(error = %e, "snapshot of the state machine failed");
                    Event::SnapshotFailed
                }
            };
            let _ = events.send(event);
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a snapshot");
            let _ = self.events.send(Event::SnapshotFailed);
        }
    }

    fn publish(&self) {
        let s = &self.status;
        let node = self.driver.node();
        let role = match node.role() {
            Role::Leader => 1,
            Role::Candidate | Role::PreCandidate => 2,
            Role::Follower if !node.membership().voters.contains(&node.id()) => 3,
            Role::Follower => 0,
        };
        s.role.store(role, Ordering::SeqCst);
        s.term.store(node.term(), Ordering::SeqCst);
        s.leader.store(node.leader().unwrap_or(0), Ordering::SeqCst);
        s.commit.store(node.commit_index(), Ordering::SeqCst);
        s.applied.store(self.driver.applied_index(), Ordering::SeqCst);
        // The lease runs out `left` ticks after the latest tick: counted from when that tick
        // was due, which is never after it was delivered.
        let left = u32::try_from(node.lease_ticks_left()).unwrap_or(u32::MAX);
        *lock(&s.lease_until) = (left > 0).then(|| self.last_tick + self.tick.saturating_mul(left));
        s.single_voter.store(self.driver.single_voter(), Ordering::SeqCst);
        s.snapshots_installed.store(self.driver.snapshots_installed(), Ordering::SeqCst);
        s.elections.store(node.elections(), Ordering::SeqCst);
        s.snapshots_sent.store(node.snapshots_sent(), Ordering::SeqCst);
        let matched: Vec<(NodeId, Index)> = if node.is_leader() {
            let membership = node.membership();
            membership
                .voters
                .iter()
                .chain(&membership.learners)
                .filter(|id| **id != node.id())
                .filter_map(|id| Some((*id, node.progress(*id)?.0)))
                .collect()
        } else {
            Vec::new()
        };
        let mut published = lock(&s.matched);
        if *published != matched {
            *published = matched;
        }
        drop(published);
        let mut stall = lock(&s.stall);
        if stall.as_ref() != self.driver.stalled() {
            *stall = self.driver.stalled().cloned();
        }
        drop(stall);
        let mut membership = lock(&s.membership);
        if *membership != *node.membership() {
            *membership = node.membership().clone();
        }
        drop(membership);
        s.set_ready(self.driver.is_ready());
    }

    /// Gives the transport every member it cannot reach yet (members that joined after this
    /// node started), from their replicated address records; a record not applied here yet is
    /// looked for again at the next tick. Peers are never dropped: a removed member's queue
    /// simply stays empty.
    fn sync_peers(&mut self, mvcc: &Arc<Mvcc>) {
        let membership = self.driver.node().membership();
        if *membership == self.peers_synced {
            return;
        }
        let known = self.transport.peers();
        let me = self.driver.node().id();
        let mut complete = true;
        for id in membership.all().filter(|id| *id != me && !known.contains(id)) {
            match mvcc.begin().get(&member_address_key(id)) {
                Ok(Some(address)) => {
                    let address = String::from_utf8_lossy(&address).to_string();
                    if let Err(e) = self.transport.set_peer(id, Some(&address)) {
                        tracing::warn!(peer = id, %address, error = %e, "cannot reach a new member");
                        complete = false;
                    } else {
                        tracing::info!(peer = id, %address, "talking to a new member");
                    }
                }
                Ok(None) | Err(_) => complete = false,
            }
        }
        if complete {
            self.peers_synced = membership.clone();
        }
    }
}
