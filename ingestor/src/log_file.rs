//! One open trade log: its cursor, reader and acknowledgement window, and publishing its lines.

use std::fs::File;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use tradeflow_core::edge::DEAD_LETTER_VALUE_MAX;
use tradeflow_core::log_format::{LogFileName, framing};
use tradeflow_core::mapping::{Mapping, Parsed};
use tradeflow_core::record::{self, TradeId, write_record_json};
use tradeflow_core::topics::Topics;

use crate::ack_window::AckWindow;
use crate::cursor::{Cursor, CursorStore, HEAD_BYTES, prefix_crc32};
use crate::error::IngestError;
use crate::line_reader::{Item, LineReader};
use crate::metrics::Metrics;
use crate::publisher::{Pending, Publisher, dlq_headers};

/// What every file reader shares.
pub struct Shared {
    pub publisher: Publisher,
    pub metrics: Arc<Metrics>,
    pub topics: Topics,
    pub store: CursorStore,
    /// The line cap: [`tradeflow_core::edge::MAX_LINE_BYTES`] (the oracle's), smaller in tests.
    pub max_line_bytes: usize,
    /// How file names and lines are read (the built-in SPEC §1 mapping without `--mapping`).
    pub mapping: Mapping,
    /// Live file readers now: the cursor writes are spread by it ([`crate::tail`]).
    pub readers: std::sync::atomic::AtomicUsize,
    /// How long a stopping reader waits for its lines' acknowledgements (`--drain-secs`).
    pub drain: std::time::Duration,
}

pub struct LogFile {
    pub name: LogFileName,
    pub path: PathBuf,
    /// The mapping source that owns the file (index into `Shared::mapping.sources`).
    pub source: usize,
    /// The file's own name (a dead letter's `DLQ_FILE`).
    file_name: String,
    file: File,
    pub cursor: Cursor,
    persisted_offset: u64,
    /// A cursor write running on the blocking pool, and the offset it saves.
    saving: Option<(tokio::task::JoinHandle<Result<(), crate::cursor::CursorError>>, u64)>,
    reader: LineReader,
    pub window: Arc<AckWindow>,
    scratch: Vec<u8>,
    /// The activity times of the chunk being published (for the fill-age histogram).
    activity_times: Vec<chrono::NaiveDateTime>,
    /// Whether lines feed the fill-age histogram: live reading only (a backfill's lines are old
    /// by design, and would all land in its +Inf bucket).
    ages_fills: bool,
    /// Found rewritten just after a read (whose bytes were then not published).
    stale: bool,
    /// The last line read: offset, length with its `\n`, CRC-32 of those bytes. Checked again on
    /// every wake-up, so a rewrite in place that keeps the head is also seen live when it changes
    /// the bytes where the last line was (one short read per wake-up).
    last_line: Option<(u64, usize, u32)>,
    /// The file's size at the last [`Self::replaced`] check (its `fstat`): what
    /// [`Self::pump_seen`] reads up to.
    size_seen: u64,
}

/// Opens `path` for reading only if it is a regular file, without blocking: a directory, FIFO,
/// socket or device named like a log file is an error for that file alone (a FIFO's open would
/// otherwise wait for a writer, and shutdown with it).
fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let not_regular = || std::io::Error::other("not a regular file (a directory, FIFO, socket or device?)");
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    // It may have been replaced between the check and the open.
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    Ok(file)
}

/// Whether `file` is the one `cursor` describes: its bytes before the cursor hash to the stored
/// CRC-32 (a cursor saved before the CRC existed: its head matches, and it gets its CRC now).
fn proves(file: &File, cursor: &mut Cursor) -> std::io::Result<bool> {
    let crc = prefix_crc32(file, cursor.offset)?;
    match cursor.prefix_crc32 {
        Some(stored) => Ok(crc == Some(stored)),
        None if starts_with(file, &cursor.head_bytes())? && crc.is_some() => {
            cursor.prefix_crc32 = crc;
            Ok(true)
        }
        None => Ok(false),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io { path: path.to_owned(), source }
}

/// Whether `file` starts with `head`.
fn starts_with(file: &File, head: &[u8]) -> std::io::Result<bool> {
    if head.is_empty() {
        return Ok(true);
    }
    let mut buf = vec![0u8; head.len()];
    match file.read_exact_at(&mut buf, 0) {
        Ok(()) => Ok(buf == head),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

impl LogFile {
    /// Opens `path` and resumes from its stored cursor, or starts a new generation when the file
    /// on disk is not the one the cursor describes. `Ok(None)` when the file does not exist.
    pub fn open(name: LogFileName, path: PathBuf, source: usize, shared: &Shared) -> Result<Option<Self>, IngestError> {
        Self::open_with(name, path, source, shared, false)
    }

    /// Opens `path` at offset 0 with the identity (generation) the live ingestor gives it; for
    /// backfill, which never saves the cursor.
    pub fn open_from_start(
        name: LogFileName,
        path: PathBuf,
        source: usize,
        shared: &Shared,
    ) -> Result<Option<Self>, IngestError> {
        Self::open_with(name, path, source, shared, true)
    }

    fn open_with(
        name: LogFileName,
        path: PathBuf,
        source: usize,
        shared: &Shared,
        from_start: bool,
    ) -> Result<Option<Self>, IngestError> {
        let file = match open_regular(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let meta = file.metadata().map_err(io_err(&path))?;
        let mut cursor = match shared.store.load(&name)? {
            None => Cursor::new(&name, 0, meta.dev(), meta.ino()),
            Some(mut c) => {
                let same = c.dev == meta.dev()
                    && c.ino == meta.ino()
                    && meta.len() >= c.offset
                    && proves(&file, &mut c).map_err(io_err(&path))?;
                if same {
                    c
                } else {
                    let fresh = Cursor::new(&name, c.generation + 1, meta.dev(), meta.ino());
                    if !from_start {
                        tracing::warn!(file = %name, generation = fresh.generation,
                            "file is not the one the cursor describes (replaced, truncated or rewritten while stopped); reading it from the start");
                        shared.metrics.truncations.fetch_add(1, Relaxed);
                        shared.store.save(&name, &fresh)?;
                    }
                    fresh
                }
            }
        };
        if from_start {
            cursor.offset = 0;
            cursor.prefix_crc32 = Some(0);
        }
        let offset = cursor.offset;
        let crc = cursor.prefix_crc32.unwrap_or(0);
        tracing::info!(file = %name, generation = cursor.generation, offset, "reading");
        let file_name = path.file_name().map_or_else(|| name.to_string(), |n| n.to_string_lossy().into_owned());
        Ok(Some(Self {
            name,
            path,
            source,
            file_name,
            file,
            persisted_offset: offset,
            saving: None,
            cursor,
            reader: LineReader::new(offset, crc, shared.max_line_bytes),
            window: Arc::new(AckWindow::new(offset, crc)),
            scratch: Vec::with_capacity(1024),
            activity_times: Vec::new(),
            ages_fills: !from_start,
            stale: false,
            last_line: None,
            size_seen: meta.len(),
        }))
    }

    /// Why the file must be read again from the start (a new generation), if it must.
    pub fn replaced(&mut self) -> Result<Option<&'static str>, IngestError> {
        if std::mem::take(&mut self.stale) {
            return Ok(Some("rewritten"));
        }
        // Our handle's size first: a deleted file is still read through it.
        let ours = self.file.metadata().map_err(io_err(&self.path))?;
        self.size_seen = ours.len();
        let on_disk = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            // Deleted: keep the open handle until a new file appears.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&self.path)(e)),
        };
        if (on_disk.dev(), on_disk.ino()) != (ours.dev(), ours.ino()) {
            return Ok(Some("recreated"));
        }
        if ours.len() < self.reader.read_offset() {
            return Ok(Some("truncated"));
        }
        let head = self.cursor.head_bytes();
        if !starts_with(&self.file, &head).map_err(io_err(&self.path))? {
            return Ok(Some("rewritten"));
        }
        if let Some((offset, len, crc)) = self.last_line {
            // Into the record scratch buffer (free until the next publish): no allocation per wake-up.
            self.scratch.clear();
            self.scratch.resize(len, 0);
            match self.file.read_exact_at(&mut self.scratch, offset) {
                Ok(()) if crc32fast::hash(&self.scratch) == crc => {}
                Ok(()) => return Ok(Some("rewritten")),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Some("rewritten")),
                Err(e) => return Err(io_err(&self.path)(e)),
            }
        }
        if head.len() < HEAD_BYTES && ours.len() > head.len() as u64 {
            let mut buf = vec![0u8; (ours.len() as usize).min(HEAD_BYTES)];
            if self.file.read_exact_at(&mut buf, 0).is_ok() && buf.starts_with(&head) {
                self.cursor.set_head(&buf);
            }
        }
        Ok(None)
    }

    /// Starts the next generation after every line of this one is acknowledged.
    pub async fn reset(mut self, why: &'static str, shared: &Shared) -> Result<Self, IngestError> {
        tracing::warn!(file = %self.name, why, generation = self.cursor.generation + 1,
            "file {why}: waiting for in-flight lines, then reading it from the start");
        self.window.drained().await.map_err(IngestError::Delivery)?;
        self.persist(shared).await?;
        shared.metrics.truncations.fetch_add(1, Relaxed);
        let file = open_regular(&self.path).map_err(io_err(&self.path))?;
        let meta = file.metadata().map_err(io_err(&self.path))?;
        let cursor = Cursor::new(&self.name, self.cursor.generation + 1, meta.dev(), meta.ino());
        shared.store.save(&self.name, &cursor)?;
        Ok(Self {
            name: self.name,
            path: self.path,
            source: self.source,
            file_name: self.file_name,
            file,
            cursor,
            persisted_offset: 0,
            saving: None,
            reader: LineReader::new(0, 0, shared.max_line_bytes),
            window: Arc::new(AckWindow::new(0, 0)),
            scratch: self.scratch,
            activity_times: self.activity_times,
            ages_fills: self.ages_fills,
            stale: false,
            last_line: None,
            size_seen: meta.len(),
        })
    }

    /// Whether acknowledged progress has not been saved yet.
    pub fn unpersisted(&self) -> bool {
        self.window.acked_offset() != self.persisted_offset
    }

    /// Saves the cursor if the acknowledged offset moved, waiting for the write (after any
    /// running in the background); the first delivery failure, if any.
    pub async fn persist(&mut self, shared: &Shared) -> Result<(), IngestError> {
        self.save_cursor(shared, true).await
    }

    /// [`Self::persist`] without waiting: the write (temp file, two fsyncs, rename) runs on the
    /// blocking pool and is collected by a later call. The live loop's way: with a thousand live
    /// files, cursor writes on the runtime's two workers stalled every reader (the fan-out
    /// benchmark's append → produce hop averaged 0.75 s; docs/benchmarks.md). One write per file
    /// at a time; a failed one is this call's error (or the next's).
    pub async fn persist_in_background(&mut self, shared: &Shared) -> Result<(), IngestError> {
        self.save_cursor(shared, false).await
    }

    async fn save_cursor(&mut self, shared: &Shared, wait: bool) -> Result<(), IngestError> {
        if let Some(f) = self.window.failure() {
            return Err(IngestError::Delivery(f));
        }
        if !wait && self.saving.as_ref().is_some_and(|(write, _)| !write.is_finished()) {
            return Ok(());
        }
        if let Some((write, offset)) = self.saving.take() {
            write.await.map_err(|e| IngestError::Task(format!("cursor write: {e}")))??;
            self.persisted_offset = offset;
        }
        let (acked, crc) = self.window.acked();
        if acked != self.persisted_offset || self.cursor.offset != acked {
            self.cursor.offset = acked;
            self.cursor.prefix_crc32 = Some(crc);
            if wait {
                shared.store.save(&self.name, &self.cursor)?;
                self.persisted_offset = acked;
            } else {
                let (store, name, cursor) = (shared.store.clone(), self.name.clone(), self.cursor.clone());
                self.saving = Some((tokio::task::spawn_blocking(move || store.save(&name, &cursor)), acked));
            }
        }
        let size = self.file.metadata().map(|m| m.len()).unwrap_or(acked);
        shared.metrics.set_bytes_behind(&self.name.to_string(), size.saturating_sub(acked));
        Ok(())
    }

    /// Reads one chunk and publishes the complete lines in it. Returns how many lines it found
    /// (0: nothing new, or only part of a line so far).
    pub async fn pump(&mut self, shared: &Shared) -> Result<usize, IngestError> {
        let size = self.file.metadata().map_err(io_err(&self.path))?.len();
        self.pump_upto(size, shared).await
    }

    /// [`Self::pump`] up to the size the last [`Self::replaced`] saw, without another `fstat`
    /// (the live loop: every `fstat` and read per wake-up is paid per append at 10 k lines/s).
    pub async fn pump_seen(&mut self, shared: &Shared) -> Result<usize, IngestError> {
        self.pump_upto(self.size_seen, shared).await
    }

    /// Whether everything up to the size the last [`Self::replaced`] saw has been read (or the
    /// file was found rewritten). Appends after that check wake the reader again.
    pub fn read_to_seen(&self) -> bool {
        self.stale || self.reader.read_offset() >= self.size_seen
    }

    async fn pump_upto(&mut self, size: u64, shared: &Shared) -> Result<usize, IngestError> {
        if let Some(f) = self.window.failure() {
            return Err(IngestError::Delivery(f));
        }
        let start = self.reader.line_offset();
        let items = self.reader.read_upto(&self.file, size).map_err(io_err(&self.path))?;
        // A file rewritten between `replaced` and this read may have handed us its new content at
        // the old offsets. Its head is written before its tail, so a head that still matches after
        // the read means the bytes read are the old file's; otherwise publish nothing and start a
        // new generation (`replaced` says so next).
        if !items.is_empty() && !starts_with(&self.file, &self.cursor.head_bytes()).map_err(io_err(&self.path))? {
            self.stale = true;
            return Ok(0);
        }
        if let Some(Item::Line { offset, range, .. }) = items.iter().rev().find(|i| matches!(i, Item::Line { .. })) {
            // The line and its `\n` (the reader keeps a line's bytes and the byte after it).
            let bytes = self.reader.bytes(range.start..range.end + 1);
            self.last_line = Some((*offset, bytes.len(), crc32fast::hash(bytes)));
        }
        let lines = items.iter().filter(|i| !matches!(i, Item::NulRun { .. })).count();
        shared.metrics.lines_read.fetch_add(lines as u64, Relaxed);
        // The clocks are read once per chunk, not per line (they were a tenth of the ingest path).
        let sent = Instant::now();
        self.activity_times.clear();
        for item in &items {
            self.publish(item, sent, shared).await?;
        }
        let now = chrono::Utc::now().naive_utc();
        for t in self.activity_times.drain(..) {
            shared.metrics.fill_age.observe_age_at(now, t);
        }
        if let Some(last) = items.last() {
            shared.metrics.bytes_read.fetch_add(last.end() - start, Relaxed);
        }
        Ok(items.len())
    }

    /// A send of line `seq` that failed: abandoned at shutdown (`Canceled`: the line is taken
    /// back from the window and read again at the next start) or refused by the producer.
    fn not_sent(&self, seq: u64, e: rdkafka::error::KafkaError) -> IngestError {
        match e {
            rdkafka::error::KafkaError::Canceled => {
                self.window.withdraw(seq);
                IngestError::Stopped
            }
            e => e.into(),
        }
    }

    async fn publish(&mut self, item: &Item, sent: Instant, shared: &Shared) -> Result<(), IngestError> {
        let client = self.name.client.as_str().as_bytes();
        let offset = item.offset();
        let pending = |window: &Arc<AckWindow>, dead_letter| Pending {
            window: window.clone(),
            seq: window.register(item.end(), item.crc()),
            sent,
            dead_letter,
        };
        let first_line = self.reader.is_first_line(offset);
        let (raw, reason, code, len): (&[u8], String, &'static str, u64) = match item {
            Item::Line { range, .. } => {
                let bytes = self.reader.bytes(range.clone());
                match shared.mapping.sources[self.source].parse_line(bytes, first_line) {
                    Ok(Parsed::Header) => {
                        // A delimited file's header: not a trade; the cursor moves past it.
                        let window = self.window.clone();
                        window.ack(window.register(item.end(), item.crc()));
                        shared.metrics.header_lines.fetch_add(1, Relaxed);
                        return Ok(());
                    }
                    Ok(parsed) => {
                        let Some(trade) = parsed.trade() else { return Ok(()) };
                        let activity_time = trade.activity_time;
                        let id = TradeId {
                            client: self.name.client.clone(),
                            date: self.name.date,
                            generation: self.cursor.generation,
                            offset,
                        };
                        self.scratch.clear();
                        write_record_json(&id, &trade, &mut self.scratch);
                        let p = pending(&self.window, false);
                        let seq = p.seq;
                        if let Err(e) = shared.publisher.send_trade(client, &self.scratch, p).await {
                            return Err(self.not_sent(seq, e));
                        }
                        if self.ages_fills {
                            self.activity_times.push(activity_time);
                        }
                        return Ok(());
                    }
                    Err(e) => (bytes, e.to_string(), e.code(), bytes.len() as u64),
                }
            }
            Item::TooLong { head, len, .. } => {
                let e = framing::line_too_long(*len, shared.max_line_bytes);
                (head.as_slice(), e.to_string(), e.code(), *len)
            }
            Item::NulRun { len, .. } => {
                shared.metrics.nul_run(*len);
                (&[], framing::nul_run_reason(*len), framing::NUL_RUN_CODE, *len)
            }
        };
        // The whole line when it fits a record (every bad line under the cap does), else its head;
        // `tradeflow.offset` and `tradeflow.line_len` point at the whole line in the file.
        let raw = &raw[..raw.len().min(DEAD_LETTER_VALUE_MAX)];
        let truncated = (raw.len() as u64) < len && code != framing::NUL_RUN_CODE;
        tracing::warn!(file = %self.name, offset, len, reason = %reason, "sent to the dead-letter topic");
        shared.metrics.dead_lettered(code);
        let file = self.file_name.clone();
        let offset_s = offset.to_string();
        let generation = self.cursor.generation.to_string();
        let line_len = len.to_string();
        let date = self.name.date.to_string();
        let mut fields = vec![
            (record::DLQ_FILE, file.as_str()),
            (record::DLQ_DATE, &date),
            (record::DLQ_OFFSET, &offset_s),
            (record::DLQ_GENERATION, &generation),
            (record::DLQ_REASON, &reason),
            (record::DLQ_REASON_CODE, code),
            (record::DLQ_LINE_LEN, &line_len),
            (record::DLQ_TRUNCATED, if truncated { "true" } else { "false" }),
        ];
        if first_line && matches!(item, Item::Line { .. }) {
            fields.push((record::DLQ_FIRST_LINE, "true"));
        }
        let headers = dlq_headers(&fields);
        let p = pending(&self.window, true);
        let seq = p.seq;
        if let Err(e) = shared.publisher.send_dead_letter(client, raw, headers, p).await {
            return Err(self.not_sent(seq, e));
        }
        Ok(())
    }

    /// File offset of the next byte to read.
    pub fn read_offset(&self) -> u64 {
        self.reader.read_offset()
    }

    /// Found rewritten after a read: [`Self::replaced`] starts its new generation.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// Whether everything in the file up to its current size has been read (or it was found
    /// rewritten: nothing more is read from this generation).
    pub fn caught_up(&self) -> bool {
        self.stale || self.file.metadata().map(|m| m.len() <= self.reader.read_offset()).unwrap_or(true)
    }
}
