//! A node: configuration, start-up and the tasks of one ChronosDB process.
//!
//! Wires storage (sled) → engine → pg front end and the HTTP operations endpoint, runs the
//! background MVCC garbage collector, and shuts down gracefully on a signal: stop accepting,
//! let running statements finish, flush storage.

pub mod backup;
pub mod driver;
pub mod replica;

use crate::error::{Error, Result};
use crate::pg::{self, PgConfig};
use crate::raft;
use crate::sql::Engine;
use crate::storage::sled::SledStorage;
use crate::storage::Storage;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Configuration of a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub pg_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub pg: PgConfig,
    /// The HTTP endpoint's token and TLS.
    pub http: crate::http::HttpConfig,
    /// Where audit records go (`CHRONOS_AUDIT_LOG`); None: the tracing log.
    pub audit_log: Option<PathBuf>,
    /// How often old MVCC versions are collected.
    pub gc_interval: std::time::Duration,
    /// How often rows past their table's TTL are expired (on the leader).
    pub ttl_interval: std::time::Duration,
    /// Membership of a cluster; None for a single node (a group of one).
    pub cluster: Option<ClusterConfig>,
    /// Take a Raft snapshot and compact the log after this many entries.
    pub snapshot_threshold: u64,
    /// Storage page cache, in bytes.
    pub cache_bytes: u64,
    /// Memory budget of column snapshots, in bytes (0: none).
    pub column_cache_bytes: u64,
    /// Memory budget of each statement, in bytes: past it the statement fails with 53200.
    pub statement_memory_bytes: u64,
    /// This node is (a member of) an edge that pushes its changes to a cloud cluster.
    pub sync: Option<EdgeConfig>,
    /// Edges must prove their id with a token derived from this secret (`docs/sync.md`).
    pub sync_secret: Option<String>,
    /// Where edges push to this node, apart from the internode address (`--sync-address`).
    pub sync_address: Option<SocketAddr>,
    /// The certificate chain and key (PEM) of the sync listener: TLS for edges.
    pub sync_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Subscribe to an MQTT broker and write its messages into tables (on the leader).
    pub mqtt: Option<crate::mqtt::MqttConfig>,
}

/// An edge's sync settings.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    pub sync: crate::sync::worker::SyncConfig,
    /// The CA of the cloud's certificate (and the edge's own certificate, if any).
    pub tls: Option<crate::net::ClientTls>,
    /// The edge's token for a cloud with a sync secret.
    pub token: Option<String>,
    /// Writes of rows are refused (53100) while the outbox holds more than this (0: no limit).
    pub max_backlog_bytes: u64,
}

/// A single node compacts its Raft log at least this often (entries).
const SINGLE_NODE_COMPACTION: u64 = 1_000;

/// This node's place in a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub id: raft::NodeId,
    /// Internode (gRPC) address to listen on.
    pub address: SocketAddr,
    /// Every founding member (this one included): id → internode `host:port`.
    pub members: std::collections::BTreeMap<raft::NodeId, String>,
    /// Joining a running cluster: the membership comes from its leader, not from `members`
    /// (which only say how to reach them).
    pub join: bool,
    /// Mutual TLS between members; without it the node listens on loopback only.
    pub tls: Option<crate::net::InternodeTls>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            pg_addr: SocketAddr::from(([127, 0, 0, 1], 5432)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9000)),
            pg: PgConfig::default(),
            http: crate::http::HttpConfig::default(),
            audit_log: None,
            gc_interval: std::time::Duration::from_secs(30),
            ttl_interval: std::time::Duration::from_secs(60),
            cluster: None,
            snapshot_threshold: 50_000,
            cache_bytes: 256 << 20,
            column_cache_bytes: crate::mvcc::columns::DEFAULT_BUDGET as u64,
            statement_memory_bytes: crate::sql::session::DEFAULT_STATEMENT_MEMORY as u64,
            sync: None,
            sync_secret: None,
            sync_address: None,
            sync_identity: None,
            mqtt: None,
        }
    }
}

struct NodeStatus {
    engine: Arc<Engine>,
    pg: Arc<pg::PgMetrics>,
    replica: Arc<replica::Replica>,
    sync: Option<Arc<crate::sync::worker::SyncStatus>>,
    /// A cluster member's sync service (the cloud side).
    received: Option<Arc<crate::sync::cloud::Metrics>>,
    mqtt: Option<Arc<crate::mqtt::Metrics>>,
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

    fn metrics_text(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let metrics: [(&str, &str, &str, u64); 9] = [
            ("chronos_connections", "gauge", "Open PostgreSQL connections.", self.pg.connections.load(Relaxed) as u64),
            ("chronos_statements_total", "counter", "Statements run.", self.pg.statements.load(Relaxed)),
            ("chronos_statement_errors_total", "counter", "Statements that failed.", self.pg.errors.load(Relaxed)),
            ("chronos_commits_total", "counter", "Transactions committed with writes.", self.engine.mvcc().commits()),
            (
                "chronos_commit_conflicts_total",
                "counter",
                "Commits refused by validation (serialization failures, retried for autocommit statements).",
                self.engine.mvcc().conflicts(),
            ),
            (
                "chronos_column_cache_bytes",
                "gauge",
                "Memory held by column snapshots of tables (roughly).",
                self.engine.mvcc().column_cache().bytes() as u64,
            ),
            (
                "chronos_column_snapshot_reads_total",
                "counter",
                "Full table scans served from a column snapshot instead of storage.",
                self.engine.mvcc().column_cache().reads(),
            ),
            (
                "chronos_ttl_expired_rows_total",
                "counter",
                "Rows deleted because they were older than their table's TTL.",
                self.engine.ttl_expired_rows(),
            ),
            (
                "chronos_durable_version",
                "gauge",
                "The newest durable MVCC version.",
                self.engine.mvcc().durable_version(),
            ),
        ];
        let raft = self.replica.status();
        let raft_metrics: [(&str, &str, &str, u64); 4] = [
            ("chronos_raft_term", "gauge", "Current Raft term.", raft.term),
            ("chronos_raft_commit_index", "gauge", "Raft commit index.", raft.commit),
            ("chronos_raft_applied_index", "gauge", "Raft entries applied to storage.", raft.applied),
            (
                "chronos_raft_snapshots_installed_total",
                "counter",
                "Snapshots received from a leader and installed.",
                raft.snapshots_installed,
            ),
        ];
        let mut sync_metrics = Vec::new();
        if let Some(status) = &self.sync {
            let r = status.report();
            let now = self.engine.mvcc().clock_now();
            sync_metrics = vec![
                (
                    "chronos_sync_connected",
                    "gauge",
                    "1 while the last push to the cloud was answered.",
                    u64::from(r.state == crate::sync::worker::State::Connected),
                ),
                ("chronos_sync_pushes_total", "counter", "Pushes the cloud acknowledged.", r.pushes),
                ("chronos_sync_rows_sent_total", "counter", "Row changes pushed and acknowledged.", r.rows_sent),
                (
                    "chronos_sync_bytes_sent_total",
                    "counter",
                    "Bytes of row changes pushed and acknowledged.",
                    r.bytes_sent,
                ),
                ("chronos_sync_errors_total", "counter", "Pushes that failed.", r.errors),
                (
                    "chronos_sync_oldest_pending_seconds",
                    "gauge",
                    "Age of the oldest change not yet acknowledged by the cloud (0 when none).",
                    r.oldest_pending.map_or(0, |v| hlc_seconds(now.saturating_sub(v)) as u64),
                ),
            ];
        }
        if let Some(received) = &self.received {
            use std::sync::atomic::Ordering::Relaxed;
            sync_metrics.extend([
                (
                    "chronos_sync_pushes_received_total",
                    "counter",
                    "Pushes from edges committed.",
                    received.pushes.load(Relaxed),
                ),
                (
                    "chronos_sync_changes_received_total",
                    "counter",
                    "Row changes from edges applied (each merged by last-writer-wins).",
                    received.changes.load(Relaxed),
                ),
                (
                    "chronos_sync_pushes_refused_total",
                    "counter",
                    "Pushes from edges refused.",
                    received.refused.load(Relaxed),
                ),
                (
                    "chronos_sync_clock_refused_total",
                    "counter",
                    "Pushes refused for a clock too far ahead of this node's.",
                    received.clock_refused.load(Relaxed),
                ),
            ]);
        }
        let mut out = String::new();
        for (name, kind, help, value) in metrics.into_iter().chain(raft_metrics).chain(sync_metrics) {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
        if let Some(mqtt) = &self.mqtt {
            out.push_str(&mqtt.render());
        }
        out
    }
}

/// Seconds in a difference of two HLC times (NTP64: 32 bits of seconds, 32 of fraction).
fn hlc_seconds(delta: u64) -> f64 {
    delta as f64 / 4_294_967_296.0
}

/// Makes `engine` a Raft group of one whose log is `log`: how a single node commits, and how
/// tests and benchmarks run the engine (see [`open_in_memory`], [`open_dir`]).
pub fn start_group_of_one<S: raft::LogStore + Send + 'static>(
    engine: &Arc<Engine>,
    log: S,
    snapshot_threshold: u64,
) -> Result<Arc<replica::Replica>> {
    let mut replica_config = replica::ReplicaConfig::new(1, vec![1]);
    // A group of one compacts without a snapshot (nobody asks it for one), so it can do so
    // often: a long log only holds memory in sled.
    replica_config.snapshot_threshold = snapshot_threshold.min(SINGLE_NODE_COMPACTION);
    replica::Replica::start(replica_config, log, engine.mvcc().clone(), Arc::new(replica::NoPeers))
}

/// An engine over memory, committing through a Raft group of one with an in-memory log: for
/// tests of the layers above storage. It stops when the engine is dropped.
pub fn open_in_memory() -> Result<Arc<Engine>> {
    let engine = Engine::open(Arc::new(crate::storage::memory::MemoryStorage::new()))?;
    start_group_of_one(&engine, raft::MemLogStore::new(), SINGLE_NODE_COMPACTION)?;
    Ok(engine)
}

/// An engine over the sled database in `dir`, exactly as a single node runs it (without the
/// network front ends): for tests and benchmarks. It stops when the engine is dropped.
pub fn open_dir(dir: &std::path::Path) -> Result<Arc<Engine>> {
    let sled = SledStorage::open(dir)?;
    let log = raft::SledLogStore::open(sled.tree("raft")?).map_err(driver::from_raft)?;
    let engine = Engine::open(Arc::new(sled))?;
    start_group_of_one(&engine, log, SINGLE_NODE_COMPACTION)?;
    Ok(engine)
}

/// Runs a node until `requested` turns true, or until a storage failure stops its Raft driver:
/// then `/health` answers 503 with the reason, writes fail at once, the node shuts down as on
/// request and the error is returned (the process exits non-zero), so a supervisor sees it.
pub async fn run_node(config: NodeConfig, requested: watch::Receiver<bool>) -> Result<()> {
    let (stop, shutdown) = watch::channel(false);
    let no_credentials = config.pg.admin_password.is_none() && config.pg.readonly_password.is_none();
    if no_credentials && !pg::is_loopback(&config.pg_addr) {
        return Err(Error::InvalidParameter(format!(
            "refusing to listen on {} without credentials: set CHRONOS_AUTH_TOKEN_ADMIN or bind a loopback address",
            config.pg_addr
        )));
    }
    if no_credentials {
        tracing::warn!("no credentials configured: trusting connections on loopback only");
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let audit = Arc::new(crate::audit::AuditLog::open(config.audit_log.as_deref()).map_err(|e| {
        Error::InvalidParameter(format!(
            "audit log {}: {e}",
            config.audit_log.as_deref().unwrap_or(std::path::Path::new("")).display()
        ))
    })?);
    let sled = SledStorage::open_with_cache(&config.data_dir, config.cache_bytes)?;
    let raft_store = raft::SledLogStore::open(sled.tree("raft")?).map_err(driver::from_raft)?;
    let storage: Arc<dyn Storage> = Arc::new(sled);
    let engine = Engine::open(storage.clone())?;
    engine.mvcc().column_cache().set_budget(usize::try_from(config.column_cache_bytes).unwrap_or(usize::MAX));
    engine.set_statement_memory(usize::try_from(config.statement_memory_bytes).unwrap_or(usize::MAX));
    let sync_settings = crate::net::SyncSettings {
        secret: config.sync_secret.as_ref().map(|s| Arc::new(s.as_bytes().to_vec())),
        metrics: Arc::default(),
    };
    // A single node is a Raft group of one.
    let (replica, internode) = match &config.cluster {
        None => (start_group_of_one(&engine, raft_store, config.snapshot_threshold)?, None),
        Some(cluster) => {
            if !cluster.members.contains_key(&cluster.id) {
                return Err(Error::InvalidParameter(format!("--peers must include this node (id {})", cluster.id)));
            }
            if cluster.tls.is_none() && !pg::is_loopback(&cluster.address) {
                return Err(Error::InvalidParameter(format!(
                    "refusing to listen for members on {} without TLS: set CHRONOS_TLS_CERT, CHRONOS_TLS_KEY and \
                     CHRONOS_TLS_CA_CERT (mutual TLS between members) or bind a loopback address",
                    cluster.address
                )));
            }
            let tls = cluster.tls.as_ref();
            let server =
                crate::net::Server::bind(cluster.address, tls, sync_settings.clone(), shutdown.clone()).await?;
            let peers =
                cluster.members.iter().filter(|(id, _)| **id != cluster.id).map(|(k, v)| (*k, v.clone())).collect();
            let transport = crate::net::GrpcTransport::start(&peers, tls)?;
            let founders = if cluster.join { Vec::new() } else { cluster.members.keys().copied().collect() };
            let mut replica_config = replica::ReplicaConfig::new(cluster.id, founders);
            replica_config.snapshot_threshold = config.snapshot_threshold;
            let replica = replica::Replica::start(replica_config, raft_store, engine.mvcc().clone(), transport)?;
            server.set_replica(replica.clone());
            tracing::info!(id = cluster.id, address = %cluster.address, members = cluster.members.len(), "cluster member started");
            (replica, Some(server))
        }
    };
    let sync_listener = match config.sync_address {
        None => None,
        Some(address) => {
            let exposed = !pg::is_loopback(&address);
            if exposed && (config.sync_identity.is_none() || config.sync_secret.is_none()) {
                return Err(Error::InvalidParameter(format!(
                    "refusing to take pushes from edges on {address} without TLS and edge tokens: set CHRONOS_TLS_CERT, \
                     CHRONOS_TLS_KEY and CHRONOS_SYNC_SECRET, or bind a loopback address"
                )));
            }
            let identity = config.sync_identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
            let task =
                crate::net::serve_sync(address, identity, sync_settings.clone(), replica.clone(), shutdown.clone())
                    .await?;
            tracing::info!(%address, tls = identity.is_some(), "taking pushes from edges");
            Some(task)
        }
    };
    let monitored = replica.clone();
    tokio::spawn(async move {
        let mut requested = requested;
        loop {
            tokio::select! {
                _ = requested.changed() => break,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    if let Some(failure) = monitored.failure() {
                        tracing::error!(reason = %failure, "storage failure: the node stops");
                        break;
                    }
                }
            }
        }
        let _ = stop.send(true);
    });
    let pg_listener = TcpListener::bind(config.pg_addr).await?;
    let http_listener = TcpListener::bind(config.http_addr).await?;
    tracing::info!(pg = %pg_listener.local_addr()?, http = %http_listener.local_addr()?, data_dir = %config.data_dir.display(), "chronos single node ready");

    let sync_status = match &config.sync {
        None => None,
        Some(edge) => Some(start_sync(&engine, &replica, edge, shutdown.clone()).await?),
    };
    let mqtt_metrics = config.mqtt.as_ref().map(|mqtt| {
        let metrics = Arc::new(crate::mqtt::Metrics::default());
        let leader = replica.clone();
        let is_leader = move || leader.status().leader == Some(leader.id());
        tokio::spawn(crate::mqtt::client::run(
            engine.clone(),
            mqtt.clone(),
            is_leader,
            metrics.clone(),
            shutdown.clone(),
        ));
        tracing::info!(broker = %mqtt.url, client_id = %mqtt.file.client_id, "mqtt ingestion started");
        metrics
    });
    let pg_metrics = Arc::new(pg::PgMetrics::default());
    let status: Arc<dyn crate::http::Status> = Arc::new(NodeStatus {
        engine: engine.clone(),
        pg: pg_metrics.clone(),
        replica: replica.clone(),
        sync: sync_status,
        received: (internode.is_some() || sync_listener.is_some()).then(|| sync_settings.metrics.clone()),
        mqtt: mqtt_metrics,
    });
    let http_config = crate::http::HttpConfig { passwords_configured: !no_credentials, ..config.http.clone() };
    let http = tokio::spawn(crate::http::serve(http_listener, status, http_config, audit.clone(), shutdown.clone()));
    let gc_engine = engine.clone();
    let mut gc_shutdown = shutdown.clone();
    let gc = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(config.gc_interval) => {
                    let engine = gc_engine.clone();
                    match tokio::task::spawn_blocking(move || engine.gc()).await {
                        Ok(Ok(n)) if n > 0 => tracing::debug!(removed = n, "mvcc gc"),
                        Ok(Err(e)) => tracing::warn!(error = %e, "mvcc gc failed"),
                        _ => {}
                    }
                }
                _ = gc_shutdown.changed() => return,
            }
        }
    });
    let ttl = tokio::spawn(expire_ttl_rows(engine.clone(), replica.clone(), config.ttl_interval, shutdown.clone()));
    pg::serve(pg_listener, engine, config.pg.clone(), pg_metrics, audit, shutdown).await;
    let _ = http.await;
    let _ = gc.await;
    let _ = ttl.await;
    if let Some(server) = internode {
        server.stopped().await;
    }
    if let Some(task) = sync_listener {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), task).await;
    }
    let failure = replica.failure();
    let flushed = tokio::task::spawn_blocking(move || {
        replica.stop();
        storage.flush()
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    if let Some(failure) = failure {
        return Err(Error::Io(format!("stopped after a storage failure: {failure}")));
    }
    flushed?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Marks the database as the edge (so its changes are captured before any client writes) and
/// starts the sync worker.
async fn start_sync(
    engine: &Arc<Engine>,
    replica: &Arc<replica::Replica>,
    edge: &EdgeConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<Arc<crate::sync::worker::SyncStatus>> {
    use crate::sync::worker;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (mvcc, id) = (engine.mvcc().clone(), edge.sync.edge_id.clone());
        let marked = tokio::task::spawn_blocking(move || {
            let mut txn = mvcc.begin_read()?;
            if crate::sync::outbox::mark_edge(&mut txn, &id)? {
                txn.commit()?;
            }
            Ok::<_, Error>(())
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        match marked {
            Ok(()) => break,
            Err(e @ Error::InvalidParameter(_)) => return Err(e),
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
    let uplink = Arc::new(crate::net::GrpcUplink::new(&edge.sync.targets, edge.tls.as_ref(), edge.token.clone())?);
    let status = worker::SyncStatus::new(&edge.sync);
    engine.set_sync_status(status.clone());
    engine.set_sync_budget(edge.max_backlog_bytes);
    let leader = replica.clone();
    let is_leader = move || leader.status().leader == Some(leader.id());
    tokio::spawn(worker::run(engine.mvcc().clone(), is_leader, uplink, edge.sync.clone(), status.clone(), shutdown));
    tracing::info!(edge = %edge.sync.edge_id, targets = ?edge.sync.targets, "edge sync started");
    Ok(status)
}

/// Expires rows past their table's TTL every `interval`, on the node that commits (the leader):
/// the deletes are replicated like any other ([`crate::sql::ttl`]).
async fn expire_ttl_rows(
    engine: Arc<Engine>,
    replica: Arc<replica::Replica>,
    interval: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        if replica.status().leader != Some(replica.id()) {
            continue;
        }
        let engine = engine.clone();
        let now = crate::sql::functions::wall_clock_micros();
        match tokio::task::spawn_blocking(move || engine.expire_ttl(now)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(rows = n, "expired rows past their ttl"),
            Ok(Err(e)) => tracing::warn!(error = %e, "ttl expiry failed; it runs again later"),
            _ => {}
        }
    }
}
