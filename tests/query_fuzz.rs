//! A grammar-based query fuzzer against a live server, for a bounded time: random SQL with
//! nested expressions, functions given extreme arguments, casts, joins, CTEs, subqueries and
//! writes. Any statement may fail; the server process must never die, and must answer after
//! every statement.
//!
//! `CHRONOS_FUZZ_SECONDS` (default 20) bounds the run; `CHRONOS_FUZZ_SEED` picks the seed (a
//! fixed one by default, `random` for a new one each run; it is printed first). A statement
//! that killed the server is printed with its seed; keep it as a regression test once fixed.

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use support::Server;

const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "7",
    "2147483647",
    "-2147483648",
    "9223372036854775807",
    "(-9223372036854775807 - 1)",
    "NULL",
    "1000000",
    "2000000000",
];
const FLOATS: &[&str] = &["0.5", "-0.0", "1e308", "-1e308", "'NaN'::float8", "'Infinity'::float8", "1e-320"];
const TEXTS: &[&str] =
    &["''", "'a'", "'abc'", "'%_\\\\'", "'é漢'", "NULL", "'2024-01-01'", "'{\"a\":[1,2]}'", "'x\\'y'"];
const TYPES: &[&str] = &[
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "numeric(5,2)",
    "text",
    "varchar(3)",
    "bool",
    "date",
    "timestamp",
    "timestamptz",
    "interval",
    "jsonb",
    "bytea",
    "int4[]",
    "text[]",
    "uuid",
];
const FUNCTIONS: &[(&str, usize)] = &[
    ("repeat", 2),
    ("lpad", 2),
    ("rpad", 3),
    ("substr", 3),
    ("replace", 3),
    ("regexp_replace", 4),
    ("upper", 1),
    ("length", 1),
    ("md5", 1),
    ("abs", 1),
    ("round", 2),
    ("power", 2),
    ("sqrt", 1),
    ("ln", 1),
    ("mod", 2),
    ("coalesce", 3),
    ("nullif", 2),
    ("greatest", 3),
    ("least", 2),
    ("to_char", 2),
    ("date_trunc", 2),
    ("split_part", 3),
    ("left", 2),
    ("right", 2),
    ("format", 3),
    ("jsonb_build_object", 2),
    ("array_length", 2),
    ("string_to_array", 2),
    ("translate", 3),
    ("chr", 1),
    ("to_hex", 1),
    ("encode", 2),
    ("decode", 2),
    ("array_fill", 2),
    ("generate_series", 2),
    ("unnest", 1),
    ("overlay", 3),
    ("to_timestamp", 1),
    ("extract", 2),
];
const AGGREGATES: &[&str] =
    &["count", "sum", "avg", "min", "max", "string_agg", "array_agg", "stddev", "bool_and", "jsonb_agg"];

struct Gen {
    rng: StdRng,
}

/// The types the typed generator builds expressions of.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bool,
    Float,
    Time,
    Json,
}

impl Gen {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.gen_range(0..items.len())]
    }

    fn literal(&mut self) -> String {
        match self.rng.gen_range(0..6) {
            0 | 1 => self.pick(INTS).to_string(),
            2 => self.pick(FLOATS).to_string(),
            3 | 4 => self.pick(TEXTS).to_string(),
            _ => match self.rng.gen_range(0..4) {
                0 => "ARRAY[1, NULL, 3]".into(),
                1 => "now()".into(),
                2 => "interval '1 day'".into(),
                _ => "'{\"k\": {\"n\": 1}}'::jsonb".into(),
            },
        }
    }

    fn expr(&mut self, depth: usize) -> String {
        if depth == 0 || self.rng.gen_bool(0.25) {
            return match self.rng.gen_range(0..5) {
                0 | 1 => self.literal(),
                _ => self.pick(&["a", "b", "c", "d", "e", "t.a", "t.b", "a + 1"]).to_string(),
            };
        }
        let d = depth - 1;
        match self.rng.gen_range(0..12) {
            0 | 1 => {
                let op =
                    self.pick(&["+", "-", "*", "/", "%", "||", "=", "<", "<>", ">=", "AND", "OR", "->", "->>", "@>"]);
                format!("({} {op} {})", self.expr(d), self.expr(d))
            }
            2..=4 => {
                let (name, arity) = FUNCTIONS[self.rng.gen_range(0..FUNCTIONS.len())];
                let args: Vec<String> = (0..arity).map(|_| self.expr(d)).collect();
                format!("{name}({})", args.join(", "))
            }
            5 => format!("CAST({} AS {})", self.expr(d), self.pick(TYPES)),
            6 => format!("{}::{}", self.expr(d), self.pick(TYPES)),
            7 => format!("CASE WHEN {} THEN {} ELSE {} END", self.expr(d), self.expr(d), self.expr(d)),
            8 => format!("(SELECT {} FROM t LIMIT 1)", self.expr(d)),
            9 => format!("EXISTS (SELECT 1 FROM t WHERE {})", self.expr(d)),
            10 => format!("{} IN ({}, {})", self.expr(d), self.expr(d), self.literal()),
            _ => format!("NOT ({} IS NULL)", self.expr(d)),
        }
    }

    /// A well-typed expression of `kind` (most statements should get past the binder to reach
    /// the executor), with a wild untyped one now and then.
    fn typed(&mut self, kind: Kind, depth: usize) -> String {
        if depth == 0 || self.rng.gen_bool(0.2) {
            return self.leaf(kind);
        }
        if self.rng.gen_bool(0.1) {
            return self.expr(depth);
        }
        let d = depth - 1;
        let e = |g: &mut Self, k| g.typed(k, d);
        let any = self.any_kind();
        match kind {
            Kind::Int => match self.rng.gen_range(0..10) {
                0 => {
                    format!("({} {} {})", e(self, Kind::Int), self.pick(&["+", "-", "*", "/", "%"]), e(self, Kind::Int))
                }
                1 => format!("length({})", e(self, Kind::Text)),
                2 => format!("abs({})", e(self, Kind::Int)),
                3 => format!(
                    "CASE WHEN {} THEN {} ELSE {} END",
                    e(self, Kind::Bool),
                    e(self, Kind::Int),
                    e(self, Kind::Int)
                ),
                4 => format!("(SELECT max(a) FROM t WHERE {})", e(self, Kind::Bool)),
                5 => format!("coalesce({}, {})", e(self, Kind::Int), e(self, Kind::Int)),
                6 => format!("greatest({}, {}, {})", e(self, Kind::Int), e(self, Kind::Int), e(self, Kind::Int)),
                7 => format!("extract(year FROM {})::int", e(self, Kind::Time)),
                8 => format!("({})::int2", e(self, Kind::Int)),
                _ => format!("strpos({}, {})", e(self, Kind::Text), e(self, Kind::Text)),
            },
            Kind::Text => match self.rng.gen_range(0..14) {
                0 => format!("repeat({}, {})", e(self, Kind::Text), self.pick(&["0", "3", "100", "100000", "a", "-5"])),
                1 => format!("lpad({}, {}, {})", e(self, Kind::Text), e(self, Kind::Int), e(self, Kind::Text)),
                2 => format!("upper({})", e(self, Kind::Text)),
                3 => format!("md5({})", e(self, Kind::Text)),
                4 => format!("substr({}, {}, {})", e(self, Kind::Text), e(self, Kind::Int), e(self, Kind::Int)),
                5 => format!("replace({}, {}, {})", e(self, Kind::Text), e(self, Kind::Text), e(self, Kind::Text)),
                6 => format!(
                    "regexp_replace({}, '{}', {}, 'g')",
                    e(self, Kind::Text),
                    self.pick(&["[a-z]+", "(.)", "^", "x*", "\\d"]),
                    e(self, Kind::Text)
                ),
                7 => format!("({} || {})", e(self, Kind::Text), e(self, Kind::Text)),
                8 => format!(
                    "to_char({}, '{}')",
                    e(self, Kind::Time),
                    self.pick(&["YYYY-MM-DD", "HH24:MI:SS.MS", "Day", "FM9999"])
                ),
                9 => format!(
                    "format('%s-%I-%L', {}, {}, {})",
                    e(self, Kind::Text),
                    e(self, Kind::Text),
                    e(self, Kind::Int)
                ),
                10 => format!("split_part({}, ',', {})", e(self, Kind::Text), e(self, Kind::Int)),
                11 => format!("({})::text", e(self, any)),
                12 => format!("encode(convert_to({}, 'UTF8'), 'base64')", e(self, Kind::Text)),
                _ => format!("(SELECT string_agg(b, ',') FROM t WHERE {})", e(self, Kind::Bool)),
            },
            Kind::Bool => match self.rng.gen_range(0..9) {
                0 => format!("({} {} {})", e(self, Kind::Int), self.pick(&["=", "<", ">=", "<>"]), e(self, Kind::Int)),
                1 => format!(
                    "({} {} {})",
                    e(self, Kind::Text),
                    self.pick(&["=", "<", "LIKE", "~", "ILIKE"]),
                    e(self, Kind::Text)
                ),
                2 => format!("({} {} {})", e(self, Kind::Bool), self.pick(&["AND", "OR"]), e(self, Kind::Bool)),
                3 => format!("NOT {}", e(self, Kind::Bool)),
                4 => format!("({} IS NULL)", e(self, any)),
                5 => format!("EXISTS (SELECT 1 FROM t WHERE {})", e(self, Kind::Bool)),
                6 => format!("{} IN (SELECT a FROM t)", e(self, Kind::Int)),
                7 => format!("({} @> '{{\"a\": 1}}')", e(self, Kind::Json)),
                _ => format!("({} < {})", e(self, Kind::Time), e(self, Kind::Time)),
            },
            Kind::Float => match self.rng.gen_range(0..6) {
                0 => {
                    format!("({} {} {})", e(self, Kind::Float), self.pick(&["+", "-", "*", "/"]), e(self, Kind::Float))
                }
                1 => format!("sqrt(abs({}))", e(self, Kind::Float)),
                2 => format!("ln({})", e(self, Kind::Float)),
                3 => format!("power({}, {})", e(self, Kind::Float), e(self, Kind::Float)),
                4 => format!("({})::float8", e(self, Kind::Int)),
                _ => format!("round(({})::numeric, 2)::float8", e(self, Kind::Float)),
            },
            Kind::Time => match self.rng.gen_range(0..4) {
                0 => format!("date_trunc('{}', {})", self.pick(&["hour", "day", "month", "week"]), e(self, Kind::Time)),
                1 => format!(
                    "({} + interval '{}')",
                    e(self, Kind::Time),
                    self.pick(&["1 day", "-100 years", "1 microsecond"])
                ),
                2 => format!("to_timestamp({})", e(self, Kind::Float)),
                _ => format!("({} AT TIME ZONE 'Europe/Berlin')::timestamptz", e(self, Kind::Time)),
            },
            Kind::Json => match self.rng.gen_range(0..4) {
                0 => format!("jsonb_build_object('k', {}, 'v', {})", e(self, Kind::Int), e(self, Kind::Text)),
                1 => format!("({} -> 'a')", e(self, Kind::Json)),
                2 => format!("to_jsonb({})", e(self, Kind::Text)),
                _ => format!("jsonb_set({}, '{{a}}', {})", e(self, Kind::Json), e(self, Kind::Json)),
            },
        }
    }

    fn leaf(&mut self, kind: Kind) -> String {
        let pick = |g: &mut Self, items: &[&str]| g.pick(items).to_string();
        match kind {
            Kind::Int => pick(self, &["a", "0", "1", "-1", "2147483647", "-2147483648", "NULL", "7"]),
            Kind::Text => pick(self, &["b", "''", "'abc'", "'é漢'", "NULL", "'a,b,c'", "'%'"]),
            Kind::Bool => pick(self, &["true", "false", "NULL", "(a > 1)"]),
            Kind::Float => pick(self, &["c", "0.5", "-0.0", "1e308", "'NaN'::float8", "'-Infinity'::float8", "NULL"]),
            Kind::Time => {
                pick(self, &["d", "now()", "'infinity'::timestamptz", "'2024-02-29 12:00'::timestamptz", "NULL"])
            }
            Kind::Json => pick(self, &["e", "'{}'::jsonb", "'[1, {\"a\": 1}]'::jsonb", "'null'::jsonb", "NULL"]),
        }
    }

    fn any_kind(&mut self) -> Kind {
        [Kind::Int, Kind::Text, Kind::Bool, Kind::Float, Kind::Time, Kind::Json][self.rng.gen_range(0..6)]
    }

    fn from(&mut self) -> String {
        match self.rng.gen_range(0..7) {
            0 | 1 => "t".into(),
            2 => format!("generate_series(1, {}) AS g(a)", self.rng.gen_range(0..2000)),
            3 => "t JOIN t AS u ON t.a = u.a".into(),
            4 => format!("(SELECT {} AS a, {} AS b FROM t) AS s", self.expr(2), self.expr(2)),
            5 => "t, LATERAL (SELECT t.a + 1 AS z) AS l".into(),
            _ => "v".into(),
        }
    }

    fn statement(&mut self) -> String {
        let depth = self.rng.gen_range(1..5);
        match self.rng.gen_range(0..16) {
            0..=6 => {
                let items: Vec<String> = (0..self.rng.gen_range(1..4))
                    .map(|_| {
                        let kind = self.any_kind();
                        self.typed(kind, depth)
                    })
                    .collect();
                let mut sql = format!("SELECT {} FROM {}", items.join(", "), self.from());
                if self.rng.gen_bool(0.5) {
                    sql += &format!(" WHERE {}", self.typed(Kind::Bool, depth));
                }
                if self.rng.gen_bool(0.3) {
                    sql += " ORDER BY 1";
                }
                if self.rng.gen_bool(0.3) {
                    sql += &format!(" LIMIT {}", self.pick(&["0", "1", "10", "NULL", "-1", "9223372036854775807"]));
                }
                sql
            }
            7 => {
                let agg = self.pick(AGGREGATES);
                let arg = self.expr(depth);
                let extra = if agg == "string_agg" { ", ','" } else { "" };
                format!("SELECT a % 3, {agg}({arg}{extra}) FROM {} GROUP BY 1 HAVING count(*) > 0", self.from())
            }
            8 => format!(
                "WITH x AS (SELECT {} AS a FROM {}) SELECT * FROM x, x AS y LIMIT 50",
                self.expr(depth),
                self.from()
            ),
            9 => format!(
                "INSERT INTO w SELECT {}, {} FROM {} LIMIT 20",
                self.typed(Kind::Text, depth),
                self.typed(Kind::Text, depth),
                self.from()
            ),
            10 => format!("UPDATE w SET x = {} WHERE {}", self.typed(Kind::Text, depth), self.typed(Kind::Bool, depth)),
            11 => format!("DELETE FROM w WHERE {}", self.typed(Kind::Bool, depth)),
            12 => format!(
                "WITH d AS (DELETE FROM w WHERE {} RETURNING x) SELECT count(*) FROM d",
                self.typed(Kind::Bool, depth)
            ),
            13 => format!(
                "SELECT {} FROM t WINDOW w AS (ORDER BY a)",
                self.pick(&[
                    "row_number() OVER w",
                    "sum(a) OVER w",
                    "lag(b, 2) OVER w",
                    "rank() OVER (PARTITION BY a % 2 ORDER BY b)",
                ])
            ),
            14 => format!("EXPLAIN SELECT {} FROM {}", self.expr(depth), self.from()),
            _ => {
                // Chains around the depth limit, and huge values.
                let n = self.rng.gen_range(900..1100);
                match self.rng.gen_range(0..3) {
                    0 => format!("SELECT {}", vec!["1"; n].join(" + ")),
                    1 => format!("SELECT length(repeat('xy', {}))", self.pick(&["1000000", "600000000", "2147483647"])),
                    _ => format!("SELECT count(*) FROM generate_series(1, {})", self.pick(&["100000", "1000000000"])),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sql_never_takes_the_server_down() {
    let seconds: u64 = std::env::var("CHRONOS_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    // A fixed seed by default, so a run is repeatable; `CHRONOS_FUZZ_SEED=random` explores.
    let seed: u64 = match std::env::var("CHRONOS_FUZZ_SEED").ok().as_deref() {
        Some("random") => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
        Some(seed) => seed.parse().expect("CHRONOS_FUZZ_SEED: a number or `random`"),
        None => 20_261_204,
    };
    println!("query fuzzer: CHRONOS_FUZZ_SEED={seed} CHRONOS_FUZZ_SECONDS={seconds}");
    let mut gen = Gen { rng: StdRng::seed_from_u64(seed) };
    let mut server = Server::start();
    let setup = "CREATE TABLE t (a INT PRIMARY KEY, b TEXT, c FLOAT8, d TIMESTAMPTZ, e JSONB);
        INSERT INTO t VALUES (1, 'one', 1.5, '2024-01-01', '{\"a\": 1}'), (2, NULL, NULL, NULL, NULL),
            (3, '', 'NaN', 'infinity', '[]'), (2147483647, repeat('z', 300), -1e308, '1970-01-01', '{\"a\": [1, 2]}');
        CREATE INDEX t_b ON t (b);
        CREATE VIEW v AS SELECT a, b, c, d, e FROM t WHERE a > 1;
        CREATE TABLE w (x TEXT, y TEXT)";
    server.connect("admin").await.batch_execute(setup).await.unwrap();
    let mut client = server.connect("admin").await;
    client.batch_execute("SET statement_timeout = '2s'").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut ran, mut failed) = (0u64, 0u64);
    let mut internal = Vec::new();
    let mut codes = std::collections::BTreeMap::new();
    while Instant::now() < deadline {
        let sql = gen.statement();
        let result = tokio::time::timeout(Duration::from_secs(30), client.simple_query(&sql)).await;
        ran += 1;
        let died = |server: &mut Server| !server.is_running();
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.is_closed() || e.code().is_none() => {
                assert!(!died(&mut server), "the server died on (seed {seed}): {sql}\n{e:?}");
                failed += 1;
                client = server.connect("admin").await;
                client.batch_execute("SET statement_timeout = '2s'").await.unwrap();
            }
            Ok(Err(e)) => {
                failed += 1;
                *codes.entry(e.code().map(|c| c.code().to_string()).unwrap_or_default()).or_insert(0u64) += 1;
                // An internal error is a bug caught on its way to the client (a panic in a
                // statement): the server survives it, but it is reported.
                if e.code().is_some_and(|c| c.code() == "XX000") {
                    internal.push(format!("{sql}\n    {e}"));
                }
            }
            Err(_) => panic!("no answer in 30 s (seed {seed}): {sql}"),
        }
        assert!(!died(&mut server), "the server died on (seed {seed}): {sql}");
        if ran % 25 == 0 {
            let probe = server.connect("admin").await;
            let one: i32 = probe.query_one("SELECT 1", &[]).await.unwrap().get(0);
            assert_eq!(one, 1, "the server stopped answering after (seed {seed}): {sql}");
        }
    }
    println!("query fuzzer: {ran} statements, {failed} failed with an error, server alive");
    println!("query fuzzer: errors by SQLSTATE {codes:?}");
    for found in &internal {
        println!("internal error (seed {seed}): {found}");
    }
    assert!(ran > 50, "only {ran} statements in {seconds} s");
    assert!(server.is_running());
}
