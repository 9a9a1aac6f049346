//! Criterion micro-benchmarks of the engine's hot paths: key encoding, the row codec (with
//! and without LZ4), expression evaluation, commits through a Raft group of one on sled (group commit), and a
//! scan + aggregate through the SQL layer. Run with `cargo bench --bench engine`.

use chronos::mvcc::Mvcc;
use chronos::storage::sled::SledStorage;
use chronos::storage::{keycode, rowcodec};
use chronos::types::Value;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;

fn row(i: i64) -> Vec<Value> {
    vec![
        Value::TimestampTz(1_704_067_200_000_000 + i * 1_000_000),
        Value::Text(format!("sensor-{}", i % 1000)),
        Value::Float8(20.0 + (i % 100) as f64 / 10.0),
    ]
}

fn encodings(c: &mut Criterion) {
    let mut g = c.benchmark_group("encoding");
    g.throughput(Throughput::Elements(1));
    let key = vec![Value::Text("sensor-42".into()), Value::TimestampTz(1_704_067_200_000_000)];
    g.bench_function("keycode/encode_text_timestamp", |b| b.iter(|| keycode::encode_key(std::hint::black_box(&key))));
    let r = row(7);
    g.bench_function("rowcodec/encode_3_columns", |b| b.iter(|| rowcodec::encode_row(std::hint::black_box(&r))));
    let bytes = rowcodec::encode_row(&r);
    g.bench_function("rowcodec/decode_3_columns", |b| b.iter(|| rowcodec::decode_row(std::hint::black_box(&bytes))));
    let wide: Vec<Value> = (0..40).map(|i| Value::Text(format!("payload-field-{i}"))).collect();
    let wide_bytes = rowcodec::encode_row(&wide);
    g.bench_function("rowcodec/encode_40_columns_lz4", |b| {
        b.iter(|| rowcodec::encode_row(std::hint::black_box(&wide)))
    });
    g.bench_function("rowcodec/decode_40_columns_lz4", |b| {
        b.iter(|| rowcodec::decode_row(std::hint::black_box(&wide_bytes)))
    });
    g.finish();
}

fn commits(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = chronos::node::open_dir(dir.path()).expect("engine");
    let mvcc = engine.mvcc().clone();
    let mut g = c.benchmark_group("mvcc");
    g.sample_size(20);
    // The apply step of a committed Raft entry, on its own.
    let apply_dir = tempfile::tempdir().expect("temp dir");
    let apply = Mvcc::new(Arc::new(SledStorage::open(apply_dir.path()).expect("sled"))).expect("mvcc");
    let mut version: u64 = 0;
    g.bench_function("apply_1_row_batch_no_fsync", |b| {
        b.iter(|| {
            version += 1;
            let mut key = vec![0x02, 0, 0, 0, 9];
            key.extend_from_slice(&version.to_be_bytes());
            let batch = chronos::mvcc::WriteBatch {
                version,
                writes: vec![(key, Some(rowcodec::encode_row(&row(version as i64))))],
            };
            apply.apply_committed(&batch, version).expect("apply");
        })
    });
    // A whole commit: validate, propose, append and fsync the Raft log, apply.
    let mut n: u64 = 0;
    g.bench_function("commit_1_row_fsync", |b| {
        b.iter(|| {
            n += 1;
            let mut t = mvcc.begin();
            let mut key = vec![0x02, 0, 0, 0, 9];
            key.extend_from_slice(&n.to_be_bytes());
            t.set(key, rowcodec::encode_row(&row(n as i64)));
            t.commit().expect("commit");
        })
    });
    g.bench_function("commit_8_threads_x_16_rows_group_commit", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..8 {
                    let mvcc = mvcc.clone();
                    s.spawn(move || {
                        for _ in 0..16 {
                            let mut t = mvcc.begin();
                            let id = mvcc.unique_id();
                            let mut key = vec![0x02, 0, 0, 0, 10];
                            key.extend_from_slice(&id.to_be_bytes());
                            t.set(key, rowcodec::encode_row(&row(id)));
                            t.commit().expect("commit");
                        }
                    });
                }
            })
        })
    });
    g.finish();
}

fn scans(c: &mut Criterion) {
    let rows: usize = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = chronos::node::open_dir(dir.path()).expect("engine");
    let mut session = engine.session("admin", "chronos");
    let setup = format!(
        "CREATE TABLE readings (ts TIMESTAMPTZ, device TEXT, temp FLOAT8); \
         INSERT INTO readings SELECT '2024-01-01Z'::timestamptz + g * interval '1 second', 'dev-' || (g % 1000), 20 + (g % 100) / 10.0 \
         FROM generate_series(1, {rows}) AS g"
    );
    for r in session.run(&setup) {
        r.expect("setup");
    }
    // The first full scan reads storage and the second builds the table's column snapshot;
    // the samples below are the steady state after them.
    for _ in 0..2 {
        session.run("SELECT avg(temp) FROM readings").pop().expect("result").expect("ok");
    }
    let mut g = c.benchmark_group("sql");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rows as u64));
    g.bench_function(format!("scan_avg_{rows}_rows"), |b| {
        b.iter_batched(
            || (),
            |_| session.run("SELECT avg(temp) FROM readings").pop().expect("result").expect("ok"),
            BatchSize::PerIteration,
        )
    });
    // The same scan through storage: column snapshots off (the figure before them, and
    // what a table written between every scan costs).
    engine.mvcc().column_cache().set_budget(0);
    g.bench_function(format!("scan_avg_{rows}_rows_from_storage"), |b| {
        b.iter(|| session.run("SELECT avg(temp) FROM readings").pop().expect("result").expect("ok"))
    });
    engine.mvcc().column_cache().set_budget(chronos::mvcc::columns::DEFAULT_BUDGET);
    g.bench_function(format!("date_trunc_group_by_{rows}_rows"), |b| {
        b.iter(|| {
            session
                .run("SELECT date_trunc('hour', ts), avg(temp) FROM readings GROUP BY 1")
                .pop()
                .expect("result")
                .expect("ok")
        })
    });
    g.finish();
}

fn expressions(c: &mut Criterion) {
    use chronos::sql::execution::{eval::eval, Context, SessionInfo};
    use chronos::sql::planner::plan::{BinaryOp, Expr};
    let mvcc = Mvcc::new(Arc::new(chronos::storage::memory::MemoryStorage::new())).expect("mvcc");
    let mut txn = mvcc.begin();
    let info = SessionInfo::default();
    let mut ctx = Context::new(&mut txn, &[], &info, chronos::sql::execution::memory::Memory::new(1 << 30));
    // temp * 1.8 + 32 > 75 AND device = 'sensor-7'
    let expr = Expr::Binary(
        BinaryOp::And,
        Box::new(Expr::Binary(
            BinaryOp::Gt,
            Box::new(Expr::Binary(
                BinaryOp::Add,
                Box::new(Expr::Binary(
                    BinaryOp::Mul,
                    Box::new(Expr::Column(2)),
                    Box::new(Expr::Constant(Value::Float8(1.8))),
                )),
                Box::new(Expr::Constant(Value::Float8(32.0))),
            )),
            Box::new(Expr::Constant(Value::Float8(75.0))),
        )),
        Box::new(Expr::Binary(
            BinaryOp::Eq,
            Box::new(Expr::Column(1)),
            Box::new(Expr::Constant(Value::Text("sensor-7".into()))),
        )),
    );
    let r = row(7);
    let trunc = Expr::Function {
        name: "date_trunc",
        args: vec![Expr::Constant(Value::Text("hour".into())), Expr::Column(0)],
        return_type: chronos::types::DataType::TimestampTz,
    };
    let mut g = c.benchmark_group("expression");
    g.bench_function("filter_arith_and_compare", |b| b.iter(|| eval(&expr, std::hint::black_box(&r), &mut ctx)));
    g.bench_function("date_trunc_hour", |b| b.iter(|| eval(&trunc, std::hint::black_box(&r), &mut ctx)));
    g.finish();
}

criterion_group!(benches, encodings, expressions, commits, scans);
criterion_main!(benches);
