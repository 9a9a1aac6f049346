//! Internode networking: the tonic gRPC services of `proto/chronos.proto`.
//!
//! [`GrpcTransport`] is the replica's [`Transport`]: one long-lived `Raft.Send` stream to each
//! peer (reconnected with backoff; messages are dropped while a peer is unreachable, which
//! Raft tolerates), and `Cluster` calls to the leader for forwarded commits and read indexes.
//! [`serve`] answers both services for the local replica.

mod convert;

/// Code generated from `proto/chronos.proto`.
pub mod proto {
    tonic::include_proto!("chronos.v1");
}

use crate::error::{Error, Result};
use crate::mvcc::{CommitRequest, Version};
use crate::node::replica::{Replica, Transport};
use crate::raft::{self, NodeId};
use proto::cluster_client::ClusterClient;
use proto::cluster_server::{Cluster, ClusterServer};
use proto::raft_client::RaftClient;
use proto::raft_server::{Raft, RaftServer};
use proto::sync_client::SyncClient;
use proto::sync_server::{Sync as SyncService, SyncServer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tonic::transport::{Channel, Endpoint};

/// Messages queued for a peer before new ones are dropped.
const PEER_QUEUE: usize = 4096;
/// Largest internode message accepted: an Append carrying one very large batch (a big COPY
/// is one transaction, hence one entry).
const MAX_MESSAGE: usize = 1 << 30;
/// Time limit of a forwarded request.
const RPC_TIMEOUT: Duration = Duration::from_secs(15);

struct Peer {
    messages: mpsc::Sender<proto::RaftMessage>,
    channel: Channel,
}

/// Mutual TLS between members (PEM): this node's certificate chain and key, which it presents
/// both as a server and as a client, and the CA certificates every member's certificate must
/// chain to. A peer's certificate must also name the host it is reached at (a DNS or IP
/// subject alternative name), as for any TLS server.
#[derive(Clone)]
pub struct InternodeTls {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub ca: Vec<u8>,
}

impl std::fmt::Debug for InternodeTls {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternodeTls { .. }")
    }
}

impl InternodeTls {
    /// Reads the three PEM files.
    pub fn load(cert: &std::path::Path, key: &std::path::Path, ca: &std::path::Path) -> Result<InternodeTls> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| Error::InvalidParameter(format!("TLS file {}: {e}", path.display())))
        };
        Ok(InternodeTls { cert: read(cert)?, key: read(key)?, ca: read(ca)? })
    }

    fn identity(&self) -> tonic::transport::Identity {
        tonic::transport::Identity::from_pem(&self.cert, &self.key)
    }

    fn client_config(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new().ca_certificate(self.ca()).identity(self.identity())
    }

    fn ca(&self) -> tonic::transport::Certificate {
        tonic::transport::Certificate::from_pem(&self.ca)
    }
}

/// TLS of a client of the sync service: the CA the cloud's certificate must chain to, and
/// the client's own certificate chain and key, if it presents one (PEM).
#[derive(Clone)]
pub struct ClientTls {
    pub ca: Vec<u8>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// A TLS client configuration (rustls on ring) trusting the CA certificates in the PEM file
/// `ca` (the system's roots without one) and presenting the certificate chain `cert` with its
/// key `key` when given. The error names the file at fault.
pub fn tls_client_config(
    ca: Option<&str>,
    cert: Option<&str>,
    key: Option<&str>,
) -> std::result::Result<tokio_rustls::rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let bad = |what: &str, e: String| format!("{what}: {e}");
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(path, e.to_string()))? {
                roots.add(cert.map_err(|e| bad(path, e.to_string()))?).map_err(|e| bad(path, e.to_string()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("setup", e.to_string()))?
        .with_root_certificates(roots);
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| bad(cert, e.to_string()))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| bad("client certificate", e.to_string()))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err("a client certificate and its key go together".into()),
    }
}

impl std::fmt::Debug for ClientTls {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls { .. }")
    }
}

impl ClientTls {
    fn config(&self) -> tonic::transport::ClientTlsConfig {
        let config =
            tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(&self.ca));
        match &self.identity {
            Some((cert, key)) => config.identity(tonic::transport::Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

/// gRPC connections to the other members.
pub struct GrpcTransport {
    /// The members this node can reach, with their addresses.
    peers: std::sync::RwLock<BTreeMap<NodeId, (String, Peer)>>,
    runtime: tokio::runtime::Handle,
    tls: Option<InternodeTls>,
}

impl GrpcTransport {
    /// Connects (lazily) to `peers` (id → `host:port`), starting one sender task per peer on
    /// the current tokio runtime; over mutual TLS when `tls` is given.
    pub fn start(peers: &BTreeMap<NodeId, String>, tls: Option<&InternodeTls>) -> Result<Arc<GrpcTransport>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| Error::Internal(e.to_string()))?;
        let transport = GrpcTransport { peers: Default::default(), runtime, tls: tls.cloned() };
        for (&id, address) in peers {
            transport.connect(id, address)?;
        }
        Ok(Arc::new(transport))
    }

    /// Starts talking to member `id` at `address` (replacing what it had for `id`).
    fn connect(&self, id: NodeId, address: &str) -> Result<()> {
        // Callable from any thread (the Raft driver adds members): the channel needs the
        // runtime's context.
        let _runtime = self.runtime.enter();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let channel = endpoint(format!("{scheme}://{address}"), self.tls.as_ref().map(InternodeTls::client_config))
            .map_err(|e| Error::InvalidParameter(format!("peer {id} address {address}: {e}")))?
            .connect_lazy();
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        self.runtime.spawn(send_loop(id, channel.clone(), rx));
        let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
        peers.insert(id, (address.to_string(), Peer { messages: tx, channel }));
        Ok(())
    }

    fn channel(&self, id: NodeId) -> Result<Channel> {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
        let (_, peer) = peers.get(&id).ok_or_else(|| Error::Io(format!("node {id} is not a known peer")))?;
        Ok(peer.channel.clone())
    }
}

/// A gRPC endpoint for `url` with the internode timeouts and keep-alives; over mutual TLS
/// with `tls`.
fn endpoint(
    url: String,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> std::result::Result<Endpoint, tonic::transport::Error> {
    let mut endpoint = Endpoint::from_shared(url)?;
    if let Some(config) = tls {
        endpoint = endpoint.tls_config(config)?;
    }
    Ok(endpoint
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5)))
}

/// Keeps a `Raft.Send` stream open to one peer and feeds it from `queue`.
async fn send_loop(id: NodeId, channel: Channel, mut queue: mpsc::Receiver<proto::RaftMessage>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        // Wait for something to send before (re)connecting.
        let Some(first) = queue.recv().await else { return };
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let _ = tx.try_send(first);
        let mut client = RaftClient::new(channel.clone());
        let call = tokio::spawn(async move { client.send(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
        loop {
            tokio::select! {
                message = queue.recv() => match message {
                    Some(m) => {
                        if tx.send(m).await.is_err() {
                            break;
                        }
                    }
                    None => return,
                },
                _ = tx.closed() => break,
            }
        }
        drop(tx);
        match call.await {
            Ok(Err(status)) => tracing::debug!(peer = id, %status, "raft stream ended"),
            Err(e) => tracing::debug!(peer = id, error = %e, "raft stream task failed"),
            Ok(Ok(_)) => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

impl Transport for GrpcTransport {
    fn send(&self, message: raft::Message) {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
        if let Some((_, peer)) = peers.get(&message.to) {
            // A full queue means the peer is not keeping up or is down: drop, Raft resends.
            let _ = peer.messages.try_send(convert::message_to_proto(message));
        }
    }

    fn commit(&self, leader: NodeId, request: &CommitRequest) -> Result<Version> {
        let request = convert::commit_to_proto(request);
        self.ask(
            leader,
            "commit",
            false,
            Error::CommitUnknown,
            |mut client| async move { client.commit(request).await },
        )
    }

    fn read_index(&self, leader: NodeId) -> Result<Version> {
        self.ask(leader, "read index", true, Error::Io, |mut client| async move {
            client.read_index(proto::ReadIndexRequest {}).await
        })
    }

    fn set_peer(&self, id: NodeId, address: Option<&str>) -> Result<()> {
        match address {
            None => {
                // Dropping the queue ends the peer's sender task.
                self.peers.write().unwrap_or_else(|e| e.into_inner()).remove(&id);
                Ok(())
            }
            Some(address) => {
                let known = self.peers.read().unwrap_or_else(|e| e.into_inner()).get(&id).map(|(a, _)| a.clone());
                if known.as_deref() == Some(address) {
                    return Ok(());
                }
                self.connect(id, address)
            }
        }
    }

    fn peers(&self) -> Vec<NodeId> {
        self.peers.read().unwrap_or_else(|e| e.into_inner()).keys().copied().collect()
    }
}

impl GrpcTransport {
    /// Calls the `Cluster` service of `leader` from a blocking thread. A call that never
    /// reached the node (see [`never_sent`]) is treated as "not the leader" (nothing was done:
    /// ask again), and so is any unavailability when `repeatable` (a read index may be asked
    /// twice); a timeout or another transport failure becomes `failed` (for a commit: outcome
    /// unknown, since a commit cut off after it was sent may have been applied).
    fn ask<F, Fut>(
        &self,
        leader: NodeId,
        what: &str,
        repeatable: bool,
        failed: fn(String) -> Error,
        call: F,
    ) -> Result<Version>
    where
        F: FnOnce(ClusterClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<proto::VersionResult>, tonic::Status>>,
    {
        let client = ClusterClient::new(self.channel(leader)?);
        let reply = self.runtime.block_on(async move { tokio::time::timeout(RPC_TIMEOUT, call(client)).await });
        match reply {
            Err(_) => Err(failed(format!("node {leader} did not answer the {what} in time"))),
            Ok(Err(status)) if never_sent(&status) || (repeatable && status.code() == tonic::Code::Unavailable) => {
                Err(Error::NotLeader(None))
            }
            Ok(Err(status)) => Err(failed(format!("{what} on node {leader}: {status}"))),
            Ok(Ok(response)) => match response.into_inner().result {
                Some(proto::version_result::Result::Version(v)) => Ok(v),
                Some(proto::version_result::Result::Failure(f)) => Err(convert::failure_to_error(f)),
                None => Err(failed(format!("empty {what} response"))),
            },
        }
    }
}

/// What a member answers while its replica is not set up yet.
const NODE_STARTING: &str = "the node is starting";

/// Whether a call failed before its request reached the node: no connection could be made
/// (tonic marks those with [`tonic::ConnectError`] in the status's sources, TLS handshakes
/// included), or the node's services were not up yet. A call cut off later (a connection
/// reset, an HTTP/2 keep-alive timeout) may have been carried out.
fn never_sent(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    if status.message() == NODE_STARTING {
        return true;
    }
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The services of this node, answering for `replica` once it is set.
#[derive(Clone)]
struct Services {
    replica: Arc<OnceLock<Arc<Replica>>>,
    sync: SyncSettings,
}

/// How a node takes pushes from edges.
#[derive(Clone, Default)]
pub struct SyncSettings {
    /// The secret edges' tokens are checked against; without it any edge id is taken.
    pub secret: Option<Arc<Vec<u8>>>,
    pub metrics: Arc<crate::sync::cloud::Metrics>,
}

impl Services {
    fn replica(&self) -> std::result::Result<Arc<Replica>, tonic::Status> {
        self.replica.get().cloned().ok_or_else(|| tonic::Status::unavailable(NODE_STARTING))
    }
}

#[tonic::async_trait]
impl Raft for Services {
    async fn send(
        &self,
        request: tonic::Request<tonic::Streaming<proto::RaftMessage>>,
    ) -> std::result::Result<tonic::Response<proto::Ack>, tonic::Status> {
        let replica = self.replica()?;
        let peer = request.remote_addr();
        let mut stream = request.into_inner();
        while let Some(message) = stream.message().await? {
            match convert::message_from_proto(message).and_then(|m| replica.receive(m)) {
                Ok(()) => {}
                Err(e) => tracing::warn!(peer = ?peer, error = %e, "raft message refused"),
            }
        }
        Ok(tonic::Response::new(proto::Ack {}))
    }
}

#[tonic::async_trait]
impl Cluster for Services {
    async fn commit(
        &self,
        request: tonic::Request<proto::CommitRequest>,
    ) -> std::result::Result<tonic::Response<proto::VersionResult>, tonic::Status> {
        let replica = self.replica()?;
        let request = convert::commit_from_proto(request.into_inner());
        answer(move || replica.commit_forwarded(&request)).await
    }

    async fn read_index(
        &self,
        _: tonic::Request<proto::ReadIndexRequest>,
    ) -> std::result::Result<tonic::Response<proto::VersionResult>, tonic::Status> {
        let replica = self.replica()?;
        answer(move || replica.read_index_forwarded()).await
    }
}

#[tonic::async_trait]
impl SyncService for Services {
    async fn push(
        &self,
        request: tonic::Request<proto::PushRequest>,
    ) -> std::result::Result<tonic::Response<proto::PushResult>, tonic::Status> {
        let replica = self.replica()?;
        let request = request.into_inner();
        let token = request.token.clone();
        let push = convert::push_from_proto(request);
        let (secret, metrics) = (self.sync.secret.clone(), self.sync.metrics.clone());
        let result = on_blocking_pool(move || {
            let applied = match secret {
                Some(secret) => crate::sync::check_token(&secret, &push.edge, &token).inspect_err(|_| {
                    metrics.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }),
                None => Ok(()),
            }
            .and_then(|()| crate::sync::cloud::apply(&replica.mvcc()?, &push, &metrics));
            applied.inspect_err(|e| tracing::warn!(edge = %push.edge, error = %e, "sync push refused"))
        })
        .await?;
        Ok(tonic::Response::new(convert::push_result_to_proto(result)))
    }
}

/// Pushes an edge's changes to cloud members over gRPC.
pub struct GrpcUplink {
    targets: Vec<(String, Channel)>,
    token: Option<String>,
}

impl GrpcUplink {
    /// Channels (connected lazily) to each target, `http://host:port` or `https://…`; with
    /// `tls`, the edge checks the cloud's certificate against its CA (and presents its own if
    /// it has one). `token` proves the edge's id to a cloud that has a sync secret.
    pub fn new(targets: &[String], tls: Option<&ClientTls>, token: Option<String>) -> Result<GrpcUplink> {
        let mut channels = Vec::new();
        for target in targets {
            let endpoint = endpoint(target.clone(), tls.map(ClientTls::config))
                .map_err(|e| Error::InvalidParameter(format!("sync target {target}: {e}")))?;
            channels.push((target.clone(), endpoint.connect_lazy()));
        }
        Ok(GrpcUplink { targets: channels, token })
    }
}

#[tonic::async_trait]
impl crate::sync::worker::Uplink for GrpcUplink {
    async fn push(&self, target: usize, push: crate::sync::Push) -> Result<crate::sync::Ack> {
        let (name, channel) = &self.targets[target % self.targets.len()];
        let mut client = SyncClient::new(channel.clone()).max_encoding_message_size(MAX_MESSAGE);
        let mut request = convert::push_to_proto(push);
        request.token = self.token.clone().unwrap_or_default();
        match tokio::time::timeout(RPC_TIMEOUT, client.push(request)).await {
            Err(_) => Err(Error::Io(format!("{name} did not answer the push in time"))),
            Ok(Err(status)) => Err(Error::Io(format!("could not push to {name}: {}", status.message()))),
            Ok(Ok(response)) => convert::push_result_from_proto(response.into_inner()),
        }
    }
}

/// Runs `work` on the blocking pool (it waits for the log).
async fn on_blocking_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, tonic::Status> {
    tokio::task::spawn_blocking(work).await.map_err(|e| tonic::Status::internal(e.to_string()))
}

/// Runs a forwarded request on the blocking pool (it waits for the log) and wraps its result.
async fn answer(
    work: impl FnOnce() -> Result<Version> + Send + 'static,
) -> std::result::Result<tonic::Response<proto::VersionResult>, tonic::Status> {
    let result = match on_blocking_pool(work).await? {
        Ok(version) => proto::version_result::Result::Version(version),
        Err(e) => proto::version_result::Result::Failure(convert::error_to_failure(&e)),
    };
    Ok(tonic::Response::new(proto::VersionResult { result: Some(result) }))
}

/// The internode server: bound before the replica starts (so peers can connect at once),
/// answering once `replica` is set, until `shutdown` turns true.
pub struct Server {
    replica: Arc<OnceLock<Arc<Replica>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `address` and starts serving; with `tls`, only to members presenting a
    /// certificate signed by its CA.
    pub async fn bind(
        address: SocketAddr,
        tls: Option<&InternodeTls>,
        sync: SyncSettings,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Server> {
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            let config = tonic::transport::ServerTlsConfig::new().identity(tls.identity()).client_ca_root(tls.ca());
            builder = builder.tls_config(config).map_err(|e| Error::InvalidParameter(format!("internode TLS: {e}")))?;
        }
        let listener = tokio::net::TcpListener::bind(address).await?;
        let replica = Arc::new(OnceLock::new());
        let services = Services { replica: replica.clone(), sync };
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            let result = builder
                .tcp_nodelay(true)
                .add_service(RaftServer::new(services.clone()).max_decoding_message_size(MAX_MESSAGE))
                .add_service(ClusterServer::new(services.clone()).max_decoding_message_size(MAX_MESSAGE))
                .add_service(SyncServer::new(services).max_decoding_message_size(MAX_MESSAGE))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = shutdown.changed().await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "internode server failed");
            }
        });
        Ok(Server { replica, task })
    }

    /// Starts answering for `replica`.
    pub fn set_replica(&self, replica: Arc<Replica>) {
        let _ = self.replica.set(replica);
    }

    /// Waits for the server to stop. Peers' Raft streams never end on their own, so after a
    /// short grace period the remaining connections are cut.
    pub async fn stopped(self) {
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(1), &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// A listener of the sync service alone, for edges (`--sync-address`): they reach no other
/// service of the node. With `identity` (certificate chain and key, PEM) it speaks TLS;
/// edges authenticate with their tokens (`SyncSettings::secret`), not certificates.
pub async fn serve_sync(
    address: SocketAddr,
    identity: Option<(&[u8], &[u8])>,
    sync: SyncSettings,
    replica: Arc<Replica>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut builder = tonic::transport::Server::builder();
    if let Some((cert, key)) = identity {
        let config = tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(cert, key));
        builder = builder.tls_config(config).map_err(|e| Error::InvalidParameter(format!("sync TLS: {e}")))?;
    }
    let listener = tokio::net::TcpListener::bind(address).await?;
    let services = Services { replica: Arc::new(OnceLock::from(replica)), sync };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    Ok(tokio::spawn(async move {
        let result = builder
            .tcp_nodelay(true)
            .add_service(SyncServer::new(services).max_decoding_message_size(MAX_MESSAGE))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = shutdown.changed().await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "sync server failed");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_calls_that_never_reached_the_node_count_as_not_sent() {
        // Nothing listens on a port just freed: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
        let refused = ClusterClient::new(channel).read_index(proto::ReadIndexRequest {}).await.unwrap_err();
        assert!(never_sent(&refused), "{refused:?}");
        assert!(never_sent(&tonic::Status::unavailable(NODE_STARTING)));
        // Cut off after sending: may have been carried out.
        assert!(!never_sent(&tonic::Status::unavailable("http2 error")));
        assert!(!never_sent(&tonic::Status::unavailable("transport error")));
        assert!(!never_sent(&tonic::Status::unavailable("tcp connect error")), "the text alone says nothing");
        assert!(!never_sent(&tonic::Status::internal("connect error")));
    }
}
