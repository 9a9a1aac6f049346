//! The operations endpoint of a real `chronos` process: /health and /metrics.

mod support;

use std::io::{Read, Write};
use support::{metric, Server};

fn get(server: &Server, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(server.http_addr).unwrap();
    // Written in pieces on purpose: a server must read the whole head, however it arrives.
    for piece in ["GET ", path, " HTTP/1.1\r\n", "Host: localhost\r\n", "\r\n"] {
        s.write_all(piece.as_bytes()).unwrap();
        s.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn health_and_metrics() {
    let server = Server::start();
    let health = get(&server, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // A single node leads its group of one once its first election is over.
    let mut health = health;
    for _ in 0..100 {
        if health.contains(r#""role":"Leader""#) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        health = get(&server, "/health");
    }
    assert!(health.contains(r#""status":"ok","role":"Leader","term":1,"id":1,"leader":1"#), "{health}");

    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE m (id INT PRIMARY KEY)").await.unwrap();
    client.execute("INSERT INTO m VALUES (1)", &[]).await.unwrap();
    assert!(client.batch_execute("SELECT * FROM missing").await.is_err());
    let metrics = get(&server, "/metrics");
    assert!(metrics.contains("# TYPE chronos_statements_total counter"), "{metrics}");
    assert_eq!(metric(&metrics, "chronos_connections"), 1);
    assert!(metric(&metrics, "chronos_statements_total") >= 3);
    assert_eq!(metric(&metrics, "chronos_statement_errors_total"), 1);
    assert!(metric(&metrics, "chronos_commits_total") >= 2);
    assert!(get(&server, "/nope").starts_with("HTTP/1.1 404"));
}

/// Full scans of a table read its column snapshot from the third one on, and the snapshot
/// follows writes committed through the Raft log: appends are seen at once, other writes
/// replace it.
#[tokio::test]
async fn full_scans_read_column_snapshots_that_follow_writes() {
    let server = Server::start();
    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE r (ts BIGINT, device TEXT, temp FLOAT8)").await.unwrap();
    client
        .batch_execute("INSERT INTO r SELECT g, 'd' || (g % 3), g / 4.0 FROM generate_series(1, 3000) AS g")
        .await
        .unwrap();
    let reads = || metric(&get(&server, "/metrics"), "chronos_column_snapshot_reads_total");
    let query = "SELECT count(*), sum(temp) FROM r";
    let totals = || async {
        let row = client.query_one(query, &[]).await.unwrap();
        (row.get::<_, i64>(0), row.get::<_, f64>(1))
    };
    for _ in 0..3 {
        assert_eq!(totals().await, (3000, 1_125_375.0));
    }
    assert_eq!(reads(), 1);
    assert!(metric(&get(&server, "/metrics"), "chronos_column_cache_bytes") > 0);

    client.batch_execute("INSERT INTO r VALUES (3001, 'd9', 100)").await.unwrap();
    assert_eq!(totals().await, (3001, 1_125_475.0));
    assert_eq!(reads(), 2, "the append kept the snapshot");
    // A filter and a projection go through rows built from the snapshot.
    let row = client.query_one("SELECT count(*), max(ts) FROM r WHERE device = 'd9'", &[]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (1, 3001));
    assert_eq!(reads(), 3);

    client.batch_execute("UPDATE r SET temp = 0 WHERE ts <= 4").await.unwrap();
    for _ in 0..3 {
        assert_eq!(totals().await, (3001, 1_125_475.0 - 2.5));
    }
    assert_eq!(reads(), 5, "the update dropped the snapshot; the next scan rebuilt it");
}

#[tokio::test]
async fn cluster_changes_need_the_http_token() {
    let env = [("CHRONOS_AUTH_TOKEN_ADMIN", "s3cret"), ("CHRONOS_HTTP_TOKEN", "t0ken")];
    let server = Server::start_in(tempfile::tempdir().unwrap(), &env);
    let path = "/raft/transfer-leadership?to=2";
    let post = |path: &str, headers: &str| support::http_request(server.http_addr, "POST", path, headers).unwrap();
    assert_eq!(post(path, "").0, 401);
    assert_eq!(post(path, "Authorization: Bearer wrong\r\n").0, 401);
    assert_eq!(post("/raft/members?remove=2", "").0, 401);
    // The SQL superuser's password is not the HTTP token.
    assert_eq!(post(path, "Authorization: Bearer s3cret\r\n").0, 401);
    // With the token the request gets through, and a single node has nobody to hand
    // leadership or membership to.
    let (code, body) = post(path, "Authorization: Bearer t0ken\r\n");
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("cannot transfer leadership to 2"), "{body}");
    let (code, body) = post("/raft/members?add=2&address=127.0.0.1:1", "Authorization: Bearer t0ken\r\n");
    assert_eq!(code, 409, "{body}");
    // A browser's request (it carries an Origin) is refused, token or not.
    let (code, _) = post(path, "Authorization: Bearer t0ken\r\nOrigin: http://evil.example\r\n");
    assert_eq!(code, 403);
    let (code, _) =
        support::http_request(server.http_addr, "GET", "/metrics", "Origin: http://evil.example\r\n").unwrap();
    assert_eq!(code, 403);
    // Reading stays open.
    assert!(get(&server, "/health").starts_with("HTTP/1.1 200"));

    // With passwords but no token, nobody may change the cluster, not even from loopback.
    let guarded = Server::start_in(tempfile::tempdir().unwrap(), &[("CHRONOS_AUTH_TOKEN_ADMIN", "s3cret")]);
    let (code, _) = support::http_request(guarded.http_addr, "POST", path, "Authorization: Bearer s3cret\r\n").unwrap();
    assert_eq!(code, 401);
}

#[tokio::test]
async fn slow_and_excess_http_clients_do_not_block_the_endpoint() {
    let server = Server::start();
    // Connections that send nothing are closed after the read timeout, and more than the
    // endpoint serves at once are turned away without starving the others for long.
    let idle: Vec<std::net::TcpStream> =
        (0..40).map(|_| std::net::TcpStream::connect(server.http_addr).unwrap()).collect();
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert!(get(&server, "/health").starts_with("HTTP/1.1 200"));
    drop(idle);
}
