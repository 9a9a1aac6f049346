//! `chronos-admin` against a cluster of real `chronos node` processes: status of every member,
//! a learner added, promoted and made leader, a member removed, roles managed through SQL, a
//! backup; `--json` parsed throughout, exit codes checked.

mod support;

use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::Cluster;

fn admin(urls: &[String], args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chronos-admin"));
    command.env_remove("CHRONOS_HTTP_TOKEN").env_remove("CHRONOS_ADMIN_URL").env_remove("CHRONOS_ADMIN_PG");
    command.arg("--url").arg(urls.join(",")).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run chronos-admin")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn urls(cluster: &Cluster) -> Vec<String> {
    cluster.nodes.iter().map(|n| format!("http://{}", n.http_addr)).collect()
}

/// The members' status, by id.
fn status(cluster: &Cluster) -> Vec<Value> {
    let out = admin(&urls(cluster), &["--json", "status"], &[]);
    json(&out)["members"].as_array().unwrap().clone()
}

/// Waits up to 20 s for `check` over the status.
fn wait_for(cluster: &Cluster, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let members = status(cluster);
        if check(&members) {
            return members;
        }
        assert!(Instant::now() < deadline, "{what}: {members:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn member(members: &[Value], id: u64) -> &Value {
    members.iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("node {id} missing in {members:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chronos_admin_operates_a_cluster() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).expect("a leader") as u64 + 1;
    let client = cluster.nodes[leader as usize - 1].connect("admin").await;
    client.batch_execute("CREATE TABLE a (id INT PRIMARY KEY)").await.unwrap();
    for i in 0..20 {
        client.execute("INSERT INTO a VALUES ($1)", &[&i]).await.unwrap();
    }

    // Status: every member, one leader, the same term, lag measured against its commit.
    let members = wait_for(&cluster, "all caught up", |m| m.iter().all(|m| m["lag"] == 0));
    assert_eq!(members.len(), 3);
    assert_eq!(members.iter().filter(|m| m["role"] == "Leader").count(), 1);
    assert_eq!(member(&members, leader)["role"], "Leader");
    assert!(members.iter().all(|m| m["health"] == "ok" && m["term"] == members[0]["term"]), "{members:#?}");
    let table = admin(&urls(&cluster), &["status"], &[]);
    assert!(table.status.success(), "{}", text(&table));
    let table = text(&table);
    assert!(table.starts_with("ID") && table.contains("Leader") && table.contains("Follower"), "{table}");

    // A learner joins (through a follower's URL listed first: the tool finds the leader).
    let address = cluster.join();
    let mut listed = urls(&cluster);
    listed.rotate_left(leader as usize % 3);
    let out = admin(&listed, &["--json", "members", "add", "4", "--address", &address], &[]);
    assert_eq!(json(&out)["proposed"], "add");
    let members = wait_for(&cluster, "node 4 catches up as a learner", |m| {
        m.len() == 4 && member(m, 4)["role"] == "Learner" && member(m, 4)["lag"] == 0
    });
    assert_eq!(member(&members, leader)["learners"], serde_json::json!([4]));

    let out = admin(&urls(&cluster), &["--json", "members", "promote", "4"], &[]);
    assert_eq!(json(&out)["proposed"], "promote");
    wait_for(&cluster, "node 4 votes", |m| member(m, leader)["voters"] == serde_json::json!([1, 2, 3, 4]));

    // Leadership moves to node 4, which then removes a founder that does not lead.
    let out = admin(&urls(&cluster), &["--json", "transfer-leader", "4"], &[]);
    assert_eq!(json(&out)["transferring_to"], 4);
    wait_for(&cluster, "node 4 leads", |m| member(m, 4)["role"] == "Leader");
    let removed = if leader == 1 { 2 } else { 1 };
    let out = admin(&urls(&cluster), &["members", "remove", &removed.to_string()], &[]);
    assert!(out.status.success() && text(&out).contains("removed"), "{}", text(&out));
    let members = wait_for(&cluster, "the founder is gone", |m| {
        !member(m, 4)["voters"].as_array().unwrap().contains(&Value::from(removed))
    });
    assert_eq!(member(&members, 4)["voters"].as_array().unwrap().len(), 3);
    assert_eq!(member(&members, removed)["role"], "Removed", "status shows it is out of the configuration");
    assert!(member(&members, removed)["lag"].is_null());

    // Refusals exit 1 with the server's reason; nobody reachable exits 3; bad usage 2.
    let out = admin(&urls(&cluster), &["transfer-leader", "99"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("409"), "{}", text(&out));
    let out = admin(&["http://127.0.0.1:1".to_string()], &["status"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = admin(&urls(&cluster), &["members", "add", "5"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Roles through SQL on the leader.
    let pg = format!("host=127.0.0.1 port={} user=admin dbname=chronos", cluster.nodes[3].pg_addr.port());
    let users = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["users", "--pg", &pg];
        all.extend_from_slice(args);
        admin(&urls(&cluster), &all, env)
    };
    let out = users(&["create", "grafana"], &[]);
    assert_eq!(out.status.code(), Some(1), "a password is required: {}", text(&out));
    let out = users(&["create", "gra'fana"], &[("CHRONOS_NEW_PASSWORD", "pa'ss word")]);
    assert!(out.status.success(), "{}", text(&out));
    let out = users(&["--json", "list"], &[]);
    let roles = json(&out)["roles"].as_array().unwrap().clone();
    let created = roles.iter().find(|r| r["name"] == "gra'fana").expect("the role is listed");
    assert_eq!((created["login"].as_bool(), created["superuser"].as_bool()), (Some(true), Some(false)));
    let login = |password: &str| {
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(cluster.nodes[3].pg_addr.port()).user("gra'fana").dbname("chronos");
        config.password(password);
        async move { config.connect(tokio_postgres::NoTls).await.map(|_| ()) }
    };
    // The cluster trusts loopback (no passwords configured at start): this checks the role
    // exists and may log in; SCRAM with role passwords is tests/auth_tls.rs's.
    login("pa'ss word").await.expect("the new role logs in");
    let out = users(&["drop", "gra'fana"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = users(&["drop", "gra'fana"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("SQLSTATE 42704"), "{}", text(&out));

    // A backup through any member.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.backup");
    let out = admin(&urls(&cluster), &["--json", "backup", "--output", file.to_str().unwrap()], &[]);
    let backup = json(&out);
    assert!(backup["bytes"].as_u64().unwrap() > 0 && backup["header"]["version"].as_u64().unwrap() > 0);
    let restored = dir.path().join("restored");
    let out = admin(
        &urls(&cluster),
        &["restore", "--data-dir", restored.to_str().unwrap(), "--input", file.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
}

/// Over HTTPS: the endpoint's certificate must chain to `--ca-cert`; POSTs carry the token.
#[tokio::test]
async fn chronos_admin_speaks_https_and_checks_the_certificate() {
    let certs = tempfile::tempdir().unwrap();
    support::ca_and_member(certs.path(), "ca", "server");
    support::ca_and_member(certs.path(), "other-ca", "other");
    let path = |f: &str| certs.path().join(f).to_string_lossy().to_string();
    let (cert, key, ca, other_ca) = (path("server.pem"), path("server.key"), path("ca.pem"), path("other-ca.pem"));
    let env =
        [("CHRONOS_TLS_CERT", cert.as_str()), ("CHRONOS_TLS_KEY", key.as_str()), ("CHRONOS_HTTP_TOKEN", "op-token")];
    let server = support::Server::start_in(tempfile::tempdir().unwrap(), &env);
    let url = vec![format!("https://127.0.0.1:{}", server.http_addr.port())];

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = json(&admin(&url, &["--ca-cert", &ca, "--json", "status"], &[]));
        if status["members"][0]["role"] == "Leader" || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["members"][0]["role"], "Leader", "{status}");

    // Another CA's certificate, or plain HTTP to the HTTPS port: nothing is reached (exit 3).
    let out = admin(&url, &["--ca-cert", &other_ca, "status"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).to_lowercase().contains("certificate"), "{}", text(&out));
    let plain = vec![format!("http://127.0.0.1:{}", server.http_addr.port())];
    let out = admin(&plain, &["status"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    // A backup over HTTPS needs the token; with it the file is whole and verified.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tls.backup");
    let file = file.to_str().unwrap();
    let out = admin(&url, &["--ca-cert", &ca, "backup", "--output", file], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("401"), "{}", text(&out));
    let out =
        admin(&url, &["--ca-cert", &ca, "--json", "backup", "--output", file], &[("CHRONOS_HTTP_TOKEN", "op-token")]);
    let answer = json(&out);
    assert!(answer["bytes"].as_u64().unwrap() > 0, "{answer}");
    assert!(std::path::Path::new(file).exists());
}
