//! PostgreSQL's descriptions of ChronosDB's types: names, categories, lengths and the
//! information_schema spellings the catalog views show.

use crate::types::{DataType, Value};

pub(super) fn all_types() -> Vec<DataType> {
    use DataType::*;
    let base = vec![
        Bool,
        Int2,
        Int4,
        Int8,
        Float4,
        Float8,
        Numeric(None),
        Text,
        Varchar(None),
        Char(1),
        Bytea,
        Date,
        Time,
        TimeTz,
        Timestamp,
        TimestampTz,
        Interval,
        Uuid,
        Jsonb,
    ];
    let mut all = base.clone();
    all.extend(base.into_iter().map(|t| Array(Box::new(t))));
    all
}

/// The internal name of a type (`int4`, `varchar`, `_int4` …).
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Bool => "bool".into(),
        DataType::Int2 => "int2".into(),
        DataType::Int4 => "int4".into(),
        DataType::Int8 => "int8".into(),
        DataType::Float4 => "float4".into(),
        DataType::Float8 => "float8".into(),
        DataType::Numeric(_) => "numeric".into(),
        DataType::Text | DataType::Unknown => "text".into(),
        DataType::Varchar(_) => "varchar".into(),
        DataType::Char(_) => "bpchar".into(),
        DataType::Bytea => "bytea".into(),
        DataType::Date => "date".into(),
        DataType::Time => "time".into(),
        DataType::TimeTz => "timetz".into(),
        DataType::Timestamp => "timestamp".into(),
        DataType::TimestampTz => "timestamptz".into(),
        DataType::Interval => "interval".into(),
        DataType::Uuid => "uuid".into(),
        DataType::Jsonb => "jsonb".into(),
        DataType::Array(e) => format!("_{}", type_name(e)),
        DataType::Record(..) => "record".into(),
        DataType::Enum(e) => e.name.clone(),
    }
}

pub(super) fn type_meta(t: &DataType) -> (&'static str, i64, i64) {
    let category = match t {
        DataType::Bool => "B",
        DataType::Int2
        | DataType::Int4
        | DataType::Int8
        | DataType::Float4
        | DataType::Float8
        | DataType::Numeric(_) => "N",
        DataType::Text | DataType::Varchar(_) | DataType::Char(_) | DataType::Unknown => "S",
        DataType::Date | DataType::Time | DataType::TimeTz | DataType::Timestamp | DataType::TimestampTz => "D",
        DataType::Interval => "T",
        DataType::Array(_) => "A",
        DataType::Enum(_) => "E",
        DataType::Record(..) => "P",
        _ => "U",
    };
    match t {
        DataType::Array(e) => (category, e.oid() as i64, 0),
        DataType::Enum(_) => (category, 0, 0),
        other => (category, 0, DataType::Array(Box::new(other.clone())).oid() as i64),
    }
}

pub(super) fn type_len(t: &DataType) -> i16 {
    match t {
        DataType::Bool => 1,
        DataType::Int2 => 2,
        DataType::Int4 | DataType::Float4 | DataType::Date | DataType::Enum(_) => 4,
        DataType::Int8 | DataType::Float8 | DataType::Time | DataType::Timestamp | DataType::TimestampTz => 8,
        DataType::TimeTz => 12,
        DataType::Interval | DataType::Uuid => 16,
        _ => -1,
    }
}

pub(super) fn typmod(t: &DataType) -> i32 {
    match t {
        DataType::Varchar(Some(n)) | DataType::Char(n) => *n as i32 + 4,
        DataType::Numeric(Some((p, s))) => ((*p as i32) << 16 | *s as i32) + 4,
        _ => -1,
    }
}

pub(super) fn information_schema_type(t: &DataType) -> String {
    match t {
        DataType::Varchar(_) => "character varying".into(),
        DataType::Char(_) => "character".into(),
        DataType::Numeric(_) => "numeric".into(),
        DataType::Array(_) => "ARRAY".into(),
        DataType::Jsonb => "jsonb".into(),
        DataType::Enum(_) => "USER-DEFINED".into(),
        other => other.to_string(),
    }
}

pub(super) fn column_facets(t: &DataType) -> (Value, Value, Value, Value) {
    match t {
        DataType::Varchar(Some(n)) | DataType::Char(n) => {
            (Value::Int4(*n as i32), Value::Null, Value::Null, Value::Null)
        }
        DataType::Int2 => (Value::Null, Value::Int4(16), Value::Int4(2), Value::Int4(0)),
        DataType::Int4 => (Value::Null, Value::Int4(32), Value::Int4(2), Value::Int4(0)),
        DataType::Int8 => (Value::Null, Value::Int4(64), Value::Int4(2), Value::Int4(0)),
        DataType::Float4 => (Value::Null, Value::Int4(24), Value::Int4(2), Value::Null),
        DataType::Float8 => (Value::Null, Value::Int4(53), Value::Int4(2), Value::Null),
        DataType::Numeric(Some((p, s))) => {
            (Value::Null, Value::Int4(*p as i32), Value::Int4(10), Value::Int4(*s as i32))
        }
        DataType::Numeric(None) => (Value::Null, Value::Null, Value::Int4(10), Value::Null),
        _ => (Value::Null, Value::Null, Value::Null, Value::Null),
    }
}
