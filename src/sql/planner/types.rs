//! SQL type names to [`DataType`].

use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use crate::types::{DataType, FieldNames};

/// Resolves a type name: a built-in type, else a user-defined enum from the catalog.
pub fn resolve_type(txn: &mut Transaction, name: &str) -> Result<DataType> {
    match parse_type_name(name) {
        Err(Error::UndefinedObject(message)) => {
            let lower = name.trim().to_ascii_lowercase();
            let (base, array) = match lower.strip_suffix("[]") {
                Some(elem) => (elem.trim().to_string(), true),
                None => (lower, false),
            };
            let base = base.trim_start_matches("public.").trim_matches('"').to_string();
            match crate::catalog::types::get_enum(txn, &base)? {
                Some(e) if array => Ok(DataType::Array(Box::new(DataType::Enum(Box::new(e))))),
                Some(e) => Ok(DataType::Enum(Box::new(e))),
                None => Err(Error::UndefinedObject(message)),
            }
        }
        other => other,
    }
}

/// The type of column `column` named `name`: a real type, not the pseudo-type `record`.
pub fn resolve_column_type(txn: &mut Transaction, name: &str, column: &str) -> Result<DataType> {
    match resolve_type(txn, name)? {
        DataType::Record(..) => {
            Err(Error::InvalidTableDefinition(format!("column \"{column}\" has pseudo-type record")))
        }
        t => Ok(t),
    }
}

/// Parses a type name as written in SQL (`int`, `varchar(20)`, `numeric(10,2)`,
/// `timestamp with time zone`, `text[]` …).
pub fn parse_type_name(name: &str) -> Result<DataType> {
    let lower = name.trim().to_ascii_lowercase();
    let lower = lower.trim_start_matches("pg_catalog.").trim_matches('"').to_string();
    if let Some(elem) = lower.strip_suffix("[]") {
        return Ok(DataType::Array(Box::new(parse_type_name(elem)?)));
    }
    let (base, args) = match lower.find('(') {
        Some(i) => {
            let close = lower.rfind(')').unwrap_or(lower.len());
            let inner = &lower[i + 1..close.max(i + 1)];
            let rest = lower[close.min(lower.len())..].trim_start_matches(')').trim();
            let base = format!("{} {}", lower[..i].trim(), rest);
            (base.trim().to_string(), inner.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
        }
        None => (lower.clone(), Vec::new()),
    };
    let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
    let number = |i: usize| -> Result<u32> {
        args.get(i)
            .and_then(|a| a.parse::<u32>().ok())
            .ok_or_else(|| Error::Syntax { message: format!("invalid type modifier in {name}"), position: None })
    };
    Ok(match base.as_str() {
        "bool" | "boolean" => DataType::Bool,
        "smallint" | "int2" => DataType::Int2,
        "int" | "integer" | "int4" => DataType::Int4,
        "bigint" | "int8" | "oid" | "regclass" | "regtype" | "regproc" | "regprocedure" | "regnamespace"
        | "regrole" | "regoper" | "xid" => DataType::Int8,
        "real" | "float4" => DataType::Float4,
        "double precision" | "float8" | "double" => DataType::Float8,
        "float" => match args.first() {
            Some(_) if number(0)? <= 24 => DataType::Float4,
            _ => DataType::Float8,
        },
        "numeric" | "decimal" | "dec" => match args.len() {
            0 => DataType::Numeric(None),
            1 => DataType::Numeric(Some((number(0)?, 0))),
            _ => {
                let (p, s) = (number(0)?, number(1)?);
                if p == 0 || p > 28 {
                    return Err(Error::InvalidParameter(format!("NUMERIC precision {p} must be between 1 and 28")));
                }
                if s > p {
                    return Err(Error::InvalidParameter(format!(
                        "NUMERIC scale {s} must be between 0 and precision {p}"
                    )));
                }
                DataType::Numeric(Some((p, s)))
            }
        },
        "text" | "string" | "name" | "citext" | "\"char\"" => DataType::Text,
        "varchar" | "character varying" | "char varying" => match args.first() {
            Some(_) => DataType::Varchar(Some(positive_length(number(0)?, "varchar")?)),
            None => DataType::Varchar(None),
        },
        "char" | "character" | "bpchar" => match args.first() {
            Some(_) => DataType::Char(positive_length(number(0)?, "char")?),
            None => DataType::Char(1),
        },
        "bytea" => DataType::Bytea,
        "date" => DataType::Date,
        "time" | "time without time zone" => DataType::Time,
        "timetz" | "time with time zone" => DataType::TimeTz,
        "timestamp" | "timestamp without time zone" => DataType::Timestamp,
        "timestamptz" | "timestamp with time zone" => DataType::TimestampTz,
        "interval" => DataType::Interval,
        "uuid" => DataType::Uuid,
        "json" | "jsonb" => DataType::Jsonb,
        // Any row (a pseudo-type: casts and function results, never a column).
        "record" => DataType::Record(Vec::new(), FieldNames::default()),
        _ => return Err(Error::UndefinedObject(format!("type \"{name}\" does not exist"))),
    })
}

/// PostgreSQL's largest declared length of a character type.
const MAX_LENGTH: u32 = 10_485_760;

fn positive_length(n: u32, type_name: &str) -> Result<u32> {
    if n == 0 {
        Err(Error::InvalidParameter(format!("length for type {type_name} must be at least 1")))
    } else if n > MAX_LENGTH {
        Err(Error::InvalidParameter(format!("length for type {type_name} cannot exceed {MAX_LENGTH}")))
    } else {
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert_eq!(parse_type_name("INT").unwrap(), DataType::Int4);
        assert_eq!(parse_type_name("VARCHAR(20)").unwrap(), DataType::Varchar(Some(20)));
        assert_eq!(parse_type_name("NUMERIC(10,2)").unwrap(), DataType::Numeric(Some((10, 2))));
        assert_eq!(parse_type_name("TIMESTAMP WITH TIME ZONE").unwrap(), DataType::TimestampTz);
        assert_eq!(parse_type_name("timestamp(3) with time zone").unwrap(), DataType::TimestampTz);
        assert_eq!(parse_type_name("DOUBLE PRECISION").unwrap(), DataType::Float8);
        assert_eq!(parse_type_name("text[]").unwrap(), DataType::Array(Box::new(DataType::Text)));
        assert_eq!(parse_type_name("widget").unwrap_err().sqlstate(), "42704");
    }
}
