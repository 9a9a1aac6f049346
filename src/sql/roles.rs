//! Role management: CREATE/ALTER/DROP ROLE (and USER), GRANT/REVOKE on tables, and the
//! table-privilege queries (`has_table_privilege`, ACLs). Which role may run which statement is
//! decided on the plan, in [`crate::sql::privileges`]; `readonly` holds SELECT on every table.

use super::planner::binder::{ident, object_name};
use crate::catalog::roles::{self, privilege, Role, ScramSecret};
use crate::catalog::{self, Table};
use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use sqlparser::ast;

/// A role-management statement, bound.
#[derive(Clone, Debug, PartialEq)]
pub enum RoleCommand {
    Create {
        name: String,
        superuser: bool,
        login: bool,
        password: Option<Secret>,
    },
    Alter {
        name: String,
        rename: Option<String>,
        superuser: Option<bool>,
        login: Option<bool>,
        password: PasswordChange,
    },
    Drop {
        names: Vec<String>,
        if_exists: bool,
    },
    Grant {
        privileges: u8,
        tables: Tables,
        roles: Vec<String>,
    },
    Revoke {
        privileges: u8,
        tables: Tables,
        roles: Vec<String>,
    },
}

/// What ALTER ROLE does to the password.
#[derive(Clone, Debug, PartialEq)]
pub enum PasswordChange {
    Keep,
    Clear,
    Set(Secret),
}

/// A clear-text password on its way to being hashed; never printed (EXPLAIN, logs).
#[derive(Clone, PartialEq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<password>")
    }
}

/// The tables a GRANT or REVOKE names.
#[derive(Clone, Debug, PartialEq)]
pub enum Tables {
    Named(Vec<String>),
    /// `ALL TABLES IN SCHEMA public`.
    All,
}

impl RoleCommand {
    /// The command tag.
    pub fn tag(&self) -> &'static str {
        match self {
            RoleCommand::Create { .. } => "CREATE ROLE",
            RoleCommand::Alter { .. } => "ALTER ROLE",
            RoleCommand::Drop { .. } => "DROP ROLE",
            RoleCommand::Grant { .. } => "GRANT",
            RoleCommand::Revoke { .. } => "REVOKE",
        }
    }
}

fn unsupported(what: &str) -> Error {
    Error::FeatureNotSupported(what.to_string())
}

fn password_text(password: &ast::Password) -> Result<Option<Secret>> {
    match password {
        ast::Password::NullPassword => Ok(None),
        ast::Password::Password(ast::Expr::Value(v)) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => Ok(Some(Secret(s.clone()))),
            ast::Value::Null => Ok(None),
            _ => Err(Error::Syntax { message: "a password must be a string literal".into(), position: None }),
        },
        _ => Err(Error::Syntax { message: "a password must be a string literal".into(), position: None }),
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.starts_with("pg_") {
        return Err(Error::ReservedName(format!(
            "role name \"{name}\" is reserved: names starting with \"pg_\" are for system roles"
        )));
    }
    Ok(())
}

/// Binds a role statement, or returns None for other statements.
pub fn plan(statement: &ast::Statement) -> Option<Result<RoleCommand>> {
    use ast::Statement as S;
    Some(match statement {
        S::CreateRole(create) => plan_create(create),
        S::AlterRole { name, operation } => plan_alter(&ident(name), operation),
        S::Drop { object_type: ast::ObjectType::Role | ast::ObjectType::User, if_exists, names, .. } => {
            Ok(RoleCommand::Drop { names: names.iter().map(object_name).collect(), if_exists: *if_exists })
        }
        S::Grant(grant) => {
            plan_grant(&grant.privileges, grant.objects.as_ref(), &grant.grantees, grant.with_grant_option)
                .map(|(privileges, tables, roles)| RoleCommand::Grant { privileges, tables, roles })
        }
        S::Revoke(revoke) => plan_grant(&revoke.privileges, revoke.objects.as_ref(), &revoke.grantees, false)
            .map(|(privileges, tables, roles)| RoleCommand::Revoke { privileges, tables, roles }),
        _ => return None,
    })
}

fn plan_create(create: &ast::CreateRole) -> Result<RoleCommand> {
    let [name] = create.names.as_slice() else {
        return Err(Error::Syntax { message: "CREATE ROLE takes one role name".into(), position: None });
    };
    if !create.in_role.is_empty() || !create.in_group.is_empty() || !create.role.is_empty() || !create.admin.is_empty()
    {
        return Err(unsupported("role membership (IN ROLE, ROLE, ADMIN)"));
    }
    let name = object_name(name);
    check_name(&name)?;
    let password = match &create.password {
        Some(p) => password_text(p)?,
        None => None,
    };
    Ok(RoleCommand::Create {
        name,
        superuser: create.superuser.unwrap_or(false),
        login: create.login.unwrap_or(false),
        password,
    })
}

fn plan_alter(name: &str, operation: &ast::AlterRoleOperation) -> Result<RoleCommand> {
    let mut command = RoleCommand::Alter {
        name: name.to_string(),
        rename: None,
        superuser: None,
        login: None,
        password: PasswordChange::Keep,
    };
    let RoleCommand::Alter { rename, superuser, login, password, .. } = &mut command else { unreachable!() };
    match operation {
        ast::AlterRoleOperation::RenameRole { role_name } => {
            let new = ident(role_name);
            check_name(&new)?;
            *rename = Some(new);
        }
        ast::AlterRoleOperation::WithOptions { options } => {
            for option in options {
                match option {
                    ast::RoleOption::SuperUser(v) => *superuser = Some(*v),
                    ast::RoleOption::Login(v) => *login = Some(*v),
                    ast::RoleOption::Password(p) => {
                        *password = match password_text(p)? {
                            Some(text) => PasswordChange::Set(text),
                            None => PasswordChange::Clear,
                        }
                    }
                    // Accepted and without effect: ChronosDB has one database and no replication roles.
                    ast::RoleOption::Inherit(_)
                    | ast::RoleOption::CreateDB(_)
                    | ast::RoleOption::CreateRole(_)
                    | ast::RoleOption::Replication(_)
                    | ast::RoleOption::BypassRLS(_) => {}
                    other => return Err(unsupported(&format!("ALTER ROLE … {other}"))),
                }
            }
        }
        other => return Err(unsupported(&format!("ALTER ROLE … {other}"))),
    }
    Ok(command)
}

fn plan_grant(
    privileges: &ast::Privileges,
    objects: Option<&ast::GrantObjects>,
    grantees: &[ast::Grantee],
    with_grant_option: bool,
) -> Result<(u8, Tables, Vec<String>)> {
    if with_grant_option {
        return Err(unsupported("WITH GRANT OPTION"));
    }
    let bits = match privileges {
        ast::Privileges::All { .. } => privilege::ALL,
        ast::Privileges::Actions(actions) => {
            let mut bits = 0;
            for action in actions {
                // `SELECT (a, b)` prints its column list after the name.
                let text = action.to_string();
                let (name, columns) = text.split_once(' ').unwrap_or((&text, ""));
                bits |= privilege::parse(name)
                    .ok_or_else(|| Error::InvalidGrant(format!("invalid privilege type {name} for relation")))?;
                if !columns.is_empty() {
                    return Err(unsupported("column privileges"));
                }
            }
            bits
        }
    };
    let tables = match objects {
        Some(ast::GrantObjects::Tables(names)) => Tables::Named(names.iter().map(object_name).collect()),
        Some(ast::GrantObjects::AllTablesInSchema { schemas })
            if schemas.iter().all(|s| object_name(s) == "public") =>
        {
            Tables::All
        }
        Some(other) => return Err(unsupported(&format!("privileges on {other}"))),
        None => return Err(unsupported("GRANT of role membership")),
    };
    let mut roles = Vec::new();
    for grantee in grantees {
        match (&grantee.grantee_type, &grantee.name) {
            (ast::GranteesType::Public, _) => return Err(unsupported("privileges for PUBLIC")),
            (_, Some(ast::GranteeName::ObjectName(name))) => roles.push(object_name(name)),
            (_, _) => return Err(unsupported(&format!("grantee {grantee}"))),
        }
    }
    Ok((bits, tables, roles))
}

/// Runs a role command in `txn`; returns notices.
pub fn execute(txn: &mut Transaction, command: RoleCommand) -> Result<Vec<String>> {
    let mut notices = Vec::new();
    match command {
        RoleCommand::Create { name, superuser, login, password } => {
            if roles::get_role(txn, &name)?.is_some() {
                return Err(Error::DuplicateObject(format!("role \"{name}\" already exists")));
            }
            let oid = roles::next_role_oid(txn)?;
            let password = password.map(|p| ScramSecret::new(&p.0));
            roles::save_role(txn, &Role { name, oid, superuser, login, password })?;
        }
        RoleCommand::Alter { name, rename, superuser, login, password } => {
            let mut role = roles::must_get_role(txn, &name)?;
            if Role::builtin(&name).is_some() {
                return Err(Error::InsufficientPrivilege(format!(
                    "role \"{name}\" is built in: its password is set by the server's configuration"
                )));
            }
            if let Some(superuser) = superuser {
                role.superuser = superuser;
            }
            if let Some(login) = login {
                role.login = login;
            }
            match password {
                PasswordChange::Keep => {}
                PasswordChange::Clear => role.password = None,
                PasswordChange::Set(text) => role.password = Some(ScramSecret::new(&text.0)),
            }
            if let Some(new) = rename {
                if roles::get_role(txn, &new)?.is_some() {
                    return Err(Error::DuplicateObject(format!("role \"{new}\" already exists")));
                }
                roles::remove_role(txn, &name);
                for mut table in catalog::list_tables(txn)? {
                    if let Some(bits) = table.grants.remove(&name) {
                        table.grants.insert(new.clone(), bits);
                        catalog::save_table(txn, &table)?;
                    }
                }
                role.name = new;
                // PostgreSQL clears an MD5 password on rename; a SCRAM secret does not depend
                // on the name, so it stays.
            }
            roles::save_role(txn, &role)?;
        }
        RoleCommand::Drop { names, if_exists } => {
            for name in names {
                if Role::builtin(&name).is_some() {
                    return Err(Error::InsufficientPrivilege(format!(
                        "role \"{name}\" is built in and cannot be dropped"
                    )));
                }
                if roles::get_role(txn, &name)?.is_none() {
                    if if_exists {
                        notices.push(format!("role \"{name}\" does not exist, skipping"));
                        continue;
                    }
                    return Err(Error::UndefinedObject(format!("role \"{name}\" does not exist")));
                }
                let granted: Vec<String> = catalog::list_tables(txn)?
                    .into_iter()
                    .filter(|t| t.grants.contains_key(&name))
                    .map(|t| format!("privileges for table {}", t.name))
                    .collect();
                if !granted.is_empty() {
                    return Err(Error::DependentObjects {
                        message: format!("role \"{name}\" cannot be dropped because some objects depend on it"),
                        detail: granted.join("\n"),
                    });
                }
                roles::remove_role(txn, &name);
            }
        }
        RoleCommand::Grant { privileges, tables, roles: grantees } => {
            for role in &grantees {
                roles::must_get_role(txn, role)?;
            }
            for mut table in resolve(txn, &tables)? {
                for role in &grantees {
                    if Role::builtin(role).is_none() {
                        *table.grants.entry(role.clone()).or_insert(0) |= privileges;
                    }
                }
                catalog::save_table(txn, &table)?;
            }
        }
        RoleCommand::Revoke { privileges, tables, roles: grantees } => {
            for role in &grantees {
                roles::must_get_role(txn, role)?;
            }
            for mut table in resolve(txn, &tables)? {
                for role in &grantees {
                    if let Some(bits) = table.grants.get_mut(role) {
                        *bits &= !privileges;
                        if *bits == 0 {
                            table.grants.remove(role);
                        }
                    }
                }
                catalog::save_table(txn, &table)?;
            }
        }
    }
    Ok(notices)
}

fn resolve(txn: &mut Transaction, tables: &Tables) -> Result<Vec<Table>> {
    match tables {
        Tables::All => catalog::list_tables(txn),
        Tables::Named(names) => names.iter().map(|n| catalog::must_get_table(txn, n)).collect(),
    }
}

/// The INSERT, UPDATE and DELETE statements in a query's WITH clause.
pub fn modifying_ctes(query: &ast::Query) -> impl Iterator<Item = &ast::Statement> {
    query.with.iter().flat_map(|w| &w.cte_tables).filter_map(|cte| match cte.query.body.as_ref() {
        ast::SetExpr::Insert(s) | ast::SetExpr::Update(s) | ast::SetExpr::Delete(s) => Some(s),
        _ => None,
    })
}

/// `has_table_privilege(role, table, privileges)`: privileges is a comma-separated list such
/// as `'SELECT, INSERT'`.
pub fn has_table_privilege(txn: &mut Transaction, user: &str, table: &str, privileges: &str) -> Result<bool> {
    let Some(role) = roles::get_role(txn, user)? else {
        return Err(Error::UndefinedObject(format!("role \"{user}\" does not exist")));
    };
    let table = catalog::must_get_table(txn, table)?;
    let mut wanted = 0;
    for name in privileges.split(',') {
        let name = name.trim();
        let name = name.strip_suffix(" WITH GRANT OPTION").unwrap_or(name);
        wanted |= privilege::parse(name)
            .ok_or_else(|| Error::InvalidParameter(format!("unrecognized privilege type: \"{name}\"")))?;
    }
    Ok(role.privileges_on(&table) & wanted != 0)
}

/// The `relacl` text of a table in PostgreSQL's `aclitem[]` form, or NULL-worthy None when
/// no privileges were granted (PostgreSQL shows default privileges as NULL).
pub fn acl(table: &Table) -> Option<String> {
    if table.grants.is_empty() {
        return None;
    }
    let mut items = vec![format!("{}=arwdDxt/{}", roles::ADMIN, roles::ADMIN)];
    items.extend(
        table.grants.iter().map(|(role, bits)| format!("{role}={}/{}", privilege::letters(*bits), roles::ADMIN)),
    );
    Some(format!("{{{}}}", items.join(",")))
}
