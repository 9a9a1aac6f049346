//! Raft consensus for ChronosDB.
//!
//! # What Raft is
//!
//! Raft keeps a log of commands identical on a group of servers so that
//! each server can apply the log to a deterministic state machine and all of
//! them end up in the same state. Time is divided into *terms*; each term
//! has at most one *leader*, elected by a majority (*quorum*) of the voting
//! members. The leader accepts client commands, appends them to its log and
//! replicates them to the followers. An entry is *committed* once it is
//! stored on a quorum; committed entries are never lost and every server
//! applies exactly the committed entries, in log order. As long as a quorum
//! of voters is up and can talk to each other, the cluster makes progress;
//! with fewer it stays safe but unavailable.
//!
//! # Guarantees of this implementation
//!
//! * **Election safety**: at most one leader per term.
//! * **Log matching**: if two logs hold an entry with the same index and
//!   term, the logs are identical up to that index.
//! * **Leader completeness**: a leader's log holds every entry committed in
//!   earlier terms.
//! * **State machine safety**: every node hands out the same entries for
//!   application, in the same order, each once (per incarnation: after a
//!   restart, entries after the `applied` index given to [`Node::new`]).
//! * **Linearizable reads** through [`Node::read_index`] (ReadIndex, or a
//!   leader lease when enabled).
//! * The node never panics on network input: malformed or stale messages
//!   are ignored or answered with a rejection.
//!
//! # How it works
//!
//! [`Node`] is a pure, deterministic state machine: no I/O, no clock, no
//! threads. The driver (a tokio/gRPC server in production, a simulator in
//! tests) feeds it inputs — [`Node::tick`] at a fixed interval,
//! [`Node::step`] for every received [`Message`], [`Node::propose`],
//! [`Node::read_index`], [`Node::propose_conf_change`],
//! [`Node::transfer_leadership`], [`Node::compact`] — and then acts on the
//! [`Ready`] returned by `tick`/`step` or by [`Node::ready`]: send its
//! messages, restore its snapshot, apply its committed entries, answer its
//! reads. Randomness (election timeouts) comes only from a seeded
//! `StdRng` the driver passes in, so a simulator can replay any run.
//!
//! **Persistence.** The node writes the log, the [`HardState`] (term, vote,
//! commit) and snapshots to a [`LogStore`] it owns, and calls
//! [`LogStore::sync`] before returning each `Ready`. Hence the contract:
//! *everything a `Ready`'s messages depend on is durable before the driver
//! sees the messages*. After a crash the driver rebuilds the node from the
//! same store ([`MemLogStore::restart`] models losing unsynced writes) and
//! the state machine's durably applied index.
//!
//! **Elections.** A follower that hears nothing from a leader for a random
//! timeout in `[election_timeout, 2 * election_timeout)` ticks first runs a
//! *Pre-Vote* round (asking "would you vote for me?" without changing any
//! term) and only campaigns for real if a quorum says yes, so a partitioned
//! node that rejoins cannot disrupt a healthy leader by inflating terms.
//! With *CheckQuorum* a leader steps down if it has not heard from a quorum
//! within an election timeout, and a node that heard from a live leader
//! within the election timeout refuses (pre-)votes (*leader stickiness*).
//! A restarted node assumes a leader may be alive and also waits an
//! election timeout before granting votes, which the lease relies on.
//! Quorum is `voters / 2 + 1`, so 4 voters need 3, 6 voters need 4.
//!
//! **Replication.** Each follower has a progress record. In *probe* state
//! the leader sends one `Append` at a time and, on rejection, jumps back
//! using the follower's conflict hint (the follower's last index whose term
//! is not newer than the leader's `prev_term`, so whole terms are skipped).
//! Once an append succeeds the follower is in *replicate* state: the leader
//! pipelines up to `max_inflight` messages of up to `max_append_entries`
//! entries each, advancing `next_index` optimistically. If the entries a
//! follower needs were compacted the leader switches to *snapshot* state.
//! A new leader appends an empty entry; the commit index only advances
//! (by quorum of match indexes) over an entry of the leader's own term
//! (Raft §5.4.2, "Figure 8"), which commits earlier entries indirectly.
//!
//! **Reads.** `read_index(id)` on the leader records the commit index once
//! the leader has committed an entry of its term, then confirms leadership
//! with a heartbeat round carrying a sequence number; once a quorum has
//! acknowledged that round, the read is released as soon as the applied
//! index reaches the recorded index. With `lease_reads`, a quorum
//! acknowledgement of a heartbeat sent at tick `t` also grants a lease until
//! `t + election_timeout - lease_drift`: no other leader can be elected
//! before then because of leader stickiness, so reads are released without
//! a round trip. A leader that started a leadership transfer stops using
//! its lease for the rest of its term.
//!
//! **Snapshots.** When `snapshot_threshold` entries were applied since the
//! last snapshot, `Ready::snapshot_request` asks the application for a
//! snapshot of its state machine; [`Node::compact`] stores it and drops the
//! covered log prefix. Followers that need compacted entries receive the
//! snapshot as `InstallSnapshot` chunks of `snapshot_chunk_size` bytes, one
//! at a time; the follower acknowledges the byte offset it has, so a lost
//! chunk or a new leader resumes from that offset rather than from zero.
//! A snapshot with no data marks a compaction point only and is never sent:
//! a follower that needs it waits until the application compacts with data.
//!
//! **Membership.** Changes are single-server ([`ConfChange`]): add a
//! learner, promote a learner to voter, remove a member. A membership entry
//! carries the complete new membership and takes effect on each node as
//! soon as it is appended to that node's log (and is rolled back if the
//! entry is truncated). A leader accepts a change only when the previous
//! one is committed and it has committed an entry in its own term. Learners
//! receive the log but neither vote nor count towards quorums. A leader
//! that removes itself steps down when the removal commits.
//! [`Node::transfer_leadership`] brings the target up to date, then sends
//! it `TimeoutNow` so it campaigns immediately (bypassing Pre-Vote and
//! stickiness).

//!
//! # Driving a node
//!
//! ```text
//! node = Node::new(config, bootstrap_membership, store, state_machine.applied, seeded_rng)?
//! loop {
//!     select {
//!         every tick interval   => rd = node.tick()?
//!         message m from peer   => rd = node.step(m)?
//!         client write w        => idx = node.propose(w)?; rd = node.ready()?
//!         client read r         => node.read_index(r.id)?; rd = node.ready()?
//!     }
//!     send rd.messages                      // already durable: send right away
//!     if let Some(meta) = rd.snapshot { state_machine.restore(SnapshotReader::open(node.store())?) }
//!     for e in rd.committed_entries { state_machine.apply(e) }   // persist applied index with it
//!     for r in rd.reads { answer r from state_machine }
//!     for id in rd.failed_reads { tell the client to retry }
//!     if rd.snapshot_request.is_some() { node.compact(state_machine.applied, state_machine.snapshot())? }
//!     while node.has_pending_apply() { process node.ready()? the same way }
//! }
//! ```
//!
//! A write proposed at index `i` in term `t` succeeded if and only if the
//! entry later applied at index `i` has term `t` (or carries the same
//! request id); otherwise it was lost with the old leader and may be
//! retried. An error from `tick`/`step`/`ready` is a storage failure: drop
//! the node and rebuild it from storage.

mod node;
mod sled_store;
mod store;
mod types;

pub use node::{Config, Node, Ready, SNAPSHOT_HOLD};
pub use sled_store::{SledLogStore, LOG_TREE, STATE_TREE};
pub use store::{LogStore, MemLogStore, SnapshotReader, SnapshotWriter, Written};
pub use types::{
    ConfChange, Entry, EntryData, Error, HardState, Index, Membership, Message, MessageBody, NodeId, ReadId, ReadState,
    Result, Role, Snapshot, SnapshotMeta, Term,
};
