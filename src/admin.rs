//! The client side of a node's operations endpoint (`crate::http`), for the operator's tools:
//! `chronos-admin` and `chronos snapshot create`. HTTP/1.1, or HTTPS trusting a given CA; one
//! request per connection, as the endpoint serves them.

use crate::error::{Error, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Time to connect and to read an answer's head.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A member's operations endpoint: `http://host:port`, `https://host:port` or `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        let (https, rest) = match text.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            Some((scheme, _)) => return Err(format!("\"{text}\": unknown scheme {scheme} (use http or https)")),
            None => (false, text),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("\"{text}\": expected host:port"))?;
        let port = port.parse().map_err(|_| format!("\"{text}\": \"{port}\" is not a port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("\"{text}\": no host"));
        }
        Ok(Endpoint { https, host: host.to_string(), port })
    }
}

/// An answer: its status code and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Io(format!("the answer is not JSON: {e}")))
    }
}

/// Talks to operations endpoints with a bearer token (`CHRONOS_HTTP_TOKEN` on the server).
#[derive(Clone)]
pub struct Client {
    token: Option<String>,
    tls: Option<tokio_rustls::TlsConnector>,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Client {
    /// A client sending `token`; HTTPS endpoints are checked against the CA certificates in
    /// the PEM file `ca` (the system's roots without one).
    pub fn new(token: Option<String>, ca: Option<&str>) -> Result<Client> {
        let config = crate::net::tls_client_config(ca, None, None).map_err(Error::InvalidParameter)?;
        Ok(Client { token, tls: Some(tokio_rustls::TlsConnector::from(Arc::new(config))) })
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<Box<dyn Stream>> {
        let unreachable = |e: String| Error::Io(format!("cannot reach {endpoint}: {e}"));
        let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((endpoint.host.as_str(), endpoint.port)))
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        if !endpoint.https {
            return Ok(Box::new(tcp));
        }
        let Some(tls) = &self.tls else { return Err(unreachable("no TLS configuration".into())) };
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(endpoint.host.clone())
            .map_err(|e| unreachable(e.to_string()))?;
        let stream = tokio::time::timeout(TIMEOUT, tls.connect(name, tcp))
            .await
            .map_err(|_| unreachable("TLS handshake timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Box::new(stream))
    }

    /// Sends a request with an empty body; the answer, its body still to be read.
    async fn send(&self, endpoint: &Endpoint, method: &str, target: &str) -> Result<Response<Incoming>> {
        let stream = self.connect(endpoint).await?;
        let failed = |e: hyper::Error| Error::Io(format!("{endpoint}: {e}"));
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(failed)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request =
            Request::builder().method(method).uri(target).header(HOST, format!("{}:{}", endpoint.host, endpoint.port));
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Empty::<Bytes>::new()).map_err(|e| Error::InvalidParameter(e.to_string()))?;
        tokio::time::timeout(TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| Error::Io(format!("{endpoint}: no answer")))?
            .map_err(failed)
    }

    /// `method target` with an empty body; the whole answer.
    pub async fn request(&self, endpoint: &Endpoint, method: &str, target: &str) -> Result<Answer> {
        let response = self.send(endpoint, method, target).await?;
        let status = response.status().as_u16();
        let body = tokio::time::timeout(TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| Error::Io(format!("{endpoint}: the answer stalled")))?
            .map_err(|e| Error::Io(format!("{endpoint}: {e}")))?
            .to_bytes()
            .to_vec();
        Ok(Answer { status, body })
    }

    /// `POST /backup`, the body written to `out` as it arrives (`progress` is told the bytes
    /// so far). An error answer is returned whole instead; Ok(None) once the body is written.
    pub async fn download_backup(
        &self,
        endpoint: &Endpoint,
        out: &mut (impl AsyncWrite + Unpin),
        progress: &mut dyn FnMut(u64),
    ) -> Result<Option<Answer>> {
        let response = self.send(endpoint, "POST", "/backup").await?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if status != 200 {
            let text = tokio::time::timeout(TIMEOUT, body.collect()).await;
            let body = text.ok().and_then(|r| r.ok()).map(|b| b.to_bytes().to_vec()).unwrap_or_default();
            return Ok(Some(Answer { status, body }));
        }
        let failed = |e: std::io::Error| Error::Io(format!("{endpoint}: {e}"));
        let mut total = 0u64;
        // The server sends pieces as it reads storage; a minute without one is a stall.
        while let Some(frame) = tokio::time::timeout(Duration::from_secs(60), body.frame())
            .await
            .map_err(|_| Error::Io(format!("{endpoint}: the backup stalled")))?
        {
            let frame = frame.map_err(|e| Error::Io(format!("{endpoint}: the backup was cut short: {e}")))?;
            if let Ok(data) = frame.into_data() {
                out.write_all(&data).await.map_err(failed)?;
                total += data.len() as u64;
                progress(total);
            }
        }
        out.flush().await.map_err(failed)?;
        Ok(None)
    }
}

/// Downloads a backup from `endpoint` into `output` (through a temporary file beside it,
/// renamed once the backup is verified, so an interrupted or failed download leaves nothing
/// behind) and returns its header.
pub async fn backup_to_file(
    client: &Client,
    endpoint: &Endpoint,
    output: &std::path::Path,
    progress: &mut dyn FnMut(u64),
) -> Result<crate::node::backup::BackupHeader> {
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let result = async {
        let file =
            tokio::fs::File::create(&partial).await.map_err(|e| Error::Io(format!("{}: {e}", partial.display())))?;
        let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
        if let Some(answer) = client.download_backup(endpoint, &mut file, progress).await? {
            return Err(refusal(endpoint, &answer));
        }
        file.into_inner().sync_all().await?;
        let path = partial.clone();
        let verified = tokio::task::spawn_blocking(move || crate::node::backup::BackupFile::open(&path))
            .await
            .map_err(|_| Error::Internal("verifying the backup failed".into()))?;
        let backup = verified.map_err(|e| {
            Error::Io(format!("the backup from {endpoint} is incomplete or damaged ({e}); see the server's log"))
        })?;
        std::fs::rename(&partial, output).map_err(|e| Error::Io(format!("{}: {e}", output.display())))?;
        Ok(backup.header)
    };
    let mut result = Box::pin(result);
    let result = tokio::select! {
        result = &mut result => result,
        _ = tokio::signal::ctrl_c() => Err(Error::Io("interrupted".into())),
    };
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// The error an endpoint answered with.
pub fn refusal(endpoint: &Endpoint, answer: &Answer) -> Error {
    let text = String::from_utf8_lossy(&answer.body);
    let detail = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string());
    Error::InvalidParameter(format!("{endpoint} answered {}: {detail}", answer.status))
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn endpoints_parse() {
        let e: Endpoint = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(e, Endpoint { https: false, host: "127.0.0.1".into(), port: 8080 });
        let e: Endpoint = "https://db.example:9000/".parse().unwrap();
        assert_eq!(e, Endpoint { https: true, host: "db.example".into(), port: 9000 });
        assert_eq!(e.to_string(), "https://db.example:9000");
        let e: Endpoint = "http://[::1]:80".parse().unwrap();
        assert_eq!(e.host, "::1");
        assert!("ftp://x:1".parse::<Endpoint>().is_err());
        assert!("nohost".parse::<Endpoint>().is_err());
        assert!("x:port".parse::<Endpoint>().is_err());
    }
}

/// `restore`'s arguments, the same for `chronos snapshot restore` and `chronos-admin restore`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The data directory to build.
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
    /// The backup file.
    #[arg(long)]
    pub input: std::path::PathBuf,
    /// Replace what is in a non-empty data directory.
    #[arg(long)]
    pub force: bool,
}

impl RestoreArgs {
    /// Verifies the backup and builds the data directory from it.
    pub fn run(&self) -> Result<crate::node::backup::BackupHeader> {
        let backup = crate::node::backup::BackupFile::open(&self.input)?;
        crate::node::backup::restore(&backup, &self.data_dir, self.force)?;
        Ok(backup.header)
    }
}
