//! The PostgreSQL wire protocol against a real `chronos` process, with tokio-postgres.

mod support;

use support::Server;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn simple_and_extended_queries_round_trip_values() {
    let server = Server::start();
    let client = server.connect("admin").await;
    client
        .batch_execute(
            "CREATE TABLE readings (id INT PRIMARY KEY, device TEXT NOT NULL, temp DOUBLE PRECISION, ok BOOLEAN, n BIGINT);
             INSERT INTO readings VALUES (1, 'a', 20.5, true, 10), (2, 'b', NULL, false, -3)",
        )
        .await
        .unwrap();
    // Extended protocol with binary results and typed parameters.
    client
        .execute(
            "INSERT INTO readings (id, device, temp, ok, n) VALUES ($1, $2, $3, $4, $5)",
            &[&3i32, &"c", &-1.25f64, &true, &9_000_000_000i64],
        )
        .await
        .unwrap();
    let rows = client
        .query("SELECT id, device, temp, ok, n FROM readings WHERE id >= $1 ORDER BY id", &[&2i32])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let (id, device, temp, ok, n): (i32, String, Option<f64>, bool, i64) =
        (rows[1].get(0), rows[1].get(1), rows[1].get(2), rows[1].get(3), rows[1].get(4));
    assert_eq!((id, device.as_str(), temp, ok, n), (3, "c", Some(-1.25), true, 9_000_000_000));
    assert_eq!(rows[0].get::<_, Option<f64>>(2), None);
    // Simple protocol returns text.
    let messages = client.simple_query("SELECT avg(temp), count(*) FROM readings").await.unwrap();
    let row = messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    let row = row.expect("a row");
    assert_eq!(row.get(0), Some("9.625"));
    assert_eq!(row.get(1), Some("3"));
}

#[tokio::test]
async fn check_constraints_hold_for_copy_and_parameters_and_show_the_failing_row() {
    use futures::SinkExt;
    let server = Server::start();
    let client = server.connect("admin").await;
    client
        .batch_execute("CREATE TABLE r (device TEXT, temp FLOAT8 CHECK (temp BETWEEN -50 AND 150), note TEXT)")
        .await
        .unwrap();
    let err = client.execute("INSERT INTO r VALUES ($1, $2, NULL)", &[&"a", &200.5f64]).await.unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code(), &SqlState::CHECK_VIOLATION);
    assert_eq!(db.message(), "new row for relation \"r\" violates check constraint \"r_temp_check\"");
    assert_eq!(db.detail(), Some("Failing row contains (a, 200.5, null)."));
    client.execute("INSERT INTO r VALUES ($1, $2, NULL)", &[&"a", &20.5f64]).await.unwrap();

    // A violating row fails the whole COPY and writes nothing.
    let sink = client.copy_in("COPY r FROM STDIN WITH (FORMAT csv)").await.unwrap();
    futures::pin_mut!(sink);
    let _ = sink.send(bytes::Bytes::from_static(b"b,10,ok\nb,-60,cold\n")).await;
    let err = sink.finish().await.unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code(), &SqlState::CHECK_VIOLATION);
    assert_eq!(db.detail(), Some("Failing row contains (b, -60, cold)."));
    let devices: Vec<String> =
        client.query("SELECT device FROM r ORDER BY device", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(devices, vec!["a"]);
    let def: String = client
        .query_one(
            "SELECT pg_get_constraintdef(oid, true) FROM pg_constraint WHERE conrelid = 'r'::regclass AND contype = 'c'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(def, "CHECK (temp BETWEEN -50 AND 150)");
}

#[tokio::test]
async fn bounded_columns_reject_long_parameters_and_copy_fields_and_compare_them_whole() {
    use futures::SinkExt;
    let server = Server::start();
    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE b (id INT PRIMARY KEY, v VARCHAR(3), c CHAR(3), n NUMERIC(5,2))").await.unwrap();
    let insert = "INSERT INTO b VALUES ($1, $2, $3, $4::text::numeric)";
    let err = client.execute(insert, &[&1i32, &"abcd", &"ab", &"1"]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::STRING_DATA_RIGHT_TRUNCATION), "{err:?}");
    let err = client.execute(insert, &[&1i32, &"abc", &"abcd", &"1"]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::STRING_DATA_RIGHT_TRUNCATION), "{err:?}");
    client.execute(insert, &[&1i32, &"abc", &"ab", &"1.235"]).await.unwrap();
    let row = client.query_one("SELECT v, c, n::text FROM b", &[]).await.unwrap();
    let (v, c, n): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((v.as_str(), c.as_str(), n.as_str()), ("abc", "ab ", "1.24"));
    // Compared, a parameter is not cut to the column's length.
    let count = |sql: &'static str, p: &'static str| {
        let client = &client;
        async move { client.query(sql, &[&p]).await.unwrap().len() }
    };
    assert_eq!(count("SELECT 1 FROM b WHERE v = $1", "abcd").await, 0);
    assert_eq!(count("SELECT 1 FROM b WHERE v = $1", "abc").await, 1);
    assert_eq!(count("SELECT 1 FROM b WHERE c = $1", "ab").await, 1, "CHAR pads a parameter too");
    assert_eq!(count("SELECT 1 FROM b WHERE c = $1", "abx").await, 0);
    // COPY stores as INSERT does: a field too long fails the COPY, which writes nothing.
    let sink = client.copy_in("COPY b (id, v) FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    let _ = sink.send(bytes::Bytes::from_static(b"2\tab\n3\tabcd\n")).await;
    let err = sink.finish().await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::STRING_DATA_RIGHT_TRUNCATION), "{err:?}");
    assert_eq!(client.query("SELECT id FROM b", &[]).await.unwrap().len(), 1);
}

/// The ParameterStatus messages among a round's replies, and the text of its data rows' first
/// columns, read up to ReadyForQuery.
fn statuses_and_first_columns(s: &mut std::net::TcpStream) -> (Vec<(String, String)>, Vec<String>) {
    let (mut statuses, mut columns) = (Vec::new(), Vec::new());
    loop {
        let (kind, body) = read_message(s);
        match kind {
            b'S' => {
                let mut parts = body.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
                statuses.push((parts.next().unwrap(), parts.next().unwrap()));
            }
            b'D' => {
                let len = i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
                columns.push(String::from_utf8_lossy(&body[6..6 + len]).into_owned());
            }
            b'Z' => return (statuses, columns),
            _ => {}
        }
    }
}

fn simple_query(s: &mut std::net::TcpStream, sql: &str) {
    use std::io::Write;
    let mut message = vec![b'Q'];
    message.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    message.extend_from_slice(sql.as_bytes());
    message.push(0);
    s.write_all(&message).unwrap();
}

/// A client's time zone (sent at start-up, as JDBC sends it, or set later) is the session's:
/// reported back, used to read and print timestamps in text, while binary values stay instants.
#[tokio::test]
async fn a_session_reads_and_prints_timestamps_in_its_time_zone() {
    let server = Server::start();
    let mut s = started(&server, b"TimeZone\0europe/berlin\0");
    let (statuses, _) = statuses_and_first_columns(&mut s);
    assert!(statuses.contains(&("TimeZone".into(), "Europe/Berlin".into())), "{statuses:?}");
    simple_query(&mut s, "SELECT '2024-07-01 12:00:00+00'::timestamptz, '2024-01-01 12:00'::timestamptz");
    let (_, rows) = statuses_and_first_columns(&mut s);
    assert_eq!(rows, ["2024-07-01 14:00:00+02"]);
    simple_query(&mut s, "SET TIME ZONE 'America/New_York'; SELECT '2024-07-01 12:00:00+00'::timestamptz");
    let (statuses, rows) = statuses_and_first_columns(&mut s);
    assert_eq!(statuses, [("TimeZone".to_string(), "America/New_York".to_string())]);
    assert_eq!(rows, ["2024-07-01 08:00:00-04"]);
    simple_query(&mut s, "SET TIME ZONE 'Mars/Olympus'");
    let (statuses, _) = statuses_and_first_columns(&mut s);
    assert!(statuses.is_empty(), "a failed SET changes nothing: {statuses:?}");
    // RESET returns to the zone sent at start-up, as a pool's DISCARD ALL expects.
    simple_query(&mut s, "RESET ALL; SELECT '2024-07-01 12:00:00+00'::timestamptz");
    let (statuses, rows) = statuses_and_first_columns(&mut s);
    assert_eq!(statuses, [("TimeZone".to_string(), "Europe/Berlin".to_string())]);
    assert_eq!(rows, ["2024-07-01 14:00:00+02"]);
    // DISCARD ALL, as a pool sends it between clients, too.
    simple_query(&mut s, "SET TIME ZONE 'Asia/Tokyo'");
    let _ = statuses_and_first_columns(&mut s);
    simple_query(&mut s, "DISCARD ALL; SHOW timezone");
    let (statuses, rows) = statuses_and_first_columns(&mut s);
    assert_eq!(statuses, [("TimeZone".to_string(), "Europe/Berlin".to_string())]);
    assert_eq!(rows, ["Europe/Berlin"]);
    // Without a zone at start-up, RESET ALL goes back to UTC and says so.
    let (mut plain, _) = logged_in(&server);
    simple_query(&mut plain, "SET TIME ZONE 'Europe/Berlin'; RESET ALL");
    let (statuses, _) = statuses_and_first_columns(&mut plain);
    assert_eq!(statuses, [("TimeZone".to_string(), "UTC".to_string())], "net change reported");

    // Extended protocol: a text parameter is read in the session's zone, a binary result is
    // the instant.
    let client = server.connect("admin").await;
    client.batch_execute("SET TIME ZONE 'Europe/Berlin'").await.unwrap();
    let row = client
        .query_one("SELECT extract(epoch FROM $1::text::timestamptz)::float8", &[&"2024-07-01 12:00"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, f64>(0), 1_719_828_000.0);
    let row = client.query_one("SELECT '2024-07-01 12:00'::timestamptz", &[]).await.unwrap();
    let at: std::time::SystemTime = row.get(0);
    assert_eq!(at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(), 1_719_828_000);
    // A statement prepared in one zone reads its literals in the zone it runs in (it is
    // planned again; PostgreSQL keeps the instant read at Parse).
    let statement = client.prepare("SELECT '2024-07-01 12:00'::timestamptz::text").await.unwrap();
    assert_eq!(client.query_one(&statement, &[]).await.unwrap().get::<_, String>(0), "2024-07-01 12:00:00+02");
    client.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    assert_eq!(client.query_one(&statement, &[]).await.unwrap().get::<_, String>(0), "2024-07-01 12:00:00+00");
}

#[tokio::test]
async fn errors_carry_sqlstates_and_the_session_survives() {
    let server = Server::start();
    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    client.execute("INSERT INTO t VALUES (1, 'x')", &[]).await.unwrap();
    let cases: &[(&str, &SqlState)] = &[
        ("INSERT INTO t VALUES (1, 'y')", &SqlState::UNIQUE_VIOLATION),
        ("SELEC 1", &SqlState::SYNTAX_ERROR),
        ("SELECT * FROM missing", &SqlState::UNDEFINED_TABLE),
        ("SELECT nope FROM t", &SqlState::UNDEFINED_COLUMN),
        ("SELECT 1 / 0", &SqlState::DIVISION_BY_ZERO),
        ("SELECT 2147483647 + 1", &SqlState::NUMERIC_VALUE_OUT_OF_RANGE),
        ("SELECT 'abc'::int", &SqlState::INVALID_TEXT_REPRESENTATION),
        ("INSERT INTO t VALUES (NULL, 'z')", &SqlState::NOT_NULL_VIOLATION),
    ];
    for (sql, state) in cases {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(err.code(), Some(*state), "{sql}: {err:?}");
    }
    let err = client.query("SELECT * FROM t WHERE id = $1", &[&"x"]).await.expect_err("text for int parameter");
    assert!(err.code().is_some() || err.to_string().contains("error"), "{err:?}");
    // A failed statement aborts the transaction until ROLLBACK.
    client.batch_execute("BEGIN").await.unwrap();
    client.batch_execute("INSERT INTO t VALUES (2, 'b')").await.unwrap();
    assert!(client.batch_execute("SELECT 1 / 0").await.is_err());
    let err = client.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    client.batch_execute("ROLLBACK").await.unwrap();
    let n: i64 = client.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "the rolled-back insert is gone");
}

#[tokio::test]
async fn transactions_are_atomic_and_isolated() {
    let server = Server::start();
    let a = server.connect("admin").await;
    let b = server.connect("admin").await;
    a.batch_execute("CREATE TABLE acct (id INT PRIMARY KEY, balance INT)").await.unwrap();
    a.batch_execute("INSERT INTO acct VALUES (1, 100), (2, 0)").await.unwrap();
    a.batch_execute("BEGIN; UPDATE acct SET balance = balance - 40 WHERE id = 1; UPDATE acct SET balance = balance + 40 WHERE id = 2").await.unwrap();
    // Not visible to others before COMMIT.
    let before: i32 = b.query_one("SELECT balance FROM acct WHERE id = 2", &[]).await.unwrap().get(0);
    assert_eq!(before, 0);
    a.batch_execute("COMMIT").await.unwrap();
    let after: i32 = b.query_one("SELECT balance FROM acct WHERE id = 2", &[]).await.unwrap().get(0);
    assert_eq!(after, 40);
    // Concurrent writers of the same row: the second committer gets 40001.
    a.batch_execute("BEGIN; UPDATE acct SET balance = 1 WHERE id = 1").await.unwrap();
    b.batch_execute("BEGIN; UPDATE acct SET balance = 2 WHERE id = 1").await.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    let err = b.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    let v: i32 = a.query_one("SELECT balance FROM acct WHERE id = 1", &[]).await.unwrap().get(0);
    assert_eq!(v, 1);
}

/// On a server (values come from blocks each node reserves through Raft), `TRUNCATE …
/// RESTART IDENTITY` starts a SERIAL column over, and the block drawn before is not used again.
#[tokio::test]
async fn truncate_restart_identity_starts_serial_columns_over() {
    let server = Server::start();
    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE ids (id SERIAL PRIMARY KEY, v TEXT)").await.unwrap();
    client.batch_execute("INSERT INTO ids (v) VALUES ('a'), ('b'), ('c')").await.unwrap();
    client.batch_execute("TRUNCATE ids").await.unwrap();
    let id: i32 = client.query_one("INSERT INTO ids (v) VALUES ('d') RETURNING id", &[]).await.unwrap().get(0);
    assert_eq!(id, 4);
    client.batch_execute("TRUNCATE ids RESTART IDENTITY").await.unwrap();
    let rows = client.query("INSERT INTO ids (v) VALUES ('e'), ('f') RETURNING id", &[]).await.unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [1, 2]);
}

#[tokio::test]
async fn read_only_role_cannot_write() {
    let server = Server::start();
    let admin = server.connect("admin").await;
    admin.batch_execute("CREATE TABLE r (id INT)").await.unwrap();
    let reader = server.connect("readonly").await;
    let err = reader.batch_execute("INSERT INTO r VALUES (1)").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    let n: i64 = reader.query_one("SELECT count(*) FROM r", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn execute_arguments_are_authorized_as_a_query_of_their_own() {
    let server = Server::start();
    let admin = server.connect("admin").await;
    admin
        .batch_execute("CREATE TABLE secret (s TEXT); INSERT INTO secret VALUES ('hush'); CREATE ROLE nobody LOGIN")
        .await
        .unwrap();
    let nobody = server.connect("nobody").await;
    nobody.batch_execute("PREPARE echo (text) AS SELECT $1").await.unwrap();
    // A subquery in an argument reads with the caller's privileges, like any query.
    let err = nobody.simple_query("EXECUTE echo((SELECT max(s) FROM secret))").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    let rows = nobody.simple_query("EXECUTE echo('fine')").await.unwrap();
    assert!(rows.iter().any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("fine"))));
    // And an argument that writes is refused in a read-only transaction.
    admin.batch_execute("CREATE SEQUENCE counter; PREPARE echo (text) AS SELECT $1; BEGIN READ ONLY").await.unwrap();
    let err = admin.simple_query("EXECUTE echo(nextval('counter')::text)").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION));
    admin.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn garbage_and_abrupt_clients_do_not_hurt_the_server() {
    use std::io::{Read, Write};
    let server = Server::start();
    // Garbage instead of a startup packet, an absurd length, a truncated message.
    for payload in [&b"GET / HTTP/1.1\r\n\r\n"[..], &[0xff, 0xff, 0xff, 0xff, 0, 3, 0, 0], &[0, 0, 0, 9, 0, 3]] {
        let mut s = std::net::TcpStream::connect(server.pg_addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let _ = s.write_all(payload);
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
    }
    // A client that vanishes after sending a query.
    {
        let client = server.connect("admin").await;
        let fut = client.simple_query("SELECT 1");
        drop(fut);
        drop(client);
    }
    let client = server.connect("admin").await;
    let v: i32 = client.query_one("SELECT 41 + 1", &[]).await.unwrap().get(0);
    assert_eq!(v, 42);
}

#[tokio::test]
async fn unknown_database_is_refused() {
    let server = Server::start();
    let url = format!("host=127.0.0.1 port={} user=admin dbname=nosuchdb", server.pg_addr.port());
    let err = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.err().expect("refused");
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME));
}

#[tokio::test]
async fn copy_in_and_out_in_text_and_csv() {
    use futures::SinkExt;
    let server = Server::start();
    let client = server.connect("admin").await;
    client
        .batch_execute("CREATE TABLE m (ts TIMESTAMPTZ, device TEXT, temp DOUBLE PRECISION, PRIMARY KEY (device, ts))")
        .await
        .unwrap();
    let sink = client.copy_in("COPY m FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    let mut data = String::new();
    for i in 0..2500 {
        data.push_str(&format!(
            "2024-01-01 00:{:02}:{:02}+00\tdev-{}\t{}\n",
            (i / 60) % 60,
            i % 60,
            i / 3600 + (i % 3),
            i as f64 / 4.0
        ));
    }
    // Send in odd-sized chunks so rows straddle CopyData messages.
    for chunk in data.as_bytes().chunks(777) {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    let n = sink.finish().await.unwrap();
    assert_eq!(n, 2500);
    let count: i64 = client.query_one("SELECT count(*) FROM m", &[]).await.unwrap().get(0);
    assert_eq!(count, 2500);

    let sink = client.copy_in("COPY m (device, ts) FROM STDIN WITH (FORMAT csv, HEADER true)").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"device,ts\n\"dev,x\",2024-02-01T00:00:00Z\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1);
    let temp: Option<f64> = client.query_one("SELECT temp FROM m WHERE device = 'dev,x'", &[]).await.unwrap().get(0);
    assert_eq!(temp, None);

    // A bad row fails the whole COPY and writes nothing.
    let sink = client.copy_in("COPY m FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    let _ = sink
        .send(bytes::Bytes::from_static(b"2024-03-01 00:00:00+00\tok\t1\n2024-03-01 00:00:00+00\tbad\tnot-a-number\n"))
        .await;
    let err = sink.finish().await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_TEXT_REPRESENTATION), "{err:?}");
    let count: i64 = client.query_one("SELECT count(*) FROM m WHERE ts >= '2024-03-01'", &[]).await.unwrap().get(0);
    assert_eq!(count, 0);

    let stream = client.copy_out("COPY (SELECT device, temp FROM m WHERE device = 'dev-0' ORDER BY ts LIMIT 2) TO STDOUT WITH (FORMAT csv, HEADER true)").await.unwrap();
    futures::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(String::from_utf8(out).unwrap(), "device,temp\ndev-0,0\ndev-0,0.75\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_stops_a_running_statement() {
    let server = Server::start();
    let client = server.connect("admin").await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let started = std::time::Instant::now();
    let err = client
        .simple_query("SELECT count(*) FROM generate_series(1, 200000000) AS g")
        .await
        .expect_err("a two-billion-row count is cancelled long before it ends");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    canceller.await.unwrap().unwrap();
    // The session is usable afterwards.
    let v: i32 = client.query_one("SELECT 7", &[]).await.unwrap().get(0);
    assert_eq!(v, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_extra_clients_and_recovers() {
    let server = Server::start();
    let mut clients = Vec::new();
    let mut refused = 0;
    for _ in 0..130 {
        match tokio_postgres::connect(&server.url("admin"), tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                clients.push(client);
            }
            Err(e) => {
                assert_eq!(e.code(), Some(&SqlState::TOO_MANY_CONNECTIONS), "{e:?}");
                refused += 1;
            }
        }
    }
    assert_eq!(clients.len(), 100, "the default limit is 100 connections");
    assert_eq!(refused, 30);
    let v: i64 = clients[99].query_one("SELECT count(*) FROM generate_series(1, 10) AS g", &[]).await.unwrap().get(0);
    assert_eq!(v, 10);
    drop(clients);
    // Slots are released when clients disconnect.
    let mut ok = false;
    for _ in 0..50 {
        if let Ok((client, connection)) = tokio_postgres::connect(&server.url("admin"), tokio_postgres::NoTls).await {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            ok = client.simple_query("SELECT 1").await.is_ok();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "a new connection works after the others closed");
}

#[tokio::test]
async fn a_ten_megabyte_query_is_handled() {
    let server = Server::start();
    let client = server.connect("admin").await;
    let big = "x".repeat(10 * 1024 * 1024);
    let sql = format!("SELECT length('{big}')");
    let rows = client.simple_query(&sql).await.unwrap();
    let row = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
        _ => None,
    });
    assert_eq!(row.flatten().as_deref(), Some("10485760"));
    let v: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(v, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_cancels_long_statements() {
    let server = Server::start();
    let client = server.connect("admin").await;
    client.batch_execute("SET statement_timeout = '300ms'").await.unwrap();
    let started = std::time::Instant::now();
    let err = client
        .simple_query("SELECT count(*) FROM generate_series(1, 200000000) AS g")
        .await
        .expect_err("the statement runs past its timeout");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // Short statements still run, and the timeout can be turned off.
    let n: i64 = client.query_one("SELECT count(*) FROM generate_series(1, 1000) AS g", &[]).await.unwrap().get(0);
    assert_eq!(n, 1000);
    client.batch_execute("SET statement_timeout = 0").await.unwrap();
    let n: i64 = client.query_one("SELECT count(*) FROM generate_series(1, 100000) AS g", &[]).await.unwrap().get(0);
    assert_eq!(n, 100000);
}

/// Reads backend messages until ReadyForQuery; returns their type bytes.
/// The next backend message: its type and body.
fn read_message(s: &mut std::net::TcpStream) -> (u8, Vec<u8>) {
    use std::io::Read;
    let mut head = [0u8; 5];
    s.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).unwrap();
    (head[0], body)
}

fn read_until_ready(s: &mut std::net::TcpStream) -> Vec<u8> {
    let mut types = Vec::new();
    loop {
        let (kind, _) = read_message(s);
        types.push(kind);
        if kind == b'Z' {
            return types;
        }
    }
}

/// A raw connection that sent a startup packet for `admin` with `parameters` (name, NUL,
/// value, NUL, …) besides the user and database; its replies are left unread.
fn started(server: &Server, parameters: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(server.pg_addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut startup = 196608u32.to_be_bytes().to_vec();
    startup.extend_from_slice(b"user\0admin\0database\0chronos\0");
    startup.extend_from_slice(parameters);
    startup.push(0);
    let mut packet = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&startup);
    s.write_all(&packet).unwrap();
    s
}

/// A raw connection logged in as `admin` (trust), with the types of the messages that
/// answered the startup packet.
fn logged_in(server: &Server) -> (std::net::TcpStream, Vec<u8>) {
    let mut s = started(server, b"");
    let types = read_until_ready(&mut s);
    (s, types)
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn describe_of_a_statement_without_rows_is_nodata() {
    use std::io::Write;
    let server = Server::start();
    server.connect("admin").await.batch_execute("CREATE TABLE nd (a INT, b TEXT)").await.unwrap();
    let (mut s, types) = logged_in(&server);
    assert_eq!(types.first(), Some(&b'R'));

    // Parse a named INSERT with parameters, Describe it, Sync: PostgreSQL answers
    // ParseComplete, ParameterDescription, NoData.
    let mut out = message(b'P', b"s1\0INSERT INTO nd VALUES ($1, $2)\0\0\0");
    out.extend(message(b'D', b"Ss1\0"));
    out.extend(message(b'S', b""));
    s.write_all(&out).unwrap();
    assert_eq!(read_until_ready(&mut s), vec![b'1', b't', b'n', b'Z']);

    // A SELECT still gets its RowDescription.
    let mut out = message(b'P', b"s2\0SELECT a FROM nd WHERE a = $1\0\0\0");
    out.extend(message(b'D', b"Ss2\0"));
    out.extend(message(b'S', b""));
    s.write_all(&out).unwrap();
    assert_eq!(read_until_ready(&mut s), vec![b'1', b't', b'T', b'Z']);
}

#[tokio::test]
async fn idle_connections_are_closed_past_their_timeouts() {
    let server = Server::start_in(tempfile::tempdir().unwrap(), &[("CHRONOS_IDLE_SESSION_TIMEOUT", "2s")]);
    let admin = server.connect("admin").await;
    admin.batch_execute("CREATE TABLE idle_t (id INT PRIMARY KEY)").await.unwrap();
    let shown: String = admin.query_one("SHOW idle_session_timeout", &[]).await.unwrap().get(0);
    assert_eq!(shown, "2000");

    // Idle inside a transaction block: closed, and the transaction rolled back.
    let in_txn = server.connect("admin").await;
    in_txn
        .batch_execute("SET idle_in_transaction_session_timeout = '300ms'; BEGIN; INSERT INTO idle_t VALUES (1)")
        .await
        .unwrap();
    // Idle outside a transaction with its own, shorter limit: closed.
    let idle = server.connect("admin").await;
    idle.batch_execute("SET idle_session_timeout = 300").await.unwrap();
    // No limit: stays open.
    let patient = server.connect("admin").await;
    patient.batch_execute("SET idle_session_timeout = 0").await.unwrap();

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(in_txn.batch_execute("COMMIT").await.is_err(), "idle-in-transaction connection still open");
    assert!(idle.batch_execute("SELECT 1").await.is_err(), "idle connection still open");
    let n: i64 = patient.query_one("SELECT count(*) FROM idle_t", &[]).await.unwrap().get(0);
    assert_eq!(n, 0, "the abandoned transaction's row is visible");
    patient.batch_execute("INSERT INTO idle_t VALUES (1)").await.unwrap();

    // The server-wide default (2 s) applies to sessions that did not change it.
    admin.batch_execute("SELECT 1").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    assert!(admin.batch_execute("SELECT 1").await.is_err(), "server default idle_session_timeout ignored");
    assert!(patient.batch_execute("SELECT 1").await.is_ok());
}

/// Replies are held while more of the client's messages are at hand, never while the server
/// waits for it: a client that sends Parse, Bind and Execute and waits before its Sync gets
/// their replies, and the Sync's after it.
#[test]
fn replies_reach_a_client_that_waits_before_its_sync() {
    use std::io::Write;
    let server = Server::start();
    let (mut s, _) = logged_in(&server);
    let mut round = message(b'P', b"\0SELECT 41 + 1\0\0\0");
    round.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
    round.extend(message(b'E', b"\0\0\0\0\0"));
    s.write_all(&round).unwrap();
    let mut types = Vec::new();
    while types.last() != Some(&b'C') {
        let (kind, body) = read_message(&mut s);
        if kind == b'D' {
            assert!(body.ends_with(b"42"), "{body:?}");
        }
        types.push(kind);
    }
    assert_eq!(types, b"12DC");
    s.write_all(&message(b'S', b"")).unwrap();
    assert_eq!(read_until_ready(&mut s), b"Z");
    // A whole round in one packet, and the next one's start in the same packet.
    let mut rounds = message(b'P', b"\0SELECT 1\0\0\0");
    rounds.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
    rounds.extend(message(b'E', b"\0\0\0\0\0"));
    rounds.extend(message(b'S', b""));
    rounds.extend(message(b'Q', b"SELECT 2\0"));
    s.write_all(&rounds).unwrap();
    assert_eq!(read_until_ready(&mut s), b"12DCZ");
    assert_eq!(read_until_ready(&mut s), b"TDCZ");
}

/// Sends one input from fuzz/regressions/frontend_messages: the first byte says where the
/// connection is (`01`: before the startup packet, `02`: logged in and ready).
fn replay(server: &Server, input: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = match input[0] {
        2 => logged_in(server).0,
        _ => std::net::TcpStream::connect(server.pg_addr).unwrap(),
    };
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let rest = &input[1..];
    let _ = s.write_all(rest);
    // Read until the server answers and closes (or gives up waiting).
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        answer.extend_from_slice(&buf[..n]);
    }
    answer
}

/// The SQLSTATEs of the ErrorResponses in a stream of backend messages.
fn error_codes(mut answer: &[u8]) -> Vec<String> {
    let mut codes = Vec::new();
    while answer.len() >= 5 {
        let len = u32::from_be_bytes([answer[1], answer[2], answer[3], answer[4]]) as usize;
        let Some(body) = answer.get(5..1 + len) else { break };
        if answer[0] == b'E' {
            for field in body.split(|b| *b == 0) {
                if let Some(code) = field.strip_prefix(b"C") {
                    codes.push(String::from_utf8_lossy(code).to_string());
                }
            }
        }
        answer = &answer[1 + len..];
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzer_found_protocol_inputs_close_only_their_connection() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/frontend_messages");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    inputs.sort();
    assert!(inputs.len() >= 10, "regression inputs missing in {}", dir.display());
    let trusting = Server::start();
    let scram = Server::start_in(tempfile::tempdir().unwrap(), &[("CHRONOS_AUTH_TOKEN_ADMIN", "secret")]);
    for server in [&trusting, &scram] {
        for path in &inputs {
            let input = std::fs::read(path).unwrap();
            if input[0] == 2 && server.pg_addr == scram.pg_addr {
                continue; // logging in needs the SCRAM exchange; covered by the trusting server
            }
            let answer = tokio::task::block_in_place(|| replay(server, &input));
            let codes = error_codes(&answer);
            // Refused as a protocol violation; a trusting server may refuse the startup
            // packet's unknown user first.
            let trusting_startup = input[0] == 1 && server.pg_addr == trusting.pg_addr;
            // The one well-formed input binds a statement it never prepared, as PostgreSQL
            // reports first.
            let well_formed = path.ends_with("bind-fewer-format-codes-than-parameters");
            assert!(
                codes
                    .iter()
                    .any(|c| c == "08P01" || (trusting_startup && c == "28000") || (well_formed && c == "26000")),
                "{}: {codes:?}",
                path.display()
            );
        }
    }
    // Both servers still serve.
    let v: i32 = trusting.connect("admin").await.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(v, 1);
    let url = format!("{} password=secret", scram.url("admin"));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let v: i32 = client.query_one("SELECT 2", &[]).await.unwrap().get(0);
    assert_eq!(v, 2);
}

/// Grafana's gap-filled panels: the range comes from bound parameters in the WHERE clause.
#[tokio::test]
async fn gapfill_takes_its_range_from_parameters() {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let server = Server::start();
    let client = server.connect("admin").await;
    client
        .batch_execute(
            "CREATE TABLE temps (device TEXT, ts TIMESTAMPTZ, temp DOUBLE PRECISION, PRIMARY KEY (device, ts));
             INSERT INTO temps VALUES ('a', '2024-01-01 00:10+00', 10), ('a', '2024-01-01 03:20+00', 40),
                                      ('b', '2024-01-01 01:00+00', 7)",
        )
        .await
        .unwrap();
    let at = |hours: u64| UNIX_EPOCH + Duration::from_secs(1_704_067_200 + hours * 3600);
    let rows = client
        .query(
            "SELECT time_bucket_gapfill('1 hour', ts) AS h, device, avg(temp), locf(avg(temp)), interpolate(avg(temp))
             FROM temps WHERE ts >= $1 AND ts < $2 GROUP BY h, device ORDER BY device, h",
            &[&at(0), &at(5)],
        )
        .await
        .unwrap();
    type Bucket = (SystemTime, String, Option<f64>, Option<f64>, Option<f64>);
    let got: Vec<Bucket> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    let a = |h, avg, locf, ip| (at(h), "a".to_string(), avg, locf, ip);
    let b = |h, avg, locf| (at(h), "b".to_string(), avg, locf, avg);
    assert_eq!(
        got,
        vec![
            a(0, Some(10.0), Some(10.0), Some(10.0)),
            a(1, None, Some(10.0), Some(20.0)),
            a(2, None, Some(10.0), Some(30.0)),
            a(3, Some(40.0), Some(40.0), Some(40.0)),
            a(4, None, Some(40.0), None),
            b(0, None, None),
            b(1, Some(7.0), Some(7.0)),
            b(2, None, Some(7.0)),
            b(3, None, Some(7.0)),
            b(4, None, Some(7.0)),
        ]
    );
    // A NULL bound fails the statement, and the session goes on.
    let err = client
        .query(
            "SELECT time_bucket_gapfill('1 hour', ts), avg(temp) FROM temps WHERE ts >= $1 AND ts < $2 GROUP BY 1",
            &[&at(0), &None::<SystemTime>],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PARAMETER_VALUE));
    assert_eq!(client.query("SELECT 1", &[]).await.unwrap().len(), 1);
}

/// A statement prepared once runs its Parse-time plan only while the tables it reads are
/// unchanged: dropped and created again, indexed, given a column, it reads and writes the
/// table as it now is.
#[tokio::test]
async fn prepared_statements_follow_the_tables_they_read() {
    let server = Server::start();
    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a')").await.unwrap();
    let select = client.prepare("SELECT v FROM t WHERE id = $1").await.unwrap();
    let insert = client.prepare("INSERT INTO t (id, v) VALUES ($1, $2)").await.unwrap();
    let v = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>();
    assert_eq!(v(client.query(&select, &[&1i32]).await.unwrap()), ["a"]);
    client.execute(&insert, &[&2i32, &"b"]).await.unwrap();
    assert_eq!(v(client.query(&select, &[&2i32]).await.unwrap()), ["b"]);

    client
        .batch_execute("DROP TABLE t; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'new')")
        .await
        .unwrap();
    assert_eq!(v(client.query(&select, &[&1i32]).await.unwrap()), ["new"]);
    assert!(client.query(&select, &[&2i32]).await.unwrap().is_empty());
    client.execute(&insert, &[&2i32, &"c"]).await.unwrap();
    let all = client.query("SELECT v FROM t ORDER BY id", &[]).await.unwrap();
    assert_eq!(v(all), ["new", "c"]);

    client.batch_execute("CREATE INDEX t_v ON t (v); ALTER TABLE t ADD COLUMN w INT DEFAULT 7").await.unwrap();
    client.execute(&insert, &[&3i32, &"d"]).await.unwrap();
    let w: i32 = client.query_one("SELECT w FROM t WHERE id = 3", &[]).await.unwrap().get(0);
    assert_eq!(w, 7);
    let by_index = client.prepare("SELECT id FROM t WHERE v = $1").await.unwrap();
    let id: i32 = client.query_one(&by_index, &[&"d"]).await.unwrap().get(0);
    assert_eq!(id, 3);
    client.batch_execute("DROP INDEX t_v; DELETE FROM t WHERE id = 3").await.unwrap();
    assert!(client.query(&by_index, &[&"d"]).await.unwrap().is_empty());
}

/// A transaction whose prepared INSERT reused its plan conflicts with an ALTER TABLE that
/// committed after it began, as one that planned the INSERT again would.
#[tokio::test]
async fn a_reused_plan_conflicts_with_a_concurrent_alter_table() {
    let server = Server::start();
    let a = server.connect("admin").await;
    let b = server.connect("admin").await;
    a.batch_execute("CREATE TABLE t2 (id INT PRIMARY KEY, v INT)").await.unwrap();
    let insert = a.prepare("INSERT INTO t2 (id, v) VALUES ($1, $2)").await.unwrap();
    a.execute(&insert, &[&1i32, &1i32]).await.unwrap();
    a.batch_execute("BEGIN").await.unwrap();
    a.execute(&insert, &[&2i32, &2i32]).await.unwrap();
    b.batch_execute("ALTER TABLE t2 ADD COLUMN w INT DEFAULT 5").await.unwrap();
    let err = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    a.execute(&insert, &[&2i32, &2i32]).await.unwrap();
    let rows = a.query("SELECT id, w FROM t2 ORDER BY id", &[]).await.unwrap();
    let got: Vec<(i32, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [(1, 5), (2, 5)]);
}

/// Point reads by primary key run whole on the connection's task; they see the transaction's
/// own writes, and their errors fail the statement (and the open transaction) as any other's.
#[tokio::test]
async fn point_reads_see_their_transaction_and_fail_cleanly() {
    let server = Server::start();
    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE kv (id INT PRIMARY KEY, v INT); INSERT INTO kv VALUES (1, 10)").await.unwrap();
    let read = client.prepare("SELECT 100 / v FROM kv WHERE id = $1").await.unwrap();
    let value = |row: tokio_postgres::Row| row.get::<_, i32>(0);
    assert_eq!(value(client.query_one(&read, &[&1i32]).await.unwrap()), 10);
    client.batch_execute("UPDATE kv SET v = 0").await.unwrap();
    let err = client.query_one(&read, &[&1i32]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));

    client.batch_execute("BEGIN; UPDATE kv SET v = 5").await.unwrap();
    assert_eq!(value(client.query_one(&read, &[&1i32]).await.unwrap()), 20);
    client.batch_execute("UPDATE kv SET v = 0").await.unwrap();
    let err = client.query_one(&read, &[&1i32]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    let err = client.query_one(&read, &[&1i32]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    client.batch_execute("ROLLBACK").await.unwrap();
    client.batch_execute("UPDATE kv SET v = 4").await.unwrap();
    assert_eq!(value(client.query_one(&read, &[&1i32]).await.unwrap()), 25);
}

/// A kept plan is the one an execution would make: a parameter whose type Parse inferred from
/// a `varchar(3)` column compares whole, as in PostgreSQL, and is not cut to the column's
/// length.
#[tokio::test]
async fn a_kept_plan_binds_inferred_parameters_as_declared_ones() {
    let server = Server::start();
    let client = server.connect("admin").await;
    client
        .batch_execute("CREATE TABLE codes (code VARCHAR(3) PRIMARY KEY); INSERT INTO codes VALUES ('abc')")
        .await
        .unwrap();
    let select = client.prepare("SELECT code FROM codes WHERE code = $1").await.unwrap();
    for _ in 0..2 {
        assert!(client.query(&select, &[&"abcd"]).await.unwrap().is_empty());
        assert_eq!(client.query(&select, &[&"abc"]).await.unwrap().len(), 1);
    }
}
