//! Row writes: INSERT (with ON CONFLICT), UPDATE and DELETE, maintaining indexes and
//! enforcing NOT NULL, primary key and unique constraints.

use super::eval::{eval, truth};
use super::{Context, Row};
use crate::catalog::Table;
use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use crate::sql::planner::plan::{BoundCheck, Expr, Node, OnConflict};
use crate::storage::rowcodec;
use crate::types::timezone::Zone;
use crate::types::Value;
use std::collections::HashSet;

/// What a write statement did: rows affected and the RETURNING rows.
pub struct WriteResult {
    pub count: u64,
    pub returning: Vec<Row>,
}

/// Allocates row ids for tables without a primary key.
pub trait RowIds {
    fn next_row_id(&self) -> i64;
}

pub(crate) fn check_not_null(table: &Table, row: &[Value]) -> Result<()> {
    for (c, v) in table.columns.iter().zip(row) {
        if !c.nullable && v.is_null() {
            return Err(Error::NotNull { column: c.name.clone(), table: table.name.clone() });
        }
    }
    Ok(())
}

/// Fails with 23514 when `row` makes one of `checks` false (NULL passes, as in PostgreSQL).
pub(crate) fn check_constraints(ctx: &mut Context, table: &Table, checks: &[BoundCheck], row: &[Value]) -> Result<()> {
    for check in checks {
        if truth(eval(&check.expr, row, ctx)?)? == Some(false) {
            return Err(Error::CheckViolation {
                message: format!(
                    "new row for relation \"{}\" violates check constraint \"{}\"",
                    table.name, check.name
                ),
                detail: Some(failing_row(row, &ctx.session.zone)),
            });
        }
    }
    Ok(())
}

/// PostgreSQL's detail for a row that violates a constraint.
fn failing_row(row: &[Value], zone: &Zone) -> String {
    let values: Vec<String> =
        row.iter().map(|v| if v.is_null() { "null".to_string() } else { v.in_zone(zone).to_string() }).collect();
    format!("Failing row contains ({}).", values.join(", "))
}

fn key_detail(table: &Table, columns: &[usize], row: &[Value], zone: &Zone) -> String {
    let names: Vec<&str> = columns.iter().map(|&i| table.columns[i].name.as_str()).collect();
    let values: Vec<String> = columns.iter().map(|&i| row[i].in_zone(zone).to_string()).collect();
    format!("Key ({})=({}) already exists.", names.join(", "), values.join(", "))
}

/// The primary key bytes of a row key (without the table prefix).
fn pk_suffix(table: &Table, key: &[u8]) -> Vec<u8> {
    key[table.row_prefix().len()..].to_vec()
}

/// A unique constraint a row would violate, as (constraint columns, name, existing row key).
/// A violated unique constraint: its columns, its name and the key of the existing row.
type Conflict = (Vec<usize>, String, Vec<u8>);

fn find_conflict(
    ctx: &mut Context,
    table: &Table,
    row: &[Value],
    key: &[u8],
    skip_key: Option<&[u8]>,
) -> Result<Option<Conflict>> {
    if !table.primary_key.is_empty() && Some(key) != skip_key && ctx.txn.get(key)?.is_some() {
        return Ok(Some((table.primary_key.clone(), table.pkey_name(), key.to_vec())));
    }
    let pk = pk_suffix(table, key);
    for index in table.indexes.iter().filter(|i| i.unique) {
        if index.columns.iter().any(|&c| row[c].is_null()) {
            continue;
        }
        let (entry_key, _) = table.index_entry(index, row, &pk);
        if let Some(existing_pk) = ctx.txn.get(&entry_key)? {
            if existing_pk != pk {
                let mut existing = table.row_prefix();
                existing.extend_from_slice(&existing_pk);
                if Some(existing.as_slice()) != skip_key {
                    return Ok(Some((index.columns.clone(), index.name.clone(), existing)));
                }
            }
        }
    }
    Ok(None)
}

fn write_row(ctx: &mut Context, table: &Table, key: &[u8], row: &[Value]) {
    write_row_in(ctx.txn, table, key, row);
}

/// Writes the row `row` at `key` and its index entries in `txn`.
pub(crate) fn write_row_in(txn: &mut Transaction, table: &Table, key: &[u8], row: &[Value]) {
    let pk = pk_suffix(table, key);
    for index in &table.indexes {
        let (k, v) = table.index_entry(index, row, &pk);
        txn.set(k, v);
    }
    txn.set(key.to_vec(), rowcodec::encode_row(row));
}

/// A row deleted by a statement: on a cloud table that edges sync into, with a stamp that
/// keeps their older changes from bringing it back.
fn delete_row(ctx: &mut Context, table: &Table, key: &[u8], row: &[Value]) {
    delete_row_in(ctx.txn, table, key, row);
    if table.sync_merged {
        ctx.txn.set(Table::stamp_key(key), crate::catalog::LOCAL_DELETE_STAMP.to_vec());
    }
}

/// Deletes the row at `key` (whose values are `row`) and its index entries in `txn`.
pub(crate) fn delete_row_in(txn: &mut Transaction, table: &Table, key: &[u8], row: &[Value]) {
    let pk = pk_suffix(table, key);
    for index in &table.indexes {
        let (k, _) = table.index_entry(index, row, &pk);
        txn.delete(k);
    }
    txn.delete(key.to_vec());
}

fn read_row(ctx: &mut Context, table: &Table, key: &[u8]) -> Result<Option<Row>> {
    Ok(match ctx.txn.get(key)? {
        Some(bytes) => Some(table.decode_row(&bytes)?),
        None => None,
    })
}

fn returning_row(exprs: Option<&[Expr]>, row: &[Value], ctx: &mut Context) -> Result<Option<Row>> {
    let Some(exprs) = exprs else { return Ok(None) };
    let mut out = Vec::with_capacity(exprs.len());
    for e in exprs {
        out.push(eval(e, row, ctx)?);
    }
    Ok(Some(out))
}

/// Executes an INSERT.
pub fn insert(
    ctx: &mut Context,
    table: &Table,
    checks: &[BoundCheck],
    source: &Node,
    on_conflict: &OnConflict,
    returning: Option<&[Expr]>,
    row_ids: &dyn RowIds,
) -> Result<WriteResult> {
    let mut held = ctx.memory.reserve();
    let rows = super::collect_held(source, ctx, &mut held)?;
    let mut result = WriteResult { count: 0, returning: Vec::new() };
    let mut touched: HashSet<Vec<u8>> = HashSet::new();
    for row in rows {
        ctx.check_cancel()?;
        check_not_null(table, &row)?;
        check_constraints(ctx, table, checks, &row)?;
        let rowid = if table.primary_key.is_empty() { Some(row_ids.next_row_id()) } else { None };
        let key = table.row_key(&row, rowid);
        if let Some((columns, constraint, existing_key)) = find_conflict(ctx, table, &row, &key, None)? {
            let matches_target = |target: &Option<Vec<usize>>| match target {
                None => true,
                Some(t) => {
                    let (mut a, mut b) = (t.clone(), columns.clone());
                    a.sort_unstable();
                    b.sort_unstable();
                    a == b
                }
            };
            match on_conflict {
                OnConflict::DoNothing { target } if matches_target(target) => continue,
                OnConflict::DoUpdate { target, assignments, predicate } if matches_target(&Some(target.clone())) => {
                    if !touched.insert(existing_key.clone()) {
                        return Err(Error::CardinalityViolation(
                            "ON CONFLICT DO UPDATE command cannot affect row a second time".into(),
                        ));
                    }
                    let existing = read_row(ctx, table, &existing_key)?
                        .ok_or_else(|| Error::Internal("conflicting row vanished".into()))?;
                    let mut combined = existing.clone();
                    combined.extend(row.iter().cloned());
                    if let Some(p) = predicate {
                        if truth(eval(p, &combined, ctx)?)? != Some(true) {
                            continue;
                        }
                    }
                    let mut updated = existing.clone();
                    for (i, e) in assignments {
                        updated[*i] = eval(e, &combined, ctx)?;
                    }
                    apply_update(ctx, table, checks, &existing_key, &existing, updated.clone())?;
                    result.count += 1;
                    if let Some(r) = returning_row(returning, &updated, ctx)? {
                        result.returning.push(r);
                    }
                    continue;
                }
                _ => {
                    return Err(Error::UniqueViolation {
                        constraint,
                        detail: key_detail(table, &columns, &row, &ctx.session.zone),
                    });
                }
            }
        }
        touched.insert(key.clone());
        write_row(ctx, table, &key, &row);
        result.count += 1;
        if let Some(r) = returning_row(returning, &row, ctx)? {
            result.returning.push(r);
        }
    }
    Ok(result)
}

/// Replaces the row at `key` (whose current value is `old`) with `new`, moving it if its
/// primary key changed.
fn apply_update(
    ctx: &mut Context,
    table: &Table,
    checks: &[BoundCheck],
    key: &[u8],
    old: &[Value],
    new: Row,
) -> Result<()> {
    check_not_null(table, &new)?;
    check_constraints(ctx, table, checks, &new)?;
    let new_key = if table.primary_key.is_empty() { key.to_vec() } else { table.row_key(&new, None) };
    if let Some((columns, constraint, _)) = find_conflict(ctx, table, &new, &new_key, Some(key))? {
        return Err(Error::UniqueViolation {
            constraint,
            detail: key_detail(table, &columns, &new, &ctx.session.zone),
        });
    }
    if new_key == key {
        // The same row, new values: its old index entries go.
        delete_row_in(ctx.txn, table, key, old);
    } else {
        delete_row(ctx, table, key, old);
    }
    write_row(ctx, table, &new_key, &new);
    Ok(())
}

/// Executes an UPDATE whose source rows are `table row ++ key ++ extra`.
pub fn update(
    ctx: &mut Context,
    table: &Table,
    checks: &[BoundCheck],
    source: &Node,
    assignments: &[(usize, Expr)],
    returning: Option<&[Expr]>,
) -> Result<WriteResult> {
    let width = table.columns.len();
    let mut held = ctx.memory.reserve();
    let rows = super::collect_held(source, ctx, &mut held)?;
    let mut result = WriteResult { count: 0, returning: Vec::new() };
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for row in rows {
        ctx.check_cancel()?;
        let Some(Value::Bytea(key)) = row.get(width).cloned() else {
            return Err(Error::Internal("update source without row key".into()));
        };
        if !seen.insert(key.clone()) {
            continue;
        }
        // Read the current version: an earlier update in this statement may have moved it.
        let Some(old) = read_row(ctx, table, &key)? else { continue };
        let mut new = old.clone();
        for (i, e) in assignments {
            new[*i] = eval(e, &row, ctx)?;
        }
        apply_update(ctx, table, checks, &key, &old, new.clone())?;
        result.count += 1;
        if let Some(r) = returning_row(returning, &new, ctx)? {
            result.returning.push(r);
        }
    }
    Ok(result)
}

/// Executes a DELETE whose source rows are `table row ++ key ++ extra`.
pub fn delete(ctx: &mut Context, table: &Table, source: &Node, returning: Option<&[Expr]>) -> Result<WriteResult> {
    let width = table.columns.len();
    let mut held = ctx.memory.reserve();
    let rows = super::collect_held(source, ctx, &mut held)?;
    let mut result = WriteResult { count: 0, returning: Vec::new() };
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for row in rows {
        let Some(Value::Bytea(key)) = row.get(width).cloned() else {
            return Err(Error::Internal("delete source without row key".into()));
        };
        if !seen.insert(key.clone()) {
            continue;
        }
        delete_row(ctx, table, &key, &row[..width]);
        result.count += 1;
        if let Some(r) = returning_row(returning, &row[..width], ctx)? {
            result.returning.push(r);
        }
    }
    Ok(result)
}

/// Fails with 23514 when an existing row of `table` makes `check` false (ALTER TABLE ADD
/// CONSTRAINT … CHECK).
pub fn validate_check(ctx: &mut Context, table: &Table, check: &BoundCheck) -> Result<()> {
    for (_, bytes) in ctx.txn.scan_prefix(&table.row_prefix())? {
        ctx.check_cancel()?;
        let row = table.decode_row(&bytes)?;
        if truth(eval(&check.expr, &row, ctx)?)? == Some(false) {
            return Err(Error::CheckViolation {
                message: format!(
                    "check constraint \"{}\" of relation \"{}\" is violated by some row",
                    check.name, table.name
                ),
                detail: None,
            });
        }
    }
    Ok(())
}

/// Writes index entries for every existing row (CREATE INDEX), enforcing uniqueness.
pub fn build_index(ctx: &mut Context, table: &Table, index_pos: usize) -> Result<()> {
    let index = &table.indexes[index_pos];
    let prefix = table.row_prefix();
    let pairs = ctx.txn.scan_prefix(&prefix)?;
    let mut seen: HashSet<Vec<Value>> = HashSet::new();
    for (key, bytes) in pairs {
        let row = table.decode_row(&bytes)?;
        let values: Vec<Value> = index.columns.iter().map(|&c| row[c].clone()).collect();
        if index.unique && !values.iter().any(Value::is_null) && !seen.insert(values) {
            return Err(Error::UniqueViolation {
                constraint: index.name.clone(),
                detail: key_detail(table, &index.columns, &row, &ctx.session.zone)
                    .replace("already exists", "is duplicated"),
            });
        }
        let (k, v) = table.index_entry(index, &row, &pk_suffix(table, &key));
        ctx.txn.set(k, v);
    }
    Ok(())
}

/// Moves every row of `old` (keyed by row id) to its primary key in `new`, rebuilding the
/// indexes, whose entries embed the key (ALTER TABLE ADD PRIMARY KEY).
pub fn rekey_rows(ctx: &mut Context, old: &Table, new: &Table) -> Result<()> {
    let rows = ctx.txn.scan_prefix(&old.row_prefix())?;
    for (key, _) in ctx.txn.scan_prefix(&old.all_indexes_prefix())? {
        ctx.txn.delete(key);
    }
    for (key, _) in &rows {
        ctx.txn.delete(key.clone());
    }
    let mut seen = HashSet::new();
    for (_, bytes) in rows {
        let mut row = rowcodec::decode_row(&bytes)?;
        row.resize(new.columns.len(), Value::Null);
        check_not_null(new, &row)?;
        let key = new.row_key(&row, None);
        if !seen.insert(key.clone()) {
            return Err(Error::UniqueViolation {
                constraint: new.pkey_name(),
                detail: key_detail(new, &new.primary_key, &row, &ctx.session.zone)
                    .replace("already exists", "is duplicated"),
            });
        }
        write_row(ctx, new, &key, &row);
    }
    Ok(())
}

/// Rewrites every row through `f` (ALTER TABLE ADD/DROP COLUMN).
pub fn rewrite_rows(
    ctx: &mut Context,
    old: &Table,
    new: &Table,
    f: &mut dyn FnMut(&mut Context, Row) -> Result<Row>,
) -> Result<()> {
    for (key, bytes) in ctx.txn.scan_prefix(&old.row_prefix())? {
        let mut row = rowcodec::decode_row(&bytes)?;
        row.resize(old.columns.len(), Value::Null);
        let new_row = f(ctx, row)?;
        check_not_null(new, &new_row)?;
        ctx.txn.set(key, rowcodec::encode_row(&new_row));
    }
    Ok(())
}
