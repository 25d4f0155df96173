//! A client's day-rolling log appender: lines go to the file of their activity date, whole
//! lines per `write`, so a reader never sees half a line except at the very end.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use tradeflow_core::ClientId;
use tradeflow_core::Trade;
use tradeflow_core::log_format::{LogFileName, render_line_into};

use crate::ProducerError;

/// Flush the pending lines once they reach this size.
const FLUSH_BYTES: usize = 256 * 1024;

pub struct DayFileWriter {
    dir: PathBuf,
    client: ClientId,
    current: Option<(NaiveDate, File, PathBuf)>,
    pending: Vec<u8>,
}

impl DayFileWriter {
    pub fn new(dir: &Path, client: ClientId) -> Result<Self, ProducerError> {
        std::fs::create_dir_all(dir).map_err(|source| ProducerError::Io {
            action: "cannot create log directory",
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self { dir: dir.to_owned(), client, current: None, pending: Vec::with_capacity(FLUSH_BYTES + 1024) })
    }

    /// Queues one trade's line; rolls to a new file when the date changes.
    pub fn push(&mut self, trade: &Trade) -> Result<(), ProducerError> {
        let date = trade.trade_date();
        if self.current.as_ref().is_none_or(|(d, _, _)| *d != date) {
            self.flush()?;
            self.open(date)?;
        }
        render_line_into(trade, &mut self.pending);
        if self.pending.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the queued lines in one `write_all`.
    pub fn flush(&mut self) -> Result<(), ProducerError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Some((_, file, path)) = &mut self.current {
            file.write_all(&self.pending).map_err(|source| ProducerError::Io {
                action: "cannot write",
                path: path.clone(),
                source,
            })?;
        }
        self.pending.clear();
        Ok(())
    }

    fn open(&mut self, date: NaiveDate) -> Result<(), ProducerError> {
        let path = self.dir.join(LogFileName::new(self.client.clone(), date).to_string());
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|source| ProducerError::Io {
            action: "cannot open",
            path: path.clone(),
            source,
        })?;
        if let Some((_, _, old)) = &self.current {
            tracing::info!(from = %old.display(), to = %path.display(), "day rollover");
        }
        self.current = Some((date, file, path));
        Ok(())
    }
}
