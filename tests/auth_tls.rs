//! SCRAM-SHA-256 authentication and TLS against a real `chronos` process.

mod support;

use support::Server;
use tokio_postgres::error::SqlState;

fn credentials() -> Vec<(&'static str, &'static str)> {
    vec![("CHRONOS_AUTH_TOKEN_ADMIN", "admin-secret"), ("CHRONOS_AUTH_TOKEN_READONLY", "reader-secret")]
}

#[tokio::test]
async fn scram_accepts_the_right_passwords_only() {
    let server = Server::start_in(tempfile::tempdir().unwrap(), &credentials());
    let admin = server.login("admin", "admin-secret").await.expect("admin logs in");
    admin.batch_execute("CREATE TABLE s (id INT)").await.unwrap();

    let Err(err) = server.login("admin", "wrong").await else { panic!("wrong password accepted") };
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:?}");
    let Err(err) = server.login("mallory", "admin-secret").await else { panic!("unknown user accepted") };
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:?}");

    let reader = server.login("readonly", "reader-secret").await.expect("readonly logs in");
    let err = reader.batch_execute("INSERT INTO s VALUES (1)").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    let n: i64 = reader.query_one("SELECT count(*) FROM s", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn created_roles_log_in_with_scram_and_need_grants() {
    let server = Server::start_in(tempfile::tempdir().unwrap(), &credentials());
    let admin = server.login("admin", "admin-secret").await.expect("admin logs in");
    admin
        .batch_execute(
            "CREATE TABLE g (id INT PRIMARY KEY, v TEXT); INSERT INTO g VALUES (1, 'one');
             CREATE VIEW gv AS SELECT v FROM g; CREATE VIEW gvv AS SELECT * FROM gv;
             CREATE TABLE ids (id SERIAL PRIMARY KEY, v TEXT);
             CREATE USER bob PASSWORD 'bob-secret'; CREATE ROLE nobody_logs_in PASSWORD 'x'",
        )
        .await
        .unwrap();

    let Err(err) = server.login("bob", "wrong").await else { panic!("wrong password accepted") };
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:?}");
    let Err(err) = server.login("nobody_logs_in", "x").await else { panic!("NOLOGIN role logged in") };
    assert_eq!(err.code(), Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION), "{err:?}");

    let bob = server.login("bob", "bob-secret").await.expect("bob logs in");
    let user: String = bob.query_one("SELECT current_user", &[]).await.unwrap().get(0);
    assert_eq!(user, "bob");
    let denied = |e: tokio_postgres::Error| assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{e:?}");
    denied(bob.query("SELECT * FROM g", &[]).await.unwrap_err());
    denied(bob.query("SELECT 1 WHERE EXISTS (SELECT 1 FROM g)", &[]).await.unwrap_err());
    denied(bob.batch_execute("CREATE TABLE mine (id INT)").await.unwrap_err());
    denied(bob.batch_execute("CREATE ROLE eve").await.unwrap_err());
    // A view reads with the reader's privileges on the tables under it, however deep.
    denied(bob.query("SELECT * FROM gv", &[]).await.unwrap_err());
    denied(bob.query("SELECT * FROM gvv", &[]).await.unwrap_err());
    denied(bob.batch_execute("CREATE VIEW mine AS SELECT 1").await.unwrap_err());
    // A sequence is for those who may write the table owning it.
    denied(bob.query("SELECT nextval('ids_id_seq')", &[]).await.unwrap_err());
    denied(bob.batch_execute("INSERT INTO ids (v) VALUES ('x')").await.unwrap_err());
    // System catalogs stay readable.
    let n: i64 = bob.query_one("SELECT count(*) FROM pg_class WHERE relname = 'g'", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);

    admin.batch_execute("GRANT SELECT ON g TO bob").await.unwrap();
    let v: String = bob.query_one("SELECT v FROM g WHERE id = 1", &[]).await.unwrap().get(0);
    assert_eq!(v, "one");
    let v: String = bob.query_one("SELECT v FROM gvv", &[]).await.unwrap().get(0);
    assert_eq!(v, "one");
    admin.batch_execute("GRANT INSERT, SELECT ON ids TO bob").await.unwrap();
    let id: i32 = bob.query_one("INSERT INTO ids (v) VALUES ('x') RETURNING id", &[]).await.unwrap().get(0);
    assert_eq!(id, 1);
    denied(bob.batch_execute("INSERT INTO g VALUES (2, 'two')").await.unwrap_err());
    denied(bob.batch_execute("UPDATE g SET v = 'uno' WHERE id = 1").await.unwrap_err());
    denied(bob.batch_execute("INSERT INTO g SELECT id + 10, v FROM g").await.unwrap_err());
    // A write inside WITH needs its own privilege, as any other.
    denied(bob.query("WITH d AS (DELETE FROM g RETURNING id) SELECT count(*) FROM d", &[]).await.unwrap_err());
    denied(bob.query("WITH i AS (INSERT INTO g VALUES (3, 'three') RETURNING id) SELECT 1", &[]).await.unwrap_err());

    admin.batch_execute("GRANT INSERT ON g TO bob").await.unwrap();
    bob.batch_execute("INSERT INTO g SELECT id + 10, v FROM g").await.unwrap();
    let n: i64 = bob
        .query_one("WITH i AS (INSERT INTO g VALUES (3, 'three') RETURNING id) SELECT count(*) FROM i", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    denied(
        bob.batch_execute("INSERT INTO g VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET v = 'x'").await.unwrap_err(),
    );
    denied(bob.batch_execute("DELETE FROM g").await.unwrap_err());
    denied(bob.batch_execute("DROP TABLE g").await.unwrap_err());

    // A role may change its own password; the new one works at once.
    bob.batch_execute("ALTER ROLE bob PASSWORD 'new-secret'").await.unwrap();
    server.login("bob", "new-secret").await.expect("new password works");
    assert!(server.login("bob", "bob-secret").await.is_err(), "old password still works");

    // A dropped role can no longer log in, and its open session loses its rights.
    admin.batch_execute("REVOKE ALL ON g FROM bob; REVOKE ALL ON ids FROM bob; DROP ROLE bob").await.unwrap();
    denied(bob.query("SELECT * FROM g", &[]).await.unwrap_err());
    let Err(err) = server.login("bob", "new-secret").await else { panic!("dropped role logged in") };
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:?}");

    // The built-in read-only role still reads everything and writes nothing.
    let reader = server.login("readonly", "reader-secret").await.expect("readonly logs in");
    let n: i64 = reader.query_one("SELECT count(*) FROM g", &[]).await.unwrap().get(0);
    assert_eq!(n, 3);
    denied(reader.batch_execute("DELETE FROM g").await.unwrap_err());
    denied(reader.batch_execute("WITH d AS (DELETE FROM g RETURNING id) SELECT 1").await.unwrap_err());
    denied(reader.batch_execute("CREATE TABLE r (id INT)").await.unwrap_err());
}

#[test]
fn tls_with_psql_sslmode_require() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path(), "cert", "localhost");
    let path = |f: &str| dir.path().join(f).to_string_lossy().to_string();
    let (cert_s, key_s) = (path("cert.pem"), path("cert.key"));
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

fn openssl(args: &[&str], dir: &std::path::Path) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// Makes `<name>.pem` and `<name>.key` in `dir`: a self-signed certificate for `cn`, valid 2 days.
fn self_signed(dir: &std::path::Path, name: &str, cn: &str) {
    let (key, cert, subject) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN={cn}"));
    let args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject, "-keyout", &key];
    openssl(&[&args[..], &["-out", &cert]].concat(), dir);
}

/// Runs `SELECT 42` through psql with extra connection options; Ok(stdout) or Err(stderr).
fn psql(server: &Server, options: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .arg("-X")
        .arg(format!("{} {options}", server.url("admin")))
        .args(["-t", "-c", "SELECT 40 + 2"])
        .env("PGPASSWORD", "admin-secret")
        .env("PGSSLCERT", "/nonexistent")
        .env("PGSSLKEY", "/nonexistent")
        .output()
        .expect("psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[test]
fn client_certificates_are_verified_when_a_ca_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ext = d.join("client.ext");
    std::fs::write(&ext, "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
        .unwrap();
    // A CA, a server certificate, a client certificate it signed, and one it did not.
    self_signed(d, "ca", "test-ca");
    self_signed(d, "server", "localhost");
    openssl(
        &["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=admin", "-keyout", "client.key", "-out", "client.csr"],
        d,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "client.ext",
            "-out",
            "client.pem",
            "-days",
            "2",
        ],
        d,
    );
    self_signed(d, "rogue", "admin");
    let path = |f: &str| d.join(f).to_string_lossy().to_string();
    let (ca, cert, key) = (path("ca.pem"), path("server.pem"), path("server.key"));
    let env: Vec<(&str, &str)> = credentials()
        .into_iter()
        .chain([
            ("CHRONOS_TLS_CERT", cert.as_str()),
            ("CHRONOS_TLS_KEY", key.as_str()),
            ("CHRONOS_TLS_CA_CERT", ca.as_str()),
        ])
        .collect();
    let server = Server::start_in(tempfile::tempdir().unwrap(), &env);

    let good = format!("sslmode=require sslcert={} sslkey={}", path("client.pem"), path("client.key"));
    let answer = psql(&server, &good).expect("a client certificate signed by the CA is accepted");
    assert_eq!(answer.trim(), "42");

    let rogue = format!("sslmode=require sslcert={} sslkey={}", path("rogue.pem"), path("rogue.key"));
    assert!(psql(&server, &rogue).is_err(), "a certificate from another CA was accepted");
    assert!(psql(&server, "sslmode=require").is_err(), "TLS without a client certificate was accepted");
    let plain = psql(&server, "sslmode=disable").expect_err("plain text was accepted");
    assert!(plain.contains("connection requires TLS with a client certificate"), "{plain}");
    // The server keeps serving after the refusals.
    assert_eq!(psql(&server, &good).expect("still serving").trim(), "42");
}
