//! Plans made once, at Parse, and reused by every execution of the prepared statement while
//! the definitions they were made from are unchanged (`mvcc::reads` says when that is).
//!
//! Only a statement whose planning read nothing but definitions is kept: planning is a pure
//! function of the statement, its parameter types and the definitions, so the same inputs give
//! the same plan. Each execution still authorizes the plan it runs, and replays the reads its
//! planning made, so a table altered before the execution commits fails validation as it would
//! have had the statement been planned again.

use super::{Prepared, Session};
use crate::error::Result;
use crate::mvcc::{Reads, Transaction, Version};
use crate::sql::planner::{self, plan::Plan, plan::ResultColumn};
use crate::types::DataType;
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
    /// [`Plan::is_point_read`].
    point_read: bool,
}

impl CachedPlan {
    /// The plan, if it is the one planning `statement` in `txn` with `param_types` would make;
    /// its reads then count as `txn`'s.
    fn reuse(&self, txn: &mut Transaction, param_types: &[DataType]) -> Option<Plan> {
        if self.param_types != param_types || !txn.definitions_as_of(self.version) {
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
) -> Result<(Vec<ResultColumn>, Option<Arc<CachedPlan>>)> {
    let (plan, reads) = txn.record_reads(|txn| planner::plan(txn, statement, params));
    let plan = plan?;
    let columns = super::result_columns(&plan);
    let kind = matches!(
        statement,
        ast::Statement::Query(_) | ast::Statement::Insert(_) | ast::Statement::Update(_) | ast::Statement::Delete(_)
    );
    let reusable = kind && reads.only_definitions() && !txn.wrote_definitions() && !params.contains(&DataType::Unknown);
    let cached = reusable.then(|| {
        let point_read = plan.is_point_read();
        Arc::new(CachedPlan { plan, version: txn.read_version(), reads, param_types: params.clone(), point_read })
    });
    Ok((columns, cached))
}

impl Session {
    /// True when `prepared` may run on the caller's thread rather than one that may block: it
    /// is a point read whose plan still holds, and its snapshot needs no round trip to the
    /// leader. (A definition changed between this check and the run plans the statement
    /// again, which then runs here whatever it became; the check makes that rare.)
    pub fn runs_inline(&self, prepared: &Prepared) -> bool {
        let Some(cached) = prepared.plan.as_deref() else { return false };
        let mvcc = &self.engine.mvcc;
        cached.point_read
            && self.copy_in.is_none()
            && mvcc.definitions_version() <= cached.version
            && (self.txn.is_some() || self.follower_reads() || mvcc.read_barrier_is_free())
    }

    /// The plan of the running statement: the prepared one if it still holds, else a new one.
    pub(super) fn plan_statement(
        &self,
        txn: &mut Transaction,
        statement: &ast::Statement,
        param_types: &mut Vec<DataType>,
    ) -> Result<Plan> {
        match self.plan_hint.as_deref().and_then(|cached| cached.reuse(txn, param_types)) {
            Some(plan) => Ok(plan),
            None => planner::plan(txn, statement, param_types),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::types::Value;

    /// Which prepared statements keep their plan, which of those run inline, and that a kept
    /// plan stops running inline once a definition changes.
    #[test]
    fn statements_keep_plans_and_point_reads_run_inline() {
        let engine = crate::node::open_in_memory().unwrap();
        let mut s = engine.session("admin", "chronos");
        for r in s.run("CREATE TABLE kv (id INT PRIMARY KEY, v TEXT); INSERT INTO kv VALUES (1, 'a'), (2, 'b')") {
            r.unwrap();
        }
        let kept = |s: &mut super::Session, sql: &str| {
            let p = s.prepare(sql, &[]).unwrap();
            (p.plan.is_some(), s.runs_inline(&p))
        };
        assert_eq!(kept(&mut s, "SELECT v FROM kv WHERE id = $1"), (true, true));
        assert_eq!(kept(&mut s, "SELECT v FROM kv WHERE id IN (1, 2) ORDER BY v"), (true, true));
        assert_eq!(kept(&mut s, "SELECT (SELECT v FROM kv WHERE id = 2) FROM kv WHERE id = $1"), (true, true));
        assert_eq!(kept(&mut s, "SELECT v FROM kv WHERE v = $1"), (true, false), "a scan");
        assert_eq!(kept(&mut s, "SELECT pg_sleep(0) FROM kv WHERE id = 1"), (true, false));
        assert_eq!(kept(&mut s, "INSERT INTO kv VALUES ($1, $2)"), (true, false), "a write");
        assert_eq!(kept(&mut s, "SELECT $1"), (false, false), "a parameter of no known type");
        assert_eq!(kept(&mut s, "CREATE TABLE other (id INT)"), (false, false));
        assert_eq!(kept(&mut s, "SELECT count(*) FROM pg_class"), (true, false));

        let read = s.prepare("SELECT v FROM kv WHERE id = $1", &[]).unwrap();
        let outcome = s.execute_prepared(&read, &[Value::Int4(2)], None).unwrap();
        assert!(matches!(&outcome, super::super::Outcome::Rows { rows, .. } if rows.len() == 1), "{outcome:?}");
        for r in s.run("CREATE INDEX kv_v ON kv (v)") {
            r.unwrap();
        }
        assert!(!s.runs_inline(&read), "the definitions changed since it was planned");
        let outcome = s.execute_prepared(&read, &[Value::Int4(2)], None).unwrap();
        assert!(matches!(&outcome, super::super::Outcome::Rows { rows, .. } if rows.len() == 1), "{outcome:?}");
    }
}
