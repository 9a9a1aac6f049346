//! Relation names resolve to one object: `name`, `schema.name` or `database.schema.name`. The
//! database must be this one and is dropped; `public.` is dropped; `pg_catalog.` and
//! `information_schema.` stay for the binder's system tables. Any other qualification is an
//! error here, so that no later pass can read a name differently from another.

use super::DATABASE;
use crate::error::{Error, Result};
use crate::sql::planner::binder::ident;
use sqlparser::ast;
use std::ops::ControlFlow;

/// Checks and normalizes every relation name in `statement`.
pub fn resolve(statement: &mut ast::Statement) -> Result<()> {
    let mut error = None;
    let _ = ast::visit_relations_mut(statement, |name: &mut ast::ObjectName| match qualify(name) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            error = Some(e);
            ControlFlow::Break(())
        }
    });
    error.map_or(Ok(()), Err)
}

fn part(part: &ast::ObjectNamePart) -> Option<String> {
    match part {
        ast::ObjectNamePart::Identifier(i) => Some(ident(i)),
        _ => None,
    }
}

fn qualify(name: &mut ast::ObjectName) -> Result<()> {
    let text = name.to_string();
    let parts = &mut name.0;
    if parts.iter().any(|p| part(p).is_none()) {
        return Err(Error::FeatureNotSupported(format!("relation name {text}")));
    }
    if parts.len() > 3 {
        return Err(Error::Syntax {
            message: format!("improper qualified name (too many dotted names): {text}"),
            position: None,
        });
    }
    if parts.len() == 3 {
        if part(&parts[0]).as_deref() != Some(DATABASE) {
            return Err(Error::FeatureNotSupported(format!("cross-database references are not implemented: {text}")));
        }
        parts.remove(0);
    }
    if parts.len() == 2 {
        match part(&parts[0]).as_deref() {
            Some("public") => {
                parts.remove(0);
            }
            Some("pg_catalog" | "information_schema") => {}
            Some(schema) => {
                let table = part(&parts[1]).unwrap_or_default();
                return Err(Error::UndefinedTable(format!("{schema}.{table}")));
            }
            None => {}
        }
    }
    Ok(())
}
