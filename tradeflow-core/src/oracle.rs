//! The oracle (SPEC §3): the summary rows computed straight from trade lines, each line once,
//! bad lines excluded. Every later component is compared against it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::client::ClientId;
use crate::edge::MAX_LINE_BYTES;
use crate::fill_bars::{RowBars, next_bar};
use crate::log_format::framing::{Piece, first_line_offset, frames};
use crate::log_format::{LogFileName, parse_line};
use crate::mapping::{Mapping, Parsed, Source};
use crate::summary::{Position, SummaryKey};
use crate::trade::Trade;

#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    #[error("cannot read log directory {dir}: {source}")]
    ReadDir { dir: PathBuf, source: std::io::Error },
    #[error("cannot read log file {file}: {source}")]
    ReadFile { file: PathBuf, source: std::io::Error },
}

/// Expected summary rows, built line by line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Oracle {
    pub rows: BTreeMap<SummaryKey, Position>,
    /// Each row's fill bars (`crate::fill_bars`): a trade counts in its row and its bar, or in neither.
    pub fill_bars: BTreeMap<SummaryKey, RowBars>,
    /// Complete lines seen.
    pub lines: u64,
    /// Lines that failed to parse, were over the line cap, or would overflow a row (or make its
    /// sums round): excluded from `rows`.
    pub bad_lines: u64,
    /// Runs of NUL bytes skipped where a line would start, and their bytes (framing, `docs/edge.md`).
    pub nul_runs: u64,
    pub nul_bytes: u64,
    /// Bytes after the last `\n` of a file: not yet a line, so not counted.
    pub partial_bytes: u64,
}

impl Oracle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one line (without its `\n`) of `client`'s log. Returns whether it counted.
    pub fn apply_line(&mut self, client: &ClientId, line: &[u8]) -> bool {
        self.lines += 1;
        match parse_line(line) {
            Ok(trade) => self.apply_trade(client, &trade),
            Err(_) => {
                self.bad_lines += 1;
                false
            }
        }
    }

    /// Applies one line read under `source`; `first_line`: it is its file's first line (a
    /// delimited file's header line is not a line: not counted). Returns whether it counted.
    pub fn apply_source_line(&mut self, source: &Source, client: &ClientId, first_line: bool, line: &[u8]) -> bool {
        let trade = match source.parse_line(line, first_line) {
            Ok(Parsed::Header) => return false,
            Ok(parsed) => parsed.trade().map(|t| t.to_trade()),
            Err(_) => None,
        };
        self.lines += 1;
        match trade {
            Some(trade) => self.apply_trade(client, &trade),
            None => {
                self.bad_lines += 1;
                false
            }
        }
    }

    fn apply_trade(&mut self, client: &ClientId, trade: &Trade) -> bool {
        let key = SummaryKey::of(client, trade);
        let bars = self.fill_bars.get(&key);
        let applied = next_bar(bars.unwrap_or(&RowBars::new()), trade).ok().and_then(|(minute, bar)| {
            match self.rows.get_mut(&key) {
                Some(position) => position.apply(trade).ok()?,
                None => {
                    self.rows.insert(key.clone(), Position::first(trade).ok()?);
                }
            }
            self.fill_bars.entry(key).or_default().insert(minute, bar);
            Some(())
        });
        if applied.is_none() {
            self.bad_lines += 1;
        }
        applied.is_some()
    }

    /// Applies every complete line of `contents` (a log file's bytes from offset 0) read under
    /// `source`, framed as the ingestor frames them (see [`Self::apply_contents`]).
    pub fn apply_source_contents(&mut self, source: &Source, client: &ClientId, contents: &[u8]) {
        let first = first_line_offset(contents);
        for piece in frames(contents, MAX_LINE_BYTES) {
            match piece {
                Piece::Line { offset, line } => {
                    self.apply_source_line(source, client, offset == first, line);
                }
                other => self.apply_other_piece(&other),
            }
        }
    }

    /// Applies every file of `dir` that a source of `mapping` owns (every source's pattern is
    /// tried, whatever its `dir`: the oracle reads the directories it is given).
    pub fn apply_dir_mapped(&mut self, dir: &Path, mapping: &Mapping) -> Result<usize, OracleError> {
        let read_dir = |source| OracleError::ReadDir { dir: dir.to_owned(), source };
        let files = mapping.log_files(dir, |_| true).map_err(read_dir)?;
        let mut read = 0;
        for f in &files {
            if !std::fs::symlink_metadata(&f.path).map_err(read_dir)?.is_file() {
                continue;
            }
            let contents =
                std::fs::read(&f.path).map_err(|source| OracleError::ReadFile { file: f.path.clone(), source })?;
            self.apply_source_contents(&mapping.sources[f.source], &f.name.client, &contents);
            read += 1;
        }
        Ok(read)
    }

    /// The oracle of a log directory as it stands, read with `mapping`.
    pub fn from_dir_mapped(dir: &Path, mapping: &Mapping) -> Result<Self, OracleError> {
        let mut oracle = Self::new();
        oracle.apply_dir_mapped(dir, mapping)?;
        Ok(oracle)
    }

    /// Applies every complete line of `contents` (a log file's bytes from offset 0), framed as
    /// the ingestor frames them ([`crate::log_format::framing`]): a BOM at the start and NUL runs
    /// are skipped, a line over [`MAX_LINE_BYTES`] is a bad line.
    pub fn apply_contents(&mut self, client: &ClientId, contents: &[u8]) {
        for piece in frames(contents, MAX_LINE_BYTES) {
            match piece {
                Piece::Line { line, .. } => {
                    self.apply_line(client, line);
                }
                other => self.apply_other_piece(&other),
            }
        }
    }

    /// Counts a piece that is not a line: an over-long line (a bad line), a NUL run, a partial line.
    fn apply_other_piece(&mut self, piece: &Piece<'_>) {
        match *piece {
            Piece::Line { .. } => {}
            Piece::TooLong { .. } => {
                self.lines += 1;
                self.bad_lines += 1;
            }
            Piece::NulRun { len, .. } => {
                self.nul_runs += 1;
                self.nul_bytes += len;
            }
            Piece::Partial { len, .. } => self.partial_bytes += len,
        }
    }

    /// Applies every trade log file in `dir` (other files are ignored).
    pub fn apply_dir(&mut self, dir: &Path) -> Result<usize, OracleError> {
        let mut files = log_files(dir)?;
        files.sort();
        for (name, path) in &files {
            let contents =
                std::fs::read(path).map_err(|source| OracleError::ReadFile { file: path.clone(), source })?;
            self.apply_contents(&name.client, &contents);
        }
        Ok(files.len())
    }

    /// The oracle of a log directory as it stands.
    pub fn from_dir(dir: &Path) -> Result<Self, OracleError> {
        let mut oracle = Self::new();
        oracle.apply_dir(dir)?;
        Ok(oracle)
    }
}

/// The trade log files of `dir`, with their parsed names.
pub fn log_files(dir: &Path) -> Result<Vec<(LogFileName, PathBuf)>, OracleError> {
    let read_dir = |source| OracleError::ReadDir { dir: dir.to_owned(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir)? {
        let entry = entry.map_err(read_dir)?;
        let Some(name) = entry.file_name().to_str().and_then(|n| LogFileName::parse(n).ok()) else {
            continue;
        };
        if entry.file_type().map_err(read_dir)?.is_file() {
            files.push((name, entry.path()));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_once_excludes_bad_and_partial() {
        let dir = tempfile::tempdir().unwrap();
        let good = "Activity Time:2026.11.22 09:30:00.1|Symbol:AAPL|Side:B|Price:10.5|Quantity:2|AccountID:CQ01\n\
                    Activity Time:2026.11.22 09:30:00.2|Symbol:AAPL|Side:S|Price:11|Quantity:1|AccountID:CQ01\n\
                    Activity Time:2026.11.22 09:30:00.3|Symbol:AAPL|Side:X|Price:11|Quantity:1|AccountID:CQ01\n\
                    Activity Time:2026.11.22 09:30:00.4|Symbol:FB|Side:B|Price:1|Quantity:1|AccountID:CQ02\n\
                    Activity Time:2026.11.22 09:30:00.5|Symbol:FB";
        std::fs::write(dir.path().join("tradeLog_client7.2026.11.22.log"), good).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let o = Oracle::from_dir(dir.path()).unwrap();
        assert_eq!(
            o,
            Oracle::from_dir_mapped(dir.path(), &Mapping::builtin()).unwrap(),
            "the built-in mapping is the same oracle"
        );
        assert_eq!((o.lines, o.bad_lines), (4, 1));
        assert!(o.partial_bytes > 0);
        assert_eq!(o.rows.len(), 2);
        let aapl = o.rows.iter().find(|(k, _)| k.symbol == "AAPL").unwrap().1;
        assert_eq!((aapl.trade_count, aapl.net_qty()), (2, 1));
        assert_eq!(aapl.buy_notional.to_string(), "21.0");
        assert_eq!(aapl.last_price.to_string(), "11");
        // Both AAPL fills fall in 09:30: one bar, the row's sums.
        let bars = o.fill_bars.iter().find(|(k, _)| k.symbol == "AAPL").unwrap().1;
        assert_eq!(bars.len(), 1);
        let bar = bars.values().next().unwrap();
        assert_eq!((bar.trade_count, bar.buy_qty, bar.sell_qty), (2, 2, 1));
        assert_eq!((bar.buy_notional, bar.sell_notional), (aapl.buy_notional, aapl.sell_notional));
    }

    const LINE: &str = "Activity Time:2026.11.22 09:30:00.1|Symbol:AAPL|Side:B|Price:1|Quantity:2|AccountID:CQ01";

    /// The cases 4, 7 and 9 as the oracle sees them (the ingestor's reader is held to the
    /// same framing in its own tests).
    #[test]
    fn bom_nul_runs_and_long_lines_frame_as_the_ingestor_does() {
        let client = ClientId::parse("7").unwrap();
        let mut o = Oracle::new();
        let mut bytes = b"\xEF\xBB\xBFOrderNo:5|".to_vec();
        bytes.extend_from_slice(format!("{LINE}\n").as_bytes());
        bytes.resize(bytes.len() + 98_000, 0);
        bytes.extend_from_slice(format!("{LINE}\n").as_bytes());
        // A valid line of 70 KB (an unknown field carries the bulk) counts; one over the cap does not.
        bytes.extend_from_slice(format!("{LINE}|Note:{}\n", "n".repeat(70_000)).as_bytes());
        bytes.extend_from_slice(format!("{LINE}|Note:{}\n", "n".repeat(MAX_LINE_BYTES)).as_bytes());
        o.apply_contents(&client, &bytes);
        assert_eq!((o.lines, o.bad_lines, o.nul_runs, o.nul_bytes, o.partial_bytes), (4, 1, 1, 98_000, 0));
        assert_eq!(o.rows.values().next().unwrap().trade_count, 3);
    }

    #[test]
    fn a_csv_mapping_skips_the_header_and_counts_rows() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "time,account,symbol,side,qty,price,order_no\n\
                   2026-11-22T09:30:00.1,CQ01,AAPL,BUY,2,10.5,\n\
                   2026-11-22T09:30:00.2,CQ01,AAPL,SELL,1,11,7\n\
                   2026-11-22T09:30:00.3,CQ01,AAPL,HOLD,1,11,\n";
        std::fs::write(dir.path().join("trades_7_20261122.csv"), csv).unwrap();
        let mapping =
            Mapping::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mappings/csv.toml")).unwrap();
        let o = Oracle::from_dir_mapped(dir.path(), &mapping).unwrap();
        assert_eq!((o.lines, o.bad_lines, o.rows.len()), (3, 1, 1));
        let aapl = o.rows.values().next().unwrap();
        assert_eq!((aapl.trade_count, aapl.net_qty()), (2, 1));
        assert_eq!(Oracle::from_dir(dir.path()).unwrap().lines, 0, "the built-in mapping owns no .csv file");
    }

    /// A CSV export that starts with a UTF-8 BOM (Excel writes one): the header is its first line
    /// although it sits at byte 3; a BOM that starts any later line (files concatenated with
    /// `cat`) is refused as `misplaced_bom`, in the CSV and in the seed format alike.
    #[test]
    fn a_bom_before_a_csv_header_is_skipped_and_a_later_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "\u{FEFF}time,account,symbol,side,qty,price,order_no\n\
                   2026-11-22T09:30:00.1,CQ01,AAPL,BUY,2,10.5,\n\
                   \u{FEFF}2026-11-22T09:30:00.2,CQ01,AAPL,SELL,1,11,7\n";
        std::fs::write(dir.path().join("trades_7_20261122.csv"), csv).unwrap();
        let mapping =
            Mapping::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mappings/csv.toml")).unwrap();
        let o = Oracle::from_dir_mapped(dir.path(), &mapping).unwrap();
        assert_eq!(
            (o.lines, o.bad_lines, o.rows.len()),
            (2, 1, 1),
            "the header is not a line; the later BOM is refused"
        );
        // A 2-byte first line makes the second line start at byte 3 too: it is not a header.
        let source = &mapping.sources[0];
        let client = ClientId::parse("7").unwrap();
        let mut o = Oracle::new();
        o.apply_source_contents(source, &client, b"ab\ntime,account,symbol,side,qty,price,order_no\n");
        assert_eq!((o.lines, o.bad_lines), (2, 2), "bad_header at 0, a non-trade at 3");
        let mut o = Oracle::new();
        o.apply_contents(&client, format!("{LINE}\n\u{FEFF}OrderNo:5|{LINE}\n").as_bytes());
        assert_eq!(
            (o.lines, o.bad_lines),
            (2, 1),
            "a seed line after a mid-file BOM is refused, not read as null OrderNo"
        );
    }
}
