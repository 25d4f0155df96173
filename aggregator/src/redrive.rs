//! Re-driven lines: the dedupe rule for records `tradeflow dlq redrive` publishes (docs/mapping.md,
//! "Re-driving dead letters").
//!
//! A re-driven record carries the header `tradeflow.redrive: true` and the identity of the line
//! the ingestor dead-lettered. That identity is usually **below** its file's dedupe mark (the
//! file's later lines were applied first), so the mark cannot decide it. Instead each partition
//! keeps the set of re-driven identities it applied ([`Redriven`]), persisted in `redriven_lines`
//! by the same snapshot transaction as the rows, marks and offset, and loaded with the partition:
//!
//! - a re-driven record whose identity is in the set is a duplicate (counted); else it is applied
//!   and added — its file's mark is left alone (lines of the file may still be in flight);
//! - an ordinary record whose identity is in the set is a duplicate too (the ingestor re-sent a
//!   line, now parsing under a fixed mapping, that was re-driven already).
//!
//! The set holds one entry per line ever re-driven: its memory and load time are bounded by the
//! number of re-driven lines, not by the number of trades.

use std::collections::HashSet;

use chrono::NaiveDate;
use rdkafka::message::{Headers as _, Message};
use tradeflow_core::ClientId;
use tradeflow_core::record::{REDRIVE_HEADER, TradeId};

/// Whether a `trades` record is a re-drive (header [`REDRIVE_HEADER`] = `true`).
pub fn is_redrive<M: Message>(m: &M) -> bool {
    m.headers().is_some_and(|h| h.iter().any(|h| h.key == REDRIVE_HEADER && h.value == Some(b"true".as_slice())))
}

/// One partition's re-driven identities: those applied (`seen`) and those not yet snapshotted.
#[derive(Debug, Default, Clone)]
pub struct Redriven {
    pub seen: HashSet<TradeId>,
    pub dirty: HashSet<TradeId>,
}

impl Redriven {
    /// Whether `id` was applied as a re-drive (cheap when nothing ever was: the common case).
    pub fn contains(&self, id: &TradeId) -> bool {
        !self.seen.is_empty() && self.seen.contains(id)
    }

    /// Records `id` as applied (written by the next snapshot).
    pub fn insert(&mut self, id: TradeId) {
        self.dirty.insert(id.clone());
        self.seen.insert(id);
    }
}

/// Writes `ids` into `redriven_lines` for `partition` (within the snapshot's transaction).
pub async fn write(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    partition: i32,
    ids: &[TradeId],
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let (mut client, mut date, mut generation, mut offset) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for id in ids {
        client.push(id.client.to_string());
        date.push(id.date);
        generation.push(id.generation as i32);
        offset.push(id.offset as i64);
    }
    sqlx::query(
        "INSERT INTO redriven_lines (client_id, file_date, generation, line_offset, source_partition)
         SELECT c, d, g, o, $5 FROM UNNEST($1::text[], $2::date[], $3::integer[], $4::bigint[]) AS u(c, d, g, o)
         ON CONFLICT DO NOTHING",
    )
    .bind(&client)
    .bind(&date)
    .bind(&generation)
    .bind(&offset)
    .bind(partition)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Reads `partition`'s re-driven identities (within the loading transaction); a stored client id
/// that is not one is a decode error.
pub async fn read(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    partition: i32,
) -> Result<HashSet<TradeId>, sqlx::Error> {
    let rows: Vec<(String, NaiveDate, i32, i64)> = sqlx::query_as(
        "SELECT client_id, file_date, generation, line_offset FROM redriven_lines WHERE source_partition = $1",
    )
    .bind(partition)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|(client, date, generation, offset)| {
            let client = ClientId::parse(&client).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Ok(TradeId { client, date, generation: generation as u32, offset: offset as u64 })
        })
        .collect()
}
