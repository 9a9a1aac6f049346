//! The checks run on every history: linearizability of the registers (per key), the log
//! table's appends (none acknowledged lost, none applied twice, none reported failed yet
//! present), and every member converging to the same state.

use crate::lin::{check_history, Op, OpKind};
use crate::workload::{Action, Outcome, Record};
use std::collections::{BTreeMap, BTreeSet};

/// The registers' history in the checker's terms: a definitely failed operation is left out,
/// an unknown put may have happened at any time after its invocation, an unknown get says
/// nothing.
pub fn linearizable(history: &[Record]) -> Result<(), String> {
    let ops: Vec<Op> = history
        .iter()
        .filter_map(|r| {
            let (key, kind) = match (&r.action, &r.outcome) {
                (_, Outcome::Failed(_)) | (Action::Append { .. }, _) | (Action::Get { .. }, Outcome::Unknown(_)) => {
                    return None
                }
                (Action::Put { key, value }, _) => (key, OpKind::Put(value.clone())),
                (Action::Get { key, result }, Outcome::Ok) => (key, OpKind::Get(result.clone())),
            };
            let ret = (r.outcome == Outcome::Ok).then_some(r.ret);
            Some(Op { client: r.client, key: key.to_string(), kind, invoke: r.invoke, ret })
        })
        .collect();
    check_history(&ops)
}

/// Checks the log table's final rows (client, n) against the appends' outcomes.
pub fn appends(history: &[Record], rows: &[(i32, i32)]) -> Result<(), String> {
    let mut seen: BTreeMap<(i32, i32), usize> = BTreeMap::new();
    for row in rows {
        *seen.entry(*row).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).map(|(row, n)| format!("{row:?} x{n}")).collect();
    if !twice.is_empty() {
        return Err(format!("appends applied more than once: {}", twice.join(", ")));
    }
    let mut problems = Vec::new();
    let mut made = BTreeSet::new();
    for r in history {
        let Action::Append { n } = r.action else { continue };
        let row = (r.client as i32, n);
        made.insert(row);
        match (&r.outcome, seen.contains_key(&row)) {
            (Outcome::Ok, false) => problems.push(format!("acknowledged append {row:?} lost")),
            (Outcome::Failed(why), true) => problems.push(format!("append {row:?} failed ({why}) but is present")),
            _ => {}
        }
    }
    problems.extend(seen.keys().filter(|row| !made.contains(row)).map(|row| format!("row {row:?} nobody appended")));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
