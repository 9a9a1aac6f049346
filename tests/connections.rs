//! Connection handling against a real `chronos` process: what an unauthenticated peer can
//! learn and hold, the authentication timeout and pool, message size limits, and backend ids.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::Server;

fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    body.extend_from_slice(format!("user\0{user}\0database\0chronos\0\0").as_bytes());
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Reads one backend message: its type and body.
fn read_message(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    s.read_exact(&mut header).ok()?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    s.read_exact(&mut body).ok()?;
    Some((header[0], body))
}

/// The SQLSTATE of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(b"C"))
        .map(|c| String::from_utf8_lossy(c).to_string())
        .unwrap_or_default()
}

/// The first SCRAM round for `user`: the salt the server offers.
fn scram_salt(server: &Server, user: &str) -> String {
    let mut s = TcpStream::connect(server.pg_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&startup_packet(user)).unwrap();
    let (kind, body) = read_message(&mut s).expect("AuthenticationSASL");
    assert_eq!((kind, &body[..4]), (b'R', &10u32.to_be_bytes()[..]), "{body:?}");
    let first = b"n,,n=,r=abcdefghijklmnop";
    let mut initial = b"SCRAM-SHA-256\0".to_vec();
    initial.extend_from_slice(&(first.len() as i32).to_be_bytes());
    initial.extend_from_slice(first);
    s.write_all(&typed(b'p', &initial)).unwrap();
    let (kind, body) = read_message(&mut s).expect("AuthenticationSASLContinue");
    assert_eq!((kind, &body[..4]), (b'R', &11u32.to_be_bytes()[..]), "{body:?}");
    let text = String::from_utf8_lossy(&body[4..]).to_string();
    text.split(',').find_map(|f| f.strip_prefix("s=")).expect("a salt").to_string()
}

fn code(e: &tokio_postgres::Error) -> &str {
    e.code().map(|c| c.code()).unwrap_or("none")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_reveal_nothing_about_which_roles_exist() {
    let server = Server::start_in(tempfile::tempdir().unwrap(), &[("CHRONOS_AUTH_TOKEN_ADMIN", "admin-secret")]);
    let admin = server.login("admin", "admin-secret").await.unwrap();
    admin
        .batch_execute(
            "CREATE USER bob PASSWORD 'bob-secret'; CREATE ROLE carol PASSWORD 'carol-secret'; CREATE USER dave",
        )
        .await
        .unwrap();
    let salts = |user: &'static str| {
        let server = &server;
        tokio::task::block_in_place(move || (scram_salt(server, user), scram_salt(server, user)))
    };
    // Every name gets a salt that stays the same from one attempt to the next, whether the
    // role exists (with a password, NOLOGIN, without a password) or not.
    for user in ["admin", "readonly", "bob", "carol", "dave", "mallory", "eve"] {
        let (first, second) = salts(user);
        assert_eq!(first, second, "{user}: the salt changes between attempts");
    }
    assert_ne!(salts("mallory").0, salts("eve").0, "unknown roles share a salt");
    // A wrong password fails the same way for all of them; NOLOGIN shows only to whoever
    // knows the password.
    for user in ["admin", "bob", "carol", "dave", "mallory"] {
        let Err(err) = server.login(user, "wrong").await else { panic!("a wrong password was accepted") };
        assert_eq!(code(&err), "28P01", "{user}: {err:?}");
    }
    let Err(err) = server.login("carol", "carol-secret").await else { panic!("a NOLOGIN role logged in") };
    assert_eq!(code(&err), "28000", "{err:?}");
    server.login("bob", "bob-secret").await.expect("bob logs in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_ids_are_unique_and_a_cancel_reaches_only_its_session() {
    let server = Server::start_in(tempfile::tempdir().unwrap(), &[("CHRONOS_AUTH_TOKEN_ADMIN", "admin-secret")]);
    let mut clients = Vec::new();
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let client = server.login("admin", "admin-secret").await.unwrap();
        let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
        assert!(pids.insert(pid), "backend pid {pid} given twice");
        clients.push(client);
    }
    // Two long statements; cancelling one leaves the other running to its end.
    let (a, b) = (&clients[3], &clients[4]);
    let token = a.cancel_token();
    let long = "SELECT count(*) FROM generate_series(1, 3000000)";
    let (ra, rb, _) = tokio::join!(a.query_one(long, &[]), b.query_one(long, &[]), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    assert_eq!(code(&ra.unwrap_err()), "57014");
    assert_eq!(rb.unwrap().get::<_, i64>(0), 3_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_are_bounded_and_timed_out() {
    let env = [
        ("CHRONOS_AUTH_TOKEN_ADMIN", "admin-secret"),
        ("CHRONOS_MAX_AUTHENTICATING", "2"),
        ("CHRONOS_AUTHENTICATION_TIMEOUT", "1s"),
        ("CHRONOS_MAX_CONNECTIONS", "2"),
    ];
    let server = Server::start_in(tempfile::tempdir().unwrap(), &env);
    // Authenticated sessions do not count against the authenticating pool.
    let first = server.login("admin", "admin-secret").await.unwrap();
    // Two peers that never finish logging in fill the pool; a third is refused at once.
    let silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(server.pg_addr).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(server.pg_addr).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (kind, body) = read_message(&mut third).expect("an ErrorResponse");
    assert_eq!((kind, sqlstate(&body).as_str()), (b'E', "53300"));
    // Past the authentication timeout the silent peers are closed and the pool is free.
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "a silent connection outlived the timeout");
    }
    let second = server.login("admin", "admin-secret").await.expect("the pool is free again");
    // max_connections counts sessions: a third one is refused once its login succeeds.
    let Err(err) = server.login("admin", "admin-secret").await else { panic!("a third session was admitted") };
    assert_eq!(code(&err), "53300", "{err:?}");
    let Err(err) = server.login("admin", "wrong").await else { panic!("a wrong password was accepted") };
    assert_eq!(code(&err), "28P01", "a full server reveals more than a wrong password: {err:?}");
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.login("admin", "admin-secret").await.expect("a slot was freed");
    drop(second);
}

#[test]
fn oversized_and_malformed_messages_end_only_their_connection() {
    let server = Server::start_in(tempfile::tempdir().unwrap(), &[("CHRONOS_MAX_MESSAGE_MB", "1")]);
    let login = || {
        let mut s = TcpStream::connect(server.pg_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&startup_packet("admin")).unwrap();
        while let Some((kind, _)) = read_message(&mut s) {
            if kind == b'Z' {
                break;
            }
        }
        s
    };
    let refused = |mut s: TcpStream, bytes: &[u8]| {
        let _ = s.write_all(bytes);
        let (kind, body) = read_message(&mut s).expect("an ErrorResponse");
        assert_eq!((kind, sqlstate(&body).as_str()), (b'E', "08P01"), "{:?}", String::from_utf8_lossy(&body));
        assert!(read_message(&mut s).is_none(), "the connection stayed open");
    };
    // A message announced larger than the limit is refused before its body is read.
    refused(login(), &[b'Q', 0x10, 0, 0, 0]);
    // Within the limit it is read whole and runs.
    let mut s = login();
    let mut query = b"SELECT length('".to_vec();
    query.extend(std::iter::repeat_n(b'x', 500_000));
    query.extend_from_slice(b"')\0");
    s.write_all(&typed(b'Q', &query)).unwrap();
    let (kind, _) = read_message(&mut s).unwrap();
    assert_eq!(kind, b'T', "a row description");
    // A startup packet longer than PostgreSQL's 10,000 bytes, and an unknown message type.
    let s = TcpStream::connect(server.pg_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    refused(s, &[0, 1, 0, 0, 0, 3, 0, 0]);
    refused(login(), &typed(b'F', b""));
    // The server goes on.
    let mut s = login();
    s.write_all(&typed(b'Q', b"SELECT 1\0")).unwrap();
    assert_eq!(read_message(&mut s).unwrap().0, b'T');
}
