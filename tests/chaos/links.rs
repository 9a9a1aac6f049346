//! Delay, loss and reordering between members in user space, for kernels without `netem`:
//! each member's namespace gets a TUN device, with a route through it to every other member,
//! and the test carries each packet from one device to the other after a random delay (which
//! reorders packets sent close together), or drops it.
//!
//! Only traffic between members goes this way; the clients' traffic to members keeps the
//! bridge.

use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What every packet between two members meets.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Each packet waits `delay ± jitter`, uniformly.
    pub delay: Duration,
    pub jitter: Duration,
    /// The share of packets dropped.
    pub loss: f64,
}

/// A packet due at a time, for member `to` (the sequence number keeps equal times in order).
type Due = Reverse<(Instant, u64, usize, Vec<u8>)>;

#[derive(Default)]
struct Queue {
    due: Mutex<BinaryHeap<Due>>,
    changed: Condvar,
}

/// The running links; dropping them removes the devices and stops the threads.
pub struct Links {
    stop: Arc<AtomicBool>,
    queue: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
    /// Packets carried and dropped, for the scenario's report.
    pub carried: Arc<AtomicU64>,
    pub dropped: Arc<AtomicU64>,
}

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// A TUN device named `name` in this process's namespace, without packet information
/// headers: each read is one IP packet, each write sends one.
fn tun(name: &str) -> Result<File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| format!("/dev/net/tun: {e}"))?;
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let mut request = IfReq { name: [0; 16], flags: IFF_TUN | IFF_NO_PI, _pad: [0; 22] };
    if name.len() >= request.name.len() {
        return Err(format!("device name {name} is too long"));
    }
    request.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes an ifreq, which `request` is laid out as, and the fd
    // is open for the call's duration.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut request) };
    if rc < 0 {
        return Err(format!("TUNSETIFF {name}: {}", std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// Whether `file` has a packet to read within `wait`; None once the device is gone (its
/// namespace deleted) or polling it fails.
fn readable(file: &File, wait: Duration) -> Option<bool> {
    let mut poll = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, for the call's duration.
    let rc = unsafe { libc::poll(&mut poll, 1, wait.as_millis() as libc::c_int) };
    let failed = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
    if rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted || poll.revents & failed != 0
    {
        return None;
    }
    Some(rc > 0 && poll.revents & libc::POLLIN != 0)
}

impl Links {
    /// Puts `faults` on every link between the members: `namespaces[i]` is member i's, with
    /// address `ips[i]`; devices are named `{prefix}{i}`.
    pub fn start(
        namespaces: &[String],
        ips: &[String],
        prefix: &str,
        faults: Faults,
        seed: u64,
    ) -> Result<Links, String> {
        let mut devices = Vec::new();
        for (i, ns) in namespaces.iter().enumerate() {
            let name = format!("{prefix}{i}");
            let file = tun(&name)?;
            super::net::run("ip", &["link", "set", &name, "netns", ns])?;
            super::net::run("ip", &["-n", ns, "link", "set", &name, "up"])?;
            devices.push(file);
        }
        for (i, ns) in namespaces.iter().enumerate() {
            for (j, peer) in ips.iter().enumerate() {
                if i != j {
                    let device = format!("{prefix}{i}");
                    let to = format!("{peer}/32");
                    super::net::run("ip", &["-n", ns, "route", "replace", &to, "dev", &device, "src", &ips[i]])?;
                }
            }
        }
        // The last byte of each member's address tells whose a packet is.
        let last_bytes: Vec<u8> =
            ips.iter().map(|ip| ip.rsplit('.').next().and_then(|b| b.parse().ok()).unwrap_or(0)).collect();
        let mut links = Links {
            stop: Arc::default(),
            queue: Arc::default(),
            threads: Vec::new(),
            carried: Arc::default(),
            dropped: Arc::default(),
        };
        let writers: Vec<File> =
            devices.iter().map(|d| d.try_clone()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        for (i, mut device) in devices.into_iter().enumerate() {
            let (stop, queue, dropped) = (links.stop.clone(), links.queue.clone(), links.dropped.clone());
            let last_bytes = last_bytes.clone();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ i as u64);
            let sequence = AtomicU64::new(0);
            links.threads.push(std::thread::spawn(move || {
                let mut buffer = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    match readable(&device, Duration::from_millis(50)) {
                        Some(true) => {}
                        Some(false) => continue,
                        None => return,
                    }
                    let Ok(n) = device.read(&mut buffer) else { continue };
                    // IPv4 only: the destination's last byte is byte 19.
                    if n < 20 || buffer[0] >> 4 != 4 {
                        continue;
                    }
                    let Some(to) = last_bytes.iter().position(|b| *b == buffer[19]) else { continue };
                    if rng.gen_bool(faults.loss) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let low = faults.delay.saturating_sub(faults.jitter);
                    let wait = low + (faults.delay + faults.jitter - low).mul_f64(rng.gen::<f64>());
                    let entry = Reverse((
                        Instant::now() + wait,
                        sequence.fetch_add(1, Ordering::Relaxed),
                        to,
                        buffer[..n].to_vec(),
                    ));
                    lock(&queue.due).push(entry);
                    queue.changed.notify_one();
                }
            }));
        }
        let (stop, queue, carried) = (links.stop.clone(), links.queue.clone(), links.carried.clone());
        links.threads.push(std::thread::spawn(move || {
            let mut writers = writers;
            let mut due = lock(&queue.due);
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                match due.peek() {
                    Some(Reverse((at, ..))) if *at <= now => {
                        let Some(Reverse((_, _, to, packet))) = due.pop() else { continue };
                        drop(due);
                        // A packet the peer's stack will not take is lost, as on a wire.
                        if writers[to].write(&packet).is_ok() {
                            carried.fetch_add(1, Ordering::Relaxed);
                        }
                        due = lock(&queue.due);
                    }
                    Some(Reverse((at, ..))) => {
                        let wait = (*at - now).min(Duration::from_millis(50));
                        due = queue.changed.wait_timeout(due, wait).unwrap_or_else(|e| e.into_inner()).0;
                    }
                    None => {
                        due = queue
                            .changed
                            .wait_timeout(due, Duration::from_millis(50))
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            }
        }));
        Ok(links)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Links {
    fn drop(&mut self) {
        // The devices go with their last descriptor, and their routes with them.
        self.stop.store(true, Ordering::Relaxed);
        self.queue.changed.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
