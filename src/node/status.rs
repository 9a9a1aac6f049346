//! What a node reports over HTTP: `/health`, `/ready` and `/metrics`, and the operations the
//! endpoint forwards to the replica (leadership, membership, backups).

use super::{backup, replica};
use crate::error::Error;
use crate::metrics::Families;
use crate::pg;
use crate::raft;
use crate::sql::Engine;
use std::path::PathBuf;
use std::sync::Arc;

/// Entries a member may be behind its commit index and still be ready: more means it is
/// catching up after a restart or a partition, and its reads would wait.
const READY_APPLY_LAG: u64 = 1000;

pub(super) struct NodeStatus {
    pub(super) engine: Arc<Engine>,
    pub(super) pg: Arc<pg::PgMetrics>,
    pub(super) replica: Arc<replica::Replica>,
    pub(super) sync: Option<Arc<crate::sync::worker::SyncStatus>>,
    /// A cluster member's sync service (the cloud side).
    pub(super) received: Option<Arc<crate::sync::cloud::Metrics>>,
    pub(super) mqtt: Option<Arc<crate::mqtt::Metrics>>,
    /// For the storage metrics: where the data lives and sled's page cache size.
    pub(super) data_dir: PathBuf,
    pub(super) cache_bytes: u64,
}

impl NodeStatus {
    /// Why an operation was refused, with the leader to ask instead when known.
    fn refusal(&self, error: Error) -> (String, Option<u64>) {
        match error {
            Error::NotLeader(leader) => ("this node is not the leader".to_string(), leader),
            other => (other.to_string(), self.replica.status().leader),
        }
    }
}

impl crate::http::Status for NodeStatus {
    fn health(&self) -> (bool, String) {
        let applied_version = self.engine.mvcc().durable_version();
        let s = self.replica.status();
        let leader = s.leader.map_or("null".to_string(), |l| l.to_string());
        let ids = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let reason = |e: Error| serde_json::Value::from(e.to_string());
        let (healthy, status) = match (self.replica.failure(), self.replica.stalled()) {
            (None, None) => (true, "\"status\":\"ok\"".to_string()),
            (Some(failure), _) => (false, format!("\"status\":\"failed\",\"reason\":{}", reason(failure))),
            (None, Some(stall)) => (false, format!("\"status\":\"stalled\",\"reason\":{}", reason(stall))),
        };
        let sync = match &self.sync {
            None => String::new(),
            Some(status) => {
                let r = status.report();
                let now = self.engine.mvcc().clock_now();
                let backlog = self.engine.sync_backlog_bytes().ok();
                format!(
                    ",\"sync\":{{\"edge_id\":{},\"state\":\"{}\",\"target\":{},\"oldest_pending_secs\":{},\"backlog_bytes\":{},\"pushes\":{},\"rows_sent\":{},\"errors\":{},\"last_error\":{}}}",
                    serde_json::Value::from(r.edge_id.as_str()),
                    r.state.name(),
                    serde_json::Value::from(r.target.as_str()),
                    r.oldest_pending.map_or("null".to_string(), |v| format!("{:.3}", hlc_seconds(now.saturating_sub(v)))),
                    backlog.map_or("null".to_string(), |b| b.to_string()),
                    r.pushes,
                    r.rows_sent,
                    r.errors,
                    r.last_error.as_deref().map_or(serde_json::Value::Null, serde_json::Value::from),
                )
            }
        };
        let mqtt = match &self.mqtt {
            None => String::new(),
            Some(m) => {
                use std::sync::atomic::Ordering::Relaxed;
                format!(
                    ",\"mqtt\":{{\"connected\":{},\"received\":{},\"rows_written\":{},\"rejected\":{},\"write_errors\":{}}}",
                    m.connected.load(Relaxed),
                    m.received.load(Relaxed),
                    m.rows.load(Relaxed),
                    m.rejected_total(),
                    m.write_errors.load(Relaxed),
                )
            }
        };
        let body = format!(
            "{{{status},\"role\":\"{}\",\"term\":{},\"id\":{},\"leader\":{leader},\"commit_index\":{},\"applied_index\":{},\"applied_version\":{applied_version},\"voters\":[{}],\"learners\":[{}]{sync}{mqtt}}}",
            s.role,
            s.term,
            self.replica.id(),
            s.commit,
            s.applied,
            ids(&s.voters),
            ids(&s.learners)
        );
        (healthy, body)
    }

    fn transfer_leadership(&self, to: u64) -> std::result::Result<(), (String, Option<u64>)> {
        self.replica.transfer_leadership(to).map_err(|e| self.refusal(e))
    }

    fn change_membership(&self, change: crate::http::MemberChange) -> std::result::Result<(), (String, Option<u64>)> {
        use crate::http::MemberChange;
        let result = match change {
            MemberChange::Add(id, address) => self.replica.add_member(id, &address),
            MemberChange::Promote(id) => self.replica.change_membership(raft::ConfChange::Promote(id)),
            MemberChange::Remove(id) => self.replica.change_membership(raft::ConfChange::Remove(id)),
        };
        result.map_err(|e| self.refusal(e))
    }

    fn backup(&self, out: &mut dyn std::io::Write) -> std::result::Result<(), String> {
        let header = backup::write_backup(self.engine.mvcc(), self.replica.id(), out).map_err(|e| e.to_string())?;
        tracing::info!(version = header.version, raft_index = header.raft_index, "backup written");
        Ok(())
    }

    fn ready(&self) -> (bool, String) {
        let s = self.replica.status();
        let not_ready = |reason: String| (false, serde_json::json!({ "ready": false, "reason": reason }).to_string());
        if let Some(failure) = self.replica.failure() {
            return not_ready(format!("storage failed: {failure}"));
        }
        if let Some(stall) = self.replica.stalled() {
            return not_ready(format!("applying committed entries fails: {stall}"));
        }
        let Some(leader) = s.leader else { return not_ready("no leader elected".into()) };
        let behind = s.commit.saturating_sub(s.applied);
        if behind > READY_APPLY_LAG {
            return not_ready(format!("catching up: {behind} committed entries not applied yet"));
        }
        (true, serde_json::json!({ "ready": true, "role": s.role, "leader": leader }).to_string())
    }

    fn metrics_text(&self) -> String {
        let mut m = Families::default();
        let pg = &self.pg;
        m.gauge(
            "chronos_connections",
            "Open PostgreSQL connections.",
            pg.connections.load(std::sync::atomic::Ordering::Relaxed) as i64,
        );
        m.extend(pg.families());
        let mvcc = self.engine.mvcc();
        m.counter("chronos_commits_total", "Transactions committed with writes.", mvcc.commits());
        m.counter(
            "chronos_commit_conflicts_total",
            "Commits refused by validation (serialization failures, retried for autocommit statements).",
            mvcc.conflicts(),
        );
        m.gauge(
            "chronos_column_cache_bytes",
            "Memory held by column snapshots of tables (roughly).",
            mvcc.column_cache().bytes() as i64,
        );
        m.counter(
            "chronos_column_snapshot_reads_total",
            "Full table scans served from a column snapshot instead of storage.",
            mvcc.column_cache().reads(),
        );
        let (segments, segment_bytes, sealed_rows) = mvcc.segment_totals();
        m.gauge("chronos_segments", "Sealed column segments of time-series tables.", segments as i64);
        m.gauge("chronos_segment_bytes", "Stored bytes of the sealed column segments.", segment_bytes as i64);
        m.gauge(
            "chronos_sealed_rows",
            "Rows of time-series tables held in sealed column segments.",
            sealed_rows as i64,
        );
        m.counter(
            "chronos_ttl_expired_rows_total",
            "Rows deleted because they were older than their table's TTL.",
            self.engine.ttl_expired_rows(),
        );
        m.gauge(
            "chronos_durable_version",
            "The newest durable MVCC version.",
            i64::try_from(mvcc.durable_version()).unwrap_or(i64::MAX),
        );
        m.gauge(
            "chronos_storage_disk_bytes",
            "Bytes of the files in the data directory.",
            dir_bytes(&self.data_dir) as i64,
        );
        m.gauge(
            "chronos_storage_cache_capacity_bytes",
            "The storage page cache's configured size (--cache-mb).",
            self.cache_bytes as i64,
        );

        let raft = self.replica.status();
        m.gauge("chronos_raft_term", "Current Raft term.", raft.term as i64);
        let roles = ["Leader", "Follower", "Candidate", "Learner"];
        m.gauge_vec(
            "chronos_raft_role",
            "1 for this member's Raft role, 0 for the others.",
            "role",
            roles.iter().map(|r| (r.to_string(), f64::from(u8::from(raft.role == *r)))).collect(),
        );
        m.gauge(
            "chronos_raft_leader",
            "The leader's node id as this member knows it (0 while there is none).",
            raft.leader.unwrap_or(0) as i64,
        );
        m.gauge("chronos_raft_commit_index", "Raft commit index.", raft.commit as i64);
        m.gauge("chronos_raft_applied_index", "Raft entries applied to storage.", raft.applied as i64);
        m.gauge(
            "chronos_raft_apply_lag_entries",
            "Committed entries this member has not applied yet.",
            raft.commit.saturating_sub(raft.applied) as i64,
        );
        m.gauge_vec(
            "chronos_raft_follower_lag_entries",
            "On the leader: committed entries each other member is not known to hold yet.",
            "follower",
            raft.matched
                .iter()
                .map(|(id, matched)| (id.to_string(), raft.commit.saturating_sub(*matched) as f64))
                .collect(),
        );
        m.counter("chronos_raft_elections_total", "Elections this member started as a candidate.", raft.elections);
        m.counter("chronos_raft_snapshots_sent_total", "Snapshots sent whole to followers.", raft.snapshots_sent);
        m.counter(
            "chronos_raft_snapshots_installed_total",
            "Snapshots received from a leader and installed.",
            raft.snapshots_installed,
        );
        m.gauge_vec(
            "chronos_raft_members",
            "Members of the configuration, by kind.",
            "kind",
            vec![("voter".into(), raft.voters.len() as f64), ("learner".into(), raft.learners.len() as f64)],
        );

        if let Some(status) = &self.sync {
            let r = status.report();
            let now = mvcc.clock_now();
            m.gauge(
                "chronos_sync_connected",
                "1 while the last push to the cloud was answered.",
                i64::from(r.state == crate::sync::worker::State::Connected),
            );
            m.counter("chronos_sync_pushes_total", "Pushes the cloud acknowledged.", r.pushes);
            m.counter("chronos_sync_rows_sent_total", "Row changes pushed and acknowledged.", r.rows_sent);
            m.counter("chronos_sync_bytes_sent_total", "Bytes of row changes pushed and acknowledged.", r.bytes_sent);
            m.counter("chronos_sync_errors_total", "Pushes that failed.", r.errors);
            m.gauge_f64(
                "chronos_sync_oldest_pending_seconds",
                "Age of the oldest change not yet acknowledged by the cloud (0 when none).",
                r.oldest_pending.map_or(0.0, |v| hlc_seconds(now.saturating_sub(v))),
            );
            if let Ok(bytes) = self.engine.sync_backlog_bytes() {
                m.gauge(
                    "chronos_sync_backlog_bytes",
                    "Bytes of changes waiting in the outbox for the cloud.",
                    bytes as i64,
                );
            }
        }
        if let Some(received) = &self.received {
            use std::sync::atomic::Ordering::Relaxed;
            m.counter(
                "chronos_sync_pushes_received_total",
                "Pushes from edges committed.",
                received.pushes.load(Relaxed),
            );
            m.counter(
                "chronos_sync_changes_received_total",
                "Row changes from edges applied (each merged by last-writer-wins).",
                received.changes.load(Relaxed),
            );
            m.counter(
                "chronos_sync_pushes_refused_total",
                "Pushes from edges refused.",
                received.refused.load(Relaxed),
            );
            m.counter(
                "chronos_sync_clock_refused_total",
                "Pushes refused for a clock too far ahead of this node's.",
                received.clock_refused.load(Relaxed),
            );
        }
        if let Some(mqtt) = &self.mqtt {
            mqtt.report(&mut m);
        }
        m.encode()
    }
}

/// Bytes of the files under `dir` (sled's files, the audit log's, anything else kept there).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Seconds in a difference of two HLC times (NTP64: 32 bits of seconds, 32 of fraction).
fn hlc_seconds(delta: u64) -> f64 {
    delta as f64 / 4_294_967_296.0
}
