//! Focused scenario tests of the Raft node.

#[path = "raft_support/mod.rs"]
mod support;

use chronos::raft::{
    ConfChange, Config, Entry, EntryData, Error, HardState, LogStore, MemLogStore, Membership, Message, MessageBody,
    Node, NodeId, Role, SnapshotMeta, Term,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::cluster::{cfg, Cluster};

fn no_prevote(id: NodeId) -> Config {
    let mut c = cfg(id);
    c.pre_vote = false;
    c.check_quorum = false;
    c
}

fn entry(index: u64, term: Term) -> Entry {
    Entry { index, term, data: EntryData::Command(format!("e{index}t{term}").into_bytes()) }
}

fn store_with(entries: &[Entry], term: Term, commit: u64) -> MemLogStore {
    let mut s = MemLogStore::new();
    s.append(entries).unwrap();
    s.save_hard_state(HardState { term, vote: None, commit }).unwrap();
    s.sync().unwrap();
    s
}

// ----- elections ---------------------------------------------------------------------

#[test]
fn elects_exactly_one_leader() {
    for n in [1u64, 3, 4, 5] {
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut c = Cluster::new(&ids, cfg);
        let l = c.elect();
        c.run(5);
        assert_eq!(c.leaders(), vec![l], "cluster of {n}");
        let term = c.node(l).term();
        for id in &ids {
            assert_eq!(c.node(*id).leader(), Some(l));
            assert_eq!(c.node(*id).term(), term);
        }
        // The leader's empty entry is committed everywhere.
        for id in &ids {
            assert!(c.node(*id).commit_index() >= 1);
        }
    }
}

#[test]
fn replicates_and_commits_commands_in_order() {
    let mut c = Cluster::new(&[1, 2, 3], cfg);
    let l = c.elect();
    for i in 0..50u32 {
        c.propose(l, format!("cmd{i}").as_bytes());
    }
    c.run(3);
    let expect: Vec<Vec<u8>> = (0..50).map(|i| format!("cmd{i}").into_bytes()).collect();
    for id in 1..=3 {
        assert_eq!(c.applied_commands(id), expect, "node {id}");
    }
}

#[test]
fn leader_failure_elects_new_leader_with_all_committed_entries() {
    let mut c = Cluster::new(&[1, 2, 3, 4, 5], cfg);
    let l = c.elect();
    for i in 0..10u32 {
        c.propose(l, format!("a{i}").as_bytes());
    }
    let _ = c.crash(l);
    let l2 = c.elect();
    assert_ne!(l, l2);
    c.propose(l2, b"after");
    c.run(3);
    let cmds = c.applied_commands(l2);
    assert_eq!(cmds.len(), 11);
    assert_eq!(cmds.last().unwrap(), b"after");
}

#[test]
fn pre_vote_keeps_partitioned_node_from_raising_its_term() {
    let mut c = Cluster::new(&[1, 2, 3], cfg);
    let l = c.elect();
    let f = (1..=3).find(|id| *id != l).unwrap();
    let term = c.node(l).term();
    c.isolate(f);
    c.run(200);
    assert_eq!(c.node(f).term(), term, "pre-vote must not bump the term");
    assert!(matches!(c.node(f).role(), Role::PreCandidate | Role::Follower));
    c.heal();
    c.run(20);
    assert_eq!(c.leaders(), vec![l], "rejoining node must not disrupt the leader");
    assert_eq!(c.node(l).term(), term);
}

#[test]
fn without_pre_vote_partitioned_node_raises_its_term() {
    let mut c = Cluster::new(&[1, 2, 3], no_prevote);
    let l = c.elect();
    let f = (1..=3).find(|id| *id != l).unwrap();
    let term = c.node(l).term();
    c.isolate(f);
    c.run(100);
    assert!(c.node(f).term() > term + 2);
}

#[test]
fn sticky_follower_rejects_prevote_while_leader_is_alive() {
    let mut c = Cluster::new(&[1, 2, 3], cfg);
    let l = c.elect();
    let mut others = (1..=3).filter(|id| *id != l);
    let (a, b) = (others.next().unwrap(), others.next().unwrap());
    let term = c.node(a).term();
    let (li, lt) = (c.node(b).store().last_index().unwrap(), term);
    let prevote =
        |term| Message { from: b, to: a, term, body: MessageBody::PreVote { last_index: li + 10, last_term: lt } };
    let rd = c.node_mut(a).step(prevote(term + 1)).unwrap();
    assert!(rd.messages.iter().any(|m| m.body == MessageBody::PreVoteResponse { granted: false }), "{:?}", rd.messages);
    // A real vote request is ignored as well, and does not bump the term.
    let vote = Message {
        from: b,
        to: a,
        term: term + 1,
        body: MessageBody::Vote { last_index: li + 10, last_term: lt, transfer: false },
    };
    let rd = c.node_mut(a).step(vote).unwrap();
    assert!(rd.messages.is_empty());
    assert_eq!(c.node(a).term(), term);
    // Once the leader is silent for an election timeout, the pre-vote is granted.
    c.isolate(l);
    for _ in 0..10 {
        c.tick(a);
        c.queue.clear();
    }
    let rd = c.node_mut(a).step(prevote(term + 1)).unwrap();
    assert!(rd.messages.iter().any(|m| m.body == MessageBody::PreVoteResponse { granted: true }));
    assert_eq!(c.node(a).term(), term, "pre-vote does not change the voter's term");
}

#[test]
fn check_quorum_makes_isolated_leader_step_down() {
    let mut c = Cluster::new(&[1, 2, 3], cfg);
    let l = c.elect();
    c.isolate(l);
    c.run(25);
    assert_ne!(c.node(l).role(), Role::Leader);
}

#[test]
fn vote_survives_restart() {
    let mut c = Cluster::new(&[1, 2, 3], no_prevote);
    // Node 1 votes for 2 in term 1.
    let vote = |from, term| Message {
        from,
        to: 1,
        term,
        body: MessageBody::Vote { last_index: 0, last_term: 0, transfer: false },
    };
    let rd = c.node_mut(1).step(vote(2, 1)).unwrap();
    assert!(rd.messages.iter().any(|m| m.body == MessageBody::VoteResponse { granted: true }));
    let store = c.crash(1);
    c.restart(1, store);
    let rd = c.node_mut(1).step(vote(3, 1)).unwrap();
    assert!(rd.messages.iter().any(|m| m.body == MessageBody::VoteResponse { granted: false }));
    assert_eq!(c.node(1).term(), 1);
}

// ----- commit rule ----------------------------------------------------------------------

/// Raft paper, figure 8. S1 leads term 4 holding an entry of term 2 at index
/// 2 that reaches a majority; it must not commit it by counting replicas,
/// because S5 (last entry of term 3 at index 2) could still win an election
/// and overwrite it.
#[test]
fn figure_8_old_term_entries_are_not_committed_by_counting() {
    let mk = |id| {
        let mut c = no_prevote(id);
        c.max_append_entries = 1;
        c
    };
    let voters = Membership::with_voters(1..=5);
    let mut c = Cluster::empty();
    let e11 = entry(1, 1);
    let logs: [(NodeId, Vec<Entry>); 5] = [
        (1, vec![e11.clone(), entry(2, 2)]),
        (2, vec![e11.clone(), entry(2, 2)]),
        (3, vec![e11.clone()]),
        (4, vec![e11.clone()]),
        (5, vec![e11.clone(), entry(2, 3)]),
    ];
    for (id, log) in logs {
        c.add_node(mk(id), voters.clone(), store_with(&log, 3, 1), 1);
    }
    // S1's messages never reach S2 or S5 after the election, and its appends
    // only ever carry the term-2 entry (as if the rest were lost).
    c.filter = Some(Box::new(|m: &mut Message| {
        if m.from != 1 {
            return true;
        }
        match &mut m.body {
            MessageBody::Append { entries, .. } => {
                entries.retain(|e| e.term == 2);
                m.to != 2
            }
            MessageBody::Heartbeat { .. } => m.to != 2,
            _ => true,
        }
    }));
    c.blocked.insert((1, 5));
    // S1 campaigns (term 4) and wins with votes from S2..S4.
    while c.node(1).role() != Role::Candidate {
        c.tick(1);
    }
    c.deliver();
    assert!(c.node(1).is_leader());
    assert_eq!(c.node(1).term(), 4);
    c.run(5);
    assert_eq!(c.node(3).store().term(2).unwrap(), Some(2));
    assert_eq!(c.node(4).store().term(2).unwrap(), Some(2));
    // Index 2 (term 2) is on S1, S2, S3, S4 — a majority — but is not committed.
    assert_eq!(c.node(1).commit_index(), 1, "§5.4.2: an old-term entry was committed by counting");

    // Indeed it was not safe: S1 crashes, S5 is elected and overwrites index 2.
    let _ = c.crash(1);
    c.filter = None;
    c.heal();
    while !c.node(5).is_leader() {
        c.tick(5);
        c.deliver();
    }
    c.run(5);
    for id in 2..=5 {
        assert_eq!(c.node(id).store().term(2).unwrap(), Some(3), "node {id}");
    }
}

#[test]
fn figure_8_entry_of_current_term_commits_the_old_ones() {
    let voters = Membership::with_voters(1..=5);
    let mut c = Cluster::empty();
    let e11 = entry(1, 1);
    for id in 1..=5 {
        let log = if id <= 2 { vec![e11.clone(), entry(2, 2)] } else { vec![e11.clone()] };
        c.add_node(no_prevote(id), voters.clone(), store_with(&log, 3, 1), 1);
    }
    while c.node(1).role() != Role::Candidate {
        c.tick(1);
    }
    c.deliver();
    assert!(c.node(1).is_leader());
    c.run(3);
    // The term-4 empty entry at index 3 reached a majority: 2 and 3 committed.
    assert_eq!(c.node(1).commit_index(), 3);
    for id in 1..=5 {
        assert_eq!(c.node(id).store().term(2).unwrap(), Some(2));
    }
}

// ----- quorum sizes --------------------------------------------------------------------

#[test]
fn quorum_sizes() {
    for (n, q) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)] {
        assert_eq!(Membership::with_voters(1..=n).quorum(), q, "{n} voters");
    }
}

#[test]
fn even_sized_cluster_needs_three_of_four() {
    let mut c = Cluster::new(&[1, 2, 3, 4], cfg);
    let l = c.elect();
    let others: Vec<NodeId> = (1..=4).filter(|i| *i != l).collect();
    // Leader plus one follower: 2 of 4 is not a majority.
    c.partition(&[l, others[0]], &[others[1], others[2]]);
    let before = c.node(l).commit_index();
    let idx = c.node_mut(l).propose(b"x".to_vec()).unwrap();
    c.ready(l);
    c.deliver();
    assert_eq!(c.node(l).commit_index(), before);
    // And neither half can elect a leader once the old one steps down.
    c.run(60);
    assert!(c.leaders().is_empty(), "leaders: {:?}", c.leaders());
    // With three of four connected, a leader is elected and commits.
    c.heal();
    c.partition(&[others[2]], &[l, others[0], others[1]]);
    let l2 = c.elect();
    c.propose(l2, b"y");
    c.run(3);
    assert!(c.node(l2).commit_index() > idx);
}

// ----- snapshots -----------------------------------------------------------------------

#[test]
fn lagging_follower_receives_chunked_snapshot_and_resumes_after_loss() {
    let mk = |id| {
        let mut c = cfg(id);
        c.snapshot_chunk_size = 5;
        c
    };
    let mut c = Cluster::new(&[1, 2, 3], mk);
    let l = c.elect();
    let f = (1..=3).find(|id| *id != l).unwrap();
    c.isolate(f);
    for i in 0..20u32 {
        c.propose(l, format!("c{i:02}").as_bytes());
    }
    c.run(2);
    let applied = c.node(l).applied_index();
    let data = support::cluster::state_bytes(&c.applied[&l]);
    assert!(data.len() > 20);
    c.node_mut(l).compact(applied, data.clone()).unwrap();
    assert_eq!(c.node(l).store().first_index().unwrap(), applied + 1);
    // Drop the chunk at offset 10 the first time it is sent.
    let mut dropped = false;
    c.filter = Some(Box::new(move |m: &mut Message| match &m.body {
        MessageBody::InstallSnapshot { offset: 10, .. } if !dropped => {
            dropped = true;
            false
        }
        _ => true,
    }));
    c.heal();
    c.run(30);
    let offsets: Vec<u64> = c
        .delivered
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::InstallSnapshot { offset, .. } if m.to == f => Some(*offset),
            _ => None,
        })
        .collect();
    assert!(offsets.len() as u64 >= (data.len() as u64).div_ceil(5), "chunked: {offsets:?}");
    assert!(offsets.contains(&10));
    assert_eq!(offsets.iter().filter(|o| **o == 0).count(), 1, "resumed, not restarted: {offsets:?}");
    let restored = &c.restored[&f];
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].data, data);
    assert_eq!(restored[0].meta.index, applied);
    assert_eq!(c.node(f).applied_index(), c.node(l).commit_index());
    // Replication continues normally afterwards.
    c.propose(l, b"after");
    c.run(3);
    assert_eq!(c.applied_commands(f).last().unwrap(), b"after");
}

#[test]
fn follower_reports_resume_offset_for_partial_snapshot() {
    let store = MemLogStore::new();
    let mut n = Node::new(cfg(2), Membership::with_voters([1, 2, 3]), store, 0, StdRng::seed_from_u64(1)).unwrap();
    let meta = SnapshotMeta { index: 10, term: 1, membership: Membership::with_voters([1, 2, 3]) };
    let chunk = |offset: u64, data: &[u8], done: bool| Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::InstallSnapshot { meta: meta.clone(), offset, data: data.to_vec(), done },
    };
    let resp = |rd: chronos::raft::Ready| -> (u64, bool) {
        rd.messages
            .iter()
            .find_map(|m| match m.body {
                MessageBody::SnapshotResponse { next_offset, done, .. } => Some((next_offset, done)),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(resp(n.step(chunk(0, b"hello", false)).unwrap()), (5, false));
    // A new leader restarting from zero is told to resume at 5.
    assert_eq!(resp(n.step(chunk(0, b"hello", false)).unwrap()), (5, false));
    // A gap is refused with the offset we need.
    assert_eq!(resp(n.step(chunk(10, b"xx", false)).unwrap()), (5, false));
    assert_eq!(resp(n.step(chunk(5, b" world", true)).unwrap()), (11, true));
    let rd = n.ready().unwrap();
    assert_eq!(rd.snapshot, None, "delivered with the step");
    assert_eq!(n.applied_index(), 10);
    assert_eq!(n.commit_index(), 10);
    assert_eq!(n.store().snapshot().unwrap().unwrap().data, b"hello world");
    // Restart: the snapshot is handed to a state machine that is behind it.
    let mut store = n.into_store();
    store.restart();
    let mut n = Node::new(cfg(2), Membership::with_voters([1, 2, 3]), store, 0, StdRng::seed_from_u64(2)).unwrap();
    let rd = n.ready().unwrap();
    let meta = rd.snapshot.expect("the snapshot to restore");
    assert_eq!(support::stored_snapshot(n.store(), meta).data, b"hello world");
}

#[test]
fn automatic_snapshot_requests_compact_the_log() {
    let mk = |id| {
        let mut c = cfg(id);
        c.snapshot_threshold = 10;
        c
    };
    let mut c = Cluster::new(&[1, 2, 3], mk);
    c.auto_compact = true;
    let l = c.elect();
    for i in 0..35u32 {
        c.propose(l, format!("c{i}").as_bytes());
    }
    c.run(3);
    for id in 1..=3 {
        let n = c.node(id);
        assert!(n.snapshot_index() >= 30, "node {id} snapshot {}", n.snapshot_index());
        assert_eq!(n.store().first_index().unwrap(), n.snapshot_index() + 1);
    }
    // A crash-restart rebuilds the state machine from snapshot + log.
    let store = c.crash(2);
    c.restart(2, store);
    c.run(2);
    assert!(!c.restored[&2].is_empty());
}

#[test]
fn a_few_large_entries_compact_the_log_by_bytes() {
    // Entries alone would never ask for a snapshot here; three commands of 400 bytes pass
    // the 1000-byte threshold.
    let mk = |id| {
        let mut c = cfg(id);
        c.snapshot_threshold = 1_000_000;
        c.snapshot_threshold_bytes = 1000;
        c
    };
    let mut c = Cluster::new(&[1, 2, 3], mk);
    c.auto_compact = true;
    let l = c.elect();
    c.propose(l, &[7; 400]);
    c.propose(l, &[8; 400]);
    c.run(3);
    assert_eq!(c.node(l).snapshot_index(), 0, "800 bytes are below the threshold");
    c.propose(l, &[9; 400]);
    c.run(3);
    for id in 1..=3 {
        let n = c.node(id);
        assert!(n.snapshot_index() >= 4, "node {id} snapshot {}", n.snapshot_index());
        assert_eq!(n.store().first_index().unwrap(), n.snapshot_index() + 1);
    }
    // The count starts again from the snapshot.
    c.propose(l, &[1; 400]);
    c.run(3);
    let compacted = c.node(l).snapshot_index();
    assert!(compacted < c.node(l).applied_index(), "one more small entry does not compact");
}

/// A cluster (snapshots every 10 entries, sent in chunks of `chunk` bytes) whose leader
/// compacted past what one follower, cut off meanwhile and now back, has: (cluster, leader,
/// follower).
fn behind_the_snapshot(chunk: usize) -> (Cluster, NodeId, NodeId) {
    let mk = move |id| {
        let mut c = cfg(id);
        c.snapshot_threshold = 10;
        c.snapshot_chunk_size = chunk;
        c
    };
    let mut c = Cluster::new(&[1, 2, 3], mk);
    c.auto_compact = true;
    let l = c.elect();
    let f = (1..=3).find(|id| *id != l).unwrap();
    c.isolate(f);
    for i in 0..25u32 {
        c.propose(l, format!("c{i:02}").as_bytes());
    }
    c.run(3);
    assert!(c.node(l).snapshot_index() >= 20, "the leader compacted: {}", c.node(l).snapshot_index());
    c.heal();
    (c, l, f)
}

#[test]
fn a_leader_keeps_its_log_while_a_follower_installs_its_snapshot() {
    let (mut c, l, f) = behind_the_snapshot(16);
    // A slow link: one snapshot chunk gets through per round (the others are lost and sent
    // again), while writes go on: more than a threshold of entries before the follower has
    // the whole snapshot.
    let through = std::rc::Rc::new(std::cell::Cell::new(true));
    let gate = through.clone();
    c.filter = Some(Box::new(move |m: &mut Message| match m.body {
        MessageBody::InstallSnapshot { .. } => gate.replace(false),
        _ => true,
    }));
    // A write every other round, for 40 rounds: the transfer spans several CheckQuorum
    // intervals (10 ticks), and the hold must outlast them.
    for i in 0..40u32 {
        through.set(true);
        if i % 2 == 0 {
            c.propose(l, format!("d{:02}", i / 2).as_bytes());
        }
        c.run(1);
    }
    c.filter = None;
    c.run(10);
    let starts = c
        .delivered
        .iter()
        .filter(|m| m.to == f && matches!(m.body, MessageBody::InstallSnapshot { offset: 0, .. }))
        .count();
    assert_eq!(starts, 1, "the follower was sent one snapshot, then the log");
    assert_eq!(c.node(f).applied_index(), c.node(l).commit_index());
    assert_eq!(c.applied_commands(f).last().unwrap(), b"d19");
    // With the follower caught up, the leader compacts again at its threshold.
    let held_at = c.node(l).snapshot_index();
    for i in 0..12u32 {
        c.propose(l, format!("e{i:02}").as_bytes());
    }
    c.run(3);
    assert!(c.node(l).snapshot_index() > held_at, "compaction resumed: {held_at}");
    assert!(c.node(l).applied_index() - c.node(l).snapshot_index() < 10);
}

#[test]
fn a_leader_holds_its_log_for_a_snapshot_only_so_long() {
    let (mut c, l, _) = behind_the_snapshot(4);
    // The follower answers but never gets past the first chunk: the leader keeps sending
    // the snapshot, holding its log while that grows, up to the bound.
    c.filter = Some(Box::new(|m: &mut Message| match m.body {
        MessageBody::InstallSnapshot { offset, .. } => offset == 0,
        _ => true,
    }));
    let before = c.node(l).snapshot_index();
    for i in 0..60u32 {
        c.propose(l, format!("d{i:02}").as_bytes());
        c.run(1);
        if i == 25 {
            // Past a threshold of entries and two CheckQuorum rounds (10 ticks each): held.
            assert_eq!(c.node(l).snapshot_index(), before, "the leader held its log for the answering follower");
        }
    }
    let after = c.node(l).snapshot_index();
    assert!(after > before, "the leader compacted again once the hold ran out");
    assert!(c.node(l).applied_index() - after <= 10 * chronos::raft::SNAPSHOT_HOLD, "held no longer than the bound");
}

#[test]
fn chunks_sent_again_do_not_multiply() {
    let (mut c, l, f) = behind_the_snapshot(4);
    // A link with latency: a tick passes for every four messages delivered, so heartbeats
    // (every 2 ticks) and their answers overtake the chunk in flight, and the leader sends
    // that chunk again. Each answer to a repeated chunk must not start another repeat, or copies pile up
    // for as long as the transfer lasts and crowd the link.
    let chunks =
        |c: &Cluster| c.delivered.iter().filter(|m| matches!(m.body, MessageBody::InstallSnapshot { .. })).count();
    let mut most_in_flight = 0;
    for _ in 0..2000 {
        c.tick_all();
        for _ in 0..4 {
            c.deliver_one();
        }
        let in_flight =
            c.queue.iter().filter(|m| m.to == f && matches!(m.body, MessageBody::InstallSnapshot { .. })).count();
        most_in_flight = most_in_flight.max(in_flight);
        if c.node(f).applied_index() == c.node(l).commit_index() && c.queue.is_empty() {
            break;
        }
    }
    assert_eq!(c.node(f).applied_index(), c.node(l).commit_index(), "the follower caught up");
    let size: usize = c.restored[&f].last().unwrap().data.len();
    let sent = chunks(&c);
    assert!(most_in_flight <= 2, "at most the chunk and one repeat in flight, not {most_in_flight}");
    assert!(sent <= 2 * size.div_ceil(4) + 2, "{sent} chunks sent for {} of 4 bytes", size.div_ceil(4));
}

// ----- membership ----------------------------------------------------------------------

#[test]
fn add_learner_promote_and_remove() {
    let mut c = Cluster::new(&[1, 2, 3], cfg);
    let l = c.elect();
    c.propose(l, b"before");
    // Add node 4 as a learner.
    c.add_node(cfg(4), Membership::default(), MemLogStore::new(), 0);
    let idx = c.node_mut(l).propose_conf_change(ConfChange::AddLearner(4)).unwrap();
    // Only one change at a time.
    assert_eq!(c.node_mut(l).propose_conf_change(ConfChange::AddLearner(5)), Err(Error::ConfChangePending));
    c.ready(l);
    c.run(5);
    assert!(c.node(l).commit_index() >= idx);
    assert!(c.node(4).membership().learners.contains(&4));
    assert_eq!(c.applied_commands(4), vec![b"before".to_vec()], "learner receives the log");
    // Learners do not count for quorum: leader + learner is not a majority.
    let others: Vec<NodeId> = (1..=3).filter(|i| *i != l).collect();
    c.isolate(others[0]);
    c.isolate(others[1]);
    let before = c.node(l).commit_index();
    c.node_mut(l).propose(b"x".to_vec()).unwrap();
    c.ready(l);
    c.deliver();
    assert_eq!(c.node(l).commit_index(), before);
    assert_eq!(c.node(4).store().last_index().unwrap(), before + 1, "but it is replicated");
    // Learners never campaign.
    for _ in 0..50 {
        c.tick(4);
    }
    assert_eq!(c.node(4).role(), Role::Follower);
    c.heal();
    let l = c.elect();
    c.run(3);
    // Promote.
    c.node_mut(l).propose_conf_change(ConfChange::Promote(4)).unwrap();
    c.ready(l);
    c.run(5);
    for id in 1..=4 {
        assert_eq!(c.node(id).membership().voters.len(), 4, "node {id}");
    }
    // Remove the leader itself: it steps down once the removal commits.
    c.node_mut(l).propose_conf_change(ConfChange::Remove(l)).unwrap();
    c.ready(l);
    c.run(5);
    assert!(!c.node(l).is_leader());
    let _ = c.crash(l);
    let l2 = c.elect();
    assert_ne!(l2, l);
    assert_eq!(c.node(l2).membership().voters.len(), 3);
    c.propose(l2, b"after");
    c.run(3);
    assert_eq!(c.applied_commands(4).last().unwrap(), b"after");
}

#[test]
fn invalid_membership_changes_are_refused() {
    let mut c = Cluster::new(&[1, 2, 3], cfg);
    let l = c.elect();
    let n = c.node_mut(l);
    assert!(matches!(n.propose_conf_change(ConfChange::AddLearner(2)), Err(Error::Invalid(_))));
    assert!(matches!(n.propose_conf_change(ConfChange::Promote(9)), Err(Error::Invalid(_))));
    assert!(matches!(n.propose_conf_change(ConfChange::Remove(9)), Err(Error::Invalid(_))));
    let f = (1..=3).find(|i| *i != l).unwrap();
    assert!(matches!(
        c.node_mut(f).propose_conf_change(ConfChange::AddLearner(4)),
        Err(Error::NotLeader(Some(x))) if x == l
    ));
}

#[test]
fn membership_entry_takes_effect_when_appended_and_rolls_back_on_truncation() {
    let mut c = Cluster::new(&[1, 2, 3], cfg);
    let l = c.elect();
    let others: Vec<NodeId> = (1..=3).filter(|i| *i != l).collect();
    c.isolate(l);
    c.node_mut(l).propose_conf_change(ConfChange::AddLearner(7)).unwrap();
    c.ready(l);
    assert!(c.node(l).membership().learners.contains(&7), "effective on append");
    c.queue.clear();
    // The rest of the cluster moves on; the uncommitted change is overwritten.
    c.blocked.retain(|(a, b)| *a == l || *b == l);
    let mut l2 = None;
    for _ in 0..200 {
        c.tick(others[0]);
        c.tick(others[1]);
        c.deliver();
        if let Some(x) = others.iter().find(|o| c.node(**o).is_leader()) {
            l2 = Some(*x);
            break;
        }
    }
    let l2 = l2.expect("new leader");
    c.propose(l2, b"new");
    c.heal();
    c.run(10);
    assert!(!c.node(l).membership().learners.contains(&7), "rolled back on truncation");
    assert_eq!(c.node(l).membership(), c.node(l2).membership());
}

// ----- leadership transfer ------------------------------------------------------------------

#[test]
fn leadership_transfer() {
    let mut c = Cluster::new(&[1, 2, 3], cfg);
    let l = c.elect();
    let t = (1..=3).find(|i| *i != l).unwrap();
    let term = c.node(l).term();
    c.propose(l, b"a");
    c.node_mut(l).transfer_leadership(t).unwrap();
    assert_eq!(c.node_mut(l).propose(b"b".to_vec()), Err(Error::TransferInProgress));
    c.ready(l);
    c.deliver();
    assert!(c.node(t).is_leader());
    assert_eq!(c.node(t).term(), term + 1);
    assert!(!c.node(l).is_leader());
    assert!(c.node_mut(l).transfer_leadership(l).is_err());
}

#[test]
fn leadership_transfer_to_lagging_node_catches_it_up_first() {
    let mut c = Cluster::new(&[1, 2, 3], cfg);
    let l = c.elect();
    let t = (1..=3).find(|i| *i != l).unwrap();
    c.isolate(t);
    for i in 0..10u32 {
        c.propose(l, format!("x{i}").as_bytes());
    }
    c.heal();
    c.node_mut(l).transfer_leadership(t).unwrap();
    c.ready(l);
    c.deliver();
    c.run(3);
    assert!(c.node(t).is_leader());
    assert_eq!(c.applied_commands(t).len(), 10);
}

// ----- reads ----------------------------------------------------------------------------------

#[test]
fn read_index_confirms_leadership_with_a_heartbeat_round() {
    let mut c = Cluster::new(&[1, 2, 3], cfg);
    let l = c.elect();
    c.propose(l, b"w");
    let commit = c.node(l).commit_index();
    c.node_mut(l).read_index(42).unwrap();
    c.ready(l);
    assert!(c.reads[&l].is_empty(), "no read before the quorum round");
    c.deliver();
    let r = c.reads[&l].last().copied().unwrap();
    assert_eq!((r.id, r.index), (42, commit));
    // Followers refuse and point at the leader.
    let f = (1..=3).find(|i| *i != l).unwrap();
    assert_eq!(c.node_mut(f).read_index(1), Err(Error::NotLeader(Some(l))));
}

#[test]
fn read_index_on_isolated_leader_never_succeeds_and_fails_on_step_down() {
    let mut c = Cluster::new(&[1, 2, 3], cfg);
    let l = c.elect();
    c.isolate(l);
    c.node_mut(l).read_index(7).unwrap();
    c.ready(l);
    c.run(30);
    assert!(c.reads[&l].is_empty());
    assert_eq!(c.failed_reads[&l], vec![7]);
}

#[test]
fn lease_reads_are_immediate_and_expire() {
    let mk = |id| {
        let mut c = cfg(id);
        c.lease_reads = true;
        c.lease_drift = 2;
        c
    };
    let mut c = Cluster::new(&[1, 2, 3], mk);
    let l = c.elect();
    c.run(3); // a heartbeat round acknowledged by a quorum
    assert!(c.node(l).lease_valid());
    c.node_mut(l).read_index(1).unwrap();
    c.ready(l);
    assert_eq!(c.reads[&l].last().map(|r| r.id), Some(1), "served without a round trip");
    // Isolated: the lease lasts at most election_timeout - drift ticks.
    c.isolate(l);
    for _ in 0..8 {
        c.tick(l);
    }
    assert!(!c.node(l).lease_valid());
    c.node_mut(l).read_index(2).unwrap();
    c.ready(l);
    assert_ne!(c.reads[&l].last().map(|r| r.id), Some(2));
    // A transfer gives up the lease for the rest of the term, even if the
    // old leader never hears about the new one.
    c.heal();
    c.run(3);
    let l = c.leaders()[0];
    assert!(c.node(l).lease_valid());
    let t = (1..=3).find(|i| *i != l).unwrap();
    c.blocked.insert((t, l));
    c.node_mut(l).transfer_leadership(t).unwrap();
    c.ready(l);
    c.deliver();
    assert!(c.node(t).is_leader(), "target won the election");
    assert!(c.node(l).is_leader(), "old leader has not heard of it yet");
    assert!(!c.node(l).lease_valid());
    c.node_mut(l).read_index(3).unwrap();
    c.ready(l);
    assert_ne!(c.reads[&l].last().map(|r| r.id), Some(3));
}

#[test]
fn lease_is_not_used_before_leader_commits_in_its_term() {
    let mk = |id| {
        let mut c = cfg(id);
        c.lease_reads = true;
        c
    };
    let mut c = Cluster::new(&[1, 2, 3], mk);
    let l = c.elect();
    c.run(3);
    let _ = c.crash(l);
    let l2 = c.elect();
    // Fresh leader: read waits for its empty entry to commit (already done by elect),
    // and for a quorum heartbeat round before the lease is valid.
    c.node_mut(l2).read_index(5).unwrap();
    c.ready(l2);
    c.deliver();
    assert_eq!(c.reads[&l2].last().map(|r| r.id), Some(5));
    assert_eq!(c.reads[&l2].last().map(|r| r.index), Some(c.node(l2).commit_index()));
}

// ----- robustness ----------------------------------------------------------------------

fn random_body(rng: &mut StdRng) -> MessageBody {
    let i = |rng: &mut StdRng| -> u64 {
        match rng.gen_range(0..4) {
            0 => 0,
            1 => rng.gen_range(0..30),
            2 => u64::MAX - rng.gen_range(0..3),
            _ => rng.gen(),
        }
    };
    match rng.gen_range(0..11) {
        0 => MessageBody::PreVote { last_index: i(rng), last_term: i(rng) },
        1 => MessageBody::PreVoteResponse { granted: rng.gen() },
        2 => MessageBody::Vote { last_index: i(rng), last_term: i(rng), transfer: rng.gen() },
        3 => MessageBody::VoteResponse { granted: rng.gen() },
        4 => {
            let prev_index = if rng.gen_bool(0.9) { i(rng) % 40 } else { i(rng) };
            let n = rng.gen_range(0..4);
            let start = if rng.gen_bool(0.8) { prev_index.wrapping_add(1) } else { i(rng) };
            let entries = (0..n)
                .map(|k| Entry { index: start.wrapping_add(k), term: rng.gen_range(0..6), data: EntryData::Noop })
                .collect();
            MessageBody::Append { prev_index, prev_term: rng.gen_range(0..6), entries, commit: i(rng) }
        }
        5 => {
            MessageBody::AppendResponse { index: i(rng), reject: if rng.gen() { Some((i(rng), i(rng))) } else { None } }
        }
        6 => MessageBody::Heartbeat { commit: i(rng), seq: i(rng) },
        7 => MessageBody::HeartbeatResponse { seq: i(rng) },
        8 => MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: i(rng) % 50,
                term: rng.gen_range(0..6),
                membership: Membership::with_voters([1, 2, 3]),
            },
            offset: i(rng),
            data: vec![1; rng.gen_range(0..5)],
            done: rng.gen(),
        },
        9 => MessageBody::SnapshotResponse { index: i(rng), next_offset: i(rng), done: rng.gen() },
        _ => MessageBody::TimeoutNow,
    }
}

#[test]
fn random_garbage_messages_never_panic() {
    let mut rng = StdRng::seed_from_u64(99);
    for round in 0..20 {
        let mk = |id| {
            let mut c = cfg(id);
            c.snapshot_chunk_size = 3;
            c.snapshot_threshold = 5;
            c
        };
        let mut c = Cluster::new(&[1, 2, 3], mk);
        c.auto_compact = true;
        let l = c.elect();
        for i in 0..12u32 {
            c.propose(l, format!("p{i}").as_bytes());
        }
        for _ in 0..500 {
            let to = rng.gen_range(1..=3);
            let from = rng.gen_range(0..=4);
            let term = match rng.gen_range(0..4) {
                0 => c.node(to).term(),
                1 => c.node(to).term().saturating_sub(1),
                2 => c.node(to).term() + rng.gen_range(0..3),
                _ => u64::MAX - rng.gen_range(0..3),
            };
            let m = Message { from, to, term, body: random_body(&mut rng) };
            let rd = c.node_mut(to).step(m).expect("garbage must not cause errors");
            c.queue.extend(rd.messages);
            if rng.gen_bool(0.1) {
                c.tick_all();
            }
        }
        // Forged messages can corrupt a node's view (Raft is not Byzantine
        // tolerant), but the nodes keep running without errors or storms.
        c.queue.clear();
        c.run(50);
        if let Some(&l) = c.leaders().first() {
            let _ = c.node_mut(l).propose(format!("round{round}").into_bytes());
            c.ready(l);
            c.run(5);
        }
    }
}
