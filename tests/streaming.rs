//! Query results stream to the client as they are produced, over both protocols, against a
//! real `chronos` process: every row arrives once and in order, an error part-way through
//! ends the result with that error, and a client that goes away stops the statement.

mod support;

use futures::{pin_mut, TryStreamExt};
use support::Server;

fn code(e: &tokio_postgres::Error) -> &str {
    e.code().map(|c| c.code()).unwrap_or("none")
}

#[tokio::test]
async fn large_results_arrive_whole_over_both_protocols() {
    let server = Server::start();
    let client = server.connect("admin").await;
    let n = 300_000i64;
    // Simple protocol: the last statement of a string streams, the ones before it do not.
    let messages =
        client.simple_query(&format!("SELECT 1 AS one; SELECT i FROM generate_series(1, {n}) i")).await.unwrap();
    let rows: Vec<i64> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap().parse().unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len() as i64, n + 1);
    assert_eq!(rows[0], 1);
    assert!(rows[1..].iter().zip(1..).all(|(v, i)| *v == i), "rows out of order");
    let completions: Vec<u64> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::CommandComplete(c) => Some(*c),
            _ => None,
        })
        .collect();
    assert_eq!(completions, vec![1, n as u64]);

    // Extended protocol, text and binary results.
    let rows = client.query("SELECT i, i * 2 AS d FROM generate_series(1, $1::int8) i", &[&n]).await.unwrap();
    assert_eq!(rows.len() as i64, n);
    let sum: i64 = rows.iter().map(|r| r.get::<_, i64>(1)).sum();
    assert_eq!(sum, n * (n + 1));

    // A portal fetched in parts (Execute with a row limit) still suspends and resumes.
    let mut client = client;
    let txn = client.transaction().await.unwrap();
    let portal = txn.bind("SELECT i FROM generate_series(1, 1000) i", &[]).await.unwrap();
    let mut seen = 0;
    loop {
        let part = txn.query_portal(&portal, 300).await.unwrap();
        if part.is_empty() {
            break;
        }
        for row in &part {
            seen += 1;
            assert_eq!(row.get::<_, i32>(0), seen);
        }
    }
    assert_eq!(seen, 1000);
    txn.commit().await.unwrap();
}

#[tokio::test]
async fn an_error_part_way_ends_the_result_and_the_session_goes_on() {
    let server = Server::start();
    let client = server.connect("admin").await;
    let failing = "SELECT 1 / (i - 5000) FROM generate_series(1, 10000) i";
    let err = client.simple_query(failing).await.unwrap_err();
    assert_eq!(code(&err), "22012", "{err:?}");
    let err = client.query(failing, &[]).await.unwrap_err();
    assert_eq!(code(&err), "22012", "{err:?}");
    // The rows before the error did arrive, in order.
    let stream = client.query_raw(failing, Vec::<i32>::new()).await.unwrap();
    pin_mut!(stream);
    let mut before = 0;
    let err = loop {
        match stream.try_next().await {
            Ok(Some(_)) => before += 1,
            Ok(None) => panic!("the result ended without its error"),
            Err(e) => break e,
        }
    };
    assert_eq!(code(&err), "22012");
    assert!(before > 0 && before < 5000, "{before} rows before the error");
    let n: i64 = client.query_one("SELECT count(*) FROM generate_series(1, 10)", &[]).await.unwrap().get(0);
    assert_eq!(n, 10);

    // Inside a transaction block the error fails the block, as any error does.
    client.batch_execute("BEGIN").await.unwrap();
    assert!(client.simple_query(failing).await.is_err());
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(code(&err), "25P02", "{err:?}");
    client.batch_execute("ROLLBACK").await.unwrap();

    // statement_timeout stops a long streaming query.
    client.batch_execute("SET statement_timeout = '300ms'").await.unwrap();
    let err = client.simple_query("SELECT i FROM generate_series(1, 1000000000) i").await.unwrap_err();
    assert_eq!(code(&err), "57014", "{err:?}");
    // It also stops long work on a single row, and counts from the start of each statement
    // (a SET earlier in the same query string applies to the statements after it).
    for sql in [
        "SELECT length(regexp_replace(repeat('ab', 20000000), 'a', 'x', 'g'))",
        "SELECT count(*) FROM regexp_split_to_table(repeat('ab', 20000000), 'a')",
        "SELECT count(*) FROM regexp_matches(repeat('ab', 20000000), 'a', 'g')",
    ] {
        let started = std::time::Instant::now();
        let err = client.simple_query(&format!("SET statement_timeout = '200ms'; {sql}")).await.unwrap_err();
        assert_eq!(code(&err), "57014", "{sql}: {err:?}");
        let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
        assert!(message.contains("statement timeout"), "{message}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{sql} ran {:?}", started.elapsed());
    }
    client.batch_execute("SET statement_timeout = 0").await.unwrap();
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn a_client_that_goes_away_stops_its_statement() {
    let server = Server::start();
    let admin = server.connect("admin").await;
    {
        let (client, connection) = tokio_postgres::connect(&server.url("admin"), tokio_postgres::NoTls).await.unwrap();
        let driver = tokio::spawn(connection);
        // A huge result, read a little and abandoned.
        let stream = client.query_raw("SELECT i FROM generate_series(1, 2000000000) i", Vec::<i32>::new()).await;
        let stream = stream.unwrap();
        pin_mut!(stream);
        for _ in 0..10 {
            stream.try_next().await.unwrap().unwrap();
        }
        driver.abort();
    }
    let one: i32 = admin.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    // The abandoned statement stopped: a graceful shutdown, which waits for running
    // statements, finishes at once instead of after the two billion rows.
    let mut server = server;
    let started = std::time::Instant::now();
    let status = server.terminate().expect("the server was running");
    assert!(status.success(), "{status:?} after {:?}", started.elapsed());
}
