//! Re-driving dead letters: each selected line's bytes are parsed again with the current mapping;
//! a line that now parses is published to `trades` under its **original identity** with the
//! header `tradeflow.redrive: true`, and then marked `redriven` in `trades.dlq`; a line that still
//! fails gets a new dead letter when its reason changed (else it stays as it is).
//!
//! Exactly once by construction: the aggregator applies a re-driven identity once (its persisted
//! set, aggregator/src/redrive.rs), so a line published twice — a re-drive run twice, or killed
//! between publishing a line and marking it — counts once. A line is marked only after the broker
//! acknowledged its trade record, so a kill loses no line: the next run publishes it again.

use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tradeflow_core::ClientId;
use tradeflow_core::edge::BOM;
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::mapping::{Mapping, Parsed};
use tradeflow_core::record::{self, TradeId, write_record_json};
use tradeflow_core::topics::Topics;

use super::{DeadLetter, DlqError, Filter, History, Lines, State};

/// What a re-drive does with one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Parses now: this trade record (JSON) goes to `trades`, keyed by `client`.
    Publish { client: String, record: Vec<u8> },
    /// Is a delimited file's header under the current mapping: no trade; marked re-driven.
    Header,
    /// Still fails: `changed` when the reason differs from the latest (a new dead letter).
    StillFails { code: String, reason: String, changed: bool },
    /// Cannot be parsed from the dead letter: a NUL run, or a line cut at 900 KiB (read it from
    /// the file at `tradeflow.offset`).
    NotALine(String),
    /// Re-driven before (published again only with `--include-redriven`).
    AlreadyRedriven,
}

/// A line and its outcome.
#[derive(Debug)]
pub struct Planned<'a> {
    pub history: &'a History,
    pub outcome: Outcome,
}

/// What a re-drive did (or, dry, would do), in lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Published to `trades` (and marked re-driven).
    pub redriven: u64,
    /// Header lines now (marked re-driven, nothing published).
    pub headers: u64,
    /// Still failing (of them `new_reasons` got a new dead letter).
    pub still_failing: u64,
    pub new_reasons: u64,
    /// NUL runs and cut lines: not re-drivable from the topic.
    pub not_lines: u64,
    /// Re-driven before; left alone.
    pub already_redriven: u64,
}

/// How a re-drive runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Publish again lines already re-driven (the aggregator counts them as duplicates).
    pub include_redriven: bool,
    /// Lines per second (0: as fast as the broker acknowledges).
    pub rate: u32,
}

/// Decides each selected line's outcome with `mapping` (nothing is published).
pub fn plan<'a>(lines: &'a Lines, filter: &Filter, mapping: &Mapping, options: Options) -> Vec<Planned<'a>> {
    lines
        .lines
        .values()
        .filter(|h| filter.accepts(h))
        .map(|history| Planned { history, outcome: outcome(history, mapping, options) })
        .collect()
}

fn outcome(history: &History, mapping: &Mapping, options: Options) -> Outcome {
    if history.latest().state == State::Redriven && !options.include_redriven {
        return Outcome::AlreadyRedriven;
    }
    let dead = history.latest_line();
    if dead.reason_code == "nul_run" {
        return Outcome::NotALine("a run of NUL bytes, not a line".into());
    }
    if dead.truncated {
        return Outcome::NotALine(format!(
            "the dead letter holds the first {} of {} bytes; the line is in {} at offset {}",
            dead.value.len(),
            dead.line_len,
            dead.line.file,
            dead.line.offset
        ));
    }
    // A line re-driven before (published again with `--include-redriven`) is in the books: a
    // failure now says nothing new about it, so no new dead letter makes it look dead.
    let ever_redriven = history.records.iter().any(|r| r.state == State::Redriven);
    let still = |code: &str, reason: String| Outcome::StillFails {
        changed: !ever_redriven && (code != dead.reason_code || reason != dead.reason),
        code: code.to_owned(),
        reason,
    };
    let Some((source, name)) = mapping.identify(&dead.line.file) else {
        return still("unowned_file", format!("no source of mapping {} owns file {}", mapping.origin, dead.line.file));
    };
    let client = match ClientId::parse(&dead.line.client) {
        Ok(c) => c,
        Err(e) => return still("bad_client", format!("the dead letter's key is not a client id: {e}")),
    };
    let id = TradeId {
        client,
        date: history.first().date.unwrap_or(name.date),
        generation: dead.line.generation,
        offset: dead.line.offset,
    };
    let source = &mapping.sources[source];
    // The file's first line (a header line): as the ingestor marked it; for a dead letter written
    // before the mark existed, offset 0 — or offset 3 when the line reads as the header there
    // (it followed a BOM: such headers were dead-lettered before BOMs were recognised).
    let first_line = dead.first_line
        || dead.line.offset == 0
        || (dead.line.offset == BOM.len() as u64 && matches!(source.parse_line(&dead.value, true), Ok(Parsed::Header)));
    match source.parse_line(&dead.value, first_line) {
        Ok(Parsed::Header) => Outcome::Header,
        Ok(parsed) => match parsed.trade() {
            Some(trade) => {
                let mut json = Vec::with_capacity(512);
                write_record_json(&id, &trade, &mut json);
                Outcome::Publish { client: id.client.to_string(), record: json }
            }
            None => Outcome::Header,
        },
        Err(e) => still(e.code(), e.to_string()),
    }
}

/// Counts of a plan (what a dry run prints).
pub fn count(planned: &[Planned<'_>]) -> Report {
    let mut r = Report::default();
    for p in planned {
        match &p.outcome {
            Outcome::Publish { .. } => r.redriven += 1,
            Outcome::Header => r.headers += 1,
            Outcome::StillFails { changed, .. } => {
                r.still_failing += 1;
                r.new_reasons += u64::from(*changed);
            }
            Outcome::NotALine(_) => r.not_lines += 1,
            Outcome::AlreadyRedriven => r.already_redriven += 1,
        }
    }
    r
}

/// Carries a plan out: in batches (at most `rate` lines, or 500), each batch's trade records
/// acknowledged before its lines are marked re-driven; then the new dead letters of lines whose
/// reason changed. `mapping` names the mapping in the marks' reason.
pub async fn execute(
    kafka: &KafkaArgs,
    topics: &Topics,
    planned: &[Planned<'_>],
    mapping: &Mapping,
    options: Options,
) -> Result<Report, DlqError> {
    let producer: FutureProducer = kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // The ingestor's partitioner (Java-compatible murmur2): a client's records share a partition.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?;
    let batch = if options.rate == 0 { 500 } else { options.rate.min(500) as usize };
    let acted: Vec<&Planned<'_>> =
        planned.iter().filter(|p| matches!(p.outcome, Outcome::Publish { .. } | Outcome::Header)).collect();
    for chunk in acted.chunks(batch) {
        let started = Instant::now();
        let mut deliveries = Vec::with_capacity(chunk.len());
        for p in chunk {
            if let Outcome::Publish { client, record: json } = &p.outcome {
                let dead = p.history.latest_line();
                let of = dead.position();
                let headers = headers(&[(record::REDRIVE_HEADER, "true"), (record::DLQ_REDRIVE_OF, &of)]);
                let r = FutureRecord::to(&topics.trades).key(client.as_bytes()).payload(json).headers(headers);
                deliveries.push(producer.send_result(r).map_err(|(e, _)| DlqError::Delivery(e.to_string()))?);
            }
        }
        await_all(deliveries).await?;
        let mut marks = Vec::with_capacity(chunk.len());
        for p in chunk {
            let dead = p.history.latest_line();
            let reason = format!("re-driven with mapping {}", mapping.origin);
            let headers = dead_letter_headers(p.history, dead, "redriven", &dead.reason_code, &reason, false);
            let r = FutureRecord::<[u8], [u8]>::to(&topics.trades_dlq)
                .key(dead.line.client.as_bytes())
                .payload(&[])
                .headers(headers);
            marks.push(producer.send_result(r).map_err(|(e, _)| DlqError::Delivery(e.to_string()))?);
        }
        await_all(marks).await?;
        if options.rate > 0 {
            let due = Duration::from_secs_f64(chunk.len() as f64 / f64::from(options.rate));
            tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
        }
    }
    let mut letters = Vec::new();
    for p in planned {
        if let Outcome::StillFails { code, reason, changed: true } = &p.outcome {
            let dead = p.history.latest_line();
            let headers = dead_letter_headers(p.history, dead, "dead", code, reason, dead.truncated);
            let r = FutureRecord::to(&topics.trades_dlq)
                .key(dead.line.client.as_bytes())
                .payload(dead.value.as_slice())
                .headers(headers);
            letters.push(producer.send_result(r).map_err(|(e, _)| DlqError::Delivery(e.to_string()))?);
            if letters.len() >= 500 {
                await_all(std::mem::take(&mut letters)).await?;
            }
        }
    }
    await_all(letters).await?;
    Ok(count(planned))
}

async fn await_all(deliveries: Vec<rdkafka::producer::DeliveryFuture>) -> Result<(), DlqError> {
    for d in deliveries {
        match d.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(DlqError::Delivery(e.to_string())),
            Err(_) => return Err(DlqError::Delivery("the producer was dropped".into())),
        }
    }
    Ok(())
}

fn headers(fields: &[(&str, &str)]) -> OwnedHeaders {
    fields.iter().fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(*value) }))
}

/// A follow-up record's headers: the line's identity as the ingestor wrote it, the new state and
/// reason, and the record it follows up.
fn dead_letter_headers(
    history: &History,
    dead: &DeadLetter,
    state: &str,
    code: &str,
    reason: &str,
    truncated: bool,
) -> OwnedHeaders {
    let (offset, generation, len, of) =
        (dead.line.offset.to_string(), dead.line.generation.to_string(), dead.line_len.to_string(), dead.position());
    let date = history.first().date.map(|d| d.to_string());
    let mut fields = vec![
        (record::DLQ_FILE, dead.line.file.as_str()),
        (record::DLQ_OFFSET, offset.as_str()),
        (record::DLQ_GENERATION, generation.as_str()),
        (record::DLQ_REASON, reason),
        (record::DLQ_REASON_CODE, code),
        (record::DLQ_LINE_LEN, len.as_str()),
        (record::DLQ_TRUNCATED, if truncated { "true" } else { "false" }),
        (record::DLQ_STATE, state),
        (record::DLQ_REDRIVE_OF, of.as_str()),
    ];
    if let Some(d) = &date {
        fields.push((record::DLQ_DATE, d.as_str()));
    }
    if dead.first_line {
        fields.push((record::DLQ_FIRST_LINE, "true"));
    }
    headers(&fields)
}
