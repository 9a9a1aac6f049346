//! The edge's sync worker: pushes the outbox to the cloud and trims what the cloud committed.
//!
//! It works on the edge's leader only (every replica captures; one pushes). Each round reads
//! the changes after the cursor the cloud last acknowledged, at most [`SyncConfig::max_rows`]
//! rows and about [`SyncConfig::max_bytes`], groups them by table with each table's
//! definition, and pushes them to one cloud member. On the cloud's answer it merges the
//! cloud's clock into its own and trims the outbox through the acknowledged cursor (an
//! ordinary commit, replicated to the edge's other members). A full batch is followed at once
//! by the next; otherwise the next round starts [`SyncConfig::interval`] after this one
//! started. An empty push is sent too: it is the health probe of the target, and tells a
//! restarted edge the cloud's cursor.
//!
//! A failure (no answer, a refused push) leaves the outbox as it is: the worker moves to the
//! next target and tries again after an exponential backoff with jitter, up to
//! [`MAX_BACKOFF`]. The cloud skips whatever its cursor already covers, so a push retried
//! after an unknown outcome applies nothing twice.

use super::{outbox, Ack, Change, Position, Push, TableChanges};
use crate::catalog;
use crate::error::{Error, Result};
use crate::mvcc::{lock, Mvcc};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The longest wait between attempts after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The first wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// How an edge syncs.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// This edge's id (see [`super::valid_edge_id`]).
    pub edge_id: String,
    /// Cloud members to push to (`http://host:port` or `https://…`), tried in turn.
    pub targets: Vec<String>,
    /// The wait between rounds that found nothing more to send.
    pub interval: Duration,
    /// Rows per push.
    pub max_rows: usize,
    /// Bytes of row data per push (a single larger row is sent alone).
    pub max_bytes: usize,
}

impl SyncConfig {
    pub fn new(edge_id: String, targets: Vec<String>, interval: Duration) -> SyncConfig {
        SyncConfig { edge_id, targets, interval, max_rows: 20_000, max_bytes: 8 << 20 }
    }
}

/// Sends pushes to the cloud.
#[async_trait::async_trait]
pub trait Uplink: Send + Sync {
    /// Sends `push` to the configured target number `target`.
    async fn push(&self, target: usize, push: Push) -> Result<Ack>;
}

/// The connection to the cloud as the worker last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The last push was answered.
    Connected,
    /// Nothing answered yet since start-up.
    Disconnected,
    /// The last push failed; trying again after a backoff.
    Reconnecting,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Connected => "connected",
            State::Disconnected => "disconnected",
            State::Reconnecting => "reconnecting",
        }
    }
}

/// What the worker reports (in `/health`, `/metrics` and `chronos_sync_status`).
#[derive(Clone, Debug)]
pub struct Report {
    pub edge_id: String,
    pub state: State,
    /// The target pushed to last.
    pub target: String,
    /// The greatest position the cloud acknowledged since start-up.
    pub cursor: Option<Position>,
    /// The version (HLC time) of the oldest change not yet acknowledged, if any.
    pub oldest_pending: Option<u64>,
    pub pushes: u64,
    pub rows_sent: u64,
    pub bytes_sent: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// When the last push was answered (HLC time).
    pub last_success: Option<u64>,
}

/// The worker's shared report.
#[derive(Debug)]
pub struct SyncStatus {
    report: Mutex<Report>,
}

impl SyncStatus {
    pub fn new(config: &SyncConfig) -> Arc<SyncStatus> {
        Arc::new(SyncStatus {
            report: Mutex::new(Report {
                edge_id: config.edge_id.clone(),
                state: State::Disconnected,
                target: config.targets.first().cloned().unwrap_or_default(),
                cursor: None,
                oldest_pending: None,
                pushes: 0,
                rows_sent: 0,
                bytes_sent: 0,
                errors: 0,
                last_error: None,
                last_success: None,
            }),
        })
    }

    pub fn report(&self) -> Report {
        lock(&self.report).clone()
    }

    fn update(&self, f: impl FnOnce(&mut Report)) {
        f(&mut lock(&self.report));
    }
}

/// A push read from the outbox, with what it carries.
pub(super) struct Prepared {
    pub push: Push,
    pub rows: usize,
    pub bytes: usize,
    /// More changes wait after these.
    pub more: bool,
    /// The version of the oldest change in the outbox.
    pub oldest: Option<u64>,
}

/// Reads the next push after `cursor`.
pub(super) fn prepare(mvcc: &Arc<Mvcc>, config: &SyncConfig, cursor: Option<Position>) -> Result<Prepared> {
    let mut txn = mvcc.begin();
    let edge = outbox::edge(&mut txn)?
        .filter(|e| e.id == config.edge_id)
        .ok_or_else(|| Error::Internal(format!("this database is not edge {}", config.edge_id)))?;
    let (captured, more) = outbox::read(&mut txn, cursor, config.max_rows, config.max_bytes)?;
    let oldest = outbox::oldest(&mut txn)?;
    // Each table's definition now, by lineage.
    let mut definitions: BTreeMap<u32, (String, Vec<u8>)> = BTreeMap::new();
    if !captured.is_empty() {
        for table in catalog::list_tables(&mut txn)? {
            let json = serde_json::to_vec(&table).map_err(|e| Error::Internal(e.to_string()))?;
            definitions.insert(table.lineage(), (table.name, json));
        }
    }
    txn.rollback();
    let through = captured.last().map(|c| c.position);
    let mut tables: BTreeMap<u32, TableChanges> = BTreeMap::new();
    let (mut rows, mut bytes) = (0, 0);
    for change in captured {
        // A table dropped since: its changes have nowhere to go and are passed over; the
        // push's end moves the cursor past them.
        let Some((_, definition)) = definitions.get(&change.lineage) else { continue };
        rows += 1;
        bytes += change.key.len() + change.row.as_ref().map_or(0, Vec::len);
        let entry = tables
            .entry(change.lineage)
            .or_insert_with(|| TableChanges { definition: definition.clone(), changes: Vec::new() });
        entry.changes.push(Change { position: change.position, key: change.key, row: change.row });
    }
    let push = Push {
        edge: edge.id,
        incarnation: edge.incarnation,
        clock: mvcc.clock_now(),
        tables: tables.into_values().collect(),
        through,
        after: cursor,
    };
    Ok(Prepared { push, rows, bytes, more, oldest })
}

/// Records that the cloud committed through `ack`: merges its clock, trims the outbox.
pub(super) fn acknowledged(mvcc: &Arc<Mvcc>, ack: &Ack) -> Result<Option<u64>> {
    mvcc.adopt_clock(ack.clock);
    let mut txn = mvcc.begin();
    if outbox::trim(&mut txn, ack.cursor)? > 0 {
        txn.commit()?;
        txn = mvcc.begin();
    }
    let oldest = outbox::oldest(&mut txn)?;
    txn.rollback();
    Ok(oldest)
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::Internal(e.to_string()))?
}

/// Runs the worker until `shutdown` turns true. `is_leader` says whether this node commits.
pub async fn run(
    mvcc: Arc<Mvcc>,
    is_leader: impl Fn() -> bool + Send + 'static,
    uplink: Arc<dyn Uplink>,
    config: SyncConfig,
    status: Arc<SyncStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut cursor: Option<Position> = None;
    let mut target = 0;
    let mut backoff = FIRST_BACKOFF;
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        wait = config.interval;
        if !is_leader() {
            continue;
        }
        // Rounds start every interval (not an interval after the last one ended), so a change
        // waits at most one interval plus one push.
        let started = std::time::Instant::now();
        let round = async {
            let (m, c) = (mvcc.clone(), config.clone());
            let prepared = blocking(move || prepare(&m, &c, cursor)).await?;
            status.update(|r| r.oldest_pending = prepared.oldest);
            let read = started.elapsed();
            let ack = uplink.push(target, prepared.push).await?;
            let pushed = started.elapsed();
            let m = mvcc.clone();
            let oldest = blocking(move || acknowledged(&m, &ack)).await?;
            tracing::debug!(
                rows = prepared.rows,
                read_ms = read.as_millis() as u64,
                push_ms = (pushed - read).as_millis() as u64,
                trim_ms = (started.elapsed() - pushed).as_millis() as u64,
                "sync push"
            );
            Ok::<_, Error>((prepared.rows, prepared.bytes, prepared.more, ack, oldest))
        };
        match round.await {
            Ok((rows, bytes, more, ack, oldest)) => {
                cursor = cursor.max(Some(ack.cursor));
                backoff = FIRST_BACKOFF;
                wait = if more { Duration::ZERO } else { config.interval.saturating_sub(started.elapsed()) };
                status.update(|r| {
                    r.state = State::Connected;
                    r.target = config.targets[target].clone();
                    r.cursor = cursor;
                    r.oldest_pending = oldest;
                    r.pushes += 1;
                    r.rows_sent += rows as u64;
                    r.bytes_sent += bytes as u64;
                    r.last_success = Some(ack.clock);
                });
            }
            Err(e) => {
                tracing::warn!(target = %config.targets[target], error = %e, "sync push failed; retrying");
                status.update(|r| {
                    r.state = if r.state == State::Disconnected { State::Disconnected } else { State::Reconnecting };
                    r.target = config.targets[target].clone();
                    r.errors += 1;
                    r.last_error = Some(e.to_string());
                });
                target = (target + 1) % config.targets.len();
                let jitter = rand::random::<f64>() * 0.5;
                wait = backoff.mul_f64(1.0 + jitter);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
