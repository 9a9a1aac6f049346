//! Interval functions: `justify_days`, `justify_hours`, `justify_interval`.

use super::Signature;
use crate::error::Result;
use crate::types::interval;
use crate::types::{DataType, Value};

/// Resolves one of these functions, or None when `name` is not one of them.
pub fn resolve(name: &str, args: &[DataType]) -> Option<Signature> {
    let name: &'static str = match name {
        "justify_days" => "justify_days",
        "justify_hours" => "justify_hours",
        "justify_interval" => "justify_interval",
        _ => return None,
    };
    matches!(args, [DataType::Interval | DataType::Unknown]).then(|| Signature {
        name,
        arg_types: vec![DataType::Interval],
        return_type: DataType::Interval,
    })
}

/// Evaluates a function [`resolve`] returned; None when `name` is not one of them.
pub fn call(name: &str, args: &[Value]) -> Option<Result<Value>> {
    let justify = match name {
        "justify_days" => interval::justify_days,
        "justify_hours" => interval::justify_hours,
        "justify_interval" => interval::justify_interval,
        _ => return None,
    };
    Some(match args.first() {
        Some(Value::Interval(iv)) => justify(iv).map(Value::Interval),
        _ => Ok(Value::Null),
    })
}
