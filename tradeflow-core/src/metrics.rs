//! Prometheus text exposition shared by the services' `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let (a, b) = (AtomicU64::new(3), AtomicU64::new(0));
        let mut out = String::new();
        samples(&mut out, "p_", &[("a_total", "As.", &a, "counter"), ("b", "Bs.", &b, "gauge")]);
        assert_eq!(out, "# HELP p_a_total As.\n# TYPE p_a_total counter\np_a_total 3\n# HELP p_b Bs.\n# TYPE p_b gauge\np_b 0\n");
    }
}
