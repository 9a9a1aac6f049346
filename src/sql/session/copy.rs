//! COPY … FROM STDIN in a session: the statement starts it, the client's data arrives in
//! chunks, each complete row is written as soon as it is parsed, and the end commits it (or
//! the open transaction block goes on with it).

use super::{authorize, Outcome, Session};
use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use crate::sql::execution::{self, dml, Context};
use crate::sql::planner::{self, plan::Plan};
use crate::types::Value;
use sqlparser::ast;

/// A COPY … FROM STDIN in progress.
pub(super) struct CopyIn {
    table: crate::catalog::Table,
    targets: Vec<usize>,
    defaults: Vec<(usize, crate::sql::planner::plan::Expr)>,
    checks: Vec<crate::sql::planner::plan::BoundCheck>,
    parser: crate::sql::copy::CopyParser,
    /// The COPY's own transaction when it runs outside a transaction block.
    txn: Option<Transaction>,
    count: u64,
    /// The rows written so far, held against the statement's memory budget (they wait in
    /// the transaction until it commits).
    held: execution::memory::Reservation,
}

impl Session {
    /// Starts COPY … FROM STDIN.
    pub(super) fn copy_begin(&mut self, statement: &ast::Statement) -> Result<Outcome> {
        let read_only = self.txn.is_some() && self.txn_read_only;
        let mut own = if self.txn.is_none() { Some(self.engine.mvcc.begin()) } else { None };
        let txn = match (&mut own, &mut self.txn) {
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => return Err(Error::Internal("no transaction for COPY".into())),
        };
        let plan = planner::plan(txn, statement, &mut Vec::new(), self.info.zone);
        let plan = plan.and_then(|plan| authorize(&self.info.user, txn, &plan, read_only).map(|()| plan));
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                if self.txn.is_some() {
                    self.txn_failed = true;
                }
                return Err(e);
            }
        };
        let Plan::CopyFrom { table, targets, defaults, format, checks } = plan else {
            return Err(Error::Internal("COPY FROM without a COPY plan".into()));
        };
        let columns = targets.len();
        let held = self.engine.statement_memory().reserve();
        let parser = crate::sql::copy::CopyParser::new(format);
        self.copy_in = Some(CopyIn { table, targets, defaults, checks, parser, txn: own, count: 0, held });
        Ok(Outcome::CopyIn { columns })
    }

    /// Feeds COPY data; rows are written as soon as they are complete.
    pub fn copy_data(&mut self, data: &[u8]) -> Result<()> {
        let result = self.guarded(|s| s.copy_step(Some(data)));
        if result.is_err() {
            self.copy_abort();
        }
        result
    }

    /// Ends COPY … FROM STDIN and commits it (unless in a transaction block); returns the tag.
    pub fn copy_done(&mut self) -> Result<String> {
        if let Err(e) = self.guarded(|s| s.copy_step(None)) {
            self.copy_abort();
            return Err(e);
        }
        let Some(state) = self.copy_in.take() else {
            return Err(Error::Internal("no COPY in progress".into()));
        };
        if let Some(mut txn) = state.txn {
            self.engine.check_sync_budget(&mut txn)?;
            txn.commit()?;
        }
        Ok(format!("COPY {}", state.count))
    }

    /// Abandons a COPY after an error or a CopyFail.
    pub fn copy_abort(&mut self) {
        if let Some(state) = self.copy_in.take() {
            if state.txn.is_none() && self.txn.is_some() {
                self.txn_failed = true;
            }
        }
    }

    fn copy_step(&mut self, data: Option<&[u8]>) -> Result<()> {
        let zone = self.info.zone;
        let Some(state) = self.copy_in.as_mut() else {
            return Err(Error::Internal("no COPY in progress".into()));
        };
        let records = match data {
            Some(d) => state.parser.feed(d)?,
            None => state.parser.finish()?,
        };
        if records.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            let record_bytes: usize = record.iter().flatten().map(String::len).sum();
            if record.len() != state.targets.len() {
                let what = if record.len() > state.targets.len() {
                    "extra data after last expected column"
                } else {
                    "missing data for column"
                };
                return Err(Error::DataException(
                    "22P04",
                    format!("{what} (COPY {}, line {})", state.table.name, state.parser.line),
                ));
            }
            let mut row = vec![crate::sql::planner::plan::Expr::Constant(Value::Null); state.table.columns.len()];
            for (field, &column) in record.into_iter().zip(&state.targets) {
                let t = &state.table.columns[column].data_type;
                let value = match field {
                    None => Value::Null,
                    Some(text) => crate::types::cast::cast_in(
                        Value::Text(text),
                        t,
                        crate::types::cast::CastKind::Assignment,
                        &zone,
                    )?,
                };
                row[column] = crate::sql::planner::plan::Expr::Constant(value);
            }
            for (column, default) in &state.defaults {
                row[*column] = default.clone();
            }
            state.held.grow(row.len() * std::mem::size_of::<Value>() + record_bytes)?;
            rows.push(row);
        }
        let source = crate::sql::planner::plan::Node::Values { rows };
        let info = self.info.clone();
        let engine = self.engine.clone();
        let txn = match (&mut state.txn, &mut self.txn) {
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => return Err(Error::Internal("no transaction for COPY".into())),
        };
        let mut ctx = Context {
            cancel: Some(self.cancel.clone()),
            deadline: self.deadline,
            ..Context::new(txn, &[], &info, state.held.memory().clone())
        };
        let result = dml::insert(
            &mut ctx,
            &state.table,
            &state.checks,
            &source,
            &crate::sql::planner::plan::OnConflict::Error,
            None,
            engine.as_ref(),
        )?;
        state.count += result.count;
        Ok(())
    }
}
