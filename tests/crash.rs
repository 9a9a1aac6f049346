//! Durability: kill -9 during a write load, restart, and find exactly the acknowledged rows.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_writes_keeps_every_acknowledged_row() {
    let mut server = Server::start();
    let setup = server.connect("admin").await;
    setup
        .batch_execute("CREATE TABLE acked (writer INT, seq INT, payload TEXT, PRIMARY KEY (writer, seq))")
        .await
        .unwrap();
    setup.batch_execute("CREATE TABLE counters (id INT PRIMARY KEY, n INT)").await.unwrap();
    setup.batch_execute("INSERT INTO counters VALUES (1, 0)").await.unwrap();

    // Four writers insert rows and bump a counter; each records what was acknowledged.
    let acknowledged: Arc<Mutex<BTreeSet<(i32, i32)>>> = Arc::default();
    let bumps: Arc<Mutex<i32>> = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..4 {
        let client = server.connect("admin").await;
        let acknowledged = acknowledged.clone();
        let bumps = bumps.clone();
        writers.push(tokio::spawn(async move {
            for seq in 0.. {
                let insert = client
                    .execute("INSERT INTO acked VALUES ($1, $2, $3)", &[&writer, &seq, &format!("row {writer}/{seq}")])
                    .await;
                if insert.is_err() {
                    return;
                }
                acknowledged.lock().unwrap().insert((writer, seq));
                if client.execute("UPDATE counters SET n = n + 1 WHERE id = 1", &[]).await.is_err() {
                    return;
                }
                *bumps.lock().unwrap() += 1;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    server.kill();
    for w in writers {
        let _ = w.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let bumps = *bumps.lock().unwrap();
    assert!(acknowledged.len() > 50, "the load should have committed rows before the kill");

    server.restart();
    let client = server.connect("admin").await;
    let rows = client.query("SELECT writer, seq, payload FROM acked", &[]).await.unwrap();
    let stored: BTreeSet<(i32, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for row in &rows {
        let (w, s, p): (i32, i32, String) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(p, format!("row {w}/{s}"), "payload intact");
    }
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged rows lost: {missing:?}");
    // At most the one in-flight insert per writer may have landed without an acknowledgement.
    let extra = stored.difference(&acknowledged).count();
    assert!(extra <= 4, "{extra} unacknowledged rows");
    let n: i32 = client.query_one("SELECT n FROM counters WHERE id = 1", &[]).await.unwrap().get(0);
    assert!(n >= bumps && n <= bumps + 4, "counter {n} vs {bumps} acknowledged bumps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_exits_zero_and_keeps_data() {
    let mut server = Server::start();
    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE g (id INT PRIMARY KEY); INSERT INTO g VALUES (1), (2), (3)").await.unwrap();
    // An idle connection stays open: shutdown must close it rather than wait for it.
    let status = server.terminate().expect("process status");
    assert!(status.success(), "exit status {status:?}");
    server.restart();
    let client = server.connect("admin").await;
    let n: i64 = client.query_one("SELECT count(*) FROM g", &[]).await.unwrap().get(0);
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_log_restarts_with_all_data() {
    // A group of one compacts its log without copying the state; a restart (clean or
    // killed) must resume from the data itself.
    let mut server = Server::start_in(tempfile::tempdir().unwrap(), &[("CHRONOS_SNAPSHOT_THRESHOLD", "20")]);
    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE c (id INT PRIMARY KEY)").await.unwrap();
    for i in 0..150 {
        client.execute("INSERT INTO c VALUES ($1)", &[&i]).await.unwrap();
    }
    drop(client);
    server.kill();
    server.restart_with(&[("CHRONOS_SNAPSHOT_THRESHOLD", "20")]);
    let client = server.connect("admin").await;
    let n: i64 = client.query_one("SELECT count(*) FROM c", &[]).await.unwrap().get(0);
    assert_eq!(n, 150);
    client.execute("INSERT INTO c VALUES (1000)", &[]).await.unwrap();
    let status = server.terminate().expect("process status");
    assert!(status.success());
    server.restart_with(&[("CHRONOS_SNAPSHOT_THRESHOLD", "20")]);
    let n: i64 = server.connect("admin").await.query_one("SELECT count(*) FROM c", &[]).await.unwrap().get(0);
    assert_eq!(n, 151);
}

/// Kill -9 while a time-series table takes batches of rows, is sealed into column segments
/// over and over (VACUUM), and has old rows deleted and expired by TTL: after a restart every
/// acknowledged batch is there whole, every acknowledged delete stays deleted, and nothing
/// half-sealed shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_sealing_keeps_exactly_the_acknowledged_rows() {
    const ROWS: i64 = 200;
    let env = [("CHRONOS_TTL_INTERVAL_SECS", "1")];
    let mut server = Server::start_in(tempfile::tempdir().unwrap(), &env);
    let setup = server.connect("admin").await;
    // Batch b holds times b * ROWS .. (b + 1) * ROWS seconds after the base; a batch far in
    // the past (b < 0) is past the TTL and expires.
    setup
        .batch_execute(
            "CREATE TABLE m (device TEXT, ts TIMESTAMPTZ, v FLOAT8, batch INT, PRIMARY KEY (device, ts)) \
             WITH (ttl = '30 days')",
        )
        .await
        .unwrap();
    let insert = |b: i64| {
        format!(
            "INSERT INTO m SELECT 'dev' || (g % 4), now() - interval '1 day' + ({b} * {ROWS} + g) * interval '1 second', \
             round((g * 0.37)::numeric, 2)::float8, {b} FROM generate_series(0, {ROWS} - 1) AS g"
        )
    };
    // Batches past the TTL, sealed, then expired before the load starts (the TTL counts from
    // the newest row: batch -1, one row of now).
    for b in 1..=3 {
        setup.batch_execute(&insert(-20_000 * b)).await.unwrap();
    }
    setup.batch_execute("INSERT INTO m VALUES ('anchor', now(), 0, -1); VACUUM m").await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left: i64 = setup.query_one("SELECT count(*) FROM m WHERE batch < -1", &[]).await.unwrap().get(0);
        if left == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{left} rows past the ttl did not expire");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    #[derive(Default)]
    struct Log {
        inserted: BTreeSet<i64>,
        deleted: BTreeSet<i64>,
        /// Statements in flight at the kill.
        in_flight: BTreeSet<i64>,
    }
    let log: Arc<Mutex<Log>> = Arc::default();
    let writer = {
        let client = server.connect("admin").await;
        let log = log.clone();
        tokio::spawn(async move {
            for b in 0.. {
                log.lock().unwrap().in_flight.insert(b);
                if client.batch_execute(&insert(b)).await.is_err() {
                    return;
                }
                {
                    let mut entry = log.lock().unwrap();
                    entry.in_flight.remove(&b);
                    entry.inserted.insert(b);
                }
                // Every third batch is deleted again, a few batches later.
                let doomed = b - 3;
                if doomed >= 0 && doomed % 3 == 0 {
                    log.lock().unwrap().in_flight.insert(doomed);
                    if client.execute("DELETE FROM m WHERE batch = $1", &[&(doomed as i32)]).await.is_err() {
                        return;
                    }
                    let mut entry = log.lock().unwrap();
                    entry.in_flight.remove(&doomed);
                    entry.deleted.insert(doomed);
                }
            }
        })
    };
    let sealer = {
        let client = server.connect("admin").await;
        tokio::spawn(async move {
            let mut sealed = 0;
            while client.batch_execute("VACUUM m").await.is_ok() {
                sealed += 1;
            }
            sealed
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    server.kill();
    let _ = writer.await;
    let vacuums = sealer.await.unwrap();
    assert!(vacuums > 2, "VACUUM ran {vacuums} times before the kill");
    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(log.inserted.len() > 5, "the load should have committed batches before the kill");

    server.restart_with(&env);
    let client = server.connect("admin").await;
    let rows = client.query("SELECT batch, count(*) FROM m GROUP BY batch", &[]).await.unwrap();
    let stored: std::collections::BTreeMap<i64, i64> =
        rows.iter().map(|r| (r.get::<_, i32>(0) as i64, r.get::<_, i64>(1))).collect();
    assert_eq!(stored.get(&-1), Some(&1), "the newest row before the load");
    for (b, n) in stored.iter().filter(|(b, _)| **b != -1) {
        assert!(*b >= 0, "batch {b} expired before the kill and came back");
        assert_eq!(*n, ROWS, "batch {b} is not whole");
        assert!(!log.deleted.contains(b), "batch {b} was deleted and came back");
        assert!(log.inserted.contains(b) || log.in_flight.contains(b), "batch {b} was never written");
    }
    for b in &log.inserted {
        if !log.deleted.contains(b) && !log.in_flight.contains(b) {
            assert!(stored.contains_key(b), "acknowledged batch {b} lost");
        }
    }
    // The sealed rows and the row layout together hold each row once.
    let total: i64 = client.query_one("SELECT count(*) FROM m", &[]).await.unwrap().get(0);
    assert_eq!(total, stored.values().sum::<i64>());
    assert!(total > 5 * ROWS);
    let sealed: i64 = client.query_one("SELECT sealed_rows FROM chronos_segments", &[]).await.unwrap().get(0);
    assert!(sealed > 0, "nothing was sealed");
    client.batch_execute("VACUUM m").await.unwrap();
    let after: i64 = client.query_one("SELECT count(*) FROM m", &[]).await.unwrap().get(0);
    assert_eq!(after, total);
}
