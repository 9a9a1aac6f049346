//! `nextval`, `setval`, `currval`, `lastval` and `pg_get_serial_sequence`. On a replicated node a value comes from
//! a block this node reserved in a commit of its own (see [`crate::mvcc::CounterBlock`]): it
//! is never handed out twice and a rollback does not give it back, as in PostgreSQL. An
//! embedded engine without replication (one writer at a time, which a statement may already
//! hold) advances the counter in the statement's own transaction instead.

use super::Context;
use crate::catalog::roles::{self, privilege};
use crate::catalog::sequences::{self, encode_state, Sequence};
use crate::catalog::{self};
use crate::error::{Error, Result};
use crate::sql::planner::sequences::sequence_name;
use crate::types::Value;

/// Values a node reserves at a time (PostgreSQL logs a sequence 32 values ahead, too).
const BLOCK: i64 = 32;

pub fn handles(name: &str) -> bool {
    matches!(name, "nextval" | "setval" | "currval" | "lastval" | "pg_get_serial_sequence")
}

/// Records `value` as what `currval` of `sequence` (and `lastval`) report in this session.
fn remember(ctx: &Context, sequence: &str, value: i64) {
    let mut values = ctx.session.sequence_values.lock().unwrap_or_else(|e| e.into_inner());
    values.by_sequence.insert(sequence.to_string(), value);
    values.last = Some(sequence.to_string());
}

pub fn call(name: &str, args: Vec<Value>, ctx: &mut Context) -> Result<Value> {
    let text = |i: usize| match args.get(i) {
        Some(Value::Text(s)) => Ok(s.clone()),
        _ => Err(Error::Internal(format!("{name} without its text argument"))),
    };
    match name {
        "nextval" => {
            // Once per statement: the definition and the privilege (an INSERT of many rows
            // into a SERIAL table calls this for every row).
            let name = sequence_name(&text(0)?);
            let sequence = match ctx.sequences.remove(&name) {
                Some(sequence) => sequence,
                None => {
                    let sequence = sequences::must_get_sequence(ctx.txn, &name)?;
                    check_privilege(ctx, &sequence, privilege::INSERT | privilege::UPDATE)?;
                    sequence
                }
            };
            let value = next_value(ctx, &sequence);
            if let Ok(value) = value {
                remember(ctx, &sequence.name, value);
            }
            ctx.sequences.insert(name, sequence);
            Ok(Value::Int8(value?))
        }
        "currval" => {
            let sequence = sequences::must_get_sequence(ctx.txn, &sequence_name(&text(0)?))?;
            check_privilege(ctx, &sequence, privilege::SELECT | privilege::INSERT | privilege::UPDATE)?;
            let values = ctx.session.sequence_values.lock().unwrap_or_else(|e| e.into_inner());
            values.by_sequence.get(&sequence.name).map(|v| Value::Int8(*v)).ok_or_else(|| {
                Error::NotInPrerequisiteState(format!(
                    "currval of sequence \"{}\" is not yet defined in this session",
                    sequence.name
                ))
            })
        }
        "lastval" => {
            let values = ctx.session.sequence_values.lock().unwrap_or_else(|e| e.into_inner());
            values
                .last
                .as_ref()
                .and_then(|name| values.by_sequence.get(name))
                .map(|v| Value::Int8(*v))
                .ok_or_else(|| Error::NotInPrerequisiteState("lastval is not yet defined in this session".into()))
        }
        "setval" => {
            let sequence = sequences::must_get_sequence(ctx.txn, &sequence_name(&text(0)?))?;
            check_privilege(ctx, &sequence, privilege::UPDATE)?;
            let value = args.get(1).and_then(Value::as_i64).unwrap_or(0);
            let called = !matches!(args.get(2), Some(Value::Bool(false)));
            if !(sequence.min..=sequence.max).contains(&value) {
                return Err(Error::NumericOutOfRange(format!(
                    "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                    sequence.name, sequence.min, sequence.max
                )));
            }
            if called {
                remember(ctx, &sequence.name, value);
            }
            store_state(ctx, &sequence, encode_state(value, called))?;
            Ok(Value::Int8(value))
        }
        _ => {
            let (table, column) = (sequence_name(&text(0)?), text(1)?.to_lowercase());
            let owner = catalog::must_get_table(ctx.txn, &table)?;
            if owner.column_index(&column).is_none() {
                return Err(Error::UndefinedColumn(format!("{column}\" of relation \"{table}")));
            }
            let owned = sequences::list_sequences(ctx.txn)?
                .into_iter()
                .find(|s| s.owned_by.as_ref().is_some_and(|(t, c)| *t == table && *c == column));
            Ok(owned.map_or(Value::Null, |s| Value::Text(format!("public.{}", s.name))))
        }
    }
}

/// Makes `sequence` start over: its next value is its start (`TRUNCATE … RESTART IDENTITY`).
pub fn restart(ctx: &mut Context, sequence: &Sequence) -> Result<()> {
    ctx.sequences.remove(&sequence.name);
    store_state(ctx, sequence, encode_state(sequence.start, false))
}

/// Sets the counter of `sequence` in a commit of its own: `setval` is not undone by a
/// rollback in PostgreSQL either.
fn store_state(ctx: &mut Context, sequence: &Sequence, state: Vec<u8>) -> Result<()> {
    ctx.txn.mvcc().clone().set_counter(&sequence.counter_key(), state)
}

fn next_value(ctx: &mut Context, sequence: &Sequence) -> Result<i64> {
    let mvcc = ctx.txn.mvcc().clone();
    mvcc.next_counter_value(&sequence.counter_key(), &|stored| sequence.reserve(stored, BLOCK))
}

/// Superusers may use every sequence; other roles one that a column of a table they may
/// write owns (the SERIAL and identity sequences), with `wanted` on that table.
fn check_privilege(ctx: &mut Context, sequence: &Sequence, wanted: u8) -> Result<()> {
    let user = ctx.session.user.clone();
    let role = match roles::get_role(ctx.txn, &user)? {
        Some(role) => role,
        None => return Err(Error::InsufficientPrivilege(format!("role \"{user}\" does not exist"))),
    };
    if role.superuser {
        return Ok(());
    }
    if let Some((table, _)) = &sequence.owned_by {
        if let Some(table) = catalog::get_table(ctx.txn, table)? {
            if role.privileges_on(&table) & wanted != 0 {
                return Ok(());
            }
        }
    }
    Err(Error::InsufficientPrivilege(format!("permission denied for sequence {}", sequence.name)))
}
