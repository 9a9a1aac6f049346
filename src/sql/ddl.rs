//! Execution of DDL statements against the catalog.

use super::execution::{self, dml, Context};
use super::planner::plan::{AlterAction, StorageParameters};
use crate::catalog::sequences::{self, Sequence};
use crate::catalog::views::{self, View};
use crate::catalog::{self, Index, Table};
use crate::error::{Error, Result};
use crate::types::Value;

/// True if a table, index, sequence or view (one namespace, as in PostgreSQL) is named
/// `name`.
fn relation_exists(ctx: &mut Context, name: &str) -> Result<bool> {
    Ok(catalog::get_table(ctx.txn, name)?.is_some()
        || catalog::find_index(ctx.txn, name)?.is_some()
        || sequences::get_sequence(ctx.txn, name)?.is_some()
        || views::get_view(ctx.txn, name)?.is_some())
}

/// CREATE [OR REPLACE] VIEW.
pub fn create_view(ctx: &mut Context, mut view: View, or_replace: bool) -> Result<()> {
    let existing = views::get_view(ctx.txn, &view.name)?;
    if existing.is_some() && !or_replace {
        return Err(Error::DuplicateTable(view.name));
    }
    if existing.is_none() && relation_exists(ctx, &view.name)? {
        return Err(if or_replace {
            Error::WrongObjectType(format!("\"{}\" is not a view", view.name))
        } else {
            Error::DuplicateTable(view.name)
        });
    }
    view.id = match existing {
        Some(old) => old.id,
        None => catalog::next_id(ctx.txn, "view_id")?,
    };
    views::save_view(ctx.txn, &view)
}

/// DROP VIEW.
pub fn drop_views(ctx: &mut Context, names: &[String], if_exists: bool, cascade: bool) -> Result<Vec<String>> {
    let mut notices = Vec::new();
    let mut dropped = Vec::new();
    for name in names {
        match views::get_view(ctx.txn, name)? {
            Some(_) => {
                views::remove_view(ctx.txn, name);
                dropped.push((name.clone(), "view"));
            }
            None if if_exists => notices.push(format!("view \"{name}\" does not exist, skipping")),
            None => return Err(Error::UndefinedTable(name.clone())),
        }
    }
    drop_dependent_views(ctx, dropped, cascade, &mut notices)?;
    Ok(notices)
}

/// Refuses (2BP01) to drop tables and views that remaining views read, as PostgreSQL does,
/// or with CASCADE drops those views too, and the views that read them. `dropped` are the
/// relations the statement drops, each with its kind (`table`, `view`).
fn drop_dependent_views(
    ctx: &mut Context,
    dropped: Vec<(String, &'static str)>,
    cascade: bool,
    notices: &mut Vec<String>,
) -> Result<()> {
    if dropped.is_empty() {
        return Ok(());
    }
    let mut remaining = Vec::new();
    for view in views::list_views(ctx.txn)? {
        let reads = crate::sql::planner::view_reads(&view)?;
        remaining.push((view.name, reads));
    }
    let mut gone: Vec<String> = dropped.iter().map(|(name, _)| name.clone()).collect();
    remaining.retain(|(name, _)| !gone.contains(name));
    // Breadth first: each dependent once, in the order it was reached.
    let mut edges = Vec::new();
    let mut queue: std::collections::VecDeque<(String, &str)> = dropped.into_iter().collect();
    while let Some((name, kind)) = queue.pop_front() {
        for (view, reads) in &remaining {
            if reads.contains(&name) && !gone.contains(view) {
                edges.push(format!("view {view} depends on {kind} {name}"));
                gone.push(view.clone());
                queue.push_back((view.clone(), "view"));
            }
        }
    }
    let Some(first) = edges.first() else { return Ok(()) };
    if !cascade {
        let (_, object) = first.split_once(" depends on ").unwrap_or_default();
        return Err(Error::DependentObjects {
            message: format!("cannot drop {object} because other objects depend on it"),
            detail: edges.join("\n"),
        });
    }
    let cascaded: Vec<&String> = remaining.iter().map(|(name, _)| name).filter(|n| gone.contains(n)).collect();
    for name in &cascaded {
        views::remove_view(ctx.txn, name);
    }
    notices.push(match cascaded.as_slice() {
        [one] => format!("drop cascades to view {one}"),
        many => format!("drop cascades to {} other objects", many.len()),
    });
    Ok(())
}

/// CREATE TABLE with the sequences its SERIAL and identity columns own; returns a notice when
/// IF NOT EXISTS skipped it.
pub fn create_table(
    ctx: &mut Context,
    mut table: Table,
    if_not_exists: bool,
    owned: Vec<Sequence>,
) -> Result<Option<String>> {
    if relation_exists(ctx, &table.name)? {
        if if_not_exists {
            return Ok(Some(format!("relation \"{}\" already exists, skipping", table.name)));
        }
        return Err(Error::DuplicateTable(table.name));
    }
    for name in table.indexes.iter().map(|ix| &ix.name).chain(owned.iter().map(|s| &s.name)) {
        if relation_exists(ctx, name)? {
            return Err(Error::DuplicateTable(name.clone()));
        }
    }
    table.id = catalog::next_id(ctx.txn, "table_id")?;
    catalog::save_table(ctx.txn, &table)?;
    for sequence in owned {
        save_new_sequence(ctx, sequence)?;
    }
    Ok(None)
}

/// CREATE SEQUENCE; returns a notice when IF NOT EXISTS skipped it.
pub fn create_sequence(ctx: &mut Context, sequence: Sequence, if_not_exists: bool) -> Result<Option<String>> {
    if relation_exists(ctx, &sequence.name)? {
        if if_not_exists {
            return Ok(Some(format!("relation \"{}\" already exists, skipping", sequence.name)));
        }
        return Err(Error::DuplicateTable(sequence.name));
    }
    if let Some((table, column)) = &sequence.owned_by {
        let owner = catalog::must_get_table(ctx.txn, table)?;
        if owner.column_index(column).is_none() {
            return Err(Error::UndefinedColumn(format!("{column}\" of relation \"{table}")));
        }
    }
    save_new_sequence(ctx, sequence)?;
    Ok(None)
}

fn save_new_sequence(ctx: &mut Context, mut sequence: Sequence) -> Result<()> {
    sequence.id = catalog::next_id(ctx.txn, "sequence_id")?;
    sequences::save_sequence(ctx.txn, &sequence)
}

/// DROP SEQUENCE: refused for a sequence a column owns (drop the column or table instead).
pub fn drop_sequences(ctx: &mut Context, names: &[String], if_exists: bool) -> Result<Vec<String>> {
    let mut notices = Vec::new();
    for name in names {
        match sequences::get_sequence(ctx.txn, name)? {
            Some(sequence) => {
                if let Some((table, column)) = &sequence.owned_by {
                    if catalog::get_table(ctx.txn, table)?.is_some() {
                        return Err(Error::DependentObjects {
                            message: format!("cannot drop sequence {name} because other objects depend on it"),
                            detail: format!(
                                "default value for column {column} of table {table} depends on sequence {name}"
                            ),
                        });
                    }
                }
                remove_sequence(ctx, &sequence);
            }
            None if if_exists => notices.push(format!("sequence \"{name}\" does not exist, skipping")),
            None => return Err(Error::UndefinedTable(name.clone())),
        }
    }
    Ok(notices)
}

fn remove_sequence(ctx: &mut Context, sequence: &Sequence) {
    sequences::remove_sequence(ctx.txn, sequence);
    ctx.txn.mvcc().forget_counter(&sequence.counter_key());
}

/// Removes the sequences the columns of `table` own (`column`: only that column's).
fn drop_owned_sequences(ctx: &mut Context, table: &str, column: Option<&str>) -> Result<()> {
    for sequence in sequences::list_sequences(ctx.txn)? {
        if let Some((t, c)) = &sequence.owned_by {
            if t == table && column.is_none_or(|col| col == c) {
                remove_sequence(ctx, &sequence);
            }
        }
    }
    Ok(())
}

/// DROP TABLE.
pub fn drop_tables(ctx: &mut Context, names: &[String], if_exists: bool, cascade: bool) -> Result<Vec<String>> {
    let mut notices = Vec::new();
    let mut dropped = Vec::new();
    for name in names {
        match catalog::get_table(ctx.txn, name)? {
            Some(table) => {
                catalog::retire_table_keys(ctx.txn, &table);
                catalog::remove_table(ctx.txn, name);
                drop_owned_sequences(ctx, name, None)?;
                dropped.push((name.clone(), "table"));
            }
            None if if_exists => notices.push(format!("table \"{name}\" does not exist, skipping")),
            None => return Err(Error::UndefinedTable(name.clone())),
        }
    }
    drop_dependent_views(ctx, dropped, cascade, &mut notices)?;
    Ok(notices)
}

/// CREATE INDEX, built over the existing rows.
pub fn create_index(
    ctx: &mut Context,
    table_name: &str,
    name: &str,
    columns: &[String],
    unique: bool,
    if_not_exists: bool,
) -> Result<Option<String>> {
    let mut table = catalog::must_get_table(ctx.txn, table_name)?;
    match add_index(ctx, &mut table, name, columns, unique, false) {
        Err(Error::DuplicateTable(_)) if if_not_exists => {
            Ok(Some(format!("relation \"{name}\" already exists, skipping")))
        }
        Err(e) => Err(e),
        Ok(()) => {
            catalog::save_table(ctx.txn, &table)?;
            Ok(None)
        }
    }
}

/// Adds index `name` over `columns` to `table` (the caller saves it) and writes its entries
/// for the existing rows; `constraint` for a UNIQUE constraint rather than CREATE INDEX.
fn add_index(
    ctx: &mut Context,
    table: &mut Table,
    name: &str,
    columns: &[String],
    unique: bool,
    constraint: bool,
) -> Result<()> {
    if catalog::find_index(ctx.txn, name)?.is_some()
        || catalog::get_table(ctx.txn, name)?.is_some()
        || table.indexes.iter().any(|i| i.name == name)
        || name == table.pkey_name()
    {
        return Err(Error::DuplicateTable(name.to_string()));
    }
    let mut positions = Vec::new();
    for c in columns {
        positions.push(table.column_index(c).ok_or_else(|| Error::UndefinedColumn(c.clone()))?);
    }
    let index = Index { id: table.next_index_id, name: name.to_string(), columns: positions, unique, constraint };
    table.next_index_id += 1;
    table.indexes.push(index);
    dml::build_index(ctx, table, table.indexes.len() - 1)
}

/// DROP INDEX.
pub fn drop_indexes(ctx: &mut Context, names: &[String], if_exists: bool) -> Result<Vec<String>> {
    let mut notices = Vec::new();
    for name in names {
        match catalog::find_index(ctx.txn, name)? {
            Some((mut table, pos)) => {
                let index = table.indexes.remove(pos);
                for (key, _) in ctx.txn.scan_prefix(&table.index_prefix(&index))? {
                    ctx.txn.delete(key);
                }
                catalog::save_table(ctx.txn, &table)?;
            }
            None if if_exists => notices.push(format!("index \"{name}\" does not exist, skipping")),
            None => {
                if catalog::get_table(ctx.txn, name)?.is_some() {
                    return Err(Error::WrongObjectType(format!("\"{name}\" is not an index")));
                }
                return Err(Error::UndefinedObject(format!("index \"{name}\" does not exist")));
            }
        }
    }
    Ok(notices)
}

/// ALTER TABLE.
pub fn alter_table(
    ctx: &mut Context,
    table_name: &str,
    action: AlterAction,
    default_of: &mut dyn FnMut(&mut Context, &Table, usize) -> Result<Value>,
) -> Result<Option<String>> {
    // `OWNER TO` a superuser names a sequence, view or index as often as a table (pg_dump's
    // scripts), and so may SET or RESET of parameters with no meaning here: they change
    // nothing of any of them.
    let changes_nothing = match &action {
        AlterAction::Nothing => true,
        AlterAction::SetStorage(set) => *set == StorageParameters::default(),
        _ => false,
    };
    if changes_nothing && catalog::get_table(ctx.txn, table_name)?.is_none() && relation_exists(ctx, table_name)? {
        return Ok(None);
    }
    let table = catalog::must_get_table(ctx.txn, table_name)?;
    let mut new = table.clone();
    match action {
        AlterAction::AddColumn { column, if_not_exists } => {
            if table.column_index(&column.name).is_some() {
                if if_not_exists {
                    return Ok(Some(format!(
                        "column \"{}\" of relation \"{}\" already exists, skipping",
                        column.name, table.name
                    )));
                }
                return Err(Error::DuplicateColumn(format!("{}\" of relation \"{}", column.name, table.name)));
            }
            new.columns.push(column);
            let position = new.columns.len() - 1;
            let new_ref = new.clone();
            dml::rewrite_rows(ctx, &table, &new, &mut |ctx, mut row| {
                row.push(default_of(ctx, &new_ref, position)?);
                Ok(row)
            })?;
        }
        AlterAction::DropColumn { name, if_exists } => {
            let Some(position) = table.column_index(&name) else {
                if if_exists {
                    return Ok(Some(format!(
                        "column \"{name}\" of relation \"{}\" does not exist, skipping",
                        table.name
                    )));
                }
                return Err(Error::UndefinedColumn(format!("{name}\" of relation \"{}", table.name)));
            };
            if table.primary_key.contains(&position) {
                return Err(Error::FeatureNotSupported("dropping a primary key column".into()));
            }
            if table.declared_time == Some(position) {
                return Err(Error::FeatureNotSupported("dropping the table's time_column".into()));
            }
            if table.columns.len() == 1 {
                return Err(Error::FeatureNotSupported("dropping the last column".into()));
            }
            // Indexes on the column go with it.
            for index in table.indexes.iter().filter(|i| i.columns.contains(&position)) {
                for (key, _) in ctx.txn.scan_prefix(&table.index_prefix(index))? {
                    ctx.txn.delete(key);
                }
            }
            new.indexes.retain(|i| !i.columns.contains(&position));
            new.columns.remove(position);
            let shift = |c: usize| if c > position { c - 1 } else { c };
            new.primary_key = new.primary_key.iter().map(|&c| shift(c)).collect();
            new.declared_time = new.declared_time.map(shift);
            for index in new.indexes.iter_mut() {
                index.columns = index.columns.iter().map(|&c| shift(c)).collect();
            }
            // CHECK constraints that read the column go with it, as in PostgreSQL.
            let mut checks = Vec::new();
            for check in new.checks.drain(..) {
                if !crate::sql::planner::checks::reads_column(&check, &name)? {
                    checks.push(check);
                }
            }
            new.checks = checks;
            dml::rewrite_rows(ctx, &table, &new, &mut |_, mut row| {
                row.remove(position);
                Ok(row)
            })?;
            drop_owned_sequences(ctx, &table.name, Some(&name))?;
        }
        AlterAction::RenameColumn { from, to } => {
            let position = table.column_index(&from).ok_or_else(|| Error::UndefinedColumn(from.clone()))?;
            if table.column_index(&to).is_some() {
                return Err(Error::DuplicateColumn(format!("{to}\" of relation \"{}", table.name)));
            }
            new.columns[position].name = to.clone();
            for check in new.checks.iter_mut() {
                *check = crate::sql::planner::checks::rename_column(check, &from, &to)?;
            }
            rename_owner(ctx, (&table.name, &from), (&table.name, &to))?;
        }
        AlterAction::AddPrimaryKey { columns } => {
            if !table.primary_key.is_empty() {
                return Err(Error::InvalidTableDefinition(format!(
                    "multiple primary keys for table \"{}\" are not allowed",
                    table.name
                )));
            }
            let mut positions = Vec::new();
            for c in &columns {
                positions.push(table.column_index(c).ok_or_else(|| Error::UndefinedColumn(c.clone()))?);
            }
            for &p in &positions {
                new.columns[p].nullable = false;
            }
            new.primary_key = positions;
            dml::rekey_rows(ctx, &table, &new)?;
        }
        AlterAction::SetDefault { column, default } => {
            let position = table.column_index(&column).ok_or_else(|| Error::UndefinedColumn(column.clone()))?;
            new.columns[position].default = default;
        }
        AlterAction::SetNotNull { column, not_null } => {
            let position = table.column_index(&column).ok_or_else(|| Error::UndefinedColumn(column.clone()))?;
            if !not_null && table.primary_key.contains(&position) {
                return Err(Error::InvalidTableDefinition(format!("column \"{column}\" is in a primary key")));
            }
            new.columns[position].nullable = !not_null;
            if not_null {
                // Existing rows must satisfy the constraint.
                dml::rewrite_rows(ctx, &table, &new, &mut |_, row| Ok(row))?;
            }
        }
        AlterAction::SetType { column, data_type } => {
            let position = table.column_index(&column).ok_or_else(|| Error::UndefinedColumn(column.clone()))?;
            if table.primary_key.contains(&position) || table.indexes.iter().any(|i| i.columns.contains(&position)) {
                return Err(Error::FeatureNotSupported("changing the type of a key or indexed column".into()));
            }
            new.columns[position].data_type = data_type.clone();
            let zone = ctx.session.zone;
            dml::rewrite_rows(ctx, &table, &new, &mut |_, mut row| {
                let value = std::mem::replace(&mut row[position], Value::Null);
                row[position] =
                    crate::types::cast::cast_in(value, &data_type, crate::types::cast::CastKind::Assignment, &zone)?;
                Ok(row)
            })?;
        }
        AlterAction::RenameTable { to } => {
            if relation_exists(ctx, &to)? {
                return Err(Error::DuplicateTable(to));
            }
            catalog::remove_table(ctx.txn, &table.name);
            for column in &table.columns {
                rename_owner(ctx, (&table.name, &column.name), (&to, &column.name))?;
            }
            // Views that read the table follow it, as in PostgreSQL.
            for mut view in views::list_views(ctx.txn)? {
                if let Some(sql) = crate::sql::planner::rename_relation(&view, &table.name, &to)? {
                    view.sql = sql;
                    views::save_view(ctx.txn, &view)?;
                }
            }
            new.name = to;
        }
        AlterAction::AddCheck { check, expr } => {
            if !check.not_valid {
                let bound = crate::sql::planner::plan::BoundCheck { name: check.name.clone(), expr };
                dml::validate_check(ctx, &table, &bound)?;
            }
            crate::sql::planner::checks::add_check(&mut new, check);
        }
        AlterAction::ValidateCheck { name, expr } => {
            let Some(expr) = expr else { return Ok(None) };
            let bound = crate::sql::planner::plan::BoundCheck { name: name.clone(), expr };
            dml::validate_check(ctx, &table, &bound)?;
            for check in new.checks.iter_mut().filter(|c| c.name == name) {
                check.not_valid = false;
            }
        }
        AlterAction::DropConstraint { name, if_exists } => match new.checks.iter().position(|c| c.name == name) {
            Some(i) => {
                new.checks.remove(i);
            }
            None if table.pkey_name() == name || table.indexes.iter().any(|i| i.constraint && i.name == name) => {
                return Err(Error::FeatureNotSupported("dropping a primary key or unique constraint".into()));
            }
            None if if_exists => {
                return Ok(Some(format!(
                    "constraint \"{name}\" of relation \"{}\" does not exist, skipping",
                    table.name
                )))
            }
            None => {
                return Err(Error::UndefinedObject(format!(
                    "constraint \"{name}\" of relation \"{}\" does not exist",
                    table.name
                )))
            }
        },
        AlterAction::Nothing => return Ok(None),
        AlterAction::SetStorage(set) => {
            if set == StorageParameters::default() {
                return Ok(None);
            }
            if let Some(ttl) = set.ttl {
                new.ttl = ttl;
            }
            if let Some(sync) = set.sync {
                new.no_sync = !sync;
            }
            if set.time_column.is_some() {
                return Err(crate::sql::planner::time_column_fixed());
            }
        }
        AlterAction::AddUnique { name, columns } => {
            let name = name.unwrap_or_else(|| format!("{}_{}_key", table.name, columns.join("_")));
            add_index(ctx, &mut new, &name, &columns, true, true)?;
        }
        AlterAction::SetComment { column: None, comment } => new.comment = comment,
        AlterAction::SetComment { column: Some(name), comment } => match new.column_index(&name) {
            Some(position) => new.columns[position].comment = comment,
            None => {
                return Err(Error::UndefinedColumn(format!("{name}\" of relation \"{}", table.name)));
            }
        },
    }
    // A TTL needs its time column: dropping it or changing its type is refused.
    crate::sql::ttl::check(&new)?;
    // Summaries follow the table's shape; applying the change rebuilds them when it changes
    // the columns (see `timeseries::summary`).
    new.summarized = new.time_series_column().is_some();
    catalog::save_table(ctx.txn, &new)?;
    Ok(None)
}

/// Moves the ownership of sequences owned by column `from` to column `to` (renames).
fn rename_owner(ctx: &mut Context, from: (&str, &str), to: (&str, &str)) -> Result<()> {
    for mut sequence in sequences::list_sequences(ctx.txn)? {
        if sequence.owned_by.as_ref().is_some_and(|(t, c)| (t.as_str(), c.as_str()) == from) {
            sequence.owned_by = Some((to.0.to_string(), to.1.to_string()));
            sequences::save_sequence(ctx.txn, &sequence)?;
        }
    }
    Ok(())
}

/// TRUNCATE.
pub fn truncate(ctx: &mut Context, names: &[String], restart_identity: bool) -> Result<()> {
    // A fresh id gives the table new, empty keyspaces; the old ones are retired. So TRUNCATE
    // writes nothing per row, and snapshots from before it still read the old rows.
    for name in names {
        let mut table = catalog::must_get_table(ctx.txn, name)?;
        catalog::retire_table_keys(ctx.txn, &table);
        table.lineage = Some(table.lineage());
        table.id = catalog::next_id(ctx.txn, "table_id")?;
        if table.sync_merged {
            // Its version is the truncate's: edges' changes from before it stay out.
            ctx.txn.set(table.stamp_floor_key(), Vec::new());
        }
        catalog::save_table(ctx.txn, &table)?;
    }
    if restart_identity {
        for sequence in sequences::list_sequences(ctx.txn)? {
            if sequence.owned_by.as_ref().is_some_and(|(table, _)| names.contains(table)) {
                execution::sequences::restart(ctx, &sequence)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::sql::Outcome;

    fn count(session: &mut crate::sql::Session, sql: &str) -> i64 {
        match session.run(sql).pop() {
            Some(Ok(Outcome::Rows { rows, .. })) => rows[0][0].as_i64().unwrap(),
            other => panic!("{sql}: {other:?}"),
        }
    }

    /// TRUNCATE and DROP TABLE write two records, not a tombstone per row; snapshots from
    /// before still read the old rows, and garbage collection removes them once none does.
    #[test]
    fn truncated_and_dropped_tables_are_removed_by_gc() {
        let engine = crate::node::open_in_memory().unwrap();
        let storage = engine.mvcc().storage().clone();
        let mut s = engine.session("admin", "chronos");
        let mut reader = engine.session("admin", "chronos");
        for r in s.run(
            "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v); \
             INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) AS g",
        ) {
            r.unwrap();
        }
        let keys = |prefix: u8| storage.scan_prefix(&[prefix]).count();
        let (rows, entries) = (keys(0x02), keys(0x03));
        assert_eq!((rows, entries), (500, 500));

        // An open transaction keeps reading the rows from before the TRUNCATE.
        assert_eq!(count(&mut reader, "BEGIN; SELECT count(*) FROM t"), 500);
        let commits = engine.mvcc().commits();
        s.run("TRUNCATE t").pop().unwrap().unwrap();
        assert_eq!(engine.mvcc().commits(), commits + 1);
        assert_eq!(count(&mut s, "SELECT count(*) FROM t"), 0);
        assert_eq!(count(&mut reader, "SELECT count(*) FROM t WHERE v = 'v7'"), 1);
        engine.gc().unwrap();
        assert_eq!(keys(0x02), 500, "still read by the open transaction");

        reader.run("COMMIT").pop().unwrap().unwrap();
        for r in s.run("INSERT INTO t VALUES (1, 'a'), (2, 'b')") {
            r.unwrap();
        }
        engine.gc().unwrap();
        assert_eq!((keys(0x02), keys(0x03)), (2, 2));
        assert_eq!(count(&mut s, "SELECT count(*) FROM t WHERE v = 'b'"), 1);

        s.run("DROP TABLE t").pop().unwrap().unwrap();
        engine.gc().unwrap();
        assert_eq!((keys(0x02), keys(0x03)), (0, 0));
    }
}
