//! `tradeflow mapping check`: a mapping file checked, and sample logs read with it — the records
//! they give and every bad line with its reason (exit 1 if any line is bad).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use tradeflow_core::log_format::framing::first_line_offset;
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
    let (mut records, mut bad) = (0u64, 0u64);
    for sample in &args.samples {
        let (r, b) = check_sample(&mapping, sample, &mut out, &mut err)?;
        records += r;
        bad += b;
    }
    out.flush()?;
    writeln!(err, "records: {records}; bad lines: {bad}")?;
    if bad > 0 { anyhow::bail!("{bad} bad line(s)") } else { Ok(()) }
}

/// Reads one sample; (records, bad lines).
fn check_sample(
    mapping: &Mapping,
    sample: &std::path::Path,
    out: &mut impl std::io::Write,
    err: &mut impl std::io::Write,
) -> anyhow::Result<(u64, u64)> {
    let file_name = sample.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some((source, name)) = mapping.identify(&file_name) else {
        let names: Vec<_> = mapping.sources.iter().map(|s| s.name.as_str()).collect();
        writeln!(err, "{}: no source's file_name matches this name (sources: {})", sample.display(), names.join(", "))?;
        return Ok((0, 1));
    };
    let source = &mapping.sources[source];
    let contents = std::fs::read(sample).with_context(|| format!("reading {}", sample.display()))?;
    // A BOM at offset 0 is skipped (docs/edge.md, framing): the first line, the header of a
    // delimited file, then starts at 3.
    let first = first_line_offset(&contents) as usize;
    let (mut records, mut bad, mut offset, mut line_no) = (0, 0, first, 0);
    let mut scratch = Vec::new();
    while let Some(len) = memchr_newline(&contents[offset..]) {
        line_no += 1;
        let line = &contents[offset..offset + len];
        match source.parse_line(line, offset == first) {
            Ok(Parsed::Header) => writeln!(err, "{}:{line_no}: header", sample.display())?,
            Ok(parsed) => {
                if let Some(trade) = parsed.trade() {
                    let id =
                        TradeId { client: name.client.clone(), date: name.date, generation: 0, offset: offset as u64 };
                    scratch.clear();
                    write_record_json(&id, &trade, &mut scratch);
                    out.write_all(&scratch)?;
                    out.write_all(b"\n")?;
                    records += 1;
                }
            }
            Err(e) => {
                bad += 1;
                writeln!(err, "{}:{line_no}: offset {offset}: {} [{}]", sample.display(), e, e.code())?;
            }
        }
        offset += len + 1;
    }
    if offset < contents.len() {
        writeln!(
            err,
            "{}: {} bytes after the last newline: not a line yet",
            sample.display(),
            contents.len() - offset
        )?;
    }
    Ok((records, bad))
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}
