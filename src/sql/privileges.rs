//! Privilege checks on the plan that will run.
//!
//! A statement is authorized after binding, on its plan: every table the plan reads or writes
//! is a `Table` the binder resolved, so whatever wrapped the access (COPY, EXPLAIN, a view, a
//! CTE at any depth, a subquery in any expression, INSERT … SELECT) the check sees the same
//! object the executor will touch. Nothing is checked on SQL text or on the syntax tree.
//!
//! - `admin` and superusers may do everything.
//! - Reading a table (a scan, a lookup, a subquery, a view's query) needs SELECT; INSERT,
//!   UPDATE, DELETE and TRUNCATE need their privilege on the target, and SELECT as well when
//!   the statement reads the target's rows (a WHERE clause, RETURNING, a FROM/USING join,
//!   assignments that read columns, ON CONFLICT DO UPDATE). COPY FROM needs INSERT.
//! - DDL, role management and GRANT/REVOKE need a superuser; a role may change its own
//!   password.
//! - System catalogs (`pg_catalog`, `information_schema`) need no privilege; they show no
//!   secrets.

use super::planner::plan::{AlterAction, Node, OnConflict, Plan};
use super::roles::{PasswordChange, RoleCommand};
use crate::catalog::roles::{self, privilege, Role};
use crate::catalog::{self, Table};
use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use std::collections::BTreeMap;

/// Checks that `user` may run `plan`: 42501 if not.
pub fn authorize(txn: &mut Transaction, user: &str, plan: &Plan) -> Result<()> {
    if user == roles::ADMIN {
        return Ok(());
    }
    let Some(role) = roles::get_role(txn, user)? else {
        return Err(Error::InsufficientPrivilege(format!("role \"{user}\" does not exist")));
    };
    if role.superuser {
        return Ok(());
    }
    let mut needs = Needs::default();
    needs.plan(txn, &role, plan)?;
    for (name, (wanted, held)) in needs.tables {
        if wanted & !held != 0 {
            return Err(Error::InsufficientPrivilege(format!("permission denied for table {name}")));
        }
    }
    Ok(())
}

/// What a plan needs: per table name, the privileges wanted and those the role holds.
#[derive(Default)]
struct Needs {
    tables: BTreeMap<String, (u8, u8)>,
}

fn denied(what: &str) -> Error {
    Error::InsufficientPrivilege(format!("permission denied {what}"))
}

fn owner_of(kind: &str, names: &[String]) -> Error {
    let name = names.first().map(String::as_str).unwrap_or_default();
    Error::InsufficientPrivilege(format!("must be owner of {kind} {name}"))
}

impl Needs {
    fn want(&mut self, role: &Role, table: &Table, bits: u8) {
        let entry = self.tables.entry(table.name.clone()).or_insert((0, role.privileges_on(table)));
        entry.0 |= bits;
    }

    fn plan(&mut self, txn: &mut Transaction, role: &Role, plan: &Plan) -> Result<()> {
        plan.for_each_expr(&mut |e| e.visit_subqueries(&mut |node| self.reads(role, node, None)));
        match plan {
            Plan::Query { node, .. } | Plan::CopyTo { node, .. } => self.reads(role, node, None),
            Plan::Insert { table, source, on_conflict, returning, .. } => {
                let mut bits = privilege::INSERT;
                if returning.is_some() {
                    bits |= privilege::SELECT;
                }
                if matches!(on_conflict, OnConflict::DoUpdate { .. }) {
                    bits |= privilege::UPDATE | privilege::SELECT;
                }
                self.want(role, table, bits);
                self.reads(role, source, None);
            }
            Plan::Update { table, source, assignments, returning, .. } => {
                let reads_columns = assignments.iter().any(|(_, e)| {
                    let mut reads = false;
                    e.walk(&mut |x| reads |= matches!(x, super::planner::plan::Expr::Column(_)));
                    reads
                });
                self.write_target(role, table, source, privilege::UPDATE, returning.is_some() || reads_columns);
            }
            Plan::Delete { table, source, returning } => {
                self.write_target(role, table, source, privilege::DELETE, returning.is_some())
            }
            Plan::CopyFrom { table, .. } => self.want(role, table, privilege::INSERT),
            Plan::Truncate { tables, .. } => {
                for name in tables {
                    // A missing table is reported with 42P01 when the plan runs.
                    if let Some(table) = catalog::get_table(txn, name)? {
                        self.want(role, &table, privilege::TRUNCATE);
                    }
                }
            }
            Plan::Explain(inner) => self.plan(txn, role, inner)?,
            Plan::WithModifications { modifications, query } => {
                for (_, modification) in modifications {
                    self.plan(txn, role, modification)?;
                }
                self.plan(txn, role, query)?;
            }
            Plan::Set { .. } | Plan::Show { .. } | Plan::Noop { .. } => {}
            // Garbage collection and sealing: an owner's (a superuser's) maintenance.
            Plan::Vacuum { table: Some(table) } => return Err(owner_of("table", std::slice::from_ref(table))),
            Plan::Vacuum { table: None } => return Err(denied("to vacuum the whole database")),
            Plan::Role(command) => return role_command(role, command),
            Plan::CreateTable { .. }
            | Plan::CreateSequence { .. }
            | Plan::CreateView { .. }
            | Plan::CreateIndex { .. }
            | Plan::CreateType { .. } => return Err(denied("for schema public")),
            Plan::DropTable { names, .. } => return Err(owner_of("table", names)),
            Plan::DropView { names, .. } => return Err(owner_of("view", names)),
            Plan::DropSequence { names, .. } => return Err(owner_of("sequence", names)),
            Plan::DropIndex { names, .. } => return Err(owner_of("index", names)),
            Plan::DropType { names, .. } => return Err(owner_of("type", names)),
            Plan::AlterTable { table, .. } => return Err(owner_of("table", std::slice::from_ref(table))),
        }
        Ok(())
    }

    /// UPDATE or DELETE of `table`: `bits` on it, and SELECT when the statement reads its rows
    /// (anything but an unfiltered scan of the table, or `reads`).
    fn write_target(&mut self, role: &Role, table: &Table, source: &Node, bits: u8, reads: bool) {
        let bare = matches!(source, Node::Scan { table: t, filter: None, .. } if t.id == table.id);
        let select = if reads || !bare { privilege::SELECT } else { 0 };
        self.want(role, table, bits | select);
        self.reads(role, source, Some(table));
    }

    /// Every table `node` reads needs SELECT, except the target rows of an UPDATE or DELETE
    /// (`target`), which [`Needs::write_target`] accounts for.
    fn reads(&mut self, role: &Role, node: &Node, target: Option<&Table>) {
        node.visit(&mut |n| {
            let (table, with_key) = match n {
                Node::Scan { table, with_key, .. }
                | Node::KeyLookup { table, with_key, .. }
                | Node::KeyRange { table, with_key, .. }
                | Node::IndexLookup { table, with_key, .. }
                | Node::IndexRange { table, with_key, .. } => (table, *with_key),
                _ => return,
            };
            if with_key && target.is_some_and(|t| t.id == table.id) {
                return;
            }
            self.want(role, table, privilege::SELECT);
        });
    }
}

/// Role management: superusers only, except a role changing its own password.
fn role_command(role: &Role, command: &RoleCommand) -> Result<()> {
    match command {
        RoleCommand::Alter { name, rename: None, superuser: None, login: None, password }
            if *name == role.name && !matches!(password, PasswordChange::Keep) =>
        {
            Ok(())
        }
        RoleCommand::Create { .. } => Err(denied("to create role")),
        RoleCommand::Alter { .. } => Err(denied("to alter role")),
        RoleCommand::Drop { .. } => Err(denied("to drop role")),
        RoleCommand::Grant { .. } | RoleCommand::Revoke { .. } => {
            Err(denied("to grant or revoke privileges: only superusers may"))
        }
    }
}

/// The audit record of a plan that changes roles, privileges or the schema: its event and
/// a description naming the command and its objects (never a password). None for others.
pub fn audited(plan: &Plan) -> Option<(crate::audit::Event, String)> {
    use crate::audit::Event;
    let list = |names: &[String]| names.join(", ");
    let grant = |verb: &str, bits: u8, tables: &super::roles::Tables, roles: &[String], to: &str| {
        let tables = match tables {
            super::roles::Tables::Named(names) => list(names),
            super::roles::Tables::All => "ALL TABLES IN SCHEMA public".into(),
        };
        format!("{verb} {} ON {tables} {to} {}", privilege::describe(bits), list(roles))
    };
    Some(match plan {
        Plan::Role(command) => match command {
            RoleCommand::Create { name, .. } => (Event::Role, format!("CREATE ROLE {name}")),
            RoleCommand::Alter { name, .. } => (Event::Role, format!("ALTER ROLE {name}")),
            RoleCommand::Drop { names, .. } => (Event::Role, format!("DROP ROLE {}", list(names))),
            RoleCommand::Grant { privileges, tables, roles } => {
                (Event::Privilege, grant("GRANT", *privileges, tables, roles, "TO"))
            }
            RoleCommand::Revoke { privileges, tables, roles } => {
                (Event::Privilege, grant("REVOKE", *privileges, tables, roles, "FROM"))
            }
        },
        Plan::CreateTable { table, .. } => (Event::Ddl, format!("CREATE TABLE {}", table.name)),
        Plan::CreateSequence { sequence, .. } => (Event::Ddl, format!("CREATE SEQUENCE {}", sequence.name)),
        Plan::CreateView { view, .. } => (Event::Ddl, format!("CREATE VIEW {}", view.name)),
        Plan::CreateIndex { table, name, .. } => (Event::Ddl, format!("CREATE INDEX {name} ON {table}")),
        Plan::CreateType { name, .. } => (Event::Ddl, format!("CREATE TYPE {name}")),
        Plan::DropTable { names, .. } => (Event::Ddl, format!("DROP TABLE {}", list(names))),
        Plan::DropView { names, .. } => (Event::Ddl, format!("DROP VIEW {}", list(names))),
        Plan::DropSequence { names, .. } => (Event::Ddl, format!("DROP SEQUENCE {}", list(names))),
        Plan::DropIndex { names, .. } => (Event::Ddl, format!("DROP INDEX {}", list(names))),
        Plan::DropType { names, .. } => (Event::Ddl, format!("DROP TYPE {}", list(names))),
        Plan::AlterTable { table, action: AlterAction::SetComment { column, .. }, .. } => match column {
            Some(column) => (Event::Ddl, format!("COMMENT ON COLUMN {table}.{column}")),
            None => (Event::Ddl, format!("COMMENT ON TABLE {table}")),
        },
        Plan::AlterTable { table, .. } => (Event::Ddl, format!("ALTER TABLE {table}")),
        Plan::Truncate { tables, .. } => (Event::Ddl, format!("TRUNCATE {}", list(tables))),
        _ => return None,
    })
}
