//! SQL data types and values.
//!
//! [`DataType`] is the type of a column or expression; [`Value`] is one datum. This layer owns
//! PostgreSQL's semantics for them: comparison and equality (NULL handling is the caller's, see
//! [`Value::compare`]), casting ([`cast`]), and the text forms PostgreSQL prints and parses
//! ([`datetime`], [`Value`]'s `Display`). It depends on nothing but `error`.

pub mod cast;
pub mod datetime;
pub mod interval;
pub mod timetz;
pub mod timezone;
pub mod value;

pub use value::Value;

use std::fmt;

/// An enum type's definition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EnumType {
    pub name: String,
    pub oid: u32,
    pub labels: Vec<String>,
}

impl EnumType {
    /// The 1-based sort position of a label (PostgreSQL's `enumsortorder`).
    pub fn position(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label).map(|i| i + 1)
    }
}

/// The names of a row's fields, where it has them. They are not part of the type's identity:
/// rows with fields of the same types are of one type, whatever their names.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FieldNames(pub Option<Vec<String>>);

impl FieldNames {
    /// The position of the field `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.0.as_ref()?.iter().position(|n| n == name)
    }
}

impl PartialEq for FieldNames {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for FieldNames {}

impl std::hash::Hash for FieldNames {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// The type of a column or expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DataType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// NUMERIC with optional (precision, scale).
    Numeric(Option<(u32, u32)>),
    Text,
    /// VARCHAR with an optional maximum length in characters.
    Varchar(Option<u32>),
    /// CHAR(n): blank-padded to n characters.
    Char(u32),
    Bytea,
    Date,
    /// TIME (without time zone): a time of day.
    Time,
    /// TIME WITH TIME ZONE: a time of day and its UTC offset.
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Jsonb,
    /// An array of an element type (results of array_agg).
    Array(Box<DataType>),
    /// A row, `ROW(a, b)` or `(a, b)`, with the types of its fields (PostgreSQL's `record`),
    /// and their names where it has them (a function's output columns). Not a column type.
    Record(Vec<DataType>, FieldNames),
    /// A user-defined enum (`CREATE TYPE … AS ENUM`); values are its labels, stored as text
    /// and ordered by declaration.
    Enum(Box<EnumType>),
    /// A string literal or parameter whose type is not yet known; resolved from context.
    Unknown,
}

impl DataType {
    /// Whether `value` has this type's wire form (text and binary), as a client decoding a
    /// column by its declared type reads it. NULL fits every type.
    pub fn holds(&self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Null) => true,
            (
                DataType::Text | DataType::Varchar(_) | DataType::Char(_) | DataType::Enum(_) | DataType::Unknown,
                Value::Text(_),
            ) => true,
            (DataType::Array(elem), Value::Array(items)) => items.iter().all(|v| elem.holds(v)),
            // `record` without field types (`::record`) holds any row.
            (DataType::Record(types, _), Value::Record(fields)) => {
                types.is_empty() || types.len() == fields.len() && types.iter().zip(fields).all(|(t, v)| t.holds(v))
            }
            (_, value) => value.data_type().is_some_and(|t| t.oid() == self.oid()),
        }
    }

    /// The PostgreSQL type OID, as sent in RowDescription.
    pub fn oid(&self) -> u32 {
        match self {
            DataType::Bool => 16,
            DataType::Int2 => 21,
            DataType::Int4 => 23,
            DataType::Int8 => 20,
            DataType::Float4 => 700,
            DataType::Float8 => 701,
            DataType::Numeric(_) => 1700,
            DataType::Text => 25,
            DataType::Varchar(_) => 1043,
            DataType::Char(_) => 1042,
            DataType::Bytea => 17,
            DataType::Date => 1082,
            DataType::Time => 1083,
            DataType::TimeTz => 1266,
            DataType::Timestamp => 1114,
            DataType::TimestampTz => 1184,
            DataType::Interval => 1186,
            DataType::Uuid => 2950,
            DataType::Jsonb => 3802,
            DataType::Enum(e) => e.oid,
            DataType::Array(elem) => match **elem {
                DataType::Bool => 1000,
                DataType::Int2 => 1005,
                DataType::Int4 => 1007,
                DataType::Int8 => 1016,
                DataType::Float4 => 1021,
                DataType::Float8 => 1022,
                DataType::Numeric(_) => 1231,
                DataType::Varchar(_) => 1015,
                DataType::Timestamp => 1115,
                DataType::TimestampTz => 1185,
                DataType::Date => 1182,
                DataType::Time => 1183,
                DataType::TimeTz => 1270,
                DataType::Uuid => 2951,
                DataType::Record(..) => 2287,
                _ => 1009,
            },
            DataType::Record(..) => 2249,
            DataType::Unknown => 25,
        }
    }

    /// True for the exact and inexact numeric types.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            DataType::Int2
                | DataType::Int4
                | DataType::Int8
                | DataType::Float4
                | DataType::Float8
                | DataType::Numeric(_)
        )
    }

    /// True for the integer types.
    pub fn is_integer(&self) -> bool {
        matches!(self, DataType::Int2 | DataType::Int4 | DataType::Int8)
    }

    /// True for a type with a length, precision or scale (VARCHAR(n), CHAR(n), NUMERIC(p,s)).
    pub fn has_modifier(&self) -> bool {
        matches!(self, DataType::Varchar(Some(_)) | DataType::Char(_) | DataType::Numeric(Some(_)))
    }

    /// True for the character string types.
    pub fn is_string(&self) -> bool {
        matches!(self, DataType::Text | DataType::Varchar(_) | DataType::Char(_))
    }

    /// The rank used to pick a common numeric type: higher wins.
    pub fn numeric_rank(&self) -> Option<u8> {
        Some(match self {
            DataType::Int2 => 1,
            DataType::Int4 => 2,
            DataType::Int8 => 3,
            DataType::Numeric(_) => 4,
            DataType::Float4 => 5,
            DataType::Float8 => 6,
            _ => return None,
        })
    }

    /// The type two operands are converted to before comparison or arithmetic, following
    /// PostgreSQL's implicit casts; `None` when there is none.
    pub fn common(a: &DataType, b: &DataType) -> Option<DataType> {
        use DataType::*;
        if a == b {
            return Some(a.clone());
        }
        match (a, b) {
            (Unknown, other) | (other, Unknown) => Some(other.clone()),
            _ if a.is_string() && b.is_string() => Some(Text),
            (Numeric(_), Numeric(_)) => Some(Numeric(None)),
            _ => {
                if let (Some(ra), Some(rb)) = (a.numeric_rank(), b.numeric_rank()) {
                    let wider = if ra >= rb { a } else { b };
                    return Some(match wider {
                        Numeric(_) => Numeric(None),
                        other => other.clone(),
                    });
                }
                match (a, b) {
                    (Date, Timestamp) | (Timestamp, Date) => Some(Timestamp),
                    (Date, TimestampTz) | (TimestampTz, Date) | (Timestamp, TimestampTz) | (TimestampTz, Timestamp) => {
                        Some(TimestampTz)
                    }
                    (Time, TimeTz) | (TimeTz, Time) => Some(TimeTz),
                    (Array(x), Array(y)) => DataType::common(x, y).map(|t| Array(Box::new(t))),
                    (Record(x, names), Record(y, _)) if x.len() == y.len() => (x.iter().zip(y))
                        .map(|(x, y)| DataType::common(x, y))
                        .collect::<Option<Vec<_>>>()
                        .map(|fields| Record(fields, names.clone())),
                    _ => None,
                }
            }
        }
    }
}

impl fmt::Display for DataType {
    /// The type's name as PostgreSQL's `format_type` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => write!(f, "boolean"),
            DataType::Int2 => write!(f, "smallint"),
            DataType::Int4 => write!(f, "integer"),
            DataType::Int8 => write!(f, "bigint"),
            DataType::Float4 => write!(f, "real"),
            DataType::Float8 => write!(f, "double precision"),
            DataType::Numeric(None) => write!(f, "numeric"),
            DataType::Numeric(Some((p, s))) => write!(f, "numeric({p},{s})"),
            DataType::Text => write!(f, "text"),
            DataType::Varchar(None) => write!(f, "character varying"),
            DataType::Varchar(Some(n)) => write!(f, "character varying({n})"),
            DataType::Char(n) => write!(f, "character({n})"),
            DataType::Bytea => write!(f, "bytea"),
            DataType::Date => write!(f, "date"),
            DataType::Time => write!(f, "time without time zone"),
            DataType::TimeTz => write!(f, "time with time zone"),
            DataType::Timestamp => write!(f, "timestamp without time zone"),
            DataType::TimestampTz => write!(f, "timestamp with time zone"),
            DataType::Interval => write!(f, "interval"),
            DataType::Uuid => write!(f, "uuid"),
            DataType::Jsonb => write!(f, "jsonb"),
            DataType::Array(elem) => write!(f, "{elem}[]"),
            DataType::Record(..) => write!(f, "record"),
            DataType::Enum(e) => write!(f, "{}", e.name),
            DataType::Unknown => write!(f, "unknown"),
        }
    }
}
