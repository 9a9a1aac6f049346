//! Sessions: the per-connection state of the SQL layer and the API the front end calls.

use super::ddl;
use super::execution::dml::{self, RowIds};
use super::execution::{self, Context, Row, SessionInfo};
use super::parser;
use super::planner::{self, plan::Plan, plan::ResultColumn};
use crate::error::{Error, Result};
use crate::mvcc::{Mvcc, Pace, Savepoint, SealLimits, SealStats, SegmentCodec, Transaction};
use crate::storage::Storage;
use crate::types::timezone::{self, Zone};
use crate::types::{DataType, Value};
use sqlparser::ast;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod copy;
mod ingest;
mod plans;
mod prepared;
use copy::CopyIn;
pub use ingest::Writer;
pub use plans::Simple;

/// The shared database engine: MVCC storage and everything sessions share.
pub struct Engine {
    mvcc: Arc<Mvcc>,
    /// Each statement's memory budget in bytes ([`execution::memory`]).
    statement_memory: std::sync::atomic::AtomicUsize,
    /// Rows expired by TTL since start-up ([`crate::sql::ttl`]).
    pub(crate) ttl_expired: std::sync::atomic::AtomicU64,
    /// The edge's sync worker, once started.
    sync: std::sync::OnceLock<Arc<crate::sync::worker::SyncStatus>>,
    /// The change capture of edge sync (its outbox's size).
    capture: Arc<crate::sync::outbox::Capture>,
    /// Writes of rows are refused while the outbox holds more bytes than this (0: no limit).
    sync_budget: std::sync::atomic::AtomicU64,
}

/// The default memory budget of a statement.
pub const DEFAULT_STATEMENT_MEMORY: usize = 1 << 30;

impl Engine {
    /// Opens the engine over a storage engine.
    pub fn open(storage: Arc<dyn Storage>) -> Result<Arc<Self>> {
        let mvcc = Mvcc::new(storage)?;
        mvcc.add_segment_codec(Arc::new(crate::timeseries::segment::ColumnCodec));
        mvcc.add_derive(Arc::new(crate::timeseries::summary::Summaries::default()));
        let capture = Arc::new(crate::sync::outbox::Capture::default());
        mvcc.add_derive(capture.clone());
        Ok(Arc::new(Self {
            mvcc,
            statement_memory: std::sync::atomic::AtomicUsize::new(DEFAULT_STATEMENT_MEMORY),
            ttl_expired: std::sync::atomic::AtomicU64::new(0),
            sync: Default::default(),
            capture,
            sync_budget: Default::default(),
        }))
    }

    /// The bytes of the sync outbox's records not yet trimmed (the changes an edge still has
    /// to push, as stored).
    pub fn sync_backlog_bytes(&self) -> Result<u64> {
        self.capture.backlog_bytes(&mut self.mvcc().begin())
    }

    /// Refuses writes of rows while the sync outbox holds more than `bytes` (0: no limit).
    pub fn set_sync_budget(&self, bytes: u64) {
        self.sync_budget.store(bytes, Ordering::Relaxed);
    }

    /// Fails `txn`'s commit with 53100 if it writes rows while the sync outbox is over its
    /// budget: an edge offline for long refuses new data rather than fill its disk or drop
    /// what it holds. Reads, TTL expiry and the outbox's own trimming go on.
    fn check_sync_budget(&self, txn: &mut Transaction) -> Result<()> {
        let budget = self.sync_budget.load(Ordering::Relaxed);
        if budget == 0 || !txn.has_writes_under(&[crate::catalog::ROW.tag()]) {
            return Ok(());
        }
        let held = self.capture.backlog_bytes(txn)?;
        if held <= budget {
            return Ok(());
        }
        Err(Error::DiskFull(format!(
            "the sync backlog is full: {} MiB of changes wait for the cloud (--sync-max-backlog-mb {}); writes resume as it drains",
            held >> 20,
            budget >> 20
        )))
    }

    /// Shows the edge's sync worker in the sessions started from now on.
    pub fn set_sync_status(&self, status: Arc<crate::sync::worker::SyncStatus>) {
        let _ = self.sync.set(status);
    }

    /// Sets each statement's memory budget.
    pub fn set_statement_memory(&self, bytes: usize) {
        self.statement_memory.store(bytes, Ordering::Relaxed);
    }

    /// A fresh budget for one statement.
    fn statement_memory(&self) -> execution::memory::Memory {
        execution::memory::Memory::new(self.statement_memory.load(Ordering::Relaxed))
    }

    pub fn mvcc(&self) -> &Arc<Mvcc> {
        &self.mvcc
    }

    /// Garbage collection: versions no snapshot reads, and the keys of dropped and truncated
    /// tables once no snapshot reads them. Returns how many keys were removed.
    pub fn gc(&self) -> Result<usize> {
        let started = std::time::Instant::now();
        let retired = crate::catalog::retired_prefixes(&mut self.mvcc.begin_oldest())?;
        let removed = self.mvcc.gc_retiring(&retired, Pace::Background)?;
        let collected = started.elapsed();
        let sealed = self.seal(None, SealLimits::default())?;
        tracing::debug!(removed, ?collected, sealing = ?started.elapsed() - collected, ?sealed, "gc pass");
        Ok(removed)
    }

    /// Seals the settled rows of the time-series tables (`only` that one, when given) into
    /// column segments (`mvcc::segments`, `timeseries::segment`).
    pub fn seal(&self, only: Option<&str>, limits: SealLimits) -> Result<SealStats> {
        let tables = crate::catalog::list_tables(&mut self.mvcc.begin())?;
        let codec: Arc<dyn SegmentCodec> = Arc::new(crate::timeseries::segment::ColumnCodec);
        let mut total = SealStats::default();
        for table in tables {
            if table.time_series_column().is_none() || only.is_some_and(|name| name != table.name) {
                continue;
            }
            let stats = self.mvcc.seal_with(&table.row_prefix(), &codec, limits)?;
            if stats.written + stats.replaced > 0 {
                tracing::debug!(table = %table.name, ?stats, "sealed segments");
            }
            total.written += stats.written;
            total.replaced += stats.replaced;
            total.rows += stats.rows;
            total.removed += stats.removed;
        }
        Ok(total)
    }

    /// VACUUM: garbage collection, then every settled row of the time-series tables (`only`
    /// that one) sealed, however few (the background pass waits for a run of rows). Everything
    /// committed before the statement is settled unless an older snapshot still reads it.
    pub(crate) fn vacuum(&self, only: Option<&str>) -> Result<()> {
        let retired = crate::catalog::retired_prefixes(&mut self.mvcc.begin_oldest())?;
        self.mvcc.gc_retiring(&retired, Pace::AtOnce)?;
        self.seal(only, SealLimits { min_rows: 1, ..SealLimits::default() })?;
        Ok(())
    }

    /// A new session for `user`.
    pub fn session(self: &Arc<Self>, user: &str, database: &str) -> Session {
        Session {
            engine: self.clone(),
            txn: None,
            txn_failed: false,
            txn_read_only: false,
            info: Arc::new(SessionInfo {
                user: user.to_string(),
                database: database.to_string(),
                backend_pid: std::process::id() as i32,
                settings: default_settings(),
                zone: Zone::UTC,
                zone_changes: 0,
                sequence_values: Default::default(),
                sync: self.sync.get().cloned(),
            }),
            notices: Vec::new(),
            cancel: Arc::new(AtomicBool::new(false)),
            deadline: None,
            savepoints: Vec::new(),
            copy_in: None,
            row_sink: None,
            plan_hint: None,
            startup: Vec::new(),
            planned: 0,
            inline: false,
            inline_refused: false,
            audit_pending: None,
            audit: Vec::new(),
            sql_prepared: Default::default(),
        }
    }
}

impl RowIds for Engine {
    fn next_row_id(&self) -> i64 {
        self.mvcc.unique_id()
    }
}

fn default_settings() -> Vec<(String, String)> {
    [
        ("application_name", ""),
        ("chronos.follower_reads", "off"),
        ("client_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("default_transaction_isolation", "serializable"),
        ("extra_float_digits", "1"),
        ("idle_in_transaction_session_timeout", "0"),
        ("idle_session_timeout", "0"),
        ("integer_datetimes", "on"),
        ("intervalstyle", "postgres"),
        ("is_superuser", "on"),
        ("lc_collate", "C"),
        ("lc_ctype", "C"),
        ("max_identifier_length", "63"),
        ("search_path", "\"$user\", public"),
        ("server_encoding", "UTF8"),
        ("server_version", super::SERVER_VERSION),
        ("server_version_num", "150004"),
        ("standard_conforming_strings", "on"),
        ("statement_timeout", "0"),
        ("timezone", "UTC"),
        ("transaction_isolation", "serializable"),
        ("transaction_read_only", "off"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The result of one statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Rows with their columns (SELECT, SHOW, EXPLAIN, RETURNING) and the command tag.
    Rows { columns: Vec<ResultColumn>, rows: Vec<Row>, tag: String },
    /// A command tag such as `INSERT 0 3` or `CREATE TABLE`.
    Command { tag: String },
    /// COPY … FROM STDIN started: the client now sends `columns`-wide data, passed to
    /// [`Session::copy_data`] and ended by [`Session::copy_done`].
    CopyIn { columns: usize },
    /// COPY … TO STDOUT: the formatted lines.
    CopyOut { columns: usize, lines: Vec<String> },
}

/// Transaction status, as ReadyForQuery reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionState {
    Idle,
    InBlock,
    Failed,
}

/// A parsed statement ready to execute, with its parameter and result types.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub statement: Option<ast::Statement>,
    pub param_types: Vec<DataType>,
    pub columns: Vec<ResultColumn>,
    /// The plan made at Parse, reused while it holds ([`plans`]).
    pub plan: Option<Arc<plans::CachedPlan>>,
}

/// How often an autocommit write is retried after serialization failures.
const AUTOCOMMIT_RETRIES: usize = 50;

/// One client connection's state.
pub struct Session {
    engine: Arc<Engine>,
    txn: Option<Transaction>,
    txn_failed: bool,
    txn_read_only: bool,
    /// Shared with running statements; SET makes a private copy first.
    pub info: Arc<SessionInfo>,
    notices: Vec<String>,
    /// Set to cancel the running statement.
    pub cancel: Arc<AtomicBool>,
    /// When the running statement's `statement_timeout` runs out.
    deadline: Option<std::time::Instant>,
    /// Savepoints of the open transaction, innermost last.
    savepoints: Vec<(String, Savepoint)>,
    copy_in: Option<CopyIn>,
    /// Where the rows of the running query go instead of a collected result (see
    /// [`Session::run_streaming`]).
    row_sink: Option<RowSink>,
    /// The prepared plan of the running statement, if it has one ([`plans`]).
    plan_hint: Option<Arc<plans::CachedPlan>>,
    /// Settings the client sent at start-up (what `RESET` returns to).
    startup: Vec<(String, String)>,
    /// Statements planned to run, not counting those that ran a kept plan.
    planned: u64,
    /// The running statement is on the caller's thread: anything that would wait or plan
    /// again refuses instead ([`Session::try_execute_inline`]).
    inline: bool,
    /// Set when a statement running inline refused.
    inline_refused: bool,
    /// The audit record of the running statement, once planned ([`super::privileges::audited`]).
    audit_pending: Option<(crate::audit::Event, String)>,
    /// Audit records of finished statements, for the front end to log with the client's
    /// address ([`Session::take_audit`]).
    audit: Vec<crate::audit::Action>,
    /// Statements named by SQL `PREPARE` ([`prepared`]).
    sql_prepared: std::collections::HashMap<String, prepared::SqlPrepared>,
}

/// What a streamed statement string reports as it runs ([`Session::run_streaming`]).
pub enum Streamed {
    /// The results of the statements before the last one, and the notices so far.
    Earlier(Vec<Result<Outcome>>, Vec<String>),
    /// The last statement is a query: its columns, before any of its rows, and the notices
    /// so far.
    Columns(Vec<ResultColumn>, Vec<String>, execution::SessionZone),
    /// The next rows of the query.
    Rows(Vec<Row>),
}

/// The consumer of a streamed statement string; an error stops the running statement.
pub type RowSink = Box<dyn FnMut(Streamed) -> Result<()> + Send>;

/// Rows per [`Streamed::Rows`] batch.
const STREAM_BATCH_ROWS: usize = 1024;

fn is_write(statement: &ast::Statement) -> bool {
    use ast::Statement as S;
    match statement {
        S::Query(query) | S::Copy { source: ast::CopySource::Query(query), .. } => {
            return super::roles::modifying_ctes(query).next().is_some();
        }
        S::Copy { to: false, .. } => return true,
        _ => {}
    }
    matches!(
        statement,
        S::Insert(_)
            | S::Update(_)
            | S::Delete(_)
            | S::CreateTable(_)
            | S::CreateIndex(_)
            | S::Drop { .. }
            | S::AlterTable(_)
            | S::Truncate(_)
            | S::CreateRole(_)
            | S::AlterRole { .. }
            | S::Grant(_)
            | S::Revoke(_)
            | S::CreateType { .. }
            | S::CreateSequence { .. }
            | S::CreateView(_)
    )
}

impl Session {
    pub fn transaction_state(&self) -> TransactionState {
        match (&self.txn, self.txn_failed) {
            (None, _) => TransactionState::Idle,
            (Some(_), false) => TransactionState::InBlock,
            (Some(_), true) => TransactionState::Failed,
        }
    }

    /// Audit records of the statements finished since the last call.
    pub fn take_audit(&mut self) -> Vec<crate::audit::Action> {
        std::mem::take(&mut self.audit)
    }

    /// Notices produced since the last call.
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    /// A session setting's value.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.info.settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Runs a string of statements (the simple query protocol): results in order, stopping
    /// at the first error.
    pub fn run(&mut self, sql: &str) -> Vec<Result<Outcome>> {
        self.run_streaming(sql, None)
    }

    /// [`Session::run`], with the rows of the last statement streamed when it is a query with
    /// more than one batch of rows: the results of the statements before it go to `sink` first
    /// ([`Streamed::Earlier`], when there are any), then its columns and its rows in batches
    /// as the executor produces them, so a result of any size is never held whole. A smaller
    /// result comes back as an ordinary one. The returned results are those not given to the sink (a
    /// streamed query's own is `Outcome::Rows` without rows, or the error that ended it). An
    /// error from the sink (the client went away) stops the statement.
    pub fn run_streaming(&mut self, sql: &str, sink: Option<RowSink>) -> Vec<Result<Outcome>> {
        self.run_parsed(parser::parse(sql), sink)
    }

    /// [`Session::run_streaming`] of a string already parsed (or its parse error).
    pub fn run_parsed(&mut self, parsed: Result<Vec<ast::Statement>>, sink: Option<RowSink>) -> Vec<Result<Outcome>> {
        let statements = match parsed {
            Ok(s) => s,
            Err(e) => {
                if self.txn.is_some() {
                    self.txn_failed = true;
                }
                return vec![Err(e)];
            }
        };
        let Some((last, earlier)) = statements.split_last() else { return Vec::new() };
        let mut out = Vec::with_capacity(statements.len());
        for statement in earlier {
            let result = self.execute(statement, &[], &[]);
            // Stop at an error, and at COPY FROM STDIN: the data comes next.
            let stop = matches!(result, Err(_) | Ok(Outcome::CopyIn { .. }));
            out.push(result);
            if stop {
                return out;
            }
        }
        let result = match sink {
            Some(mut sink) => {
                let notices = self.take_notices();
                let earlier = std::mem::take(&mut out);
                let handed = match earlier.is_empty() && notices.is_empty() {
                    true => Ok(()),
                    false => sink(Streamed::Earlier(earlier, notices)),
                };
                handed.and_then(|()| self.execute_streaming(last, &[], &[], sink))
            }
            None => self.execute(last, &[], &[]),
        };
        out.push(result);
        out
    }

    /// Parses and plans one statement, inferring parameter types (the extended protocol's
    /// Parse). `param_types` are the types the client declared (Unknown where it did not).
    pub fn prepare(&mut self, sql: &str, param_types: &[DataType]) -> Result<Prepared> {
        self.guarded(|s| s.prepare_statement(sql, param_types))
    }

    fn prepare_statement(&mut self, sql: &str, param_types: &[DataType]) -> Result<Prepared> {
        let mut statements = parser::parse(sql)?;
        if statements.len() > 1 {
            return Err(Error::Syntax {
                message: "cannot insert multiple commands into a prepared statement".into(),
                position: None,
            });
        }
        let Some(statement) = statements.pop() else {
            return Ok(Prepared {
                statement: None,
                param_types: param_types.to_vec(),
                columns: Vec::new(),
                plan: None,
            });
        };
        let mut params = param_types.to_vec();
        let mut plan = None;
        let columns = match &statement {
            ast::Statement::StartTransaction { .. }
            | ast::Statement::Commit { .. }
            | ast::Statement::Rollback { .. }
            | ast::Statement::Savepoint { .. }
            | ast::Statement::ReleaseSavepoint { .. }
            | ast::Statement::Prepare { .. }
            | ast::Statement::Deallocate { .. } => Vec::new(),
            ast::Statement::Execute { name, .. } => self.sql_prepared_columns(name.as_ref())?,
            _ => {
                let zone = self.info.zone;
                let (columns, cached) =
                    self.with_read_txn(|txn| plans::plan_to_reuse(txn, &statement, &mut params, zone))?;
                plan = cached;
                columns
            }
        };
        let param_types = params.into_iter().map(|t| if t == DataType::Unknown { DataType::Text } else { t }).collect();
        Ok(Prepared { statement: Some(statement), param_types, columns, plan })
    }

    /// Runs `f` in the open transaction, or in a fresh snapshot.
    fn with_read_txn<T>(&mut self, f: impl FnOnce(&mut Transaction) -> Result<T>) -> Result<T> {
        match &mut self.txn {
            Some(txn) => f(txn),
            None => {
                let mut txn = self.engine.mvcc.begin();
                f(&mut txn)
            }
        }
    }

    /// Executes one statement with parameter values. A bug that panics inside the engine is
    /// reported as an internal error (XX000) and the transaction is abandoned; it never takes
    /// the connection or the server down. `param_types` are the types the statement was
    /// prepared with (declared by the client or inferred), so a text-format value binds as its
    /// parameter's type rather than as text.
    pub fn execute(
        &mut self,
        statement: &ast::Statement,
        params: &[Value],
        param_types: &[DataType],
    ) -> Result<Outcome> {
        let result = self.guarded(|s| s.execute_statement(statement, params, param_types));
        if let Some((event, what)) = self.audit_pending.take() {
            let failure = result.as_ref().err().map(|e| (e.sqlstate().to_string(), e.to_string()));
            self.audit.push(crate::audit::Action { event, what, failure });
        }
        result
    }

    /// [`Session::execute`], with the rows of a query going to `sink` ([`Streamed::Columns`],
    /// then [`Streamed::Rows`] batches) as the executor produces them; the returned
    /// `Outcome::Rows` then holds none.
    pub fn execute_streaming(
        &mut self,
        statement: &ast::Statement,
        params: &[Value],
        param_types: &[DataType],
        sink: RowSink,
    ) -> Result<Outcome> {
        self.row_sink = Some(sink);
        let result = self.execute(statement, params, param_types);
        self.row_sink = None;
        result
    }

    /// Executes a statement Parse prepared with parameter values, its rows going to `sink` when
    /// there is one (as [`Session::execute_streaming`]); its plan is reused while it holds.
    pub fn execute_prepared(
        &mut self,
        prepared: &Prepared,
        params: &[Value],
        sink: Option<RowSink>,
    ) -> Result<Outcome> {
        let Some(statement) = &prepared.statement else {
            return Err(Error::Internal("an empty statement reached the executor".into()));
        };
        self.plan_hint = prepared.plan.clone();
        self.row_sink = sink;
        let result = self.execute(statement, params, &prepared.param_types);
        self.row_sink = None;
        self.plan_hint = None;
        result
    }

    /// Runs `f`, turning a panic into an internal error that fails the open transaction.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(r) => r,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown".into());
                tracing::error!(%message, "statement panicked");
                if self.txn.is_some() {
                    self.txn_failed = true;
                }
                self.copy_in = None;
                self.plan_hint = None;
                Err(Error::Internal(format!("internal error: {message}")))
            }
        }
    }

    fn execute_statement(
        &mut self,
        statement: &ast::Statement,
        params: &[Value],
        param_types: &[DataType],
    ) -> Result<Outcome> {
        self.cancel.store(false, Ordering::Relaxed);
        // statement_timeout counts from the start of each statement, as in PostgreSQL.
        let timeout = self.setting("statement_timeout").and_then(parse_duration_ms).filter(|ms| *ms > 0);
        self.deadline = timeout.map(|ms| std::time::Instant::now() + std::time::Duration::from_millis(ms));
        use ast::Statement as S;
        match statement {
            S::StartTransaction { modes, .. } => {
                if self.txn.is_some() {
                    self.notices.push("there is already a transaction in progress".into());
                    return Ok(Outcome::Command { tag: "BEGIN".into() });
                }
                let read_only = modes
                    .iter()
                    .any(|m| matches!(m, ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadOnly)));
                self.txn = Some(self.begin_read()?);
                self.txn_failed = false;
                self.txn_read_only = read_only;
                return Ok(Outcome::Command { tag: "BEGIN".into() });
            }
            S::Commit { .. } => {
                let Some(txn) = self.txn.take() else {
                    self.notices.push("there is no transaction in progress".into());
                    return Ok(Outcome::Command { tag: "COMMIT".into() });
                };
                self.savepoints.clear();
                if std::mem::take(&mut self.txn_failed) {
                    txn.rollback();
                    return Ok(Outcome::Command { tag: "ROLLBACK".into() });
                }
                let mut txn = txn;
                self.engine.check_sync_budget(&mut txn)?;
                txn.commit()?;
                return Ok(Outcome::Command { tag: "COMMIT".into() });
            }
            S::Rollback { savepoint: None, .. } => {
                match self.txn.take() {
                    Some(txn) => txn.rollback(),
                    None => self.notices.push("there is no transaction in progress".into()),
                }
                self.txn_failed = false;
                self.savepoints.clear();
                return Ok(Outcome::Command { tag: "ROLLBACK".into() });
            }
            S::Savepoint { name } => {
                let Some(txn) = &self.txn else {
                    return Err(Error::NoActiveTransaction("SAVEPOINT can only be used in transaction blocks".into()));
                };
                if self.txn_failed {
                    return Err(Error::InFailedTransaction);
                }
                self.savepoints.push((planner::binder::ident(name), txn.savepoint()));
                return Ok(Outcome::Command { tag: "SAVEPOINT".into() });
            }
            S::ReleaseSavepoint { name } => {
                let name = planner::binder::ident(name);
                if self.txn.is_none() {
                    return Err(Error::NoActiveTransaction(
                        "RELEASE SAVEPOINT can only be used in transaction blocks".into(),
                    ));
                }
                if self.txn_failed {
                    return Err(Error::InFailedTransaction);
                }
                let Some(pos) = self.savepoints.iter().rposition(|(n, _)| *n == name) else {
                    return Err(Error::InvalidSavepoint(format!("savepoint \"{name}\" does not exist")));
                };
                self.savepoints.truncate(pos);
                return Ok(Outcome::Command { tag: "RELEASE".into() });
            }
            S::Rollback { savepoint: Some(name), .. } => {
                let name = planner::binder::ident(name);
                let Some(txn) = self.txn.as_mut() else {
                    return Err(Error::NoActiveTransaction(
                        "ROLLBACK TO SAVEPOINT can only be used in transaction blocks".into(),
                    ));
                };
                let Some(pos) = self.savepoints.iter().rposition(|(n, _)| *n == name) else {
                    self.txn_failed = true;
                    return Err(Error::InvalidSavepoint(format!("savepoint \"{name}\" does not exist")));
                };
                txn.rollback_to(&self.savepoints[pos].1);
                self.savepoints.truncate(pos + 1);
                self.txn_failed = false;
                return Ok(Outcome::Command { tag: "ROLLBACK".into() });
            }
            _ => {}
        }
        if self.txn_failed {
            return Err(Error::InFailedTransaction);
        }
        if let ast::Statement::Copy { to: false, .. } = statement {
            return self.copy_begin(statement);
        }
        if matches!(statement, ast::Statement::Vacuum(_)) && self.txn.is_some() {
            self.txn_failed = true;
            return Err(Error::ActiveTransaction("VACUUM cannot run inside a transaction block".into()));
        }
        // DISCARD ALL (what a connection pool sends between clients) resets the session's
        // settings to the start-up ones and drops its prepared statements.
        if let S::Discard { object_type } = statement {
            if *object_type == ast::DiscardObject::ALL {
                if self.txn.is_some() {
                    self.txn_failed = true;
                    return Err(Error::ActiveTransaction("DISCARD ALL cannot run inside a transaction block".into()));
                }
                self.set("all", None)?;
                self.sql_prepared.clear();
            }
            return Ok(Outcome::Command { tag: format!("DISCARD {object_type}") });
        }
        let named = match statement {
            S::Prepare { name, data_types, statement } => Some(self.sql_prepare(name, data_types, statement)),
            S::Execute { name, parameters, immediate: false, into, using, output: false, .. }
                if into.is_empty() && using.is_empty() =>
            {
                Some(self.sql_execute(name.as_ref(), parameters))
            }
            S::Deallocate { name, .. } => Some(self.sql_deallocate(name)),
            _ => None,
        };
        if let Some(result) = named {
            // As any statement's, their errors fail the open transaction.
            if result.is_err() && self.txn.is_some() {
                self.txn_failed = true;
            }
            return result;
        }
        match self.txn.take() {
            Some(mut txn) => {
                let result = self.execute_in(&mut txn, statement, params, param_types, self.txn_read_only);
                self.txn = Some(txn);
                if result.is_err() && !self.inline_refused {
                    self.txn_failed = true;
                }
                result
            }
            None => self.execute_autocommit(statement, params, param_types),
        }
    }

    /// Begins a transaction for a client statement: linearizable (after the replica's read
    /// barrier) unless the session asked for `chronos.follower_reads = on`, which reads this
    /// node's latest applied state without asking the leader (possibly stale on a follower).
    fn begin_read(&mut self) -> Result<Transaction> {
        if self.follower_reads() {
            return Ok(self.engine.mvcc.begin());
        }
        if self.inline {
            return match self.engine.mvcc.read_barrier_is_free() {
                true => Ok(self.engine.mvcc.begin()),
                false => Err(self.refuse_inline()),
            };
        }
        self.engine.mvcc.begin_read()
    }

    /// True when the session asked for `chronos.follower_reads`.
    fn follower_reads(&self) -> bool {
        self.setting("chronos.follower_reads").is_some_and(|v| matches!(v, "on" | "true" | "1"))
    }

    /// Runs a statement in its own transaction. A write is validated at commit; a
    /// serialization failure means another commit got in between, so the
    /// statement, which nobody has seen the effects of, runs again on a newer snapshot.
    fn execute_autocommit(
        &mut self,
        statement: &ast::Statement,
        params: &[Value],
        param_types: &[DataType],
    ) -> Result<Outcome> {
        let mvcc = self.engine.mvcc.clone();
        let write = is_write(statement);
        let notices = self.notices.len();
        for attempt in 0.. {
            // A write is validated where it commits, against everything committed after its
            // snapshot, so its first attempt needs no read barrier (on a follower, a round trip
            // to the leader); a retry after a conflict reads the latest state.
            let mut txn = if write && attempt == 0 { mvcc.begin() } else { self.begin_read()? };
            let outcome = self.execute_in(&mut txn, statement, params, param_types, false)?;
            self.engine.check_sync_budget(&mut txn)?;
            match txn.commit() {
                Ok(_) => return Ok(outcome),
                Err(Error::Serialization(_)) if attempt < AUTOCOMMIT_RETRIES => {
                    self.notices.truncate(notices);
                    // Let the commit that got in become visible before trying again.
                    mvcc.wait_visible(mvcc.last_version(), std::time::Duration::from_millis(100));
                    std::thread::sleep(std::time::Duration::from_micros(100 * attempt.min(50) as u64));
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the retry loop returns")
    }

    fn execute_in(
        &mut self,
        txn: &mut Transaction,
        statement: &ast::Statement,
        params: &[Value],
        prepared_types: &[DataType],
        read_only: bool,
    ) -> Result<Outcome> {
        let mut param_types: Vec<DataType> = params
            .iter()
            .enumerate()
            .map(|(i, p)| match prepared_types.get(i) {
                Some(t) if *t != DataType::Unknown => t.clone(),
                _ => p.data_type().unwrap_or(DataType::Unknown),
            })
            .collect();
        let plan = self.plan_statement(txn, statement, &mut param_types)?;
        self.audit_pending = super::privileges::audited(&plan);
        authorize(&self.info.user, txn, &plan, read_only)?;
        let info = self.info.clone();
        let inline = self.inline;
        if inline {
            txn.limit_reads(Some(plans::INLINE_READS));
        }
        let mut ctx = Context {
            cancel: Some(self.cancel.clone()),
            deadline: self.deadline,
            ..Context::new(txn, params, &info, self.engine.statement_memory())
        };
        let engine = self.engine.clone();
        let outcome = self.execute_plan(&mut ctx, plan, engine.as_ref());
        let setting_changes = std::mem::take(&mut ctx.setting_changes);
        drop(ctx);
        if inline {
            txn.limit_reads(None);
        }
        let outcome = match outcome {
            Err(Error::ReadLimit) if inline => return Err(self.refuse_inline()),
            other => other?,
        };
        for (name, value) in setting_changes {
            self.set(&name, Some(value))?;
        }
        Ok(outcome)
    }

    fn execute_plan(&mut self, ctx: &mut Context, plan: Plan, row_ids: &dyn RowIds) -> Result<Outcome> {
        let command = |tag: &str| Ok(Outcome::Command { tag: tag.to_string() });
        match plan {
            Plan::Query { node, columns } => match self.row_sink.as_mut() {
                Some(sink) => stream_rows(sink, ctx, &node, columns, &mut self.notices),
                None => {
                    let rows = execution::collect(&node, ctx)?;
                    let tag = format!("SELECT {}", rows.len());
                    Ok(Outcome::Rows { columns, rows, tag })
                }
            },
            Plan::WithModifications { modifications, query } => {
                for (id, plan) in modifications {
                    let rows = match self.execute_plan(ctx, plan, row_ids)? {
                        Outcome::Rows { rows, .. } => rows,
                        _ => Vec::new(),
                    };
                    ctx.working_tables.insert(id, std::sync::Arc::new(rows));
                }
                self.execute_plan(ctx, *query, row_ids)
            }
            Plan::Insert { table, source, on_conflict, returning, checks } => {
                let exprs = returning.as_ref().map(|(e, _)| e.as_slice());
                let result = dml::insert(ctx, &table, &checks, &source, &on_conflict, exprs, row_ids)?;
                write_outcome(format!("INSERT 0 {}", result.count), returning.map(|(_, c)| c), result.returning)
            }
            Plan::Update { table, source, assignments, returning, checks } => {
                let exprs = returning.as_ref().map(|(e, _)| e.as_slice());
                let result = dml::update(ctx, &table, &checks, &source, &assignments, exprs)?;
                write_outcome(format!("UPDATE {}", result.count), returning.map(|(_, c)| c), result.returning)
            }
            Plan::Delete { table, source, returning } => {
                let exprs = returning.as_ref().map(|(e, _)| e.as_slice());
                let result = dml::delete(ctx, &table, &source, exprs)?;
                write_outcome(format!("DELETE {}", result.count), returning.map(|(_, c)| c), result.returning)
            }
            Plan::CreateTable { table, if_not_exists, sequences, rows } => {
                let name = table.name.clone();
                let skipped = ddl::create_table(ctx, table, if_not_exists, sequences)?;
                match rows {
                    Some(rows) if skipped.is_none() => {
                        let table = crate::catalog::must_get_table(ctx.txn, &name)?;
                        let on_conflict = planner::plan::OnConflict::Error;
                        let result = dml::insert(ctx, &table, &[], &rows, &on_conflict, None, row_ids)?;
                        command(&format!("SELECT {}", result.count))
                    }
                    _ => {
                        self.notices.extend(skipped);
                        command("CREATE TABLE")
                    }
                }
            }
            Plan::CreateSequence { sequence, if_not_exists } => {
                self.notices.extend(ddl::create_sequence(ctx, sequence, if_not_exists)?);
                command("CREATE SEQUENCE")
            }
            Plan::CreateView { view, or_replace } => {
                ddl::create_view(ctx, view, or_replace)?;
                command("CREATE VIEW")
            }
            Plan::DropView { names, if_exists, cascade } => {
                self.notices.extend(ddl::drop_views(ctx, &names, if_exists, cascade)?);
                command("DROP VIEW")
            }
            Plan::DropSequence { names, if_exists } => {
                self.notices.extend(ddl::drop_sequences(ctx, &names, if_exists)?);
                command("DROP SEQUENCE")
            }
            Plan::DropTable { names, if_exists, cascade } => {
                self.notices.extend(ddl::drop_tables(ctx, &names, if_exists, cascade)?);
                command("DROP TABLE")
            }
            Plan::CreateIndex { table, name, columns, unique, if_not_exists } => {
                self.notices.extend(ddl::create_index(ctx, &table, &name, &columns, unique, if_not_exists)?);
                command("CREATE INDEX")
            }
            Plan::DropIndex { names, if_exists } => {
                self.notices.extend(ddl::drop_indexes(ctx, &names, if_exists)?);
                command("DROP INDEX")
            }
            Plan::AlterTable { table, if_exists, .. }
                if if_exists && crate::catalog::get_table(ctx.txn, &table)?.is_none() =>
            {
                self.notices.push(format!("relation \"{table}\" does not exist, skipping"));
                command("ALTER TABLE")
            }
            Plan::AlterTable { table, action, .. } => {
                let tag = if matches!(action, planner::plan::AlterAction::SetComment { .. }) {
                    "COMMENT"
                } else {
                    "ALTER TABLE"
                };
                let notice = ddl::alter_table(ctx, &table, action, &mut |ctx, table, position| {
                    let column = &table.columns[position];
                    let Some(default) = &column.default else { return Ok(Value::Null) };
                    let sql = format!("SELECT CAST({default} AS {})", column.data_type);
                    let statement =
                        parser::parse(&sql)?.pop().ok_or_else(|| Error::Internal("empty default".into()))?;
                    let plan = planner::plan(ctx.txn, &statement, &mut Vec::new(), ctx.session.zone)?;
                    let Plan::Query { node, .. } = plan else { return Ok(Value::Null) };
                    let rows = execution::collect(&node, ctx)?;
                    Ok(rows.into_iter().next().and_then(|r| r.into_iter().next()).unwrap_or(Value::Null))
                })?;
                self.notices.extend(notice);
                command(tag)
            }
            Plan::Truncate { tables, restart_identity } => {
                ddl::truncate(ctx, &tables, restart_identity)?;
                command("TRUNCATE TABLE")
            }
            Plan::Set { name, value } => {
                self.set(&name, value)?;
                command("SET")
            }
            Plan::Show { name } => {
                let key = name.to_ascii_lowercase();
                let key = if key == "time zone" { "timezone".to_string() } else { key };
                let value = self
                    .setting(&key)
                    .ok_or_else(|| Error::UndefinedObject(format!("unrecognized configuration parameter \"{name}\"")))?
                    .to_string();
                // The column is named as PostgreSQL spells the parameter.
                let column = match key.as_str() {
                    "timezone" => "TimeZone".into(),
                    "datestyle" => "DateStyle".into(),
                    "intervalstyle" => "IntervalStyle".into(),
                    _ => key,
                };
                Ok(Outcome::Rows {
                    columns: vec![ResultColumn { name: column, data_type: DataType::Text }],
                    rows: vec![vec![Value::Text(value)]],
                    tag: "SHOW".into(),
                })
            }
            Plan::Explain(inner) => {
                let text = inner.to_string();
                let rows: Vec<Row> = text.lines().map(|l| vec![Value::Text(l.to_string())]).collect();
                Ok(Outcome::Rows {
                    columns: vec![ResultColumn { name: "QUERY PLAN".into(), data_type: DataType::Text }],
                    rows,
                    tag: "EXPLAIN".into(),
                })
            }
            Plan::CreateType { name, labels } => {
                if planner::types::parse_type_name(&name).is_ok() {
                    return Err(Error::DuplicateObject(format!("type \"{name}\" already exists")));
                }
                crate::catalog::types::create_enum(ctx.txn, &name, labels)?;
                command("CREATE TYPE")
            }
            Plan::DropType { names, if_exists } => {
                for name in names {
                    if crate::catalog::types::get_enum(ctx.txn, &name)?.is_none() {
                        if if_exists {
                            self.notices.push(format!("type \"{name}\" does not exist, skipping"));
                            continue;
                        }
                        return Err(Error::UndefinedObject(format!("type \"{name}\" does not exist")));
                    }
                    crate::catalog::types::drop_enum(ctx.txn, &name)?;
                }
                command("DROP TYPE")
            }
            Plan::Role(role_command) => {
                let tag = role_command.tag();
                self.notices.extend(super::roles::execute(ctx.txn, role_command)?);
                command(tag)
            }
            Plan::Noop { tag } => command(&tag),
            Plan::Vacuum { table } => {
                self.engine.vacuum(table.as_deref())?;
                command("VACUUM")
            }
            Plan::CopyTo { node, columns, format } => copy_to(ctx, &node, &columns, &format),
            Plan::CopyFrom { .. } => Err(Error::Internal("COPY FROM reached the executor".into())),
        }
    }

    /// A setting the client sent at start-up, which `RESET` then returns to.
    pub fn set_startup(&mut self, name: &str, value: String) -> Result<()> {
        self.set(name, Some(value.clone()))?;
        let name = name.to_ascii_lowercase();
        self.startup.retain(|(k, _)| *k != name);
        self.startup.push((name, value));
        Ok(())
    }

    /// `SET name = value` (`None`: `RESET`).
    fn set(&mut self, name: &str, value: Option<String>) -> Result<()> {
        let key = name.to_ascii_lowercase();
        let key = if key == "time zone" { "timezone".to_string() } else { key };
        if key == "all" && value.is_none() {
            let before = self.setting("timezone").map(str::to_string);
            let info = Arc::make_mut(&mut self.info);
            info.settings = default_settings();
            info.zone = Zone::UTC;
            for (name, value) in self.startup.clone() {
                self.set(&name, Some(value))?;
            }
            if self.setting("timezone").map(str::to_string) != before {
                Arc::make_mut(&mut self.info).zone_changes += 1;
            }
            return Ok(());
        }
        // RESET goes back to what the client sent at start-up, else to the default.
        let value = match value {
            Some(v) => v,
            None => self
                .startup
                .iter()
                .chain(&default_settings())
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        };
        if key == "chronos.follower_reads"
            && !matches!(value.to_ascii_lowercase().as_str(), "on" | "off" | "true" | "false")
        {
            return Err(Error::InvalidParameter(format!(
                "parameter \"chronos.follower_reads\" requires a Boolean value, not \"{value}\""
            )));
        }
        let value = if key == "chronos.follower_reads" { value.to_ascii_lowercase() } else { value };
        let zone = if key == "timezone" {
            let setting = timezone::setting(&value).map_err(|_| {
                Error::InvalidParameter(format!("invalid value for parameter \"TimeZone\": \"{value}\""))
            })?;
            Some(setting)
        } else {
            None
        };
        let changed = zone.as_ref().is_some_and(|(_, shown)| self.setting("timezone") != Some(shown.as_str()));
        let info = Arc::make_mut(&mut self.info);
        info.zone_changes += changed as u64;
        let value = match zone {
            Some((zone, shown)) => {
                info.zone = zone;
                shown
            }
            None => value,
        };
        match info.settings.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => info.settings.push((key, value)),
        }
        Ok(())
    }
}

fn write_outcome(tag: String, columns: Option<Vec<ResultColumn>>, rows: Vec<Row>) -> Result<Outcome> {
    Ok(match columns {
        Some(columns) => Outcome::Rows { columns, rows, tag },
        None => Outcome::Command { tag },
    })
}

/// Runs a query, handing its columns and then its rows in batches to `sink`.
fn stream_rows(
    sink: &mut RowSink,
    ctx: &mut Context,
    node: &planner::plan::Node,
    columns: Vec<ResultColumn>,
    notices: &mut Vec<String>,
) -> Result<Outcome> {
    let mut batch = Vec::with_capacity(STREAM_BATCH_ROWS);
    let mut count = 0usize;
    let mut streaming = false;
    execution::execute(node, ctx, &mut |_, row| {
        batch.push(row);
        count += 1;
        if batch.len() == STREAM_BATCH_ROWS {
            if !streaming {
                sink(Streamed::Columns(columns.clone(), std::mem::take(notices), ctx.session.session_zone()))?;
                streaming = true;
            }
            sink(Streamed::Rows(std::mem::replace(&mut batch, Vec::with_capacity(STREAM_BATCH_ROWS))))?;
        }
        Ok(true)
    })?;
    let tag = format!("SELECT {count}");
    if !streaming {
        // Less than a batch: an ordinary result, without the hand-offs of a stream.
        return Ok(Outcome::Rows { columns, rows: batch, tag });
    }
    if !batch.is_empty() {
        sink(Streamed::Rows(batch))?;
    }
    Ok(Outcome::Rows { columns, rows: Vec::new(), tag })
}

/// Runs COPY … TO STDOUT: its formatted lines, held against the statement's memory budget.
/// (They are not streamed: pgwire answers an error in the middle of a CopyOut with a CopyFail,
/// a frontend message that confuses clients, where a complete result fails cleanly.)
fn copy_to(
    ctx: &mut Context,
    node: &planner::plan::Node,
    columns: &[ResultColumn],
    format: &crate::sql::copy::CopyFormat,
) -> Result<Outcome> {
    let mut lines = Vec::new();
    if format.header {
        let names: Vec<Value> = columns.iter().map(|c| Value::Text(c.name.clone())).collect();
        lines.push(format.format_row(&names, &ctx.session.zone));
    }
    let mut held = ctx.memory.reserve();
    execution::execute(node, ctx, &mut |_, row| {
        let line = format.format_row(&row, &ctx.session.zone);
        held.grow(line.len() + std::mem::size_of::<String>())?;
        lines.push(line);
        Ok(true)
    })?;
    Ok(Outcome::CopyOut { columns: columns.len(), lines })
}

/// PostgreSQL's time settings: a number of milliseconds, or with a unit (`ms`, `s`, `min`, `h`).
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim().trim_matches('\'').to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().ok()?;
    Some(match unit.trim() {
        "" | "ms" => n,
        "s" => n * 1000,
        "min" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return None,
    })
}

/// Refuses a plan `user` may not run (42501), and a write inside a read-only transaction
/// (25006).
fn authorize(user: &str, txn: &mut Transaction, plan: &Plan, read_only: bool) -> Result<()> {
    if read_only && plan.writes() {
        return Err(Error::ReadOnly("cannot execute statement in a read-only transaction".into()));
    }
    super::privileges::authorize(txn, user, plan)
}

/// The columns a plan returns (empty for commands).
pub fn result_columns(plan: &Plan) -> Vec<ResultColumn> {
    match plan {
        Plan::Query { columns, .. } => columns.clone(),
        Plan::Insert { returning: Some((_, c)), .. }
        | Plan::Update { returning: Some((_, c)), .. }
        | Plan::Delete { returning: Some((_, c)), .. } => c.clone(),
        Plan::Show { name } => vec![ResultColumn { name: name.to_ascii_lowercase(), data_type: DataType::Text }],
        Plan::Explain(_) => vec![ResultColumn { name: "QUERY PLAN".into(), data_type: DataType::Text }],
        Plan::WithModifications { query, .. } => result_columns(query),
        _ => Vec::new(),
    }
}
