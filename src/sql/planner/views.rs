//! Planning of views: `CREATE VIEW` checks the query by planning it, and a view read in FROM
//! is its stored query planned again, as a subquery named after the view.

use super::binder::{ident, object_name, Binder};
use super::plan::{Node, Plan};
use super::scope::ScopeColumn;
use crate::catalog::views::{self, View};
use crate::error::{Error, Result};
use sqlparser::ast;
use std::collections::BTreeSet;
use std::ops::ControlFlow;

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
/// The tables and views a view's query names (what it depends on), its own CTEs left out.
pub fn view_reads(view: &View) -> Result<BTreeSet<String>> {
    Ok(relations_read(&parse_view(view)?))
}

/// The tables and views a query names, its own CTEs left out.
fn relations_read(query: &ast::Query) -> BTreeSet<String> {
    struct Names {
        relations: BTreeSet<String>,
        ctes: BTreeSet<String>,
    }
    impl ast::Visitor for Names {
        type Break = ();
        fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<()> {
            for cte in query.with.iter().flat_map(|w| &w.cte_tables) {
                self.ctes.insert(ident(&cte.alias.name));
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_relation(&mut self, relation: &ast::ObjectName) -> ControlFlow<()> {
            self.relations.insert(object_name(relation));
            ControlFlow::Continue(())
        }
    }
    let mut names = Names { relations: BTreeSet::new(), ctes: BTreeSet::new() };
    let _ = ast::Visit::visit(query, &mut names);
    names.relations.difference(&names.ctes).cloned().collect()
}

/// The view's query with the relation `from` renamed to `to` (ALTER TABLE … RENAME TO), as
/// SQL text; None when the view does not read `from`.
pub fn rename_relation(view: &View, from: &str, to: &str) -> Result<Option<String>> {
    let mut query = parse_view(view)?;
    if !relations_read(&query).contains(from) {
        return Ok(None);
    }
    let plain = to.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !to.starts_with(|c: char| c.is_ascii_digit());
    let _ = ast::visit_relations_mut(&mut query, |name: &mut ast::ObjectName| {
        if object_name(name) == from {
            if let Some(ast::ObjectNamePart::Identifier(last)) = name.0.last_mut() {
                *last = if plain { ast::Ident::new(to) } else { ast::Ident::with_quote('"', to) };
            }
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(Some(query.to_string()))
}

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
    match super::plan(txn, &ast::Statement::Query(Box::new(query)), &mut Vec::new(), crate::types::timezone::Zone::UTC)
        .ok()?
    {
        Plan::Query { columns, .. } => {
            Some(view.columns.iter().cloned().zip(columns.into_iter().map(|c| c.data_type)).collect())
        }
        _ => None,
    }
}
