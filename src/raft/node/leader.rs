//! The leader's side: proposals, commit, read index and leases, replication to each peer
//! (appends, snapshots, flow control) and its ticks.

use super::*;

impl<S: LogStore> Node<S> {
    pub(super) fn check_can_propose(&self) -> Result<()> {
        match &self.role {
            RoleState::Leader(ls) if ls.transfer.is_some() => Err(Error::TransferInProgress),
            RoleState::Leader(_) => Ok(()),
            _ => Err(Error::NotLeader(self.leader())),
        }
    }

    pub(super) fn append_own(&mut self, data: EntryData) -> Result<Index> {
        let index = self.last_index()? + 1;
        self.append_to_log(&[Entry { index, term: self.term, data }])?;
        if let Some(ls) = leader_mut(&mut self.role) {
            ls.broadcast_needed = true;
        }
        self.maybe_commit()?;
        Ok(index)
    }

    pub(super) fn maybe_commit(&mut self) -> Result<()> {
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

    pub(super) fn on_leader_commit(&mut self) -> Result<()> {
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

    pub(super) fn register_read(&mut self, id: ReadId) {
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

    pub(super) fn flush_leader_sends(&mut self) -> Result<()> {
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

    pub(super) fn broadcast_heartbeat(&mut self) {
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
    pub(super) fn check_reads(&mut self) {
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
    pub(super) fn send_append(&mut self, to: NodeId, allow_empty: bool) -> Result<bool> {
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

    pub(super) fn send_snapshot_chunk(&mut self, to: NodeId) -> Result<()> {
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
        if len == 0 {
            // A snapshot without data only marks where the log was compacted (a group of one
            // compacts so): nothing to send until the application stores a real one.
            return Ok(());
        }
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
        if done {
            self.snapshots_sent += 1;
        }
        let body = MessageBody::InstallSnapshot { meta, offset, data, done };
        self.send(to, body);
        Ok(())
    }

    pub(super) fn maybe_send_timeout_now(&mut self, from: NodeId) -> Result<()> {
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

    pub(super) fn leader_tick(&mut self) -> Result<()> {
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
                p.was_active = p.recent_active;
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

    pub(super) fn tick_inner(&mut self) -> Result<()> {
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
}
