//! `chronos`: the ChronosDB server.

use chronos::node::{run_single_node, NodeConfig};
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
    },
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    chronos::pg::parse_duration_ms(text)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("invalid duration \"{text}\": use milliseconds or a unit (ms, s, min, h)"))
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CHRONOS_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let Command::SingleNode {
        data_dir,
        pg_addr,
        http_addr,
        max_connections,
        idle_session_timeout,
        idle_in_transaction_timeout,
    } = cli.command;
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
        },
        ..NodeConfig::default()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
        run_single_node(config, rx).await
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
