//! The edge's side of `edge-uplink`: a writer on the edge, and the check that the cloud ended
//! with exactly the edge's rows.

use crate::workload::Dialer;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the edge acknowledged: each row id and its last acknowledged value (None: deleted).
pub type Written = BTreeMap<i32, Option<i32>>;

/// Inserts rows, updates and deletes some of them on the edge until `stop`. Every statement
/// runs on the edge alone (a single node), so each must succeed.
pub async fn writer(dialer: Dialer, edge: usize, seed: u64, stop: Arc<AtomicBool>) -> Result<Written, String> {
    let client = dialer.connect(edge).await.ok_or("cannot connect to the edge")?;
    let fail = |what: &str, e: tokio_postgres::Error| format!("the edge refused {what}: {e}");
    client.batch_execute("CREATE TABLE readings (id INT PRIMARY KEY, v INT)").await.map_err(|e| fail("CREATE", e))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut written = Written::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let live: Vec<i32> = written.iter().filter(|(_, v)| v.is_some()).map(|(id, _)| *id).collect();
        if n % 10 == 0 && !live.is_empty() {
            let id = live[rng.gen_range(0..live.len())];
            client.execute("DELETE FROM readings WHERE id = $1", &[&id]).await.map_err(|e| fail("DELETE", e))?;
            written.insert(id, None);
        } else if n % 5 == 0 && !live.is_empty() {
            let id = live[rng.gen_range(0..live.len())];
            let row = client
                .query_one("UPDATE readings SET v = v + 1 WHERE id = $1 RETURNING v", &[&id])
                .await
                .map_err(|e| fail("UPDATE", e))?;
            written.insert(id, Some(row.get(0)));
        } else {
            client.execute("INSERT INTO readings VALUES ($1, 0)", &[&n]).await.map_err(|e| fail("INSERT", e))?;
            written.insert(n, Some(0));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(written)
}

async fn rows(dialer: &Dialer, member: usize) -> Result<Written, String> {
    let client = dialer.connect(member).await.ok_or("cannot connect")?;
    let rows = client.query("SELECT id, v FROM readings", &[]).await.map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| (r.get(0), Some(r.get(1)))).collect())
}

/// The changes the edge holds that the cloud has not acknowledged.
pub async fn backlog(dialer: &Dialer, edge: usize) -> Result<i64, String> {
    let client = dialer.connect(edge).await.ok_or("cannot connect to the edge")?;
    let row =
        client.query_one("SELECT backlog_changes FROM chronos_sync_status", &[]).await.map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

/// Waits (up to 90 s) for the edge's backlog to drain, then checks that the edge holds what
/// it acknowledged and that the cloud (a linearizable read through a member) holds the same.
/// Says how many rows that was.
pub async fn synced(dialer: &Dialer, edge: usize, written: &Written) -> Result<String, String> {
    let client = dialer.connect(edge).await.ok_or("cannot connect to the edge")?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let row = client
            .query_one("SELECT backlog_changes, last_error FROM chronos_sync_status", &[])
            .await
            .map_err(|e| e.to_string())?;
        if row.get::<_, i64>(0) == 0 {
            break;
        }
        if Instant::now() > deadline {
            let error: Option<String> = row.get(1);
            return Err(format!(
                "the edge's backlog did not drain in 90 s: {} changes left, {error:?}",
                row.get::<_, i64>(0)
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let expected: Written = written.iter().filter(|(_, v)| v.is_some()).map(|(k, v)| (*k, *v)).collect();
    if expected.is_empty() {
        return Err("the edge wrote nothing".into());
    }
    let on_edge = rows(dialer, edge).await?;
    if on_edge != expected {
        return Err(format!("the edge lost acknowledged changes: {} rows, {} expected", on_edge.len(), expected.len()));
    }
    let mut last = String::new();
    for member in 0..edge {
        match rows(dialer, member).await {
            Ok(on_cloud) if on_cloud == expected => {
                let deleted = written.len() - expected.len();
                return Ok(format!("{} rows on the edge and the cloud alike ({deleted} more deleted)", expected.len()));
            }
            Ok(on_cloud) => {
                let missing = expected.keys().filter(|k| !on_cloud.contains_key(k)).count();
                let extra = on_cloud.keys().filter(|k| !expected.contains_key(k)).count();
                let stale = expected.iter().filter(|(k, v)| on_cloud.get(k).is_some_and(|c| c != *v)).count();
                return Err(format!(
                    "the cloud differs from the edge: {missing} rows missing, {extra} rows that should not be there, \
                     {stale} at an older value (of {} rows)",
                    expected.len()
                ));
            }
            Err(e) => last = e,
        }
    }
    Err(format!("no cloud member answered: {last}"))
}
