//! Conversions between the engine's and Raft's types and their protobuf forms.

use super::proto::{self, raft_message::Body};
use crate::error::{Error, Result};
use crate::mvcc::CommitRequest;
use crate::raft::{self, EntryData, Membership, MessageBody, SnapshotMeta};
use crate::sync;

fn membership_to_proto(m: Membership) -> proto::Membership {
    proto::Membership { voters: m.voters.into_iter().collect(), learners: m.learners.into_iter().collect() }
}

fn membership_from_proto(m: Option<proto::Membership>) -> Membership {
    let m = m.unwrap_or_default();
    Membership { voters: m.voters.into_iter().collect(), learners: m.learners.into_iter().collect() }
}

fn meta_to_proto(m: SnapshotMeta) -> proto::SnapshotMeta {
    proto::SnapshotMeta { index: m.index, term: m.term, membership: Some(membership_to_proto(m.membership)) }
}

fn meta_from_proto(m: Option<proto::SnapshotMeta>) -> SnapshotMeta {
    let m = m.unwrap_or_default();
    SnapshotMeta { index: m.index, term: m.term, membership: membership_from_proto(m.membership) }
}

fn entry_to_proto(e: raft::Entry) -> proto::Entry {
    let data = match e.data {
        EntryData::Noop => proto::entry::Data::Noop(proto::Noop {}),
        EntryData::Command(bytes) => proto::entry::Data::Command(bytes),
        EntryData::Membership(m) => proto::entry::Data::Membership(membership_to_proto(m)),
    };
    proto::Entry { index: e.index, term: e.term, data: Some(data) }
}

fn entry_from_proto(e: proto::Entry) -> Result<raft::Entry> {
    let data = match e.data {
        Some(proto::entry::Data::Noop(_)) => EntryData::Noop,
        Some(proto::entry::Data::Command(bytes)) => EntryData::Command(bytes),
        Some(proto::entry::Data::Membership(m)) => EntryData::Membership(membership_from_proto(Some(m))),
        None => return Err(Error::Io(format!("raft entry {} without data", e.index))),
    };
    Ok(raft::Entry { index: e.index, term: e.term, data })
}

/// A Raft message in protobuf form.
pub fn message_to_proto(m: raft::Message) -> proto::RaftMessage {
    let body = match m.body {
        MessageBody::PreVote { last_index, last_term } => Body::PreVote(proto::PreVote { last_index, last_term }),
        MessageBody::PreVoteResponse { granted } => Body::PreVoteResponse(proto::VoteResponse { granted }),
        MessageBody::Vote { last_index, last_term, transfer } => {
            Body::Vote(proto::Vote { last_index, last_term, transfer })
        }
        MessageBody::VoteResponse { granted } => Body::VoteResponse(proto::VoteResponse { granted }),
        MessageBody::Append { prev_index, prev_term, entries, commit } => Body::Append(proto::Append {
            prev_index,
            prev_term,
            entries: entries.into_iter().map(entry_to_proto).collect(),
            commit,
        }),
        MessageBody::AppendResponse { index, reject } => Body::AppendResponse(proto::AppendResponse {
            index,
            rejected: reject.is_some(),
            hint_index: reject.map_or(0, |r| r.0),
            hint_term: reject.map_or(0, |r| r.1),
        }),
        MessageBody::Heartbeat { commit, seq } => Body::Heartbeat(proto::Heartbeat { commit, seq }),
        MessageBody::HeartbeatResponse { seq } => Body::HeartbeatResponse(proto::HeartbeatResponse { seq }),
        MessageBody::InstallSnapshot { meta, offset, data, done } => {
            Body::InstallSnapshot(proto::InstallSnapshot { meta: Some(meta_to_proto(meta)), offset, data, done })
        }
        MessageBody::SnapshotResponse { index, next_offset, done } => {
            Body::SnapshotResponse(proto::SnapshotResponse { index, next_offset, done })
        }
        MessageBody::TimeoutNow => Body::TimeoutNow(proto::TimeoutNow {}),
    };
    proto::RaftMessage { from: m.from, to: m.to, term: m.term, body: Some(body) }
}

/// A Raft message from its protobuf form; malformed messages are an error (and dropped).
pub fn message_from_proto(m: proto::RaftMessage) -> Result<raft::Message> {
    let body = match m.body.ok_or_else(|| Error::Io("raft message without a body".into()))? {
        Body::PreVote(b) => MessageBody::PreVote { last_index: b.last_index, last_term: b.last_term },
        Body::PreVoteResponse(b) => MessageBody::PreVoteResponse { granted: b.granted },
        Body::Vote(b) => MessageBody::Vote { last_index: b.last_index, last_term: b.last_term, transfer: b.transfer },
        Body::VoteResponse(b) => MessageBody::VoteResponse { granted: b.granted },
        Body::Append(b) => MessageBody::Append {
            prev_index: b.prev_index,
            prev_term: b.prev_term,
            entries: b.entries.into_iter().map(entry_from_proto).collect::<Result<_>>()?,
            commit: b.commit,
        },
        Body::AppendResponse(b) => {
            MessageBody::AppendResponse { index: b.index, reject: b.rejected.then_some((b.hint_index, b.hint_term)) }
        }
        Body::Heartbeat(b) => MessageBody::Heartbeat { commit: b.commit, seq: b.seq },
        Body::HeartbeatResponse(b) => MessageBody::HeartbeatResponse { seq: b.seq },
        Body::InstallSnapshot(b) => {
            MessageBody::InstallSnapshot { meta: meta_from_proto(b.meta), offset: b.offset, data: b.data, done: b.done }
        }
        Body::SnapshotResponse(b) => {
            MessageBody::SnapshotResponse { index: b.index, next_offset: b.next_offset, done: b.done }
        }
        Body::TimeoutNow(_) => MessageBody::TimeoutNow,
    };
    Ok(raft::Message { from: m.from, to: m.to, term: m.term, body })
}

pub fn commit_to_proto(r: &CommitRequest) -> proto::CommitRequest {
    proto::CommitRequest {
        read_version: r.read_version,
        writes: r.writes.iter().map(|(key, value)| proto::Write { key: key.clone(), value: value.clone() }).collect(),
        read_keys: r.read_keys.clone(),
        read_domains: r.read_domains.clone(),
    }
}

pub fn commit_from_proto(r: proto::CommitRequest) -> CommitRequest {
    CommitRequest {
        read_version: r.read_version,
        writes: r.writes.into_iter().map(|w| (w.key, w.value)).collect(),
        read_keys: r.read_keys,
        read_domains: r.read_domains,
    }
}

/// An error for the node that asked, keeping what it needs to decide: retry or report.
pub fn error_to_failure(e: &Error) -> proto::Failure {
    use proto::failure::Kind;
    let (kind, leader) = match e {
        Error::NotLeader(l) => (Kind::NotLeader, l.unwrap_or(0)),
        Error::Serialization(_) => (Kind::Serialization, 0),
        Error::CommitUnknown(_) => (Kind::CommitUnknown, 0),
        _ => (Kind::Other, 0),
    };
    proto::Failure { kind: kind as i32, sqlstate: e.sqlstate().to_string(), message: e.to_string(), leader }
}

/// The error a [`proto::Failure`] stands for.
pub fn failure_to_error(f: proto::Failure) -> Error {
    use proto::failure::Kind;
    match Kind::try_from(f.kind).unwrap_or(Kind::Other) {
        Kind::NotLeader => Error::NotLeader((f.leader != 0).then_some(f.leader)),
        Kind::Serialization => Error::Serialization(f.message),
        Kind::CommitUnknown => Error::CommitUnknown(f.message),
        Kind::Other => Error::Internal(format!("on the leader ({}): {}", f.sqlstate, f.message)),
    }
}

/// A sync push in protobuf form.
pub fn push_to_proto(push: sync::Push) -> proto::PushRequest {
    proto::PushRequest {
        edge_id: push.edge,
        incarnation: push.incarnation,
        clock: push.clock,
        through_version: push.through.map(|p| p.version),
        through_index: push.through.map_or(0, |p| p.index),
        after_version: push.after.map(|p| p.version),
        after_index: push.after.map_or(0, |p| p.index),
        token: String::new(),
        tables: push
            .tables
            .into_iter()
            .map(|t| proto::TableChanges {
                definition: t.definition,
                changes: t
                    .changes
                    .into_iter()
                    .map(|c| proto::RowChange {
                        version: c.position.version,
                        index: c.position.index,
                        key: c.key,
                        row: c.row,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The sync push a [`proto::PushRequest`] carries.
pub fn push_from_proto(request: proto::PushRequest) -> sync::Push {
    sync::Push {
        edge: request.edge_id,
        incarnation: request.incarnation,
        clock: request.clock,
        through: request.through_version.map(|version| sync::Position { version, index: request.through_index }),
        after: request.after_version.map(|version| sync::Position { version, index: request.after_index }),
        tables: request
            .tables
            .into_iter()
            .map(|t| sync::TableChanges {
                definition: t.definition,
                changes: t
                    .changes
                    .into_iter()
                    .map(|c| sync::Change {
                        position: sync::Position { version: c.version, index: c.index },
                        key: c.key,
                        row: c.row,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The answer to a push in protobuf form.
pub fn push_result_to_proto(result: Result<sync::Ack>) -> proto::PushResult {
    use proto::push_result::Result as R;
    let result = match result {
        Ok(ack) => R::Ack(proto::PushAck { version: ack.cursor.version, index: ack.cursor.index, clock: ack.clock }),
        Err(e) => R::Failure(error_to_failure(&e)),
    };
    proto::PushResult { result: Some(result) }
}

/// The acknowledgement, or why the cloud refused the push.
pub fn push_result_from_proto(result: proto::PushResult) -> Result<sync::Ack> {
    use proto::push_result::Result as R;
    match result.result {
        Some(R::Ack(a)) => {
            Ok(sync::Ack { cursor: sync::Position { version: a.version, index: a.index }, clock: a.clock })
        }
        Some(R::Failure(f)) => Err(Error::Io(format!("the cloud refused the push ({}): {}", f.sqlstate, f.message))),
        None => Err(Error::Io("an empty answer to a push".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_messages_round_trip() {
        let entries = vec![
            raft::Entry { index: 3, term: 2, data: EntryData::Noop },
            raft::Entry { index: 4, term: 2, data: EntryData::Command(vec![1, 2, 3]) },
            raft::Entry { index: 5, term: 2, data: EntryData::Membership(Membership::with_voters([1, 2, 3])) },
        ];
        let bodies = vec![
            MessageBody::PreVote { last_index: 1, last_term: 1 },
            MessageBody::PreVoteResponse { granted: true },
            MessageBody::Vote { last_index: 9, last_term: 3, transfer: true },
            MessageBody::VoteResponse { granted: false },
            MessageBody::Append { prev_index: 2, prev_term: 1, entries, commit: 2 },
            MessageBody::AppendResponse { index: 5, reject: None },
            MessageBody::AppendResponse { index: 5, reject: Some((3, 1)) },
            MessageBody::Heartbeat { commit: 7, seq: 11 },
            MessageBody::HeartbeatResponse { seq: 11 },
            MessageBody::InstallSnapshot {
                meta: SnapshotMeta { index: 9, term: 3, membership: Membership::with_voters([1, 2]) },
                offset: 65536,
                data: vec![9; 10],
                done: false,
            },
            MessageBody::SnapshotResponse { index: 9, next_offset: 65546, done: false },
            MessageBody::TimeoutNow,
        ];
        for body in bodies {
            let m = raft::Message { from: 1, to: 2, term: 3, body };
            assert_eq!(message_from_proto(message_to_proto(m.clone())).unwrap(), m);
        }
        assert!(message_from_proto(proto::RaftMessage { from: 1, to: 2, term: 1, body: None }).is_err());
    }

    #[test]
    fn failures_keep_their_meaning() {
        for e in [
            Error::NotLeader(Some(3)),
            Error::NotLeader(None),
            Error::Serialization("x".into()),
            Error::CommitUnknown("y".into()),
        ] {
            let back = failure_to_error(error_to_failure(&e));
            assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(&e));
            assert_eq!(back.sqlstate(), e.sqlstate());
        }
        assert_eq!(failure_to_error(error_to_failure(&Error::NotLeader(Some(3)))), Error::NotLeader(Some(3)));
    }

    #[test]
    fn pushes_round_trip() {
        let push = sync::Push {
            edge: "farm-a".into(),
            incarnation: "i1".into(),
            clock: 99,
            through: Some(sync::Position { version: 6, index: 2 }),
            after: Some(sync::Position { version: 4, index: 0 }),
            tables: vec![sync::TableChanges {
                definition: b"{}".to_vec(),
                changes: vec![
                    sync::Change {
                        position: sync::Position { version: 5, index: 0 },
                        key: vec![1],
                        row: Some(vec![2]),
                    },
                    sync::Change { position: sync::Position { version: 5, index: 1 }, key: vec![3], row: None },
                ],
            }],
        };
        assert_eq!(push_from_proto(push_to_proto(push.clone())), push);
        let ack = sync::Ack { cursor: sync::Position { version: 5, index: 1 }, clock: 100 };
        assert_eq!(push_result_from_proto(push_result_to_proto(Ok(ack))).unwrap(), ack);
        let refused = push_result_from_proto(push_result_to_proto(Err(Error::InvalidParameter("no".into()))));
        assert!(refused.unwrap_err().to_string().contains("no"));
    }
}
