//! The planner: binds a parsed statement against the catalog into a typed [`plan::Plan`],
//! then runs the [`optimizer`] passes over it.
//!
//! Binding resolves every name (tables, columns, functions) and type; errors here are the
//! user's (unknown column 42703, type mismatch 42804, …). The plan is data: enums of nodes and
//! expressions that the executor interprets, printable with EXPLAIN.

mod aggregates;
pub mod binder;
pub mod checks;
mod dml;
mod gapfill;
mod grouping_sets;
mod join_order;
pub mod optimizer;
pub mod plan;
pub mod scope;
mod select;
pub mod sequences;
mod set_functions;
pub mod summaries;
pub mod types;
mod views;
mod walk;
pub use views::{parse_view, rename_relation, view_columns, view_reads};

use crate::catalog::{self, Column, Index, Table};
use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use crate::types::timezone::Zone;
use crate::types::DataType;
use binder::{ident, object_name, object_name_parts, Binder};
use plan::{AlterAction, Node, Plan, ResultColumn, StorageParameters};
use sqlparser::ast;

/// Plans one statement for a session in time zone `zone` (literals are read in it). `params`
/// holds the known types of `$n` parameters and receives the inferred ones.
pub fn plan(txn: &mut Transaction, statement: &ast::Statement, params: &mut Vec<DataType>, zone: Zone) -> Result<Plan> {
    with_binder(txn, params, zone, |binder| binder.plan_statement(statement))
}

/// The plan of `INSERT INTO table (targets) VALUES …` for rows that arrive as values rather
/// than SQL (MQTT ingestion), each value already of its column's type; with `upsert` and a
/// primary key, `ON CONFLICT (key) DO UPDATE SET` each target outside the key to the new
/// row's value. The same plan the statement binds to: authorized and run as any INSERT.
pub fn plan_values(
    txn: &mut Transaction,
    table: &str,
    targets: &[String],
    rows: Vec<Vec<crate::types::Value>>,
    upsert: bool,
) -> Result<Plan> {
    with_binder(txn, &mut Vec::new(), Zone::UTC, |binder| binder.plan_insert_values(table, targets, rows, upsert))
}

/// The plan of one row of `values`, each converted to its type in `types` as an assignment
/// would (the arguments of `EXECUTE name (…)`).
pub fn plan_row(txn: &mut Transaction, values: &[ast::Expr], types: &[DataType], zone: Zone) -> Result<Plan> {
    with_binder(txn, &mut Vec::new(), zone, |binder| {
        let mut row = Vec::with_capacity(values.len());
        for (value, t) in values.iter().zip(types) {
            let bound = binder.bind(value)?;
            row.push(binder.coerce(bound, t)?);
        }
        let columns = types.iter().map(|t| ResultColumn { name: "?column?".into(), data_type: t.clone() }).collect();
        Ok(Plan::Query { node: Node::Values { rows: vec![row] }, columns })
    })
}

/// Runs `f` with a binder at the top level of a statement, then the optimizer over its plan.
fn with_binder(
    txn: &mut Transaction,
    params: &mut Vec<DataType>,
    zone: Zone,
    f: impl FnOnce(&mut Binder) -> Result<Plan>,
) -> Result<Plan> {
    let mut next_subquery_id = 0;
    let mut modifications = Vec::new();
    let mut binder = Binder {
        txn,
        params,
        scope: Default::default(),
        outer: None,
        correlated: false,
        ctes: Default::default(),
        grouping: None,
        windows: None,
        set_calls: None,
        gapfill: None,
        saw_aggregate: false,
        named_windows: Default::default(),
        next_subquery_id: &mut next_subquery_id,
        modifications: &mut modifications,
        top_level: true,
        untyped_outputs: false,
        zone,
    };
    let mut plan = f(&mut binder)?;
    if !modifications.is_empty() {
        plan = Plan::WithModifications { modifications, query: Box::new(plan) };
    }
    Ok(optimizer::optimize_plan(plan))
}

impl Binder<'_> {
    fn plan_statement(&mut self, statement: &ast::Statement) -> Result<Plan> {
        use ast::Statement as S;
        if let Some(command) = crate::sql::roles::plan(statement) {
            return Ok(Plan::Role(command?));
        }
        match statement {
            S::Query(query) if matches!(query.body.as_ref(), ast::SetExpr::Select(s) if s.into.is_some()) => {
                self.plan_select_into(query)
            }
            S::Query(query) => {
                let (node, columns) = self.plan_query(query)?;
                let columns =
                    columns.into_iter().map(|c| ResultColumn { name: c.name, data_type: c.data_type }).collect();
                Ok(Plan::Query { node, columns })
            }
            S::Insert(insert) => self.plan_insert(insert),
            S::Update(update) => self.plan_update(update),
            S::Delete(delete) => self.plan_delete(delete),
            S::CreateTable(create) => self.plan_create_table(create),
            S::CreateView(create) if !create.materialized => self.plan_create_view(create),
            S::CreateSequence { temporary: false, if_not_exists, name, sequence_options } => {
                let sequence = sequences::from_options(self.txn, object_name(name), sequence_options, DataType::Int8)?;
                Ok(Plan::CreateSequence { sequence, if_not_exists: *if_not_exists })
            }
            S::CreateType { name, representation: Some(ast::UserDefinedTypeRepresentation::Enum { labels }) } => {
                Ok(Plan::CreateType {
                    name: object_name(name),
                    labels: labels.iter().map(|l| l.value.clone()).collect(),
                })
            }
            S::CreateType { .. } => Err(Error::FeatureNotSupported("CREATE TYPE other than AS ENUM".into())),
            S::CreateIndex(create) => {
                let table = object_name(&create.table_name);
                let mut columns = Vec::new();
                for c in &create.columns {
                    match &c.column.expr {
                        ast::Expr::Identifier(id) => columns.push(ident(id)),
                        other => return Err(Error::FeatureNotSupported(format!("index on expression {other}"))),
                    }
                }
                if create.predicate.is_some() {
                    return Err(Error::FeatureNotSupported("partial indexes".into()));
                }
                let name = match &create.name {
                    Some(n) => object_name(n),
                    None => format!("{table}_{}_idx", columns.join("_")),
                };
                Ok(Plan::CreateIndex {
                    table,
                    name,
                    columns,
                    unique: create.unique,
                    if_not_exists: create.if_not_exists,
                })
            }
            S::Drop { object_type, if_exists, names, cascade, .. } => {
                let names: Vec<String> = names.iter().map(object_name).collect();
                match object_type {
                    ast::ObjectType::Table => Ok(Plan::DropTable { names, if_exists: *if_exists, cascade: *cascade }),
                    ast::ObjectType::Index => Ok(Plan::DropIndex { names, if_exists: *if_exists }),
                    ast::ObjectType::Type => Ok(Plan::DropType { names, if_exists: *if_exists }),
                    ast::ObjectType::Sequence => Ok(Plan::DropSequence { names, if_exists: *if_exists }),
                    ast::ObjectType::View => Ok(Plan::DropView { names, if_exists: *if_exists, cascade: *cascade }),
                    other => Err(Error::FeatureNotSupported(format!("DROP {other}"))),
                }
            }
            S::AlterTable(alter) => {
                let table = object_name(&alter.name);
                let [operation] = alter.operations.as_slice() else {
                    return Err(Error::FeatureNotSupported("several ALTER TABLE actions in one statement".into()));
                };
                let action = match operation {
                    ast::AlterTableOperation::AddColumn { column_def, if_not_exists, .. } => {
                        let ColumnDef { column, pk, unique, identity, checks } = column_from_def(self.txn, column_def)?;
                        if pk || unique {
                            return Err(Error::FeatureNotSupported("adding a key column".into()));
                        }
                        if !checks.is_empty() {
                            return Err(Error::FeatureNotSupported(
                                "a CHECK constraint in ADD COLUMN (add the column, then ADD CONSTRAINT … CHECK)".into(),
                            ));
                        }
                        if identity.is_some() {
                            return Err(Error::FeatureNotSupported("adding a serial or identity column".into()));
                        }
                        AlterAction::AddColumn { column, if_not_exists: *if_not_exists }
                    }
                    ast::AlterTableOperation::DropColumn { column_names, if_exists, .. } => {
                        let [name] = column_names.as_slice() else {
                            return Err(Error::FeatureNotSupported("dropping several columns".into()));
                        };
                        AlterAction::DropColumn { name: ident(name), if_exists: *if_exists }
                    }
                    ast::AlterTableOperation::RenameColumn { old_column_name, new_column_name } => {
                        AlterAction::RenameColumn { from: ident(old_column_name), to: ident(new_column_name) }
                    }
                    ast::AlterTableOperation::RenameTable { table_name } => {
                        let to = match table_name {
                            ast::RenameTableNameKind::As(n) | ast::RenameTableNameKind::To(n) => object_name(n),
                        };
                        AlterAction::RenameTable { to }
                    }
                    ast::AlterTableOperation::AddConstraint {
                        constraint: ast::TableConstraint::PrimaryKey(pk),
                        ..
                    } => AlterAction::AddPrimaryKey { columns: key_columns(&pk.columns, "primary key")? },
                    ast::AlterTableOperation::AddConstraint {
                        constraint: ast::TableConstraint::Check(c),
                        not_valid,
                    } => {
                        let current = catalog::must_get_table(self.txn, &table)?;
                        let (mut check, expr) = self.define_check(&current, c.name.as_ref().map(ident), &c.expr)?;
                        check.not_valid = *not_valid;
                        AlterAction::AddCheck { check, expr }
                    }
                    ast::AlterTableOperation::AddConstraint {
                        constraint: ast::TableConstraint::Unique(u),
                        not_valid: false,
                    } => {
                        let columns = key_columns(&u.columns, "unique constraint")?;
                        AlterAction::AddUnique { name: u.name.as_ref().map(ident), columns }
                    }
                    // Only superusers create and alter tables (docs/security.md), so they own
                    // them all: giving one to a superuser, as pg_dump's scripts do, changes
                    // nothing.
                    ast::AlterTableOperation::OwnerTo { new_owner } => {
                        if let ast::Owner::Ident(owner) = new_owner {
                            let owner = ident(owner);
                            match catalog::roles::get_role(self.txn, &owner)? {
                                Some(role) if role.superuser => {}
                                Some(_) => {
                                    return Err(Error::FeatureNotSupported(format!(
                                        "tables belong to the superusers: cannot give one to \"{owner}\""
                                    )))
                                }
                                None => return Err(Error::UndefinedObject(format!("role \"{owner}\" does not exist"))),
                            }
                        }
                        AlterAction::Nothing
                    }
                    ast::AlterTableOperation::AddConstraint { constraint, not_valid: true } => {
                        let kind = match constraint {
                            ast::TableConstraint::PrimaryKey(_) => "PRIMARY KEY",
                            ast::TableConstraint::Unique(_) => "UNIQUE",
                            _ => "these",
                        };
                        return Err(Error::FeatureNotSupported(format!(
                            "{kind} constraints cannot be marked NOT VALID"
                        )));
                    }
                    ast::AlterTableOperation::ValidateConstraint { name } => {
                        let current = catalog::must_get_table(self.txn, &table)?;
                        let name = ident(name);
                        let expr = match current.checks.iter().find(|c| c.name == name) {
                            Some(check) if check.not_valid => Some(self.bind_stored_check(&current, check)?.expr),
                            Some(_) => None,
                            None if current.pkey_name() == name
                                || current.indexes.iter().any(|i| i.constraint && i.name == name) =>
                            {
                                None
                            }
                            None => {
                                return Err(Error::UndefinedObject(format!(
                                    "constraint \"{name}\" of relation \"{}\" does not exist",
                                    current.name
                                )))
                            }
                        };
                        AlterAction::ValidateCheck { name, expr }
                    }
                    ast::AlterTableOperation::DropConstraint { name, if_exists, .. } => {
                        AlterAction::DropConstraint { name: ident(name), if_exists: *if_exists }
                    }
                    ast::AlterTableOperation::AlterColumn { column_name, op } => {
                        let column = ident(column_name);
                        match op {
                            ast::AlterColumnOperation::SetDefault { value } => {
                                AlterAction::SetDefault { column, default: Some(value.to_string()) }
                            }
                            ast::AlterColumnOperation::DropDefault => AlterAction::SetDefault { column, default: None },
                            ast::AlterColumnOperation::SetNotNull => AlterAction::SetNotNull { column, not_null: true },
                            ast::AlterColumnOperation::DropNotNull => {
                                AlterAction::SetNotNull { column, not_null: false }
                            }
                            ast::AlterColumnOperation::SetDataType { data_type, using: None, .. } => {
                                AlterAction::SetType {
                                    data_type: types::resolve_column_type(self.txn, &data_type.to_string(), &column)?,
                                    column,
                                }
                            }
                            other => return Err(Error::FeatureNotSupported(format!("ALTER COLUMN {other}"))),
                        }
                    }
                    ast::AlterTableOperation::SetOptionsParens { options } => {
                        let mut set = StorageParameters::default();
                        for option in options {
                            set.take(option)?;
                        }
                        AlterAction::SetStorage(set)
                    }
                    ast::AlterTableOperation::ResetOptions { options } => {
                        let mut set = StorageParameters::default();
                        for option in options {
                            match storage_parameter(&object_name(option))? {
                                Some(Parameter::Ttl) => set.ttl = Some(None),
                                Some(Parameter::Sync) => set.sync = Some(true),
                                Some(Parameter::TimeColumn) => return Err(time_column_fixed()),
                                None => {}
                            }
                        }
                        AlterAction::SetStorage(set)
                    }
                    other => return Err(Error::FeatureNotSupported(format!("ALTER TABLE {other}"))),
                };
                Ok(Plan::AlterTable { table, if_exists: alter.if_exists, action })
            }
            S::Comment { object_type, object_name: name, comment, if_exists } => {
                let parts = object_name_parts(name);
                let (table, column) = match (object_type, parts.as_slice()) {
                    (ast::CommentObject::Table, [.., table]) => (table.clone(), None),
                    (ast::CommentObject::Column, [.., table, column]) => (table.clone(), Some(column.clone())),
                    (ast::CommentObject::Column, _) => {
                        return Err(Error::Syntax { message: "column name must be qualified".into(), position: None })
                    }
                    (other, _) => return Err(Error::FeatureNotSupported(format!("COMMENT ON {other}"))),
                };
                let comment = comment.clone().filter(|c| !c.is_empty());
                let action = AlterAction::SetComment { column, comment };
                Ok(Plan::AlterTable { table, if_exists: *if_exists, action })
            }
            S::Truncate(truncate) => Ok(Plan::Truncate {
                tables: truncate.table_names.iter().map(|t| object_name(&t.name)).collect(),
                restart_identity: matches!(truncate.identity, Some(ast::TruncateIdentityOption::Restart)),
            }),
            // Transaction control changes session state; `Session::execute` handles it.
            S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Savepoint { .. }
            | S::ReleaseSavepoint { .. } => {
                Err(Error::Internal("transaction control is handled by the session".into()))
            }
            S::Set(set) => plan_set(set),
            S::ShowVariable { variable } => {
                // SHOW takes one setting name, dotted for custom settings (`chronos.x`, which
                // arrives as two identifiers), or one of PostgreSQL's multi-word forms.
                let words: Vec<String> = variable.iter().map(ident).collect();
                let spaced = words.join(" ");
                let multi_word = ["time zone", "transaction isolation level", "session authorization"];
                let name = if multi_word.contains(&spaced.as_str()) { spaced } else { words.join(".") };
                Ok(Plan::Show { name })
            }
            S::Explain { statement, analyze: false, .. } => {
                // Data-modifying CTEs of the explained statement belong to its plan, which
                // EXPLAIN prints and never runs.
                let first = self.modifications.len();
                let inner = self.plan_statement(statement)?;
                let modifications = self.modifications.split_off(first);
                let inner = match modifications.is_empty() {
                    true => inner,
                    false => Plan::WithModifications { modifications, query: Box::new(inner) },
                };
                Ok(Plan::Explain(Box::new(inner)))
            }
            S::Copy { source, to, target, options, legacy_options, .. } => {
                self.plan_copy(source, *to, target, options, legacy_options)
            }
            S::Discard { .. } => Ok(Plan::Noop { tag: "DISCARD ALL".into() }),
            S::Reset(reset) => match &reset.reset {
                ast::Reset::ALL => Ok(Plan::Set { name: "all".into(), value: None }),
                ast::Reset::ConfigurationParameter(name) => {
                    Ok(Plan::Set { name: binder::object_name_parts(name).join("."), value: None })
                }
                ast::Reset::SessionAuthorization => Ok(Plan::Noop { tag: "RESET".into() }),
            },
            // Statistics are not used by the planner.
            S::Vacuum(vacuum) => {
                let table = match &vacuum.table_name {
                    Some(name) => Some(catalog::must_get_table(self.txn, &object_name(name))?.name),
                    None => None,
                };
                Ok(Plan::Vacuum { table })
            }
            S::Analyze(_) => Ok(Plan::Noop { tag: "ANALYZE".into() }),
            S::Deallocate { .. } => Ok(Plan::Noop { tag: "DEALLOCATE".into() }),
            other => Err(Error::FeatureNotSupported(format!("statement: {}", truncate_text(&other.to_string(), 60)))),
        }
    }
}

fn truncate_text(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn plan_set(set: &ast::Set) -> Result<Plan> {
    match set {
        ast::Set::SingleAssignment { variable, values, .. } => {
            // Dotted names are custom settings (`chronos.follower_reads`).
            let name = binder::object_name_parts(variable).join(".");
            let value = values
                .iter()
                .map(|v| match v {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) => s.clone(),
                        other => other.to_string(),
                    },
                    ast::Expr::Identifier(id) => id.value.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let value = if value.eq_ignore_ascii_case("default") { None } else { Some(value) };
            Ok(Plan::Set { name, value })
        }
        ast::Set::SetTimeZone { value, .. } => {
            let v = match value {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                },
                // `INTERVAL '+02:00' HOUR TO MINUTE`: hours east, as a number says them.
                ast::Expr::Interval(interval) => {
                    let mut text = match interval.value.as_ref() {
                        ast::Expr::Value(v) => match &v.value {
                            ast::Value::SingleQuotedString(s) => s.clone(),
                            other => other.to_string(),
                        },
                        other => other.to_string(),
                    };
                    // `INTERVAL '5' HOUR`: a bare number counts the leading field.
                    if let Some(field) = &interval.leading_field {
                        if interval.last_field.is_none() && !text.chars().any(|c| c.is_ascii_alphabetic()) {
                            text = format!("{text} {field}");
                        }
                    }
                    let iv = crate::types::datetime::parse_interval(&text)?;
                    if iv.months != 0 || iv.days != 0 {
                        return Err(Error::InvalidParameter(
                            "invalid interval value for time zone: day not allowed".into(),
                        ));
                    }
                    (iv.micros as f64 / crate::types::datetime::MICROS_PER_HOUR as f64).to_string()
                }
                other => other.to_string(),
            };
            Ok(Plan::Set { name: "timezone".into(), value: Some(v) })
        }
        ast::Set::SetNames { charset_name, .. } => {
            Ok(Plan::Set { name: "client_encoding".into(), value: Some(charset_name.to_string()) })
        }
        ast::Set::SetTransaction { .. } | ast::Set::SetSessionParam(_) | ast::Set::SetRole { .. } => {
            Ok(Plan::Noop { tag: "SET".into() })
        }
        other => Err(Error::FeatureNotSupported(format!("{other}"))),
    }
}

/// The column names of a key or constraint (`what`); expressions are not supported.
fn key_columns(columns: &[ast::IndexColumn], what: &str) -> Result<Vec<String>> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            ast::Expr::Identifier(id) => Ok(ident(id)),
            other => Err(Error::FeatureNotSupported(format!("{what} on expression {other}"))),
        })
        .collect()
}

/// A column definition: the column, whether it declares PRIMARY KEY / UNIQUE, whether it draws
/// its values from a sequence of its own (`SERIAL`, identity), and its CHECK constraints.
struct ColumnDef {
    column: Column,
    pk: bool,
    unique: bool,
    identity: Option<sequences::Identity>,
    /// Each constraint's name, if given, and condition.
    checks: Vec<(Option<String>, ast::Expr)>,
}

fn column_from_def(txn: &mut Transaction, def: &ast::ColumnDef) -> Result<ColumnDef> {
    let type_text = def.data_type.to_string();
    let serial = sequences::serial_type(&type_text);
    let data_type = match &serial {
        Some(t) => t.clone(),
        None => types::resolve_column_type(txn, &type_text, &ident(&def.name))?,
    };
    let mut identity = serial.map(|_| sequences::Identity { options: Vec::new() });
    let mut column = Column { nullable: identity.is_none(), ..Column::new(ident(&def.name), data_type) };
    let (mut pk, mut unique) = (false, false);
    let mut checks = Vec::new();
    for option in &def.options {
        match &option.option {
            ast::ColumnOption::Check(c) => {
                let name = option.name.as_ref().or(c.name.as_ref()).map(ident);
                checks.push((name, (*c.expr).clone()));
            }
            ast::ColumnOption::Null => column.nullable = true,
            ast::ColumnOption::NotNull => column.nullable = false,
            ast::ColumnOption::Default(e) => column.default = Some(e.to_string()),
            ast::ColumnOption::PrimaryKey(_) => {
                pk = true;
                column.nullable = false;
            }
            ast::ColumnOption::Unique(_) => unique = true,
            ast::ColumnOption::Generated {
                generated_as: generated @ (ast::GeneratedAs::Always | ast::GeneratedAs::ByDefault),
                sequence_options,
                generation_expr: None,
                ..
            } => {
                identity = Some(sequences::Identity { options: sequence_options.clone().unwrap_or_default() });
                column.nullable = false;
                column.generated_always = matches!(generated, ast::GeneratedAs::Always);
            }
            other => return Err(Error::FeatureNotSupported(format!("column option {other}"))),
        }
    }
    if identity.is_some() && column.default.is_some() {
        return Err(Error::Syntax {
            message: format!("both default and identity specified for column \"{}\"", column.name),
            position: None,
        });
    }
    Ok(ColumnDef { column, pk, unique, identity, checks })
}

/// Storage parameters accepted and ignored, as they have no meaning here (pgbench sets
/// fillfactor).
const IGNORED_STORAGE_PARAMETERS: &[&str] = &["fillfactor", "autovacuum_enabled", "toast_tuple_target"];

/// The storage parameters with a meaning here.
enum Parameter {
    /// `ttl`: rows expire (`sql::ttl`).
    Ttl,
    /// `sync`: on an edge, the table's changes are pushed to the cloud (default on).
    Sync,
    /// `time_column`: the column TTL and the window aggregates go by.
    TimeColumn,
}

/// The parameter `name` is: None for one with no meaning here, 22023 for one that does not
/// exist.
fn storage_parameter(name: &str) -> Result<Option<Parameter>> {
    match name {
        "ttl" => Ok(Some(Parameter::Ttl)),
        "sync" => Ok(Some(Parameter::Sync)),
        "time_column" => Ok(Some(Parameter::TimeColumn)),
        name if IGNORED_STORAGE_PARAMETERS.contains(&name) => Ok(None),
        name => Err(Error::InvalidParameter(format!("unrecognized parameter \"{name}\""))),
    }
}

impl StorageParameters {
    /// Takes a table's storage parameter (`WITH (…)`, `SET (…)`); one with no meaning here is
    /// passed over.
    fn take(&mut self, option: &ast::SqlOption) -> Result<()> {
        let ast::SqlOption::KeyValue { key, value } = option else {
            return Err(Error::FeatureNotSupported(format!("table option {option}")));
        };
        let text = match value {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            other => other.to_string(),
        };
        match storage_parameter(&object_name(key))? {
            Some(Parameter::Ttl) => {
                crate::types::datetime::parse_interval(&text)?;
                self.ttl = Some(Some(text));
            }
            Some(Parameter::Sync) => {
                let on = crate::types::cast::parse_bool(&text).map_err(|_| {
                    Error::InvalidParameter(format!("invalid value for boolean option \"sync\": {text}"))
                })?;
                self.sync = Some(on);
            }
            Some(Parameter::TimeColumn) => {
                self.time_column = Some(match value {
                    ast::Expr::Identifier(id) => ident(id),
                    _ => text,
                })
            }
            None => {}
        }
        Ok(())
    }
}

impl Binder<'_> {
    fn plan_create_table(&mut self, create: &ast::CreateTable) -> Result<Plan> {
        if let Some(query) = &create.query {
            let with_data = create.with_data.is_none_or(|w| w.data);
            return self.plan_table_as(object_name(&create.name), query, create.if_not_exists, with_data);
        }
        let txn = &mut *self.txn;
        let name = object_name(&create.name);
        let mut columns: Vec<Column> = Vec::new();
        let mut primary_key: Vec<usize> = Vec::new();
        let mut uniques: Vec<Vec<usize>> = Vec::new();
        let mut owned_sequences = Vec::new();
        let mut checks = Vec::new();
        for def in &create.columns {
            let ColumnDef { mut column, pk, unique, identity, checks: column_checks } = column_from_def(txn, def)?;
            checks.extend(column_checks);
            if let Some(identity) = identity {
                let (sequence, default) =
                    sequences::owned_sequence(txn, &name, &column.name, &column.data_type, &identity)?;
                column.default = Some(default);
                owned_sequences.push(sequence);
            }
            if columns.iter().any(|c| c.name == column.name) {
                return Err(Error::DuplicateColumn(column.name));
            }
            if pk {
                if !primary_key.is_empty() {
                    return Err(Error::InvalidTableDefinition(format!(
                        "multiple primary keys for table \"{name}\" are not allowed"
                    )));
                }
                primary_key.push(columns.len());
            }
            if unique {
                uniques.push(vec![columns.len()]);
            }
            columns.push(column);
        }
        let find = |cols: &[ast::IndexColumn], columns: &[Column]| -> Result<Vec<usize>> {
            cols.iter()
                .map(|c| {
                    let n = match &c.column.expr {
                        ast::Expr::Identifier(id) => ident(id),
                        other => other.to_string(),
                    };
                    columns.iter().position(|col| col.name == n).ok_or_else(|| {
                        Error::UndefinedColumn(format!("{n}\" named in key does not exist (relation \"{name}"))
                    })
                })
                .collect()
        };
        for constraint in &create.constraints {
            match constraint {
                ast::TableConstraint::PrimaryKey(pk) => {
                    if !primary_key.is_empty() {
                        return Err(Error::InvalidTableDefinition(format!(
                            "multiple primary keys for table \"{name}\" are not allowed"
                        )));
                    }
                    primary_key = find(&pk.columns, &columns)?;
                    for &i in &primary_key {
                        columns[i].nullable = false;
                    }
                }
                ast::TableConstraint::Unique(u) => uniques.push(find(&u.columns, &columns)?),
                ast::TableConstraint::Check(c) => checks.push((c.name.as_ref().map(ident), (*c.expr).clone())),
                other => return Err(Error::FeatureNotSupported(format!("constraint {other}"))),
            }
        }
        let mut storage = StorageParameters::default();
        if let ast::CreateTableOptions::With(options) = &create.table_options {
            for option in options {
                storage.take(option)?;
            }
        }
        let ttl = storage.ttl.flatten();
        let mut indexes = Vec::new();
        for (n, cols) in uniques.into_iter().enumerate() {
            let col_names: Vec<&str> = cols.iter().map(|&i| columns[i].name.as_str()).collect();
            indexes.push(Index {
                constraint: true,
                id: n as u32 + 1,
                name: format!("{name}_{}_key", col_names.join("_")),
                columns: cols,
                unique: true,
            });
        }
        let next_index_id = indexes.len() as u32 + 1;
        let mut table = Table {
            id: 0,
            name,
            columns,
            primary_key,
            indexes,
            ttl,
            next_index_id,
            grants: Default::default(),
            summarized: false,
            lineage: None,
            checks: Vec::new(),
            comment: None,
            sync_merged: false,
            no_sync: storage.sync == Some(false),
            declared_time: None,
        };
        if let Some(name) = &storage.time_column {
            let c = table.column_index(name).ok_or_else(|| Error::UndefinedColumn(name.clone()))?;
            if !matches!(table.columns[c].data_type, DataType::Timestamp | DataType::TimestampTz) {
                return Err(Error::DatatypeMismatch(format!(
                    "time_column \"{name}\" is of type {}, not timestamp or timestamptz",
                    table.columns[c].data_type
                )));
            }
            table.declared_time = Some(c);
        }
        for (name, condition) in checks {
            let (check, _) = self.define_check(&table, name, &condition)?;
            checks::add_check(&mut table, check);
        }
        table.summarized = table.time_series_column().is_some();
        crate::sql::ttl::check(&table)?;
        Ok(Plan::CreateTable { table, if_not_exists: create.if_not_exists, sequences: owned_sequences, rows: None })
    }

    /// `SELECT … INTO name FROM …`: `CREATE TABLE name AS` the query without its INTO.
    fn plan_select_into(&mut self, query: &ast::Query) -> Result<Plan> {
        let mut query = query.clone();
        let ast::SetExpr::Select(select) = query.body.as_mut() else {
            return Err(Error::Internal("SELECT INTO without a SELECT".into()));
        };
        let Some(into) = select.into.take() else { return Err(Error::Internal("SELECT INTO without INTO".into())) };
        let [ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_)] = into.targets.as_slice() else {
            return Err(Error::FeatureNotSupported(format!("SELECT INTO {}", into.targets.len())));
        };
        let name = match &into.targets[0] {
            ast::Expr::Identifier(id) => ident(id),
            ast::Expr::CompoundIdentifier(parts) => parts.last().map(ident).unwrap_or_default(),
            _ => unreachable!("matched above"),
        };
        self.plan_table_as(name, &query, false, true)
    }

    /// A table of the query's columns, filled with its rows when `with_data`.
    fn plan_table_as(
        &mut self,
        name: String,
        query: &ast::Query,
        if_not_exists: bool,
        with_data: bool,
    ) -> Result<Plan> {
        let (node, output) = self.plan_query(query)?;
        let mut columns: Vec<Column> = Vec::with_capacity(output.len());
        for c in output {
            let name = c.name;
            if columns.iter().any(|existing| existing.name == name) {
                return Err(Error::DuplicateColumn(name));
            }
            let data_type = match c.data_type {
                DataType::Unknown => DataType::Text,
                DataType::Record(..) => {
                    return Err(Error::InvalidTableDefinition(format!("column \"{name}\" has pseudo-type record")))
                }
                t => t,
            };
            columns.push(Column::new(name, data_type));
        }
        let mut table = Table::new(name, columns, Vec::new());
        table.summarized = table.time_series_column().is_some();
        // WITH NO DATA: no rows, still a statement that reports how many it wrote.
        let rows = if with_data { node } else { Node::Values { rows: Vec::new() } };
        Ok(Plan::CreateTable { table, if_not_exists, sequences: Vec::new(), rows: Some(rows) })
    }
}

/// `time_column` is set when a table is created: its window summaries are kept by it.
pub fn time_column_fixed() -> Error {
    Error::FeatureNotSupported("time_column can be set only by CREATE TABLE".into())
}
