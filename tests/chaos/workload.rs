//! The workload: clients, each bound to one member, issuing reads and writes of a few
//! registers and appends to a log table, recording every operation with its invocation and
//! response times and its outcome.

use crate::tls::Tls;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const KEYS: i32 = 6;

/// Asked again until it succeeds: a first try may have been applied without an answer.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS reg (k INT PRIMARY KEY, v TEXT);
     CREATE TABLE IF NOT EXISTS events (client INT, n INT)";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The server said the operation did not take effect.
    Failed(String),
    /// It may or may not have: a lost connection, a timeout, "commit unknown".
    Unknown(String),
}

#[derive(Clone, Debug)]
pub enum Action {
    Put {
        key: i32,
        value: String,
    },
    /// With its result when it succeeded.
    Get {
        key: i32,
        result: Option<String>,
    },
    Append {
        n: i32,
    },
}

#[derive(Clone, Debug)]
pub struct Record {
    /// Client `c` works through member `c % MEMBERS`.
    pub client: usize,
    pub action: Action,
    pub invoke: u64,
    pub ret: u64,
    pub outcome: Outcome,
}

/// Nanoseconds since the first call: the history's clock, one for all clients.
pub fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// How a client error is read: definite when the server answered with an SQLSTATE that says
/// nothing was done (class 40 retry, 42 and 22 statement errors, 23 constraints, 25 state);
/// unknown for the rest (connection loss, 08007 commit unknown, 57 shutdown, 53 resources).
pub fn classify(error: &tokio_postgres::Error) -> Outcome {
    match error.code() {
        Some(code) if ["40", "42", "22", "23", "25"].contains(&&code.code()[..2]) => {
            Outcome::Failed(format!("{}: {}", code.code(), error.as_db_error().map_or("", |e| e.message())))
        }
        Some(code) => Outcome::Unknown(format!("{}: {}", code.code(), error.as_db_error().map_or("", |e| e.message()))),
        None => Outcome::Unknown(error.to_string()),
    }
}

#[derive(Clone)]
pub struct Dialer {
    pub configs: Vec<tokio_postgres::Config>,
    pub tls: Tls,
}

impl Dialer {
    pub async fn connect(&self, member: usize) -> Option<tokio_postgres::Client> {
        let connecting = self.configs[member].connect(self.tls.clone());
        match tokio::time::timeout(Duration::from_secs(5), connecting).await {
            Ok(Ok((client, connection))) => {
                tokio::spawn(connection);
                Some(client)
            }
            _ => None,
        }
    }
}

/// Runs one client against `member` until `stop`; its operations go to `history`.
pub async fn client(
    id: usize,
    member: usize,
    seed: u64,
    op_timeout: Duration,
    dialer: Dialer,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Record>>>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut conn: Option<tokio_postgres::Client> = None;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let client = match conn.take().filter(|c| !c.is_closed()) {
            Some(c) => c,
            None => match dialer.connect(member).await {
                // Reads that may be stale, on purpose: the checker must then find them.
                Some(c) if std::env::var_os("CHAOS_FOLLOWER_READS").is_some() => {
                    if c.batch_execute("SET chronos.follower_reads = on").await.is_err() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    c
                }
                Some(c) => c,
                None => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        n += 1;
        let key = rng.gen_range(0..KEYS);
        let roll = rng.gen_range(0..100);
        let action = if roll < 45 {
            Action::Get { key, result: None }
        } else if roll < 85 {
            Action::Put { key, value: format!("c{id}-{n}") }
        } else {
            Action::Append { n }
        };
        let invoke = clock();
        let done = tokio::time::timeout(op_timeout, perform(&client, id, &action)).await;
        let ret = clock();
        let (action, outcome) = match done {
            Err(_) => (action, Outcome::Unknown("timed out".into())),
            Ok(Err(e)) => (action, classify(&e)),
            Ok(Ok(read)) => match action {
                Action::Get { key, .. } => (Action::Get { key, result: read }, Outcome::Ok),
                other => (other, Outcome::Ok),
            },
        };
        // After an unknown outcome the connection's state is unknown too: a new one.
        if matches!(outcome, Outcome::Ok | Outcome::Failed(_)) {
            conn = Some(client);
        }
        history.lock().unwrap().push(Record { client: id, action, invoke, ret, outcome });
    }
}

async fn perform(
    client: &tokio_postgres::Client,
    id: usize,
    action: &Action,
) -> Result<Option<String>, tokio_postgres::Error> {
    match action {
        Action::Put { key, value } => {
            client
                .execute(
                    "INSERT INTO reg (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                    &[key, value],
                )
                .await?;
            Ok(None)
        }
        Action::Get { key, .. } => {
            let row = client.query_opt("SELECT v FROM reg WHERE k = $1", &[key]).await?;
            Ok(row.map(|r| r.get(0)))
        }
        Action::Append { n } => {
            client.execute("INSERT INTO events (client, n) VALUES ($1, $2)", &[&(id as i32), n]).await?;
            Ok(None)
        }
    }
}
