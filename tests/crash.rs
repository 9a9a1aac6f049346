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
