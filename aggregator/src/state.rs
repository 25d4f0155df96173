//! The state one aggregator owns for one `trades` partition: its summary rows, the dedupe marks
//! (highest line offset applied per log file generation), the rows' fill bars, and the next
//! offset to consume.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};
use tradeflow_core::ClientId;
use tradeflow_core::fill_bars::{FillBar, RowBars, next_bar};
use tradeflow_core::record::{TradeId, TradeRecord};
use tradeflow_core::summary::{Mark, Overflow, Position, SummaryKey};
use tradeflow_core::trade::Trade;

use crate::redrive::Redriven;

/// A log file generation: where a line's identity says it came from.
pub type FileKey = (ClientId, NaiveDate, u32);

/// The state's maps and sets hash with foldhash (seeded per process) instead of std's SipHash:
/// every record looks up its row and its file, and SipHash was ~9 % of a backfill's CPU in `perf`
/// (docs/benchmarks.md, replay). The keys are the desk's own clients, accounts and symbols.
pub type StateMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub type StateSet<K> = HashSet<K, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub struct PartitionState {
    pub partition: i32,
    /// Fencing token: this owner's epoch in `partition_offsets`.
    pub epoch: i64,
    /// Rebuild generation of the partition (bumped by each backfill): part of a row's version.
    pub generation: i64,
    /// Next `trades` offset to consume (everything before it is in the state).
    pub next_offset: i64,
    /// The partition's summary rows, each with its offset and fill bars (one map: a record looks
    /// its row up once).
    pub rows: StateMap<SummaryKey, Row>,
    pub files: StateMap<FileKey, u64>,
    pub dirty_rows: StateSet<SummaryKey>,
    pub dirty_files: StateSet<FileKey>,
    /// Identities applied as re-drives ([`crate::redrive`]).
    pub redriven: Redriven,
    /// `next_offset` when last snapshotted (a snapshot is due when it moved).
    pub snapshotted_offset: i64,
}

/// One summary row as its partition's owner keeps it.
#[derive(Debug, Clone)]
pub struct Row {
    pub position: Position,
    /// The `trades` offset (exclusive) the row reflects.
    pub offset: i64,
    /// The row's fill bars (a trade counts in the row and its bar, or in neither).
    pub bars: RowBars,
    /// The minutes whose bar changed since the last snapshot (what the next one writes).
    pub dirty_minutes: BTreeSet<NaiveDateTime>,
}

impl Row {
    /// A row as stored (loaded by a new owner): nothing dirty.
    pub fn stored(position: Position, offset: i64) -> Self {
        Row { position, offset, bars: RowBars::new(), dirty_minutes: BTreeSet::new() }
    }

    /// The row after exactly one trade, the record at `offset`.
    fn first(trade: &Trade, offset: i64) -> Result<Self, Overflow> {
        let (minute, bar) = next_bar(&RowBars::new(), trade)?;
        let mut row = Row::stored(Position::first(trade)?, offset + 1);
        row.bars.insert(minute, bar);
        row.dirty_minutes.insert(minute);
        Ok(row)
    }

    /// Adds the trade of the record at `offset` to the row and its fill bar, both or neither.
    fn apply(&mut self, trade: &Trade, offset: i64) -> Result<(), Overflow> {
        let (minute, bar) = next_bar(&self.bars, trade)?;
        self.position.apply(trade)?;
        self.bars.insert(minute, bar);
        self.dirty_minutes.insert(minute);
        self.offset = offset + 1;
        Ok(())
    }

    /// The bars a snapshot writes: every one (`all`, a rebuild) or the minutes changed since the
    /// last snapshot.
    pub fn bars_to_write(&self, all: bool) -> Vec<(NaiveDateTime, FillBar)> {
        if all {
            return self.bars.iter().map(|(m, b)| (*m, b.clone())).collect();
        }
        self.dirty_minutes.iter().filter_map(|m| self.bars.get(m).map(|b| (*m, b.clone()))).collect()
    }

    /// Every bar to be written again (its stored image was refused, or the outcome is unknown).
    fn all_bars_dirty(&mut self) {
        self.dirty_minutes.extend(self.bars.keys().copied());
    }
}

/// A consistent copy of what one snapshot writes — the changed rows (with their marks), the
/// changed dedupe marks and the next offset, all as of one point of the consumer loop — so the
/// transaction can run off the consumer thread while consumption goes on.
#[derive(Debug, Clone)]
pub struct SnapshotJob {
    pub partition: i32,
    pub epoch: i64,
    pub generation: i64,
    pub next_offset: i64,
    pub rows: Vec<RowImage>,
    pub files: Vec<(FileKey, u64)>,
    /// Rows Postgres refused (set aside on `trades.refused`): deleted from `summary_current` by
    /// the same transaction, so the stored rows never hold what the state no longer has.
    /// With the `trades` offset (exclusive) of the image that was refused.
    pub quarantined: Vec<(SummaryKey, i64)>,
    /// Re-driven identities applied since the last snapshot (`redriven_lines`).
    pub redriven: Vec<TradeId>,
}

/// One row as a snapshot writes it.
#[derive(Debug, Clone)]
pub struct RowImage {
    pub key: SummaryKey,
    pub position: Position,
    pub mark: Option<Mark>,
    /// The `trades` offset (exclusive) the row reflects.
    pub offset: i64,
    /// The row's fill bars that changed since the last snapshot, whole (written as they are, so
    /// writing one twice is harmless), by minute.
    pub bars: Vec<(NaiveDateTime, FillBar)>,
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

    /// Applies the ordinary (ingestor's) record at `offset`: a duplicate when its identity is at
    /// or below its file's mark, or was applied as a re-drive.
    pub fn apply(&mut self, offset: i64, record: &TradeRecord) -> Applied {
        self.apply_as(offset, record, false)
    }

    /// Applies the record at `offset`; `redrive`: published by `tradeflow dlq redrive` (header
    /// `tradeflow.redrive`), a duplicate only when its identity was applied as a re-drive before
    /// (its file's mark neither decides nor moves: [`crate::redrive`]).
    pub fn apply_as(&mut self, offset: i64, record: &TradeRecord, redrive: bool) -> Applied {
        self.next_offset = offset + 1;
        if self.redriven.contains(&record.id) {
            return Applied::Duplicate;
        }
        let id = &record.id;
        let file = (id.client.clone(), id.date, id.generation);
        // The line is consumed either way (applied, or rejected as overflowing its row): its mark
        // moves first, so a re-send is not applied later. One lookup for the check and the move.
        if !redrive {
            match self.files.get_mut(&file) {
                Some(max) if id.offset <= *max => return Applied::Duplicate,
                Some(max) => *max = id.offset,
                None => {
                    self.files.insert(file.clone(), id.offset);
                }
            }
            if !self.dirty_files.contains(&file) {
                self.dirty_files.insert(file);
            }
        } else {
            self.redriven.insert(id.clone());
        }
        let key = SummaryKey::of(&id.client, &record.trade);
        let result = match self.rows.get_mut(&key) {
            Some(row) => row.apply(&record.trade, offset),
            None => Row::first(&record.trade, offset).map(|row| {
                self.rows.insert(key.clone(), row);
            }),
        };
        match result {
            Ok(()) => {
                if !self.dirty_rows.contains(&key) {
                    self.dirty_rows.insert(key.clone());
                }
                Applied::Row(key)
            }
            Err(e) => Applied::Rejected(format!("trade {} rejected: {e}", record.id)),
        }
    }

    pub fn snapshot_due(&self) -> bool {
        !self.dirty_rows.is_empty()
            || !self.dirty_files.is_empty()
            || !self.redriven.dirty.is_empty()
            || self.next_offset != self.snapshotted_offset
    }

    /// Copies what changed since the last snapshot and clears the dirty sets. The job must end in
    /// [`Self::snapshot_committed`] or [`Self::snapshot_failed`] (which makes its keys dirty again).
    pub fn take_snapshot(&mut self, marks: &HashMap<String, Mark>) -> SnapshotJob {
        let keys: Vec<SummaryKey> = self.dirty_rows.drain().collect();
        let rows = keys
            .into_iter()
            .filter_map(|key| {
                let row = self.rows.get_mut(&key)?;
                let bars = row.bars_to_write(false);
                row.dirty_minutes.clear();
                let (position, offset) = (row.position.clone(), row.offset);
                let mark = marks.get(key.symbol.as_str()).cloned();
                Some(RowImage { key, position, mark, offset, bars })
            })
            .collect();
        let files = self.dirty_files.drain().filter_map(|f| self.files.get(&f).map(|&max| (f, max))).collect();
        SnapshotJob {
            partition: self.partition,
            epoch: self.epoch,
            generation: self.generation,
            next_offset: self.next_offset,
            rows,
            files,
            quarantined: Vec::new(),
            redriven: self.redriven.dirty.drain().collect(),
        }
    }

    pub fn snapshot_committed(&mut self, job: &SnapshotJob) {
        self.snapshotted_offset = self.snapshotted_offset.max(job.next_offset);
    }

    /// Nothing of `job` was written: its rows and files are written by the next snapshot, with
    /// whatever values they have by then (state only moves forward, so that is still consistent).
    pub fn snapshot_failed(&mut self, job: SnapshotJob) {
        for r in job.rows {
            if let Some(row) = self.rows.get_mut(&r.key) {
                row.dirty_minutes.extend(r.bars.into_iter().map(|(m, _)| m));
            }
            self.dirty_rows.insert(r.key);
        }
        self.dirty_files.extend(job.files.into_iter().map(|(f, _)| f));
        self.redriven.dirty.extend(job.redriven);
    }

    /// A committed job set `job.quarantined` aside: each row leaves the state unless a trade
    /// changed it after the job's cut (then it is still dirty, and the next snapshot refuses the
    /// newer image — holding every trade of the older one — again).
    pub fn quarantine(&mut self, job: &SnapshotJob) {
        for (key, offset) in &job.quarantined {
            match self.rows.get_mut(key) {
                Some(row) if row.offset == *offset => {
                    self.rows.remove(key);
                    self.dirty_rows.remove(key);
                }
                // Its stored bars went with the refused image: the next image writes them all.
                Some(row) => row.all_bars_dirty(),
                None => {}
            }
        }
    }

    /// Everything dirty (when a snapshot's outcome is unknown).
    pub fn mark_all_dirty(&mut self) {
        self.dirty_rows.extend(self.rows.keys().cloned());
        self.rows.values_mut().for_each(Row::all_bars_dirty);
        self.dirty_files.extend(self.files.keys().cloned());
        self.redriven.dirty.extend(self.redriven.seen.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeflow_core::log_format::parse_line;
    use tradeflow_core::record::TradeId;

    fn record(offset: u64, generation: u32, qty: i64) -> TradeRecord {
        let line =
            format!("Activity Time:2026.11.22 09:30:00.1|Symbol:AAPL|Side:B|Price:2|Quantity:{qty}|AccountID:CQ01");
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
        let p = &s.rows.values().next().unwrap().position;
        assert_eq!((p.trade_count, p.buy_qty), (3, 7));
        assert_eq!(s.next_offset, 5);
        assert!(s.snapshot_due());
    }

    #[test]
    fn a_re_driven_line_below_the_mark_counts_once() {
        let mut s = PartitionState::new(0, 1, 0);
        assert!(matches!(s.apply(0, &record(0, 0, 1)), Applied::Row(_)));
        // The line at 50 was dead-lettered; the line at 100 moved the mark past it.
        assert!(matches!(s.apply(1, &record(100, 0, 2)), Applied::Row(_)));
        assert!(matches!(s.apply_as(2, &record(50, 0, 4), true), Applied::Row(_)));
        assert_eq!(s.apply_as(3, &record(50, 0, 4), true), Applied::Duplicate, "re-driven twice");
        assert_eq!(s.apply(4, &record(50, 0, 4)), Applied::Duplicate, "re-sent by the ingestor");
        // A re-drive is not an ordinary line: the mark stays, the identity goes in the set.
        assert_eq!(s.files.values().copied().collect::<Vec<_>>(), vec![100]);
        let job = s.take_snapshot(&HashMap::new());
        assert_eq!(job.redriven, vec![record(50, 0, 4).id]);
        // An owner that loads the set after a crash refuses it again.
        let mut loaded = PartitionState::new(0, 2, 5);
        loaded.redriven.seen.insert(record(50, 0, 4).id);
        assert_eq!(loaded.apply_as(5, &record(50, 0, 4), true), Applied::Duplicate);
        assert_eq!(s.rows.values().next().unwrap().position.buy_qty, 7);
    }

    #[test]
    fn a_rejected_trade_moves_the_mark_and_leaves_the_row() {
        let mut s = PartitionState::new(0, 1, 0);
        assert!(matches!(s.apply(0, &record(0, 0, 1)), Applied::Row(_)));
        s.take_snapshot(&HashMap::new());
        // The row's buy quantity is at i64::MAX − 1: one more share overflows it.
        s.rows.values_mut().for_each(|r| r.position.buy_qty = i64::MAX - 1);
        assert!(matches!(s.apply(1, &record(10, 0, 2)), Applied::Rejected(_)));
        let row = s.rows.values().next().unwrap();
        assert_eq!((row.position.trade_count, row.offset), (1, 1), "the row and its offset stay");
        assert!(s.dirty_rows.is_empty() && row.dirty_minutes.is_empty());
        assert_eq!(s.files.values().copied().collect::<Vec<_>>(), vec![10], "the line is consumed");
        assert_eq!(s.apply(2, &record(10, 0, 2)), Applied::Duplicate);
    }

    #[test]
    fn a_quarantined_row_leaves_unless_a_trade_changed_it_since() {
        let mut s = PartitionState::new(0, 1, 0);
        s.apply(0, &record(0, 0, 1));
        let mut job = s.take_snapshot(&HashMap::new());
        job.quarantined = job.rows.iter().map(|r| (r.key.clone(), r.offset)).collect();
        // A trade after the cut: the row stays, with every bar to be written again.
        s.apply(1, &record(10, 0, 2));
        s.take_snapshot(&HashMap::new());
        s.quarantine(&job);
        let row = s.rows.values().next().unwrap();
        assert_eq!((row.position.trade_count, row.dirty_minutes.len()), (2, 1));
        // Unchanged since the refused image: it leaves the state.
        let mut job = s.take_snapshot(&HashMap::new());
        job.quarantined = vec![(s.rows.keys().next().unwrap().clone(), 2)];
        s.quarantine(&job);
        assert!(s.rows.is_empty() && s.dirty_rows.is_empty());
    }

    #[test]
    fn a_failed_snapshot_leaves_its_rows_for_the_next_one() {
        let mut s = PartitionState::new(0, 1, 0);
        s.apply(0, &record(0, 0, 1));
        let job = s.take_snapshot(&HashMap::new());
        assert_eq!((job.rows.len(), job.files.len(), job.next_offset), (1, 1, 1));
        assert!(s.dirty_rows.is_empty() && s.dirty_files.is_empty());
        // Consumption goes on while the job commits; then it fails.
        s.apply(1, &record(10, 0, 2));
        s.snapshot_failed(job);
        let retry = s.take_snapshot(&HashMap::new());
        assert_eq!((retry.rows.len(), retry.next_offset), (1, 2));
        assert_eq!(retry.rows[0].position.trade_count, 2);
        // The failed job's bar is written by the retry, whole: both fills of 09:30.
        assert_eq!(retry.rows[0].bars.len(), 1);
        assert_eq!((retry.rows[0].bars[0].1.trade_count, retry.rows[0].bars[0].1.buy_qty), (2, 3));
        s.snapshot_committed(&retry);
        assert!(!s.snapshot_due());
    }
}
