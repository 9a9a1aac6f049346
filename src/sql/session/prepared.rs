//! SQL-level prepared statements: `PREPARE name [(types)] AS statement`, `EXECUTE name
//! [(arguments)]` and `DEALLOCATE [PREPARE] name | ALL`. As in PostgreSQL, a prepared
//! statement belongs to the session and lasts until it is deallocated or the session ends,
//! whatever the transactions around it do. Its plan is made once and reused while no
//! definition it read changed (as a protocol-level prepared statement's, [`super::plans`]);
//! after a change it is planned again, once, so it follows changes of the tables it reads.

use super::plans::{self, CachedPlan};
use super::{Outcome, Session};
use crate::error::{Error, Result};
use crate::sql::execution::{self, Context};
use crate::sql::planner::{self, binder::ident, plan::Plan, plan::ResultColumn, types};
use crate::types::DataType;
use sqlparser::ast;
use std::sync::Arc;

/// A statement `PREPARE` named, with its parameters' types (declared, or inferred from how
/// the statement uses them).
pub(super) struct SqlPrepared {
    statement: ast::Statement,
    param_types: Vec<DataType>,
    /// Its result columns, whose types must not change (PostgreSQL: 0A000).
    columns: Vec<ResultColumn>,
    /// Its plan, while it holds.
    plan: Option<Arc<CachedPlan>>,
}

fn result_types(columns: &[ResultColumn]) -> Vec<&DataType> {
    columns.iter().map(|c| &c.data_type).collect()
}

fn undefined(name: &str) -> Error {
    Error::DataException("26000", format!("prepared statement \"{name}\" does not exist"))
}

impl Session {
    /// `PREPARE name [(types)] AS statement`: the statement is planned once to check it and to
    /// infer the types of the parameters not declared.
    pub(super) fn sql_prepare(
        &mut self,
        name: &ast::Ident,
        data_types: &[ast::DataType],
        statement: &ast::Statement,
    ) -> Result<Outcome> {
        let name = ident(name);
        if self.sql_prepared.contains_key(&name) {
            return Err(Error::DataException("42P05", format!("prepared statement \"{name}\" already exists")));
        }
        if !matches!(
            statement,
            ast::Statement::Query(_)
                | ast::Statement::Insert(_)
                | ast::Statement::Update(_)
                | ast::Statement::Delete(_)
        ) {
            return Err(Error::Syntax {
                message: "PREPARE takes SELECT, VALUES, INSERT, UPDATE or DELETE".into(),
                position: None,
            });
        }
        let zone = self.info.zone;
        let (param_types, columns, plan) = self.with_read_txn(|txn| {
            let mut params =
                data_types.iter().map(|t| types::resolve_type(txn, &t.to_string())).collect::<Result<Vec<_>>>()?;
            let (columns, plan) = plans::plan_to_reuse(txn, statement, &mut params, zone)?;
            Ok((params, columns, plan))
        })?;
        let param_types =
            param_types.into_iter().map(|t| if t == DataType::Unknown { DataType::Text } else { t }).collect();
        let prepared = SqlPrepared { statement: statement.clone(), param_types, columns, plan };
        self.sql_prepared.insert(name, prepared);
        Ok(Outcome::Command { tag: "PREPARE".into() })
    }

    /// `EXECUTE name [(arguments)]`: the arguments are evaluated and converted to the
    /// parameters' types, then the statement runs as if sent with them.
    pub(super) fn sql_execute(&mut self, name: Option<&ast::ObjectName>, arguments: &[ast::Expr]) -> Result<Outcome> {
        let name = name.map(planner::binder::object_name).unwrap_or_default();
        let prepared = self.sql_prepared.get(&name).ok_or_else(|| undefined(&name))?;
        let (statement, param_types) = (prepared.statement.clone(), prepared.param_types.clone());
        let (expected, cached) = (prepared.columns.clone(), prepared.plan.clone());
        if arguments.len() != param_types.len() {
            return Err(Error::Syntax {
                message: format!(
                    "wrong number of parameters for prepared statement \"{name}\": expected {}, got {}",
                    param_types.len(),
                    arguments.len()
                ),
                position: None,
            });
        }
        let info = self.info.clone();
        let memory = self.engine.statement_memory();
        let (cancel, deadline, read_only) = (self.cancel.clone(), self.deadline, self.txn_read_only);
        let (values, replanned) = self.with_read_txn(|txn| {
            // A plan that no longer holds is made again here, once, and must keep the result
            // types; the statement then runs with it.
            let replanned = match cached.as_deref().filter(|c| c.holds(txn, &param_types, info.zone)) {
                Some(_) => None,
                None => {
                    let mut types = param_types.clone();
                    let (now, plan) = plans::plan_to_reuse(txn, &statement, &mut types, info.zone)?;
                    if result_types(&now) != result_types(&expected) {
                        return Err(Error::FeatureNotSupported("cached plan must not change result type".into()));
                    }
                    Some(plan)
                }
            };
            // The arguments are a query of their own: what they read or write is authorized
            // as any statement's, and a cancel or the statement timeout ends them.
            let plan = planner::plan_row(txn, arguments, &param_types, info.zone)?;
            super::authorize(&info.user, txn, &plan, read_only)?;
            let Plan::Query { node, .. } = plan else {
                return Err(Error::Internal("EXECUTE's arguments planned to something else".into()));
            };
            let mut ctx = Context { cancel: Some(cancel), deadline, ..Context::new(txn, &[], &info, memory) };
            Ok((execution::collect(&node, &mut ctx)?.pop().unwrap_or_default(), replanned))
        })?;
        let plan = match replanned {
            Some(plan) => {
                self.planned += 1;
                if let Some(prepared) = self.sql_prepared.get_mut(&name) {
                    prepared.plan = plan.clone();
                }
                plan
            }
            None => cached,
        };
        // (An EXECUTE statement has no plan of its own to keep; a panic clears the hint too.)
        self.plan_hint = plan;
        let result = self.execute_statement(&statement, &values, &param_types);
        self.plan_hint = None;
        result
    }

    /// The result columns of `EXECUTE name`, for the extended protocol's Describe.
    pub(super) fn sql_prepared_columns(&self, name: Option<&ast::ObjectName>) -> Result<Vec<ResultColumn>> {
        let name = name.map(planner::binder::object_name).unwrap_or_default();
        self.sql_prepared.get(&name).map(|p| p.columns.clone()).ok_or_else(|| undefined(&name))
    }

    /// `DEALLOCATE [PREPARE] name | ALL`.
    pub(super) fn sql_deallocate(&mut self, name: &ast::Ident) -> Result<Outcome> {
        if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
            self.sql_prepared.clear();
            return Ok(Outcome::Command { tag: "DEALLOCATE ALL".into() });
        }
        let name = ident(name);
        if self.sql_prepared.remove(&name).is_none() {
            return Err(undefined(&name));
        }
        Ok(Outcome::Command { tag: "DEALLOCATE".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Outcome;
    use crate::types::Value;
    use std::sync::Arc;

    fn run(s: &mut super::Session, sql: &str) -> Vec<Vec<Value>> {
        let mut last = Vec::new();
        for r in s.run(sql) {
            if let Outcome::Rows { rows, .. } = r.unwrap() {
                last = rows;
            }
        }
        last
    }

    /// `EXECUTE` runs the plan `PREPARE` made while no definition changed, plans once more
    /// after a change (keeping that plan), and refuses a plan whose result types changed.
    #[test]
    fn execute_runs_the_plan_prepare_made_until_a_definition_changes() {
        let engine = crate::node::open_in_memory().unwrap();
        let mut s = engine.session("admin", "chronos");
        run(&mut s, "CREATE TABLE kv (id INT PRIMARY KEY, v TEXT); INSERT INTO kv VALUES (1, 'a'), (2, 'b')");
        run(&mut s, "PREPARE q (int) AS SELECT v FROM kv WHERE id = $1; PREPARE star AS SELECT * FROM kv");
        let plan = |s: &super::Session| s.sql_prepared["q"].plan.clone().expect("a plan kept");
        let first = plan(&s);
        let planned = s.planned;
        assert_eq!(run(&mut s, "EXECUTE q (1)"), [[Value::Text("a".into())]]);
        assert_eq!(run(&mut s, "EXECUTE q (2)"), [[Value::Text("b".into())]]);
        assert_eq!(s.planned, planned, "EXECUTE ran the plan PREPARE made");
        assert!(Arc::ptr_eq(&first, &plan(&s)));
        run(&mut s, "CREATE INDEX kv_v ON kv (v)");
        let planned = s.planned;
        assert_eq!(run(&mut s, "EXECUTE q (2)"), [[Value::Text("b".into())]]);
        assert_eq!(s.planned, planned + 1, "planned again, once, after a definition changed");
        let second = plan(&s);
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(run(&mut s, "EXECUTE q (1)"), [[Value::Text("a".into())]]);
        assert_eq!(s.planned, planned + 1, "and that plan kept");
        assert!(Arc::ptr_eq(&second, &plan(&s)));
        run(&mut s, "ALTER TABLE kv ADD COLUMN w INT");
        let err = s.run("EXECUTE star").pop().unwrap().unwrap_err();
        assert_eq!(err.sqlstate(), "0A000", "{err}");
    }
}
