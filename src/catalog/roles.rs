//! Roles and table privileges.
//!
//! Two roles are built in and never stored: `admin` (superuser; password from
//! `CHRONOS_AUTH_TOKEN_ADMIN`) and `readonly` (may read every table and write none; password
//! from `CHRONOS_AUTH_TOKEN_READONLY`). Roles made with `CREATE ROLE` live under [`ROLE`] keys
//! as JSON, read and written through MVCC transactions like tables, so role changes are
//! transactional and replicated. A role's password is kept only as a SCRAM-SHA-256 salted
//! password (PBKDF2 of the password), never in clear.
//!
//! Privileges granted on a table are stored in the table's definition ([`super::Table::grants`]),
//! so they follow the table through RENAME and vanish with DROP TABLE.

use super::Table;
use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use crate::storage::keyspace::Keyspace;
use serde::{Deserialize, Serialize};

/// Keyspace of role definitions.
pub const ROLE: Keyspace = Keyspace::Role;

/// The built-in superuser.
pub const ADMIN: &str = "admin";
/// The built-in read-everything role.
pub const READONLY: &str = "readonly";
/// Oid of `admin` (PostgreSQL's bootstrap superuser oid).
pub const ADMIN_OID: u32 = 10;
/// Oid of `readonly`.
pub const READONLY_OID: u32 = 11;
/// Oids of created roles start here, as PostgreSQL's user objects do.
const FIRST_ROLE_OID: u32 = 16_384;
/// PBKDF2 rounds of stored passwords (PostgreSQL's default `scram_iterations`).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// Table privileges, as bits.
pub mod privilege {
    pub const SELECT: u8 = 1;
    pub const INSERT: u8 = 2;
    pub const UPDATE: u8 = 4;
    pub const DELETE: u8 = 8;
    pub const TRUNCATE: u8 = 16;
    pub const ALL: u8 = SELECT | INSERT | UPDATE | DELETE | TRUNCATE;

    /// Names and bits in PostgreSQL's order, with their `aclitem` letters.
    pub const NAMES: [(&str, u8, char); 5] = [
        ("INSERT", INSERT, 'a'),
        ("SELECT", SELECT, 'r'),
        ("UPDATE", UPDATE, 'w'),
        ("DELETE", DELETE, 'd'),
        ("TRUNCATE", TRUNCATE, 'D'),
    ];

    /// The bit of a privilege name (case-insensitive), if it is a table privilege.
    pub fn parse(name: &str) -> Option<u8> {
        NAMES.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(name)).map(|(_, bit, _)| *bit)
    }

    /// The names of the bits set in `bits`, comma separated.
    pub fn describe(bits: u8) -> String {
        NAMES.iter().filter(|(_, b, _)| bits & b != 0).map(|(n, _, _)| *n).collect::<Vec<_>>().join(", ")
    }

    /// `aclitem` letters of the bits set in `bits` (`arwdD`).
    pub fn letters(bits: u8) -> String {
        NAMES.iter().filter(|(_, b, _)| bits & b != 0).map(|(_, _, c)| *c).collect()
    }
}

/// A password as SCRAM-SHA-256 keeps it: the salt and PBKDF2-HMAC-SHA256(password, salt).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScramSecret {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub salted_password: Vec<u8>,
}

impl ScramSecret {
    /// Derives the secret of `password` with a fresh random salt.
    pub fn new(password: &str) -> Self {
        let salt = uuid::Uuid::new_v4().as_bytes().to_vec();
        let salted_password = salted_password(password, &salt, SCRAM_ITERATIONS);
        Self { salt, iterations: SCRAM_ITERATIONS, salted_password }
    }
}

/// PBKDF2-HMAC-SHA256 of `password`: SCRAM's SaltedPassword.
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let rounds = std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA256, rounds, salt, password.as_bytes(), &mut out);
    out
}

/// A role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub oid: u32,
    pub superuser: bool,
    /// May connect.
    pub login: bool,
    /// Without one the role cannot log in when passwords are required.
    pub password: Option<ScramSecret>,
}

impl Role {
    /// A built-in role, if `name` is one. Their passwords come from the server's configuration.
    pub fn builtin(name: &str) -> Option<Role> {
        let (oid, superuser) = match name {
            ADMIN => (ADMIN_OID, true),
            READONLY => (READONLY_OID, false),
            _ => return None,
        };
        Some(Role { name: name.to_string(), oid, superuser, login: true, password: None })
    }

    /// The privileges this role holds on `table`.
    pub fn privileges_on(&self, table: &Table) -> u8 {
        if self.superuser {
            privilege::ALL
        } else if self.name == READONLY {
            privilege::SELECT
        } else {
            table.grants.get(&self.name).copied().unwrap_or(0)
        }
    }
}

/// Reads a role, built-in or created.
pub fn get_role(txn: &mut Transaction, name: &str) -> Result<Option<Role>> {
    if let Some(role) = Role::builtin(name) {
        return Ok(Some(role));
    }
    super::get_record(txn, ROLE, name, &format!("role {name}"))
}

/// Reads a role, failing with 42704 if it does not exist.
pub fn must_get_role(txn: &mut Transaction, name: &str) -> Result<Role> {
    get_role(txn, name)?.ok_or_else(|| Error::UndefinedObject(format!("role \"{name}\" does not exist")))
}

/// Every role, built-in ones first, then by name.
pub fn list_roles(txn: &mut Transaction) -> Result<Vec<Role>> {
    let mut roles: Vec<Role> = [ADMIN, READONLY].iter().filter_map(|n| Role::builtin(n)).collect();
    roles.extend(super::list_records::<Role>(txn, ROLE, "role")?);
    Ok(roles)
}

/// Writes a created role.
pub fn save_role(txn: &mut Transaction, role: &Role) -> Result<()> {
    if Role::builtin(&role.name).is_some() {
        return Err(Error::InsufficientPrivilege(format!("role \"{}\" is built in and cannot be changed", role.name)));
    }
    super::put_record(txn, ROLE, &role.name, role)
}

/// Removes a created role.
pub fn remove_role(txn: &mut Transaction, name: &str) {
    txn.delete(super::record_key(ROLE, name));
}

/// A fresh oid for a created role.
pub fn next_role_oid(txn: &mut Transaction) -> Result<u32> {
    Ok(FIRST_ROLE_OID + super::next_id(txn, "role")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salted_password_is_what_the_scram_exchange_derives() {
        let salt = uuid::Uuid::new_v4().as_bytes().to_vec();
        let salted = salted_password("pencil", &salt, 4096);
        assert_eq!(salted, pgwire::api::auth::sasl::scram::gen_salted_password("pencil", &salt, 4096));
        assert_ne!(salted, salted_password("pencil!", &salt, 4096));
        assert_ne!(salted, salted_password("pencil", &salt, 4095));
    }

    #[test]
    fn privilege_names() {
        assert_eq!(privilege::parse("select"), Some(privilege::SELECT));
        assert_eq!(privilege::parse("usage"), None);
        assert_eq!(privilege::letters(privilege::ALL), "arwdD");
        assert_eq!(privilege::describe(privilege::SELECT | privilege::DELETE), "SELECT, DELETE");
    }
}
