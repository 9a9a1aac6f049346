//! TTL: rows older than their table's TTL (measured from the newer of the clock and the
//! newest row) are deleted by the server on its own, with their index entries, and stay
//! deleted after a restart.

mod support;

use std::time::{Duration, Instant};
use support::Server;

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Waits up to 20 s for the count `sql` returns to come down to `at_most`, else fails with
/// `what`.
/// A server in a fresh directory that expires rows every second, and a client of it.
async fn expiring_every_second() -> (Server, tokio_postgres::Client) {
    let server = Server::start_in(tempfile::tempdir().unwrap(), &[("CHRONOS_TTL_INTERVAL_SECS", "1")]);
    let client = server.connect("admin").await;
    (server, client)
}

async fn wait_for_count(client: &tokio_postgres::Client, sql: &str, at_most: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(client, sql).await > at_most {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_past_the_ttl_expire_and_stay_expired() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(data, &[("CHRONOS_TTL_INTERVAL_SECS", "1")]);
    let client = server.connect("admin").await;
    client
        .batch_execute(
            "CREATE TABLE readings (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, PRIMARY KEY (device, ts)) WITH (ttl = '1 hour');
             CREATE INDEX readings_temp ON readings (temp);
             -- Per device, one reading now and two more than an hour older than that.
             INSERT INTO readings SELECT 'dev-' || d, now() - h * interval '61 minutes', d * 10 + h
               FROM generate_series(1, 5) d, generate_series(0, 2) h;
             -- Future-dated rows only: the clock, not the newest row, sets the cutoff here.
             CREATE TABLE future (ts TIMESTAMP PRIMARY KEY, v INT) WITH TTL=1d;
             INSERT INTO future VALUES ('2100-01-01', 1), ('2099-12-31', 2);",
        )
        .await
        .unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM readings").await, 15);

    wait_for_count(&client, "SELECT count(*) FROM readings", 5, "rows past the ttl were not expired").await;
    // Exactly the recent ones are left, and the index holds no entry of a deleted row.
    assert_eq!(count(&client, "SELECT count(*) FROM readings WHERE ts > now() - interval '1 hour'").await, 5);
    assert_eq!(count(&client, "SELECT count(*) FROM readings WHERE temp >= 0").await, 5);
    assert_eq!(count(&client, "SELECT count(*) FROM readings WHERE temp = 12").await, 0);
    assert_eq!(count(&client, "SELECT count(*) FROM readings WHERE temp = 10").await, 1);
    assert_eq!(count(&client, "SELECT count(*) FROM future").await, 2, "rows in the future expired");
    // The summaries the window aggregates read follow the expiry.
    let windows = "SELECT count_24h(*), sum_7d(temp), max_7d(temp) FROM readings";
    let row = client.query_one(windows, &[]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, f64>(1), row.get::<_, f64>(2)), (5, 150.0, 50.0));
    let metrics = support::http_get(server.http_addr, "/metrics").unwrap();
    assert!(metrics.contains("chronos_ttl_expired_rows_total 10"), "{metrics}");

    // A row whose time is far from the rest: the newest row sets the cutoff when the clock
    // runs ahead of the data, so old data of a table that stopped receiving rows is kept.
    client
        .batch_execute(
            "CREATE TABLE archive (ts TIMESTAMPTZ PRIMARY KEY, v INT) WITH (ttl = '1 day');
             INSERT INTO archive VALUES ('2001-01-01Z', 1), ('2001-01-01 12:00Z', 2), ('2000-12-30Z', 3);",
        )
        .await
        .unwrap();
    wait_for_count(&client, "SELECT count(*) FROM archive", 2, "the archive's old row was not expired").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count(&client, "SELECT count(*) FROM archive").await, 2);

    // Expired rows do not come back after a restart.
    drop(client);
    server.restart();
    let client = server.connect("admin").await;
    assert_eq!(count(&client, "SELECT count(*) FROM readings").await, 5);
    assert_eq!(count(&client, "SELECT count(*) FROM archive").await, 2);
    let row = client.query_one(windows, &[]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, f64>(1), row.get::<_, f64>(2)), (5, 150.0, 50.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_needs_a_positive_interval_and_a_time_column() {
    let server = Server::start();
    let client = server.connect("admin").await;
    for (sql, code) in [
        ("CREATE TABLE t1 (id INT PRIMARY KEY) WITH (ttl = '1 day')", "22023"),
        ("CREATE TABLE t2 (ts TIMESTAMP PRIMARY KEY) WITH (ttl = '-1 day')", "22023"),
        ("CREATE TABLE t3 (ts TIMESTAMP PRIMARY KEY) WITH (ttl = 'soon')", "22007"),
    ] {
        let err = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some(code), "{sql}: {err:?}");
    }
    client.batch_execute("SELECT 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_sets_and_resets_the_ttl() {
    let (_server, client) = expiring_every_second().await;
    client
        .batch_execute(
            "CREATE TABLE m (device TEXT, ts TIMESTAMPTZ, v FLOAT8, PRIMARY KEY (device, ts));
             INSERT INTO m SELECT 'd', now() - h * interval '2 hours', h FROM generate_series(0, 3) h;",
        )
        .await
        .unwrap();
    let options = "SELECT coalesce(reloptions::text, '') FROM pg_class WHERE relname = 'm'";
    let text = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, String>(0) }
    };
    assert_eq!(text(options).await, "");

    client.batch_execute("ALTER TABLE m SET (ttl = '3 hours')").await.unwrap();
    assert_eq!(text(options).await, "{\"ttl=3 hours\"}");
    wait_for_count(&client, "SELECT count(*) FROM m", 2, "rows past a ttl set by ALTER TABLE were not expired").await;
    assert_eq!(count(&client, "SELECT count(*) FROM m WHERE ts > now() - interval '3 hours'").await, 2);

    // Without a ttl nothing expires any more.
    client.batch_execute("ALTER TABLE m RESET (ttl)").await.unwrap();
    assert_eq!(text(options).await, "");
    client.batch_execute("INSERT INTO m VALUES ('d', now() - interval '1 year', 0)").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(count(&client, "SELECT count(*) FROM m").await, 3);

    // Bad values and a ttl's time column are refused; the table keeps its definition.
    client.batch_execute("ALTER TABLE m SET (ttl = '7d', fillfactor = 90)").await.unwrap();
    assert_eq!(text(options).await, "{ttl=7d}");
    for (sql, code) in [
        ("ALTER TABLE m SET (ttl = '0 days')", "22023"),
        ("ALTER TABLE m SET (ttl = 'later')", "22007"),
        ("ALTER TABLE m SET (colour = 'red')", "22023"),
        ("ALTER TABLE m RESET (colour)", "22023"),
        ("ALTER TABLE m DROP COLUMN ts", "0A000"),
        ("ALTER TABLE m ALTER COLUMN ts TYPE TEXT", "0A000"),
    ] {
        let err = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some(code), "{sql}: {err:?}");
    }
    assert_eq!(text(options).await, "{ttl=7d}");
    client
        .batch_execute(
            "CREATE TABLE n (id INT PRIMARY KEY, seen TIMESTAMP, v INT) WITH (ttl = '1 day');
             ALTER TABLE n RESET (fillfactor)",
        )
        .await
        .unwrap();
    let err = client.batch_execute("ALTER TABLE n DROP COLUMN seen").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22023"), "{err:?}");
    client.batch_execute("ALTER TABLE n RESET (ttl); ALTER TABLE n DROP COLUMN seen").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_time_column_is_the_one_rows_expire_by() {
    let (_server, client) = expiring_every_second().await;
    // `created` comes first and is old for every row; `ts` is the time that counts.
    client
        .batch_execute(
            "CREATE TABLE events (id INT PRIMARY KEY, created TIMESTAMPTZ, ts TIMESTAMPTZ, v INT)
               WITH (time_column = ts, ttl = '1 hour');
             INSERT INTO events SELECT g, now() - interval '30 days', now() - (g % 2) * interval '2 hours', g
               FROM generate_series(1, 10) g;",
        )
        .await
        .unwrap();
    wait_for_count(&client, "SELECT count(*) FROM events", 5, "rows past the ttl by ts were not expired").await;
    // Two more rounds of expiry: what is left stays, as it is recent by ts.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(count(&client, "SELECT count(*) FROM events").await, 5);
    assert_eq!(count(&client, "SELECT count(*) FROM events WHERE v % 2 = 0").await, 5);
}
