//! Edge-to-cloud sync between real processes: edges (`chronos single-node --edge-id …`) push
//! over gRPC to a cloud (`chronos node`), which is down, restarted and refuses pushes along
//! the way.

mod support;

use std::time::{Duration, Instant};
use support::{http_get, json_u64, metric, Cluster, Server};

/// An edge pushing to the cloud's member `i` every second.
fn start_edge(id: &str, cloud: &Cluster, i: usize) -> Server {
    start_edge_with(id, cloud, i, &[])
}

fn start_edge_with(id: &str, cloud: &Cluster, i: usize, extra: &[&str]) -> Server {
    start_edge_env(id, cloud, i, extra, &[])
}

fn start_edge_env(id: &str, cloud: &Cluster, i: usize, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let target = format!("http://{}", cloud.internode_address(i));
    let mut args = vec!["--edge-id", id, "--sync-target", &target, "--sync-interval-secs", "1"];
    args.extend_from_slice(extra);
    Server::start_with_args(tempfile::tempdir().unwrap(), &args, env)
}

/// Waits until a push that started after the call has left the edge with nothing to push.
async fn drained(edge: &Server) {
    let before = json_u64(&health(edge), "pushes");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = health(edge);
        if json_u64(&h, "pushes") > before + 1 && h.contains(r#""oldest_pending_secs":null"#) {
            return;
        }
        assert!(Instant::now() < deadline, "the edge did not drain: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every row of `query` as text, in order.
async fn rows(client: &tokio_postgres::Client, query: &str) -> Vec<Vec<Option<String>>> {
    let text = format!("SELECT * FROM ({query}) q");
    let mut out = Vec::new();
    for message in client.simple_query(&text).await.unwrap() {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            out.push((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect());
        }
    }
    out
}

/// Waits until `query` answers the same on the edge and the cloud (and the cloud has the
/// table); the rows.
async fn converged(
    edge: &tokio_postgres::Client,
    cloud: &tokio_postgres::Client,
    query: &str,
    timeout: Duration,
) -> Vec<Vec<Option<String>>> {
    let deadline = Instant::now() + timeout;
    loop {
        let want = rows(edge, query).await;
        let text = format!("SELECT * FROM ({query}) q");
        let got = match cloud.simple_query(&text).await {
            Ok(_) => rows(cloud, query).await,
            Err(_) => Vec::new(),
        };
        if got == want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "the cloud did not converge on {query}: {} rows, edge {}",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn health(server: &Server) -> String {
    http_get(server.http_addr, "/health").unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_edge_catches_up_and_nothing_is_lost_or_applied_twice() {
    let mut cloud = Cluster::start(1, &[]);
    cloud.leader(Duration::from_secs(10)).expect("the cloud elects itself");
    cloud.nodes[0].terminate();
    let mut edge = start_edge("farm-a", &cloud, 0);
    let mut local = edge.connect("admin").await;
    local
        .batch_execute(
            "CREATE TABLE readings (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, PRIMARY KEY (device, ts));
             CREATE INDEX readings_temp ON readings (temp);
             CREATE TABLE plain (n INT)",
        )
        .await
        .unwrap();
    // 10,000 rows while the cloud is down, in transactions of 1,000.
    for batch in 0..10 {
        local
            .execute(
                "INSERT INTO readings SELECT 'd' || (g % 10), timestamptz '2026-01-01 00:00:00+00' + g * interval '10 seconds', g / 10.0
                 FROM generate_series($1::int, $1::int + 999) g",
                &[&(batch * 1000)],
            )
            .await
            .unwrap();
    }
    // A table without a primary key is not synced (its row ids mean nothing elsewhere).
    local.execute("INSERT INTO plain VALUES (1)", &[]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let h = health(&edge);
    assert!(h.contains(r#""edge_id":"farm-a""#) && !h.contains(r#""state":"connected""#), "{h}");
    assert!(!h.contains(r#""oldest_pending_secs":null"#), "the backlog is not reported: {h}");
    let status = "SELECT edge_id, state, backlog_changes, oldest_pending IS NOT NULL AS pending, errors > 0 AS failed FROM chronos_sync_status";
    let s = |v: &str| Some(v.to_string());
    assert_eq!(rows(&local, status).await, vec![vec![s("farm-a"), s("disconnected"), s("10000"), s("t"), s("t")]]);

    cloud.nodes[0].restart();
    let remote = cloud.nodes[0].connect("admin").await;
    let all = "SELECT device, ts, temp FROM readings ORDER BY device, ts";
    let synced = converged(&local, &remote, all, Duration::from_secs(60)).await;
    assert_eq!(synced.len(), 10_000);
    drained(&edge).await;
    let h = health(&edge);
    assert!(h.contains(r#""state":"connected""#), "{h}");
    assert_eq!(rows(&local, status).await, vec![vec![s("farm-a"), s("connected"), s("0"), s("f"), s("t")]]);
    let edges = "SELECT edge_id, now() - last_change < interval '1 minute' AS recent, cursor_index >= 0 AS i FROM chronos_sync_edges";
    assert_eq!(rows(&remote, edges).await, vec![vec![s("farm-a"), s("t"), s("t")]]);
    assert_eq!(rows(&remote, "SELECT count(*) FROM chronos_sync_status").await, vec![vec![s("0")]]);
    // The cloud created the table from the edge's definition, index included.
    let index = rows(&remote, "SELECT relname FROM pg_class WHERE relkind = 'i' ORDER BY 1").await;
    assert!(index.iter().any(|r| r[0].as_deref() == Some("readings_temp")), "{index:?}");
    let hot = "SELECT count(*) FROM readings WHERE temp > 990";
    assert_eq!(rows(&remote, hot).await, rows(&local, hot).await);
    let plain = remote.simple_query("SELECT * FROM plain").await;
    assert!(plain.is_err(), "a table without a primary key was synced");

    // Updates and deletes follow.
    local.execute("UPDATE readings SET temp = temp + 1000 WHERE device = 'd1'", &[]).await.unwrap();
    local.execute("DELETE FROM readings WHERE device = 'd2'", &[]).await.unwrap();
    local
        .execute("INSERT INTO readings VALUES ('d1', '2026-01-01 00:00:10+00', 1) ON CONFLICT (device, ts) DO UPDATE SET temp = -1", &[])
        .await
        .unwrap();
    let synced = converged(&local, &remote, all, Duration::from_secs(60)).await;
    assert_eq!(synced.len(), 9_000);
    assert_eq!(rows(&remote, hot).await, rows(&local, hot).await, "the cloud's index is stale");

    // kill -9 of the edge while it writes and pushes: after a restart the cloud holds exactly
    // the edge's rows.
    for round in 0..3 {
        for i in 0..5 {
            let n = 100_000 + round * 1_000 + i * 100;
            local
                .execute(
                    "INSERT INTO readings SELECT 'k' || (g % 7), timestamptz '2026-02-01 00:00:00+00' + g * interval '1 second', g
                     FROM generate_series($1::int, $1::int + 99) g",
                    &[&n],
                )
                .await
                .unwrap();
        }
        edge.kill();
        edge.restart();
        local = edge.connect("admin").await;
        converged(&local, &remote, all, Duration::from_secs(60)).await;
    }
    let synced = converged(&local, &remote, all, Duration::from_secs(60)).await;
    assert_eq!(synced.len(), 10_500);
    // Nothing was applied twice: a second copy of a change could only show as a row
    // the edge does not have, which the comparison rules out; the cloud's cursor of the edge
    // is at the edge's last change.
    let m = http_get(edge.http_addr, "/metrics").unwrap();
    assert!(m.contains("chronos_sync_connected 1"), "{m}");
    let m = http_get(cloud.nodes[0].http_addr, "/metrics").unwrap();
    assert!(metric(&m, "chronos_sync_changes_received_total") >= 10_500, "{m}");
    assert_eq!(metric(&m, "chronos_sync_pushes_refused_total"), 0, "{m}");

    // The database belongs to its edge id: another one is refused at start-up.
    edge.terminate();
    let dir = std::mem::replace(&mut edge.data_dir, tempfile::tempdir().unwrap());
    let target = format!("http://{}", cloud.internode_address(0));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["single-node", "--data-dir"])
        .arg(dir.path())
        .args([
            "--pg-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--edge-id",
            "farm-b",
            "--sync-target",
            &target,
        ])
        .env("CHRONOS_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("this database is edge \"farm-a\""), "{stderr}");

    // A gateway re-created with a fresh data directory under the same edge id is another
    // database: the cloud refuses its pushes rather than mistake its changes for synced ones.
    let again = start_edge("farm-a", &cloud, 0);
    again.connect("admin").await.batch_execute("CREATE TABLE readings (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, PRIMARY KEY (device, ts)); INSERT INTO readings VALUES ('new', now(), 1)").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !health(&again).contains("55000") {
        assert!(Instant::now() < deadline, "the re-created edge was not refused: {}", health(&again));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        rows(&remote, "SELECT count(*) FROM readings WHERE device = 'new'").await,
        vec![vec![Some("0".to_string())]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_writing_the_same_keys_converge_to_the_later_write() {
    let mut cloud = Cluster::start(1, &[]);
    cloud.leader(Duration::from_secs(10)).expect("the cloud elects itself");
    let remote = cloud.nodes[0].connect("admin").await;
    // A table the cloud has with other columns: pushes of it are refused, and the edge keeps
    // its backlog until the cloud's table matches.
    remote.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT, extra INT)").await.unwrap();
    cloud.nodes[0].terminate();

    let a = start_edge("edge-a", &cloud, 0);
    let b = start_edge("edge-b", &cloud, 0);
    let (ca, cb) = (a.connect("admin").await, b.connect("admin").await);
    for client in [&ca, &cb] {
        client.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    }
    // In real time: a's writes, then b's, then a late write of a on key 3.
    ca.batch_execute("INSERT INTO t VALUES (1, 'a'), (2, 'a'), (4, 'a')").await.unwrap();
    cb.batch_execute("INSERT INTO t VALUES (1, 'b'), (4, 'b'); DELETE FROM t WHERE id = 4").await.unwrap();
    ca.batch_execute("INSERT INTO t VALUES (3, 'a')").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // b deleted key 4 after a wrote it: a's older write must not bring it back.

    cloud.nodes[0].restart();
    let remote = cloud.nodes[0].connect("admin").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = health(&a);
        if h.contains("does not match") {
            break;
        }
        assert!(Instant::now() < deadline, "the schema mismatch is not reported: {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!health(&a).contains(r#""oldest_pending_secs":null"#), "the refused backlog was dropped");
    remote.batch_execute("DROP TABLE t").await.unwrap();

    let want = vec![
        vec![Some("1".to_string()), Some("b".to_string())],
        vec![Some("2".to_string()), Some("a".to_string())],
        vec![Some("3".to_string()), Some("a".to_string())],
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = match remote.simple_query("SELECT 1 FROM t").await {
            Ok(_) => rows(&remote, "SELECT id, v FROM t ORDER BY id").await,
            Err(_) => Vec::new(),
        };
        let idle = [&a, &b].iter().all(|e| health(e).contains(r#""oldest_pending_secs":null"#));
        if got == want && idle {
            break;
        }
        assert!(Instant::now() < deadline, "the cloud did not converge: {got:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A later write on the cloud itself wins over the edges' older ones.
    remote.execute("UPDATE t SET v = 'cloud' WHERE id = 2", &[]).await.unwrap();
    ca.execute("UPDATE t SET v = 'a2' WHERE id = 1", &[]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = rows(&remote, "SELECT id, v FROM t ORDER BY id").await;
        if got[0][1].as_deref() == Some("a2") {
            assert_eq!(got[1][1].as_deref(), Some("cloud"));
            break;
        }
        assert!(Instant::now() < deadline, "a's newer write did not arrive: {got:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_deletes_the_edges_own_rows_and_ttl_expiry_stays_on_the_edge() {
    let cloud = Cluster::start(1, &[]);
    cloud.leader(Duration::from_secs(10)).expect("the cloud elects itself");
    let remote = cloud.nodes[0].connect("admin").await;
    let a = start_edge_with("edge-a", &cloud, 0, &["--ttl-interval-secs", "1"]);
    let b = start_edge("edge-b", &cloud, 0);
    let (ca, cb) = (a.connect("admin").await, b.connect("admin").await);
    for client in [&ca, &cb] {
        client.batch_execute("CREATE TABLE r (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    }
    ca.batch_execute("INSERT INTO r VALUES (1, 'a'), (2, 'a')").await.unwrap();
    cb.batch_execute("INSERT INTO r VALUES (3, 'b')").await.unwrap();
    drained(&a).await;
    drained(&b).await;
    assert_eq!(rows(&remote, "SELECT count(*) FROM r").await, vec![vec![Some("3".to_string())]]);
    // a's TRUNCATE removes a's rows on the cloud, not b's; a row written again in the same
    // transaction stays.
    ca.batch_execute("BEGIN; TRUNCATE r; INSERT INTO r VALUES (2, 'again'); COMMIT").await.unwrap();
    drained(&a).await;
    let got = rows(&remote, "SELECT id, v FROM r ORDER BY id").await;
    let want = vec![
        vec![Some("2".to_string()), Some("again".to_string())],
        vec![Some("3".to_string()), Some("b".to_string())],
    ];
    assert_eq!(got, want);

    // Rows a expires by its TTL stay on the cloud, whose copy of the table has no TTL.
    ca.batch_execute(
        "CREATE TABLE m (id INT, ts TIMESTAMPTZ, PRIMARY KEY (id, ts)) WITH (ttl = '1h');
         INSERT INTO m VALUES (1, now() - interval '2 hours'), (2, now())",
    )
    .await
    .unwrap();
    drained(&a).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rows(&ca, "SELECT count(*) FROM m").await != vec![vec![Some("1".to_string())]] {
        assert!(Instant::now() < deadline, "the edge did not expire its old row");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ca.batch_execute("INSERT INTO r VALUES (9, 'marker')").await.unwrap();
    drained(&a).await;
    assert_eq!(rows(&remote, "SELECT count(*) FROM m").await, vec![vec![Some("2".to_string())]]);
    let ttl = rows(&remote, "SELECT count(*) FROM r WHERE id = 9").await;
    assert_eq!(ttl, vec![vec![Some("1".to_string())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_with_a_secret_takes_pushes_only_with_the_edges_own_token() {
    let secret = [("CHRONOS_SYNC_SECRET", "s3cret")];
    let cloud = Cluster::start_with_env(1, &[], &secret);
    cloud.leader(Duration::from_secs(10)).expect("the cloud elects itself");
    let token = |id: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronos"))
            .args(["sync-token", "--edge-id", id])
            .envs(secret)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let b_token = token("edge-b");
    assert_eq!(b_token.len(), 64);
    assert_ne!(token("edge-a"), b_token);
    // edge-a holds edge-b's token: it cannot push as itself, nor claim to be edge-b.
    let impostor = start_edge_env("edge-a", &cloud, 0, &[], &[("CHRONOS_SYNC_TOKEN", &b_token)]);
    let honest = start_edge_env("edge-b", &cloud, 0, &[], &[("CHRONOS_SYNC_TOKEN", &b_token)]);
    for (edge, id) in [(&impostor, 1), (&honest, 2)] {
        let client = edge.connect("admin").await;
        client.batch_execute("CREATE TABLE t (id INT PRIMARY KEY)").await.unwrap();
        client.execute("INSERT INTO t VALUES ($1)", &[&id]).await.unwrap();
    }
    drained(&honest).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !health(&impostor).contains("42501") {
        assert!(Instant::now() < deadline, "the impostor was not refused: {}", health(&impostor));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let remote = cloud.nodes[0].connect("admin").await;
    assert_eq!(rows(&remote, "SELECT id FROM t").await, vec![vec![Some("2".to_string())]]);
    let m = http_get(cloud.nodes[0].http_addr, "/metrics").unwrap();
    assert!(metric(&m, "chronos_sync_pushes_refused_total") > 0, "{m}");
    assert_eq!(rows(&remote, "SELECT edge_id FROM chronos_sync_edges").await, vec![vec![Some("edge-b".to_string())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_reach_only_the_sync_service_on_the_sync_address_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    support::ca_and_member(certs.path(), "ca", "cloud");
    let path = |f: &str| certs.path().join(f).to_string_lossy().to_string();
    let (cert, key, ca) = (path("cloud.pem"), path("cloud.key"), path("ca.pem"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    // A single node can be a cloud: its sync address takes pushes over TLS, with tokens.
    let secret = ("CHRONOS_SYNC_SECRET", "s3cret");
    let cloud_env = [("CHRONOS_TLS_CERT", cert.as_str()), ("CHRONOS_TLS_KEY", key.as_str()), secret];
    let cloud = Server::start_with_args(tempfile::tempdir().unwrap(), &["--sync-address", &address], &cloud_env);
    let token = String::from_utf8(
        std::process::Command::new(env!("CARGO_BIN_EXE_chronos"))
            .args(["sync-token", "--edge-id", "gw"])
            .envs([secret])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let target = format!("https://{address}");
    let edge_env = [("CHRONOS_SYNC_CA_CERT", ca.as_str()), ("CHRONOS_SYNC_TOKEN", token.trim())];
    let edge = Server::start_with_args(
        tempfile::tempdir().unwrap(),
        &["--edge-id", "gw", "--sync-target", &target, "--sync-interval-secs", "1"],
        &edge_env,
    );
    let local = edge.connect("admin").await;
    local
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        .await
        .unwrap();
    drained(&edge).await;
    let remote =
        tokio_postgres::connect(&format!("{} sslmode=disable", cloud.url("admin")), tokio_postgres::NoTls).await;
    let (remote, connection) = remote.unwrap();
    tokio::spawn(connection);
    assert_eq!(
        rows(&remote, "SELECT id, v FROM t ORDER BY id").await,
        rows(&local, "SELECT id, v FROM t ORDER BY id").await
    );

    // The listener serves the sync service alone: the Cluster service (commits) is not there.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(&ca).unwrap()));
    let channel =
        tonic::transport::Endpoint::from_shared(target).unwrap().tls_config(tls).unwrap().connect().await.unwrap();
    let status = chronos::net::proto::cluster_client::ClusterClient::new(channel)
        .read_index(chronos::net::proto::ReadIndexRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status}");

    // Off loopback, the listener needs TLS and tokens.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["single-node", "--pg-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--sync-address", "0.0.0.0:0"])
        .arg("--data-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .env("CHRONOS_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without TLS and edge tokens"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_refuses_writes_until_the_cloud_takes_it() {
    let mut cloud = Cluster::start(1, &[]);
    cloud.leader(Duration::from_secs(10)).expect("the cloud elects itself");
    cloud.nodes[0].terminate();
    let edge = start_edge_with("tight", &cloud, 0, &["--sync-max-backlog-mb", "1"]);
    let local = edge.connect("admin").await;
    local.batch_execute("CREATE TABLE r (id INT PRIMARY KEY, pad TEXT)").await.unwrap();
    let insert = "INSERT INTO r SELECT g, repeat('x', 100) FROM generate_series($1::int, $1::int + 999) g";
    let mut refused = None;
    for batch in 0..100 {
        match local.execute(insert, &[&(batch * 1000)]).await {
            Ok(_) => {}
            Err(e) => {
                refused = Some((batch, e));
                break;
            }
        }
    }
    let (batch, e) = refused.expect("the backlog never filled");
    assert_eq!(e.code(), Some(&tokio_postgres::error::SqlState::DISK_FULL), "{e:?}");
    assert!(format!("{e:?}").contains("sync backlog is full"), "{e:?}");
    assert!(batch >= 5, "refused after only {batch} batches");
    // Reads go on; the rows already taken are all pushed once the cloud is back, and writes
    // are taken again.
    let taken = rows(&local, "SELECT count(*) FROM r").await;
    assert_eq!(taken, vec![vec![Some((batch * 1000).to_string())]]);
    cloud.nodes[0].restart();
    let remote = cloud.nodes[0].connect("admin").await;
    converged(&local, &remote, "SELECT count(*) FROM r", Duration::from_secs(60)).await;
    local.execute(insert, &[&1_000_000]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_cloud_leader_mid_stream_loses_and_duplicates_nothing() {
    let mut cloud = Cluster::start(3, &[]);
    let leader = cloud.leader(Duration::from_secs(30)).expect("the cloud elects a leader");
    let targets: Vec<String> = (0..3).map(|i| format!("http://{}", cloud.internode_address(i))).collect();
    let targets = targets.join(",");
    let edge = Server::start_with_args(
        tempfile::tempdir().unwrap(),
        &["--edge-id", "stream", "--sync-target", &targets, "--sync-interval-secs", "1"],
        &[],
    );
    let local = edge.connect("admin").await;
    local
        .batch_execute("CREATE TABLE readings (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, PRIMARY KEY (device, ts))")
        .await
        .unwrap();
    let insert =
        "INSERT INTO readings SELECT 'd' || (g % 10), timestamptz '2026-03-01 00:00:00+00' + g * interval '1 second', g
                  FROM generate_series($1::int, $1::int + 1999) g";
    for batch in 0..20 {
        local.execute(insert, &[&(batch * 2000)]).await.unwrap();
        // Rows are updated too, so a change applied twice or out of order would show.
        local.execute("UPDATE readings SET temp = temp + 1 WHERE device = 'd3'", &[]).await.unwrap();
        if batch == 6 {
            cloud.nodes[leader].kill();
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let survivor = (0..3).find(|i| *i != leader).unwrap();
    let remote = cloud.nodes[survivor].connect("admin").await;
    let all = "SELECT device, ts, temp FROM readings ORDER BY device, ts";
    let synced = converged(&local, &remote, all, Duration::from_secs(90)).await;
    assert_eq!(synced.len(), 40_000);
    // The killed member comes back and holds the same rows.
    cloud.nodes[leader].restart();
    let back = cloud.nodes[leader].connect("admin").await;
    converged(&local, &back, all, Duration::from_secs(60)).await;
}
