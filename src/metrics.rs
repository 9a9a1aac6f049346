//! Building a `/metrics` page with the `prometheus` crate from values read at scrape time
//! (counters kept elsewhere as atomics, gauges computed from state), beside families that
//! are `prometheus` collectors themselves (the statement histograms).

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, TextEncoder};

/// Metric families gathered for one scrape.
#[derive(Default)]
pub struct Families(Vec<MetricFamily>);

impl Families {
    /// A counter with its current value.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        let counter = IntCounter::new(name, help).expect("a valid metric name");
        counter.inc_by(value);
        self.0.extend(counter.collect());
    }

    /// A gauge with an integer value (sent as a float, like every Prometheus sample: exact
    /// up to 2^53).
    pub fn gauge(&mut self, name: &str, help: &str, value: i64) {
        let gauge = IntGauge::new(name, help).expect("a valid metric name");
        gauge.set(value);
        self.0.extend(gauge.collect());
    }

    /// A gauge with a fractional value.
    pub fn gauge_f64(&mut self, name: &str, help: &str, value: f64) {
        let gauge = Gauge::new(name, help).expect("a valid metric name");
        gauge.set(value);
        self.0.extend(gauge.collect());
    }

    /// A counter per value of one label.
    pub fn counter_vec(&mut self, name: &str, help: &str, label: &str, values: Vec<(String, u64)>) {
        let counters = IntCounterVec::new(Opts::new(name, help), &[label]).expect("a valid metric name");
        for (value, n) in &values {
            counters.with_label_values(&[value.as_str()]).inc_by(*n);
        }
        self.0.extend(counters.collect());
    }

    /// A gauge per value of one label; a family with no values is left out.
    pub fn gauge_vec(&mut self, name: &str, help: &str, label: &str, values: Vec<(String, f64)>) {
        let gauges = GaugeVec::new(Opts::new(name, help), &[label]).expect("a valid metric name");
        for (value, v) in &values {
            gauges.with_label_values(&[value.as_str()]).set(*v);
        }
        self.0.extend(gauges.collect());
    }

    /// Families collected elsewhere.
    pub fn extend(&mut self, families: Vec<MetricFamily>) {
        self.0.extend(families);
    }

    /// The page in Prometheus' text format (version 0.0.4).
    pub fn encode(self) -> String {
        let families: Vec<MetricFamily> = self.0.into_iter().filter(|f| !f.get_metric().is_empty()).collect();
        let mut out = Vec::new();
        // Encoding into memory fails only on a family without samples, filtered out above.
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_encode_in_the_text_format() {
        let mut m = Families::default();
        m.counter("x_total", "Things.", 3);
        m.gauge_f64("y", "A level.", 1.5);
        m.gauge_vec("z", "Per peer.", "peer", vec![("2".into(), 4.0), ("3".into(), 0.0)]);
        m.gauge_vec("empty", "No samples.", "peer", Vec::new());
        m.counter_vec("w_total", "By class.", "class", vec![("42".into(), 2)]);
        let text = m.encode();
        assert!(text.contains("# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n"), "{text}");
        assert!(text.contains("# TYPE y gauge\ny 1.5\n"), "{text}");
        assert!(text.contains("z{peer=\"2\"} 4\n") && text.contains("z{peer=\"3\"} 0\n"), "{text}");
        assert!(text.contains("w_total{class=\"42\"} 2\n"), "{text}");
        assert!(!text.contains("empty"), "{text}");
    }
}
