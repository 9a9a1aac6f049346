//! Name resolution: the columns visible to an expression.

use crate::error::{Error, Result};
use crate::types::DataType;

/// One column visible in a scope.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeColumn {
    /// The table or alias it belongs to, if any.
    pub table: Option<String>,
    pub name: String,
    pub data_type: DataType,
    /// Not matched by unqualified names or `*` (the right-hand copy of a USING column).
    pub hidden: bool,
    /// The time column of a table read by the query (see `Table::time_column`), which the
    /// window aggregates (`avg_1h` …) go by.
    pub time: bool,
}

/// The columns of the row an expression is evaluated over, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    pub fn new(columns: Vec<ScopeColumn>) -> Self {
        Self { columns }
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Appends another scope (a join's right side).
    pub fn extend(&mut self, other: Scope) {
        self.columns.extend(other.columns);
    }

    /// Resolves `[table.]name`. `Ok(None)` when nothing matches.
    pub fn resolve(&self, table: Option<&str>, name: &str) -> Result<Option<(usize, DataType)>> {
        let mut found: Option<(usize, DataType)> = None;
        for (i, c) in self.columns.iter().enumerate() {
            let matches = match table {
                Some(t) => c.table.as_deref() == Some(t) && c.name == name,
                None => !c.hidden && c.name == name,
            };
            if matches {
                if found.is_some() {
                    return Err(Error::AmbiguousColumn(match table {
                        Some(t) => format!("{t}.{name}"),
                        None => name.to_string(),
                    }));
                }
                found = Some((i, c.data_type.clone()));
            }
        }
        Ok(found)
    }

    /// True if some column belongs to `table`.
    pub fn has_table(&self, table: &str) -> bool {
        self.columns.iter().any(|c| c.table.as_deref() == Some(table))
    }
}
