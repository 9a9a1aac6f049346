//! Online backup and restore of real `chronos` processes: a backup taken while a client writes
//! holds exactly the rows of one commit version (a prefix of the client's acknowledged
//! transactions, never half of one), a node started on the restored directory answers as of
//! it, a damaged or cut-short file is refused, and a restored member seeds a new cluster.

mod support;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{json_u64, Cluster, Server};

fn chronos(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chronos"));
    command.args(args).env_remove("CHRONOS_HTTP_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run chronos")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// count(*), min(id), max(id) of `w` and the counter's value.
async fn state(client: &tokio_postgres::Client) -> (i64, i32, i32, i32) {
    let row = client.query_one("SELECT count(*), min(id), max(id), (SELECT n FROM counter) FROM w", &[]).await.unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_writes_restores_one_commit_version() {
    let server = Server::start();
    let client = server.connect("admin").await;
    client
        .batch_execute(
            "CREATE TABLE w (id INT PRIMARY KEY, payload TEXT); CREATE INDEX w_payload ON w (payload);
             CREATE TABLE counter (k INT PRIMARY KEY, n INT); INSERT INTO counter VALUES (1, 0);
             INSERT INTO w SELECT g, repeat('x', 200) FROM generate_series(-20000, -1) g",
        )
        .await
        .unwrap();
    client.batch_execute("DELETE FROM w WHERE id < 0").await.unwrap();

    // One writer: transaction i inserts row i and sets the counter to i, so every commit
    // version holds rows 1..=n with counter n.
    let acked = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let writer = server.connect("admin").await;
        tokio::spawn(async move {
            let mut i = 1;
            while !stop.load(Ordering::SeqCst) {
                let sql = format!("BEGIN; INSERT INTO w VALUES ({i}, 'row {i}'); UPDATE counter SET n = {i}; COMMIT");
                writer.batch_execute(&sql).await.unwrap();
                acked.store(i as i64, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db.backup");
    let url = format!("http://{}", server.http_addr);
    let acked_before = acked.load(Ordering::SeqCst);
    let out = chronos(&["snapshot", "create", "--output", file.to_str().unwrap(), "--url", &url], &[]);
    let invoked_after = acked.load(Ordering::SeqCst) + 1;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("as of version"), "{}", text(&out));
    assert!(!dir.path().join("db.backup.partial").exists());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let (live, ..) = state(&client).await;
    assert!(live > invoked_after, "the writer went on during and after the backup");

    // Restored: exactly one commit version, at or after the backup began.
    let restored = tempfile::tempdir().unwrap();
    let out = chronos(
        &["snapshot", "restore", "--data-dir", restored.path().to_str().unwrap(), "--input", file.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let copy = Server::start_in(restored, &[]);
    let reader = copy.connect("admin").await;
    let (count, min, max, n) = state(&reader).await;
    assert_eq!((count, min, max), (n as i64, 1, n), "rows 1..=n and counter n: one commit version");
    assert!(i64::from(n) >= acked_before && i64::from(n) <= invoked_after, "{acked_before} <= {n} <= {invoked_after}");
    // Indexes, catalog and data came along; the copy takes writes and keeps them.
    let by_index: i64 = reader.query_one("SELECT count(*) FROM w WHERE payload = 'row 7'", &[]).await.unwrap().get(0);
    assert_eq!(by_index, 1);
    reader.batch_execute("INSERT INTO w VALUES (-1, 'after restore')").await.unwrap();
    let mut copy = copy;
    copy.restart();
    let reader = copy.connect("admin").await;
    assert_eq!(state(&reader).await.0, count + 1);

    // A non-empty directory is refused without --force, replaced with it.
    let target = copy.data_dir.path().to_str().unwrap().to_string();
    copy.kill();
    let args = ["snapshot", "restore", "--data-dir", &target, "--input", file.to_str().unwrap()];
    let out = chronos(&args, &[]);
    assert!(!out.status.success() && text(&out).contains("not empty"), "{}", text(&out));
    let mut forced = args.to_vec();
    forced.push("--force");
    let out = chronos(&forced, &[]);
    assert!(out.status.success(), "{}", text(&out));
    copy.restart();
    let reader = copy.connect("admin").await;
    assert_eq!(state(&reader).await.0, count, "--force replaced the directory");

    // A damaged or cut-short backup is refused before anything is written.
    let bytes = std::fs::read(&file).unwrap();
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    let bad = dir.path().join("damaged.backup");
    std::fs::write(&bad, &damaged).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let into = empty.path().join("db");
    let out =
        chronos(&["snapshot", "restore", "--data-dir", into.to_str().unwrap(), "--input", bad.to_str().unwrap()], &[]);
    assert!(!out.status.success() && text(&out).contains("checksum mismatch"), "{}", text(&out));
    std::fs::write(&bad, &bytes[..bytes.len() - 1000]).unwrap();
    let out =
        chronos(&["snapshot", "restore", "--data-dir", into.to_str().unwrap(), "--input", bad.to_str().unwrap()], &[]);
    assert!(!out.status.success() && text(&out).contains("cut short"), "{}", text(&out));
    assert!(!into.exists(), "nothing written for a refused backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_need_the_operations_token() {
    let server = Server::start_in(tempfile::tempdir().unwrap(), &[("CHRONOS_HTTP_TOKEN", "s3cret")]);
    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b");
    let url = format!("http://{}", server.http_addr);
    let args = ["snapshot", "create", "--output", file.to_str().unwrap(), "--url", &url];
    let out = chronos(&args, &[]);
    assert!(!out.status.success() && text(&out).contains("401"), "{}", text(&out));
    assert!(!file.exists() && !dir.path().join("b.partial").exists(), "nothing is left of a refused backup");
    let out = chronos(&args, &[("CHRONOS_HTTP_TOKEN", "wrong")]);
    assert!(!out.status.success(), "{}", text(&out));
    let out = chronos(&args, &[("CHRONOS_HTTP_TOKEN", "s3cret")]);
    assert!(out.status.success(), "{}", text(&out));
    let unreachable = chronos(
        &["snapshot", "create", "--output", file.to_str().unwrap(), "--url", "http://127.0.0.1:1"],
        &[("CHRONOS_HTTP_TOKEN", "s3cret")],
    );
    assert!(!unreachable.status.success() && text(&unreachable).contains("cannot reach"), "{}", text(&unreachable));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_member_seeds_a_new_cluster() {
    let server = Server::start();
    let client = server.connect("admin").await;
    client
        .batch_execute("CREATE TABLE s (id INT PRIMARY KEY, v TEXT); INSERT INTO s SELECT g, 'v' || g FROM generate_series(1, 5000) g")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b");
    let url = format!("http://{}", server.http_addr);
    let out = chronos(&["snapshot", "create", "--output", file.to_str().unwrap(), "--url", &url], &[]);
    assert!(out.status.success(), "{}", text(&out));

    // Founding a cluster of several on a restored directory is refused: the others' empty
    // logs would outvote the restored state.
    let restored = tempfile::tempdir().unwrap();
    let out = chronos(
        &["snapshot", "restore", "--data-dir", restored.path().to_str().unwrap(), "--input", file.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (a, b, c) = (port(), port(), port());
    let refused = chronos(
        &[
            "node",
            "--id",
            "1",
            "--address",
            &format!("127.0.0.1:{a}"),
            "--peers",
            &format!("1=127.0.0.1:{a},2=127.0.0.1:{b},3=127.0.0.1:{c}"),
            "--data-dir",
            restored.path().to_str().unwrap(),
            "--pg-addr",
            &format!("127.0.0.1:{}", port()),
            "--http-addr",
            &format!("127.0.0.1:{}", port()),
        ],
        &[("CHRONOS_LOG", "error")],
    );
    assert!(!refused.status.success() && text(&refused).contains("founds a cluster of one"), "{}", text(&refused));

    // A cluster of one on it; a second member joins, receives the state, and is promoted.
    let mut cluster = Cluster::found_on(restored);
    assert_eq!(cluster.leader(Duration::from_secs(10)), Some(0));
    let leader = cluster.nodes[0].connect("admin").await;
    leader.batch_execute("INSERT INTO s VALUES (5001, 'after')").await.unwrap();
    let address = cluster.join();
    let post = |path: String| support::http_request(cluster.nodes[0].http_addr, "POST", &path, "").unwrap();
    let (code, body) = post(format!("/raft/members?add=2&address={address}"));
    assert_eq!(code, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let commit = json_u64(&cluster.health(0).unwrap(), "commit_index");
        if cluster.health(1).is_some_and(|h| json_u64(&h, "applied_index") >= commit) {
            break;
        }
        assert!(Instant::now() < deadline, "node 2 did not catch up: {:?}", cluster.health(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, body) = post("/raft/members?promote=2".into());
    assert_eq!(code, 202, "{body}");
    let reader = cluster.nodes[1].connect("admin").await;
    let row = reader.query_one("SELECT count(*), max(v) FROM s WHERE id > 4990", &[]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, String>(1)), (11, "v5000".to_string()));
    let after: i64 = reader.query_one("SELECT count(*) FROM s", &[]).await.unwrap().get(0);
    assert_eq!(after, 5001);
}
