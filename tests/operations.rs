//! What operators and their tools see of real `chronos` processes: `/ready` beside `/health`,
//! `/metrics` checked by Prometheus' own `promtool` and scraped by a real Prometheus server
//! (Debian's `prometheus` package), and log files (rotation, JSON, no colour codes).

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{http_get, http_request, metric, Cluster, Server};

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_distinct_from_health() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).expect("a leader");
    for node in &cluster.nodes {
        wait_until("every member is ready", Duration::from_secs(10), || {
            http_request(node.http_addr, "GET", "/ready", "").is_some_and(|(code, _)| code == 200)
        });
    }
    let (_, body) = http_request(cluster.nodes[leader].http_addr, "GET", "/ready", "").unwrap();
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["leader"], leader as u64 + 1);

    // Two of three gone: the survivor is alive (200 on /health) but cannot serve writes, and
    // says so on /ready.
    let survivor = (leader + 1) % 3;
    for i in (0..3).filter(|i| *i != survivor) {
        cluster.nodes[i].kill();
    }
    let addr = cluster.nodes[survivor].http_addr;
    wait_until("the survivor is not ready", Duration::from_secs(15), || {
        http_request(addr, "GET", "/ready", "").is_some_and(|(code, _)| code == 503)
    });
    let (_, body) = http_request(addr, "GET", "/ready", "").unwrap();
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], false);
    assert!(ready["reason"].as_str().unwrap().contains("no leader"), "{body}");
    let (code, health) = http_request(addr, "GET", "/health", "").unwrap();
    assert_eq!(code, 200, "{health}");
}

/// Runs `promtool check metrics` on a `/metrics` page: its complaints, if any.
fn promtool_check(page: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt install prometheus) must be on PATH");
    child.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        String::new()
    } else {
        text
    }
}

/// A Prometheus server on loopback, with its data in a temporary directory; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn scraping(targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: chronos\n    static_configs:\n      - targets: [{list}]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (apt install prometheus) must be on PATH");
        Prometheus { child, port, _dir: dir }
    }

    /// The result vector of an instant query (empty while Prometheus is not up yet).
    fn query(&self, promql: &str) -> Vec<Value> {
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let path = format!("/api/v1/query?query={}", promql.replace(' ', "%20").replace('"', "%22"));
        http_request(addr, "GET", &path, "Connection: close\r\n")
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_checks_and_scrapes_every_member() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).expect("a leader");
    let client = cluster.nodes[leader].connect("admin").await;
    client
        .batch_execute("CREATE TABLE readings (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, PRIMARY KEY (device, ts))")
        .await
        .unwrap();
    for i in 0..20 {
        let insert = format!("INSERT INTO readings VALUES ('d1', now() + interval '{i} seconds', 20.5)");
        client.execute(insert.as_str(), &[]).await.unwrap();
    }
    assert!(client.batch_execute("SELECT * FROM nowhere").await.is_err());
    client.query("SELECT 1 / 0", &[]).await.unwrap_err();

    // Every member's page passes promtool's checks (format and naming conventions).
    for node in &cluster.nodes {
        let page = http_get(node.http_addr, "/metrics").unwrap();
        assert_eq!(promtool_check(&page), "", "promtool on {}:\n{page}", node.http_addr);
    }
    let page = http_get(cluster.nodes[leader].http_addr, "/metrics").unwrap();
    assert!(metric(&page, "chronos_statements_total{kind=\"insert\"}") >= 20, "{page}");
    assert!(metric(&page, "chronos_statement_duration_seconds_count{kind=\"insert\"}") >= 20, "{page}");
    assert!(page.contains("chronos_statement_duration_seconds_bucket{kind=\"insert\",le=\"0.001\"}"), "{page}");
    assert_eq!(metric(&page, "chronos_statement_errors_total{class=\"42\"}"), 1, "{page}");
    assert_eq!(metric(&page, "chronos_statement_errors_total{class=\"22\"}"), 1, "{page}");
    assert_eq!(metric(&page, "chronos_raft_role{role=\"Leader\"}"), 1);
    assert!(metric(&page, "chronos_raft_elections_total") >= 1);
    assert!(page.contains("chronos_raft_follower_lag_entries{follower="), "the leader reports each follower: {page}");
    assert!(metric(&page, "chronos_storage_disk_bytes") > 0);

    // A real Prometheus scraping the three members has their series.
    let targets: Vec<String> = cluster.nodes.iter().map(|n| n.http_addr.to_string()).collect();
    let prometheus = Prometheus::scraping(&targets);
    wait_until("Prometheus scrapes every member", Duration::from_secs(30), || {
        prometheus.query("up == 1").len() == 3 && prometheus.query("chronos_raft_term").len() == 3
    });
    let roles = prometheus.query("chronos_raft_role == 1");
    let mut by_role: Vec<String> = roles.iter().map(|r| r["metric"]["role"].as_str().unwrap().to_string()).collect();
    by_role.sort();
    assert_eq!(by_role, ["Follower", "Follower", "Leader"], "{roles:?}");
    let instances: Vec<String> = prometheus
        .query("chronos_raft_commit_index")
        .iter()
        .map(|r| r["metric"]["instance"].as_str().unwrap().to_string())
        .collect();
    for target in &targets {
        assert!(instances.contains(target), "{target} missing in {instances:?}");
    }
    let inserts = prometheus.query("sum(chronos_statements_total{kind=\"insert\"})");
    assert_eq!(inserts.len(), 1, "{inserts:?}");
    assert!(inserts[0]["value"][1].as_str().unwrap().parse::<f64>().unwrap() >= 20.0, "{inserts:?}");
}

fn read_logs(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn logs_go_to_rotated_files_as_json_or_plain_text() {
    // JSON lines, rotated at 4 KiB, two old files kept; debug logging fills several.
    let logs = tempfile::tempdir().unwrap();
    let file = logs.path().join("chronos.log");
    let env = [
        ("CHRONOS_LOG", "debug"),
        ("CHRONOS_LOG_FILE", file.to_str().unwrap()),
        ("CHRONOS_LOG_FORMAT", "json"),
        ("CHRONOS_LOG_ROTATION", "4KB"),
        ("CHRONOS_LOG_KEEP", "2"),
    ];
    let server = Server::start_in(tempfile::tempdir().unwrap(), &env);
    let client = server.connect("admin").await;
    for i in 0..20 {
        client.batch_execute(&format!("CREATE TABLE t{i} (id INT PRIMARY KEY)")).await.unwrap();
    }
    drop(server);
    let files = read_logs(logs.path());
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["chronos.log", "chronos.log.1", "chronos.log.2"], "rotated, the oldest removed");
    let mut lines = 0;
    for (name, text) in &files {
        assert!(text.len() <= 4096 || text.lines().count() == 1, "{name} is {} bytes", text.len());
        for line in text.lines() {
            let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
            assert!(event["timestamp"].is_string() && event["level"].is_string(), "{line}");
            lines += 1;
        }
        assert!(!text.contains('\u{1b}'), "no colour codes in {name}");
    }
    assert!(lines > 10);

    // Plain text to a file has no colour codes either, and RUST_LOG is the filter when
    // CHRONOS_LOG is not set.
    let logs = tempfile::tempdir().unwrap();
    let file = logs.path().join("text.log");
    let env = [("CHRONOS_LOG", ""), ("RUST_LOG", "debug"), ("CHRONOS_LOG_FILE", file.to_str().unwrap())];
    let server = Server::start_in(tempfile::tempdir().unwrap(), &env);
    server.connect("admin").await.batch_execute("SELECT 1").await.unwrap();
    drop(server);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(" DEBUG "), "RUST_LOG=debug applies: {text}");
    assert!(text.contains(" INFO ") && !text.contains('\u{1b}'), "{text}");

    // A bad setting stops the server at once with a message, exit code 2.
    for (name, value) in [("CHRONOS_LOG_FORMAT", "xml"), ("CHRONOS_LOG_ROTATION", "weekly"), ("CHRONOS_LOG", "[")] {
        let out = Command::new(env!("CARGO_BIN_EXE_chronos"))
            .args(["single-node", "--data-dir"])
            .arg(logs.path().join("unused"))
            .env("CHRONOS_LOG_FILE", &file)
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("chronos: "), "{name}={value}");
    }
}
