//! `tradeflow dlq list|show|redrive`: dead letters you can act on (docs/mapping.md,
//! "Re-driving dead letters"). The logic is `tradeflow_ingestor::dead_letters`.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use tradeflow_core::kafka::KafkaArgs;
use tradeflow_core::mapping::MappingArgs;
use tradeflow_core::topics::TopicArgs;
use tradeflow_ingestor::dead_letters::redrive::{self, Options, Outcome};
use tradeflow_ingestor::dead_letters::{Filter, History, LineKey, Lines, State, read};

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// List dead-lettered lines, one per line identity with its latest state and reason; lines
    /// re-driven already are hidden unless `--all`.
    List(ListArgs),
    /// Show one line's dead letters: every record of its history, the raw bytes escaped.
    Show(ShowArgs),
    /// Parse the selected dead lines again with the current mapping; publish those that parse now.
    /// Exit status: 0 every selected line re-driven (or nothing to do); 2 done, but some lines still
    /// fail (they stay dead, with their reason); 1 an error.
    Redrive(RedriveArgs),
}

#[derive(Args, Debug)]
pub struct Source {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    topics: TopicArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    source: Source,
    #[command(flatten)]
    filter: Filter,
    /// Also lines re-driven already (default: only those still dead).
    #[arg(long)]
    all: bool,
    /// One JSON object per line instead of tab-separated columns.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    source: Source,
    /// The line: `FILE:GENERATION:OFFSET`, as `dlq list` prints it.
    line: String,
    /// Write the latest raw bytes of the line to stdout, nothing else (byte for byte).
    #[arg(long)]
    raw: bool,
}

#[derive(Args, Debug)]
pub struct RedriveArgs {
    #[command(flatten)]
    source: Source,
    #[command(flatten)]
    mapping: MappingArgs,
    #[command(flatten)]
    filter: Filter,
    /// Print what would happen to each line and the counts; publish nothing.
    #[arg(long, env = "TRADEFLOW_DLQ_DRY_RUN")]
    dry_run: bool,
    /// Publish again lines re-driven before (the aggregator counts them as duplicates).
    #[arg(long)]
    include_redriven: bool,
    /// At most this many lines per second (0: no limit), to spare a loaded pipeline.
    #[arg(long, env = "TRADEFLOW_DLQ_RATE", default_value_t = 0)]
    rate: u32,
}

pub async fn run(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List(args) => list(args).await,
        DlqCommand::Show(args) => show(args).await,
        DlqCommand::Redrive(args) => redrive_cmd(args).await,
    }
}

/// Reads `trades.dlq` whole, keeping the raw bytes of the lines `keep_bytes` names only
/// ([`Lines`]: memory is the lines' headers, not the topic's size).
async fn read_lines(source: &Source, keep_bytes: impl Fn(&LineKey) -> bool + Send + 'static) -> anyhow::Result<Lines> {
    super::require_kafka(&source.kafka, std::time::Duration::from_secs(10)).await?;
    let (kafka, topic) = (source.kafka.clone(), source.topics.topics().trades_dlq);
    let lines = tokio::task::spawn_blocking(move || read::read_lines(&kafka, &topic, &keep_bytes))
        .await
        .context("the dead-letter reader")?
        .context("reading the dead-letter topic")?;
    Ok(lines)
}

/// Records of the topic that are not dead letters, on stderr (counted, never acted on).
fn warn_unreadable(lines: &Lines) {
    for u in &lines.unreadable {
        eprintln!("unreadable\t{}:{}\t{}", u.partition, u.dlq_offset, u.why);
    }
}

fn state(h: &History) -> &'static str {
    match h.latest().state {
        State::Dead => "dead",
        State::Redriven => "redriven",
    }
}

/// A filter that cannot match anything is refused, not answered with nothing.
fn check_filter(filter: &Filter) -> anyhow::Result<()> {
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from >= to
    {
        anyhow::bail!("--from {from} is not before --to {to}: no dead letter can match");
    }
    Ok(())
}

/// After listing nothing for a `--reason` or a `--file`: the reasons and files there are (at most
/// 20 files named), so a typo is seen.
fn explain_empty(lines: &Lines, filter: &Filter) {
    let present = |field: fn(&History) -> &str| {
        let mut values: Vec<&str> = lines.lines.values().map(field).collect();
        values.sort_unstable();
        values.dedup();
        let more = values.len().saturating_sub(20);
        values.truncate(20);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        format!("{}{more}", values.join(", "))
    };
    if let Some(reason) = &filter.reason {
        eprintln!(
            "no dead letter has reason {reason:?}; reasons present: {}",
            present(|h| &h.latest_line().reason_code)
        );
    }
    if let Some(file) = &filter.file {
        eprintln!("no dead letter is of file {file:?}; files present: {}", present(|h| &h.first().line.file));
    }
}

/// Output cut short by the reader (`dlq list | head`) ends the command quietly, as other tools do.
fn quiet_on_closed_pipe(result: anyhow::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => {
            Ok(())
        }
        other => other,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    check_filter(&args.filter)?;
    let lines = read_lines(&args.source, |_| false).await?;
    warn_unreadable(&lines);
    quiet_on_closed_pipe(write_list(&args, &lines))
}

fn write_list(args: &ListArgs, lines: &Lines) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut listed = 0usize;
    for h in lines.select(&args.filter).filter(|h| args.all || h.latest().state == State::Dead) {
        listed += 1;
        let (first, dead) = (h.first(), h.latest_line());
        let at = first.at.map(|t| t.to_rfc3339()).unwrap_or_default();
        if args.json {
            let v = serde_json::json!({
                "line": dead.line.to_string(), "client": dead.line.client, "file": dead.line.file,
                "generation": dead.line.generation, "offset": dead.line.offset, "state": state(h),
                "reason_code": dead.reason_code, "reason": dead.reason, "line_len": dead.line_len,
                "truncated": dead.truncated, "dead_lettered_at": at, "records": h.records.len(),
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}",
                dead.line,
                state(h),
                at,
                dead.line_len,
                dead.reason_code,
                dead.reason
            )?;
        }
    }
    if listed == 0 {
        explain_empty(lines, &args.filter);
    }
    Ok(())
}

/// `FILE:GENERATION:OFFSET` (a file name may itself hold colons: the last two fields are numbers).
fn check_line_id(id: &str) -> anyhow::Result<()> {
    let mut fields = id.rsplitn(3, ':');
    let (offset, generation, file) = (fields.next(), fields.next(), fields.next());
    match (file, generation.map(str::parse::<u32>), offset.map(str::parse::<u64>)) {
        (Some(f), Some(Ok(_)), Some(Ok(_))) if !f.is_empty() => Ok(()),
        _ => anyhow::bail!(
            "malformed line id {id:?}: expected FILE:GENERATION:OFFSET, as `tradeflow dlq list` prints it"
        ),
    }
}

async fn show(args: ShowArgs) -> anyhow::Result<()> {
    check_line_id(&args.line)?;
    let id = args.line.clone();
    let lines = read_lines(&args.source, move |k| k.to_string() == id).await?;
    warn_unreadable(&lines);
    let h = lines
        .lines
        .values()
        .find(|h| h.first().line.to_string() == args.line)
        .with_context(|| format!("no dead letter for line {} (see `tradeflow dlq list --all`)", args.line))?;
    let mut out = std::io::stdout().lock();
    if args.raw {
        let dead = h.latest_line();
        out.write_all(&dead.value)?;
        if dead.truncated {
            // The bytes are the line's head only: said where a pipe's reader cannot miss it.
            eprintln!(
                "warning: cut: these are the first {} of the line's {} bytes; the whole line is in {} at offset {}",
                dead.value.len(),
                dead.line_len,
                dead.line.file,
                dead.line.offset
            );
        }
        return Ok(());
    }
    writeln!(out, "line\t{}\tclient {}\tstate {}", h.first().line, h.first().line.client, state(h))?;
    for r in &h.records {
        let at = r.at.map(|t| t.to_rfc3339()).unwrap_or_default();
        let of = r.redrive_of.as_deref().map(|o| format!("\tfollows {o}")).unwrap_or_default();
        writeln!(out, "record\t{}\t{at}\t{:?}\t{}\t{}{of}", r.position(), r.state, r.reason_code, r.reason)?;
    }
    let dead = h.latest_line();
    let cut = if dead.truncated { " (cut: the whole line is in the file at its offset)" } else { "" };
    writeln!(out, "bytes\t{} of {}{cut}\t{}", dead.value.len(), dead.line_len, dead.value.escape_ascii())?;
    Ok(())
}

async fn redrive_cmd(args: RedriveArgs) -> anyhow::Result<()> {
    check_filter(&args.filter)?;
    let mapping = args.mapping.load()?;
    // Two reads: the headers, to learn which lines the filter selects, then those lines' bytes
    // (memory: the selected lines' bytes, not the whole topic's). A line dead-lettered between the
    // two reads is left for the next run.
    let headers = read_lines(&args.source, |_| false).await?;
    warn_unreadable(&headers);
    let selected: BTreeSet<LineKey> = headers.select(&args.filter).map(|h| h.first().line.clone()).collect();
    drop(headers);
    let wanted = Arc::new(selected);
    let keep = wanted.clone();
    let mut lines = read_lines(&args.source, move |k| keep.contains(k)).await?;
    lines.lines.retain(|k, _| wanted.contains(k));
    let options = Options { include_redriven: args.include_redriven, rate: args.rate };
    let planned = redrive::plan(&lines, &args.filter, &mapping, options);
    let verb = if args.dry_run { "would " } else { "" };
    let mut out = std::io::stdout().lock();
    for p in &planned {
        let line = &p.history.first().line;
        match &p.outcome {
            Outcome::Publish { .. } => writeln!(out, "{verb}redrive\t{line}")?,
            Outcome::Header => writeln!(out, "{verb}mark\t{line}\ta header line now")?,
            Outcome::StillFails { code, reason, changed } => {
                let new = if *changed { "new reason" } else { "same reason" };
                writeln!(out, "still fails\t{line}\t{new}\t{code}\t{reason}")?
            }
            Outcome::NotALine(why) => writeln!(out, "not a line\t{line}\t{why}")?,
            Outcome::AlreadyRedriven => writeln!(out, "already re-driven\t{line}")?,
        }
    }
    out.flush()?;
    drop(out);
    let report = if args.dry_run {
        redrive::count(&planned)
    } else {
        redrive::execute(&args.source.kafka, &args.source.topics.topics(), &planned, &mapping, options)
            .await
            .context("re-driving")?
    };
    println!(
        "{verb}total\tredriven={}\theaders={}\tstill_failing={}\tnew_reasons={}\tnot_lines={}\talready_redriven={}",
        report.redriven,
        report.headers,
        report.still_failing,
        report.new_reasons,
        report.not_lines,
        report.already_redriven
    );
    if !args.dry_run && report.still_failing > 0 {
        return Err(super::PartialOutcome {
            code: 2,
            message: format!(
                "{} line(s) still fail under this mapping and stay dead with their reason (`tradeflow dlq list`); the others were re-driven",
                report.still_failing
            ),
        }
        .into());
    }
    Ok(())
}
