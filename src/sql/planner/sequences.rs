//! Planning of sequences: `CREATE SEQUENCE` options, and the sequences `SERIAL` and identity
//! columns own.

use super::binder::ident;
use super::types;
use crate::catalog::sequences::Sequence;
use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use crate::types::DataType;
use sqlparser::ast;

/// A column that takes its values from a sequence it owns (`SERIAL`, `GENERATED … AS
/// IDENTITY`), with the sequence's options.
pub struct Identity {
    pub options: Vec<ast::SequenceOptions>,
}

/// The integer type of a `serial` pseudo-type name, if it is one.
pub fn serial_type(type_name: &str) -> Option<DataType> {
    Some(match type_name.to_ascii_lowercase().as_str() {
        "smallserial" | "serial2" => DataType::Int2,
        "serial" | "serial4" => DataType::Int4,
        "bigserial" | "serial8" => DataType::Int8,
        _ => return None,
    })
}

/// The sequence an identity column `column` of `table` owns, and the column default that
/// draws from it.
pub fn owned_sequence(
    txn: &mut Transaction,
    table: &str,
    column: &str,
    data_type: &DataType,
    identity: &Identity,
) -> Result<(Sequence, String)> {
    if !matches!(data_type, DataType::Int2 | DataType::Int4 | DataType::Int8) {
        return Err(Error::InvalidTableDefinition(format!(
            "identity column type must be smallint, integer, or bigint (column \"{column}\" is {data_type})"
        )));
    }
    let name = format!("{table}_{column}_seq");
    let mut sequence = from_options(txn, name.clone(), &identity.options, data_type.clone())?;
    sequence.owned_by = Some((table.to_string(), column.to_string()));
    Ok((sequence, format!("nextval('{name}')")))
}

/// A sequence from `CREATE SEQUENCE` options (or an identity column's), with PostgreSQL's
/// defaults for whatever they leave out.
pub fn from_options(
    txn: &mut Transaction,
    name: String,
    options: &[ast::SequenceOptions],
    default_type: DataType,
) -> Result<Sequence> {
    use ast::SequenceOptions as O;
    let mut data_type = default_type;
    let mut increment = 1;
    for option in options {
        match option {
            O::DataType(t) => {
                data_type = types::resolve_type(txn, &t.to_string())?;
                if !matches!(data_type, DataType::Int2 | DataType::Int4 | DataType::Int8) {
                    return Err(Error::InvalidParameter("sequence type must be smallint, integer, or bigint".into()));
                }
            }
            O::IncrementBy(e, _) => increment = integer(e)?,
            _ => {}
        }
    }
    let mut sequence = Sequence::new(name, data_type, increment);
    let mut start = None;
    for option in options {
        match option {
            O::MinValue(Some(e)) => sequence.min = integer(e)?,
            O::MaxValue(Some(e)) => sequence.max = integer(e)?,
            O::StartWith(e, _) => start = Some(integer(e)?),
            O::Cycle(cycle) => sequence.cycle = !*cycle,
            O::OwnedBy(Some(target)) => {
                let parts: Vec<String> = super::binder::object_name_parts(target);
                let [.., table, column] = parts.as_slice() else {
                    return Err(Error::Syntax { message: "invalid OWNED BY option".into(), position: None });
                };
                sequence.owned_by = Some((table.clone(), column.clone()));
            }
            // CACHE: each node reserves blocks of its own size; NO MINVALUE/MAXVALUE and
            // OWNED BY NONE keep the defaults.
            _ => {}
        }
    }
    sequence.start = start.unwrap_or(if sequence.increment > 0 { sequence.min } else { sequence.max });
    sequence.validate()?;
    Ok(sequence)
}

/// An integer option value (`START 10`, `INCREMENT -1`).
fn integer(e: &ast::Expr) -> Result<i64> {
    e.to_string().replace(' ', "").parse().map_err(|_| Error::Syntax {
        message: format!("syntax error at or near \"{e}\": an integer is required"),
        position: None,
    })
}

/// A sequence name as functions take it (`'public.My_Seq'` → `my_seq`, quoted parts kept).
pub fn sequence_name(text: &str) -> String {
    let last = text.rsplit('.').next().unwrap_or(text);
    match last.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => ident(&ast::Ident::new(last)),
    }
}
