//! Internode traffic with certificates: a cluster whose members talk mutual TLS replicates
//! writes, and a client without a certificate, or with one from another CA, cannot reach its
//! Raft or Cluster services. Without certificates, members listen on loopback only.

mod support;

use chronos::net::proto;
use std::path::Path;
use std::time::Duration;
use support::{ca_and_member, Cluster};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap()
}

/// Asks node `address` for a read index over its Cluster service, with `tls` (None: plain).
async fn read_index(address: &str, tls: Option<ClientTlsConfig>) -> Result<(), String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}")).unwrap();
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    let channel = tokio::time::timeout(Duration::from_secs(5), endpoint.connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let mut client = proto::cluster_client::ClusterClient::new(channel);
    let call = client.read_index(proto::ReadIndexRequest {});
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Err(_) => Err("call timed out".into()),
        Ok(Err(status)) => Err(format!("call: {status}")),
        Ok(Ok(_)) => Ok(()),
    }
}

fn psql(port: u16, dir: &Path, sql: &str) -> Result<String, String> {
    let d = |f: &str| dir.join(f).to_string_lossy().to_string();
    let url = format!(
        "host=127.0.0.1 port={port} user=admin dbname=chronos sslmode=require sslcert={} sslkey={}",
        d("member.pem"),
        d("member.key")
    );
    let out = std::process::Command::new("psql")
        .args(["-X", "-t", "-A", &url, "-c", sql])
        .env("PGPASSWORD", "admin-secret")
        .output()
        .expect("psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_talk_mutual_tls_and_refuse_others() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca_and_member(d, "ca", "member");
    ca_and_member(d, "rogue-ca", "rogue");
    let path = |f: &str| d.join(f).to_string_lossy().to_string();
    let (cert, key, ca) = (path("member.pem"), path("member.key"), path("ca.pem"));
    let ca_path = ca.clone();
    let cluster = tokio::task::spawn_blocking(move || {
        let env = [
            ("CHRONOS_AUTH_TOKEN_ADMIN", "admin-secret"),
            ("CHRONOS_TLS_CERT", cert.as_str()),
            ("CHRONOS_TLS_KEY", key.as_str()),
            ("CHRONOS_TLS_CA_CERT", ca.as_str()),
        ];
        Cluster::start_with_env(3, &[], &env)
    })
    .await
    .unwrap();
    let leader = cluster.leader(Duration::from_secs(30)).expect("a leader over mutual TLS");

    // Writes replicate over TLS: written through one member, read on every other.
    let port = |i: usize| cluster.nodes[i].pg_addr.port();
    psql(port(leader), d, "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3)").unwrap();
    for i in (0..3).filter(|i| *i != leader) {
        let n = psql(port(i), d, "SELECT count(*) FROM t").unwrap();
        assert_eq!(n, "3", "node {i}");
    }

    let address = cluster.internode_address(leader);
    let ca_cert = Certificate::from_pem(read(d, "ca.pem"));
    let member = ClientTlsConfig::new()
        .ca_certificate(ca_cert.clone())
        .identity(Identity::from_pem(read(d, "member.pem"), read(d, "member.key")));
    read_index(&address, Some(member.clone())).await.expect("a member's certificate is accepted");

    // A message from an id that is not a member is refused, even over an authenticated
    // connection: a heartbeat with a much higher term would otherwise depose the leader.
    let term = |i: usize| {
        let health = cluster.health(i).unwrap_or_default();
        let at = health.find("\"term\":").map(|p| p + 7).unwrap_or(0);
        health[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap_or("").parse::<u64>().unwrap_or(0)
    };
    let before = term(leader);
    let channel = Endpoint::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(member.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let leader_id = leader as u64 + 1;
    let forged = proto::RaftMessage {
        from: 99,
        to: leader_id,
        term: before + 100,
        body: Some(proto::raft_message::Body::Heartbeat(proto::Heartbeat { commit: 0, seq: 1 })),
    };
    let mut raft = proto::raft_client::RaftClient::new(channel);
    raft.send(futures::stream::iter(vec![forged])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(term(leader), before, "a non-member moved the leader's term");
    assert_eq!(cluster.leader(Duration::from_secs(5)), Some(leader));

    let no_cert = ClientTlsConfig::new().ca_certificate(ca_cert.clone());
    assert!(read_index(&address, Some(no_cert)).await.is_err(), "TLS without a certificate was accepted");
    let rogue = ClientTlsConfig::new()
        .ca_certificate(ca_cert)
        .identity(Identity::from_pem(read(d, "rogue.pem"), read(d, "rogue.key")));
    assert!(read_index(&address, Some(rogue)).await.is_err(), "a certificate from another CA was accepted");
    assert!(read_index(&address, None).await.is_err(), "plain text was accepted");

    // The HTTP endpoint is served over TLS with the same certificate.
    let health = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "5", "--cacert", &ca_path])
        .arg(format!("https://127.0.0.1:{}/health", cluster.nodes[leader].http_addr.port()))
        .output()
        .unwrap();
    assert!(health.status.success(), "{health:?}");
    assert!(String::from_utf8_lossy(&health.stdout).contains("\"role\":\"Leader\""));
    let plain = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{}/health", cluster.nodes[leader].http_addr.port()))
        .output()
        .unwrap();
    assert!(!plain.status.success(), "plain HTTP answered: {plain:?}");

    // The cluster still works after the refusals.
    psql(port(leader), d, "INSERT INTO t VALUES (4)").unwrap();
    let n = psql(port(leader), d, "SELECT count(*) FROM t").unwrap();
    assert_eq!(n, "4");
}

#[test]
fn members_without_certificates_listen_on_loopback_only() {
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["node", "--id", "1", "--address", "0.0.0.0:0", "--peers", "1=127.0.0.1:1"])
        .arg("--data-dir")
        .arg(data.path())
        .args(["--pg-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .env("CHRONOS_LOG", "warn")
        .env_remove("CHRONOS_TLS_CERT")
        .env_remove("CHRONOS_TLS_KEY")
        .env_remove("CHRONOS_TLS_CA_CERT")
        .output()
        .expect("run chronos");
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without TLS"), "{stderr}");
}
