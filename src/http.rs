//! The operations endpoint: `GET /health` (JSON), `GET /metrics` (Prometheus text),
//! `POST /raft/transfer-leadership?to=ID` and `POST /raft/members?…`, served over plain HTTP/1.1. Requests are tiny and
//! few, so each connection is read once, answered and closed.

use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the endpoint reports; implemented by the node.
pub trait Status: Send + Sync + 'static {
    /// The `/health` JSON document.
    fn health_json(&self) -> String;
    /// The `/metrics` body in Prometheus text format.
    fn metrics_text(&self) -> String;
    /// Starts a leadership transfer to node `to` (may block briefly): Ok, or why not and
    /// which node leads, when known.
    fn transfer_leadership(&self, to: u64) -> Result<(), (String, Option<u64>)>;
    /// Proposes a membership change (may block briefly), answered as a transfer is.
    fn change_membership(&self, change: MemberChange) -> Result<(), (String, Option<u64>)>;
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
async fn read_head(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
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

/// Whether a request may change the cluster (the POST endpoints): with an admin password
/// configured it must carry `Authorization: Bearer <password>`; without one, only loopback
/// clients may, as for the PostgreSQL port.
fn may_administer(head: &str, peer: std::net::SocketAddr, admin_password: Option<&str>) -> bool {
    let Some(password) = admin_password else { return peer.ip().is_loopback() };
    let token = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("authorization").then(|| value.trim())
    });
    let Some(token) = token.and_then(|t| t.strip_prefix("Bearer ").or_else(|| t.strip_prefix("bearer "))) else {
        return false;
    };
    // Compared in time independent of where they differ.
    token.len() == password.len() && token.bytes().zip(password.bytes()).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Serves until `shutdown` turns true. `admin_password` guards the POST endpoints (see
/// [`may_administer`]).
pub async fn serve(
    listener: TcpListener,
    status: Arc<dyn Status>,
    admin_password: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let admin_password: Arc<Option<String>> = Arc::new(admin_password);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut socket, peer)) = accepted else { continue };
                let status = status.clone();
                let admin_password = admin_password.clone();
                tokio::spawn(async move {
                    let read = tokio::time::timeout(std::time::Duration::from_secs(5), read_head(&mut socket)).await;
                    let Ok(Some(head)) = read else { return };
                    let request = String::from_utf8_lossy(&head);
                    let mut parts = request.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let (path, query) = path.split_once('?').unwrap_or((path, ""));
                    let allowed = method != "POST" || may_administer(&request, peer, admin_password.as_deref());
                    let (code, content_type, body) = match (method, path) {
                        ("POST", _) if !allowed => (
                            "401 Unauthorized",
                            "application/json",
                            "{\"error\":\"send Authorization: Bearer <admin password>\"}".to_string(),
                        ),
                        ("GET", "/health") => ("200 OK", "application/json", status.health_json()),
                        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", status.metrics_text()),
                        ("POST", "/raft/transfer-leadership") => {
                            let (code, body) = transfer(status, query).await;
                            (code, "application/json", body)
                        }
                        ("POST", "/raft/members") => {
                            let (code, body) = members(status, query).await;
                            (code, "application/json", body)
                        }
                        ("GET", _) | ("POST", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
                        _ => ("405 Method Not Allowed", "text/plain", "method not allowed\n".to_string()),
                    };
                    let response = format!(
                        "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::may_administer;

    #[test]
    fn administration_needs_the_admin_password_or_loopback() {
        let (local, remote) = ("127.0.0.1:5000".parse().unwrap(), "10.1.2.3:5000".parse().unwrap());
        let head = |auth: &str| format!("POST /raft/members?remove=3 HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
        assert!(may_administer(&head(""), local, None));
        assert!(!may_administer(&head(""), remote, None));
        assert!(!may_administer(&head(""), local, Some("s3cret")));
        assert!(may_administer(&head("Authorization: Bearer s3cret\r\n"), remote, Some("s3cret")));
        assert!(may_administer(&head("authorization:   Bearer s3cret\r\n"), remote, Some("s3cret")));
        assert!(!may_administer(&head("Authorization: Bearer s3cre\r\n"), remote, Some("s3cret")));
        assert!(!may_administer(&head("Authorization: Bearer s3cretx\r\n"), remote, Some("s3cret")));
        assert!(!may_administer(&head("Authorization: Basic s3cret\r\n"), remote, Some("s3cret")));
    }
}
