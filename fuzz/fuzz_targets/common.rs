//! Helpers shared by the targets: the data types the server can meet, and what it does with a
//! value it accepted (prints it in text and binary form, as a result column would).

#![allow(dead_code)]

use bytes::BytesMut;
use chronos::pg::encode;
use chronos::types::{DataType, Value};

/// Type modifiers read from the front of an input.
pub struct Specs {
    /// NUMERIC(p,s) as `sql::planner::types::parse_type_name` allows it: NUMERIC(p) with any
    /// p (scale 0), or NUMERIC(p,s) with 1 <= p <= 28 and s <= p.
    pub numeric: (u32, u32),
    /// VARCHAR(n) / CHAR(n), 1 <= n <= 256 here: the server takes any n >= 1, but a larger
    /// one only makes CHAR padding (and the run) slower.
    pub length: u32,
}

/// Splits 4 bytes of type modifiers off the front of `data`.
pub fn split_specs(data: &[u8]) -> Option<(Specs, &[u8])> {
    if data.len() < 4 {
        return None;
    }
    let (head, rest) = data.split_at(4);
    let p = head[0] as u32;
    let s = if (1..=28).contains(&p) { head[1] as u32 % (p + 1) } else { 0 };
    let length = 1 + u16::from_be_bytes([head[2], head[3]]) as u32 % 256;
    Some((Specs { numeric: (p, s), length }, rest))
}

/// Every scalar type, with the modifiers of `specs` for the bounded ones.
pub fn scalar_types(specs: &Specs) -> Vec<DataType> {
    vec![
        DataType::Bool,
        DataType::Int2,
        DataType::Int4,
        DataType::Int8,
        DataType::Float4,
        DataType::Float8,
        DataType::Numeric(None),
        DataType::Numeric(Some(specs.numeric)),
        DataType::Text,
        DataType::Varchar(None),
        DataType::Varchar(Some(specs.length)),
        DataType::Char(specs.length),
        DataType::Char(1),
        DataType::Bytea,
        DataType::Date,
        DataType::Timestamp,
        DataType::TimestampTz,
        DataType::Interval,
        DataType::Uuid,
        DataType::Jsonb,
    ]
}

/// Every type a column, a cast target or a parameter can have: the scalars, `unknown`, arrays
/// of each scalar and two two-dimensional arrays (`text[][]`, `int[][]`).
pub fn all_types(specs: &Specs) -> Vec<DataType> {
    let scalars = scalar_types(specs);
    let mut all = scalars.clone();
    all.push(DataType::Unknown);
    all.extend(scalars.into_iter().map(|t| DataType::Array(Box::new(t))));
    for inner in [DataType::Text, DataType::Int4] {
        all.push(DataType::Array(Box::new(DataType::Array(Box::new(inner)))));
    }
    all
}

/// What the server does with an accepted value sent back to a client: its text form, and its
/// binary form.
pub fn output(value: &Value) {
    let _ = encode::text(value);
    let mut buf = BytesMut::new();
    let _ = encode::binary(value, &mut buf);
}
