//! Plain data types shared by the Raft node, its storage and its driver.

use std::collections::BTreeSet;
use std::fmt;

/// Identifier of a server in the cluster. `0` is never a valid id.
pub type NodeId = u64;
/// A Raft term (election epoch). Starts at 0 and only ever grows.
pub type Term = u64;
/// A position in the replicated log. The first real entry has index 1;
/// index 0 is the empty prefix (term 0).
pub type Index = u64;
/// Caller-chosen identifier of a linearizable read request.
pub type ReadId = u64;

/// Errors returned by the node and by [`crate::raft::LogStore`] implementations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// This node is not the leader. Carries the last known leader, if any,
    /// so that the driver can redirect the client.
    NotLeader(Option<NodeId>),
    /// A leadership transfer is in progress; proposals are refused until it
    /// completes or times out.
    TransferInProgress,
    /// A membership change is still uncommitted, or this leader has not yet
    /// committed an entry of its own term. Retry later.
    ConfChangePending,
    /// The request is invalid for the current state (bad membership change,
    /// bad snapshot index, ...). The string explains why.
    Invalid(String),
    /// The storage layer failed. The node must be considered crashed: drop
    /// it and rebuild it from storage.
    Storage(String),
    /// The storage layer failed because its disk is full; as [`Error::Storage`].
    DiskFull(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotLeader(Some(l)) => write!(f, "not leader (leader is {l})"),
            Error::NotLeader(None) => write!(f, "not leader (leader unknown)"),
            Error::TransferInProgress => write!(f, "leadership transfer in progress"),
            Error::ConfChangePending => write!(f, "membership change pending"),
            Error::Invalid(s) => write!(f, "invalid request: {s}"),
            Error::Storage(s) => write!(f, "storage error: {s}"),
            Error::DiskFull(s) => write!(f, "disk full: {s}"),
        }
    }
}

impl std::error::Error for Error {}

/// Result alias used throughout the module.
pub type Result<T> = std::result::Result<T, Error>;

/// Cluster membership. Voters elect leaders and form quorums; learners only
/// receive the replicated log. A node id is never in both sets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// A membership made only of voters.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership { voters: voters.into_iter().collect(), learners: BTreeSet::new() }
    }

    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Number of votes (or acknowledgements) needed for a majority of voters.
    /// For 4 voters this is 3, for 5 it is 3, for 6 it is 4.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// All members, voters first then learners.
    pub fn all(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// Applies a single-server change and returns the resulting membership,
    /// or an error if the change does not make sense for this membership.
    pub fn apply(&self, change: &ConfChange) -> Result<Membership> {
        let mut m = self.clone();
        match *change {
            ConfChange::AddLearner(id) => {
                if id == 0 || m.contains(id) {
                    return Err(Error::Invalid(format!("node {id} already a member")));
                }
                m.learners.insert(id);
            }
            ConfChange::Promote(id) => {
                if !m.learners.remove(&id) {
                    return Err(Error::Invalid(format!("node {id} is not a learner")));
                }
                m.voters.insert(id);
            }
            ConfChange::Remove(id) => {
                if !m.voters.remove(&id) && !m.learners.remove(&id) {
                    return Err(Error::Invalid(format!("node {id} is not a member")));
                }
                if m.voters.is_empty() {
                    return Err(Error::Invalid("cannot remove the last voter".into()));
                }
            }
        }
        Ok(m)
    }
}

/// A single-server membership change, proposed through the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChange {
    /// Add a new node as a learner (non-voting, receives replication).
    AddLearner(NodeId),
    /// Turn an existing learner into a voter.
    Promote(NodeId),
    /// Remove a voter or learner.
    Remove(NodeId),
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EntryData {
    /// Empty entry appended by every new leader (commits the previous terms).
    Noop,
    /// Opaque application command.
    Command(Vec<u8>),
    /// The full membership that is in force from this entry on (it takes
    /// effect as soon as the entry is appended to a log).
    Membership(Membership),
}

/// A replicated log entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub index: Index,
    pub term: Term,
    pub data: EntryData,
}

/// State that must survive crashes and be durable before any message that
/// depends on it is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HardState {
    /// Current term.
    pub term: Term,
    /// Candidate voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// Highest index known to be committed (an optimisation: recomputable).
    pub commit: Index,
}

/// Describes the log prefix a snapshot replaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotMeta {
    /// Index of the last entry covered by the snapshot.
    pub index: Index,
    /// Term of that entry.
    pub term: Term,
    /// Membership in force at `index`.
    pub membership: Membership,
}

/// An application state-machine snapshot plus its metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    /// Opaque application bytes: the state after applying entries
    /// `1..=meta.index`.
    pub data: Vec<u8>,
}

/// A message between two Raft nodes. The driver delivers it, possibly late,
/// twice, out of order or never; the node tolerates all of that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    /// Sender's term (for `PreVote`, the term the sender would campaign in;
    /// for a granted `PreVoteResponse`, that same term).
    pub term: Term,
    pub body: MessageBody,
}

/// The payload of a [`Message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// Pre-vote request: "would you vote for me in `term`?" Changes no state.
    PreVote {
        last_index: Index,
        last_term: Term,
    },
    PreVoteResponse {
        granted: bool,
    },
    /// Vote request. `transfer` is set when the leader asked the candidate to
    /// campaign (leadership transfer); it bypasses leader stickiness.
    Vote {
        last_index: Index,
        last_term: Term,
        transfer: bool,
    },
    VoteResponse {
        granted: bool,
    },
    /// Log replication. `entries` must be contiguous from `prev_index + 1`.
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    },
    /// Answer to `Append`. On success `index` is the follower's matching
    /// index; on rejection `index` is the rejected `prev_index` and `reject`
    /// holds a conflict hint `(index, term)`: the follower's last index whose
    /// term is `<=` the leader's `prev_term`, used to skip whole terms.
    AppendResponse {
        index: Index,
        reject: Option<(Index, Term)>,
    },
    /// Leader liveness + commit propagation + read/lease confirmation round.
    Heartbeat {
        commit: Index,
        seq: u64,
    },
    HeartbeatResponse {
        seq: u64,
    },
    /// One chunk of a snapshot, starting at byte `offset`.
    InstallSnapshot {
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    },
    /// Answer to `InstallSnapshot`: `done` once installed (or not needed);
    /// otherwise the byte offset the follower wants next.
    SnapshotResponse {
        index: Index,
        next_offset: u64,
        done: bool,
    },
    /// Leadership transfer: the recipient should campaign immediately.
    TimeoutNow,
}

impl MessageBody {
    /// Short name, for logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::PreVote { .. } => "PreVote",
            MessageBody::PreVoteResponse { .. } => "PreVoteResponse",
            MessageBody::Vote { .. } => "Vote",
            MessageBody::VoteResponse { .. } => "VoteResponse",
            MessageBody::Append { .. } => "Append",
            MessageBody::AppendResponse { .. } => "AppendResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::SnapshotResponse { .. } => "SnapshotResponse",
            MessageBody::TimeoutNow => "TimeoutNow",
        }
    }
}

/// A read that may now be served: once the entries of the same
/// [`crate::raft::Ready`] are applied, the state machine reflects every write
/// committed before the read was requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub id: ReadId,
    /// The commit index the read must observe (already applied).
    pub index: Index,
}

/// The role a node currently plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}
