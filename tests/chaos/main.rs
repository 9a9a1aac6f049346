//! Faults on real processes: a three-member cluster of `chronos node` processes, each in its
//! own network namespace, under partitions, delay and loss, kill -9, pauses, clock offsets and
//! a full disk, while clients read and write through every member. Every run's history is
//! checked: linearizable registers (no stale read), no acknowledged write lost, none applied
//! twice, every member converging, and the cluster serving again within [`RECOVERY_BOUND`]
//! of the fault's end.
//!
//! Run with `tests/chaos/run.sh` (root: namespaces, veth pairs, tc, tmpfs). Arguments select
//! scenarios by name; `CHAOS_MINUTES` lengthens every fault phase (the soak profile);
//! `CHAOS_SEED` repeats a run's random choices. `CHAOS_FOLLOWER_READS=1` makes the clients read
//! with `chronos.follower_reads` (stale reads allowed): the checker must then fail the
//! partition scenarios, which shows that it can.

mod checks;
mod edge;
#[allow(dead_code)]
#[path = "../raft_support/lin.rs"]
mod lin;
mod links;
mod members;
mod net;
mod scenarios;
#[path = "../support/mod.rs"]
mod support;
mod tls;
mod workload;

use members::Members;
use net::Net;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workload::{Action, Dialer, Outcome, Record};

/// The longest a fault's end may take to give writes through every member back.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(30);
const CLIENTS_PER_MEMBER: usize = 2;
const MEMBERS: usize = 3;

/// What a scenario's fault has to work with.
pub struct Ctx {
    // Fields drop in order: the members stop before their namespaces go.
    pub members: Members,
    pub net: Net,
    pub rng: rand::rngs::StdRng,
    /// How long a looping fault runs (longer in the soak profile).
    pub budget: Duration,
    /// The members' data directories are small tmpfs mounts (the full-disk scenario).
    pub disks: Vec<PathBuf>,
    /// Connections to the members (and the edge, after them).
    pub dialer: Dialer,
    pub rt: tokio::runtime::Handle,
}

impl Ctx {
    pub fn leader(&mut self) -> Result<usize, String> {
        self.members.leader(Duration::from_secs(20)).ok_or_else(|| "no leader within 20 s".to_string())
    }
}

pub struct Scenario {
    pub name: &'static str,
    /// Mount a tmpfs of this many MiB as every member's data directory.
    pub disk_mib: Option<u32>,
    /// Run an edge beside the cluster, pushing to every member.
    pub edge: bool,
    /// Client operations' timeout.
    pub op_timeout: Duration,
    pub fault: fn(&mut Ctx) -> Result<(), String>,
}

struct Report {
    tried: usize,
    ok: usize,
    failed: usize,
    unknown: usize,
    recovery: Option<Duration>,
    problems: Vec<String>,
}

fn mount_tmpfs(dir: &Path, mib: u32) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    net::run("mount", &["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs", &dir.to_string_lossy()])
}

fn main() -> ExitCode {
    if !Path::new("/proc/self/ns/net").exists() || effective_uid() != 0 {
        eprintln!("chaos: needs root (network namespaces, tc, tmpfs)");
        return ExitCode::from(2);
    }
    let minutes: Option<f64> = std::env::var("CHAOS_MINUTES").ok().and_then(|m| m.parse().ok());
    let budget = minutes.map_or(Duration::from_secs(15), |m| Duration::from_secs_f64(m * 60.0));
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    let chosen: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let all = scenarios::all();
    if let Some(unknown) = chosen.iter().find(|c| !all.iter().any(|s| s.name == c.as_str())) {
        let names: Vec<&str> = all.iter().map(|s| s.name).collect();
        eprintln!("chaos: no scenario {unknown:?}; there are {}", names.join(", "));
        return ExitCode::from(2);
    }
    println!("chaos: seed {seed} (CHAOS_SEED={seed} repeats it), fault phases of {} s", budget.as_secs());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (mut passed, mut failed) = (0, 0);
    for scenario in all.iter().filter(|s| chosen.is_empty() || chosen.iter().any(|c| c == s.name)) {
        let started = Instant::now();
        let report = run_scenario(&runtime, scenario, seed, budget);
        let verdict = if report.problems.is_empty() { "PASS" } else { "FAIL" };
        println!(
            "chaos: {:<18} {verdict}  ops {} (ok {}, failed {}, unknown {}), recovery {}, {:.0} s",
            scenario.name,
            report.tried,
            report.ok,
            report.failed,
            report.unknown,
            report.recovery.map_or("none".to_string(), |d| format!("{:.1} s", d.as_secs_f64())),
            started.elapsed().as_secs_f64()
        );
        for problem in &report.problems {
            println!("chaos: {:<18}   {problem}", scenario.name);
        }
        if report.problems.is_empty() {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("chaos: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn effective_uid() -> u32 {
    // The effective uid, from /proc (no libc binding needed).
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// tmpfs mounts, unmounted when dropped (also when a scenario panics), unless kept for a
/// failed scenario's data to be looked at.
struct Mounts {
    dirs: Vec<PathBuf>,
    keep: bool,
}

impl Drop for Mounts {
    fn drop(&mut self) {
        if !self.keep {
            for dir in &self.dirs {
                let _ = net::run("umount", &["-l", &dir.to_string_lossy()]);
            }
        }
    }
}

fn run_scenario(runtime: &tokio::runtime::Runtime, scenario: &Scenario, seed: u64, budget: Duration) -> Report {
    let mut report = Report { tried: 0, ok: 0, failed: 0, unknown: 0, recovery: None, problems: Vec::new() };
    let dir = std::env::temp_dir().join(format!("chronos-chaos-{}-{}", std::process::id(), scenario.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut mounts = Mounts { dirs: Vec::new(), keep: false };
    if let Some(mib) = scenario.disk_mib {
        for i in 0..MEMBERS {
            let disk = dir.join(format!("n{}", i + 1));
            match mount_tmpfs(&disk, mib) {
                Ok(()) => mounts.dirs.push(disk),
                Err(e) => report.problems.push(e),
            }
        }
    }
    if report.problems.is_empty() {
        // A panic (a process that would not start, say) fails this scenario, not the run: the
        // members and namespaces go with the unwinding.
        let driven = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drive(runtime, scenario, seed, budget, &dir, mounts.dirs.clone(), &mut report)
        }));
        match driven {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report.problems.push(e),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                report.problems.push(format!("panicked: {}", what.unwrap_or_default()));
            }
        }
    }
    if report.problems.is_empty() {
        drop(mounts);
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        mounts.keep = !mounts.dirs.is_empty();
        report.problems.push(format!("members' logs, data and history kept in {}", dir.display()));
        if mounts.keep {
            report.problems.push("(its tmpfs mounts are left in place)".into());
        }
    }
    report
}

fn drive(
    runtime: &tokio::runtime::Runtime,
    scenario: &Scenario,
    seed: u64,
    budget: Duration,
    dir: &Path,
    disks: Vec<PathBuf>,
    report: &mut Report,
) -> Result<(), String> {
    let net = Net::create(MEMBERS + usize::from(scenario.edge))?;
    let members = Members::start(&net, MEMBERS, scenario.edge, dir);
    let seed = seed ^ scenario.name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let all = members.list.len();
    let dialer = Dialer { configs: (0..all).map(|i| members.pg_config(i)).collect(), tls: members.tls.clone() };
    let rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rt = runtime.handle().clone();
    let mut ctx = Ctx { members, net, rng, budget, disks, dialer: dialer.clone(), rt };
    let leader = ctx.leader()?;
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(client) = dialer.connect(leader).await {
                if client.batch_execute(workload::SCHEMA).await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err("could not create the tables".to_string());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })?;

    let history: Arc<Mutex<Vec<Record>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // The clients stop with this scenario, also when it panics.
    let _stop_clients = StopOnDrop(stop.clone());
    let clients: Vec<_> = (0..MEMBERS * CLIENTS_PER_MEMBER)
        .map(|c| {
            let client = workload::client(
                c,
                c % MEMBERS,
                seed,
                scenario.op_timeout,
                dialer.clone(),
                stop.clone(),
                history.clone(),
            );
            runtime.spawn(client)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    // A fault that could not be carried out fails the scenario, after every check has run.
    if let Err(e) = (scenario.fault)(&mut ctx) {
        report.problems.push(format!("the fault: {e}"));
    }
    // Whatever the fault did, it ends here: links healed, members running.
    let _ = ctx.net.heal();
    if let Some((carried, dropped)) = ctx.net.clear_slow_links() {
        println!("chaos: {:<18}   links carried {carried} packets between members, dropped {dropped}", scenario.name);
    }
    for i in 0..all {
        ctx.members.signal(i, "CONT");
        if !ctx.members.running(i) {
            ctx.members.spawn(i, &[]);
        }
    }
    let healed = Instant::now();
    let recovered = runtime.block_on(checks::recovery(&dialer, healed));
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        for c in clients {
            let _ = c.await;
        }
    });
    let history = std::mem::take(&mut *history.lock().unwrap());
    report.tried = history.len();
    report.ok = history.iter().filter(|r| r.outcome == Outcome::Ok).count();
    report.failed = history.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).count();
    report.unknown = history.iter().filter(|r| matches!(r.outcome, Outcome::Unknown(_))).count();
    match recovered {
        Ok(d) => report.recovery = Some(d),
        Err(e) => report.problems.push(e),
    }
    // Enough to check: some of both reads and writes succeeded.
    let succeeded = |read: bool| {
        history.iter().filter(|r| r.outcome == Outcome::Ok && matches!(r.action, Action::Get { .. }) == read).count()
    };
    if succeeded(true) < 100 || succeeded(false) < 100 {
        report.problems.push(format!(
            "too few operations succeeded: {} reads, {} writes",
            succeeded(true),
            succeeded(false)
        ));
    }
    if let Err(e) = checks::linearizable(&history) {
        report.problems.push(e);
    }
    match runtime.block_on(checks::converged(&dialer)) {
        Ok(rows) => {
            if let Err(e) = checks::appends(&history, &rows) {
                report.problems.push(e);
            }
        }
        Err(e) => report.problems.push(e),
    }
    if std::env::var_os("CHAOS_HISTORY").is_some() || !report.problems.is_empty() {
        let lines: Vec<String> = history.iter().map(|r| format!("{r:?}")).collect();
        let _ = std::fs::write(dir.join("history.txt"), lines.join("\n"));
    }
    if !report.problems.is_empty() {
        for i in 0..all {
            report.problems.push(format!("member {} log tail:\n{}", i + 1, ctx.members.log_tail(i)));
        }
    }
    Ok(())
}
