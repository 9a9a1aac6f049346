//! The checks run on every history: linearizability of the registers (per key), the log
//! table's appends (none acknowledged lost, none applied twice, none reported failed yet
//! present), every member converging to the same state, and the time to take writes again.

use crate::lin::{check_history, Op, OpKind};
use crate::workload::{Action, Dialer, Outcome, Record};
use crate::{MEMBERS, RECOVERY_BOUND};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

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

/// The time from `healed` until a write through every member has succeeded, within
/// [`RECOVERY_BOUND`]. Past the bound it goes on probing for as long again, so that the
/// failure says how long recovery really took (or that it did not happen).
pub async fn recovery(dialer: &Dialer, healed: Instant) -> Result<Duration, String> {
    let mut late = Vec::new();
    for member in 0..MEMBERS {
        let mut last = String::new();
        loop {
            if healed.elapsed() > 2 * RECOVERY_BOUND {
                late.push(format!("member {} took no write in {} s: {last}", member + 1, 2 * RECOVERY_BOUND.as_secs()));
                break;
            }
            let key = 1000 + member as i32;
            if let Some(client) = dialer.connect(member).await {
                let sql = "INSERT INTO reg (k, v) VALUES ($1, 'probe') ON CONFLICT (k) DO UPDATE SET v = excluded.v";
                match tokio::time::timeout(Duration::from_secs(5), client.execute(sql, &[&key])).await {
                    Ok(Ok(_)) => {
                        if healed.elapsed() > RECOVERY_BOUND {
                            let took = healed.elapsed().as_secs_f64();
                            late.push(format!(
                                "member {} took its first write {took:.1} s after the fault ended",
                                member + 1
                            ));
                        }
                        break;
                    }
                    Ok(Err(e)) => last = e.to_string(),
                    Err(_) => last = "timed out".into(),
                }
            } else {
                last = "cannot connect".into();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if late.is_empty() {
        Ok(healed.elapsed())
    } else {
        Err(format!("not available again within {} s: {}", RECOVERY_BOUND.as_secs(), late.join("; ")))
    }
}

type State = (Vec<(i32, String)>, Vec<(i32, i32)>);

async fn local_state(dialer: &Dialer, member: usize) -> Result<State, String> {
    let client = dialer.connect(member).await.ok_or("cannot connect")?;
    let read = async {
        client.batch_execute("SET chronos.follower_reads = on").await?;
        let reg = client.query("SELECT k, v FROM reg ORDER BY k", &[]).await?;
        let events = client.query("SELECT client, n FROM events ORDER BY client, n", &[]).await?;
        Ok::<_, tokio_postgres::Error>((
            reg.iter().map(|r| (r.get(0), r.get(1))).collect(),
            events.iter().map(|r| (r.get(0), r.get(1))).collect(),
        ))
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// Waits until every member's own state is the same; the log table's rows then.
pub async fn converged(dialer: &Dialer) -> Result<Vec<(i32, i32)>, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut states = Vec::new();
        let mut last = String::new();
        for member in 0..MEMBERS {
            match local_state(dialer, member).await {
                Ok(s) => states.push(s),
                Err(e) => last = format!("member {}: {e}", member + 1),
            }
        }
        if states.len() == MEMBERS && states.iter().all(|s| *s == states[0]) {
            return Ok(states.swap_remove(0).1);
        }
        if Instant::now() > deadline {
            if states.len() == MEMBERS {
                let sizes: Vec<String> = states.iter().map(|s| format!("{}/{}", s.0.len(), s.1.len())).collect();
                return Err(format!("members did not converge in 60 s (registers/log rows: {})", sizes.join(", ")));
            }
            return Err(format!("members did not converge in 60 s: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
