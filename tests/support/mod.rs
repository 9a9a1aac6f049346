//! Starts real `chronos` processes for integration tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `chronos single-node` on free loopback ports, killed on drop.
pub struct Server {
    pub pg_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub data_dir: tempfile::TempDir,
    child: Option<Child>,
    /// The subcommand and its own flags (`single-node`, or `node --id …`).
    command: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    pub fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), &[])
    }

    /// Starts a server on `data_dir` with extra environment variables.
    pub fn start_in(data_dir: tempfile::TempDir, env: &[(&str, &str)]) -> Self {
        Self::start_with_args(data_dir, &[], env)
    }

    /// Starts `chronos single-node` with extra flags and environment variables.
    pub fn start_with_args(data_dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = vec!["single-node".to_string()];
        command.extend(args.iter().map(|a| a.to_string()));
        let mut server = Server {
            pg_addr: ([127, 0, 0, 1], 0).into(),
            http_addr: ([127, 0, 0, 1], 0).into(),
            data_dir,
            child: None,
            command,
        };
        assert!(server.spawn_on_fresh_ports(env), "chronos did not start");
        server
    }

    /// Starts the process on newly picked client and HTTP ports, again with others if it
    /// exits at start-up: a port picked as free can be taken before the server binds it (by
    /// a parallel test, or as the source port of another member's outgoing connection).
    fn spawn_on_fresh_ports(&mut self, env: &[(&str, &str)]) -> bool {
        (0..5).any(|_| {
            self.pg_addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            self.http_addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            self.try_spawn(env)
        })
    }

    fn spawn(&mut self, env: &[(&str, &str)]) {
        assert!(self.try_spawn(env), "chronos did not start");
    }

    /// Starts the process; true once both its ports accept connections.
    fn try_spawn(&mut self, env: &[(&str, &str)]) -> bool {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chronos"));
        cmd.args(&self.command)
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(["--pg-addr", &self.pg_addr.to_string(), "--http-addr", &self.http_addr.to_string()])
            .env("CHRONOS_LOG", "warn")
            .env_remove("CHRONOS_AUTH_TOKEN_ADMIN")
            .env_remove("CHRONOS_AUTH_TOKEN_READONLY")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start chronos");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            let up = std::net::TcpStream::connect(self.pg_addr).is_ok()
                && std::net::TcpStream::connect(self.http_addr).is_ok();
            if up {
                // Still ours: a process that lost a port exits right after binding the other.
                std::thread::sleep(Duration::from_millis(20));
                if let Ok(None) = child.try_wait() {
                    self.child = Some(child);
                    return true;
                }
                return false;
            }
            assert!(Instant::now() < deadline, "chronos did not start listening");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Kills the process without any chance to clean up (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// True while the process runs.
    /// The process id of the running server.
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits up to `timeout` for the process to exit on its own; its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Asks the process to shut down (SIGTERM) and returns its exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again on the same data directory and ports.
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// Starts the process again with extra environment variables.
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.kill();
        self.spawn(env);
    }

    pub fn url(&self, user: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} dbname=chronos", self.pg_addr.port())
    }

    /// Logs in as `user` with `password` (SCRAM); the client, or why the server refused.
    pub async fn login(&self, user: &str, password: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let url = format!("{} password={password}", self.url(user));
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    pub async fn connect(&self, user: &str) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.url(user), tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

/// A cluster of `chronos node` processes on loopback.
pub struct Cluster {
    pub nodes: Vec<Server>,
}

impl Cluster {
    /// Starts `n` members (ids 1..=n) with extra flags for each.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        Self::start_with_env(n, extra, &[])
    }

    /// Starts `n` members with extra flags and environment variables for each.
    pub fn start_with_env(n: usize, extra: &[&str], env: &[(&str, &str)]) -> Cluster {
        // A member that cannot bind its internode port (taken since it was picked) fails the
        // attempt: the others already know that address, so the cluster starts over.
        for _ in 0..5 {
            if let Some(cluster) = Self::try_start(n, extra, env) {
                return cluster;
            }
        }
        panic!("the cluster did not start");
    }

    /// Founds a cluster of one member (id 1) on `data_dir` (a restored backup, say); others
    /// [`Cluster::join`] it.
    pub fn found_on(data_dir: tempfile::TempDir) -> Cluster {
        let address = format!("127.0.0.1:{}", free_port());
        let peers = format!("1={address}");
        let command = ["node", "--id", "1", "--address", &address, "--peers", &peers];
        let mut server = Server {
            pg_addr: ([127, 0, 0, 1], 0).into(),
            http_addr: ([127, 0, 0, 1], 0).into(),
            data_dir,
            child: None,
            command: command.iter().map(|s| s.to_string()).collect(),
        };
        assert!(server.spawn_on_fresh_ports(&[]), "the founding member did not start");
        Cluster { nodes: vec![server] }
    }

    /// The internode `host:port` of node `i` (0-based).
    pub fn internode_address(&self, i: usize) -> String {
        let command = &self.nodes[i].command;
        let at = command.iter().position(|a| a == "--address").expect("a member has an address");
        command[at + 1].clone()
    }

    fn try_start(n: usize, extra: &[&str], env: &[(&str, &str)]) -> Option<Cluster> {
        let internode: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let peers =
            internode.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
        let mut nodes: Vec<Server> = Vec::new();
        for (i, port) in internode.iter().enumerate() {
            let mut command: Vec<String> = vec![
                "node".into(),
                "--id".into(),
                (i + 1).to_string(),
                "--address".into(),
                format!("127.0.0.1:{port}"),
                "--peers".into(),
                peers.clone(),
            ];
            command.extend(extra.iter().map(|s| s.to_string()));
            let mut server = Server {
                pg_addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
                http_addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
                data_dir: tempfile::tempdir().unwrap(),
                child: None,
                command,
            };
            if !server.spawn_on_fresh_ports(env) {
                nodes.iter_mut().for_each(Server::kill);
                return None;
            }
            nodes.push(server);
        }
        Some(Cluster { nodes })
    }

    /// Starts one more member (the next id) that joins the running cluster (`--join`); its
    /// internode address is returned for the leader's `POST /raft/members?add=…`.
    #[allow(dead_code)]
    pub fn join(&mut self) -> String {
        let address = |server: &Server| {
            let i = server.command.iter().position(|a| a == "--address").unwrap();
            server.command[i + 1].clone()
        };
        let id = self.nodes.len() + 1;
        // Nobody knows the new member's address yet, so a lost port is picked again.
        for _ in 0..5 {
            let own = format!("127.0.0.1:{}", free_port());
            let mut peers: Vec<String> =
                self.nodes.iter().enumerate().map(|(i, n)| format!("{}={}", i + 1, address(n))).collect();
            peers.push(format!("{id}={own}"));
            let command = ["node", "--id", &id.to_string(), "--address", &own, "--peers", &peers.join(","), "--join"];
            let mut server = Server {
                pg_addr: ([127, 0, 0, 1], 0).into(),
                http_addr: ([127, 0, 0, 1], 0).into(),
                data_dir: tempfile::tempdir().unwrap(),
                child: None,
                command: command.iter().map(|s| s.to_string()).collect(),
            };
            if server.spawn_on_fresh_ports(&[]) {
                self.nodes.push(server);
                return own;
            }
        }
        panic!("the joining member did not start");
    }

    /// The `/health` JSON of node `i` (0-based), if it answers.
    pub fn health(&self, i: usize) -> Option<String> {
        http_get(self.nodes[i].http_addr, "/health")
    }

    /// Index of the node that reports itself leader, waiting up to `timeout`.
    pub fn leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            for i in 0..self.nodes.len() {
                if self.nodes[i].child.is_some() && self.health(i).is_some_and(|h| h.contains(r#""role":"Leader""#)) {
                    return Some(i);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// A plain HTTP GET; the response body, or None if the server does not answer.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    http_request(addr, "GET", path, "").map(|(_, body)| body)
}

/// Sends a body-less request with extra header lines (each ending in `\r\n`); the status
/// code and the body of the answer.
pub fn http_request(addr: SocketAddr, method: &str, path: &str, headers: &str) -> Option<(u16, String)> {
    plain_http_request(addr, method, path, headers).or_else(|| https_request(addr, method, path, headers))
}

/// The same request over HTTPS (servers with certificates), without verifying the
/// certificate: tests that check it call curl themselves.
fn https_request(addr: SocketAddr, method: &str, path: &str, headers: &str) -> Option<(u16, String)> {
    let mut command = Command::new("curl");
    command.args(["-sk", "--max-time", "3", "-X", method, "-w", "\n%{http_code}"]);
    for header in headers.split("\r\n").filter(|h| !h.is_empty()) {
        command.args(["-H", header]);
    }
    let out = command.arg(format!("https://{addr}{path}")).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.trim().parse().ok().filter(|c| *c != 0)?, body.to_string()))
}

fn plain_http_request(addr: SocketAddr, method: &str, path: &str, headers: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| (code, body.to_string()))
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of metric `name` in a Prometheus text page: the sum of its series when it has
/// labels.
pub fn metric(text: &str, name: &str) -> u64 {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse().ok()
        })
        .collect();
    assert!(!values.is_empty(), "{name} missing in {text}");
    values.iter().sum::<f64>() as u64
}

/// The number in `"field":N` of a JSON text.
pub fn json_u64(json: &str, field: &str) -> u64 {
    let pattern = format!("\"{field}\":");
    let start = json.find(&pattern).unwrap_or_else(|| panic!("{field} missing in {json}")) + pattern.len();
    json[start..].chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().unwrap()
}

pub fn openssl(args: &[&str], dir: &Path) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA (`<ca>.pem`, `<ca>.key`) and a certificate it signs for `name` (`<name>.pem`,
/// `<name>.key`), usable as server and client, for 127.0.0.1 and localhost.
pub fn ca_and_member(dir: &Path, ca: &str, name: &str) {
    ca_and_member_for(dir, ca, name, &["IP:127.0.0.1", "DNS:localhost"]);
}

/// [`ca_and_member`] with the certificate's subject alternative names (`IP:…`, `DNS:…`).
pub fn ca_and_member_for(dir: &Path, ca: &str, name: &str, names: &[&str]) {
    let (ca_key, ca_pem) = (format!("{ca}.key"), format!("{ca}.pem"));
    let subject = format!("/CN={ca}");
    openssl(
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject, "-keyout", &ca_key,
            "-out", &ca_pem,
        ],
        dir,
    );
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={}\n",
            names.join(",")
        ),
    )
    .unwrap();
    let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
    let subject = format!("/CN={name}");
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", &subject, "-keyout", &key, "-out", &csr], dir);
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &pem,
            "-days",
            "2",
        ],
        dir,
    );
}
