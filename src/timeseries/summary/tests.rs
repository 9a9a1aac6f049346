//! Summaries against the rows they summarize, through SQL on a running engine.

use super::*;
use crate::sql::{Outcome, Session};
use proptest::prelude::*;

/// 2026-01-01 00:00:00 UTC, in microseconds.
const BASE: i64 = 1_767_225_600_000_000;

fn rows(session: &mut Session, sql: &str) -> Vec<Vec<Value>> {
    match session.run(sql).pop() {
        Some(Ok(Outcome::Rows { rows, .. })) => rows,
        other => panic!("{sql}: {other:?}"),
    }
}

fn run(session: &mut Session, sql: &str) {
    for result in session.run(sql) {
        if let Err(e) = result {
            // Conflicting random writes (a duplicate key) are refused like any other.
            assert!(matches!(e, Error::UniqueViolation { .. }), "{sql}: {e:?}");
        }
    }
}

/// A time in the given minute after [`BASE`], at a second that depends on the minute.
fn timestamp(minute: i64) -> String {
    format!("to_timestamp({})", (BASE + minute * MICROS_PER_MINUTE) / 1_000_000 + minute * 37 % 60)
}

/// Checks every grain's summary since a few starts against the rows.
fn check(engine: &Arc<crate::sql::Engine>, session: &mut Session) {
    let mut txn = engine.mvcc().begin();
    let table = catalog::must_get_table(&mut txn, "r").unwrap();
    assert!(table.summarized);
    // Every device with rows is listed as a series.
    let listed: Vec<Vec<u8>> = series(&mut txn, &table).unwrap();
    for r in rows(session, "SELECT DISTINCT device FROM r") {
        let mut key = table.row_prefix();
        keycode::encode_value(&r[0], &mut key);
        assert!(listed.contains(&key), "{r:?} is not listed");
    }
    for grain in Grain::ALL {
        for start_minute in [-100_000, 0, 90, 1500, 3000] {
            let start = grain.bucket(BASE + start_minute * MICROS_PER_MINUTE);
            let record = range(&mut txn, &table, grain, Some(start), None).unwrap();
            let expected = rows(
                session,
                &format!(
                    "SELECT count(*), count(temp), sum(temp), min(temp), max(temp), count(n), sum(n), min(n), max(n), \
                     count(note) FROM r WHERE ts >= to_timestamp({})",
                    start as f64 / 1e6
                ),
            )
            .remove(0);
            let context = format!("{grain:?} since {start_minute}: {record:?} vs {expected:?}");
            assert_eq!(Value::Int8(record.rows as i64), expected[0], "{context}");
            let ColumnSummary::Float(temp) = &record.columns[2] else { panic!("{context}") };
            assert_eq!(Value::Int8(temp.count as i64), expected[1], "{context}");
            if temp.count > 0 {
                assert_eq!(Value::Float8(temp.sum()), expected[2], "{context}");
                if temp.extremes_exact {
                    assert_eq!(
                        (Value::Float8(temp.min), Value::Float8(temp.max)),
                        (expected[3].clone(), expected[4].clone())
                    );
                }
            }
            let ColumnSummary::Int(n) = &record.columns[3] else { panic!("{context}") };
            assert_eq!(Value::Int8(n.count as i64), expected[5], "{context}");
            if n.count > 0 {
                assert_eq!(Value::Int8(n.sum as i64), expected[6], "{context}");
                if n.extremes_exact {
                    assert_eq!(
                        (Value::Int4(n.min as i32), Value::Int4(n.max as i32)),
                        (expected[7].clone(), expected[8].clone())
                    );
                }
            }
            assert_eq!(Value::Int8(record.columns[4].count() as i64), expected[9], "{context}");
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert { device: u8, minute: i64, temp: i32, n: Option<i32> },
    Upsert { device: u8, minute: i64, temp: i32 },
    Update { device: u8, temp: i32 },
    Move { device: u8, by: i64 },
    Delete { device: u8, below: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    let device = 0u8..3;
    let minute = 0i64..3000;
    prop_oneof![
        4 => (device.clone(), minute.clone(), -400i32..400, prop::option::of(-50i32..50))
            .prop_map(|(device, minute, temp, n)| Op::Insert { device, minute, temp, n }),
        1 => (device.clone(), minute.clone(), -400i32..400).prop_map(|(device, minute, temp)| Op::Upsert { device, minute, temp }),
        1 => (device.clone(), -400i32..400).prop_map(|(device, temp)| Op::Update { device, temp }),
        1 => (device.clone(), -200i64..200).prop_map(|(device, by)| Op::Move { device, by }),
        1 => (device, minute).prop_map(|(device, below)| Op::Delete { device, below }),
    ]
}

fn apply(session: &mut Session, op: &Op) {
    let sql = match op {
        Op::Insert { device, minute, temp, n } => format!(
            "INSERT INTO r VALUES ('d{device}', {}, {}, {}, 'x')",
            timestamp(*minute),
            *temp as f64 / 4.0,
            n.map_or("NULL".to_string(), |n| n.to_string())
        ),
        Op::Upsert { device, minute, temp } => format!(
            "INSERT INTO r VALUES ('d{device}', {}, {}, 1, NULL) ON CONFLICT (device, ts) DO UPDATE SET temp = excluded.temp",
            timestamp(*minute),
            *temp as f64 / 4.0
        ),
        Op::Update { device, temp } => format!("UPDATE r SET temp = {}, n = n + 1 WHERE device = 'd{device}'", *temp as f64 / 4.0),
        Op::Move { device, by } => format!("UPDATE r SET ts = ts + interval '{by} minutes' WHERE device = 'd{device}'"),
        Op::Delete { device, below } => format!("DELETE FROM r WHERE device = 'd{device}' AND ts < {}", timestamp(*below)),
    };
    run(session, &sql);
}

/// Queries answered from summaries give what the rows give: each runs once as it is and once
/// in a transaction that wrote the table (a row inserted and deleted again), which reads rows.
fn check_queries(session: &mut Session) {
    const AGGREGATES: &str =
        "count(*), sum(temp), avg(temp), min(temp), max(temp), count(n), sum(n), avg(n), min(n), max(n)";
    let at = |minute: i64, second: i64| format!("to_timestamp({})", BASE / 1_000_000 + minute * 60 + second);
    let queries = [
        format!("SELECT {AGGREGATES} FROM r"),
        format!("SELECT {AGGREGATES} FROM r WHERE ts >= {}", at(95, 20)),
        format!("SELECT {AGGREGATES} FROM r WHERE ts > {} AND ts <= {}", at(61, 7), at(1502, 59)),
        format!("SELECT {AGGREGATES} FROM r WHERE {} > ts", at(2000, 31)),
        format!("SELECT {AGGREGATES} FROM r WHERE ts BETWEEN {} AND {}", at(1440, 0), at(2880, 0)),
        format!("SELECT {AGGREGATES} FROM r WHERE ts >= {} AND ts < {}", at(300, 1), at(300, 50)),
        format!("SELECT date_trunc('hour', ts), {AGGREGATES} FROM r GROUP BY 1 ORDER BY 1"),
        format!("SELECT time_bucket('1 minute', ts), {AGGREGATES} FROM r GROUP BY 1 ORDER BY 1"),
        format!("SELECT date_trunc('day', ts), {AGGREGATES} FROM r GROUP BY 1 ORDER BY 1"),
    ];
    for sql in &queries {
        let plan = rows(session, &format!("EXPLAIN {sql}"));
        assert!(plan.iter().any(|line| line[0].to_string().contains("from summaries")), "{sql}: {plan:?}");
        let summarized = rows(session, sql);
        run(session, "BEGIN; INSERT INTO r VALUES ('zz', now(), 0, 0, NULL); DELETE FROM r WHERE device = 'zz'");
        let scanned = rows(session, sql);
        run(session, "ROLLBACK");
        assert_eq!(summarized, scanned, "{sql}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Whatever the writes, each grain's records since any bucket add up to the rows since it,
    /// and the queries they answer agree with the rows.
    #[test]
    fn summaries_follow_every_write(ops in prop::collection::vec(op(), 1..40)) {
        let engine = crate::node::open_in_memory().unwrap();
        let mut session = engine.session("admin", "chronos");
        run(&mut session, "CREATE TABLE r (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, n INT, note TEXT, PRIMARY KEY (device, ts))");
        for op in &ops {
            apply(&mut session, op);
        }
        check(&engine, &mut session);
        check_queries(&mut session);
    }
}

/// A transaction of many writes, ALTER TABLE (which rebuilds the records), TRUNCATE and a
/// table made time-series by ALTER TABLE all leave summaries that match the rows.
#[test]
fn summaries_survive_schema_changes_and_truncate() {
    let engine = crate::node::open_in_memory().unwrap();
    let mut s = engine.session("admin", "chronos");
    run(
        &mut s,
        "CREATE TABLE r (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, n INT, note TEXT, PRIMARY KEY (device, ts))",
    );
    run(
        &mut s,
        &format!(
            "INSERT INTO r SELECT 'd' || (g % 3), {} + g * interval '7 minutes', (g % 17) / 4.0, g % 5, 'x' \
             FROM generate_series(1, 2000) AS g",
            timestamp(0)
        ),
    );
    check(&engine, &mut s);
    run(&mut s, "ALTER TABLE r ADD COLUMN extra INT DEFAULT 3");
    check(&engine, &mut s);
    run(&mut s, "ALTER TABLE r DROP COLUMN extra");
    check(&engine, &mut s);
    run(&mut s, "BEGIN; DELETE FROM r WHERE n = 2; UPDATE r SET temp = temp + 1 WHERE n = 3; COMMIT");
    check(&engine, &mut s);
    run(&mut s, "TRUNCATE r");
    check(&engine, &mut s);
    run(&mut s, &format!("INSERT INTO r VALUES ('a', {}, 1.5, 1, 'y')", timestamp(10)));
    check(&engine, &mut s);

    // A table with no primary key gets summaries when one ending with its time is added.
    run(
        &mut s,
        "DROP TABLE r; CREATE TABLE r (device TEXT NOT NULL, ts TIMESTAMPTZ NOT NULL, temp FLOAT8, n INT, note TEXT)",
    );
    run(
        &mut s,
        &format!(
            "INSERT INTO r VALUES ('a', {}, 2.5, 4, NULL), ('b', {}, 0.25, NULL, 'z')",
            timestamp(5),
            timestamp(500)
        ),
    );
    let mut txn = engine.mvcc().begin();
    assert!(!catalog::must_get_table(&mut txn, "r").unwrap().summarized);
    drop(txn);
    run(&mut s, "ALTER TABLE r ADD PRIMARY KEY (device, ts)");
    check(&engine, &mut s);
}

/// The pieces of a range tile it exactly: buckets aligned to their grain, rows under a minute.
#[test]
fn cover_tiles_ranges() {
    let m = MICROS_PER_MINUTE;
    let hour = Grain::Hour.micros();
    let day = Grain::Day.micros();
    assert_eq!(cover(Some(BASE), Some(BASE + m)), vec![Piece::Buckets(Grain::Minute, Some(BASE), Some(BASE + m))]);
    assert_eq!(cover(Some(BASE + 5), Some(BASE + 9)), vec![Piece::Rows(BASE + 5, BASE + 9)]);
    let lo = BASE + 2 * hour + 3 * m + 7;
    assert_eq!(
        cover(Some(lo), None),
        vec![
            Piece::Rows(lo, BASE + 2 * hour + 4 * m),
            Piece::Buckets(Grain::Minute, Some(BASE + 2 * hour + 4 * m), Some(BASE + 3 * hour)),
            Piece::Buckets(Grain::Hour, Some(BASE + 3 * hour), Some(BASE + day)),
            Piece::Buckets(Grain::Day, Some(BASE + day), None),
        ]
    );
    let hi = BASE + 5 * day + hour + 30;
    assert_eq!(
        cover(None, Some(hi)),
        vec![
            Piece::Buckets(Grain::Day, None, Some(BASE + 5 * day)),
            Piece::Buckets(Grain::Hour, Some(BASE + 5 * day), Some(BASE + 5 * day + hour)),
            Piece::Rows(BASE + 5 * day + hour, hi),
        ]
    );
    assert_eq!(cover(None, None), vec![Piece::Buckets(Grain::Day, None, None)]);
}
