//! Plans made once, at Parse, and reused by every execution of the prepared statement while
//! the definitions they were made from are unchanged (`mvcc::reads` says when that is).
//!
//! Only a statement whose planning read nothing but definitions is kept: planning is a pure
//! function of the statement, its parameter types and the definitions, so the same inputs give
//! the same plan. Each execution still authorizes the plan it runs, and replays the reads its
//! planning made, so a table altered before the execution commits fails validation as it would
//! have had the statement been planned again.

use super::{Outcome, Prepared, Session};
use crate::error::{Error, Result};
use crate::mvcc::{Reads, Transaction, Version};
use crate::sql::parser;
use crate::sql::planner::{self, plan::Plan, plan::ResultColumn};
use crate::types::timezone::Zone;
use crate::types::{DataType, Value};
use sqlparser::ast;
use std::sync::Arc;

/// A plan kept for reuse.
#[derive(Debug)]
pub struct CachedPlan {
    plan: Plan,
    /// The snapshot it was planned at.
    version: Version,
    /// What planning read (definitions only).
    reads: Reads,
    /// The parameter types it was planned with.
    param_types: Vec<DataType>,
    /// The session's time zone it was planned in (literals are read in it).
    zone: Zone,
    /// [`Plan::is_short_read`].
    short_read: bool,
}

impl CachedPlan {
    /// True if planning the statement in `txn` with `param_types` in `zone` would make this plan.
    pub(super) fn holds(&self, txn: &Transaction, param_types: &[DataType], zone: Zone) -> bool {
        self.param_types == param_types && self.zone == zone && txn.definitions_as_of(self.version)
    }

    /// The plan, if it is the one planning `statement` in `txn` with `param_types` would make;
    /// its reads then count as `txn`'s.
    fn reuse(&self, txn: &mut Transaction, param_types: &[DataType], zone: Zone) -> Option<Plan> {
        if !self.holds(txn, param_types, zone) {
            return None;
        }
        txn.replay_reads(&self.reads);
        Some(self.plan.clone())
    }
}

/// Plans `statement` (inferring `params`) and returns its result columns, with the plan when it
/// can be reused.
pub(super) fn plan_to_reuse(
    txn: &mut Transaction,
    statement: &ast::Statement,
    params: &mut Vec<DataType>,
    zone: Zone,
) -> Result<(Vec<ResultColumn>, Option<Arc<CachedPlan>>)> {
    let declared = params.clone();
    let (plan, reads) = txn.record_reads(|txn| planner::plan(txn, statement, params, zone));
    let mut plan = plan?;
    let mut reads = reads;
    if *params != declared && !params.contains(&DataType::Unknown) {
        // A parameter whose type planning inferred is bound differently (cast where it is
        // first used) from one declared with that type, as every execution declares it.
        let (again, again_reads) = txn.record_reads(|txn| planner::plan(txn, statement, &mut params.clone(), zone));
        (plan, reads) = (again?, again_reads);
    }
    let columns = super::result_columns(&plan);
    let kind = matches!(
        statement,
        ast::Statement::Query(_) | ast::Statement::Insert(_) | ast::Statement::Update(_) | ast::Statement::Delete(_)
    );
    let reusable = kind && reads.only_definitions() && !txn.wrote_definitions() && !params.contains(&DataType::Unknown);
    let cached = reusable.then(|| {
        let short_read = plan.is_short_read();
        Arc::new(CachedPlan { plan, version: txn.read_version(), reads, param_types: params.clone(), zone, short_read })
    });
    Ok((columns, cached))
}

/// The most stored entries a statement running on the connection's task may visit
/// ([`Session::try_execute_inline`]): about a millisecond of reading. A statement that needs
/// more stops there and runs again on a blocking thread.
pub(super) const INLINE_READS: usize = 1_000;

/// Longest statement string [`Session::parse_simple`] plans where it arrived.
const SIMPLE_PLAN_BYTES: usize = 4096;

/// A statement string of the simple query protocol, parsed where it arrived, and planned when
/// it is one short query ([`Session::parse_simple`]).
pub enum Simple {
    /// One query, with its plan kept.
    Query(Box<Prepared>),
    /// Anything else, or the parse error: for [`Session::run_parsed`].
    Statements(Result<Vec<ast::Statement>>),
    /// A string too long to parse where it arrived: for [`Session::run_streaming`].
    Long(String),
}

impl Session {
    /// Parses `sql` when it is no longer than [`SIMPLE_PLAN_BYTES`], and plans it when it is
    /// one query, so that a short read can run on the caller's thread
    /// ([`Session::try_execute_inline`]) and any other query runs without being planned
    /// again. A query that fails to plan, or whose plan cannot be kept, comes back as a
    /// statement to run as usual (which reports the error).
    pub fn parse_simple(&mut self, sql: &str) -> Simple {
        if sql.len() > SIMPLE_PLAN_BYTES {
            return Simple::Long(sql.to_string());
        }
        let mut statements = match parser::parse(sql) {
            Ok(s) => s,
            Err(e) => return Simple::Statements(Err(e)),
        };
        if !matches!(statements.as_slice(), [ast::Statement::Query(_)]) || self.copy_in.is_some() {
            return Simple::Statements(Ok(statements));
        }
        let Some(statement) = statements.pop() else { return Simple::Statements(Ok(statements)) };
        let mut params = Vec::new();
        let zone = self.info.zone;
        let planned = self.guarded(|s| s.with_read_txn(|txn| plan_to_reuse(txn, &statement, &mut params, zone)));
        match planned {
            Ok((columns, Some(plan))) => Simple::Query(Box::new(Prepared {
                statement: Some(statement),
                param_types: params,
                columns,
                plan: Some(plan),
            })),
            _ => Simple::Statements(Ok(vec![statement])),
        }
    }

    /// Runs `prepared` on the caller's thread if it is a short read ([`Plan::is_short_read`])
    /// whose kept plan holds for the snapshot it reads, that snapshot needs no round trip to
    /// the leader, and it visits at most [`INLINE_READS`] stored entries. Returns None, having
    /// changed nothing the client can see, when any of these turns out false at the moment it
    /// is checked: the statement then runs as usual, on a thread that may wait.
    pub fn try_execute_inline(&mut self, prepared: &Prepared, params: &[Value]) -> Option<Result<Outcome>> {
        if !prepared.plan.as_deref().is_some_and(|p| p.short_read) || self.copy_in.is_some() {
            return None;
        }
        let notices = self.notices.len();
        self.inline = true;
        let result = self.execute_prepared(prepared, params, None);
        self.inline = false;
        if std::mem::take(&mut self.inline_refused) {
            self.notices.truncate(notices);
            return None;
        }
        Some(result)
    }

    /// The error a statement running inline stops with where it would wait or plan again.
    pub(super) fn refuse_inline(&mut self) -> Error {
        self.inline_refused = true;
        Error::Internal("this statement cannot run on the connection's task".into())
    }

    /// The plan of the running statement: the prepared one if it still holds, else a new one.
    pub(super) fn plan_statement(
        &mut self,
        txn: &mut Transaction,
        statement: &ast::Statement,
        param_types: &mut Vec<DataType>,
    ) -> Result<Plan> {
        let zone = self.info.zone;
        match self.plan_hint.as_deref().and_then(|cached| cached.reuse(txn, param_types, zone)) {
            Some(plan) => Ok(plan),
            None if self.inline => Err(self.refuse_inline()),
            None => {
                self.planned += 1;
                planner::plan(txn, statement, param_types, zone)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Outcome;
    use crate::types::Value;

    fn run(s: &mut super::Session, sql: &str) {
        for r in s.run(sql) {
            r.unwrap();
        }
    }

    fn rows(outcome: Option<crate::error::Result<Outcome>>) -> Option<usize> {
        match outcome?.unwrap() {
            Outcome::Rows { rows, .. } => Some(rows.len()),
            other => panic!("{other:?}"),
        }
    }

    /// Which prepared statements keep their plan, which of those run inline, and that one
    /// whose plan no longer holds (a definition changed, here or in its own transaction)
    /// does not run inline and leaves the transaction usable.
    #[test]
    fn statements_keep_plans_and_short_reads_run_inline() {
        let engine = crate::node::open_in_memory().unwrap();
        let mut s = engine.session("admin", "chronos");
        run(&mut s, "CREATE TABLE kv (id INT PRIMARY KEY, v TEXT); INSERT INTO kv VALUES (1, 'a'), (2, 'b')");
        let mut kept = |sql: &str| {
            let p = s.prepare(sql, &[]).unwrap();
            let params: Vec<Value> = p.param_types.iter().map(|_| Value::Int4(1)).collect();
            (p.plan.is_some(), s.try_execute_inline(&p, &params).is_some())
        };
        assert_eq!(kept("SELECT v FROM kv WHERE id = $1"), (true, true));
        assert_eq!(kept("SELECT v FROM kv WHERE id IN (1, 2) ORDER BY v"), (true, true));
        assert_eq!(kept("SELECT (SELECT v FROM kv WHERE id = 2) FROM kv WHERE id = $1"), (true, true));
        assert_eq!(kept("SELECT v FROM kv WHERE v = 'a'"), (true, false), "a scan");
        assert_eq!(kept("SELECT count(*) FROM kv WHERE id BETWEEN 1 AND $1"), (true, true), "a key range");
        assert_eq!(kept("SELECT pg_sleep(0) FROM kv WHERE id = 1"), (true, false));
        assert_eq!(kept("INSERT INTO kv VALUES ($1 + 10, 'c')"), (true, false), "a write");
        assert_eq!(kept("SELECT $1"), (false, false), "a parameter of no known type");
        assert_eq!(kept("CREATE TABLE other (id INT)"), (false, false));
        assert_eq!(kept("SELECT count(*) FROM pg_class"), (true, false));

        let read = s.prepare("SELECT v FROM kv WHERE id = $1", &[]).unwrap();
        assert_eq!(rows(s.try_execute_inline(&read, &[Value::Int4(2)])), Some(1));
        run(&mut s, "CREATE INDEX kv_v ON kv (v)");
        assert_eq!(rows(s.try_execute_inline(&read, &[Value::Int4(2)])), None, "planned before the index");
        assert_eq!(rows(Some(s.execute_prepared(&read, &[Value::Int4(2)], None))), Some(1));

        let read = s.prepare("SELECT v FROM kv WHERE id = $1", &[]).unwrap();
        run(&mut s, "BEGIN; DROP TABLE kv; CREATE TABLE kv AS SELECT 2 AS id, 'x' AS v");
        assert_eq!(rows(s.try_execute_inline(&read, &[Value::Int4(2)])), None, "its own transaction changed kv");
        assert_eq!(rows(Some(s.execute_prepared(&read, &[Value::Int4(2)], None))), Some(1));
        run(&mut s, "COMMIT");
    }

    /// A short read that turns out to read more than [`INLINE_READS`] entries stops, leaves
    /// nothing behind (no notice, no failed transaction), and runs in full as usual.
    #[test]
    fn a_read_past_the_inline_limit_runs_again_as_usual() {
        let engine = crate::node::open_in_memory().unwrap();
        let mut s = engine.session("admin", "chronos");
        let n = super::INLINE_READS + 500;
        run(&mut s, "CREATE TABLE r (id INT PRIMARY KEY, device TEXT); CREATE INDEX r_device ON r (device)");
        run(
            &mut s,
            &format!(
                "INSERT INTO r SELECT g, CASE WHEN g <= 10 THEN 'few' ELSE 'many' END FROM generate_series(1, {n}) g"
            ),
        );
        let count = s.prepare("SELECT count(*) FROM r WHERE device = $1", &[]).unwrap();
        let counted = |outcome: Option<crate::error::Result<Outcome>>| match outcome.map(|o| o.unwrap()) {
            Some(Outcome::Rows { rows, .. }) => Some(rows[0][0].clone()),
            None => None,
            Some(other) => panic!("{other:?}"),
        };
        let few = [Value::Text("few".into())];
        let many = [Value::Text("many".into())];
        assert_eq!(counted(s.try_execute_inline(&count, &few)), Some(Value::Int8(10)));
        run(&mut s, "BEGIN");
        assert_eq!(counted(s.try_execute_inline(&count, &many)), None, "past the limit");
        assert_eq!(counted(Some(s.execute_prepared(&count, &many, None))), Some(Value::Int8(n as i64 - 10)));
        run(&mut s, "INSERT INTO r VALUES (0, 'few')");
        assert_eq!(counted(s.try_execute_inline(&count, &few)), Some(Value::Int8(11)), "sees its own write");
        // The transaction's own writes count too.
        let own = super::INLINE_READS + 1;
        run(&mut s, &format!("INSERT INTO r SELECT g, 'own' FROM generate_series({}, {}) g", n + 1, n + own));
        let mine = [Value::Text("own".into())];
        assert_eq!(counted(s.try_execute_inline(&count, &mine)), None, "past the limit in own writes");
        assert_eq!(counted(Some(s.execute_prepared(&count, &mine, None))), Some(Value::Int8(own as i64)));
        run(&mut s, "COMMIT");
        let range = s.prepare("SELECT count(*) FROM r WHERE id >= $1", &[]).unwrap();
        assert_eq!(counted(s.try_execute_inline(&range, &[Value::Int4(1)])), None);
        let last_six = [Value::Int4((n + own) as i32 - 5)];
        assert_eq!(counted(s.try_execute_inline(&range, &last_six)), Some(Value::Int8(6)));
    }
}
