//! The PostgreSQL front end: the wire protocol (via the `pgwire` crate) in front of SQL
//! sessions.
//!
//! Each TCP connection gets its own [`Session`]; statements run on tokio's blocking pool so
//! storage I/O never stalls the network tasks. This module owns everything about the wire:
//! startup and authentication ([`auth`]), value encodings ([`encode`]), mapping errors to
//! SQLSTATE-carrying ErrorResponses, cancel requests and the connection limit.

pub mod auth;
mod connection;
mod cork;
pub mod encode;
mod framing;
mod handler;
mod stream;

pub use crate::sql::session::parse_duration_ms;

use crate::sql::Engine;
use pgwire::messages::startup::SecretKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Front-end settings.
#[derive(Clone)]
pub struct PgConfig {
    pub max_connections: usize,
    /// Password of `admin`; None with no password configured means trust on loopback.
    pub admin_password: Option<String>,
    /// Password of `readonly`.
    pub readonly_password: Option<String>,
    /// TLS for SSLRequest; without it the server answers `N` and clients continue in plain text.
    pub tls: Option<pgwire::tokio::TlsAcceptor>,
    /// Client certificates are verified (`CHRONOS_TLS_CA_CERT`): connections without TLS are
    /// refused, since they could not have presented one.
    pub require_client_cert: bool,
    /// Default `idle_session_timeout`: connections idle outside a transaction longer than
    /// this are closed (zero: never).
    pub idle_session_timeout: std::time::Duration,
    /// Default `idle_in_transaction_session_timeout`: connections idle inside a transaction
    /// block longer than this are closed and the transaction rolled back (zero: never).
    pub idle_in_transaction_timeout: std::time::Duration,
    /// Time a connection has from accept to the end of authentication.
    pub authentication_timeout: std::time::Duration,
    /// Connections that may be authenticating at once, apart from `max_connections` (which
    /// counts authenticated sessions): more are refused with 53300 at once.
    pub max_authenticating: usize,
    /// The largest frontend message accepted; a larger one ends the connection (08P01).
    pub max_message_bytes: usize,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            max_connections: 100,
            admin_password: None,
            readonly_password: None,
            tls: None,
            require_client_cert: false,
            idle_session_timeout: std::time::Duration::ZERO,
            idle_in_transaction_timeout: std::time::Duration::ZERO,
            authentication_timeout: std::time::Duration::from_secs(60),
            max_authenticating: 64,
            max_message_bytes: 256 << 20,
        }
    }
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("max_connections", &self.max_connections)
            .field("admin_password", &self.admin_password.as_ref().map(|_| "…"))
            .field("readonly_password", &self.readonly_password.as_ref().map(|_| "…"))
            .field("tls", &self.tls.is_some())
            .field("require_client_cert", &self.require_client_cert)
            .field("idle_session_timeout", &self.idle_session_timeout)
            .field("idle_in_transaction_timeout", &self.idle_in_transaction_timeout)
            .field("authentication_timeout", &self.authentication_timeout)
            .field("max_authenticating", &self.max_authenticating)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

/// Builds the TLS acceptor from PEM files: a certificate chain and its private key, and
/// optionally the CA certificates client certificates must chain to (then every TLS client
/// must present one).
pub fn load_tls(
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
    client_ca_path: Option<&std::path::Path>,
) -> crate::error::Result<pgwire::tokio::TlsAcceptor> {
    use pgwire::tokio::tokio_rustls::rustls;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: &dyn std::fmt::Display| crate::error::Error::InvalidParameter(format!("TLS {what}: {e}"));
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| bad(&format!("certificate {}", cert_path.display()), &e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(&format!("certificate {}", cert_path.display()), &e))?;
    if certs.is_empty() {
        return Err(bad("certificate", &format!("no certificate in {}", cert_path.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| bad(&format!("key {}", key_path.display()), &e))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("configuration", &e))?;
    let builder = match client_ca_path {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let what = format!("client CA {}", ca_path.display());
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_file_iter(ca_path).map_err(|e| bad(&what, &e))? {
                roots.add(ca.map_err(|e| bad(&what, &e))?).map_err(|e| bad(&what, &e))?;
            }
            if roots.is_empty() {
                return Err(bad(&what, &"no certificate in the file"));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| bad(&what, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| bad("configuration", &e))?;
    Ok(pgwire::tokio::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// Running statements' cancel flags by backend pid, for CancelRequest.
#[derive(Default)]
pub struct CancelRegistry {
    entries: Mutex<HashMap<i32, (SecretKey, Arc<AtomicBool>)>>,
    next_pid: std::sync::atomic::AtomicU32,
}

impl CancelRegistry {
    /// A backend pid no live session has: pids count up (wrapping within the positive i32
    /// range) and skip those still registered.
    fn allocate_pid(&self) -> i32 {
        const FIRST: u32 = 1000;
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let n = self.next_pid.fetch_add(1, Ordering::Relaxed) % (i32::MAX as u32 - FIRST);
            let pid = (FIRST + n) as i32;
            if !entries.contains_key(&pid) {
                return pid;
            }
        }
    }

    fn register(&self, pid: i32, key: SecretKey, flag: Arc<AtomicBool>) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).insert(pid, (key, flag));
    }

    fn remove(&self, pid: i32) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
    }

    fn cancel(&self, pid: i32, key: &SecretKey) {
        if let Some((k, flag)) = self.entries.lock().unwrap_or_else(|e| e.into_inner()).get(&pid) {
            if k.eq_value(key) {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Counters of the front end, exported by `/metrics`.
pub struct PgMetrics {
    /// Open connections.
    pub connections: AtomicUsize,
    /// Statements run (simple-protocol statements and extended-protocol executions), by kind.
    statements: prometheus::IntCounterVec,
    /// Their time from the request to the last row produced, by kind.
    durations: prometheus::HistogramVec,
    /// Statements that ended with an error, by SQLSTATE class (its first two characters).
    errors: prometheus::IntCounterVec,
}

/// Upper bounds of the statement latency buckets, in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The kinds statements are counted under.
const STATEMENT_KINDS: [&str; 9] =
    ["select", "insert", "update", "delete", "copy", "ddl", "transaction", "utility", "error"];
/// SQLSTATE classes exported from the start (at 0); others appear when they first occur.
const ERROR_CLASSES: [&str; 10] = ["08", "0A", "22", "23", "25", "40", "42", "53", "54", "57"];

impl Default for PgMetrics {
    fn default() -> Self {
        let metrics = Self::unset();
        // Series exist from the start, so rates and dashboards see zeros, not gaps.
        for kind in STATEMENT_KINDS {
            metrics.statements.with_label_values(&[kind]);
            metrics.durations.with_label_values(&[kind]);
        }
        for class in ERROR_CLASSES {
            metrics.errors.with_label_values(&[class]);
        }
        metrics
    }
}

impl PgMetrics {
    fn unset() -> Self {
        let opts = prometheus::Opts::new;
        PgMetrics {
            connections: AtomicUsize::new(0),
            statements: prometheus::IntCounterVec::new(
                opts("chronos_statements_total", "Statements run, by kind (failed ones as kind=\"error\")."),
                &["kind"],
            )
            .expect("a valid metric"),
            durations: prometheus::HistogramVec::new(
                prometheus::HistogramOpts::new(
                    "chronos_statement_duration_seconds",
                    "Time from a statement's request to its last row, by kind.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["kind"],
            )
            .expect("a valid metric"),
            errors: prometheus::IntCounterVec::new(
                opts("chronos_statement_errors_total", "Statements that failed, by SQLSTATE class."),
                &["class"],
            )
            .expect("a valid metric"),
        }
    }

    /// Counts finished statements: `elapsed` is the time of all of them together (a
    /// multi-statement simple query's time is shared evenly among its statements).
    pub fn record(&self, results: &[crate::error::Result<crate::sql::session::Outcome>], elapsed: std::time::Duration) {
        if results.is_empty() {
            return;
        }
        let each = elapsed.as_secs_f64() / results.len() as f64;
        for result in results {
            let kind = match result {
                Ok(outcome) => statement_kind(outcome),
                Err(e) => {
                    self.errors.with_label_values(&[&e.sqlstate()[..2]]).inc();
                    "error"
                }
            };
            self.statements.with_label_values(&[kind]).inc();
            self.durations.with_label_values(&[kind]).observe(each);
        }
    }

    /// The metric families, for `/metrics`.
    pub fn families(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::core::Collector;
        let mut families = self.statements.collect();
        families.extend(self.durations.collect());
        families.extend(self.errors.collect());
        families
    }
}

/// The kind a statement is counted under, from its command tag.
fn statement_kind(outcome: &crate::sql::session::Outcome) -> &'static str {
    use crate::sql::session::Outcome;
    let tag = match outcome {
        Outcome::Rows { tag, .. } | Outcome::Command { tag } => tag.as_str(),
        Outcome::CopyIn { .. } | Outcome::CopyOut { .. } => return "copy",
    };
    match tag.split(' ').next().unwrap_or("") {
        "SELECT" | "TABLE" | "VALUES" => "select",
        "INSERT" => "insert",
        "UPDATE" => "update",
        "DELETE" => "delete",
        "COPY" => "copy",
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" => "transaction",
        "CREATE" | "DROP" | "ALTER" | "TRUNCATE" | "GRANT" | "REVOKE" | "COMMENT" => "ddl",
        _ => "utility",
    }
}

/// State shared by all connections.
pub struct Shared {
    pub engine: Arc<Engine>,
    pub config: PgConfig,
    pub cancels: CancelRegistry,
    pub metrics: Arc<PgMetrics>,
    /// SCRAM's password source; None when no password is configured (trust on loopback).
    pub passwords: Option<Arc<auth::Passwords>>,
    pub audit: Arc<crate::audit::AuditLog>,
}

/// Serves the PostgreSQL protocol on `listener` until `shutdown` turns true, then waits for
/// open connections to finish their current statement.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    config: PgConfig,
    metrics: Arc<PgMetrics>,
    audit: Arc<crate::audit::AuditLog>,
    mut shutdown: watch::Receiver<bool>,
) {
    let authenticating = Arc::new(tokio::sync::Semaphore::new(config.max_authenticating));
    let passwords =
        auth::Passwords::new(config.admin_password.as_deref(), config.readonly_password.as_deref(), engine.clone());
    let shared = Arc::new(Shared { engine, config, cancels: CancelRegistry::default(), metrics, passwords, audit });
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((mut socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let Ok(permit) = authenticating.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "refused a connection: too many connections are authenticating");
                        tasks.spawn(async move { refuse(&mut socket, "53300", "too many connections are authenticating").await });
                        continue;
                    };
                    let handlers = handler::ConnectionHandlers::new(shared.clone(), peer);
                    let activity = handlers.activity();
                    let mut stop = shutdown.clone();
                    let tls = shared.config.tls.clone();
                    let limits = connection::Limits {
                        authentication_timeout: shared.config.authentication_timeout,
                        max_message_bytes: shared.config.max_message_bytes,
                        sasl: shared.passwords.is_some(),
                        authenticating: Some(permit),
                    };
                    tasks.spawn(async move {
                        // Malformed messages are refused by the framing layer; a panic in a
                        // handler all the same closes this connection, and only it.
                        let connection = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
                            connection::serve(socket, tls, handlers, limits),
                        ));
                        tokio::pin!(connection);
                        tokio::select! {
                            result = &mut connection => match result {
                                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended with an I/O error"),
                                Err(_) => tracing::warn!(%peer, "closed a connection after a malformed message"),
                                Ok(Ok(())) => {}
                            },
                            _ = idle_expired(&activity) => {
                                tracing::info!(%peer, limit = activity.idle_reason(), "closing an idle connection");
                            }
                            _ = stop.changed() => {
                                // Let a running statement finish, then close the connection.
                                while activity.busy() {
                                    tokio::select! {
                                        _ = &mut connection => return,
                                        _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
                                    }
                                }
                            }
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            _ = shutdown.changed() => break,
        }
        while tasks.try_join_next().is_some() {}
    }
    tracing::info!(open = tasks.len(), "pg front end stopped accepting; draining connections");
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(std::time::Duration::from_secs(10), drain).await.is_err() {
        tracing::warn!("connections still open after 10 s; closing them");
        tasks.abort_all();
    }
}

/// Completes once the connection has been idle past its limit.
async fn idle_expired(activity: &handler::Activity) {
    loop {
        let wait = match activity.until_idle_expiry() {
            Some(left) if left.is_zero() => return,
            // Re-check at least every second: the limit changes with SET and with the
            // transaction state.
            Some(left) => left.min(std::time::Duration::from_secs(1)),
            None => std::time::Duration::from_secs(1),
        };
        tokio::time::sleep(wait).await;
    }
}

/// Sends a FATAL ErrorResponse to a connection that has said nothing yet, and closes it. (A
/// client that opens with SSLRequest reads it as the refusal it is, as from PostgreSQL.)
async fn refuse(socket: &mut tokio::net::TcpStream, code: &str, message: &str) {
    use tokio::io::AsyncWriteExt;
    let mut body = Vec::new();
    for (field, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', message)] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = vec![b'E'];
    packet.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    packet.extend_from_slice(&body);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), socket.write_all(&packet)).await;
    let _ = socket.shutdown().await;
}

/// True for loopback addresses.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
