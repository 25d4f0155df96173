//! Aggregator metrics (Prometheus text) and readiness (`/readyz`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::refusal::Reason;

/// Snapshots failing this many times in a row turn `/readyz` red (5: at the default 10 s
/// interval, about 50 s of progress not persisted; a broker or database blip heals well before).
pub const SNAPSHOT_FAILURES_RED: u64 = 5;

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
    /// Records set aside on `trades.refused`, by reason.
    pub refused: Mutex<BTreeMap<Reason, u64>>,
    /// Refusals the producer would not queue (logged only).
    pub refused_unsent: AtomicU64,
    /// Price ticks that moved (or confirmed) a mark.
    pub price_ticks: AtomicU64,
    /// Bar writer: ticks folded into `price_bars`, records skipped as already there, writes,
    /// failed writes (retried), ticks refused or undecodable.
    pub bar_ticks: AtomicU64,
    pub bar_ticks_skipped: AtomicU64,
    pub bar_writes: AtomicU64,
    pub bar_write_failures: AtomicU64,
    pub bar_ticks_refused: AtomicU64,
    /// Price ticks refused by `PriceTick::check`, by its reason code.
    pub ticks_refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Snapshot attempts that failed since the last one that committed.
    pub snapshot_failures_consecutive: AtomicU64,
    pub snapshot_failures_total: AtomicU64,
    /// The last snapshot failure's reason (shown by `/readyz` when red).
    pub snapshot_last_error: Mutex<String>,
    /// Partitions not consumed because their stored offset does not belong to the topic's log
    /// (`offset_check`), with the reason.
    pub offsets_mismatch: Mutex<BTreeMap<i32, String>>,
    /// Age of each trade record when consumed (now − its Kafka timestamp).
    pub record_age: tradeflow_core::metrics::Histogram,
    /// A batch's first record read → each row change it caused handed to the changelog producer.
    pub apply_latency: tradeflow_core::metrics::Histogram,
}

impl Metrics {
    pub fn count_refused(&self, reason: Reason) {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()).entry(reason).or_default() += 1;
    }

    pub fn count_tick_refused(&self, code: &'static str) {
        *self.ticks_refused.lock().unwrap_or_else(|e| e.into_inner()).entry(code).or_default() += 1;
    }

    /// A snapshot attempt failed with `error`.
    pub fn snapshot_failed(&self, error: &str) {
        self.snapshot_failures_total.fetch_add(1, Relaxed);
        self.snapshot_failures_consecutive.fetch_add(1, Relaxed);
        *self.snapshot_last_error.lock().unwrap_or_else(|e| e.into_inner()) = error.to_owned();
    }

    /// `/readyz`: `Ok` when ready; else every reason it is not, one per line — snapshots failing
    /// [`SNAPSHOT_FAILURES_RED`] or more times in a row, a partition whose stored offset does not
    /// belong to the topic.
    pub fn readiness(&self) -> Result<(), String> {
        let mut reasons = String::new();
        let failures = self.snapshot_failures_consecutive.load(Relaxed);
        if failures >= SNAPSHOT_FAILURES_RED {
            let last = self.snapshot_last_error.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(reasons, "snapshots failing: {failures} in a row; last: {last}");
        }
        for (p, why) in self.offsets_mismatch.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(reasons, "partition {p} not consumed: {why}");
        }
        if reasons.is_empty() { Ok(()) } else { Err(reasons) }
    }

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
                    "Trades that would overflow a row or lose precision (set aside on trades.refused).",
                    &self.rejected,
                    "counter",
                ),
                (
                    "malformed_total",
                    "Records on trades that are not trade records (set aside on trades.refused).",
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
        tradeflow_core::metrics::samples(
            &mut out,
            "tradeflow_aggregator_",
            &[
                (
                    "snapshot_failures_consecutive",
                    "Snapshot attempts failed since the last commit (/readyz is red from 5).",
                    &self.snapshot_failures_consecutive,
                    "gauge",
                ),
                ("snapshot_failures_total", "Snapshot attempts that failed.", &self.snapshot_failures_total, "counter"),
                ("price_ticks_total", "Price ticks accepted from prices.", &self.price_ticks, "counter"),
                ("bar_ticks_total", "Price ticks folded into price_bars.", &self.bar_ticks, "counter"),
                (
                    "bar_ticks_skipped_total",
                    "prices records skipped by the bar writer as already in price_bars (re-read).",
                    &self.bar_ticks_skipped,
                    "counter",
                ),
                ("bar_writes_total", "Bar writer transactions committed.", &self.bar_writes, "counter"),
                (
                    "bar_write_failures_total",
                    "Bar writer transactions that failed (the batch is retried).",
                    &self.bar_write_failures,
                    "counter",
                ),
                (
                    "bar_ticks_refused_total",
                    "Price ticks the bar writer refused (PriceTick::check) or could not decode; skipped.",
                    &self.bar_ticks_refused,
                    "counter",
                ),
                (
                    "refused_unsent_total",
                    "Refusals the producer would not queue for trades.refused (logged only).",
                    &self.refused_unsent,
                    "counter",
                ),
            ],
        );
        tradeflow_core::metrics::header(
            &mut out,
            "tradeflow_aggregator_refused_total",
            "Records set aside on trades.refused, by reason code (undecodable, unappliable, postgres_refused).",
            "counter",
        );
        {
            let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            for reason in Reason::ALL {
                let n = refused.get(&reason).copied().unwrap_or(0);
                let _ = writeln!(out, "tradeflow_aggregator_refused_total{{reason=\"{}\"}} {n}", reason.code());
            }
        }
        tradeflow_core::metrics::header(
            &mut out,
            "tradeflow_aggregator_price_ticks_refused_total",
            "Price ticks refused (future beyond 5 s, negative or absurd price), by reason.",
            "counter",
        );
        for (code, n) in self.ticks_refused.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "tradeflow_aggregator_price_ticks_refused_total{{reason=\"{code}\"}} {n}");
        }
        tradeflow_core::metrics::header(
            &mut out,
            "tradeflow_aggregator_offsets_mismatch",
            "1 per partition not consumed because its stored offset does not belong to the topic's log (recreated or truncated topic).",
            "gauge",
        );
        for p in self.offsets_mismatch.lock().unwrap_or_else(|e| e.into_inner()).keys() {
            let _ = writeln!(out, "tradeflow_aggregator_offsets_mismatch{{partition=\"{p}\"}} 1");
        }
        tradeflow_core::metrics::header(
            &mut out,
            "tradeflow_aggregator_consumer_lag",
            "Records on trades not yet applied, per owned partition (a partition not consumed for an offsets mismatch: its whole log).",
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
