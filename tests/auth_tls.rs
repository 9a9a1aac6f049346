//! SCRAM-SHA-256 authentication and TLS against a real `chronos` process.

mod support;

use support::Server;
use tokio_postgres::error::SqlState;

fn credentials() -> Vec<(&'static str, &'static str)> {
    vec![("CHRONOS_AUTH_TOKEN_ADMIN", "admin-secret"), ("CHRONOS_AUTH_TOKEN_READONLY", "reader-secret")]
}

async fn connect(server: &Server, user: &str, password: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let url = format!("{} password={password}", server.url(user));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[tokio::test]
async fn scram_accepts_the_right_passwords_only() {
    let server = Server::start_in(tempfile::tempdir().unwrap(), &credentials());
    let admin = connect(&server, "admin", "admin-secret").await.expect("admin logs in");
    admin.batch_execute("CREATE TABLE s (id INT)").await.unwrap();

    let Err(err) = connect(&server, "admin", "wrong").await else { panic!("wrong password accepted") };
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:?}");
    let Err(err) = connect(&server, "mallory", "admin-secret").await else { panic!("unknown user accepted") };
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:?}");

    let reader = connect(&server, "readonly", "reader-secret").await.expect("readonly logs in");
    let err = reader.batch_execute("INSERT INTO s VALUES (1)").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    let n: i64 = reader.query_one("SELECT count(*) FROM s", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
}

#[test]
fn tls_with_psql_sslmode_require() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let (cert_s, key_s) = (cert.to_string_lossy().to_string(), key.to_string_lossy().to_string());
    let env: Vec<(&str, &str)> = credentials()
        .into_iter()
        .chain([("CHRONOS_TLS_CERT", cert_s.as_str()), ("CHRONOS_TLS_KEY", key_s.as_str())])
        .collect();
    let server = Server::start_in(tempfile::tempdir().unwrap(), &env);
    let out = std::process::Command::new("psql")
        .arg("-X")
        .arg(format!("{} sslmode=require", server.url("admin")))
        .args(["-c", "\\conninfo", "-c", "SELECT 40 + 2 AS answer"])
        .env("PGPASSWORD", "admin-secret")
        .output()
        .expect("psql");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("SSL connection (protocol: TLSv1.3"), "{stdout}");
    assert!(stdout.contains("42"), "{stdout}");
}
