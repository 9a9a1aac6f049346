//! The executor: runs plan [`Node`]s against a transaction.
//!
//! Execution is push-based: a node produces rows by calling its consumer (`sink`) once per row,
//! and the consumer returns `false` to stop early (LIMIT). Scans page through storage, so a
//! pipeline of scan → filter → aggregate streams without holding the table in memory; only
//! operators that must see all their input (sort, hash join build side, window) collect it.

mod aggregate;
pub mod arith;
mod catalog_fns;
pub mod dml;
pub mod eval;
mod gapfill;
pub mod memory;
mod ops;
pub(crate) mod regex;
pub mod sequences;
mod summaries;
mod table_functions;
mod window;

use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use crate::sql::planner::plan::Node;
use crate::types::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A row of values.
pub type Row = Vec<Value>;

/// Who is asking: what `current_user`, `current_database()` and the catalog tables report.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub user: String,
    pub database: String,
    pub backend_pid: i32,
    /// Session settings (SET/SHOW), lower-case names.
    pub settings: Vec<(String, String)>,
    /// The session's time zone, the `timezone` setting resolved.
    pub zone: crate::types::timezone::Zone,
    /// How many times the `timezone` setting changed (a client is told of each change).
    pub zone_changes: u64,
    /// What `currval` and `lastval` report: the last value `nextval` returned in this session
    /// for each sequence, and the sequence it last drew from.
    pub sequence_values: Arc<Mutex<SequenceValues>>,
    /// The edge's sync worker, when this node is an edge (`chronos_sync_status`).
    pub sync: Option<Arc<crate::sync::worker::SyncStatus>>,
}

/// The session's time zone as a statement left it, for the client: the zone, its count of
/// changes ([`SessionInfo::zone_changes`]) and the setting as `SHOW` gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionZone {
    pub zone: crate::types::timezone::Zone,
    pub changes: u64,
    pub setting: String,
}

impl SessionInfo {
    pub fn session_zone(&self) -> SessionZone {
        let setting = self.settings.iter().find(|(k, _)| k == "timezone").map_or("UTC", |(_, v)| v.as_str());
        SessionZone { zone: self.zone, changes: self.zone_changes, setting: setting.to_string() }
    }
}

/// See [`SessionInfo::sequence_values`].
#[derive(Debug, Default)]
pub struct SequenceValues {
    pub by_sequence: HashMap<String, i64>,
    pub last: Option<String>,
}

impl Default for SessionInfo {
    fn default() -> Self {
        Self {
            user: "admin".into(),
            database: "chronos".into(),
            backend_pid: 1,
            settings: Vec::new(),
            zone: crate::types::timezone::Zone::UTC,
            zone_changes: 0,
            sequence_values: Default::default(),
            sync: None,
        }
    }
}

/// Everything a statement's execution needs.
pub struct Context<'a> {
    pub txn: &'a mut Transaction,
    pub params: &'a [Value],
    /// Rows of enclosing queries, innermost last (correlated subqueries).
    pub outer: Vec<Row>,
    /// Results of uncorrelated subqueries, by subquery id.
    pub subquery_cache: HashMap<usize, Arc<Vec<Row>>>,
    /// The statement's timestamp (now()), microseconds since the epoch.
    pub now: i64,
    pub session: &'a SessionInfo,
    /// The previous round's rows of each running recursive CTE.
    pub working_tables: HashMap<usize, Arc<Vec<Row>>>,
    /// Set by a cancel request; checked between pages of work.
    pub cancel: Option<Arc<AtomicBool>>,
    /// When `statement_timeout` runs out; checked with `cancel`.
    pub deadline: Option<std::time::Instant>,
    /// Sequences `nextval` has already looked up and checked in this statement, by name.
    pub sequences: HashMap<String, crate::catalog::sequences::Sequence>,
    /// The statement's memory budget.
    pub memory: memory::Memory,
    /// Settings `set_config` changed, in order: the session applies them once the statement
    /// has run (a failed statement changes none).
    pub setting_changes: Vec<(String, String)>,
}

impl<'a> Context<'a> {
    /// The context of one statement over `txn`: empty caches, the statement's time (now), no
    /// cancel flag or deadline (callers that have them set them), and its memory budget.
    pub fn new(
        txn: &'a mut Transaction,
        params: &'a [Value],
        session: &'a SessionInfo,
        memory: memory::Memory,
    ) -> Self {
        Context {
            txn,
            params,
            outer: Vec::new(),
            subquery_cache: HashMap::new(),
            now: crate::sql::functions::wall_clock_micros(),
            session,
            working_tables: HashMap::new(),
            cancel: None,
            deadline: None,
            sequences: HashMap::new(),
            memory,
            setting_changes: Vec::new(),
        }
    }

    /// The value of a session setting as this statement sees it (after its own `set_config`).
    pub fn setting(&self, name: &str) -> Option<&str> {
        let changed = self.setting_changes.iter().rev().find(|(k, _)| k == name);
        let stored = || self.session.settings.iter().find(|(k, _)| k == name);
        changed.or_else(stored).map(|(_, v)| v.as_str())
    }

    /// Fails with 57014 if the statement was cancelled.
    pub fn check_cancel(&self) -> Result<()> {
        self.interrupt().check()
    }

    /// The statement's cancel flag and deadline, for work that runs long inside one row.
    pub fn interrupt(&self) -> Interrupt<'_> {
        Interrupt { cancel: self.cancel.as_deref(), deadline: self.deadline }
    }
}

/// A statement's cancel flag (set by a cancel request) and its `statement_timeout` deadline,
/// handed to functions whose work on one row can run long (regular expressions over large
/// text).
#[derive(Clone, Copy, Default)]
pub struct Interrupt<'a> {
    cancel: Option<&'a AtomicBool>,
    deadline: Option<std::time::Instant>,
}

impl Interrupt<'_> {
    /// Fails with 57014 if the statement was cancelled or ran out of time.
    pub fn check(&self) -> Result<()> {
        if self.cancel.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return Err(Error::QueryCanceled);
        }
        if self.deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
            return Err(Error::QueryCanceledWith("canceling statement due to statement timeout".into()));
        }
        Ok(())
    }
}

/// The consumer of a node's rows; returns false to stop the producer.
pub type Sink<'s> = dyn FnMut(&mut Context, Row) -> Result<bool> + 's;

/// Runs `node`, pushing each row into `sink`.
pub fn execute(node: &Node, ctx: &mut Context, sink: &mut Sink) -> Result<()> {
    ops::execute(node, ctx, sink)
}

/// Runs `node` and collects its rows, held against the statement's memory budget while they
/// are collected (a caller that keeps them uses [`collect_held`]).
pub fn collect(node: &Node, ctx: &mut Context) -> Result<Vec<Row>> {
    let mut held = ctx.memory.reserve();
    collect_held(node, ctx, &mut held)
}

/// Runs `node` and collects its rows, held in `held` for as long as it lives.
pub fn collect_held(node: &Node, ctx: &mut Context, held: &mut memory::Reservation) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    execute(node, ctx, &mut |_, row| {
        held.add_row(&row)?;
        rows.push(row);
        Ok(true)
    })?;
    Ok(rows)
}
