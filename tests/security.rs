//! Attacks by a logged-in user against a real `chronos` process: each one must fail with the
//! right SQLSTATE, leave the data as it was, and leave the server answering.

mod support;

use futures::StreamExt;
use support::Server;

fn credentials() -> Vec<(&'static str, &'static str)> {
    vec![("CHRONOS_AUTH_TOKEN_ADMIN", "admin-secret"), ("CHRONOS_AUTH_TOKEN_READONLY", "reader-secret")]
}

async fn connect(server: &Server, user: &str, password: &str) -> tokio_postgres::Client {
    server.login(user, password).await.expect("connect")
}

fn code(e: &tokio_postgres::Error) -> &str {
    e.code().map(|c| c.code()).unwrap_or("none")
}

async fn sum_v(admin: &tokio_postgres::Client) -> (i64, i64) {
    let row = admin.query_one("SELECT count(*), coalesce(sum(v), 0)::int8 FROM readings", &[]).await.unwrap();
    (row.get(0), row.get(1))
}

/// A server with `readings` (3 rows, v = 10, 20, 30), `secrets` (1 row), role `bob` with no
/// grants, and the built-in `readonly`.
async fn setup() -> (Server, tokio_postgres::Client) {
    let server = Server::start_in(tempfile::tempdir().unwrap(), &credentials());
    let admin = connect(&server, "admin", "admin-secret").await;
    admin
        .batch_execute(
            "CREATE TABLE readings (id INT PRIMARY KEY, v INT);
             INSERT INTO readings VALUES (1, 10), (2, 20), (3, 30);
             CREATE TABLE secrets (id INT PRIMARY KEY, s TEXT);
             INSERT INTO secrets VALUES (1, 'launch code');
             CREATE SEQUENCE counter;
             CREATE USER bob PASSWORD 'bob-secret'",
        )
        .await
        .unwrap();
    (server, admin)
}

#[tokio::test]
async fn ttl_shorthand_never_reaches_inside_literals() {
    let (server, admin) = setup().await;
    let bob = connect(&server, "bob", "bob-secret").await;
    // The shorthand used to be rewritten in the raw text, string literals included.
    for sql in ["SELECT 'WITH TTL=||current_user|| '", "SELECT 'with ttl = 7d; DROP TABLE readings'"] {
        let text: String = bob.query_one(sql, &[]).await.unwrap().get(0);
        assert_eq!(format!("SELECT '{text}'"), sql);
    }
    let row =
        bob.query_one("SELECT $1::text, \"with ttl=x\" FROM (SELECT 1 AS \"with ttl=x\") t", &[&"WITH TTL=1d"]).await;
    let row = row.unwrap();
    assert_eq!(row.get::<_, String>(0), "WITH TTL=1d");
    bob.batch_execute("SELECT 1 /* WITH TTL=7d */; -- WITH TTL=7d").await.unwrap();
    assert_eq!(sum_v(&admin).await, (3, 60));

    // The shorthand itself still works where it belongs.
    admin.batch_execute("CREATE TABLE m1 (ts TIMESTAMPTZ, v FLOAT) WITH TTL=7d").await.unwrap();
    admin.batch_execute("CREATE TABLE m2 (ts TIMESTAMPTZ, v FLOAT) WITH TTL = '30 days';").await.unwrap();
    let err = admin.batch_execute("CREATE TABLE m3 (ts TIMESTAMPTZ) WITH TTL=banana").await.unwrap_err();
    assert_eq!(code(&err), "22007", "{err:?}");
}

#[tokio::test]
async fn wrappers_carry_no_write_past_the_privilege_check() {
    let (server, admin) = setup().await;
    let reader = connect(&server, "readonly", "reader-secret").await;
    let bob = connect(&server, "bob", "bob-secret").await;

    // COPY (query) with a data-modifying CTE.
    let copy = "COPY (WITH d AS (DELETE FROM readings RETURNING 1) SELECT count(*) FROM d) TO STDOUT";
    for client in [&reader, &bob] {
        let err = client.copy_out(copy).await.err().expect("COPY ran a DELETE");
        assert_eq!(code(&err), "42501", "{err:?}");
    }
    assert_eq!(sum_v(&admin).await, (3, 60));
    // COPY TO of a table needs SELECT on it; readonly has it, bob does not.
    let err = bob.copy_out("COPY secrets TO STDOUT").await.err().expect("COPY read secrets");
    assert_eq!(code(&err), "42501", "{err:?}");
    let out: Vec<_> = reader.copy_out("COPY readings TO STDOUT").await.unwrap().collect().await;
    assert_eq!(out.len(), 3);

    // EXPLAIN prints a data-modifying CTE and never runs it, for anyone.
    let explain = "EXPLAIN WITH u AS (UPDATE readings SET v = 0 RETURNING 1) SELECT 1";
    let plan = admin.simple_query(explain).await.unwrap();
    assert!(!plan.is_empty());
    assert_eq!(sum_v(&admin).await, (3, 60));
    let err = reader.simple_query(explain).await.unwrap_err();
    assert_eq!(code(&err), "42501", "{err:?}");
    let err = bob.simple_query("EXPLAIN SELECT * FROM secrets").await.unwrap_err();
    assert_eq!(code(&err), "42501", "{err:?}");
    assert_eq!(sum_v(&admin).await, (3, 60));

    // Reads hidden in subqueries of any kind, joins, set operations and INSERT … SELECT.
    for sql in [
        "SELECT (SELECT s FROM secrets)",
        "SELECT 1 WHERE 1 IN (SELECT id FROM secrets)",
        "SELECT ARRAY(SELECT s FROM secrets)",
        "SELECT * FROM (SELECT * FROM secrets) t",
        "SELECT 1 UNION SELECT id FROM secrets",
        "WITH x AS (SELECT * FROM secrets) SELECT * FROM x",
        "WITH RECURSIVE r(n) AS (SELECT id FROM secrets UNION SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
        "SELECT * FROM readings r JOIN secrets s ON r.id = s.id",
        "SELECT * FROM readings r, LATERAL (SELECT s FROM secrets WHERE id = r.id) x",
        "SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM secrets)) FROM readings",
    ] {
        let err = bob.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&err), "42501", "{sql}: {err:?}");
    }
    // Garbage collection and sealing are an owner's (a superuser's) maintenance.
    for sql in ["VACUUM", "VACUUM readings"] {
        let err = bob.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&err), "42501", "{sql}: {err:?}");
    }
    admin.batch_execute("VACUUM readings").await.unwrap();
    admin.batch_execute("GRANT INSERT ON readings TO bob").await.unwrap();
    let err = bob.batch_execute("INSERT INTO readings SELECT id + 10, 0 FROM secrets").await.unwrap_err();
    assert_eq!(code(&err), "42501", "{err:?}");
    let err = bob.batch_execute("INSERT INTO readings VALUES (9, (SELECT count(*) FROM secrets))").await.unwrap_err();
    assert_eq!(code(&err), "42501", "{err:?}");
    // Without SELECT on the target, its rows cannot be read through RETURNING or a WHERE.
    let err = bob.query("INSERT INTO readings VALUES (9, 9) RETURNING *", &[]).await.unwrap_err();
    assert_eq!(code(&err), "42501", "{err:?}");
    bob.batch_execute("INSERT INTO readings VALUES (9, 9)").await.unwrap();
    admin.batch_execute("GRANT UPDATE ON readings TO bob").await.unwrap();
    bob.batch_execute("UPDATE readings SET v = 9").await.unwrap();
    for sql in ["UPDATE readings SET v = 1 WHERE id = 1", "UPDATE readings SET v = v + 1"] {
        let err = bob.batch_execute(sql).await.unwrap_err();
        assert_eq!(code(&err), "42501", "{sql}: {err:?}");
    }
    assert_eq!(sum_v(&admin).await, (4, 36));
}

#[tokio::test]
async fn qualified_names_resolve_to_one_object_and_are_checked_on_it() {
    let (server, admin) = setup().await;
    let bob = connect(&server, "bob", "bob-secret").await;
    for (sql, expected) in [
        ("SELECT * FROM secrets", "42501"),
        ("SELECT * FROM public.secrets", "42501"),
        ("SELECT * FROM chronos.public.secrets", "42501"),
        ("SELECT * FROM pg_catalog.public.secrets", "0A000"),
        ("SELECT * FROM other.public.secrets", "0A000"),
        ("SELECT * FROM a.b.c.secrets", "42601"),
        ("SELECT * FROM other.secrets", "42P01"),
        ("SELECT * FROM pg_catalog.secrets", "42P01"),
        ("DELETE FROM chronos.public.secrets", "42501"),
        ("INSERT INTO other.secrets VALUES (2, 'x')", "42P01"),
    ] {
        let err = bob.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&err), expected, "{sql}: {err:?}");
    }
    let n: i64 = admin.query_one("SELECT count(*) FROM chronos.public.secrets", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    let n: i64 = bob.query_one("SELECT count(*) FROM chronos.pg_catalog.pg_class", &[]).await.unwrap().get(0);
    assert!(n > 0);
}

#[tokio::test]
async fn read_only_transactions_refuse_every_write() {
    let (server, admin) = setup().await;
    let client = connect(&server, "admin", "admin-secret").await;
    for sql in [
        "INSERT INTO readings VALUES (4, 40)",
        "WITH d AS (DELETE FROM readings RETURNING 1) SELECT count(*) FROM d",
        "SELECT nextval('counter')",
        "CREATE TABLE t (id INT)",
        "TRUNCATE readings",
        "COPY readings FROM STDIN",
    ] {
        client.batch_execute("BEGIN READ ONLY").await.unwrap();
        let err = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(code(&err), "25006", "{sql}: {err:?}");
        client.batch_execute("ROLLBACK").await.unwrap();
    }
    // Reading, and explaining a write, are fine.
    client.batch_execute("BEGIN READ ONLY").await.unwrap();
    client.simple_query("EXPLAIN DELETE FROM readings").await.unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(sum_v(&admin).await, (3, 60));
}

#[tokio::test]
async fn huge_values_fail_the_statement_not_the_server() {
    let (server, admin) = setup().await;
    let bob = connect(&server, "bob", "bob-secret").await;
    for sql in [
        "SELECT length(repeat(repeat('x', 100000), 2000000000))",
        "SELECT lpad('x', 2000000000)",
        "SELECT rpad('x', 2000000000, 'é')",
        "SELECT format('%2000000000s', 'x')",
        "SELECT length(replace(repeat('a', 100000), 'a', repeat('b', 100000)))",
        "SELECT length(regexp_replace(repeat('a', 100000), 'a', repeat('b', 100000), 'g'))",
        "SELECT length(repeat('x', 600000000) || repeat('x', 600000000))",
    ] {
        let err = bob.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&err), "54000", "{sql}: {err:?}");
    }
    // Within the limit the same functions work.
    let n: i32 = bob.query_one("SELECT length(repeat('ab', 1000000))", &[]).await.unwrap().get(0);
    assert_eq!(n, 2_000_000);
    assert_eq!(sum_v(&admin).await, (3, 60));
}

#[tokio::test]
async fn deep_statements_fail_with_54001_and_the_server_goes_on() {
    let (server, admin) = setup().await;
    let bob = connect(&server, "bob", "bob-secret").await;
    let terms = |n: usize, term: &str, op: &str| vec![term; n].join(op);
    let limit = 1000;
    for sql in [
        format!("SELECT {}", terms(200_000, "1", "+")),
        format!("SELECT {}", terms(limit + 1, "1", "+")),
        format!("SELECT 1 WHERE {}", terms(limit + 1, "1 = 1", " OR ")),
        format!("SELECT {}", terms(limit + 1, "'a'", " || ")),
        terms(limit + 1, "SELECT 1", " UNION ALL "),
        format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("SELECT {}1", "- ".repeat(5000)),
        format!("SELECT {}", "ARRAY[".repeat(5000) + &"]".repeat(5000)),
        format!("SELECT {}1{}", "(SELECT ".repeat(500), ")".repeat(500)),
    ] {
        // Both protocols: the extended one parses on another path and keeps the statement.
        let err = bob.simple_query(&sql).await.unwrap_err();
        assert_eq!(code(&err), "54001", "{}: {err:?}", &sql[..60]);
        let err = bob.query(&sql, &[]).await.unwrap_err();
        assert_eq!(code(&err), "54001", "{}: {err:?}", &sql[..60]);
    }
    // Just under the limit, every pass (parse, bind, plan, print, execute, drop) copes.
    let sum: i32 = bob.query_one(&format!("SELECT {}", terms(limit - 2, "1", "+")), &[]).await.unwrap().get(0);
    assert_eq!(sum, (limit - 2) as i32);
    let rows = bob.simple_query(&format!("EXPLAIN SELECT {}", terms(limit - 3, "1", "+"))).await.unwrap();
    assert!(!rows.is_empty());
    let n: i64 = bob
        .query_one(&format!("SELECT count(*) FROM ({}) t", terms(limit - 5, "SELECT 1", " UNION ALL ")), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, (limit - 5) as i64);
    let ok: bool = bob.query_one(&format!("SELECT {}", terms(limit - 5, "1 = 1", " OR ")), &[]).await.unwrap().get(0);
    assert!(ok);
    assert_eq!(sum_v(&admin).await, (3, 60));
}

#[tokio::test]
async fn catalogs_show_no_secrets_to_other_roles() {
    let (server, _admin) = setup().await;
    let bob = connect(&server, "bob", "bob-secret").await;
    let rows = bob.simple_query("SELECT * FROM pg_roles").await.unwrap();
    let text = format!("{rows:?}");
    assert!(!text.contains("SCRAM-SHA-256$"), "pg_roles shows a SCRAM secret: {text}");
    for table in ["pg_authid", "pg_shadow"] {
        match bob.simple_query(&format!("SELECT * FROM {table}")).await {
            Ok(rows) => assert!(!format!("{rows:?}").contains("SCRAM-SHA-256$"), "{table} shows a SCRAM secret"),
            Err(e) => assert!(matches!(code(&e), "42501" | "42P01"), "{table}: {e:?}"),
        }
    }
}

#[tokio::test]
async fn the_audit_log_records_logins_role_and_schema_changes_and_cluster_requests() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let log_path = log.to_string_lossy().to_string();
    let env = [
        ("CHRONOS_AUTH_TOKEN_ADMIN", "admin-secret"),
        ("CHRONOS_HTTP_TOKEN", "http-token"),
        ("CHRONOS_AUDIT_LOG", log_path.as_str()),
    ];
    let server = Server::start_in(tempfile::tempdir().unwrap(), &env);
    let url = format!("{} password=wrong", server.url("admin"));
    assert!(tokio_postgres::connect(&url, tokio_postgres::NoTls).await.is_err());
    let admin = connect(&server, "admin", "admin-secret").await;
    admin
        .batch_execute(
            "CREATE TABLE t (id INT PRIMARY KEY); CREATE USER bob PASSWORD 'never-logged-pw';
             GRANT SELECT ON t TO bob; INSERT INTO t VALUES (1); SELECT * FROM t",
        )
        .await
        .unwrap();
    let bob = connect(&server, "bob", "never-logged-pw").await;
    assert_eq!(code(&bob.batch_execute("DROP TABLE t").await.unwrap_err()), "42501");
    admin.batch_execute("ALTER ROLE bob PASSWORD 'another-pw'; DROP TABLE t").await.unwrap();
    let (status, _) = support::http_request(server.http_addr, "POST", "/raft/transfer-leadership?to=2", "").unwrap();
    assert_eq!(status, 401);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("never-logged-pw") && !text.contains("another-pw"), "a password in the audit log");
    let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |event: &str, action: &str, outcome: &str| {
        records.iter().find(|r| r["event"] == event && r["action"] == action && r["outcome"] == outcome).cloned()
    };
    let failed_login = find("authentication", "LOGIN SCRAM-SHA-256", "failure").expect("the failed login");
    assert_eq!(failed_login["user"], "admin");
    assert_eq!(failed_login["sqlstate"], "28P01");
    assert!(failed_login["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    let bob_login = records
        .iter()
        .find(|r| r["event"] == "authentication" && r["user"] == "bob" && r["outcome"] == "success")
        .expect("bob's login");
    assert!(bob_login["time"].is_string());
    assert_eq!(find("ddl", "CREATE TABLE t", "success").unwrap()["user"], "admin");
    find("role", "CREATE ROLE bob", "success").expect("CREATE USER");
    find("privilege", "GRANT SELECT ON t TO bob", "success").expect("GRANT");
    find("role", "ALTER ROLE bob", "success").expect("ALTER ROLE");
    let denied = find("ddl", "DROP TABLE t", "failure").expect("bob's DROP TABLE");
    assert_eq!((denied["user"].as_str(), denied["sqlstate"].as_str()), (Some("bob"), Some("42501")));
    find("ddl", "DROP TABLE t", "success").expect("admin's DROP TABLE");
    find("cluster", "POST /raft/transfer-leadership?to=2", "failure").expect("the refused cluster request");
    // Reads and writes of rows are not audited.
    assert!(!text.contains("INSERT") && !text.contains("SELECT *"), "{text}");
}

#[tokio::test]
async fn statements_past_their_memory_budget_fail_with_53200() {
    let server = Server::start_in(tempfile::tempdir().unwrap(), &[("CHRONOS_STATEMENT_MEMORY_MB", "16")]);
    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE t (i INT8 PRIMARY KEY)").await.unwrap();
    for sql in [
        "SELECT i FROM generate_series(1, 2000000) i ORDER BY i DESC LIMIT 1",
        "SELECT count(*) FROM (SELECT DISTINCT i FROM generate_series(1, 2000000) i) d",
        "SELECT i, count(*) FROM generate_series(1, 2000000) i GROUP BY i LIMIT 1",
        "SELECT count(DISTINCT i) FROM generate_series(1, 2000000) i",
        "SELECT length(string_agg(repeat('x', 1000), ',')) FROM generate_series(1, 100000)",
        "SELECT count(*) FROM generate_series(1, 1000000) a JOIN generate_series(1, 1000000) b ON a = b",
        "SELECT row_number() OVER (ORDER BY i) FROM generate_series(1, 2000000) i LIMIT 1",
        "SELECT count(*) FROM (SELECT i FROM generate_series(1, 1000000) i UNION SELECT i FROM generate_series(1, 1000000) i) u",
        "INSERT INTO t SELECT i FROM generate_series(1, 2000000) i",
    ] {
        let err = client.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&err), "53200", "{sql}: {err:?}");
    }
    // COPY TO holds its lines until it sends them.
    let err = client
        .copy_out("COPY (SELECT repeat('x', 100) FROM generate_series(1, 300000)) TO STDOUT")
        .await
        .err()
        .expect("a 37 MB COPY TO fit in 16 MB");
    assert_eq!(code(&err), "53200", "{err:?}");
    // COPY FROM counts the rows it has written so far.
    let sink = client.copy_in("COPY t FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    let mut failed = None;
    for chunk in 0..400 {
        let data: String = (chunk * 5000..(chunk + 1) * 5000).map(|i| format!("{i}\n")).collect();
        if let Err(e) = futures::SinkExt::send(&mut sink, bytes::Bytes::from(data)).await {
            failed = Some(e);
            break;
        }
    }
    let err = match failed {
        Some(e) => e,
        None => sink.finish().await.expect_err("a 2M-row COPY fit in 16 MB"),
    };
    assert_eq!(code(&err), "53200", "{err:?}");
    // Within the budget the same shapes run, and a streamed result is not held at all.
    let n: i64 = client
        .query_one("SELECT count(*) FROM (SELECT DISTINCT i % 1000 FROM generate_series(1, 200000) i) d", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1000);
    let messages = client.simple_query("SELECT i FROM generate_series(1, 3000000) i").await.unwrap();
    let rows = messages.iter().filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))).count();
    assert_eq!(rows, 3_000_000);
    client.batch_execute("INSERT INTO t SELECT i FROM generate_series(1, 1000) i").await.unwrap();
    let n: i64 = client.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(n, 1000);
}
