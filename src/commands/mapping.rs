//! `tradeflow mapping check`: a mapping file checked, and sample logs read with it — the records
//! they give and every bad line with its reason (exit 1 if any line is bad). Samples are framed
//! by the ingestor's and the oracle's rule (`tradeflow_core::log_format::framing`), so a line gets
//! the same reason and code here as in the ingestor's dead letter.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use tradeflow_core::edge::MAX_LINE_BYTES;
use tradeflow_core::log_format::framing::{
    NUL_RUN_CODE, Piece, first_line_offset, frames, line_too_long, nul_run_reason,
};
use tradeflow_core::mapping::{Mapping, MappingArgs, Parsed};
use tradeflow_core::record::{TradeId, write_record_json};

#[derive(Subcommand, Debug)]
pub enum MappingCommand {
    /// Check a mapping file, then read sample log files with it: each record (JSON, stdout) and
    /// each bad line with its reason (stderr); exit 1 if the mapping or any line is bad.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    mapping: MappingArgs,
    /// Sample log files; each must be named as one of the mapping's sources names its files
    /// (the name gives the client and date of the records).
    samples: Vec<PathBuf>,
}

pub fn run(command: MappingCommand) -> anyhow::Result<()> {
    match command {
        MappingCommand::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let mapping = args.mapping.load()?;
    let mut err = std::io::stderr().lock();
    writeln!(err, "{}: {} source(s), ok", mapping.origin, mapping.sources.len())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut total = Counts::default();
    for sample in &args.samples {
        let c = check_sample(&mapping, sample, &mut out, &mut err)?;
        total.records += c.records;
        total.bad += c.bad;
        total.nul_runs += c.nul_runs;
    }
    out.flush()?;
    let Counts { records, bad, nul_runs } = total;
    writeln!(err, "records: {records}; bad lines: {bad}; NUL runs: {nul_runs}")?;
    match (bad, nul_runs) {
        (0, 0) => Ok(()),
        (bad, 0) => anyhow::bail!("{bad} bad line(s)"),
        (bad, runs) => anyhow::bail!("{bad} bad line(s), {runs} NUL run(s)"),
    }
}

/// What the samples held: trades, bad lines (the oracle's `bad_lines`: lines that do not parse
/// or are over the cap; a sample no source owns counts as one), and NUL runs (the oracle's
/// `nul_runs`; the ingestor dead-letters each as `nul_run`).
#[derive(Default)]
struct Counts {
    records: u64,
    bad: u64,
    nul_runs: u64,
}

/// Reads one sample.
fn check_sample(
    mapping: &Mapping,
    sample: &std::path::Path,
    out: &mut impl std::io::Write,
    err: &mut impl std::io::Write,
) -> anyhow::Result<Counts> {
    let file_name = sample.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some((source, name)) = mapping.identify(&file_name) else {
        let names: Vec<_> = mapping.sources.iter().map(|s| s.name.as_str()).collect();
        writeln!(err, "{}: no source's file_name matches this name (sources: {})", sample.display(), names.join(", "))?;
        return Ok(Counts { bad: 1, ..Counts::default() });
    };
    let source = &mapping.sources[source];
    let contents = std::fs::read(sample).with_context(|| format!("reading {}", sample.display()))?;
    // Framed as the ingestor and the oracle frame it (docs/edge.md): a BOM at offset 0 skipped,
    // NUL runs reported, a line over the cap refused whole — with their reasons and codes.
    let first = first_line_offset(&contents);
    let (mut c, mut line_no) = (Counts::default(), 0);
    let mut scratch = Vec::new();
    for piece in frames(&contents, MAX_LINE_BYTES) {
        match piece {
            Piece::Line { offset, line } => {
                line_no += 1;
                match source.parse_line(line, offset == first) {
                    Ok(Parsed::Header) => writeln!(err, "{}:{line_no}: header", sample.display())?,
                    Ok(parsed) => {
                        if let Some(trade) = parsed.trade() {
                            let id = TradeId { client: name.client.clone(), date: name.date, generation: 0, offset };
                            scratch.clear();
                            write_record_json(&id, &trade, &mut scratch);
                            out.write_all(&scratch)?;
                            out.write_all(b"\n")?;
                            c.records += 1;
                        }
                    }
                    Err(e) => {
                        c.bad += 1;
                        writeln!(err, "{}:{line_no}: offset {offset}: {} [{}]", sample.display(), e, e.code())?;
                    }
                }
            }
            Piece::TooLong { offset, len } => {
                line_no += 1;
                c.bad += 1;
                let e = line_too_long(len, MAX_LINE_BYTES);
                writeln!(err, "{}:{line_no}: offset {offset}: {} [{}]", sample.display(), e, e.code())?;
            }
            Piece::NulRun { offset, len } => {
                c.nul_runs += 1;
                writeln!(err, "{}: offset {offset}: {} [{NUL_RUN_CODE}]", sample.display(), nul_run_reason(len))?;
            }
            Piece::Partial { len, .. } => {
                writeln!(err, "{}: {len} bytes after the last newline: not a line yet", sample.display())?;
            }
        }
    }
    Ok(c)
}
