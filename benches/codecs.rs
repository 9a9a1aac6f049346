//! The column codecs of time-series segments on sensor-shaped data: first the bits per value
//! of each column under each codec, then encode/decode speed. Run with
//! `cargo bench --bench codecs`.
//!
//! The data is the benchmark table's shape: 100 devices, one reading every 10 s, laid out by
//! (device, time) in blocks of `BLOCK` rows of one device. Temperatures are a random walk,
//! rounded to one or two decimals as sensors report them, or left at full precision.

use chronos::timeseries::codec::{chimp, decimal, floats, text, timestamps};
use criterion::{criterion_group, Criterion, Throughput};

const DEVICES: usize = 100;
const PER_DEVICE: usize = 10_000;
const BLOCK: usize = 1_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 53) as f64
    }
}

struct Device {
    times: Vec<i64>,
    jittered: Vec<i64>,
    walk: Vec<f64>,
}

fn devices() -> Vec<Device> {
    let mut rng = Rng(42);
    (0..DEVICES)
        .map(|d| {
            let start = 1_704_067_200_000_000i64 + d as i64 * 137_000;
            let times: Vec<i64> = (0..PER_DEVICE as i64).map(|i| start + i * 10_000_000).collect();
            // Readings arrive up to ±50 ms off the 10 s grid.
            let jittered = times.iter().map(|t| t + (rng.unit() * 100_000.0) as i64 - 50_000).collect();
            let mut t = 15.0 + rng.unit() * 10.0;
            let walk = (0..PER_DEVICE)
                .map(|_| {
                    t += (rng.unit() - 0.5) * 0.1;
                    t
                })
                .collect();
            Device { times, jittered, walk }
        })
        .collect()
}

fn round(v: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (v * scale).round() / scale
}

/// Bits per value of `encode` over every block of every device.
fn bits<T>(devices: &[Device], column: impl Fn(&Device) -> Vec<T>, encode: impl Fn(&[T]) -> Vec<u8>) -> f64 {
    let (mut bytes, mut values) = (0, 0);
    for device in devices {
        let column = column(device);
        for block in column.chunks(BLOCK) {
            bytes += encode(block).len();
            values += block.len();
        }
    }
    bytes as f64 * 8.0 / values as f64
}

fn report(devices: &[Device]) {
    println!("bits per value, {DEVICES} devices x {PER_DEVICE} readings, blocks of {BLOCK} rows of one device:");
    let ts = |jitter: bool| move |d: &Device| if jitter { d.jittered.clone() } else { d.times.clone() };
    println!("  ts every 10 s, delta-of-delta          {:6.2}", bits(devices, ts(false), timestamps::encode));
    println!("  ts ±50 ms jitter, delta-of-delta       {:6.2}", bits(devices, ts(true), timestamps::encode));
    let names = |d: &Device| {
        let i = devices.iter().position(|x| std::ptr::eq(x, d)).unwrap_or(0);
        vec![format!("device-{i:03}"); d.times.len()]
    };
    println!(
        "  device text, dictionary                {:6.2}",
        bits(devices, names, |b: &[String]| text::encode(&b.iter().map(String::as_str).collect::<Vec<_>>()))
    );
    for (label, places) in [("temp, 1 decimal", Some(1)), ("temp, 2 decimals", Some(2)), ("temp, full precision", None)]
    {
        let column =
            move |d: &Device| -> Vec<f64> { d.walk.iter().map(|v| places.map_or(*v, |p| round(*v, p))).collect() };
        let chimp = bits(devices, column, chimp::encode);
        let decimal = bits(devices, column, |b: &[f64]| decimal::encode(b, decimal::choose_exponent(b).0));
        let chosen = bits(devices, column, floats::encode);
        println!("  {label:<22} Chimp128 {chimp:6.2}  decimal {decimal:6.2}  per-block choice {chosen:6.2}");
    }
    println!("  (raw: 64 bits per timestamp or float)");
}

fn speed(c: &mut Criterion) {
    let devices = devices();
    let temps: Vec<f64> = devices[0].walk.iter().map(|v| round(*v, 2)).collect();
    let raw: Vec<f64> = devices[0].walk.clone();
    let times = devices[0].jittered.clone();
    let mut g = c.benchmark_group("codecs");
    g.throughput(Throughput::Elements(PER_DEVICE as u64));
    g.bench_function("timestamps/encode", |b| b.iter(|| timestamps::encode(std::hint::black_box(&times))));
    let encoded = timestamps::encode(&times);
    g.bench_function("timestamps/decode", |b| b.iter(|| timestamps::decode(std::hint::black_box(&encoded))));
    g.bench_function("chimp128/encode", |b| b.iter(|| chimp::encode(std::hint::black_box(&raw))));
    let encoded = chimp::encode(&raw);
    g.bench_function("chimp128/decode", |b| b.iter(|| chimp::decode(std::hint::black_box(&encoded))));
    g.bench_function("floats_2_decimals/encode", |b| b.iter(|| floats::encode(std::hint::black_box(&temps))));
    let encoded = floats::encode(&temps);
    g.bench_function("floats_2_decimals/decode", |b| b.iter(|| floats::decode(std::hint::black_box(&encoded))));
    g.finish();
}

criterion_group!(benches, speed);

fn main() {
    report(&devices());
    benches();
    Criterion::default().configure_from_args().final_summary();
}
