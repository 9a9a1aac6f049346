//! A three-node cluster of real `chronos node` processes talking gRPC on loopback: writes
//! through followers, kill -9 of the leader under load, a new leader, no acknowledged write
//! lost, and the killed node restarted and caught up by snapshot (its log was compacted away
//! while it was down).

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{http_get, http_request, json_u64, metric, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_their_leader_and_nothing_acknowledged() {
    let mut cluster = Cluster::start(3, &["--snapshot-threshold", "200"]);
    let leader = cluster.leader(Duration::from_secs(10)).expect("a leader is elected");
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();

    // DDL and a write through a follower; every node reads them back (linearizable reads).
    let first = cluster.nodes[followers[0]].connect("admin").await;
    first.batch_execute("CREATE TABLE acked (writer INT, seq INT, PRIMARY KEY (writer, seq))").await.unwrap();
    first.execute("INSERT INTO acked VALUES (-1, 0)", &[]).await.unwrap();
    for node in &cluster.nodes {
        let n: i64 = node.connect("admin").await.query_one("SELECT count(*) FROM acked", &[]).await.unwrap().get(0);
        assert_eq!(n, 1, "a node does not see the committed row");
    }

    // Explicitly stale reads on a follower answer from its own state.
    let stale = cluster.nodes[followers[1]].connect("admin").await;
    stale.batch_execute("SET chronos.follower_reads = on").await.unwrap();
    let n: i64 = stale.query_one("SELECT count(*) FROM acked", &[]).await.unwrap().get(0);
    // The linearizable read above already made this node apply the row.
    assert_eq!(n, 1);
    assert!(stale.batch_execute("SET chronos.follower_reads = maybe").await.is_err());

    // Writes through a follower start from its own (possibly stale) state and are validated
    // on the leader: a key the leader just wrote is a unique violation, and increments made
    // alternately through the leader and a follower all count.
    let via_leader = cluster.nodes[leader].connect("admin").await;
    via_leader
        .batch_execute("CREATE TABLE counter (id INT PRIMARY KEY, n INT); INSERT INTO counter VALUES (1, 0)")
        .await
        .unwrap();
    for i in 0..20 {
        via_leader.execute("INSERT INTO acked VALUES (-2, $1)", &[&i]).await.unwrap();
        let err = first.execute("INSERT INTO acked VALUES (-2, $1)", &[&i]).await.unwrap_err();
        assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION), "{err:?}");
        let client = if i % 2 == 0 { &via_leader } else { &first };
        client.execute("UPDATE counter SET n = n + 1 WHERE id = 1", &[]).await.unwrap();
    }
    let n: i32 = first.query_one("SELECT n FROM counter", &[]).await.unwrap().get(0);
    assert_eq!(n, 20, "an increment was lost");

    // SERIAL ids drawn on different members (each reserves its own blocks of the replicated
    // sequence) never collide, also across a restart of the sequence's counter.
    via_leader.batch_execute("CREATE TABLE tagged (id BIGSERIAL PRIMARY KEY, member TEXT)").await.unwrap();
    let third = cluster.nodes[followers[1]].connect("admin").await;
    for round in 0..40 {
        let (client, member) = match round % 3 {
            0 => (&via_leader, "leader"),
            1 => (&first, "first"),
            _ => (&third, "second"),
        };
        client.execute("INSERT INTO tagged (member) VALUES ($1)", &[&member]).await.unwrap();
    }
    let ids = via_leader.query("SELECT id FROM tagged", &[]).await.unwrap();
    let mut distinct: Vec<i64> = ids.iter().map(|r| r.get(0)).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 40, "every insert got its own id");
    let drawn: i64 = first.query_one("SELECT nextval('tagged_id_seq')", &[]).await.unwrap().get(0);
    assert!(!distinct.contains(&drawn), "nextval handed out {drawn} twice");

    // One writer per follower; each records the rows acknowledged to it and when.
    let acknowledged: Arc<Mutex<BTreeSet<(i32, i32)>>> = Arc::default();
    let ack_times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let failures: Arc<Mutex<u32>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (w, &node) in followers.iter().enumerate() {
        let client = cluster.nodes[node].connect("admin").await;
        let (acknowledged, ack_times, failures, stop) =
            (acknowledged.clone(), ack_times.clone(), failures.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let writer = w as i32;
            let mut seq = 0;
            while !stop.load(Ordering::SeqCst) {
                match client.execute("INSERT INTO acked VALUES ($1, $2)", &[&writer, &seq]).await {
                    Ok(_) => {
                        acknowledged.lock().unwrap().insert((writer, seq));
                        ack_times.lock().unwrap().push(Instant::now());
                    }
                    // During the failover a commit may fail (and then may or may not exist).
                    Err(e) => {
                        let failed = {
                            let mut f = failures.lock().unwrap();
                            *f += 1;
                            *f
                        };
                        assert!(failed < 200, "writes keep failing: {e}");
                        eprintln!("write failed during the failover: {e:?}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                seq += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = acknowledged.lock().unwrap().len();
    assert!(before_kill > 20, "only {before_kill} writes before the kill");

    cluster.nodes[leader].kill();
    let killed_at = Instant::now();
    let new_leader = cluster.leader(Duration::from_secs(3)).expect("a new leader within 3 s");
    let elected_after = killed_at.elapsed();
    assert_ne!(new_leader, leader);

    // Keep writing long enough for the survivors to compact their logs past the dead node.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let first_ack_after = ack_times.lock().unwrap().iter().find(|t| **t > killed_at).map(|t| *t - killed_at);
    let first_ack_after = first_ack_after.expect("writes resumed after the failover");
    eprintln!(
        "leader elected {:.0} ms after the kill; first acknowledged write after {:.0} ms; {} failed statements",
        elected_after.as_secs_f64() * 1000.0,
        first_ack_after.as_secs_f64() * 1000.0,
        failures.lock().unwrap()
    );

    let acknowledged = acknowledged.lock().unwrap().clone();
    let client = cluster.nodes[new_leader].connect("admin").await;
    let rows = client.query("SELECT writer, seq FROM acked WHERE writer >= 0", &[]).await.unwrap();
    let stored: BTreeSet<(i32, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged rows lost: {missing:?}");
    let unacknowledged = stored.difference(&acknowledged).count() as u32;
    assert!(unacknowledged <= *failures.lock().unwrap(), "{unacknowledged} rows nobody was told about");

    // The killed node comes back, receives a snapshot (its entries were compacted away) and
    // serves the same data.
    let commit_now = json_u64(&cluster.health(new_leader).unwrap(), "commit_index");
    cluster.nodes[leader].restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let caught_up = cluster.health(leader).is_some_and(|h| json_u64(&h, "applied_index") >= commit_now);
        if caught_up {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted node did not catch up: {:?}", cluster.health(leader));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = http_get(cluster.nodes[leader].http_addr, "/metrics").unwrap();
    assert!(metric(&metrics, "chronos_raft_snapshots_installed_total") >= 1, "caught up without a snapshot");
    let restarted = cluster.nodes[leader].connect("admin").await;
    let n: i64 = restarted.query_one("SELECT count(*) FROM acked WHERE writer >= 0", &[]).await.unwrap().get(0);
    assert_eq!(n as usize, stored.len());
    // And it takes writes again, as a follower.
    restarted.execute("INSERT INTO acked VALUES (-1, 1)", &[]).await.unwrap();
    let n: i64 = client.query_one("SELECT count(*) FROM acked WHERE writer = -1", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);

    // Leadership moves on request to the restarted node; a follower refuses and names the
    // leader; writes go on.
    let path = format!("/raft/transfer-leadership?to={}", leader + 1);
    let third = (0..3).find(|i| *i != leader && *i != new_leader).unwrap();
    let (code, body) = http_request(cluster.nodes[third].http_addr, "POST", &path, "").unwrap();
    assert_eq!(code, 409, "{body}");
    assert!(body.contains(&format!("\"leader\":{}", new_leader + 1)), "{body}");
    let asked_at = Instant::now();
    let (code, body) = http_request(cluster.nodes[new_leader].http_addr, "POST", &path, "").unwrap();
    assert_eq!(code, 202, "{body}");
    while !cluster.health(leader).is_some_and(|h| h.contains("\"role\":\"Leader\"")) {
        assert!(asked_at.elapsed() < Duration::from_secs(3), "no transfer: {:?}", cluster.health(leader));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("leadership moved {:.0} ms after the request", asked_at.elapsed().as_secs_f64() * 1000.0);
    restarted.execute("INSERT INTO acked VALUES (-1, 2)", &[]).await.unwrap();
    let (code, _) =
        http_request(cluster.nodes[leader].http_addr, "POST", "/raft/transfer-leadership?to=x", "").unwrap();
    assert_eq!(code, 400);
}
