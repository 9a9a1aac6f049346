//! Planning of views: `CREATE VIEW` checks the query by planning it, and a view read in FROM
//! is its stored query planned again, as a subquery named after the view.

use super::binder::{ident, object_name, Binder};
use super::plan::{Node, Plan};
use super::scope::ScopeColumn;
use crate::catalog::views::{self, View};
use crate::error::{Error, Result};
use sqlparser::ast;

impl Binder<'_> {
    pub(super) fn plan_create_view(&mut self, create: &ast::CreateView) -> Result<Plan> {
        let name = object_name(&create.name);
        let (_, columns) = self.child(None).plan_query(&create.query)?;
        let mut names: Vec<String> = columns.iter().filter(|c| !c.hidden).map(|c| c.name.clone()).collect();
        if create.columns.len() > names.len() {
            return Err(Error::Syntax {
                message: "CREATE VIEW specifies more column names than columns".into(),
                position: None,
            });
        }
        for (n, def) in names.iter_mut().zip(&create.columns) {
            *n = ident(&def.name);
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(Error::DuplicateColumn(format!("column \"{n}\" specified more than once")));
            }
        }
        let view = View { id: 0, name, sql: create.query.to_string(), columns: names };
        Ok(Plan::CreateView { view, or_replace: create.or_replace })
    }

    /// A view in FROM: its query planned again, columns named as the view names them.
    pub(super) fn plan_view(&mut self, view: &View) -> Result<(Node, Vec<ScopeColumn>)> {
        let query = parse_view(view)?;
        views::expand(&view.name, || {
            // The view's names mean what they meant at CREATE VIEW: not the reader's CTEs.
            let mut child = self.child(None);
            child.ctes = Default::default();
            let (node, mut columns) = child.plan_query(&query)?;
            columns.retain(|c| !c.hidden);
            for (column, name) in columns.iter_mut().zip(&view.columns) {
                column.name = name.clone();
            }
            Ok((node, columns))
        })
    }
}

/// The stored query of a view.
pub fn parse_view(view: &View) -> Result<ast::Query> {
    match crate::sql::parser::parse(&view.sql)?.pop() {
        Some(ast::Statement::Query(query)) => Ok(*query),
        _ => Err(Error::Corruption(format!("view {}: stored query does not parse", view.name))),
    }
}

/// A view's columns with their types, as its query plans now (None if it no longer plans,
/// e.g. after a table under it was dropped).
pub fn view_columns(txn: &mut crate::mvcc::Transaction, view: &View) -> Option<Vec<(String, crate::types::DataType)>> {
    let query = parse_view(view).ok()?;
    match super::plan(txn, &ast::Statement::Query(Box::new(query)), &mut Vec::new()).ok()? {
        Plan::Query { columns, .. } => {
            Some(view.columns.iter().cloned().zip(columns.into_iter().map(|c| c.data_type)).collect())
        }
        _ => None,
    }
}
