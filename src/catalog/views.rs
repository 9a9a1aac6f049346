//! Views (`CREATE VIEW`): a stored query, planned again wherever the view is read. The
//! definition is a catalog record under [`VIEW`]: the query's SQL text and the view's column
//! names.

use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use crate::storage::keyspace::Keyspace;
use serde::{Deserialize, Serialize};
use std::cell::Cell;

/// Keyspace of view definitions.
pub const VIEW: Keyspace = Keyspace::View;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Unique for the life of the database (its catalog oid is derived from it).
    #[serde(default)]
    pub id: u32,
    pub name: String,
    /// The query, as SQL text.
    pub sql: String,
    /// The view's column names (the query's, or those CREATE VIEW gave).
    pub columns: Vec<String>,
}

pub fn get_view(txn: &mut Transaction, name: &str) -> Result<Option<View>> {
    super::get_record(txn, VIEW, name, &format!("view {name}"))
}

pub fn list_views(txn: &mut Transaction) -> Result<Vec<View>> {
    super::list_records(txn, VIEW, "view")
}

pub fn save_view(txn: &mut Transaction, view: &View) -> Result<()> {
    super::put_record(txn, VIEW, &view.name, view)
}

pub fn remove_view(txn: &mut Transaction, name: &str) {
    txn.delete(super::record_key(VIEW, name));
}

/// Views nested deeper than this are taken for a cycle (views made to read each other with
/// CREATE OR REPLACE).
const MAX_DEPTH: usize = 32;

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` one view deeper; fails with 42P17 past [`MAX_DEPTH`], as PostgreSQL reports
/// views that read each other.
pub fn expand<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let depth = DEPTH.with(|d| d.get());
    if depth >= MAX_DEPTH {
        return Err(Error::InvalidObjectDefinition(format!(
            "infinite recursion detected in rules for relation \"{name}\""
        )));
    }
    DEPTH.with(|d| d.set(depth + 1));
    let result = f();
    DEPTH.with(|d| d.set(depth));
    result
}
