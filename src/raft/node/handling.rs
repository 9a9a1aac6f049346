//! Handling of incoming messages: votes, appends, snapshot chunks and the responses to
//! them.

use super::*;
use std::io::Write;

impl<S: LogStore> Node<S> {
    pub(super) fn step_inner(&mut self, msg: Message) -> Result<()> {
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

    pub(super) fn log_up_to_date(&self, last_index: Index, last_term: Term) -> Result<bool> {
        let (li, lt) = (self.last_index()?, self.last_term()?);
        Ok(last_term > lt || (last_term == lt && last_index >= li))
    }

    /// A leader-only message at our term: follow its sender. Returns false
    /// if we are ourselves the leader (impossible unless malformed).
    pub(super) fn accept_leader(&mut self, from: NodeId) -> bool {
        match self.role {
            RoleState::Leader(_) => return false,
            RoleState::Follower { leader: Some(l) } if l == from => {}
            _ => self.become_follower(self.term, Some(from)),
        }
        self.election_elapsed = 0;
        self.since_leader_contact = 0;
        true
    }

    pub(super) fn handle_append(
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

    pub(super) fn handle_snapshot_chunk(
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
            Some(inc) if inc.meta == meta => inc.received,
            _ => 0,
        };
        if offset == 0 && have == 0 {
            // Into the store where it can take it, so that it is never held whole.
            let sink = match self.store.snapshot_writer()? {
                Some(writer) => SnapshotSink::Store(writer),
                None => SnapshotSink::Memory(Vec::new()),
            };
            self.incoming = Some(IncomingSnapshot { meta: meta.clone(), received: 0, sink });
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
        match &mut inc.sink {
            SnapshotSink::Store(writer) => {
                writer.write_all(&data).map_err(|e| Error::Storage(format!("writing a snapshot: {e}")))?
            }
            SnapshotSink::Memory(buffer) => buffer.extend_from_slice(&data),
        }
        inc.received += data.len() as u64;
        let next_offset = inc.received;
        if !done {
            self.send(from, MessageBody::SnapshotResponse { index, next_offset, done: false });
            return Ok(());
        }
        let Some(inc) = self.incoming.take() else {
            return Ok(());
        };
        let meta = inc.meta;
        match inc.sink {
            SnapshotSink::Store(writer) => {
                let written = writer.finish()?;
                self.store.save_written_snapshot(meta.clone(), written)?;
            }
            SnapshotSink::Memory(data) => self.store.save_snapshot(&Snapshot { meta: meta.clone(), data })?,
        }
        let last = self.store.last_index()?;
        self.conf_history.retain(|(i, _)| *i > index && *i <= last);
        self.snapshot_index = index;
        self.applied_bytes = 0;
        self.commit = index;
        self.applied = index;
        self.snapshot_requested = false;
        self.recompute_membership()?;
        self.snapshot_to_apply = Some(meta);
        self.send(from, MessageBody::SnapshotResponse { index, next_offset, done: true });
        Ok(())
    }

    pub(super) fn handle_append_response(
        &mut self,
        from: NodeId,
        index: Index,
        reject: Option<(Index, Term)>,
    ) -> Result<()> {
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

    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, seq: u64) -> Result<()> {
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

    pub(super) fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        index: Index,
        next_offset: u64,
        done: bool,
    ) -> Result<()> {
        let Some(ls) = leader_mut(&mut self.role) else {
            return Ok(());
        };
        let Some(pr) = ls.progress.get_mut(&from) else {
            return Ok(());
        };
        pr.recent_active = true;
        let ProgressState::Snapshot { index: si, term, offset } = pr.state else {
            return Ok(());
        };
        if index != si {
            return Ok(());
        }
        if !done && next_offset == offset && pr.paused {
            // The answer to a chunk sent again (after a heartbeat) that had arrived already:
            // the chunk it asks for is on its way. Sending it once more for this answer would
            // start a copy that circulates, one more after every heartbeat, until the link is
            // full of them.
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
