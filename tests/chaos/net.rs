//! The network the members live on: one network namespace per member, each joined to a
//! bridge in the test's own namespace by a veth pair. The workload's clients run in the
//! test's namespace and reach every member over the bridge.
//!
//! Faults: a partition is a set of blackhole routes inside the members' namespaces (packets
//! to a peer on the other side are dropped silently, in both directions, as on a cut link);
//! delay, loss and reordering are `tc netem` on each member's interface, or, on a kernel
//! without netem, the same carried out in user space between the members (`links`).

use crate::links::{Faults, Links};
use std::process::Command;
use std::sync::atomic::Ordering;

/// Runs a command; its stderr on failure.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

pub struct Net {
    tag: String,
    bridge: String,
    subnet: u8,
    members: usize,
    /// Blackhole routes now installed: (from member, to member).
    cut: Vec<(usize, usize)>,
    /// Slow links carried in user space, while they last.
    links: Option<Links>,
}

impl Net {
    /// A bridge and `members` namespaces, named after this process and a count so that no two
    /// networks share names, even while the kernel still tears the last one down.
    pub fn create(members: usize) -> Result<Net, String> {
        static CREATED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let pid = std::process::id();
        let count = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{}{}", pid % 10_000, count % 100);
        let subnet = ((pid + count) % 200 + 20) as u8;
        // Dropped on an error half way: what was made is removed.
        let net = Net { bridge: format!("chb{tag}"), subnet, tag, members, cut: Vec::new(), links: None };
        run("ip", &["link", "add", &net.bridge, "type", "bridge"])?;
        run("ip", &["addr", "add", &format!("10.213.{}.1/24", net.subnet), "dev", &net.bridge])?;
        run("ip", &["link", "set", &net.bridge, "up"])?;
        for i in 0..members {
            let (ns, veth) = (net.namespace(i), net.veth(i));
            run("ip", &["netns", "add", &ns])?;
            run("ip", &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            run("ip", &["link", "set", &veth, "master", &net.bridge, "up"])?;
            run("ip", &["-n", &ns, "addr", "add", &format!("{}/24", net.ip(i)), "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    pub fn namespace(&self, i: usize) -> String {
        format!("chaos{}-{i}", self.tag)
    }

    fn veth(&self, i: usize) -> String {
        format!("chv{}x{i}", self.tag)
    }

    /// Member `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("10.213.{}.{}", self.subnet, 10 + i)
    }

    /// Cuts the link between every pair of members in different groups (members in no
    /// group are cut from everyone). Replaces any partition in place.
    pub fn partition(&mut self, groups: &[&[usize]]) -> Result<(), String> {
        let group_of = |m: usize| groups.iter().position(|g| g.contains(&m));
        let mut cut = Vec::new();
        for a in 0..self.members {
            for b in 0..self.members {
                if a != b && (group_of(a).is_none() || group_of(a) != group_of(b)) {
                    cut.push((a, b));
                }
            }
        }
        self.set_cut(cut)
    }

    /// Cuts exactly these links, both ways: a bridge, say, where one member sees both halves.
    pub fn cut_links(&mut self, links: &[(usize, usize)]) -> Result<(), String> {
        let cut = links.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect();
        self.set_cut(cut)
    }

    pub fn heal(&mut self) -> Result<(), String> {
        self.set_cut(Vec::new())
    }

    fn set_cut(&mut self, cut: Vec<(usize, usize)>) -> Result<(), String> {
        for &(a, b) in &self.cut.clone() {
            if !cut.contains(&(a, b)) {
                run("ip", &["-n", &self.namespace(a), "route", "del", "blackhole", &format!("{}/32", self.ip(b))])?;
                self.cut.retain(|l| *l != (a, b));
            }
        }
        for &(a, b) in &cut {
            if !self.cut.contains(&(a, b)) {
                run("ip", &["-n", &self.namespace(a), "route", "add", "blackhole", &format!("{}/32", self.ip(b))])?;
                self.cut.push((a, b));
            }
        }
        Ok(())
    }

    /// Slow, lossy links: `tc netem` with `netem` words (e.g. `delay 200ms 100ms loss 10%`)
    /// on every member's interface where the kernel has netem; where it does not, `faults` on
    /// every link between two members, carried in user space. Says which.
    pub fn slow_links(&mut self, netem: &str, faults: Faults, seed: u64) -> Result<String, String> {
        let shape = |i: usize| {
            let ns = self.namespace(i);
            let mut args = vec!["-n", &ns, "qdisc", "replace", "dev", "eth0", "root", "netem"];
            args.extend(netem.split_whitespace());
            run("tc", &args)
        };
        // The first member shows whether the kernel has netem.
        match shape(0) {
            Ok(()) => {
                for i in 1..self.members {
                    shape(i)?;
                }
                Ok(format!("tc netem {netem}"))
            }
            Err(e) if e.contains("qdisc kind is unknown") => {
                let namespaces: Vec<String> = (0..self.members).map(|i| self.namespace(i)).collect();
                let ips: Vec<String> = (0..self.members).map(|i| self.ip(i)).collect();
                self.links = Some(Links::start(&namespaces, &ips, &format!("cht{}x", self.tag), faults, seed)?);
                Ok(format!("user-space links between members (no netem here): {faults:?}"))
            }
            Err(e) => Err(e),
        }
    }

    /// Normal links again (no error where there was nothing to remove); what the user-space
    /// links carried and dropped, if they ran.
    pub fn clear_slow_links(&mut self) -> Option<(u64, u64)> {
        for i in 0..self.members {
            let _ = run("tc", &["-n", &self.namespace(i), "qdisc", "del", "dev", "eth0", "root"]);
        }
        let links = self.links.take()?;
        let counts = (links.carried.load(Ordering::Relaxed), links.dropped.load(Ordering::Relaxed));
        // Their devices, and the routes through them, go with the links.
        drop(links);
        Some(counts)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.members {
            // The veth goes at once; a namespace lives on while sockets in it linger.
            let _ = run("ip", &["link", "del", &self.veth(i)]);
            let _ = run("ip", &["netns", "del", &self.namespace(i)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}
