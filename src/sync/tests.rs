//! A seeded simulation of sync: three edges write the same keys at random while their pushes
//! are lost, delayed and delivered out of order, applied without an answer, duplicated, and
//! while edges restart and forget their cursor. Checked for every seed: the cloud's cursor of
//! an edge never goes backwards; once the network heals, every edge's outbox drains and the
//! cloud holds, for every key, the last-writer-wins winner of every change ever pushed (a
//! delete included), whatever the order of arrival.

use super::worker::{acknowledged, prepare, SyncConfig};
use super::*;
use crate::sql::{Engine, Outcome, Session};
use crate::types::Value;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

struct Edge {
    engine: Arc<Engine>,
    session: Session,
    config: SyncConfig,
    /// What the edge believes the cloud acknowledged (forgotten on a restart).
    cursor: Option<Position>,
}

fn run(session: &mut Session, sql: &str) {
    for result in session.run(sql) {
        result.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn rows(session: &mut Session, sql: &str) -> Vec<Vec<Value>> {
    match session.run(sql).pop() {
        Some(Ok(Outcome::Rows { rows, .. })) => rows,
        other => panic!("{sql}: {other:?}"),
    }
}

fn edge(i: usize, rng: &mut StdRng) -> Edge {
    let engine = crate::node::open_in_memory().unwrap();
    let id = format!("edge-{i}");
    let mut txn = engine.mvcc().begin();
    assert!(outbox::mark_edge(&mut txn, &id).unwrap());
    txn.commit().unwrap();
    let mut session = engine.session("admin", "chronos");
    run(&mut session, "CREATE TABLE t (k INT PRIMARY KEY, v INT)");
    let mut config = SyncConfig::new(id, Vec::new(), Duration::from_secs(1));
    config.max_rows = rng.gen_range(1..8);
    Edge { engine, session, config, cursor: None }
}

/// The winner of each key among the changes pushed so far: (time, origin, row).
type Winners = BTreeMap<Vec<u8>, (u64, String, Option<Vec<u8>>)>;

struct Cloud {
    engine: Arc<Engine>,
    cursors: BTreeMap<String, Position>,
}

impl Cloud {
    fn new() -> Cloud {
        Cloud { engine: crate::node::open_in_memory().unwrap(), cursors: BTreeMap::new() }
    }

    /// Why the cloud refuses `edge`'s next push (which must fail).
    fn refusal(&self, edge: &Edge) -> crate::error::Error {
        let prepared = prepare(edge.engine.mvcc(), &edge.config, edge.cursor).unwrap();
        cloud::apply(self.engine.mvcc(), &prepared.push, &cloud::Metrics::default()).unwrap_err()
    }

    /// Applies `push` as the Sync service does; checks the cursor only moves forward.
    fn apply(&mut self, push: &Push) -> Ack {
        let ack = cloud::apply(self.engine.mvcc(), push, &cloud::Metrics::default()).unwrap();
        let previous = self.cursors.insert(push.edge.clone(), ack.cursor);
        assert!(previous.is_none_or(|p| p <= ack.cursor), "the cursor of {} went back", push.edge);
        ack
    }
}

fn simulate(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cloud = Cloud::new();
    let mut edges: Vec<Edge> = (0..3).map(|i| edge(i, &mut rng)).collect();
    let mut in_flight: Vec<(usize, Push)> = Vec::new();
    let mut winners = Winners::new();
    let pushed = |push: &Push, winners: &mut Winners| {
        for change in push.tables.iter().flat_map(|t| &t.changes) {
            let candidate = (change.position.version, push.edge.clone(), change.row.clone());
            let entry = winners.entry(change.key.clone()).or_insert_with(|| candidate.clone());
            if (candidate.0, &candidate.1) > (entry.0, &entry.1) {
                *entry = candidate;
            }
        }
    };
    let mut next_value = 0;
    for _ in 0..300 {
        let e = rng.gen_range(0..edges.len());
        match rng.gen_range(0..100) {
            0..=44 => {
                next_value += 1;
                let k = rng.gen_range(0..12);
                let sql = match rng.gen_range(0..20) {
                    0..=9 => format!("INSERT INTO t VALUES ({k}, {next_value}) ON CONFLICT (k) DO UPDATE SET v = {next_value}"),
                    10..=13 => format!("DELETE FROM t WHERE k = {k}"),
                    14..=16 => format!("UPDATE t SET v = v + 1000 WHERE k <= {k}"),
                    17..=18 => format!(
                        "BEGIN; INSERT INTO t VALUES ({k}, {next_value}) ON CONFLICT (k) DO NOTHING; DELETE FROM t WHERE k = {}; COMMIT",
                        (k + 1) % 12
                    ),
                    _ => "TRUNCATE t".to_string(),
                };
                run(&mut edges[e].session, &sql);
            }
            45..=84 => {
                let edge = &mut edges[e];
                let prepared = prepare(edge.engine.mvcc(), &edge.config, edge.cursor).unwrap();
                pushed(&prepared.push, &mut winners);
                match rng.gen_range(0..10) {
                    // Lost on the way.
                    0 => {}
                    // Delayed: delivered later, after others.
                    1 | 2 => in_flight.push((e, prepared.push)),
                    // Applied, and the answer lost.
                    3 => {
                        cloud.apply(&prepared.push);
                    }
                    // Delivered twice.
                    4 => {
                        cloud.apply(&prepared.push);
                        let ack = cloud.apply(&prepared.push);
                        edge.cursor = edge.cursor.max(Some(ack.cursor));
                        acknowledged(edge.engine.mvcc(), &ack).unwrap();
                    }
                    _ => {
                        let ack = cloud.apply(&prepared.push);
                        edge.cursor = edge.cursor.max(Some(ack.cursor));
                        acknowledged(edge.engine.mvcc(), &ack).unwrap();
                    }
                }
            }
            85..=94 if !in_flight.is_empty() => {
                let (e, push) = in_flight.remove(rng.gen_range(0..in_flight.len()));
                let ack = cloud.apply(&push);
                let edge = &mut edges[e];
                edge.cursor = edge.cursor.max(Some(ack.cursor));
                acknowledged(edge.engine.mvcc(), &ack).unwrap();
            }
            // A restart: the edge forgets what the cloud acknowledged.
            _ => edges[e].cursor = None,
        }
    }
    // The network heals: late pushes arrive, then every edge drains.
    for (_, push) in std::mem::take(&mut in_flight) {
        cloud.apply(&push);
    }
    for edge in &mut edges {
        loop {
            let prepared = prepare(edge.engine.mvcc(), &edge.config, edge.cursor).unwrap();
            pushed(&prepared.push, &mut winners);
            let ack = cloud.apply(&prepared.push);
            edge.cursor = edge.cursor.max(Some(ack.cursor));
            acknowledged(edge.engine.mvcc(), &ack).unwrap();
            if !prepared.more {
                break;
            }
        }
        let backlog = outbox::backlog(&mut edge.engine.mvcc().begin()).unwrap();
        assert_eq!(backlog.changes, 0, "seed {seed}: an outbox did not drain");
    }
    let mut want: Vec<Vec<Value>> = winners
        .values()
        .filter_map(|(_, _, row)| row.as_ref().map(|r| crate::storage::rowcodec::decode_row(r).unwrap()))
        .collect();
    want.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap());
    let mut session = cloud.engine.session("admin", "chronos");
    assert_eq!(rows(&mut session, "SELECT k, v FROM t ORDER BY k"), want, "seed {seed}");
}

#[test]
fn edges_converge_on_the_cloud_whatever_the_network_does() {
    for seed in 0..12 {
        simulate(seed);
    }
}

/// Pushes everything `edge` has to `cloud`, reliably.
fn drain(edge: &mut Edge, cloud: &mut Cloud) {
    loop {
        let prepared = prepare(edge.engine.mvcc(), &edge.config, edge.cursor).unwrap();
        let ack = cloud.apply(&prepared.push);
        edge.cursor = edge.cursor.max(Some(ack.cursor));
        acknowledged(edge.engine.mvcc(), &ack).unwrap();
        if !prepared.more {
            return;
        }
    }
}

#[test]
fn ddl_on_an_edge_keeps_pending_changes_with_their_table() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut cloud = Cloud::new();
    let mut edge = edge(0, &mut rng);
    let mut on_cloud = cloud.engine.session("admin", "chronos");
    // Rows written, then the table renamed before they were pushed: they follow it.
    run(&mut edge.session, "INSERT INTO t VALUES (1, 1), (2, 2); ALTER TABLE t RENAME TO u");
    drain(&mut edge, &mut cloud);
    assert_eq!(
        rows(&mut on_cloud, "SELECT k, v FROM u ORDER BY k"),
        vec![vec![Value::Int4(1), Value::Int4(1)], vec![Value::Int4(2), Value::Int4(2)]]
    );
    // A row inserted and truncated away in one transaction never reaches the cloud; rows
    // written before the TRUNCATE and not yet pushed arrive and are deleted.
    run(&mut edge.session, "INSERT INTO u VALUES (3, 3); BEGIN; INSERT INTO u VALUES (4, 4); TRUNCATE u; INSERT INTO u VALUES (5, 5); COMMIT");
    drain(&mut edge, &mut cloud);
    assert_eq!(rows(&mut on_cloud, "SELECT k, v FROM u ORDER BY k"), vec![vec![Value::Int4(5), Value::Int4(5)]]);
    // A table dropped and created again under its name is another table: its old rows are
    // not deleted on the cloud, and the pending changes of the dropped one are passed over.
    run(&mut edge.session, "INSERT INTO u VALUES (6, 6); BEGIN; DROP TABLE u; CREATE TABLE u (k INT PRIMARY KEY, v INT); INSERT INTO u VALUES (7, 7); COMMIT");
    drain(&mut edge, &mut cloud);
    assert_eq!(
        rows(&mut on_cloud, "SELECT k, v FROM u ORDER BY k"),
        vec![vec![Value::Int4(5), Value::Int4(5)], vec![Value::Int4(7), Value::Int4(7)]]
    );
    let backlog = outbox::backlog(&mut edge.engine.mvcc().begin()).unwrap();
    assert_eq!(backlog.changes, 0);
}

#[test]
fn a_database_marked_after_it_wrote_captures_from_the_next_batch_on() {
    let engine = crate::node::open_in_memory().unwrap();
    let mut session = engine.session("admin", "chronos");
    run(&mut session, "CREATE TABLE t (k INT PRIMARY KEY); INSERT INTO t VALUES (1)");
    let mut txn = engine.mvcc().begin();
    assert!(outbox::mark_edge(&mut txn, "late").unwrap());
    txn.commit().unwrap();
    run(&mut session, "INSERT INTO t VALUES (2)");
    let (captured, _) = outbox::read(&mut engine.mvcc().begin(), None, 100, 1 << 20).unwrap();
    assert_eq!(captured.len(), 1, "{captured:?}");
    // Marked once, for good: another id is refused, the same one is no change.
    let mut txn = engine.mvcc().begin();
    assert!(!outbox::mark_edge(&mut txn, "late").unwrap());
    assert!(outbox::mark_edge(&mut txn, "other").is_err());
}

#[test]
fn a_cloud_that_lost_acknowledged_changes_refuses_the_next_push() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut edge = edge(0, &mut rng);
    let mut cloud = Cloud::new();
    run(&mut edge.session, "INSERT INTO t VALUES (1, 1)");
    drain(&mut edge, &mut cloud);
    // The cloud comes back without what it acknowledged (an older backup).
    let lost = crate::node::open_in_memory().unwrap();
    run(&mut edge.session, "INSERT INTO t VALUES (2, 2)");
    let prepared = prepare(edge.engine.mvcc(), &edge.config, edge.cursor).unwrap();
    let refused = cloud::apply(lost.mvcc(), &prepared.push, &cloud::Metrics::default()).unwrap_err();
    assert!(matches!(refused, crate::error::Error::NotInPrerequisiteState(_)), "{refused}");
}

#[test]
fn a_push_from_a_clock_far_ahead_is_refused_and_counted() {
    let mut rng = StdRng::seed_from_u64(3);
    let edge = edge(0, &mut rng);
    let cloud = crate::node::open_in_memory().unwrap();
    let mut push = prepare(edge.engine.mvcc(), &edge.config, None).unwrap().push;
    // A minute ahead: past the 10 s drift a cloud takes.
    push.clock = cloud.mvcc().clock_now() + (60u64 << 32);
    let metrics = cloud::Metrics::default();
    let refused = cloud::apply(cloud.mvcc(), &push, &metrics).unwrap_err();
    assert_eq!(refused.sqlstate(), "22008", "{refused}");
    assert!(refused.to_string().contains("maximum drift"), "{refused}");
    assert_eq!(metrics.clock_refused.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(metrics.refused.load(std::sync::atomic::Ordering::Relaxed), 1);
    // A change stamped after the push's own clock is refused too.
    push.clock = cloud.mvcc().clock_now();
    push.through = Some(Position { version: push.clock + (60u64 << 32), index: 0 });
    assert!(cloud::apply(cloud.mvcc(), &push, &metrics).is_err());
}

#[test]
fn deletes_and_truncates_on_the_cloud_keep_older_changes_out_after_gc() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut cloud = Cloud::new();
    let mut a = edge(0, &mut rng);
    let mut b = edge(1, &mut rng);
    let mut on_cloud = cloud.engine.session("admin", "chronos");
    let keys = |session: &mut Session| -> Vec<Vec<Value>> { rows(session, "SELECT k, v FROM t ORDER BY k") };
    run(&mut a.session, "INSERT INTO t VALUES (1, 1), (2, 2)");
    drain(&mut a, &mut cloud);
    // Edge b writes key 1 while it cannot reach the cloud; the cloud then deletes that row
    // itself, and garbage collection removes the row's tombstone before b's change arrives.
    run(&mut b.session, "INSERT INTO t VALUES (1, 10)");
    run(&mut on_cloud, "DELETE FROM t WHERE k = 1");
    cloud.engine.mvcc().gc().unwrap();
    drain(&mut b, &mut cloud);
    assert_eq!(keys(&mut on_cloud), vec![vec![Value::Int4(2), Value::Int4(2)]], "the older change stayed out");
    // A change made after the delete wins over it.
    run(&mut b.session, "UPDATE t SET v = 11 WHERE k = 1");
    drain(&mut b, &mut cloud);
    assert_eq!(keys(&mut on_cloud), vec![vec![Value::Int4(1), Value::Int4(11)], vec![Value::Int4(2), Value::Int4(2)]]);
    // The same for TRUNCATE on the cloud: what edges wrote before it stays out.
    run(&mut b.session, "INSERT INTO t VALUES (4, 40)");
    run(&mut on_cloud, "TRUNCATE t");
    cloud.engine.mvcc().gc().unwrap();
    drain(&mut b, &mut cloud);
    assert_eq!(keys(&mut on_cloud), Vec::<Vec<Value>>::new(), "the change from before the TRUNCATE stayed out");
    run(&mut b.session, "INSERT INTO t VALUES (5, 50)");
    drain(&mut b, &mut cloud);
    assert_eq!(keys(&mut on_cloud), vec![vec![Value::Int4(5), Value::Int4(50)]]);
}

#[test]
fn a_table_with_sync_off_stays_on_the_edge() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut cloud = Cloud::new();
    let mut edge = edge(0, &mut rng);
    let mut on_cloud = cloud.engine.session("admin", "chronos");
    run(&mut edge.session, "CREATE TABLE scratch (k INT PRIMARY KEY) WITH (sync = off)");
    run(&mut edge.session, "INSERT INTO scratch VALUES (1); INSERT INTO t VALUES (1, 1)");
    drain(&mut edge, &mut cloud);
    assert_eq!(rows(&mut on_cloud, "SELECT k FROM t"), vec![vec![Value::Int4(1)]]);
    assert_eq!(
        rows(&mut on_cloud, "SELECT count(*) FROM pg_class WHERE relname = 'scratch'"),
        vec![vec![Value::Int8(0)]],
        "nothing of the table reached the cloud"
    );
    // Turned on, it syncs what is written from then on; turned off, it stops again.
    run(&mut edge.session, "ALTER TABLE scratch SET (sync = on); INSERT INTO scratch VALUES (2)");
    run(&mut edge.session, "ALTER TABLE t SET (sync = off); INSERT INTO t VALUES (2, 2)");
    drain(&mut edge, &mut cloud);
    assert_eq!(rows(&mut on_cloud, "SELECT k FROM scratch"), vec![vec![Value::Int4(2)]]);
    assert_eq!(rows(&mut on_cloud, "SELECT k FROM t"), vec![vec![Value::Int4(1)]]);
    // Changes captured before sync was turned off are still pushed; the table the cloud
    // creates for them is its own, without the edge's setting.
    run(&mut edge.session, "CREATE TABLE late (k INT PRIMARY KEY); INSERT INTO late VALUES (1)");
    run(&mut edge.session, "ALTER TABLE late SET (sync = off)");
    drain(&mut edge, &mut cloud);
    assert_eq!(rows(&mut on_cloud, "SELECT k FROM late"), vec![vec![Value::Int4(1)]]);
    assert_eq!(
        rows(&mut on_cloud, "SELECT reloptions IS NULL FROM pg_class WHERE relname = 'late'"),
        vec![vec![Value::Bool(true)]]
    );
    let backlog = outbox::backlog(&mut edge.engine.mvcc().begin()).unwrap();
    assert_eq!(backlog.changes, 0);
}

#[test]
fn a_change_older_than_the_tombstone_horizon_is_refused() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut cloud = Cloud::new();
    let mut a = edge(0, &mut rng);
    let mut b = edge(1, &mut rng);
    let mut on_cloud = cloud.engine.session("admin", "chronos");
    // b writes key 1 while out of touch, and d a table the cloud does not have yet; a inserts
    // and deletes key 1, and the cloud deletes a row of its own: two tombstones. An update
    // on the cloud leaves none.
    let mut d = edge(3, &mut rng);
    let mut e = edge(4, &mut rng);
    run(&mut b.session, "INSERT INTO t VALUES (1, 10)");
    run(&mut e.session, "INSERT INTO t VALUES (3, 99)");
    run(&mut d.session, "CREATE TABLE fresh (k INT PRIMARY KEY); INSERT INTO fresh VALUES (1)");
    run(&mut a.session, "INSERT INTO t VALUES (1, 1), (2, 2), (3, 3); DELETE FROM t WHERE k = 1");
    drain(&mut a, &mut cloud);
    run(&mut on_cloud, "DELETE FROM t WHERE k = 2; UPDATE t SET v = 4 WHERE k = 3");
    let mvcc = cloud.engine.mvcc().clone();
    assert_eq!(cloud::purge_tombstones(&mvcc, 1).unwrap(), 0, "nothing is older than the cutoff");
    let cutoff = mvcc.clock_now();
    assert_eq!(cloud::purge_tombstones(&mvcc, cutoff).unwrap(), 2);
    assert_eq!(cloud::purge_tombstones(&mvcc, cutoff).unwrap(), 0, "gone");
    mvcc.gc().unwrap();
    // b's change predates the horizon and its row has left no trace here: it could bring
    // row 1 back, so the push is refused, and again on every retry.
    for _ in 0..2 {
        let refused = cloud.refusal(&b);
        assert!(matches!(refused, crate::error::Error::NotInPrerequisiteState(_)), "{refused}");
    }
    assert_eq!(rows(&mut on_cloud, "SELECT count(*) FROM t"), vec![vec![Value::Int8(1)]]);
    // Older changes of a table the push creates are applied: nothing was deleted from it.
    drain(&mut d, &mut cloud);
    assert_eq!(rows(&mut on_cloud, "SELECT k FROM fresh"), vec![vec![Value::Int4(1)]]);
    // An older change of a row the cloud holds is merged as ever (it loses to the update).
    drain(&mut e, &mut cloud);
    // Changes made after the horizon are applied as ever.
    let mut c = edge(2, &mut rng);
    run(&mut c.session, "INSERT INTO t VALUES (1, 3)");
    drain(&mut c, &mut cloud);
    assert_eq!(
        rows(&mut on_cloud, "SELECT k, v FROM t ORDER BY k"),
        vec![vec![Value::Int4(1), Value::Int4(3)], vec![Value::Int4(3), Value::Int4(4)]]
    );
}

#[test]
fn a_role_named_after_an_edge_limits_what_it_writes() {
    let mut rng = StdRng::seed_from_u64(6);
    let mut cloud = Cloud::new();
    let mut a = edge(0, &mut rng);
    let mut b = edge(1, &mut rng);
    let mut on_cloud = cloud.engine.session("admin", "chronos");
    run(
        &mut on_cloud,
        "CREATE ROLE \"edge-0\"; CREATE TABLE t (k INT PRIMARY KEY, v INT); GRANT INSERT, UPDATE ON t TO \"edge-0\"",
    );
    // Writes the role may make are merged; a delete it may not make refuses the push.
    run(&mut a.session, "INSERT INTO t VALUES (1, 1), (2, 2)");
    drain(&mut a, &mut cloud);
    run(&mut a.session, "UPDATE t SET v = 3 WHERE k = 1; DELETE FROM t WHERE k = 2");
    let error = cloud.refusal(&a);
    assert!(matches!(&error, crate::error::Error::InsufficientPrivilege(m) if m.contains("DELETE")), "{error}");
    assert_eq!(rows(&mut on_cloud, "SELECT k, v FROM t ORDER BY k").len(), 2);
    run(&mut on_cloud, "GRANT DELETE ON t TO \"edge-0\"");
    drain(&mut a, &mut cloud);
    assert_eq!(rows(&mut on_cloud, "SELECT k, v FROM t"), vec![vec![Value::Int4(1), Value::Int4(3)]]);
    // Creating a table takes a superuser role.
    run(&mut a.session, "CREATE TABLE extra (k INT PRIMARY KEY); INSERT INTO extra VALUES (1)");
    let error = cloud.refusal(&a);
    assert!(matches!(&error, crate::error::Error::InsufficientPrivilege(m) if m.contains("create")), "{error}");
    assert_eq!(
        rows(&mut on_cloud, "SELECT count(*) FROM pg_class WHERE relname = 'extra'"),
        vec![vec![Value::Int8(0)]]
    );
    // An edge without a role of its name writes as before.
    run(&mut b.session, "CREATE TABLE other (k INT PRIMARY KEY); INSERT INTO other VALUES (7)");
    drain(&mut b, &mut cloud);
    assert_eq!(rows(&mut on_cloud, "SELECT k FROM other"), vec![vec![Value::Int4(7)]]);
}
