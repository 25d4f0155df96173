//! Do a partition's stored offsets belong to the `trades` log that is there now? (issue 23, case 6)
//!
//! Postgres keeps each partition's next offset; Kafka keeps the log. When `trades` is deleted and
//! created again (or a partition's log is otherwise replaced), the stored offset points into a log
//! that no longer exists: librdkafka would silently reset to the earliest offset, and every record
//! below the stored offset would be dropped as already applied. So before consuming a partition,
//! and every second while consuming it, the aggregator checks the stored offset against the
//! partition's log — `[low, high)`, the log start offset and high watermark (Kafka
//! `ListOffsets`) — and refuses loudly on a mismatch: the partition is paused (nothing is dropped,
//! nothing is written), an error is logged, `tradeflow_aggregator_offsets_mismatch{partition}`
//! is 1, `/readyz` is red with the reason and the consumer lag is the whole log.
//!
//! The rule ([`check`]): a stored offset above the high watermark cannot belong to this log; one
//! below the log start offset means records were deleted before they were applied (retention, or
//! a recreated log) — except 0, a partition never consumed, which starts at the log start.
//! Kafka 4 topic ids would also catch a recreated topic that has already grown past the stored
//! offset; rust-rdkafka 0.39 does not expose them (librdkafka has them only in the DescribeTopics
//! Admin API), so that case is not detected (docs/operations.md).
//!
//! The way out after a deliberate recreate is `tradeflow rebase-offsets` ([`rebase`]): each
//! mismatched partition's stored offset moves to its log start; a paused owner sees it within a
//! second and consumes from there. The dedupe marks stay, so a line sent again is still counted
//! once.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use sqlx::PgPool;
use tradeflow_core::kafka::KafkaArgs;

/// A client for the partitions' log offsets (`ListOffsets`): `(log start, high watermark)`.
pub struct LogOffsets(BaseConsumer);

impl LogOffsets {
    pub fn new(kafka: &KafkaArgs) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Self(kafka.client_config().create()?))
    }

    /// `(low, high)` of `topic`'s `partition` (a blocking broker round trip, up to 10 s).
    pub fn get(&self, topic: &str, partition: i32) -> Result<(i64, i64), rdkafka::error::KafkaError> {
        self.0.fetch_watermarks(topic, partition, Duration::from_secs(10))
    }
}

/// A stored offset that does not belong to the partition's log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffsetMismatch {
    #[error(
        "stored next offset {stored} is beyond the log's end {high} (was the topic deleted and created again?); run `tradeflow rebase-offsets` after a deliberate recreate"
    )]
    BeyondEnd { stored: i64, low: i64, high: i64 },
    #[error(
        "stored next offset {stored} is below the log's start {low}: records were deleted before they were applied; run `tradeflow rebase-offsets` to accept the loss"
    )]
    BeforeStart { stored: i64, low: i64, high: i64 },
}

impl OffsetMismatch {
    /// The records on the log now, none of them applied: what the consumer lag reports.
    pub fn log_len(&self) -> i64 {
        match *self {
            Self::BeyondEnd { low, high, .. } | Self::BeforeStart { low, high, .. } => (high - low).max(0),
        }
    }
}

/// Checks a stored next offset against a partition's log `[low, high)`.
pub fn check(stored: i64, low: i64, high: i64) -> Result<(), OffsetMismatch> {
    if stored > high {
        Err(OffsetMismatch::BeyondEnd { stored, low, high })
    } else if stored < low && stored > 0 {
        Err(OffsetMismatch::BeforeStart { stored, low, high })
    } else {
        Ok(())
    }
}

/// One partition's stored offset moved by [`rebase`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebased {
    pub partition: i32,
    pub from: i64,
    pub to: i64,
    pub why: OffsetMismatch,
}

/// Moves the stored next offset of every partition of `topic` whose offset [`check`] refuses to
/// its log start (`watermarks(partition)` gives `(low, high)`); `dry_run` only reports. An offset
/// changed meanwhile (by an owner) is left alone. Partitions the watermarks cannot be read for
/// are skipped and reported as errors.
pub async fn rebase(
    pool: &PgPool,
    topic: &str,
    watermarks: impl Fn(i32) -> Result<(i64, i64), String>,
    dry_run: bool,
) -> Result<(Vec<Rebased>, Vec<String>), sqlx::Error> {
    let stored: Vec<(i32, i64)> =
        sqlx::query_as("SELECT partition, next_offset FROM partition_offsets WHERE topic = $1 ORDER BY partition")
            .bind(topic)
            .fetch_all(pool)
            .await?;
    let (mut rebased, mut errors) = (Vec::new(), Vec::new());
    for (partition, from) in stored {
        let (low, high) = match watermarks(partition) {
            Ok(w) => w,
            Err(e) => {
                errors.push(format!("partition {partition}: cannot read its log's offsets: {e}"));
                continue;
            }
        };
        let Err(why) = check(from, low, high) else { continue };
        if !dry_run {
            let moved = sqlx::query(
                "UPDATE partition_offsets SET next_offset = $3, updated_at = now()
                 WHERE topic = $1 AND partition = $2 AND next_offset = $4",
            )
            .bind(topic)
            .bind(partition)
            .bind(low)
            .bind(from)
            .execute(pool)
            .await?
            .rows_affected();
            if moved == 0 {
                errors.push(format!("partition {partition}: its stored offset changed meanwhile; left alone"));
                continue;
            }
        }
        rebased.push(Rebased { partition, from, to: low, why });
    }
    Ok((rebased, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_inside_the_log_pass_and_others_are_refused() {
        assert_eq!(check(0, 0, 0), Ok(()));
        assert_eq!(check(50, 0, 50), Ok(()));
        assert_eq!(check(10, 5, 50), Ok(()));
        // A fresh partition starts at the log start, whatever retention removed.
        assert_eq!(check(0, 30, 50), Ok(()));
        let beyond = check(100, 0, 50).unwrap_err();
        assert_eq!(beyond, OffsetMismatch::BeyondEnd { stored: 100, low: 0, high: 50 });
        assert_eq!(beyond.log_len(), 50);
        assert_eq!(check(10, 30, 50), Err(OffsetMismatch::BeforeStart { stored: 10, low: 30, high: 50 }));
    }
}
