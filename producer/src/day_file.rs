//! A client's day-rolling log appender: lines go to the file of their activity date, whole
//! lines per `write`, so a reader never sees half a line except at the very end.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use chrono_tz::Tz;
use tradeflow_core::ClientId;
use tradeflow_core::Trade;

use crate::ProducerError;
use crate::log_formats::LogFormat;

/// Flush the pending lines once they reach this size.
const FLUSH_BYTES: usize = 256 * 1024;

pub struct DayFileWriter {
    dir: PathBuf,
    client: ClientId,
    current: Option<(NaiveDate, File, PathBuf)>,
    pending: Vec<u8>,
    format: LogFormat,
    /// The zone of activity times (the JSON-lines feed writes instants).
    tz: Tz,
}

impl DayFileWriter {
    /// Lines and file names of `format`; activity times are wall clock of `tz`.
    pub fn new(dir: &Path, client: ClientId, format: LogFormat, tz: Tz) -> Result<Self, ProducerError> {
        std::fs::create_dir_all(dir).map_err(|source| ProducerError::Io {
            action: "cannot create log directory",
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            client,
            current: None,
            pending: Vec::with_capacity(FLUSH_BYTES + 1024),
            format,
            tz,
        })
    }

    /// Queues one trade's line; rolls to a new file when the date changes.
    pub fn push(&mut self, trade: &Trade) -> Result<(), ProducerError> {
        let date = trade.trade_date();
        if self.current.as_ref().is_none_or(|(d, _, _)| *d != date) {
            self.flush()?;
            self.open(date)?;
        }
        self.format.render_into(trade, self.tz, &mut self.pending);
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
        let path = self.dir.join(self.format.file_name(&self.client, date));
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|source| ProducerError::Io {
            action: "cannot open",
            path: path.clone(),
            source,
        })?;
        // A new file starts with the format's header (a CSV export's columns); pending lines are
        // the new file's only.
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(false);
        if empty {
            self.pending.splice(0..0, self.format.header().iter().copied());
        }
        if let Some((_, _, old)) = &self.current {
            tracing::info!(from = %old.display(), to = %path.display(), "day rollover");
        }
        self.current = Some((date, file, path));
        Ok(())
    }
}
