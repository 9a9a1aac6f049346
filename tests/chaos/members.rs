//! The members: `chronos node` processes, one in each namespace of [`Net`], talking mutual TLS
//! (members off loopback must), taking clients with a certificate and the admin password.

use crate::net::{run, Net};
use crate::tls::Tls;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "chaos-admin";
const HTTP_TOKEN: &str = "chaos-http";
const PG_PORT: u16 = 5432;
const HTTP_PORT: u16 = 9000;
const RAFT_PORT: u16 = 7000;

pub struct Member {
    pub ip: String,
    /// The subcommand and its own flags.
    command: Vec<String>,
    namespace: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    pub paused: bool,
    /// How the process last ended, once it has.
    pub exit: Option<std::process::ExitStatus>,
}

pub struct Members {
    /// The cluster's members, then the edge if there is one.
    pub list: Vec<Member>,
    /// How many of `list` are cluster members.
    pub cloud: usize,
    certs: PathBuf,
    pub tls: Tls,
}

impl Members {
    /// Starts a cluster member in each of the first `n` namespaces of `net`, with data under
    /// `dir`; with `edge`, also an edge (`single-node --edge-id farm-a`) in namespace `n` that
    /// pushes to every member.
    pub fn start(net: &Net, n: usize, edge: bool, dir: &Path) -> Members {
        let all = n + usize::from(edge);
        let ips: Vec<String> = (0..all).map(|i| net.ip(i)).collect();
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        let names: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
        crate::support::ca_and_member_for(
            &certs,
            "ca",
            "member",
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let read = |f: &str| std::fs::read(certs.join(f)).unwrap();
        let tls = Tls::new(&read("ca.pem"), &read("member.pem"), &read("member.key"));
        let peers = ips[..n].iter().enumerate().map(|(i, ip)| format!("{}={ip}:{RAFT_PORT}", i + 1));
        let peers = peers.collect::<Vec<_>>().join(",");
        let threshold = std::env::var("CHAOS_SNAPSHOT_THRESHOLD").unwrap_or_else(|_| "50000".into());
        let targets = ips[..n].iter().map(|ip| format!("https://{ip}:{RAFT_PORT}")).collect::<Vec<_>>().join(",");
        let list = (0..all)
            .map(|i| {
                let command = if i < n {
                    let address = format!("{}:{RAFT_PORT}", ips[i]);
                    let id = (i + 1).to_string();
                    ["node", "--id", &id, "--address", &address, "--peers", &peers, "--snapshot-threshold", &threshold]
                        .map(String::from)
                        .to_vec()
                } else {
                    ["single-node", "--edge-id", "farm-a", "--sync-target", &targets, "--sync-interval-secs", "1"]
                        .map(String::from)
                        .to_vec()
                };
                Member {
                    ip: ips[i].clone(),
                    command,
                    namespace: net.namespace(i),
                    data_dir: dir.join(format!("n{}", i + 1)),
                    log: dir.join(format!("n{}.log", i + 1)),
                    child: None,
                    paused: false,
                    exit: None,
                }
            })
            .collect();
        let mut members = Members { list, cloud: n, certs, tls };
        for i in 0..all {
            members.spawn(i, &[]);
        }
        members
    }

    /// Starts member `i` (not running) with extra environment.
    pub fn spawn(&mut self, i: usize, env: &[(&str, &str)]) {
        let m = &mut self.list[i];
        assert!(m.child.is_none(), "member {} is running", i + 1);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&m.log).unwrap();
        let cert = |f: &str| self.certs.join(f).to_string_lossy().to_string();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &m.namespace, env!("CARGO_BIN_EXE_chronos")])
            .args(&m.command)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--pg-addr", &format!("{}:{PG_PORT}", m.ip), "--http-addr", &format!("{}:{HTTP_PORT}", m.ip)])
            .env("CHRONOS_LOG", std::env::var("CHAOS_LOG").unwrap_or_else(|_| "warn".into()))
            .env("CHRONOS_TLS_CERT", cert("member.pem"))
            .env("CHRONOS_TLS_KEY", cert("member.key"))
            .env("CHRONOS_TLS_CA_CERT", cert("ca.pem"))
            .env("CHRONOS_AUTH_TOKEN_ADMIN", PASSWORD)
            .env("CHRONOS_HTTP_TOKEN", HTTP_TOKEN)
            .env_remove("CHRONOS_AUTH_TOKEN_READONLY")
            .env_remove("CHRONOS_CLOCK_OFFSET_MS")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        m.child = Some(cmd.spawn().expect("start chronos"));
        m.paused = false;
    }

    pub fn running(&mut self, i: usize) -> bool {
        let m = &mut self.list[i];
        match m.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(status) => {
                m.exit = status.ok().flatten();
                m.child = None;
                false
            }
            None => false,
        }
    }

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        let m = &mut self.list[i];
        if let Some(mut child) = m.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        m.paused = false;
    }

    pub fn signal(&mut self, i: usize, signal: &str) {
        let m = &mut self.list[i];
        if let Some(child) = &m.child {
            // A member that has exited cannot be signalled; nothing to do then.
            let _ = run("kill", &[&format!("-{signal}"), &child.id().to_string()]);
            m.paused = signal == "STOP";
        }
    }

    pub fn restart(&mut self, i: usize, env: &[(&str, &str)]) {
        self.kill(i);
        self.spawn(i, env);
    }

    pub fn pg_config(&self, i: usize) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.list[i].ip)
            .port(PG_PORT)
            .user("admin")
            .password(PASSWORD)
            .dbname("chronos")
            .ssl_mode(tokio_postgres::config::SslMode::Require)
            .connect_timeout(Duration::from_secs(3));
        config
    }

    /// `/health` of member `i`, if it answers within a second.
    pub fn health(&self, i: usize) -> Option<String> {
        let url = format!("https://{}:{HTTP_PORT}/health", self.list[i].ip);
        let out = Command::new("curl").args(["-sk", "--max-time", "1", &url]).output().ok()?;
        let body = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.success() && body.contains("\"role\"")).then_some(body)
    }

    /// The cluster member that says it leads, if one does within `timeout`.
    pub fn leader(&mut self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            for i in 0..self.cloud {
                if self.list[i].child.is_some() && !self.list[i].paused {
                    if let Some(h) = self.health(i) {
                        if h.contains(r#""role":"Leader""#) {
                            return Some(i);
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asks the leader to hand leadership to member `to`.
    pub fn transfer_leadership(&mut self, to: usize) -> Result<(), String> {
        let leader = self.leader(Duration::from_secs(10)).ok_or("no leader")?;
        if leader == to {
            return Ok(());
        }
        let url = format!("https://{}:{HTTP_PORT}/raft/transfer-leadership?to={}", self.list[leader].ip, to + 1);
        let auth = format!("Authorization: Bearer {HTTP_TOKEN}");
        run("curl", &["-skf", "--max-time", "3", "-X", "POST", "-H", &auth, &url])
    }

    /// The tail of member `i`'s log, for a failure report.
    pub fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.list[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for i in 0..self.list.len() {
            self.signal(i, "CONT");
            self.kill(i);
        }
    }
}
