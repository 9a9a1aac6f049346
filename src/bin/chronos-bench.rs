//! `chronos-bench`: a load generator for any PostgreSQL-compatible server.
//!
//! Runs one named workload with N clients for a duration or an operation count and prints one
//! machine-readable line: `workload=… clients=… value=… unit=… p50_ms=… p99_ms=… max_ms=… ops=…`.
//! `--setup` creates and fills the tables the workload reads. See `benches/compare.sh`, which
//! runs every workload against ChronosDB and PostgreSQL in alternation.

use clap::Parser;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

#[derive(Parser, Clone)]
#[command(name = "chronos-bench", about = "Load generator for PostgreSQL-compatible servers")]
struct Args {
    /// libpq-style connection string.
    #[arg(long, default_value = "host=127.0.0.1 port=5432 user=admin dbname=chronos")]
    url: String,
    /// insert_1row, insert_batch, copy, point_select, index_select, scan_agg, bucket_agg, upsert;
    /// over a time-series table `ts_readings (device, ts, temp, PRIMARY KEY (device, ts))`:
    /// ts_copy, ts_insert_batch, ts_window (`avg_1h`), ts_last_hour, ts_bucket.
    #[arg(long)]
    workload: String,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Seconds to run (throughput workloads).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Rows per statement for insert_batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Rows for copy and for the tables the read workloads use.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Repetitions for the latency workloads (scan_agg, bucket_agg).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Create and fill the workload's tables first.
    #[arg(long)]
    setup: bool,
    /// The server has no window aggregates (PostgreSQL): ts_window sends the plain SQL that
    /// `avg_1h` stands for.
    #[arg(long)]
    plain_sql: bool,
}

const SERIES_DDL: &str = "DROP TABLE IF EXISTS ts_readings; \
    CREATE TABLE ts_readings (device TEXT, ts TIMESTAMPTZ, temp FLOAT8, PRIMARY KEY (device, ts))";

/// Rows per COPY when filling the time-series table for the read workloads.
const FILL_CHUNK: usize = 1_000_000;

/// Fills the time-series table with `rows` rows, one COPY per [`FILL_CHUNK`].
async fn fill_series(client: &Client, rows: usize) {
    let now = chrono::Utc::now().timestamp();
    for from in (0..rows).step_by(FILL_CHUNK) {
        copy_series(client, rows, from..(from + FILL_CHUNK).min(rows), now).await;
    }
}

/// Rows `range` of the time-series table of `rows` rows: 100 devices reading every 10 s, the
/// newest at `now`, temperatures with one decimal; one COPY.
async fn copy_series(client: &Client, rows: usize, range: std::ops::Range<usize>, now: i64) {
    use futures::SinkExt;
    let sink =
        client.copy_in("COPY ts_readings (device, ts, temp) FROM STDIN").await.unwrap_or_else(|e| fail("COPY", e));
    futures::pin_mut!(sink);
    let steps = (rows as i64 + 99) / 100;
    let mut buf = String::with_capacity(1 << 20);
    for i in range.start as i64..range.end as i64 {
        let at = now - (steps - 1 - i / 100) * 10;
        let ts = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default().format("%Y-%m-%d %H:%M:%S+00");
        buf.push_str(&format!("dev-{}\t{ts}\t{}\n", i % 100, 15.0 + ((i * 7) % 200) as f64 / 10.0));
        if buf.len() > (1 << 20) - 100 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut buf))).await.unwrap_or_else(|e| fail("COPY data", e));
        }
    }
    if !buf.is_empty() {
        sink.send(bytes::Bytes::from(buf)).await.unwrap_or_else(|e| fail("COPY data", e));
    }
    sink.finish().await.unwrap_or_else(|e| fail("COPY finish", format!("{e:?}")));
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| {
        eprintln!("chronos-bench: cannot connect to {url}: {e}");
        std::process::exit(2);
    });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn fail(context: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("chronos-bench: {context}: {e}");
    std::process::exit(1);
}

/// A cheap deterministic pseudo-random sequence per client (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn reading_row(i: u64) -> (String, String, f64) {
    let ts =
        format!("2024-01-{:02} {:02}:{:02}:{:02}+00", 1 + (i / 86_400) % 28, (i / 3600) % 24, (i / 60) % 60, i % 60);
    (ts, format!("dev-{}", i % 1000), 15.0 + (i % 200) as f64 / 10.0)
}

async fn copy_rows(client: &Client, table: &str, rows: usize, offset: u64) {
    use futures::SinkExt;
    let sink = client
        .copy_in(&format!("COPY {table} (ts, device, temp) FROM STDIN"))
        .await
        .unwrap_or_else(|e| fail("COPY", e));
    futures::pin_mut!(sink);
    let mut buf = String::with_capacity(1 << 20);
    for i in 0..rows as u64 {
        let (ts, device, temp) = reading_row(offset + i);
        buf.push_str(&format!("{ts}\t{device}\t{temp}\n"));
        if buf.len() > (1 << 20) - 100 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut buf))).await.unwrap_or_else(|e| fail("COPY data", e));
        }
    }
    if !buf.is_empty() {
        sink.send(bytes::Bytes::from(buf)).await.unwrap_or_else(|e| fail("COPY data", e));
    }
    sink.finish().await.unwrap_or_else(|e| fail("COPY finish", format!("{e:?}")));
}

async fn setup(args: &Args) {
    let client = connect(&args.url).await;
    let ddl = match args.workload.as_str() {
        "insert_1row" | "insert_batch" | "copy" => {
            "DROP TABLE IF EXISTS readings; CREATE TABLE readings (ts TIMESTAMPTZ, device TEXT, temp FLOAT8)"
        }
        "point_select" => "DROP TABLE IF EXISTS kv; CREATE TABLE kv (id INT PRIMARY KEY, v TEXT)",
        "index_select" | "scan_agg" | "bucket_agg" => {
            "DROP TABLE IF EXISTS readings; CREATE TABLE readings (ts TIMESTAMPTZ, device TEXT, temp FLOAT8)"
        }
        "upsert" => "DROP TABLE IF EXISTS last_value; CREATE TABLE last_value (device TEXT PRIMARY KEY, ts TIMESTAMPTZ, temp FLOAT8)",
        "ts_copy" | "ts_insert_batch" | "ts_window" | "ts_last_hour" | "ts_bucket" => SERIES_DDL,
        other => fail("unknown workload", other),
    };
    client.batch_execute(ddl).await.unwrap_or_else(|e| fail("setup", e));
    match args.workload.as_str() {
        "point_select" => {
            let rows = args.rows.min(100_000);
            for start in (0..rows).step_by(1000) {
                let values: Vec<String> =
                    (start..(start + 1000).min(rows)).map(|i| format!("({i}, 'value-{i}')")).collect();
                client
                    .batch_execute(&format!("INSERT INTO kv VALUES {}", values.join(",")))
                    .await
                    .unwrap_or_else(|e| fail("fill kv", e));
            }
        }
        "index_select" | "scan_agg" | "bucket_agg" => {
            copy_rows(&client, "readings", args.rows, 0).await;
            if args.workload == "index_select" {
                client
                    .batch_execute("CREATE INDEX readings_device ON readings (device)")
                    .await
                    .unwrap_or_else(|e| fail("index", e));
            }
        }
        "ts_window" | "ts_last_hour" | "ts_bucket" => fill_series(&client, args.rows).await,
        _ => {}
    }
}

/// Runs `op` on every client until the deadline; returns per-operation latencies and the
/// number of rows each operation wrote or read.
async fn run_clients<F, Fut>(args: &Args, rows_per_op: u64, op: F) -> (Vec<Duration>, f64)
where
    F: Fn(Arc<Client>, u64, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for c in 0..args.clients {
        let client = Arc::new(connect(&args.url).await);
        let op = op.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1));
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let seq = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if let Err(e) = op(client.clone(), seq, rng.next()).await {
                    fail("operation", e);
                }
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let throughput = all.len() as f64 * rows_per_op as f64 / elapsed;
    (all, throughput)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

fn report(args: &Args, mut latencies: Vec<Duration>, value: f64, unit: &str) {
    latencies.sort();
    println!(
        "workload={} clients={} value={:.3} unit={} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} ops={}",
        args.workload,
        args.clients,
        value,
        unit,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
        latencies.len()
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.setup {
        setup(&args).await;
        return;
    }
    match args.workload.as_str() {
        "insert_1row" => {
            let (lat, tput) = run_clients(&args, 1, |client, seq, _| async move {
                let (ts, device, temp) = reading_row(seq);
                client
                    .execute(
                        "INSERT INTO readings (ts, device, temp) VALUES ($1::text::timestamptz, $2, $3)",
                        &[&ts, &device, &temp],
                    )
                    .await
                    .map(|_| ())
            })
            .await;
            report(&args, lat, tput, "rows_per_s");
        }
        "insert_batch" | "ts_insert_batch" => {
            let table = if args.workload == "insert_batch" { "readings" } else { "ts_readings" };
            let batch = args.batch as u64;
            let (lat, tput) = run_clients(&args, batch, move |client, seq, _| async move {
                let values: Vec<String> = (0..batch)
                    .map(|i| {
                        let (ts, device, temp) = reading_row(seq * batch + i);
                        format!("('{ts}', '{device}', {temp})")
                    })
                    .collect();
                client
                    .batch_execute(&format!("INSERT INTO {table} (ts, device, temp) VALUES {}", values.join(",")))
                    .await
            })
            .await;
            report(&args, lat, tput, "rows_per_s");
        }
        "copy" | "ts_copy" => {
            let client = connect(&args.url).await;
            let t = Instant::now();
            if args.workload == "copy" {
                copy_rows(&client, "readings", args.rows, 0).await;
            } else {
                copy_series(&client, args.rows, 0..args.rows, chrono::Utc::now().timestamp()).await;
            }
            let elapsed = t.elapsed();
            report(&args, vec![elapsed], args.rows as f64 / elapsed.as_secs_f64(), "rows_per_s");
        }
        "point_select" => {
            let n = args.rows.min(100_000) as u64;
            let (lat, tput) = run_clients(&args, 1, move |client, _, r| async move {
                let id = (r % n) as i32;
                let row = client.query_opt("SELECT v FROM kv WHERE id = $1", &[&id]).await?;
                assert!(row.is_some(), "key {id} missing");
                Ok(())
            })
            .await;
            report(&args, lat, tput, "ops_per_s");
        }
        "index_select" => {
            let (lat, tput) = run_clients(&args, 1, move |client, _, r| async move {
                let device = format!("dev-{}", r % 1000);
                client.query_one("SELECT count(*) FROM readings WHERE device = $1", &[&device]).await.map(|_| ())
            })
            .await;
            report(&args, lat, tput, "ops_per_s");
        }
        "scan_agg" | "bucket_agg" | "ts_window" | "ts_last_hour" | "ts_bucket" => {
            let client = connect(&args.url).await;
            let sql = match args.workload.as_str() {
                "scan_agg" => "SELECT avg(temp) FROM readings",
                "bucket_agg" => "SELECT date_trunc('hour', ts) AS h, avg(temp) FROM readings GROUP BY 1",
                "ts_window" if args.plain_sql => {
                    "SELECT avg(temp) FROM ts_readings WHERE ts >= date_trunc('minute', now()) - interval '1 hour'"
                }
                "ts_window" => "SELECT avg_1h(temp) FROM ts_readings",
                "ts_last_hour" => "SELECT avg(temp) FROM ts_readings WHERE ts >= now() - interval '1 hour'",
                _ => "SELECT date_trunc('hour', ts) AS h, avg(temp) FROM ts_readings GROUP BY 1",
            };
            // One warm-up run, then the measured ones.
            client.simple_query(sql).await.unwrap_or_else(|e| fail(sql, e));
            let mut latencies = Vec::new();
            for _ in 0..args.repeat {
                let t = Instant::now();
                client.simple_query(sql).await.unwrap_or_else(|e| fail(sql, e));
                latencies.push(t.elapsed());
            }
            let mut sorted = latencies.clone();
            sorted.sort();
            let median = percentile(&sorted, 0.5);
            report(&args, latencies, median, "ms");
        }
        "upsert" => {
            let (lat, tput) = run_clients(&args, 1, |client, seq, r| async move {
                let (ts, _, temp) = reading_row(seq);
                let device = format!("dev-{}", r % 1000);
                client
                    .execute(
                        "INSERT INTO last_value (device, ts, temp) VALUES ($1, $2::text::timestamptz, $3) \
                         ON CONFLICT (device) DO UPDATE SET ts = EXCLUDED.ts, temp = EXCLUDED.temp",
                        &[&device, &ts, &temp],
                    )
                    .await
                    .map(|_| ())
            })
            .await;
            report(&args, lat, tput, "rows_per_s");
        }
        other => fail("unknown workload", other),
    }
}
