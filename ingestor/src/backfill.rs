//! `--backfill --from D [--to D]`: republish whole historical files, then exit. Identities are the
//! live ones (the stored generation when the file is the one its cursor describes, else 0), so
//! re-publishing is harmless downstream. Cursors are not changed.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::IngestorArgs;
use crate::discovery::scan;
use crate::error::IngestError;
use crate::log_file::{LogFile, Shared};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackfillReport {
    pub files: usize,
    pub lines: u64,
    pub bytes: u64,
}

pub async fn run(
    config: &IngestorArgs,
    shared: &Shared,
    shutdown: &CancellationToken,
) -> Result<BackfillReport, IngestError> {
    let from = config.from.ok_or_else(|| IngestError::Config("--backfill needs --from".into()))?;
    let to = config.to.unwrap_or(from);
    if to < from {
        return Err(IngestError::Config(format!("--to {to} is before --from {from}")));
    }
    let files: Vec<_> = scan(&config.dir)
        .map_err(|source| IngestError::Io { path: config.dir.clone(), source })?
        .into_iter()
        .filter(|(name, _)| (from..=to).contains(&name.date) && config.wants(&name.client))
        .collect();
    let total: u64 = files.iter().filter_map(|(_, p)| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    tracing::info!(files = files.len(), bytes = total, %from, %to, "backfill starting");
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut report = BackfillReport::default();
    let mut last_line = Instant::now();
    let mut opened = Vec::new();
    for (name, path) in files {
        if let Some(file) = LogFile::open_from_start(name, path, shared)? {
            opened.push(file);
        }
    }
    report.files = opened.len();
    // Publish every file, then wait for the acknowledgements once (no stall between files).
    for file in &mut opened {
        let mut published = 0u64;
        loop {
            if shutdown.is_cancelled() {
                return Err(IngestError::Config("backfill interrupted".into()));
            }
            let before = file.read_offset();
            let n = file.pump(shared).await?;
            if file.stale() {
                return Err(IngestError::RewrittenDuringBackfill(file.name.to_string()));
            }
            report.lines += n as u64;
            let moved = file.read_offset() - before;
            published += moved;
            if let Some(bar) = &bar {
                bar.inc(moved);
                bar.set_message(file.name.to_string());
            } else if last_line.elapsed() >= Duration::from_secs(1) {
                tracing::info!(file = %file.name, lines = report.lines, "backfill progress");
                last_line = Instant::now();
            }
            if n == 0 && file.caught_up() {
                break;
            }
        }
        report.bytes += published;
    }
    for file in &opened {
        file.window.drained().await.map_err(IngestError::Delivery)?;
        tracing::info!(file = %file.name, generation = file.cursor.generation, "backfilled");
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok(report)
}
