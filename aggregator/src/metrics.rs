//! Aggregator metrics (Prometheus text).

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Default)]
pub struct Metrics {
    /// Consumer lag per owned partition: high watermark (as learned from fetches) − next offset.
    pub lag: std::sync::Mutex<std::collections::BTreeMap<i32, i64>>,
    /// Consumer lag in seconds per owned partition ([`lag_seconds`]); absent for a partition with
    /// records waiting from which this instance has consumed none yet.
    pub lag_seconds: std::sync::Mutex<std::collections::BTreeMap<i32, f64>>,
    pub records: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    pub malformed: AtomicU64,
    pub snapshots: AtomicU64,
    pub snapshot_rows: AtomicU64,
    pub snapshot_micros: AtomicU64,
    pub fenced: AtomicU64,
    pub rebuilt: AtomicU64,
    pub changes_published: AtomicU64,
    /// Rows a new owner published as it loaded them (its predecessor may have died with them unsent).
    pub rows_republished: AtomicU64,
    pub partitions_owned: AtomicU64,
    /// Age of each trade record when consumed (now − its Kafka timestamp).
    pub record_age: tradeflow_core::metrics::Histogram,
    /// A batch's first record read → each row change it caused handed to the changelog producer.
    pub apply_latency: tradeflow_core::metrics::Histogram,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        tradeflow_core::metrics::samples(
            &mut out,
            "tradeflow_aggregator_",
            &[
                ("records_total", "Trade records consumed.", &self.records, "counter"),
                (
                    "duplicates_total",
                    "Re-sent trade lines dropped (identity already applied).",
                    &self.duplicates,
                    "counter",
                ),
                (
                    "rejected_total",
                    "Trades that would overflow a row (left in the topic, logged).",
                    &self.rejected,
                    "counter",
                ),
                (
                    "malformed_total",
                    "Records on trades that are not trade records (left in the topic, logged).",
                    &self.malformed,
                    "counter",
                ),
                ("snapshots_total", "Partition snapshots committed to Postgres.", &self.snapshots, "counter"),
                ("snapshot_rows_total", "Rows written by snapshots.", &self.snapshot_rows, "counter"),
                (
                    "snapshot_duration_microseconds_total",
                    "Time spent in snapshot transactions.",
                    &self.snapshot_micros,
                    "counter",
                ),
                (
                    "fenced_total",
                    "Snapshots refused because another instance owns the partition.",
                    &self.fenced,
                    "counter",
                ),
                (
                    "rebuilt_reloads_total",
                    "Partitions loaded again after a backfill rebuilt them.",
                    &self.rebuilt,
                    "counter",
                ),
                (
                    "changes_published_total",
                    "Summary rows changed by trades and published to the changelog.",
                    &self.changes_published,
                    "counter",
                ),
                (
                    "rows_republished_total",
                    "Summary rows published again as this instance was assigned their partition (a predecessor may have died with them unsent).",
                    &self.rows_republished,
                    "counter",
                ),
                ("partitions_owned", "Partitions this instance owns.", &self.partitions_owned, "gauge"),
            ],
        );
        self.record_age.render(
            &mut out,
            "tradeflow_aggregator_record_age_seconds",
            "Age of each trade record when consumed: now minus its Kafka timestamp (the ingestor's linger plus the broker hop).",
        );
        self.apply_latency.render(
            &mut out,
            "tradeflow_aggregator_apply_seconds",
            "From reading a batch's first trade record to handing each row change it caused to the changelog producer.",
        );
        tradeflow_core::metrics::header(
            &mut out,
            "tradeflow_aggregator_consumer_lag",
            "Records on trades not yet applied, per owned partition.",
            "gauge",
        );
        for (p, lag) in self.lag.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "tradeflow_aggregator_consumer_lag{{partition=\"{p}\"}} {lag}");
        }
        tradeflow_core::metrics::header(
            &mut out,
            "tradeflow_aggregator_consumer_lag_seconds",
            "How far behind in time, per owned partition: now minus the Kafka timestamp of the last record consumed while records wait; 0 when none waits.",
            "gauge",
        );
        for (p, seconds) in self.lag_seconds.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "tradeflow_aggregator_consumer_lag_seconds{{partition=\"{p}\"}} {seconds:.3}");
        }
        out
    }
}

/// How far behind in time a partition's consumer is, in seconds: 0 when no record waits (`behind`,
/// high watermark − next offset, ≤ 0); else now − the Kafka timestamp of the last record consumed
/// from it (`last_consumed_ms`, `now_ms`: milliseconds since the Unix epoch), never negative. The
/// timestamp is the producer's (the ingestor's CreateTime), so clocks of different hosts skew it.
/// While the consumer is stuck the value grows with the wall clock; while it drains a backlog it is
/// the age of the record it is at. `None` when records wait but none has been consumed (their age
/// is unknown without fetching one).
pub fn lag_seconds(behind: i64, last_consumed_ms: Option<i64>, now_ms: i64) -> Option<f64> {
    if behind <= 0 {
        return Some(0.0);
    }
    last_consumed_ms.map(|ts| now_ms.saturating_sub(ts).max(0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_in_seconds_is_the_age_of_the_last_consumed_record_while_records_wait() {
        assert_eq!(lag_seconds(0, Some(1_000), 61_000), Some(0.0), "caught up: 0 however old the last record");
        assert_eq!(lag_seconds(-3, None, 61_000), Some(0.0));
        assert_eq!(lag_seconds(5, Some(1_000), 61_500), Some(60.5));
        assert_eq!(lag_seconds(5, Some(70_000), 61_000), Some(0.0), "a timestamp ahead of this clock: 0");
        assert_eq!(lag_seconds(5, None, 61_000), None, "records wait, none consumed: unknown");
    }

    #[test]
    fn lag_in_seconds_is_rendered_per_partition() {
        let m = Metrics::default();
        m.lag_seconds.lock().unwrap().extend([(0, 0.0), (7, 12.25)]);
        let text = m.render();
        assert!(text.contains("# TYPE tradeflow_aggregator_consumer_lag_seconds gauge"), "{text}");
        assert!(text.contains("tradeflow_aggregator_consumer_lag_seconds{partition=\"0\"} 0.000\n"), "{text}");
        assert!(text.contains("tradeflow_aggregator_consumer_lag_seconds{partition=\"7\"} 12.250\n"), "{text}");
    }
}
