//! CHECK constraints: defining them (CREATE TABLE, ALTER TABLE ADD CONSTRAINT), binding them
//! for each statement that writes their table, and keeping their text in step with the
//! table's columns (RENAME COLUMN, DROP COLUMN).
//!
//! A constraint is stored as the text of its condition over the table's unqualified column
//! names and bound again by every statement that writes the table, so it always reads the
//! table as the statement sees it.

use super::binder::{ident, Binder};
use super::dml::table_scope;
use super::plan::{BoundCheck, Expr};
use super::scope::Scope;
use crate::catalog::{Check, Table};
use crate::error::{Error, Result};
use crate::sql::parser;
use sqlparser::ast;
use std::ops::ControlFlow;

impl Binder<'_> {
    /// Binds `condition` over the row of `table` as a CHECK constraint: a boolean over the
    /// table's own columns, without subqueries, aggregates, window functions or parameters.
    fn bind_check(&mut self, table: &Table, condition: &ast::Expr) -> Result<Expr> {
        let scope = std::mem::replace(&mut self.scope, Scope::new(table_scope(table, &table.name)));
        let outer = self.outer.take();
        let saw_aggregate = std::mem::replace(&mut self.saw_aggregate, false);
        let bound = self.bind_condition(condition, "CHECK");
        let aggregate = std::mem::replace(&mut self.saw_aggregate, saw_aggregate);
        self.scope = scope;
        self.outer = outer;
        let bound = bound?;
        if aggregate {
            return Err(Error::Grouping("aggregate functions are not allowed in check constraints".into()));
        }
        let mut subquery = false;
        bound.visit_subqueries(&mut |_| subquery = true);
        if subquery {
            return Err(Error::FeatureNotSupported("cannot use subquery in check constraint".into()));
        }
        let mut parameter = None;
        bound.walk(&mut |e| {
            if let Expr::Param(i) = e {
                parameter = Some(*i);
            }
        });
        if let Some(i) = parameter {
            return Err(Error::UndefinedParameter(format!("there is no parameter ${}", i + 1)));
        }
        Ok(bound)
    }

    /// A new CHECK constraint of `table`, validated and with its column names unqualified,
    /// with the condition bound over the table's row. Unnamed, it is named as PostgreSQL names
    /// it: `<table>_<column>_check` when it reads one column, `<table>_check` otherwise, with
    /// a number appended until the name is free.
    pub fn define_check(
        &mut self,
        table: &Table,
        name: Option<String>,
        condition: &ast::Expr,
    ) -> Result<(Check, Expr)> {
        let expr = self.bind_check(table, condition)?;
        let mut columns = Vec::new();
        expr.walk(&mut |e| {
            if let Expr::Column(i) = e {
                if !columns.contains(i) {
                    columns.push(*i);
                }
            }
        });
        let taken = |n: &str| {
            table.checks.iter().any(|c| c.name == n)
                || table.indexes.iter().any(|i| i.constraint && i.name == n)
                || (!table.primary_key.is_empty() && table.pkey_name() == n)
        };
        let name = match name {
            Some(name) if taken(&name) => {
                return Err(Error::DuplicateObject(format!(
                    "constraint \"{name}\" for relation \"{}\" already exists",
                    table.name
                )))
            }
            Some(name) => name,
            None => {
                let base = match columns.as_slice() {
                    [one] => format!("{}_{}_check", table.name, table.columns[*one].name),
                    _ => format!("{}_check", table.name),
                };
                let mut name = base.clone();
                let mut n = 0;
                while taken(&name) {
                    n += 1;
                    name = format!("{base}{n}");
                }
                name
            }
        };
        let mut condition = condition.clone();
        let _ = ast::visit_expressions_mut(&mut condition, |e| {
            if let ast::Expr::CompoundIdentifier(parts) = e {
                if let Some(column) = parts.last() {
                    *e = ast::Expr::Identifier(column.clone());
                }
            }
            ControlFlow::<()>::Continue(())
        });
        Ok((Check { name, expr: condition.to_string(), not_valid: false }, expr))
    }

    /// The CHECK constraints of `table`, bound for a statement that writes it.
    pub fn table_checks(&mut self, table: &Table) -> Result<Vec<BoundCheck>> {
        table.checks.iter().map(|check| self.bind_stored_check(table, check)).collect()
    }

    /// One stored CHECK constraint of `table`, bound over the table's row.
    pub fn bind_stored_check(&mut self, table: &Table, check: &Check) -> Result<BoundCheck> {
        let condition = parser::parse_expr(&check.expr)?;
        Ok(BoundCheck { name: check.name.clone(), expr: self.bind_check(table, &condition)? })
    }
}

/// Adds `check` to `table`'s constraints, kept in name order.
pub fn add_check(table: &mut Table, check: Check) {
    let at = table.checks.partition_point(|c| c.name < check.name);
    table.checks.insert(at, check);
}

/// The names of the columns the condition of `check` reads, each once, in order of appearance.
pub fn columns_read(check: &Check) -> Result<Vec<String>> {
    let condition = parser::parse_expr(&check.expr)?;
    let mut columns = Vec::new();
    let _ = ast::visit_expressions(&condition, |e| {
        if let ast::Expr::Identifier(id) = e {
            let name = ident(id);
            if !columns.contains(&name) {
                columns.push(name);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(columns)
}

/// Whether the condition of `check` reads the column `column`.
pub fn reads_column(check: &Check, column: &str) -> Result<bool> {
    Ok(columns_read(check)?.iter().any(|c| c == column))
}

/// `check` with the column `from` renamed to `to` in its condition.
pub fn rename_column(check: &Check, from: &str, to: &str) -> Result<Check> {
    let mut condition = parser::parse_expr(&check.expr)?;
    let plain = to.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && to.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let renamed = if plain { ast::Ident::new(to) } else { ast::Ident::with_quote('"', to) };
    let _ = ast::visit_expressions_mut(&mut condition, |e| {
        if matches!(e, ast::Expr::Identifier(id) if ident(id) == from) {
            *e = ast::Expr::Identifier(renamed.clone());
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(Check { expr: condition.to_string(), ..check.clone() })
}
