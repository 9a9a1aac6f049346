//! Rows that arrive as values rather than SQL (MQTT ingestion), written in a session's open
//! transaction block with the plan an INSERT binds to ([`planner::plan_values`]).

use super::{authorize, Session};
use crate::error::{Error, Result};
use crate::mvcc::Savepoint;
use crate::sql::execution::{dml, Context};
use crate::sql::planner::{self, plan::Plan};
use crate::types::Value;

/// Who a write of [`Session::insert_values`] is authorized for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// The session's role, as for its statements.
    Role,
    /// The server itself, writing a table of its own (`chronos_mqtt_rejected`).
    Server,
}

impl Session {
    /// Writes `rows` (each a value per target, of its column's type) into `table` in the open
    /// transaction block; returns how many rows were written. An error leaves some of the rows
    /// written: the caller rewinds to a [`Session::mark`] or rolls back, and the block stays
    /// usable (it is not marked failed).
    pub fn insert_values(
        &mut self,
        table: &str,
        targets: &[String],
        rows: Vec<Vec<Value>>,
        upsert: bool,
        writer: Writer,
    ) -> Result<u64> {
        self.guarded(|s| {
            let Some(txn) = s.txn.as_mut() else {
                return Err(Error::NoActiveTransaction("rows can only be written in a transaction block".into()));
            };
            let plan = planner::plan_values(txn, table, targets, rows, upsert)?;
            if writer == Writer::Role {
                authorize(&s.info.user, txn, &plan, s.txn_read_only)?;
            }
            let Plan::Insert { table, source, on_conflict, checks, .. } = plan else {
                return Err(Error::Internal("a plan of values that is not an INSERT".into()));
            };
            let info = s.info.clone();
            let engine = s.engine.clone();
            let mut ctx = Context::new(txn, &[], &info, engine.statement_memory());
            Ok(dml::insert(&mut ctx, &table, &checks, &source, &on_conflict, None, engine.as_ref())?.count)
        })
    }

    /// The writes of the open transaction block so far, to [`Session::rewind`] to.
    pub fn mark(&self) -> Option<Savepoint> {
        self.txn.as_ref().map(|t| t.savepoint())
    }

    /// Undoes the writes made since `mark`.
    pub fn rewind(&mut self, mark: &Savepoint) {
        if let Some(txn) = self.txn.as_mut() {
            txn.rollback_to(mark);
        }
        self.txn_failed = false;
    }
}
