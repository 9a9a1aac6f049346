//! A node: configuration, start-up and the tasks of one ChronosDB process.
//!
//! Wires storage (sled) → engine → pg front end and the HTTP operations endpoint, runs the
//! background MVCC garbage collector, and shuts down gracefully on a signal: stop accepting,
//! let running statements finish, flush storage.

pub mod backup;
pub mod driver;
pub mod replica;
mod status;

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
    /// On a cloud, the stamps of rows deleted longer ago than this are purged (on the leader,
    /// with the TTL rounds); None keeps them for good (`sync::cloud::purge_tombstones`).
    pub sync_tombstone_horizon: Option<std::time::Duration>,
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

/// A single node compacts its Raft log at least this often (entries)…
const SINGLE_NODE_COMPACTION: u64 = 1_000;
/// … and once this many bytes of commands were applied (a bulk load is one large entry).
const SINGLE_NODE_COMPACTION_BYTES: u64 = 16 << 20;

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
            sync_tombstone_horizon: None,
            sync_identity: None,
            mqtt: None,
        }
    }
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
    replica_config.snapshot_threshold_bytes = SINGLE_NODE_COMPACTION_BYTES;
    replica::Replica::start(replica_config, log, engine.mvcc().clone(), Arc::new(replica::NoPeers))
}

/// An engine over memory, committing through a Raft group of one with an in-memory log: for
/// tests of the layers above storage. It stops when the engine is dropped.
pub fn open_in_memory() -> Result<Arc<Engine>> {
    let engine = Engine::open(Arc::new(crate::storage::memory::MemoryStorage::new()))?;
    start_group_of_one(&engine, raft::MemLogStore::new(), SINGLE_NODE_COMPACTION)?;
    Ok(engine)
}

/// The Raft log store in the trees of `sled`'s database.
fn open_log(sled: &SledStorage) -> Result<raft::SledLogStore> {
    raft::SledLogStore::open(sled.tree(raft::LOG_TREE)?, sled.tree(raft::STATE_TREE)?).map_err(driver::from_raft)
}

/// An engine over the sled database in `dir`, exactly as a single node runs it (without the
/// network front ends): for tests and benchmarks. It stops when the engine is dropped.
pub fn open_dir(dir: &std::path::Path) -> Result<Arc<Engine>> {
    let sled = SledStorage::open(dir)?;
    let log = open_log(&sled)?;
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
    let raft_store = open_log(&sled)?;
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
    let status: Arc<dyn crate::http::Status> = Arc::new(status::NodeStatus {
        engine: engine.clone(),
        pg: pg_metrics.clone(),
        replica: replica.clone(),
        sync: sync_status,
        received: (internode.is_some() || sync_listener.is_some()).then(|| sync_settings.metrics.clone()),
        mqtt: mqtt_metrics,
        data_dir: config.data_dir.clone(),
        cache_bytes: config.cache_bytes,
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
                    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || engine.gc()).await {
                        tracing::warn!(error = %e, "mvcc gc failed");
                    }
                }
                _ = gc_shutdown.changed() => return,
            }
        }
    });
    let ttl = tokio::spawn(expire_ttl_rows(
        engine.clone(),
        replica.clone(),
        config.ttl_interval,
        config.sync_tombstone_horizon,
        shutdown.clone(),
    ));
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

/// How often the leader purges sync tombstones past the horizon (at most).
const TOMBSTONE_PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Expires rows past their table's TTL every `interval`, on the node that commits (the leader):
/// the deletes are replicated like any other ([`crate::sql::ttl`]). With a tombstone horizon,
/// also purges, at most once an hour, the sync stamps of rows deleted before it
/// ([`crate::sync::cloud::purge_tombstones`]).
async fn expire_ttl_rows(
    engine: Arc<Engine>,
    replica: Arc<replica::Replica>,
    interval: std::time::Duration,
    tombstone_horizon: Option<std::time::Duration>,
    mut shutdown: watch::Receiver<bool>,
) {
    // A purge reads every stamp; a horizon counts in days, so once an hour is enough.
    let mut purged_at: Option<std::time::Instant> = None;
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
        let expiring = engine.clone();
        match tokio::task::spawn_blocking(move || expiring.expire_ttl(now)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(rows = n, "expired rows past their ttl"),
            Ok(Err(e)) => tracing::warn!(error = %e, "ttl expiry failed; it runs again later"),
            _ => {}
        }
        let Some(horizon) = tombstone_horizon else { continue };
        if purged_at.is_some_and(|at| at.elapsed() < TOMBSTONE_PURGE_INTERVAL) {
            continue;
        }
        purged_at = Some(std::time::Instant::now());
        let cutoff = crate::clock::ntp64().as_u64().saturating_sub(uhlc::NTP64::from(horizon).as_u64());
        let mvcc = engine.mvcc().clone();
        match tokio::task::spawn_blocking(move || crate::sync::cloud::purge_tombstones(&mvcc, cutoff)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(stamps = n, "purged sync tombstones past the horizon"),
            Ok(Err(e)) => tracing::warn!(error = %e, "purging sync tombstones failed; it runs again later"),
            _ => {}
        }
    }
}
