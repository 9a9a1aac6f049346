//! `chronos`: the ChronosDB server.

use chronos::node::{run_node, ClusterConfig, NodeConfig};
use chronos::pg::PgConfig;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "chronos", version, about = "ChronosDB: a PostgreSQL-compatible time-series database for the edge")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node on its own (a cluster of one).
    SingleNode {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print the sync token of an edge for a cloud whose members have CHRONOS_SYNC_SECRET
    /// (read from that variable here too); the edge runs with it in CHRONOS_SYNC_TOKEN.
    SyncToken {
        #[arg(long, value_parser = edge_id)]
        edge_id: String,
    },
    /// Back up a running node, or build a data directory from a backup.
    Snapshot {
        #[command(subcommand)]
        action: SnapshotCommand,
    },
    /// Run a member of a cluster.
    Node {
        /// This node's id (1 to 255, unique in the cluster).
        #[arg(long, env = "CHRONOS_NODE_ID", value_parser = clap::value_parser!(u64).range(1..=chronos::mvcc::MAX_NODE_ID))]
        id: u64,
        /// Internode (gRPC) address to listen on.
        #[arg(long, env = "CHRONOS_ADDRESS")]
        address: SocketAddr,
        /// Every member, this one included: `id=host:port,…` (internode addresses).
        #[arg(long, env = "CHRONOS_PEERS", value_parser = peers)]
        peers: std::collections::BTreeMap<u64, String>,
        /// Join a running cluster (after `POST /raft/members?add=ID&address=…` on its leader)
        /// instead of founding one with `--peers` as its members.
        #[arg(long, env = "CHRONOS_JOIN")]
        join: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Write the database of a running node, as of one commit version, to one file (online:
    /// writes go on), through its operations endpoint (`POST /backup`, with CHRONOS_HTTP_TOKEN).
    Create {
        /// The file to write (replaced if it exists, only once the backup is complete).
        #[arg(long)]
        output: PathBuf,
        /// The node's operations endpoint (its --http-addr): `http://host:port` or `https://…`.
        #[arg(long, default_value = "http://127.0.0.1:9000", env = "CHRONOS_ADMIN_URL")]
        url: chronos::admin::Endpoint,
        /// The CA certificate (PEM) an https:// endpoint's certificate must chain to.
        #[arg(long, env = "CHRONOS_TLS_CA_CERT")]
        ca_cert: Option<String>,
    },
    /// Build a data directory from a backup; a node started on it answers as of the backup's
    /// version and founds a cluster of one (add members to it afterwards).
    Restore(chronos::admin::RestoreArgs),
}

/// Runs `chronos snapshot …`.
fn snapshot_command(action: SnapshotCommand) -> std::process::ExitCode {
    let result = match action {
        SnapshotCommand::Create { output, url, ca_cert } => {
            let token = std::env::var("CHRONOS_HTTP_TOKEN").ok().filter(|t| !t.is_empty());
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            runtime
                .map_err(|e| chronos::error::Error::Io(e.to_string()))
                .and_then(|runtime| {
                    runtime.block_on(async {
                        let client = chronos::admin::Client::new(token, ca_cert.as_deref())?;
                        chronos::admin::backup_to_file(&client, &url, &output, &mut |_| {}).await
                    })
                })
                .map(|header| {
                    println!(
                        "backup of {url} as of version {} (raft index {}) written to {}",
                        header.version,
                        header.raft_index,
                        output.display()
                    )
                })
        }
        SnapshotCommand::Restore(args) => args.run().map(|header| {
            println!(
                "restored {} into {} as of version {} (taken {} from node {})",
                args.input.display(),
                args.data_dir.display(),
                header.version,
                header.created_at,
                header.node_id
            )
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chronos: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Options of every server.
#[derive(clap::Args)]
struct ServerArgs {
    /// Where the data lives.
    #[arg(long, default_value = "data", env = "CHRONOS_DATA_DIR")]
    data_dir: PathBuf,
    /// PostgreSQL protocol address.
    #[arg(long, default_value = "127.0.0.1:5432", env = "CHRONOS_PG_ADDR")]
    pg_addr: SocketAddr,
    /// HTTP address of /health and /metrics.
    #[arg(long, default_value = "127.0.0.1:9000", env = "CHRONOS_HTTP_ADDR")]
    http_addr: SocketAddr,
    /// Connections allowed at once; more are refused with SQLSTATE 53300.
    #[arg(long, default_value_t = 100, env = "CHRONOS_MAX_CONNECTIONS")]
    max_connections: usize,
    /// Close connections idle outside a transaction for longer than this (PostgreSQL's
    /// idle_session_timeout: `30s`, `10min`, milliseconds without a unit; 0 = never).
    #[arg(long, default_value = "0", value_parser = duration, env = "CHRONOS_IDLE_SESSION_TIMEOUT")]
    idle_session_timeout: std::time::Duration,
    /// Close connections idle inside a transaction block for longer than this, rolling the
    /// transaction back (idle_in_transaction_session_timeout; 0 = never).
    #[arg(long, default_value = "0", value_parser = duration, env = "CHRONOS_IDLE_IN_TRANSACTION_TIMEOUT")]
    idle_in_transaction_timeout: std::time::Duration,
    /// Time a client has from connecting to the end of authentication
    /// (PostgreSQL's authentication_timeout).
    #[arg(long, default_value = "60s", value_parser = duration, env = "CHRONOS_AUTHENTICATION_TIMEOUT")]
    authentication_timeout: std::time::Duration,
    /// Connections that may be authenticating at once, apart from --max-connections (which
    /// counts authenticated sessions); more are refused with SQLSTATE 53300.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..), env = "CHRONOS_MAX_AUTHENTICATING")]
    max_authenticating: u64,
    /// The largest protocol message a client may send, in MiB (a larger one ends the connection
    /// with SQLSTATE 08P01).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1024), env = "CHRONOS_MAX_MESSAGE_MB")]
    max_message_mb: u64,
    /// Snapshot the state and compact the Raft log after this many entries.
    #[arg(long, default_value_t = 50_000, env = "CHRONOS_SNAPSHOT_THRESHOLD")]
    snapshot_threshold: u64,
    /// Storage page cache in MiB (sled's estimate; the process uses somewhat more).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..), env = "CHRONOS_CACHE_MB")]
    cache_mb: u64,
    /// Memory one statement may hold (sorts, hash tables, groups, materialized rows, the rows
    /// it writes), in MiB; past it the statement fails with SQLSTATE 53200.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..), env = "CHRONOS_STATEMENT_MEMORY_MB")]
    statement_memory_mb: u64,
    /// Memory for column snapshots of tables, which full scans read instead of storage, in MiB
    /// (0 turns them off).
    #[arg(long, default_value_t = 128, env = "CHRONOS_COLUMN_CACHE_MB")]
    column_cache_mb: u64,
    /// How often rows past their table's TTL are expired, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..), env = "CHRONOS_TTL_INTERVAL_SECS")]
    ttl_interval_secs: u64,
    /// Run as an edge with this id (letters, digits, `-`, `_`, `.`): every committed row change
    /// is captured and pushed to --sync-target.
    #[arg(long, env = "CHRONOS_EDGE_ID", requires = "sync_target", value_parser = edge_id)]
    edge_id: Option<String>,
    /// Cloud members an edge pushes to (`http://host:port`, `https://…` with TLS), comma
    /// separated or repeated; tried in turn.
    #[arg(long, env = "CHRONOS_SYNC_TARGET", value_delimiter = ',', requires = "edge_id")]
    sync_target: Vec<String>,
    /// Take pushes from edges on this address too (only the sync service: edges reach no other
    /// service of the node); TLS with CHRONOS_TLS_CERT/KEY, edge tokens with
    /// CHRONOS_SYNC_SECRET (both required off loopback).
    #[arg(long, env = "CHRONOS_SYNC_ADDRESS")]
    sync_address: Option<SocketAddr>,
    /// On a cloud, forget the stamps of rows deleted longer ago than this many days; pushes
    /// holding changes from before that are then refused (0: keep them for good).
    #[arg(long, default_value_t = 0, env = "CHRONOS_SYNC_TOMBSTONE_DAYS")]
    sync_tombstone_days: u64,
    /// The disk an edge's backlog of unsynced changes may take, in MiB: past it writes of rows
    /// fail with SQLSTATE 53100 until the cloud catches up (0: no limit).
    #[arg(long, default_value_t = 1024, env = "CHRONOS_SYNC_MAX_BACKLOG_MB")]
    sync_max_backlog_mb: u64,
    /// Seconds an edge waits between pushes when it has sent everything.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..), env = "CHRONOS_SYNC_INTERVAL_SECS")]
    sync_interval_secs: u64,
    /// Subscribe to this MQTT broker (`mqtt://host:port`, `mqtts://…` with TLS) and write the
    /// messages into tables (docs/mqtt.md); the password is CHRONOS_MQTT_PASSWORD.
    #[arg(long, env = "CHRONOS_MQTT_URL")]
    mqtt_url: Option<String>,
    /// The MQTT mappings and settings (TOML or JSON; docs/mqtt.md).
    #[arg(long, env = "CHRONOS_MQTT_CONFIG")]
    mqtt_config: Option<PathBuf>,
    /// The MQTT client id (the broker keeps the session under it); overrides the file's.
    #[arg(long, env = "CHRONOS_MQTT_CLIENT_ID")]
    mqtt_client_id: Option<String>,
    /// The MQTT user name; overrides the file's.
    #[arg(long, env = "CHRONOS_MQTT_USERNAME")]
    mqtt_username: Option<String>,
}

/// MQTT ingestion's settings: the file (if any), with the flags over it.
fn mqtt_settings(
    url: Option<String>,
    config: Option<PathBuf>,
    client_id: Option<String>,
    username: Option<String>,
) -> Result<Option<chronos::mqtt::MqttConfig>, String> {
    let mut file = match &config {
        Some(path) => chronos::mqtt::MqttFile::load(path).map_err(|e| e.to_string())?,
        None => chronos::mqtt::MqttFile::default(),
    };
    let Some(url) = url.or_else(|| file.url.clone()) else {
        return match config {
            Some(_) => Err("--mqtt-config needs a broker: --mqtt-url or url in the file".into()),
            None => Ok(None),
        };
    };
    file.client_id = client_id.unwrap_or(file.client_id);
    file.username = username.or(file.username);
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    if let Some(ca) = env("CHRONOS_MQTT_CA_CERT") {
        file.tls.ca = Some(ca);
    }
    let config = chronos::mqtt::MqttConfig { url, file, password: env("CHRONOS_MQTT_PASSWORD") };
    chronos::mqtt::client::options(&config).map_err(|e| e.to_string())?;
    Ok(Some(config))
}

fn edge_id(text: &str) -> Result<String, String> {
    if chronos::sync::valid_edge_id(text) {
        Ok(text.to_string())
    } else {
        Err(format!("\"{text}\": an edge id is 1 to 64 letters, digits, '-', '_' or '.'"))
    }
}

fn peers(text: &str) -> Result<std::collections::BTreeMap<u64, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, address) = item.split_once('=').ok_or_else(|| format!("\"{item}\": expected id=host:port"))?;
        let id: u64 = id.trim().parse().map_err(|_| format!("\"{id}\" is not a node id"))?;
        if !(1..=chronos::mvcc::MAX_NODE_ID).contains(&id) {
            return Err(format!("node id {id} is out of range: ids are 1 to {}", chronos::mvcc::MAX_NODE_ID));
        }
        if out.insert(id, address.trim().to_string()).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if out.is_empty() {
        return Err("no peers given".into());
    }
    Ok(out)
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    chronos::pg::parse_duration_ms(text)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("invalid duration \"{text}\": use milliseconds or a unit (ms, s, min, h)"))
}

fn main() -> std::process::ExitCode {
    if let Err(e) = chronos::logging::init() {
        eprintln!("chronos: {e}");
        return std::process::ExitCode::from(2);
    }
    // Panics (a bug, or a malformed message in a protocol decoder) go to the log, not raw
    // stderr; the connection or statement they happened in is closed or failed, the server
    // goes on.
    std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panic")));
    let cli = Cli::parse();
    let (server, cluster) = match cli.command {
        Command::SyncToken { edge_id } => {
            let Some(secret) = std::env::var("CHRONOS_SYNC_SECRET").ok().filter(|s| !s.is_empty()) else {
                eprintln!("chronos: set CHRONOS_SYNC_SECRET to the cloud's sync secret");
                return std::process::ExitCode::FAILURE;
            };
            println!("{}", chronos::sync::edge_token(secret.as_bytes(), &edge_id));
            return std::process::ExitCode::SUCCESS;
        }
        Command::Snapshot { action } => return snapshot_command(action),
        Command::SingleNode { server } => (server, None),
        Command::Node { id, address, peers, join, server } => {
            (server, Some(ClusterConfig { id, address, members: peers, join, tls: None }))
        }
    };
    let ServerArgs {
        data_dir,
        pg_addr,
        http_addr,
        max_connections,
        idle_session_timeout,
        idle_in_transaction_timeout,
        authentication_timeout,
        max_authenticating,
        max_message_mb,
        snapshot_threshold,
        cache_mb,
        column_cache_mb,
        statement_memory_mb,
        ttl_interval_secs,
        edge_id,
        sync_target,
        sync_address,
        sync_tombstone_days,
        sync_max_backlog_mb,
        sync_interval_secs,
        mqtt_url,
        mqtt_config,
        mqtt_client_id,
        mqtt_username,
    } = server;
    let password = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let client_ca = password("CHRONOS_TLS_CA_CERT").map(std::path::PathBuf::from);
    if client_ca.is_some() && password("CHRONOS_TLS_CERT").is_none() {
        eprintln!("chronos: CHRONOS_TLS_CA_CERT needs CHRONOS_TLS_CERT and CHRONOS_TLS_KEY");
        return std::process::ExitCode::FAILURE;
    }
    let tls = match (password("CHRONOS_TLS_CERT"), password("CHRONOS_TLS_KEY")) {
        (Some(cert), Some(key)) => match chronos::pg::load_tls(cert.as_ref(), key.as_ref(), client_ca.as_deref()) {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                eprintln!("chronos: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        (None, None) => None,
        _ => {
            eprintln!("chronos: set both CHRONOS_TLS_CERT and CHRONOS_TLS_KEY to enable TLS");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Members talk mutual TLS with the same certificate, key and CA as clients.
    let mut cluster = cluster;
    if let (Some(cluster), Some(cert), Some(key), Some(ca)) =
        (cluster.as_mut(), password("CHRONOS_TLS_CERT"), password("CHRONOS_TLS_KEY"), client_ca.as_deref())
    {
        match chronos::net::InternodeTls::load(cert.as_ref(), key.as_ref(), ca) {
            Ok(tls) => cluster.tls = Some(tls),
            Err(e) => {
                eprintln!("chronos: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    // The certificate chain and key, read once for the sync listener and an edge's client.
    let identity = match (password("CHRONOS_TLS_CERT"), password("CHRONOS_TLS_KEY")) {
        (Some(cert), Some(key)) => match (std::fs::read(&cert), std::fs::read(&key)) {
            (Ok(cert), Ok(key)) => Some((cert, key)),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("chronos: TLS certificate or key: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    // An edge checks the cloud's certificate against CHRONOS_SYNC_CA_CERT (or the members' CA,
    // CHRONOS_TLS_CA_CERT), and presents its own when it has one.
    let sync = match edge_id {
        None => None,
        Some(edge_id) => {
            let sync_ca = password("CHRONOS_SYNC_CA_CERT").map(PathBuf::from).or_else(|| client_ca.clone());
            let tls = match sync_ca.as_deref().map(std::fs::read) {
                None => None,
                Some(Ok(ca)) => Some(chronos::net::ClientTls { ca, identity: identity.clone() }),
                Some(Err(e)) => {
                    eprintln!("chronos: the sync CA certificate: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            let interval = std::time::Duration::from_secs(sync_interval_secs);
            Some(chronos::node::EdgeConfig {
                sync: chronos::sync::worker::SyncConfig::new(edge_id, sync_target, interval),
                tls,
                token: password("CHRONOS_SYNC_TOKEN"),
                max_backlog_bytes: sync_max_backlog_mb.saturating_mul(1 << 20),
            })
        }
    };
    let mqtt = match mqtt_settings(mqtt_url, mqtt_config, mqtt_client_id, mqtt_username) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("chronos: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // HTTPS on the operations endpoint with the same certificate; clients authenticate with
    // the HTTP token, not certificates.
    let http_tls = match (password("CHRONOS_TLS_CERT"), password("CHRONOS_TLS_KEY")) {
        (Some(cert), Some(key)) => match chronos::pg::load_tls(cert.as_ref(), key.as_ref(), None) {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                eprintln!("chronos: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let config = NodeConfig {
        data_dir,
        pg_addr,
        http_addr,
        pg: PgConfig {
            max_connections,
            admin_password: password("CHRONOS_AUTH_TOKEN_ADMIN"),
            readonly_password: password("CHRONOS_AUTH_TOKEN_READONLY"),
            tls,
            require_client_cert: client_ca.is_some(),
            idle_session_timeout,
            idle_in_transaction_timeout,
            authentication_timeout,
            max_authenticating: max_authenticating as usize,
            max_message_bytes: (max_message_mb << 20) as usize,
        },
        http: chronos::http::HttpConfig {
            token: password("CHRONOS_HTTP_TOKEN"),
            passwords_configured: false,
            tls: http_tls,
        },
        audit_log: password("CHRONOS_AUDIT_LOG").map(PathBuf::from),
        cluster,
        snapshot_threshold,
        cache_bytes: cache_mb << 20,
        column_cache_bytes: column_cache_mb.saturating_mul(1 << 20),
        statement_memory_bytes: statement_memory_mb.saturating_mul(1 << 20),
        ttl_interval: std::time::Duration::from_secs(ttl_interval_secs),
        sync,
        sync_secret: password("CHRONOS_SYNC_SECRET"),
        sync_address,
        sync_tombstone_horizon: (sync_tombstone_days > 0)
            .then(|| std::time::Duration::from_secs(sync_tombstone_days.saturating_mul(86_400))),
        sync_identity: identity,
        mqtt,
        ..NodeConfig::default()
    };
    // Statements run on the runtime's threads. Their stacks hold the passes over a statement's
    // trees that cannot grow the stack on the heap (cloning and dropping syntax trees); the
    // recursive passes that can (binding, evaluating) grow by segments of the same size. The
    // depth of those trees is bounded by the parser (`MAX_EXPRESSION_DEPTH`).
    const STATEMENT_STACK_BYTES: usize = 16 << 20;
    recursive::set_stack_allocation_size(STATEMENT_STACK_BYTES);
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(STATEMENT_STACK_BYTES).build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("chronos: cannot start the runtime: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
    let result = runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            let _ = tx.send(true);
        });
        run_node(config, rx).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chronos: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
