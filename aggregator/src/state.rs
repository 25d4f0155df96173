//! The state one aggregator owns for one `trades` partition: its summary rows, the dedupe marks
//! (highest line offset applied per log file generation), and the next offset to consume.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use tradeflow_core::ClientId;
use tradeflow_core::record::TradeRecord;
use tradeflow_core::summary::{Position, SummaryKey};

/// A log file generation: where a line's identity says it came from.
pub type FileKey = (ClientId, NaiveDate, u32);

#[derive(Debug, Default)]
pub struct PartitionState {
    pub partition: i32,
    /// Fencing token: this owner's epoch in `partition_offsets`.
    pub epoch: i64,
    /// Next `trades` offset to consume (everything before it is in the state).
    pub next_offset: i64,
    pub rows: HashMap<SummaryKey, Position>,
    /// Offset (exclusive) each row reflects.
    pub row_offsets: HashMap<SummaryKey, i64>,
    pub files: HashMap<FileKey, u64>,
    pub dirty_rows: HashSet<SummaryKey>,
    pub dirty_files: HashSet<FileKey>,
    /// `next_offset` when last snapshotted (a snapshot is due when it moved).
    pub snapshotted_offset: i64,
}

/// What applying one record did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Row(SummaryKey),
    /// A re-sent line (its identity is at or below its file's mark).
    Duplicate,
    /// Would overflow the row: counted, logged, left in the topic.
    Rejected(String),
}

impl PartitionState {
    pub fn new(partition: i32, epoch: i64, next_offset: i64) -> Self {
        Self { partition, epoch, next_offset, snapshotted_offset: next_offset, ..Self::default() }
    }

    /// Applies the record at `offset`.
    pub fn apply(&mut self, offset: i64, record: &TradeRecord) -> Applied {
        self.next_offset = offset + 1;
        let file = (record.id.client.clone(), record.id.date, record.id.generation);
        if self.files.get(&file).is_some_and(|&max| record.id.offset <= max) {
            return Applied::Duplicate;
        }
        let key = SummaryKey::of(&record.id.client, &record.trade);
        let result = match self.rows.get_mut(&key) {
            Some(p) => p.apply(&record.trade),
            None => Position::first(&record.trade).map(|p| {
                self.rows.insert(key.clone(), p);
            }),
        };
        // The line is consumed either way: mark it so a re-send is not applied later.
        self.files.insert(file.clone(), record.id.offset);
        self.dirty_files.insert(file);
        match result {
            Ok(()) => {
                self.row_offsets.insert(key.clone(), offset + 1);
                self.dirty_rows.insert(key.clone());
                Applied::Row(key)
            }
            Err(e) => Applied::Rejected(format!("trade {} rejected: {e}", record.id)),
        }
    }

    pub fn snapshot_due(&self) -> bool {
        !self.dirty_rows.is_empty() || !self.dirty_files.is_empty() || self.next_offset != self.snapshotted_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeflow_core::log_format::parse_line;
    use tradeflow_core::record::TradeId;

    fn record(offset: u64, generation: u32, qty: i64) -> TradeRecord {
        let line = format!("Activity Time:2026.11.22 09:30:00.1|Symbol:AAPL|Side:B|Price:2|Quantity:{qty}|AccountID:CQ01");
        TradeRecord {
            id: TradeId {
                client: ClientId::parse("7").unwrap(),
                date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
                generation,
                offset,
            },
            trade: parse_line(line.as_bytes()).unwrap(),
        }
    }

    #[test]
    fn re_sent_lines_count_once_and_new_generations_count_again() {
        let mut s = PartitionState::new(0, 1, 0);
        assert!(matches!(s.apply(0, &record(0, 0, 1)), Applied::Row(_)));
        assert!(matches!(s.apply(1, &record(100, 0, 2)), Applied::Row(_)));
        assert_eq!(s.apply(2, &record(100, 0, 2)), Applied::Duplicate);
        assert_eq!(s.apply(3, &record(0, 0, 1)), Applied::Duplicate);
        assert!(matches!(s.apply(4, &record(0, 1, 4)), Applied::Row(_)));
        let p = s.rows.values().next().unwrap();
        assert_eq!((p.trade_count, p.buy_qty), (3, 7));
        assert_eq!(s.next_offset, 5);
        assert!(s.snapshot_due());
    }
}
