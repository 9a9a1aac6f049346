//! The operations endpoint: `GET /health` and `GET /ready` (JSON), `GET /metrics` (Prometheus
//! text), `POST /raft/transfer-leadership?to=ID`, `POST /raft/members?…` and `POST /backup`
//! (the database as one file, streamed), served by hyper over HTTP/1.1 (HTTPS when the server
//! has a certificate). Requests are tiny and few, so each connection carries one request and
//! is closed after its answer.
//!
//! Guarding it: the POST endpoints take their own bearer token (`CHRONOS_HTTP_TOKEN`), not a SQL
//! password; requests from browsers (any `Origin` header) are refused, so a web page cannot
//! reach the endpoint through a visitor; connections are bounded in number and in time.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, ORIGIN};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
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
    /// The `/ready` JSON document, and whether the node can serve reads and writes now (else
    /// `/ready` answers 503).
    fn ready(&self) -> (bool, String);
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

/// A response body: whole, or streamed (a backup).
type Body = BoxBody<Bytes, std::io::Error>;

/// An answer with its whole body.
fn reply(code: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = code;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// What every request of a connection needs.
struct Context {
    status: Arc<dyn Status>,
    config: Arc<HttpConfig>,
    audit: Arc<crate::audit::AuditLog>,
    peer: SocketAddr,
}

/// Answers `POST /backup`: the backup streamed as the body (the file carries its own length and
/// checksum, so a transfer cut short is detected), or an error before anything is sent. The
/// request is audited once the backup has ended.
async fn stream_backup(ctx: &Context, path: &str, query: &str) -> Response<Body> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(BACKUP_QUEUE);
    let status = ctx.status.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter { tx, buf: Vec::with_capacity(BACKUP_CHUNK) };
        let result = status.backup(&mut writer);
        result.and_then(|()| std::io::Write::flush(&mut writer).map_err(|e| e.to_string()))
    });
    let (audit, peer, what) = (ctx.audit.clone(), ctx.peer, (path.to_string(), query.to_string()));
    let Some(first) = rx.recv().await else {
        let error = match task.await {
            Ok(Err(e)) => e,
            _ => "the backup failed".to_string(),
        };
        let body = serde_json::json!({ "error": error }).to_string();
        audit_post(&audit, peer, &what.0, &what.1, StatusCode::SERVICE_UNAVAILABLE, &body);
        return reply(StatusCode::SERVICE_UNAVAILABLE, "application/json", body);
    };
    // hyper takes the pieces from this channel as the client reads them.
    let (body_tx, body_rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    tokio::spawn(async move {
        let mut piece = Some(first);
        let mut sent = Ok(());
        while let Some(data) = piece {
            let frame = Ok(Frame::data(Bytes::from(data)));
            if !matches!(tokio::time::timeout(BACKUP_WRITE_TIMEOUT, body_tx.send(frame)).await, Ok(Ok(()))) {
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
        let code = match &result {
            Ok(()) => StatusCode::OK,
            Err(e) => {
                tracing::warn!(error = %e, "backup not completed");
                // Ends the response unfinished: the client sees a cut-short body.
                let _ = body_tx.send(Err(std::io::Error::other(e.clone()))).await;
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        audit_post(&audit, peer, &what.0, &what.1, code, result.err().as_deref().unwrap_or(""));
    });
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(body_rx));
    let mut response = Response::new(BodyExt::boxed(body));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    response
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
fn answer(result: Result<(), (String, Option<u64>)>, accepted: String) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::ACCEPTED, accepted),
        Err((error, leader)) => {
            let leader = leader.map_or("null".to_string(), |l| l.to_string());
            let error = error.replace('\\', "\\\\").replace('"', "\\\"");
            (StatusCode::CONFLICT, format!("{{\"error\":\"{error}\",\"leader\":{leader}}}"))
        }
    }
}

/// Answers `POST /raft/members?add=ID&address=HOST:PORT`, `?promote=ID` or `?remove=ID`.
async fn members(status: Arc<dyn Status>, query: &str) -> (StatusCode, String) {
    let id = |name| param(query, name).and_then(|v| v.parse::<u64>().ok());
    let change = match (id("add"), id("promote"), id("remove"), param(query, "address")) {
        (Some(id), None, None, Some(address)) if !address.is_empty() => MemberChange::Add(id, address.to_string()),
        (None, Some(id), None, None) => MemberChange::Promote(id),
        (None, None, Some(id), None) => MemberChange::Remove(id),
        _ => {
            let usage = "expected ?add=<id>&address=<host:port>, ?promote=<id> or ?remove=<id>";
            return (StatusCode::BAD_REQUEST, format!("{{\"error\":\"{usage}\"}}"));
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
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "{\"error\":\"membership change failed\"}".to_string()),
    }
}

/// Answers `POST /raft/transfer-leadership?to=ID`.
async fn transfer(status: Arc<dyn Status>, query: &str) -> (StatusCode, String) {
    let Some(to) = param(query, "to").and_then(|v| v.parse::<u64>().ok()) else {
        return (StatusCode::BAD_REQUEST, "{\"error\":\"expected ?to=<node id>\"}".to_string());
    };
    match tokio::task::spawn_blocking(move || status.transfer_leadership(to)).await {
        Ok(result) => answer(result, format!("{{\"transferring_to\":{to}}}")),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "{\"error\":\"transfer failed\"}".to_string()),
    }
}

/// Largest request head accepted (hyper's smallest read buffer); a larger one gets 431.
const MAX_HEAD: usize = 8192;

/// Whether a request may change the cluster (the POST endpoints): with a token configured it
/// must carry `Authorization: Bearer <token>`; without one, only a loopback client of a server
/// without passwords may (a development set-up).
fn may_administer(headers: &HeaderMap, peer: SocketAddr, config: &HttpConfig) -> bool {
    let Some(expected) = config.token.as_deref() else {
        return !config.passwords_configured && peer.ip().is_loopback();
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|t| t.strip_prefix("Bearer ").or_else(|| t.strip_prefix("bearer ")));
    let Some(given) = given else { return false };
    // Compared in time independent of where they differ.
    given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}

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
                let ctx = Context { status: status.clone(), config: config.clone(), audit: audit.clone(), peer };
                tokio::spawn(async move {
                    let _slot = slot;
                    match ctx.config.tls.clone() {
                        None => serve_connection(socket, ctx).await,
                        Some(tls) => {
                            if let Ok(Ok(socket)) = tokio::time::timeout(IO_TIMEOUT, tls.accept(socket)).await {
                                serve_connection(socket, ctx).await;
                            }
                        }
                    }
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Serves one request on a connection: its head must arrive within [`IO_TIMEOUT`] and fit in
/// [`MAX_HEAD`] bytes; the connection is closed after the answer.
async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(socket: S, ctx: Context) {
    let ctx = Arc::new(ctx);
    let service = hyper::service::service_fn(move |request| {
        let ctx = ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(route(request, &ctx).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(IO_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(false)
        .serve_connection(TokioIo::new(socket), service);
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

/// Answers one request.
async fn route<B>(request: Request<B>, ctx: &Context) -> Response<Body> {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let query = request.uri().query().unwrap_or("").to_string();
    let json = "application/json";
    let probe =
        |(ok, body): (bool, String)| (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, json, body);
    let (code, content_type, body) = if request.headers().contains_key(ORIGIN) {
        (StatusCode::FORBIDDEN, json, "{\"error\":\"cross-origin requests are refused\"}".to_string())
    } else {
        match (&method, path.as_str()) {
            (&Method::POST, _) if !may_administer(request.headers(), ctx.peer, &ctx.config) => (
                StatusCode::UNAUTHORIZED,
                json,
                "{\"error\":\"send Authorization: Bearer <CHRONOS_HTTP_TOKEN>\"}".to_string(),
            ),
            (&Method::GET, "/health") => probe(ctx.status.health()),
            (&Method::GET, "/ready") => probe(ctx.status.ready()),
            // Off the async workers: the page reads the data directory's sizes.
            (&Method::GET, "/metrics") => {
                let status = ctx.status.clone();
                match tokio::task::spawn_blocking(move || status.metrics_text()).await {
                    Ok(text) => (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", text),
                    Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "metrics failed\n".to_string()),
                }
            }
            (&Method::POST, "/raft/transfer-leadership") => {
                let (code, body) = transfer(ctx.status.clone(), &query).await;
                (code, json, body)
            }
            (&Method::POST, "/raft/members") => {
                let (code, body) = members(ctx.status.clone(), &query).await;
                (code, json, body)
            }
            (&Method::POST, "/backup") => return stream_backup(ctx, &path, &query).await,
            (&Method::GET, _) | (&Method::POST, _) => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_string()),
            _ => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n".to_string()),
        }
    };
    // Every request that would change the cluster or read all of it is audited, refused or
    // not.
    if method == Method::POST {
        audit_post(&ctx.audit, ctx.peer, &path, &query, code, &body);
    }
    reply(code, content_type, body)
}

/// Records a POST request in the audit log.
fn audit_post(audit: &crate::audit::AuditLog, peer: SocketAddr, path: &str, query: &str, code: StatusCode, body: &str) {
    let failure = (!code.is_success()).then(|| (code.to_string(), body.to_string()));
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
        let head = |auth: &str| {
            let mut headers = hyper::HeaderMap::new();
            if let Some((name, value)) = auth.trim_end().split_once(':') {
                headers.insert(
                    hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.trim().parse().unwrap(),
                );
            }
            headers
        };
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
