//! `chronos-admin`: the operator's command line. It talks to members' operations endpoints
//! (`--url`, any member; it finds the leader among those given) and, for roles, to the SQL
//! port. Tables for people by default, `--json` for scripts.
//!
//! Exit codes: 0 done; 1 the operation failed or was refused; 2 bad usage; 3 no member could
//! be reached.

use chronos::admin::{Client, Endpoint};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "chronos-admin",
    version,
    about = "Operate ChronosDB clusters: status, members, leadership, backups, roles"
)]
struct Cli {
    /// Operations endpoints (each member's --http-addr), comma separated or repeated; any
    /// member will do, and every member listed is shown by `status`.
    #[arg(
        long,
        global = true,
        env = "CHRONOS_ADMIN_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:9000"
    )]
    url: Vec<Endpoint>,
    /// The bearer token of the operations endpoint (the servers' CHRONOS_HTTP_TOKEN).
    #[arg(long, global = true, env = "CHRONOS_HTTP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The CA certificate (PEM) https:// endpoints' certificates must chain to.
    #[arg(long, global = true, env = "CHRONOS_TLS_CA_CERT")]
    ca_cert: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every member listed: id, role, term, commit and applied index, lag, health.
    Status,
    /// Add, promote or remove members (sent to the leader).
    Members {
        #[command(subcommand)]
        action: Members,
    },
    /// Hand leadership to another voter and wait until it leads.
    TransferLeader {
        /// The voter to lead.
        id: u64,
    },
    /// Write a backup of the database, as of one commit version, to a file (online).
    Backup {
        /// The file to write.
        #[arg(long)]
        output: PathBuf,
    },
    /// Build a data directory from a backup (the node is started on it afterwards).
    Restore(chronos::admin::RestoreArgs),
    /// Edge synchronization.
    Sync {
        #[command(subcommand)]
        action: Sync,
    },
    /// Roles, through SQL as a superuser.
    Users {
        /// The SQL connection (libpq key=value form); the password is PGPASSWORD.
        #[arg(
            long,
            global = true,
            env = "CHRONOS_ADMIN_PG",
            default_value = "host=127.0.0.1 port=5432 user=admin dbname=chronos"
        )]
        pg: String,
        #[command(subcommand)]
        action: Users,
    },
}

#[derive(Subcommand)]
enum Members {
    /// Add a learner: it must be running with `chronos node --join`.
    Add {
        id: u64,
        /// Its internode address (its --address).
        #[arg(long)]
        address: String,
    },
    /// Make a caught-up learner a voter.
    Promote { id: u64 },
    /// Remove a member.
    Remove { id: u64 },
}

#[derive(Subcommand)]
enum Sync {
    /// Each listed member's edge synchronization: state, backlog, lag, last error.
    Status,
}

#[derive(Subcommand)]
enum Users {
    /// Roles and their attributes.
    List,
    /// Create a role that can log in.
    Create {
        name: String,
        /// Read the password from this environment variable (never from the command line).
        #[arg(long, default_value = "CHRONOS_NEW_PASSWORD")]
        password_env: String,
        /// A superuser.
        #[arg(long)]
        superuser: bool,
    },
    /// Drop a role.
    Drop { name: String },
}

/// What went wrong, and the exit code it gets.
enum Failure {
    Failed(String),
    Unreachable(String),
}

type Outcome = Result<(), Failure>;

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure::Failed(e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chronos-admin: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(e)) => {
            eprintln!("chronos-admin: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(e)) => {
            eprintln!("chronos-admin: {e}");
            ExitCode::from(3)
        }
    }
}

async fn run(cli: Cli) -> Outcome {
    let client = Client::new(cli.token.clone(), cli.ca_cert.as_deref()).map_err(failed)?;
    let admin = Admin { client, urls: cli.url, json: cli.json };
    match cli.command {
        Command::Status => admin.status().await,
        Command::Members { action } => {
            let (target, what) = match action {
                Members::Add { id, address } => {
                    (format!("/raft/members?add={id}&address={address}"), format!("node {id} added as a learner"))
                }
                Members::Promote { id } => (format!("/raft/members?promote={id}"), format!("node {id} promoted")),
                Members::Remove { id } => (format!("/raft/members?remove={id}"), format!("node {id} removed")),
            };
            admin.on_leader(&target, &what).await
        }
        Command::TransferLeader { id } => admin.transfer_leader(id).await,
        Command::Backup { output } => admin.backup(&output).await,
        Command::Restore(args) => admin.restore(&args),
        Command::Sync { action: Sync::Status } => admin.sync_status().await,
        Command::Users { pg, action } => admin.users(&pg, action).await,
    }
}

struct Admin {
    client: Client,
    urls: Vec<Endpoint>,
    json: bool,
}

/// One member's `/health`, or why it could not be read.
struct Member {
    url: Endpoint,
    health: Result<Value, String>,
}

impl Admin {
    async fn members(&self) -> Vec<Member> {
        let mut members = Vec::new();
        for url in &self.urls {
            let health = match self.client.request(url, "GET", "/health").await {
                // 503 still carries the document (a stalled or failed node).
                Ok(answer) => answer.json().map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            members.push(Member { url: url.clone(), health });
        }
        members
    }

    /// The listed members that answered, or exit code 3.
    async fn reachable(&self) -> Result<Vec<(Endpoint, Value)>, Failure> {
        let members = self.members().await;
        let errors: Vec<String> = members.iter().filter_map(|m| m.health.as_ref().err().cloned()).collect();
        let up: Vec<(Endpoint, Value)> = members.into_iter().filter_map(|m| Some((m.url, m.health.ok()?))).collect();
        if up.is_empty() {
            return Err(Failure::Unreachable(format!("no member answered: {}", errors.join("; "))));
        }
        Ok(up)
    }

    async fn status(&self) -> Outcome {
        let members = self.members().await;
        // The leader's view is the cluster's: its commit index and its configuration.
        let leader = members.iter().filter_map(|m| m.health.as_ref().ok()).find(|h| h["role"] == "Leader");
        let leader_commit = leader.and_then(|h| h["commit_index"].as_u64());
        let is_member = |id: &Value| {
            leader.is_none_or(|l| {
                [&l["voters"], &l["learners"]].iter().any(|set| set.as_array().is_some_and(|ids| ids.contains(id)))
            })
        };
        let mut rows = Vec::new();
        for m in &members {
            let row = match &m.health {
                Ok(h) => {
                    let applied = h["applied_index"].as_u64().unwrap_or(0);
                    // A removed member is not told so; it is no longer in the leader's configuration.
                    let member = is_member(&h["id"]);
                    json!({
                        "url": m.url.to_string(),
                        "id": h["id"],
                        "role": if member { h["role"].clone() } else { json!("Removed") },
                        "term": h["term"],
                        "leader": h["leader"],
                        "commit_index": h["commit_index"],
                        "applied_index": applied,
                        "lag": leader_commit.filter(|_| member).map(|c| c.saturating_sub(applied)),
                        "health": h["status"],
                        "reason": h.get("reason").cloned().unwrap_or(Value::Null),
                        "voters": h["voters"],
                        "learners": h["learners"],
                    })
                }
                Err(e) => json!({ "url": m.url.to_string(), "health": "unreachable", "reason": e }),
            };
            rows.push(row);
        }
        let any_up = rows.iter().any(|r| r["health"] != "unreachable");
        if self.json {
            println!("{}", json!({ "members": rows }));
        } else {
            let headers = ["ID", "URL", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "HEALTH"];
            let cells = |r: &Value| -> Vec<String> {
                ["id", "url", "role", "term", "commit_index", "applied_index", "lag", "health"]
                    .iter()
                    .map(|k| match &r[*k] {
                        Value::Null => "-".to_string(),
                        Value::String(s) => s.clone(),
                        v => v.to_string(),
                    })
                    .collect()
            };
            print_table(&headers, rows.iter().map(cells).collect());
            if let Some(h) = leader.or_else(|| members.iter().find_map(|m| m.health.as_ref().ok())) {
                println!("voters {}  learners {}", h["voters"], h["learners"]);
            }
            for r in rows.iter().filter(|r| !r["reason"].is_null()) {
                println!("{}: {}", r["url"].as_str().unwrap_or(""), r["reason"].as_str().unwrap_or(""));
            }
        }
        if any_up {
            Ok(())
        } else {
            Err(Failure::Unreachable("no member answered".into()))
        }
    }

    /// POSTs `target` to the leader and prints what it answered.
    async fn on_leader(&self, target: &str, done: &str) -> Outcome {
        let (url, answer) = self.post_to_leader(target).await?;
        self.print_done(&url, answer, done);
        Ok(())
    }

    fn print_done(&self, url: &Endpoint, answer: Value, done: &str) {
        if self.json {
            println!("{answer}");
        } else {
            println!("{done} (through {url})");
        }
    }

    /// POSTs `target` to the leader: the listed member that says it leads, else the first
    /// that answers, following a refusal's leader id to another listed member once. Returns
    /// the member that accepted and its answer.
    async fn post_to_leader(&self, target: &str) -> Result<(Endpoint, Value), Failure> {
        let up = self.reachable().await?;
        let by_id = |id: u64| up.iter().find(|(_, h)| h["id"].as_u64() == Some(id)).map(|(u, _)| u.clone());
        let mut url = up.iter().find(|(_, h)| h["role"] == "Leader").map_or(up[0].0.clone(), |(u, _)| u.clone());
        for _ in 0..2 {
            let answer = self.client.request(&url, "POST", target).await.map_err(failed)?;
            if (200..300).contains(&answer.status) {
                return Ok((url, answer.json().unwrap_or(Value::Null)));
            }
            let leader = answer.json().ok().and_then(|v| v["leader"].as_u64());
            match leader.and_then(by_id) {
                Some(next) if answer.status == 409 && next != url => url = next,
                _ => {
                    let hint = match leader {
                        Some(id) if by_id(id).is_none() => format!(" (node {id} leads: pass its --url too)"),
                        _ => String::new(),
                    };
                    return Err(Failure::Failed(format!("{}{hint}", chronos::admin::refusal(&url, &answer))));
                }
            }
        }
        Err(Failure::Failed("the leader changed while the request was sent; try again".into()))
    }

    /// Asks the leader to hand over to `id` and waits until a listed member reports `id` as
    /// leader (followers name their leader too). A transfer the leader gives up (the target could not catch up within an
    /// election timeout, or lost the election) is asked for again, three times in all.
    async fn transfer_leader(&self, id: u64) -> Outcome {
        let target = format!("/raft/transfer-leadership?to={id}");
        for _ in 0..3 {
            let (url, answer) = self.post_to_leader(&target).await?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
            while std::time::Instant::now() < deadline {
                let members = self.members().await;
                let led = |h: &Value| h["leader"].as_u64() == Some(id);
                if members.iter().any(|m| m.health.as_ref().is_ok_and(led)) {
                    self.print_done(&url, answer, &format!("node {id} leads"));
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        Err(Failure::Failed(format!(
            "node {id} did not take the leadership (asked three times); `status` shows who leads"
        )))
    }

    async fn backup(&self, output: &std::path::Path) -> Outcome {
        let up = self.reachable().await?;
        let url = up.iter().find(|(_, h)| h["role"] == "Leader").map_or(up[0].0.clone(), |(u, _)| u.clone());
        let terminal = std::io::stderr().is_terminal() && !self.json;
        let started = std::time::Instant::now();
        let mut progress = |bytes: u64| {
            if terminal {
                let mib = bytes as f64 / (1 << 20) as f64;
                let rate = mib / started.elapsed().as_secs_f64().max(1e-3);
                eprint!("\r{mib:10.1} MiB received ({rate:.1} MiB/s)");
            }
        };
        let result = chronos::admin::backup_to_file(&self.client, &url, output, &mut progress).await;
        if terminal {
            eprintln!();
        }
        let header = result.map_err(failed)?;
        let size = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
        if self.json {
            println!(
                "{}",
                json!({ "file": output.display().to_string(), "bytes": size, "from": url.to_string(), "header": header })
            );
        } else {
            println!(
                "backup of {url} as of version {} written to {} ({size} bytes, {:.1} s)",
                header.version,
                output.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    fn restore(&self, args: &chronos::admin::RestoreArgs) -> Outcome {
        let header = args.run().map_err(failed)?;
        if self.json {
            println!("{}", json!({ "data_dir": args.data_dir.display().to_string(), "header": header }));
        } else {
            println!(
                "restored {} into {} as of version {}; start a node on it (it founds a cluster of one)",
                args.input.display(),
                args.data_dir.display(),
                header.version
            );
        }
        Ok(())
    }

    async fn sync_status(&self) -> Outcome {
        let up = self.reachable().await?;
        let rows: Vec<Value> = up
            .iter()
            .map(|(url, h)| json!({ "url": url.to_string(), "id": h["id"], "sync": h.get("sync").cloned().unwrap_or(Value::Null) }))
            .collect();
        if self.json {
            println!("{}", json!({ "members": rows }));
            return Ok(());
        }
        let field = |s: &Value, k: &str| match &s[k] {
            Value::Null => "-".to_string(),
            Value::String(v) => v.clone(),
            v => v.to_string(),
        };
        let table = rows
            .iter()
            .map(|r| {
                let s = &r["sync"];
                if s.is_null() {
                    return vec![r["url"].as_str().unwrap_or("").to_string(), "not an edge".into()];
                }
                let mut row = vec![r["url"].as_str().unwrap_or("").to_string()];
                row.extend(
                    ["edge_id", "state", "backlog_bytes", "oldest_pending_secs", "rows_sent", "last_error"]
                        .iter()
                        .map(|k| field(s, k)),
                );
                row
            })
            .collect();
        print_table(&["URL", "EDGE", "STATE", "BACKLOG BYTES", "LAG S", "ROWS SENT", "LAST ERROR"], table);
        Ok(())
    }

    async fn users(&self, pg: &str, action: Users) -> Outcome {
        let mut config: tokio_postgres::Config = pg.parse().map_err(|e| failed(format!("--pg: {e}")))?;
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
        let (sql, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| Failure::Unreachable(format!("cannot connect to the SQL port: {e}")))?;
        tokio::spawn(connection);
        let sql_error = |e: tokio_postgres::Error| match e.as_db_error() {
            Some(db) => failed(format!("{} (SQLSTATE {})", db.message(), db.code().code())),
            None => failed(e),
        };
        match action {
            Users::List => {
                let rows = sql
                    .query("SELECT rolname, rolsuper, rolcanlogin FROM pg_roles ORDER BY rolname", &[])
                    .await
                    .map_err(sql_error)?;
                let roles: Vec<(String, bool, bool)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
                if self.json {
                    let list: Vec<Value> =
                        roles.iter().map(|(n, s, l)| json!({ "name": n, "superuser": s, "login": l })).collect();
                    println!("{}", json!({ "roles": list }));
                } else {
                    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
                    let table = roles.iter().map(|(n, s, l)| vec![n.clone(), yes(*s), yes(*l)]).collect();
                    print_table(&["ROLE", "SUPERUSER", "LOGIN"], table);
                }
            }
            Users::Create { name, password_env, superuser } => {
                let password = std::env::var(&password_env)
                    .ok()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| failed(format!("set the new role's password in {password_env}")))?;
                let attributes = if superuser { "SUPERUSER LOGIN" } else { "LOGIN" };
                let statement = format!(
                    "CREATE ROLE {} WITH {attributes} PASSWORD {}",
                    quote_ident(&name),
                    quote_literal(&password)
                );
                sql.batch_execute(&statement).await.map_err(sql_error)?;
                self.done(&format!("role {name} created"), json!({ "created": name }));
            }
            Users::Drop { name } => {
                sql.batch_execute(&format!("DROP ROLE {}", quote_ident(&name))).await.map_err(sql_error)?;
                self.done(&format!("role {name} dropped"), json!({ "dropped": name }));
            }
        }
        Ok(())
    }

    fn done(&self, text: &str, value: Value) {
        if self.json {
            println!("{value}");
        } else {
            println!("{text}");
        }
    }
}

/// `name` as an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Prints rows under headers, in columns.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}
