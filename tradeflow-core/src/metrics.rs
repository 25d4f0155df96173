//! Prometheus text exposition shared by the services' `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// `# HELP` and `# TYPE` of metric `name`.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One unlabelled sample per `(name, help, value, kind)`, each name prefixed with `prefix`.
pub fn samples(out: &mut String, prefix: &str, metrics: &[(&str, &str, &AtomicU64, &str)]) {
    for (name, help, value, kind) in metrics {
        let name = format!("{prefix}{name}");
        header(out, &name, help, kind);
        let _ = writeln!(out, "{name} {}", value.load(Relaxed));
    }
}

/// Upper bounds (seconds) of the latency histograms' buckets.
/// Fine below 100 ms: the per-hop table of the latency benchmark reads its percentiles off them.
pub const LATENCY_BUCKETS: [f64; 16] =
    [0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 5.0];

/// A latency histogram over [`LATENCY_BUCKETS`] (Prometheus `histogram`, in seconds). An
/// observation touches one bucket (on the consumers' per-record path); rendering accumulates.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket, not cumulative: `buckets[i]` counts `LATENCY_BUCKETS[i-1] < s ≤ LATENCY_BUCKETS[i]`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, latency: Duration) {
        let s = latency.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| s <= *bound) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(latency.as_micros() as u64, Relaxed);
    }

    /// Observes the age of a record stamped `timestamp_ms` (Unix ms) as of now; a timestamp in the
    /// future (clock skew between hosts) counts as zero.
    pub fn observe_age_ms(&self, timestamp_ms: i64) {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        self.observe(Duration::from_millis(now.saturating_sub(timestamp_ms).max(0) as u64));
    }

    /// Observes the age of `t`, a UTC time without a zone (a fill's activity time), as of `now`
    /// (UTC); a time in the future counts as zero.
    pub fn observe_age_at(&self, now: chrono::NaiveDateTime, t: chrono::NaiveDateTime) {
        self.observe(now.signed_duration_since(t).to_std().unwrap_or(Duration::ZERO));
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let (a, b) = (AtomicU64::new(3), AtomicU64::new(0));
        let mut out = String::new();
        samples(&mut out, "p_", &[("a_total", "As.", &a, "counter"), ("b", "Bs.", &b, "gauge")]);
        assert_eq!(
            out,
            "# HELP p_a_total As.\n# TYPE p_a_total counter\np_a_total 3\n# HELP p_b Bs.\n# TYPE p_b gauge\np_b 0\n"
        );
    }

    #[test]
    fn histogram_exposition() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(700));
        h.observe_age_ms(i64::MAX); // from the future: zero
        h.observe(Duration::from_secs(10)); // beyond the last bound: +Inf only
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "Xs.");
        assert!(
            out.starts_with("# HELP x_seconds Xs.\n# TYPE x_seconds histogram\nx_seconds_bucket{le=\"0.001\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_bucket{le=\"0.002\"} 1\nx_seconds_bucket{le=\"0.003\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.5\"} 2\nx_seconds_bucket{le=\"1\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"5\"} 3\n"), "{out}");
        assert!(out.ends_with("x_seconds_bucket{le=\"+Inf\"} 4\nx_seconds_sum 10.703\nx_seconds_count 4\n"), "{out}");
    }
}
