//! The broker session: connect (again, with backoff, after any failure), subscribe to the
//! mappings' filters, gather messages into batches, and acknowledge a QoS 1 message only after
//! its batch has committed.
//!
//! The session is persistent (clean session off, a fixed client id): the broker keeps the
//! subscriptions and every unacknowledged message while the node is away, and delivers them
//! again when it is back. A message whose batch committed but whose acknowledgement was not
//! sent (a crash in between, or a connection lost) arrives twice: into a table with a primary
//! key it is an upsert, so it leaves one row. Acknowledgements are sent only on the connection
//! the message came on, since a packet id means nothing on another one.
//!
//! In a cluster only the leader ingests; a node that loses leadership closes its session and
//! the new leader opens it (same client id) where the broker left off.

use super::mapping::Mappings;
use super::writer::{BatchWriter, Incoming};
use super::{Metrics, MqttConfig};
use crate::error::{Error, Result};
use crate::sql::Engine;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, SubscribeFilter, SubscribeReasonCode};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The client options of `config`; checks the URL and reads the TLS files.
pub fn options(config: &MqttConfig) -> Result<MqttOptions> {
    let bad = |why: String| Error::InvalidParameter(format!("--mqtt-url {}: {why}", config.url));
    let (tls, rest) = if let Some(rest) = config.url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = config.url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err(bad("must start with mqtt:// or mqtts://".into()));
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains(['/', '?', '@']) {
        return Err(bad("takes only a host and a port (user and password are set apart)".into()));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h.trim_start_matches('[').trim_end_matches(']'), p.parse::<u16>().map_err(|_| bad("bad port".into()))?)
        }
        _ => (authority, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        return Err(bad("no host".into()));
    }
    let file = &config.file;
    let mut options = MqttOptions::new(file.client_id.clone(), host, port);
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(file.keep_alive_secs.max(5)))
        .set_max_packet_size(file.max_message_bytes.saturating_add(1024), 64 * 1024)
        .set_request_channel_capacity(file.batch_messages.max(64));
    if let Some(user) = &file.username {
        options.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
    }
    if tls {
        options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(
            tls_config(&file.tls)?,
        ))));
    } else if file.tls.ca.is_some() || file.tls.cert.is_some() {
        return Err(bad("[tls] is set but the URL is not mqtts://".into()));
    }
    Ok(options)
}

fn tls_config(files: &super::TlsFiles) -> Result<rumqttc::tokio_rustls::rustls::ClientConfig> {
    crate::net::tls_client_config(files.ca.as_deref(), files.cert.as_deref(), files.key.as_deref())
        .map_err(|e| Error::InvalidParameter(format!("MQTT TLS {e}")))
}

/// Ingests while this node is the leader (`is_leader`), until `shutdown`.
pub async fn run(
    engine: Arc<Engine>,
    config: MqttConfig,
    is_leader: impl Fn() -> bool + Send + Sync + 'static,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        while !is_leader() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
            }
        }
        let opened = {
            let (engine, file, metrics) = (engine.clone(), config.file.clone(), metrics.clone());
            tokio::task::spawn_blocking(move || {
                let mappings = Mappings::new(&file.mappings, file.default_mapping)?;
                BatchWriter::open(engine, &file.role, mappings, file.rejected_keep, metrics)
            })
            .await
            .unwrap_or_else(|e| Err(Error::Internal(e.to_string())))
        };
        match opened {
            Ok(writer) => {
                backoff = FIRST_BACKOFF;
                if session(&engine, &config, writer, &is_leader, &metrics, &mut shutdown).await {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "mqtt ingestion cannot start yet; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(jittered(backoff)) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// A message on its way to a batch: the connection it came on, the packet, its receive time.
type Received = (u64, Publish, i64);

/// One broker session, until shutdown (true) or the loss of leadership (false).
async fn session(
    engine: &Arc<Engine>,
    config: &MqttConfig,
    mut writer: BatchWriter,
    is_leader: &(impl Fn() -> bool + Send + Sync),
    metrics: &Arc<Metrics>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let options = match options(config) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "mqtt ingestion is misconfigured");
            return true;
        }
    };
    let file = &config.file;
    let (client, mut eventloop) = AsyncClient::new(options, file.batch_messages.max(64));
    let connection = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::channel::<Received>(file.batch_messages.max(64) * 2);
    let qos = if file.qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
    let filters = writer_filters(file);
    let network = {
        let (client, connection, metrics, engine, url) =
            (client.clone(), connection.clone(), metrics.clone(), engine.clone(), config.url.clone());
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        connection.fetch_add(1, Relaxed);
                        metrics.connected.store(true, Relaxed);
                        backoff = FIRST_BACKOFF;
                        tracing::info!(broker = %url, session_present = ack.session_present, "mqtt connected");
                        let subscriptions = filters.iter().map(|f| SubscribeFilter::new(f.clone(), qos));
                        if let Err(e) = client.try_subscribe_many(subscriptions) {
                            tracing::warn!(error = %e, "mqtt subscribe could not be sent");
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                            tracing::error!(filters = ?filters, "the mqtt broker refused a subscription");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        metrics.received.fetch_add(1, Relaxed);
                        let received = crate::sync::hlc_micros(engine.mvcc().clock_now());
                        if tx.send((connection.load(Relaxed), publish, received)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        metrics.connected.store(false, Relaxed);
                        metrics.connection_errors.fetch_add(1, Relaxed);
                        tracing::warn!(broker = %url, error = %e, retry_ms = backoff.as_millis() as u64, "mqtt connection lost");
                        tokio::time::sleep(jittered(backoff)).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        })
    };
    // Acknowledgements go out from a task of their own: the request queue they wait on is
    // emptied by the network task, which may itself be waiting for the batch loop to take
    // a message, so the batch loop never waits on them.
    let (acks, ack_queue) = mpsc::unbounded_channel::<Vec<Received>>();
    let acknowledger = tokio::spawn(acknowledge(client.clone(), ack_queue, connection.clone(), metrics.clone()));
    let stopped = loop {
        let mut batch: Vec<Received> = Vec::new();
        tokio::select! {
            first = rx.recv() => match first {
                Some(m) => batch.push(m),
                None => break false,
            },
            _ = shutdown.changed() => break true,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if is_leader() { continue } else { break false }
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(file.batch_wait_ms);
        while batch.len() < file.batch_messages {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(m)) => batch.push(m),
                    _ => break,
                },
            }
        }
        match write(&mut writer, &batch, is_leader, metrics, shutdown).await {
            Some(stop) => break stop,
            None => {
                if acks.send(batch).is_err() {
                    break false;
                }
            }
        }
    };
    let _ = client.try_disconnect();
    network.abort();
    acknowledger.abort();
    metrics.connected.store(false, Relaxed);
    stopped
}

fn writer_filters(file: &super::MqttFile) -> Vec<String> {
    Mappings::new(&file.mappings, file.default_mapping).map(|m| m.filters()).unwrap_or_default()
}

/// Writes `batch` until it commits (None); Some(stop) when the node must stop trying: on
/// shutdown (true) or when it is no longer the leader (false).
async fn write(
    writer: &mut BatchWriter,
    batch: &[Received],
    is_leader: &(impl Fn() -> bool + Send + Sync),
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<bool> {
    let incoming: Arc<Vec<Incoming>> = Arc::new(
        batch
            .iter()
            .map(|(_, p, received)| Incoming {
                topic: p.topic.clone(),
                payload: p.payload.clone(),
                received: *received,
            })
            .collect(),
    );
    let mut backoff = FIRST_BACKOFF;
    loop {
        let result = tokio::task::block_in_place(|| writer.write(&incoming));
        match result {
            Ok(written) => {
                metrics.rows.fetch_add(written.rows, Relaxed);
                metrics.batches.fetch_add(1, Relaxed);
                return None;
            }
            Err(e) => {
                metrics.write_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, messages = batch.len(), retry_ms = backoff.as_millis() as u64, "mqtt batch not committed");
                tokio::select! {
                    _ = tokio::time::sleep(jittered(backoff)) => {}
                    _ = shutdown.changed() => return Some(true),
                }
                if !is_leader() {
                    return Some(false);
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Acknowledges the QoS 1 messages of each committed batch, in order, that came on the
/// current connection (the broker delivers the others again, and their rows are upserts of
/// the same values).
async fn acknowledge(
    client: AsyncClient,
    mut batches: mpsc::UnboundedReceiver<Vec<Received>>,
    connection: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
) {
    while let Some(batch) = batches.recv().await {
        for (on, publish, _) in &batch {
            if *on == connection.load(Relaxed) && publish.qos != QoS::AtMostOnce {
                if client.ack(publish).await.is_err() {
                    return;
                }
                metrics.acknowledged.fetch_add(1, Relaxed);
            }
        }
    }
}

/// `d` less up to a quarter, at random: so that many nodes do not retry in step.
fn jittered(d: Duration) -> Duration {
    use rand::Rng;
    d.mul_f64(1.0 - rand::thread_rng().gen_range(0.0..0.25))
}
