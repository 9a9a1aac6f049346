//! A full disk stops a node in a defined way: writes fail with 53100, `/health` answers 503
//! with the reason, and the process exits non-zero instead of serving on as a zombie.
//! The data directory lives on a small tmpfs mounted for the test (tests run as root).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::Server;

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = std::env::temp_dir().join(format!("chronos-small-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "cannot mount a tmpfs (the tests need root): {status:?}");
        SmallDisk(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_node_visibly() {
    let disk = SmallDisk::mount("12m");
    let data = tempfile::tempdir_in(disk.path()).unwrap();
    let mut server = Server::start_in(data, &[("CHRONOS_CACHE_MB", "4")]);
    let client = server.connect("admin").await;
    client.batch_execute("CREATE TABLE big (id SERIAL PRIMARY KEY, v TEXT)").await.unwrap();
    let insert = "INSERT INTO big (v) SELECT repeat(md5(i::text), 30) FROM generate_series(1, 1000) i";
    let mut first_error = None;
    for _ in 0..200 {
        if let Err(e) = client.batch_execute(insert).await {
            first_error = Some(e);
            break;
        }
    }
    let first_error = first_error.expect("12 MB filled up without an error");
    // The write that hit the full disk may or may not have been applied.
    let code = first_error.code().map(|c| c.code().to_string()).unwrap_or_default();
    assert!(matches!(code.as_str(), "53100" | "08007" | "58030"), "{first_error:?}");

    // From then on writes fail at once with disk_full, and /health says why.
    let started = Instant::now();
    let err = client.batch_execute(insert).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("53100"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "the refusal waited {:?}", started.elapsed());
    // /health says so (until the node has shut down).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match support::http_request(server.http_addr, "GET", "/health", "") {
            // Applying may stall (and be retried) for a moment before the node gives up.
            Some((503, body)) if body.contains("\"status\":\"stalled\"") => {
                assert!(body.contains("no space left"), "{body}");
                assert!(Instant::now() < deadline, "/health still stalled: {body}");
            }
            Some((503, body)) => {
                assert!(body.contains("\"status\":\"failed\"") && body.contains("no space left"), "{body}");
                break;
            }
            None => break,
            Some((_, body)) => assert!(Instant::now() < deadline, "/health still healthy: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The process stops on its own and says so with its exit status.
    let exit = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(30)));
    let exit = exit.expect("the node went on after its disk filled up");
    assert!(!exit.success(), "{exit:?}");
}
