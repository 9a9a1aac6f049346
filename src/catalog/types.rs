//! User-defined types: enums (`CREATE TYPE name AS ENUM (…)`).
//!
//! An enum's definition is stored under a [`TYPE`] key as JSON, through MVCC like tables. A
//! column of an enum type carries a copy of the definition in its [`DataType::Enum`], so rows
//! are checked and ordered without a catalog lookup; the definition cannot change while a
//! column uses it (ALTER TYPE is not supported, DROP TYPE refuses).

use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use crate::storage::keyspace::Keyspace;
use crate::types::{DataType, EnumType};

/// Keyspace of user-defined types.
pub const TYPE: Keyspace = Keyspace::Type;

/// Oids of enum types start here (clear of table, index and role oids).
const FIRST_TYPE_OID: u32 = 2_000_000;

/// Reads an enum type by name.
pub fn get_enum(txn: &mut Transaction, name: &str) -> Result<Option<EnumType>> {
    super::get_record(txn, TYPE, name, &format!("type {name}"))
}

/// Every enum type, by name.
pub fn list_enums(txn: &mut Transaction) -> Result<Vec<EnumType>> {
    super::list_records(txn, TYPE, "type")
}

/// Creates an enum type; 42710 if the name is taken (the caller checks built-in type names).
pub fn create_enum(txn: &mut Transaction, name: &str, labels: Vec<String>) -> Result<EnumType> {
    if get_enum(txn, name)?.is_some() {
        return Err(Error::DuplicateObject(format!("type \"{name}\" already exists")));
    }
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty() || label.len() > 63 {
            return Err(Error::InvalidParameter(format!(
                "invalid enum label \"{label}\": labels must be 1 to 63 bytes long"
            )));
        }
        if labels[..i].contains(label) {
            return Err(Error::DuplicateObject(format!("enum label \"{label}\" used more than once")));
        }
    }
    let oid = FIRST_TYPE_OID + super::next_id(txn, "type")?;
    let definition = EnumType { name: name.to_string(), oid, labels };
    super::put_record(txn, TYPE, name, &definition)?;
    Ok(definition)
}

/// Drops an enum type; 2BP01 while a column uses it.
pub fn drop_enum(txn: &mut Transaction, name: &str) -> Result<()> {
    for table in super::list_tables(txn)? {
        for column in &table.columns {
            if uses(&column.data_type, name) {
                return Err(Error::DependentObjects {
                    message: format!("cannot drop type {name} because other objects depend on it"),
                    detail: format!("column {} of table {} depends on type {name}", column.name, table.name),
                });
            }
        }
    }
    txn.delete(super::record_key(TYPE, name));
    Ok(())
}

fn uses(t: &DataType, name: &str) -> bool {
    match t {
        DataType::Enum(e) => e.name == name,
        DataType::Array(elem) => uses(elem, name),
        _ => false,
    }
}
