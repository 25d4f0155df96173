//! The records a backfill sets aside on `trades.refused` — undecodable ones, and trades that would
//! overflow their row (unappliable) — (see [`crate::backfill`]'s doc for which: those at or past
//! the partition's stored offset, which no live owner refused).

use std::time::Duration;

use crate::AggregateError;
use crate::refused::{Reason, Refusal, RefusedSink};

/// How long a partition's refusals may take to be delivered before the backfill gives up (and
/// writes nothing of that partition).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A record of a partition that no live owner has refused.
pub(crate) struct Unrefused {
    /// `Undecodable` or `Unappliable`, as the live aggregator would have said.
    pub reason: Reason,
    /// Its offset on `trades`.
    pub offset: i64,
    /// The reason, worded as the live aggregator words it (`not a trade record: …`, or the
    /// summary's overflow).
    pub detail: String,
    /// An unappliable trade's identity and row key (`None` for an undecodable record).
    pub trade_id: Option<String>,
    pub row_key: Option<String>,
    /// The raw payload (the refusal's value).
    pub payload: Vec<u8>,
}

/// Sets aside `refusals` of `partition` (with their reasons, as the live aggregator does) and
/// waits until they are delivered, so the partition's rebuild — whose next offset is past them —
/// is written only after that, as a live snapshot is. Returns how many were set aside;
/// [`AggregateError::Thread`] when they are not delivered within 60 s.
pub(crate) async fn set_aside(
    sink: &RefusedSink,
    partition: i32,
    refusals: &[Unrefused],
) -> Result<u64, AggregateError> {
    for r in refusals {
        sink.send(&Refusal {
            reason: r.reason,
            detail: r.detail.clone(),
            partition,
            offset: r.offset,
            trade_id: r.trade_id.clone(),
            row_key: r.row_key.clone(),
            sqlstate: None,
            value: &r.payload,
        });
    }
    if !refusals.is_empty() {
        sink.delivered(DELIVERY_TIMEOUT).await.map_err(|e| {
            AggregateError::Thread(format!(
                "partition {partition}: {e}; nothing of it written (run the backfill again)"
            ))
        })?;
    }
    Ok(refusals.len() as u64)
}
