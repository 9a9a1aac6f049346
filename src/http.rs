//! The operations endpoint: `GET /health` (JSON), `GET /metrics` (Prometheus text),
//! `POST /raft/transfer-leadership?to=ID`, `POST /raft/members?…` and `POST /backup` (the
//! database as one file, streamed), over HTTP/1.1 (HTTPS when
//! the server has a certificate). Requests are tiny and few, so each connection is read once,
//! answered and closed.
//!
//! Guarding it: the POST endpoints take their own bearer token (`CHRONOS_HTTP_TOKEN`), not a SQL
//! password; requests from browsers (any `Origin` header) are refused, so a web page cannot
//! reach the endpoint through a visitor; connections are bounded in number and in time.

use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How the endpoint is guarded.
#[derive(Clone, Default)]
pub struct HttpConfig {
    /// The bearer token of the POST endpoints. Without one they are open to loopback clients
    /// only, and only while the server has no passwords configured at all.
    pub token: Option<String>,
    /// The server has SQL passwords configured (so it is meant to be guarded).
    pub passwords_configured: bool,
    /// HTTPS with the server's certificate.
    pub tls: Option<pgwire::tokio::TlsAcceptor>,
}

impl std::fmt::Debug for HttpConfig {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("passwords_configured", &self.passwords_configured)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 32;
/// Time to read a request and to write its answer.
const IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the endpoint reports; implemented by the node.
pub trait Status: Send + Sync + 'static {
    /// The `/health` JSON document, and whether the node is healthy (else `/health` answers
    /// 503).
    fn health(&self) -> (bool, String);
    /// The `/metrics` body in Prometheus text format.
    fn metrics_text(&self) -> String;
    /// Starts a leadership transfer to node `to` (may block briefly): Ok, or why not and
    /// which node leads, when known.
    fn transfer_leadership(&self, to: u64) -> Result<(), (String, Option<u64>)>;
    /// Proposes a membership change (may block briefly), answered as a transfer is.
    fn change_membership(&self, change: MemberChange) -> Result<(), (String, Option<u64>)>;
    /// Writes a backup of the database (as of one commit version) to `out`, as storage is
    /// read. Blocks for as long as that takes.
    fn backup(&self, out: &mut dyn std::io::Write) -> Result<(), String>;
}

/// The size of the pieces a backup is sent in.
const BACKUP_CHUNK: usize = 256 * 1024;
/// Pieces of a backup waiting for the client at most (memory stays bounded).
const BACKUP_QUEUE: usize = 8;
/// Time the client may take to read one piece of a backup.
const BACKUP_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Hands what the backup writes to the connection's task, a piece at a time.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BACKUP_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(BACKUP_CHUNK));
        self.tx.blocking_send(piece).map_err(|_| std::io::Error::other("the client went away"))
    }
}

/// Answers `POST /backup`: the backup streamed as the body (the connection's end ends it; the
/// file carries its own length and checksum, so a cut-short transfer is detected), or an
/// error before anything is sent. Returns the status code for the audit log.
async fn stream_backup<S: AsyncWrite + Unpin>(socket: &mut S, status: Arc<dyn Status>) -> (&'static str, String) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(BACKUP_QUEUE);
    let task = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter { tx, buf: Vec::with_capacity(BACKUP_CHUNK) };
        let result = status.backup(&mut writer);
        result.and_then(|()| std::io::Write::flush(&mut writer).map_err(|e| e.to_string()))
    });
    let Some(first) = rx.recv().await else {
        let error = match task.await {
            Ok(Err(e)) => e,
            _ => "the backup failed".to_string(),
        };
        let body = format!("{{\"error\":\"{}\"}}", error.replace('\\', "\\\\").replace('"', "\\\""));
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(IO_TIMEOUT, socket.write_all(response.as_bytes())).await;
        return ("503 Service Unavailable", body);
    };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n";
    let mut piece = Some(first);
    let mut sent = Ok(());
    if tokio::time::timeout(IO_TIMEOUT, socket.write_all(head.as_bytes())).await.map_or(true, |r| r.is_err()) {
        sent = Err("the client went away".to_string());
        piece = None;
    }
    while let Some(data) = piece {
        if tokio::time::timeout(BACKUP_WRITE_TIMEOUT, socket.write_all(&data)).await.map_or(true, |r| r.is_err()) {
            sent = Err("the client went away or stopped reading".to_string());
            break;
        }
        piece = rx.recv().await;
    }
    // Dropping the receiver stops a backup whose client is gone.
    drop(rx);
    let result = match task.await {
        Ok(result) => sent.and(result),
        Err(_) => Err("the backup failed".to_string()),
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, socket.shutdown()).await;
    match result {
        Ok(()) => ("200 OK", String::new()),
        Err(e) => {
            tracing::warn!(error = %e, "backup not completed");
            ("500 Internal Server Error", e)
        }
    }
}

/// A single-server membership change asked for over HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// A new learner and its internode address.
    Add(u64, String),
    Promote(u64),
    Remove(u64),
}

/// The value of `name` in a query string.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

/// Answers a refused or accepted operation.
fn answer(result: Result<(), (String, Option<u64>)>, accepted: String) -> (&'static str, String) {
    match result {
        Ok(()) => ("202 Accepted", accepted),
        Err((error, leader)) => {
            let leader = leader.map_or("null".to_string(), |l| l.to_string());
            let error = error.replace('\\', "\\\\").replace('"', "\\\"");
            ("409 Conflict", format!("{{\"error\":\"{error}\",\"leader\":{leader}}}"))
        }
    }
}

/// Answers `POST /raft/members?add=ID&address=HOST:PORT`, `?promote=ID` or `?remove=ID`.
async fn members(status: Arc<dyn Status>, query: &str) -> (&'static str, String) {
    let id = |name| param(query, name).and_then(|v| v.parse::<u64>().ok());
    let change = match (id("add"), id("promote"), id("remove"), param(query, "address")) {
        (Some(id), None, None, Some(address)) if !address.is_empty() => MemberChange::Add(id, address.to_string()),
        (None, Some(id), None, None) => MemberChange::Promote(id),
        (None, None, Some(id), None) => MemberChange::Remove(id),
        _ => {
            let usage = "expected ?add=<id>&address=<host:port>, ?promote=<id> or ?remove=<id>";
            return ("400 Bad Request", format!("{{\"error\":\"{usage}\"}}"));
        }
    };
    let accepted = match &change {
        MemberChange::Add(id, address) => {
            let address = address.replace(['\\', '"'], "");
            format!("{{\"proposed\":\"add\",\"id\":{id},\"address\":\"{address}\"}}")
        }
        MemberChange::Promote(id) => format!("{{\"proposed\":\"promote\",\"id\":{id}}}"),
        MemberChange::Remove(id) => format!("{{\"proposed\":\"remove\",\"id\":{id}}}"),
    };
    match tokio::task::spawn_blocking(move || status.change_membership(change)).await {
        Ok(result) => answer(result, accepted),
        Err(_) => ("500 Internal Server Error", "{\"error\":\"membership change failed\"}".to_string()),
    }
}

/// Answers `POST /raft/transfer-leadership?to=ID`.
async fn transfer(status: Arc<dyn Status>, query: &str) -> (&'static str, String) {
    let Some(to) = param(query, "to").and_then(|v| v.parse::<u64>().ok()) else {
        return ("400 Bad Request", "{\"error\":\"expected ?to=<node id>\"}".to_string());
    };
    match tokio::task::spawn_blocking(move || status.transfer_leadership(to)).await {
        Ok(result) => answer(result, format!("{{\"transferring_to\":{to}}}")),
        Err(_) => ("500 Internal Server Error", "{\"error\":\"transfer failed\"}".to_string()),
    }
}

/// Largest request head accepted.
const MAX_HEAD: usize = 8192;

/// Reads a request head (up to the blank line), which may arrive in several segments. None if
/// the client closes first or sends more than [`MAX_HEAD`] bytes.
async fn read_head<S: AsyncRead + Unpin>(socket: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

/// The value of header `name` in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Whether a request may change the cluster (the POST endpoints): with a token configured it
/// must carry `Authorization: Bearer <token>`; without one, only a loopback client of a server
/// without passwords may (a development set-up).
fn may_administer(head: &str, peer: std::net::SocketAddr, config: &HttpConfig) -> bool {
    let Some(expected) = config.token.as_deref() else {
        return !config.passwords_configured && peer.ip().is_loopback();
    };
    let given =
        header(head, "authorization").and_then(|t| t.strip_prefix("Bearer ").or_else(|| t.strip_prefix("bearer ")));
    let Some(given) = given else { return false };
    // Compared in time independent of where they differ.
    given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    status: Arc<dyn Status>,
    config: HttpConfig,
    audit: Arc<crate::audit::AuditLog>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, peer)) = accepted else { continue };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "http: too many connections, closing one");
                    continue;
                };
                let status = status.clone();
                let config = config.clone();
                let audit = audit.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    match config.tls.clone() {
                        None => answer_connection(socket, peer, status, &config, &audit).await,
                        Some(tls) => {
                            if let Ok(Ok(socket)) = tokio::time::timeout(IO_TIMEOUT, tls.accept(socket)).await {
                                answer_connection(socket, peer, status, &config, &audit).await;
                            }
                        }
                    }
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Reads one request from `socket`, answers it and closes the connection.
async fn answer_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: S,
    peer: std::net::SocketAddr,
    status: Arc<dyn Status>,
    config: &HttpConfig,
    audit: &crate::audit::AuditLog,
) {
    let Ok(Some(head)) = tokio::time::timeout(IO_TIMEOUT, read_head(&mut socket)).await else { return };
    let request = String::from_utf8_lossy(&head);
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let (code, content_type, body) = if header(&request, "origin").is_some() {
        ("403 Forbidden", "application/json", "{\"error\":\"cross-origin requests are refused\"}".to_string())
    } else {
        match (method, path) {
            ("POST", _) if !may_administer(&request, peer, config) => (
                "401 Unauthorized",
                "application/json",
                "{\"error\":\"send Authorization: Bearer <CHRONOS_HTTP_TOKEN>\"}".to_string(),
            ),
            ("GET", "/health") => match status.health() {
                (true, body) => ("200 OK", "application/json", body),
                (false, body) => ("503 Service Unavailable", "application/json", body),
            },
            ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", status.metrics_text()),
            ("POST", "/raft/transfer-leadership") => {
                let (code, body) = transfer(status, query).await;
                (code, "application/json", body)
            }
            ("POST", "/raft/members") => {
                let (code, body) = members(status, query).await;
                (code, "application/json", body)
            }
            ("POST", "/backup") => {
                let (code, body) = stream_backup(&mut socket, status).await;
                audit_post(audit, peer, path, query, code, &body);
                return;
            }
            ("GET", _) | ("POST", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
            _ => ("405 Method Not Allowed", "text/plain", "method not allowed\n".to_string()),
        }
    };
    // Every request that would change the cluster or read all of it is audited, refused or
    // not.
    if method == "POST" {
        audit_post(audit, peer, path, query, code, &body);
    }
    let response = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        let _ = socket.write_all(response.as_bytes()).await;
        let _ = socket.shutdown().await;
    })
    .await;
}

/// Records a POST request in the audit log.
fn audit_post(
    audit: &crate::audit::AuditLog,
    peer: std::net::SocketAddr,
    path: &str,
    query: &str,
    code: &str,
    body: &str,
) {
    let failure = (!code.starts_with('2')).then(|| (code.to_string(), body.to_string()));
    let what = format!("POST {path}?{query}");
    let action = crate::audit::Action { event: crate::audit::Event::Cluster, what, failure };
    audit.record(&action, "http", Some(peer));
}

#[cfg(test)]
mod tests {
    use super::{may_administer, HttpConfig};

    #[test]
    fn administration_needs_the_token() {
        let (local, remote) = ("127.0.0.1:5000".parse().unwrap(), "10.1.2.3:5000".parse().unwrap());
        let head = |auth: &str| format!("POST /raft/members?remove=3 HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
        let open = HttpConfig::default();
        assert!(may_administer(&head(""), local, &open));
        assert!(!may_administer(&head(""), remote, &open));
        let guarded_without_token = HttpConfig { passwords_configured: true, ..HttpConfig::default() };
        assert!(!may_administer(&head(""), local, &guarded_without_token));
        assert!(!may_administer(&head("Authorization: Bearer anything\r\n"), local, &guarded_without_token));
        let token = HttpConfig { token: Some("s3cret".into()), passwords_configured: true, tls: None };
        assert!(!may_administer(&head(""), local, &token));
        assert!(may_administer(&head("Authorization: Bearer s3cret\r\n"), remote, &token));
        assert!(may_administer(&head("authorization:   Bearer s3cret\r\n"), remote, &token));
        assert!(!may_administer(&head("Authorization: Bearer s3cre\r\n"), remote, &token));
        assert!(!may_administer(&head("Authorization: Bearer s3cretx\r\n"), remote, &token));
        assert!(!may_administer(&head("Authorization: Basic s3cret\r\n"), remote, &token));
    }
}
