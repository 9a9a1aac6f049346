//! Membership changes of a running cluster of real `chronos node` processes: a fourth node
//! joins as a learner, catches up, is promoted to voter, and a founding member is removed;
//! the cluster then needs the new member for its quorum, also after the leader restarts
//! without node 4 in its `--peers`.

mod support;

use std::time::{Duration, Instant};
use support::{http_request, Cluster};

fn json_u64(json: &str, field: &str) -> u64 {
    let pattern = format!("\"{field}\":");
    let start = json.find(&pattern).unwrap_or_else(|| panic!("{field} missing in {json}")) + pattern.len();
    json[start..].chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().unwrap()
}

/// Waits until `check` holds for node `i`'s /health, for up to 10 s.
async fn wait_for(cluster: &Cluster, i: usize, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if cluster.health(i).is_some_and(|h| check(&h)) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {:?}", cluster.health(i));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_is_promoted_and_a_founder_leaves() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).expect("a leader is elected");
    let client = cluster.nodes[leader].connect("admin").await;
    client.batch_execute("CREATE TABLE m (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    for i in 0..50 {
        client.execute("INSERT INTO m VALUES ($1, 'before')", &[&i]).await.unwrap();
    }

    // Node 4 starts with --join: it is nobody's member yet and does not campaign.
    let address = cluster.join();
    let joined = 3;
    wait_for(&cluster, joined, "the joining node answers", |h| h.contains("\"voters\":[]")).await;
    let post = |i: usize, path: String| http_request(cluster.nodes[i].http_addr, "POST", &path, "").unwrap();

    // Membership changes go to the leader; others refuse and name it.
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let (code, body) = post(follower, format!("/raft/members?add=4&address={address}"));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains(&format!("\"leader\":{}", leader + 1)), "{body}");
    assert_eq!(post(leader, "/raft/members?add=4".into()).0, 400, "an address is required");
    let (code, body) = post(leader, format!("/raft/members?add=4&address={address}"));
    assert_eq!(code, 202, "{body}");

    // The learner catches up (the table and its rows arrive) without voting.
    wait_for(&cluster, leader, "node 4 is a learner", |h| h.contains("\"learners\":[4]")).await;
    let commit = json_u64(&cluster.health(leader).unwrap(), "commit_index");
    wait_for(&cluster, joined, "node 4 catches up", |h| json_u64(h, "applied_index") >= commit).await;
    assert!(cluster.health(joined).unwrap().contains("\"role\":\"Learner\""));
    let reader = cluster.nodes[joined].connect("admin").await;
    let n: i64 = reader.query_one("SELECT count(*) FROM m", &[]).await.unwrap().get(0);
    assert_eq!(n, 50);

    let (code, body) = post(leader, "/raft/members?promote=4".into());
    assert_eq!(code, 202, "{body}");
    wait_for(&cluster, joined, "node 4 is a voter", |h| h.contains("\"voters\":[1,2,3,4]")).await;

    // A founding follower leaves; then one more member dies: the two left (the leader and
    // node 4) are a majority of the three voters only because node 4 counts.
    // Node 4 votes as soon as it holds the promotion; the leader takes the next change once
    // the promotion has committed (one change at a time).
    let leaving = (0..3).find(|i| *i != leader).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (code, body) = loop {
        let (code, body) = post(leader, format!("/raft/members?remove={}", leaving + 1));
        if !(code == 409 && body.contains("membership change pending")) || Instant::now() > deadline {
            break (code, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(code, 202, "{body}");
    let expected: Vec<String> = (1..=4).filter(|id| *id != leaving + 1).map(|id| id.to_string()).collect();
    let voters = format!("\"voters\":[{}]", expected.join(","));
    wait_for(&cluster, leader, "the founder is removed", |h| h.contains(&voters)).await;
    cluster.nodes[leaving].kill();
    let dying = (0..3).find(|i| *i != leader && *i != leaving).unwrap();
    cluster.nodes[dying].kill();

    for i in 50..60 {
        client.execute("INSERT INTO m VALUES ($1, 'after')", &[&i]).await.unwrap();
    }
    let n: i64 = reader.query_one("SELECT count(*) FROM m WHERE v = 'after'", &[]).await.unwrap().get(0);
    assert_eq!(n, 10, "node 4 does not have the writes it acknowledged as part of the quorum");
    // Writes through the new member reach the leader too.
    reader.execute("INSERT INTO m VALUES (100, 'via 4')", &[]).await.unwrap();
    let n: i64 = client.query_one("SELECT count(*) FROM m", &[]).await.unwrap().get(0);
    assert_eq!(n, 61);

    // The leader restarts. Its --peers never named node 4: it finds node 4's address in the
    // replicated record, and the two elect a leader again.
    cluster.nodes[leader].kill();
    cluster.nodes[leader].restart();
    cluster.leader(Duration::from_secs(10)).expect("a leader after the restart");
    // The restarted node took the membership from its log, not from its --peers.
    let health = cluster.health(leader).unwrap();
    assert!(health.contains(&voters), "{health}");
    let client = cluster.nodes[leader].connect("admin").await;
    client.execute("INSERT INTO m VALUES (101, 'after the restart')", &[]).await.unwrap();
    let n: i64 = reader.query_one("SELECT count(*) FROM m", &[]).await.unwrap().get(0);
    assert_eq!(n, 62);
}

/// Peak resident memory of process `pid`, in MiB (Linux).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kib / 1024
}

/// A node that started alone compacts its log many times (a group of one snapshots cheaply);
/// a second node joins it later and must receive a real snapshot of the state, not the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joins_a_node_that_started_alone_and_compacted() {
    let mut cluster = Cluster::start(1, &["--snapshot-threshold", "20"]);
    let leader = cluster.leader(Duration::from_secs(10)).expect("the lone node leads");
    let client = cluster.nodes[leader].connect("admin").await;
    client.batch_execute("CREATE TABLE j (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    for i in 0..200 {
        client.execute("INSERT INTO j VALUES ($1, repeat('x', 100))", &[&i]).await.unwrap();
    }
    client.batch_execute("INSERT INTO j SELECT g, 'bulk' FROM generate_series(1000, 50999) AS g").await.unwrap();
    client.batch_execute("DELETE FROM j WHERE id < 10").await.unwrap();
    let applied = json_u64(&cluster.health(leader).unwrap(), "applied_index");
    assert!(applied > 200, "every statement is an entry: {applied}");
    let before = peak_rss_mib(cluster.nodes[leader].pid().unwrap());

    let address = cluster.join();
    let joined = 1;
    wait_for(&cluster, joined, "the joining node answers", |h| h.contains("\"voters\":[]")).await;
    let (code, body) =
        http_request(cluster.nodes[leader].http_addr, "POST", &format!("/raft/members?add=2&address={address}"), "")
            .unwrap();
    assert_eq!(code, 202, "{body}");
    let commit = json_u64(&cluster.health(leader).unwrap(), "commit_index");
    wait_for(&cluster, joined, "node 2 catches up", |h| json_u64(h, "applied_index") >= commit).await;
    let metrics = support::http_get(cluster.nodes[joined].http_addr, "/metrics").unwrap();
    let installed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("chronos_raft_snapshots_installed_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(installed >= 1, "node 2 caught up from a snapshot");
    let after = peak_rss_mib(cluster.nodes[leader].pid().unwrap());
    eprintln!("leader peak RSS: {before} MiB before the transfer, {after} MiB after");

    let reader = cluster.nodes[joined].connect("admin").await;
    let count = "SELECT count(*), sum(id) FROM j";
    let want = client.query_one(count, &[]).await.unwrap();
    let got = reader.query_one(count, &[]).await.unwrap();
    assert_eq!((got.get::<_, i64>(0), got.get::<_, i64>(1)), (want.get::<_, i64>(0), want.get::<_, i64>(1)));
    assert_eq!(want.get::<_, i64>(0), 190 + 50_000);
    // Later writes reach the new member through the log.
    client.execute("INSERT INTO j VALUES (-1, 'after')", &[]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = reader.query_one("SELECT count(*) FROM j WHERE id = -1", &[]).await.unwrap().get(0);
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the write after the snapshot did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
