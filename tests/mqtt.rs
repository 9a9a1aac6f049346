//! MQTT ingestion against a real broker (Debian's `mosquitto`, started here on a free port):
//! the default and configured mappings, bad messages, a broker restart, and kill -9 of
//! ChronosDB during a QoS 1 stream.

mod support;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{http_get, metric, Server};

/// A mosquitto broker on loopback with persistence in its own directory; killed on drop.
struct Broker {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
             max_queued_messages 0\nmax_inflight_messages 1000\nautosave_interval 1\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), config).unwrap();
        let mut broker = Broker { port, dir, child: None };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let program = if Path::new("/usr/sbin/mosquitto").exists() { "/usr/sbin/mosquitto" } else { "mosquitto" };
        let child = Command::new(program)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (apt install mosquitto) must be on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker cleanly (it saves its sessions and queued messages) and starts it again.
    fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
        std::thread::sleep(Duration::from_millis(500));
        self.spawn();
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Publishes `messages` at QoS 1 (at most `per_second`, 0: no limit); returns how many the
/// broker acknowledged.
async fn publish(broker: &Broker, messages: Vec<(String, Vec<u8>)>, per_second: u64) -> usize {
    let mut options = MqttOptions::new(format!("publisher-{}", rand_id()), "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(10)).set_inflight(200);
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let total = messages.len();
    let sender = tokio::spawn(async move {
        let start = Instant::now();
        for (i, (topic, payload)) in messages.into_iter().enumerate() {
            if per_second > 0 {
                let due = start + Duration::from_secs_f64(i as f64 / per_second as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
        }
        client
    });
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked < total && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => break,
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let client = sender.await.unwrap();
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    acked
}

fn rand_id() -> u64 {
    use std::time::SystemTime;
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn json(topic: &str, payload: &str) -> (String, Vec<u8>) {
    (topic.to_string(), payload.as_bytes().to_vec())
}

fn start_chronos(broker: &Broker, config: Option<&Path>) -> Server {
    let url = broker.url();
    let mut args = vec!["--mqtt-url", &url];
    let config_arg;
    if let Some(path) = config {
        config_arg = path.display().to_string();
        args.extend(["--mqtt-config", &config_arg]);
    }
    let client_id = format!("chronos-test-{}", rand_id());
    args.extend(["--mqtt-client-id", &client_id]);
    let server = Server::start_with_args(tempfile::tempdir().unwrap(), &args, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&metrics(&server), "chronos_mqtt_connected") != 1 {
        assert!(Instant::now() < deadline, "chronos did not connect to the broker");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The subscription is sent right after the connection is acknowledged.
    std::thread::sleep(Duration::from_millis(300));
    server
}

fn metrics(server: &Server) -> String {
    http_get(server.http_addr, "/metrics").unwrap_or_default()
}

fn rejected(server: &Server, reason: &str) -> u64 {
    let line = format!("chronos_mqtt_messages_rejected_total{{reason=\"{reason}\"}} ");
    metrics(server).lines().find_map(|l| l.strip_prefix(&line).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

/// The single value of `query`, as text, once `until` holds for it (or fails after a while).
async fn wait_for(client: &tokio_postgres::Client, query: &str, until: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = value(client, query).await;
        if until(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{query} stayed at {value}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn value(client: &tokio_postgres::Client, query: &str) -> String {
    for message in client.simple_query(query).await.unwrap() {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            return row.get(0).unwrap_or("NULL").to_string();
        }
    }
    String::new()
}

async fn rows(client: &tokio_postgres::Client, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    for message in client.simple_query(query).await.unwrap() {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            out.push((0..row.len()).map(|i| row.get(i).unwrap_or("NULL")).collect::<Vec<_>>().join("|"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_mapping_writes_json_objects_and_keeps_bad_messages_aside() {
    let broker = Broker::start();
    let server = start_chronos(&broker, None);
    let db = server.connect("admin").await;
    db.batch_execute(
        "CREATE TABLE m (id int PRIMARY KEY, v float8, label text, ok boolean, doc jsonb, at timestamptz NOT NULL);
         CREATE TABLE log (line text)",
    )
    .await
    .unwrap();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let messages = vec![
        json("chronos/m", r#"{"id": 1, "v": 1.5, "label": "first", "ok": true, "doc": {"a": [1, 2]}}"#),
        json("chronos/m", "not json"),
        json("chronos/m", r#"{"id": 1, "v": 2.5}"#),
        json("chronos/nope", r#"{"id": 9}"#),
        json("chronos/m", r#"[{"id": 2, "at": "2026-01-02T03:04:05Z"}, {"id": 3, "at": 1700000000}]"#),
        json("chronos/m", r#"{"id": "x"}"#),
        json("chronos/m", r#"{"id": 4, "colour": "red"}"#),
        json("chronos/m", r#"{"v": 4}"#),
        json("chronos/m", r#"{"id": 5, "v": {"nested": true}}"#),
        json("chronos/log", r#"{"line": "a"}"#),
        json("chronos/log", r#"{"line": "a"}"#),
    ];
    assert_eq!(publish(&broker, messages, 0).await, 11);
    wait_for(&db, "SELECT count(*) FROM log", |v| v == "2").await;
    wait_for(&db, "SELECT count(*) FROM chronos_mqtt_rejected", |v| v == "6").await;
    assert_eq!(
        rows(&db, "SELECT id, v, label, ok, doc FROM m ORDER BY id").await,
        vec!["1|2.5|first|t|{\"a\": [1, 2]}", "2|NULL|NULL|NULL|NULL", "3|NULL|NULL|NULL|NULL"],
        "a second message for a key is an upsert of the columns it gives"
    );
    assert_eq!(
        rows(&db, "SELECT id, at FROM m WHERE id > 1 ORDER BY id").await,
        vec!["2|2026-01-02 03:04:05+00", "3|2023-11-14 22:13:20+00"]
    );
    let received: i64 = value(&db, "SELECT extract(epoch FROM at)::bigint FROM m WHERE id = 1").await.parse().unwrap();
    assert!((received - before as i64).abs() < 60, "the receive time fills the time column: {received} vs {before}");
    assert_eq!(
        rows(&db, "SELECT topic, reason, sqlstate FROM chronos_mqtt_rejected ORDER BY seq").await,
        vec![
            "chronos/m|payload|22P02",
            "chronos/nope|table|42P01",
            "chronos/m|type|22P02",
            "chronos/m|column|42703",
            "chronos/m|constraint|23502",
            "chronos/m|type|42804",
        ]
    );
    assert_eq!(value(&db, "SELECT payload FROM chronos_mqtt_rejected WHERE reason = 'payload'").await, "not json");
    for (reason, n) in [("payload", 1), ("table", 1), ("type", 2), ("column", 1), ("constraint", 1), ("privilege", 0)] {
        assert_eq!(rejected(&server, reason), n, "rejections for {reason}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&metrics(&server), "chronos_mqtt_messages_acknowledged_total") < 11 {
        assert!(Instant::now() < deadline, "not every message was acknowledged: {}", metrics(&server));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = metrics(&server);
    assert_eq!(metric(&m, "chronos_mqtt_messages_received_total"), 11);
    assert_eq!(metric(&m, "chronos_mqtt_messages_acknowledged_total"), 11);
    let health = http_get(server.http_addr, "/health").unwrap();
    assert!(health.contains(r#""mqtt":{"connected":true,"received":11"#), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_mappings_bind_topic_levels_paths_and_units_under_a_role() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mqtt.toml");
    std::fs::write(
        &config,
        r#"
role = "ingest"
batch_wait_ms = 5

[[mapping]]
topic = "sensors/{device}/temp"
table = "readings"
payload = "number"
value_column = "temp"

[[mapping]]
topic = "plant/{site}/+/status"
table = "status"
time_column = "at"
time_unit = "ms"
upsert = false
[mapping.columns]
state = "$.s.name"
load = "$.s.values[1]"
at = "$.t"

[[mapping]]
topic = "secret/#"
table = "secrets"
"#,
    )
    .unwrap();
    let server = start_chronos(&broker, Some(&config));
    let db = server.connect("admin").await;
    db.batch_execute(
        "CREATE TABLE readings (device text, ts timestamptz, temp numeric, PRIMARY KEY (device, ts));
         CREATE TABLE status (site text, state text, load float8, at timestamp);
         CREATE TABLE secrets (x int);
         CREATE ROLE ingest LOGIN;
         GRANT SELECT, INSERT, UPDATE ON readings TO ingest;
         GRANT INSERT ON status TO ingest",
    )
    .await
    .unwrap();
    let messages = vec![
        json("sensors/esp-1/temp", "21.25"),
        json("sensors/esp-2/temp", " 19 "),
        json("sensors/esp-2/temp", "warm"),
        json("plant/north/line-4/status", r#"{"s": {"name": "running", "values": [1, 0.75]}, "t": 1700000000123}"#),
        json("plant/north/line-4/status", r#"{"s": {"name": "running", "values": [1, 0.75]}, "t": 1700000000123}"#),
        json("secret/a", r#"{"x": 1}"#),
        json("chronos/readings", r#"{"device": "d", "temp": 1}"#),
        json("elsewhere", "1"),
    ];
    assert_eq!(publish(&broker, messages, 0).await, 8);
    wait_for(&db, "SELECT count(*) FROM status", |v| v == "2").await;
    wait_for(&db, "SELECT count(*) FROM chronos_mqtt_rejected", |v| v == "2").await;
    assert_eq!(
        rows(&db, "SELECT topic, reason FROM chronos_mqtt_rejected ORDER BY seq").await,
        vec!["sensors/esp-2/temp|payload", "secret/a|privilege"],
        "the role may not write secrets; no mapping subscribes to 'elsewhere'"
    );
    assert_eq!(
        rows(&db, "SELECT device, temp FROM readings ORDER BY device").await,
        vec!["d|1", "esp-1|21.25", "esp-2|19"],
        "the topic level is the device; the plain number the temperature"
    );
    assert_eq!(
        rows(&db, "SELECT site, state, load, at FROM status").await,
        vec!["north|running|0.75|2023-11-14 22:13:20.123", "north|running|0.75|2023-11-14 22:13:20.123"],
        "JSON paths, a time in milliseconds, and upsert = false keeps both"
    );
    assert_eq!(value(&db, "SELECT count(*) FROM secrets").await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_a_broker_restart_lose_no_acknowledged_message_and_write_none_twice() {
    const N: usize = 10_000;
    let mut broker = Broker::start();
    let mut server = start_chronos(&broker, None);
    let db = server.connect("admin").await;
    db.batch_execute("CREATE TABLE seqs (seq int PRIMARY KEY, at timestamptz)").await.unwrap();
    drop(db);
    let messages: Vec<_> = (0..N).map(|i| json("chronos/seqs", &format!(r#"{{"seq": {i}}}"#))).collect();
    let broker_port = broker.port;
    let publisher = tokio::spawn({
        let b = Broker { port: broker_port, dir: tempfile::tempdir().unwrap(), child: None };
        async move { publish(&b, messages, 4_000).await }
    });
    // kill -9 in the middle of the stream, then start again on the same data.
    let db = server.connect("admin").await;
    wait_for(&db, "SELECT count(*) FROM seqs", |v| v.parse::<usize>().unwrap() > 2_000).await;
    drop(db);
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    assert_eq!(publisher.await.unwrap(), N, "the broker acknowledged every message");
    let db = server.connect("admin").await;
    wait_for(&db, "SELECT count(*) FROM seqs", |v| v == N.to_string()).await;
    assert_eq!(value(&db, "SELECT count(DISTINCT seq) FROM seqs").await, N.to_string());
    assert_eq!(value(&db, "SELECT min(seq) || '-' || max(seq) FROM seqs").await, format!("0-{}", N - 1));
    // The broker restarts; the node reconnects, resubscribes and takes what follows.
    broker.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(metric(&metrics(&server), "chronos_mqtt_connected") == 1
        && metric(&metrics(&server), "chronos_mqtt_connection_errors_total") > 0)
    {
        assert!(Instant::now() < deadline, "chronos did not reconnect: {}", metrics(&server));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let more: Vec<_> = (N..N + 500).map(|i| json("chronos/seqs", &format!(r#"{{"seq": {i}}}"#))).collect();
    assert_eq!(publish(&broker, more, 0).await, 500);
    wait_for(&db, "SELECT count(*) FROM seqs", |v| v == (N + 500).to_string()).await;
    assert_eq!(value(&db, "SELECT count(*) FROM chronos_mqtt_rejected").await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_longer_than_every_queue_flows_through_small_batches() {
    // Batches of 10 and queues of 64: thousands of messages must pass through batches,
    // commits and acknowledgements again and again without any of them waiting on another.
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mqtt.json");
    std::fs::write(&config, r#"{"batch_messages": 10, "batch_wait_ms": 1}"#).unwrap();
    let server = start_chronos(&broker, Some(&config));
    let db = server.connect("admin").await;
    db.batch_execute("CREATE TABLE seqs (seq int PRIMARY KEY, at timestamptz)").await.unwrap();
    const N: usize = 3_000;
    let messages: Vec<_> = (0..N).map(|i| json("chronos/seqs", &format!(r#"{{"seq": {i}}}"#))).collect();
    assert_eq!(publish(&broker, messages, 0).await, N);
    wait_for(&db, "SELECT count(*) FROM seqs", |v| v == N.to_string()).await;
    let m = metrics(&server);
    assert!(metric(&m, "chronos_mqtt_batches_total") >= (N / 10) as u64, "{m}");
}
