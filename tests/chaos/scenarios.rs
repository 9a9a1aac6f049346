//! The faults. Each runs while the clients work and returns with its fault still possibly in
//! place: the driver heals links, clears netem, resumes and restarts members afterwards.

use crate::links::Faults;
use crate::{Ctx, Scenario, MEMBERS};
use rand::seq::SliceRandom;
use rand::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

pub fn all() -> Vec<Scenario> {
    let s = Duration::from_secs;
    vec![
        Scenario { name: "leader-partition", disk_mib: None, edge: false, op_timeout: s(5), fault: leader_partition },
        Scenario { name: "majority-minority", disk_mib: None, edge: false, op_timeout: s(5), fault: majority_minority },
        Scenario { name: "bridge", disk_mib: None, edge: false, op_timeout: s(5), fault: bridge },
        Scenario { name: "random-partitions", disk_mib: None, edge: false, op_timeout: s(5), fault: random_partitions },
        Scenario { name: "slow-lossy-links", disk_mib: None, edge: false, op_timeout: s(10), fault: slow_lossy_links },
        Scenario { name: "kill-loop", disk_mib: None, edge: false, op_timeout: s(5), fault: kill_loop },
        Scenario { name: "pause-leader", disk_mib: None, edge: false, op_timeout: s(10), fault: pause_leader },
        Scenario { name: "clock-skew", disk_mib: None, edge: false, op_timeout: s(5), fault: clock_skew },
        Scenario { name: "edge-uplink", disk_mib: None, edge: true, op_timeout: s(5), fault: edge_uplink },
        Scenario { name: "disk-full", disk_mib: Some(256), edge: false, op_timeout: s(5), fault: disk_full },
    ]
}

fn others(of: usize) -> Vec<usize> {
    (0..MEMBERS).filter(|m| *m != of).collect()
}

/// `count` rounds of `cut` (which picks its own target) held for `hold`; the links heal for
/// `gap` between rounds. The last cut is left for the driver to end.
fn rounds(
    ctx: &mut Ctx,
    count: usize,
    hold: Duration,
    gap: Duration,
    mut cut: impl FnMut(&mut Ctx) -> Result<(), String>,
) -> Result<(), String> {
    for round in 0..count {
        if round > 0 {
            ctx.net.heal()?;
            sleep(gap);
        }
        cut(ctx)?;
        sleep(hold);
    }
    Ok(())
}

/// The leader alone on one side, the other two on the other; then the new leader so.
fn leader_partition(ctx: &mut Ctx) -> Result<(), String> {
    rounds(ctx, 2, Duration::from_secs(6), Duration::from_secs(3), |ctx| {
        let leader = ctx.leader()?;
        ctx.net.partition(&[&[leader], &others(leader)])
    })
}

/// A random member cut off (a follower or the leader), clients on both sides.
fn majority_minority(ctx: &mut Ctx) -> Result<(), String> {
    rounds(ctx, 3, Duration::from_secs(5), Duration::from_secs(2), |ctx| {
        let minority = ctx.rng.gen_range(0..MEMBERS);
        ctx.net.partition(&[&[minority], &others(minority)])
    })
}

/// One member sees both others, which do not see each other.
fn bridge(ctx: &mut Ctx) -> Result<(), String> {
    rounds(ctx, 2, Duration::from_secs(7), Duration::from_secs(2), |ctx| {
        let ends = others(ctx.rng.gen_range(0..MEMBERS));
        ctx.net.cut_links(&[(ends[0], ends[1])])
    })
}

/// For a minute (or the budget, if longer), every 1–4 s: healed, one member cut off, or a bridge.
fn random_partitions(ctx: &mut Ctx) -> Result<(), String> {
    let end = Instant::now() + ctx.budget.max(Duration::from_secs(60));
    while Instant::now() < end {
        let m = ctx.rng.gen_range(0..MEMBERS);
        match ctx.rng.gen_range(0..3) {
            0 => ctx.net.heal()?,
            1 => ctx.net.partition(&[&[m], &others(m)])?,
            _ => {
                let ends = others(m);
                ctx.net.cut_links(&[(ends[0], ends[1])])?;
            }
        }
        let pause = ctx.rng.gen_range(1000..4000);
        sleep(Duration::from_millis(pause));
    }
    Ok(())
}

/// 200 ms ± 100 ms of delay, 10% loss and reordering on every link between members (with
/// netem, on every member's interface).
fn slow_lossy_links(ctx: &mut Ctx) -> Result<(), String> {
    let faults = Faults { delay: Duration::from_millis(200), jitter: Duration::from_millis(100), loss: 0.10 };
    let how = ctx.net.slow_links("delay 200ms 100ms loss 10% reorder 25% 50%", faults, ctx.rng.gen())?;
    println!("chaos: slow-lossy-links   {how}");
    sleep(ctx.budget);
    Ok(())
}

/// kill -9 of a random member, a restart 1–3 s later, again and again.
fn kill_loop(ctx: &mut Ctx) -> Result<(), String> {
    let end = Instant::now() + ctx.budget;
    while Instant::now() < end {
        let victim = ctx.rng.gen_range(0..MEMBERS);
        ctx.members.kill(victim);
        let pause = ctx.rng.gen_range(1000..3000);
        sleep(Duration::from_millis(pause));
        if Instant::now() >= end {
            break;
        }
        ctx.members.spawn(victim, &[]);
        let pause = ctx.rng.gen_range(1000..3000);
        sleep(Duration::from_millis(pause));
    }
    Ok(())
}

/// SIGSTOP of the leader for 5 s, longer than its lease and an election; then SIGCONT. Its
/// clients' requests wait in its sockets meanwhile. In three more rounds the paused leader is
/// also cut off from its peers and stays so for 2 s after SIGCONT, so that nothing tells it of
/// its successor: a lease that counted the pause as no time at all serves stale reads then
/// (it did, before the Raft thread delivered the ticks a pause had missed).
fn pause_leader(ctx: &mut Ctx) -> Result<(), String> {
    let leader = ctx.leader()?;
    ctx.members.signal(leader, "STOP");
    sleep(Duration::from_secs(5));
    ctx.members.signal(leader, "CONT");
    sleep(Duration::from_secs(4));
    rounds(ctx, 3, Duration::from_secs(2), Duration::from_secs(3), |ctx| {
        let leader = ctx.leader()?;
        ctx.members.signal(leader, "STOP");
        ctx.net.partition(&[&[leader], &others(leader)])?;
        sleep(Duration::from_secs(5));
        ctx.members.signal(leader, "CONT");
        Ok(())
    })
}

/// A member whose clock runs 2 s ahead takes the lead; then the same member, its clock now
/// 2 s behind the versions it already wrote, leads again.
fn clock_skew(ctx: &mut Ctx) -> Result<(), String> {
    let leader = ctx.leader()?;
    let skewed = *others(leader).choose(&mut ctx.rng).unwrap();
    for offset in ["2000", "-2000"] {
        ctx.members.restart(skewed, &[("CHRONOS_CLOCK_OFFSET_MS", offset)]);
        sleep(Duration::from_secs(3));
        let deadline = Instant::now() + Duration::from_secs(15);
        while ctx.leader()? != skewed {
            if Instant::now() > deadline {
                return Err(format!("member {} (clock {offset} ms) did not take the lead", skewed + 1));
            }
            // Refused while the member catches up; asked again.
            let _ = ctx.members.transfer_leadership(skewed);
            sleep(Duration::from_millis(500));
        }
        sleep(Duration::from_secs(5));
    }
    Ok(())
}

/// The leader's disk fills up: it exits non-zero (as documented) and the others go on; space
/// returns and it is restarted (by the driver), catching up.
fn disk_full(ctx: &mut Ctx) -> Result<(), String> {
    let leader = ctx.leader()?;
    let filler = ctx.disks[leader].join("chaos-filler");
    let of = format!("of={}", filler.display());
    // dd stops at "No space left on device".
    let _ = crate::net::run("dd", &["if=/dev/zero", &of, "bs=1M"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctx.members.running(leader) {
        if Instant::now() > deadline {
            return Err(format!("member {} went on with a full disk for 30 s", leader + 1));
        }
        sleep(Duration::from_millis(200));
    }
    match ctx.members.list[leader].exit {
        Some(status) if !status.success() => {}
        other => return Err(format!("member {} with a full disk exited with {other:?}, not an error", leader + 1)),
    }
    sleep(Duration::from_secs(3));
    // Space returns; the driver restarts the member, as a supervisor would.
    std::fs::remove_file(&filler).map_err(|e| e.to_string())
}

/// An edge (`single-node --edge-id farm-a`, pushing to every member's address) inserts,
/// updates and deletes rows throughout. Its uplink is cut for the budget; it comes back while
/// the cloud's leader is killed in the middle of the catch-up; then the uplink flaps. Every
/// change the edge acknowledged must reach the cloud, whose table must end equal to the
/// edge's: deleted rows absent, updated rows at their last value.
fn edge_uplink(ctx: &mut Ctx) -> Result<(), String> {
    let edge = MEMBERS;
    let cloud: Vec<usize> = (0..MEMBERS).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let seed = ctx.rng.gen();
    let writer = ctx.rt.spawn(crate::edge::writer(ctx.dialer.clone(), edge, seed, stop.clone()));
    sleep(Duration::from_secs(2));
    ctx.net.partition(&[&cloud, &[edge]])?;
    sleep(ctx.budget);
    ctx.net.heal()?;
    // The edge pushes within its 1 s interval (or its backoff): the leader dies at a random
    // moment of the catch-up; how much was left then is printed.
    let pause = ctx.rng.gen_range(200..1500);
    sleep(Duration::from_millis(pause));
    let leader = ctx.leader()?;
    let left = ctx.rt.block_on(crate::edge::backlog(&ctx.dialer, edge))?;
    ctx.members.kill(leader);
    println!("chaos: edge-uplink        cloud leader killed {pause} ms after the uplink came back, {left} changes not yet acknowledged");
    sleep(Duration::from_secs(2));
    ctx.members.spawn(leader, &[]);
    for _ in 0..5 {
        ctx.net.partition(&[&cloud, &[edge]])?;
        sleep(Duration::from_millis(1500));
        ctx.net.heal()?;
        sleep(Duration::from_millis(1500));
    }
    stop.store(true, Ordering::Relaxed);
    let written = ctx.rt.block_on(writer).map_err(|e| format!("the edge's writer: {e}"))??;
    let synced = ctx.rt.block_on(crate::edge::synced(&ctx.dialer, edge, &written))?;
    println!("chaos: edge-uplink        {synced}");
    Ok(())
}
