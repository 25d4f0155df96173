//! Dead letters you can act on (`tradeflow dlq`; docs/mapping.md, "Re-driving dead letters").
//!
//! `trades.dlq` holds the ingestor's dead letters (raw line, identity, reason: docs/services.md)
//! and what re-drives wrote after them. [`DeadLetter`] is one such record; [`Lines`] folds the topic
//! into the **latest state per line** (identity = client, file, generation, byte offset):
//! `dead` (the newest reason) or `redriven`. [`Filter`] selects lines by reason, file and time;
//! [`redrive`] re-parses dead lines with the current mapping and publishes the ones that now parse.
//!
//! - [`read`]: reads `trades.dlq` from its start to its end as of the call.
//! - [`redrive`]: the plan (what each line becomes) and its execution.

pub mod read;
pub mod redrive;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rdkafka::message::{Headers as _, Message};
use tradeflow_core::record;

/// Why `trades.dlq` cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {0} has no partitions (does it exist? `tradeflow topics` creates it)")]
    NoTopic(String),
    #[error("publishing a re-driven line failed: {0} (nothing after it was marked re-driven; run again)")]
    Delivery(String),
    #[error(
        "reading {topic}: nothing arrived for {secs} s with partitions {partitions:?} not read to their end (is the broker reachable?)"
    )]
    Stalled { topic: String, secs: u64, partitions: Vec<i32> },
}

/// What became of a dead letter's line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Still failing: in the DLQ with its newest reason.
    Dead,
    /// Published to `trades` by a re-drive.
    Redriven,
}

/// A line's identity in the dead-letter topic: the key (client), the file's name, its generation
/// and the line's byte offset (SPEC §2's identity, with the file name for the date).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct LineKey {
    pub client: String,
    pub file: String,
    pub generation: u32,
    pub offset: u64,
}

impl std::fmt::Display for LineKey {
    /// `FILE:GENERATION:OFFSET`, what `tradeflow dlq show` takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.generation, self.offset)
    }
}

/// One record of `trades.dlq`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeadLetter {
    /// Where the record is in `trades.dlq`.
    pub partition: i32,
    pub dlq_offset: i64,
    /// The broker's timestamp of the record (when it was dead-lettered or re-driven).
    pub at: Option<DateTime<Utc>>,
    pub line: LineKey,
    /// The file's date (`tradeflow.date`; absent on records written before it existed).
    pub date: Option<NaiveDate>,
    pub state: State,
    pub reason_code: String,
    pub reason: String,
    /// The line's full length in bytes; `truncated`: the value holds its first 900 KiB only.
    pub line_len: u64,
    pub truncated: bool,
    /// On a record a re-drive wrote: the record it follows up (`PARTITION:OFFSET`).
    pub redrive_of: Option<String>,
    /// `tradeflow.first_line: true`: the line is its file's first (a delimited mapping's header
    /// line; offset 0, or 3 after a BOM). `false` when the header is absent.
    pub first_line: bool,
    /// The raw line (empty for `redriven` records and NUL runs).
    #[serde(skip)]
    pub value: Vec<u8>,
}

/// A record without the headers a dead letter has: counted, shown, never acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub partition: i32,
    pub dlq_offset: i64,
    pub why: String,
}

impl DeadLetter {
    /// Reads a `trades.dlq` record; `Err` names what a dead letter must have and this one lacks.
    pub fn from_message<M: Message>(m: &M) -> Result<Self, Unreadable> {
        let unreadable = |why: String| Unreadable { partition: m.partition(), dlq_offset: m.offset(), why };
        let header = |name: &str| -> Option<String> {
            let headers = m.headers()?;
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let need = |name: &str| header(name).ok_or_else(|| unreadable(format!("no header {name}")));
        let number = |name: &str| -> Result<u64, Unreadable> {
            need(name)?.parse().map_err(|e| unreadable(format!("header {name}: {e}")))
        };
        let client = m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .ok_or_else(|| unreadable("no key (the client id)".into()))?;
        let state = match header(record::DLQ_STATE).as_deref() {
            None | Some("dead") => State::Dead,
            Some("redriven") => State::Redriven,
            Some(other) => return Err(unreadable(format!("header {}: unknown state {other:?}", record::DLQ_STATE))),
        };
        let generation = u32::try_from(number(record::DLQ_GENERATION)?)
            .map_err(|e| unreadable(format!("header {}: {e}", record::DLQ_GENERATION)))?;
        Ok(DeadLetter {
            partition: m.partition(),
            dlq_offset: m.offset(),
            at: m.timestamp().to_millis().and_then(DateTime::from_timestamp_millis),
            line: LineKey { client, file: need(record::DLQ_FILE)?, generation, offset: number(record::DLQ_OFFSET)? },
            date: header(record::DLQ_DATE).and_then(|d| d.parse().ok()),
            state,
            reason_code: header(record::DLQ_REASON_CODE).unwrap_or_default(),
            reason: header(record::DLQ_REASON).unwrap_or_default(),
            line_len: header(record::DLQ_LINE_LEN).and_then(|l| l.parse().ok()).unwrap_or(0),
            truncated: header(record::DLQ_TRUNCATED).as_deref() == Some("true"),
            redrive_of: header(record::DLQ_REDRIVE_OF),
            first_line: header(record::DLQ_FIRST_LINE).as_deref() == Some("true"),
            value: m.payload().unwrap_or_default().to_vec(),
        })
    }

    /// `PARTITION:OFFSET` of this record in `trades.dlq`.
    pub fn position(&self) -> String {
        format!("{}:{}", self.partition, self.dlq_offset)
    }
}

/// One line's history in `trades.dlq`, oldest first.
#[derive(Clone, Debug)]
pub struct History {
    pub records: Vec<DeadLetter>,
}

impl History {
    /// The ingestor's dead letter (the first record).
    pub fn first(&self) -> &DeadLetter {
        &self.records[0]
    }

    /// The latest state and reason.
    pub fn latest(&self) -> &DeadLetter {
        &self.records[self.records.len() - 1]
    }

    /// The newest record holding the line's bytes (`redriven` records hold none).
    pub fn latest_line(&self) -> &DeadLetter {
        self.records.iter().rev().find(|r| r.state == State::Dead).unwrap_or_else(|| self.first())
    }
}

/// The topic folded by line: each line's history. Memory: one entry per dead-lettered line (its
/// records' headers), and the raw bytes of at most one record per line — the newest dead letter's
/// ([`History::latest_line`], the only bytes `show` and `redrive` use), and only for the lines a
/// read was asked to keep bytes of ([`read::read_lines`]).
#[derive(Debug, Default)]
pub struct Lines {
    pub lines: BTreeMap<LineKey, History>,
    pub unreadable: Vec<Unreadable>,
}

impl Lines {
    /// Folds records in topic order (per partition; the DLQ's records of one client share one),
    /// keeping every line's bytes.
    pub fn fold(records: impl IntoIterator<Item = Result<DeadLetter, Unreadable>>) -> Self {
        let mut out = Lines::default();
        for r in records {
            out.add(r, &|_| true);
        }
        out.finish();
        out
    }

    /// Adds one record as it is read. Its raw bytes are kept only if `keep_bytes` says so for its
    /// line, and then only while it is the line's newest dead letter (an older one's are dropped).
    pub fn add(&mut self, record: Result<DeadLetter, Unreadable>, keep_bytes: &dyn Fn(&LineKey) -> bool) {
        let mut d = match record {
            Ok(d) => d,
            Err(u) => return self.unreadable.push(u),
        };
        if !keep_bytes(&d.line) {
            d.value = Vec::new();
        }
        let h = self.lines.entry(d.line.clone()).or_insert_with(|| History { records: Vec::new() });
        h.records.push(d);
        let newest_dead =
            h.records.iter().filter(|r| r.state == State::Dead).map(|r| (r.partition, r.dlq_offset)).max();
        for r in &mut h.records {
            if Some((r.partition, r.dlq_offset)) != newest_dead && !r.value.is_empty() {
                r.value = Vec::new();
            }
        }
    }

    /// Orders every history by its records' places in the topic (after the last [`Lines::add`]).
    pub fn finish(&mut self) {
        for h in self.lines.values_mut() {
            h.records.sort_by_key(|r| (r.partition, r.dlq_offset));
        }
    }

    /// The histories `filter` selects, in identity order.
    pub fn select<'a>(&'a self, filter: &'a Filter) -> impl Iterator<Item = &'a History> + 'a {
        self.lines.values().filter(|h| filter.accepts(h))
    }
}

/// Which lines a `dlq` command acts on: every field optional, all must hold.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Filter {
    /// Only lines whose latest failure's reason code is this (e.g. `bad_value`; docs/services.md lists them).
    #[arg(long, env = "TRADEFLOW_DLQ_REASON")]
    pub reason: Option<String>,
    /// Only lines of this log file (its name, as in `tradeflow.file`).
    #[arg(long, env = "TRADEFLOW_DLQ_FILE")]
    pub file: Option<String>,
    /// Only lines dead-lettered at or after this instant (RFC 3339, e.g. 2026-11-30T09:00:00Z).
    #[arg(long, env = "TRADEFLOW_DLQ_FROM")]
    pub from: Option<DateTime<Utc>>,
    /// Only lines dead-lettered before this instant (RFC 3339).
    #[arg(long, env = "TRADEFLOW_DLQ_TO")]
    pub to: Option<DateTime<Utc>>,
}

impl Filter {
    /// The reason is the line's latest failure's (also for a line re-driven since); the file and
    /// the time are the first dead letter's.
    pub fn accepts(&self, h: &History) -> bool {
        let first = h.first();
        let at = first.at;
        self.reason.as_ref().is_none_or(|r| &h.latest_line().reason_code == r)
            && self.file.as_ref().is_none_or(|f| &first.line.file == f)
            && self.from.is_none_or(|from| at.is_some_and(|t| t >= from))
            && self.to.is_none_or(|to| at.is_some_and(|t| t < to))
    }
}

#[cfg(test)]
mod tests;
