//! Incremental framing of a growing file, by the shared rules of
//! [`tradeflow_core::log_format::framing`] (the oracle applies the same): only complete lines come
//! out (a trailing partial line waits for its newline); a BOM at offset 0 is skipped; a run of NUL
//! bytes where a line would start comes out as [`Item::NulRun`] once a non-NUL byte ends it; a line
//! longer than the cap comes out as [`Item::TooLong`] with its head, without ever being held whole
//! in memory. Every byte read is also hashed (CRC-32, running from offset 0), so each item carries
//! the hash of the file up to its end: the cursor's proof of the bytes it stands on.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt as _;

use tradeflow_core::edge::{BOM, DEAD_LETTER_VALUE_MAX};
use tradeflow_core::log_format::framing::{Frame, next_frame};

/// Bytes read per call.
pub const CHUNK: usize = 256 * 1024;

/// A piece of the file found in the buffer. `crc` is the CRC-32 of the file's bytes from offset
/// 0 to the piece's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A complete line: `range` indexes [`LineReader::bytes`]; the line starts at file `offset`.
    Line { offset: u64, range: Range<usize>, crc: u32 },
    /// A line longer than the cap: its first bytes (at most the dead-letter value's size), its
    /// full length (without `\n`).
    TooLong { offset: u64, head: Vec<u8>, len: u64, crc: u32 },
    /// A run of `len` NUL bytes where a line would start (skipped; reported).
    NulRun { offset: u64, len: u64, crc: u32 },
}

impl Item {
    /// File offset just after the item (after a line's `\n`).
    pub fn end(&self) -> u64 {
        match self {
            Item::Line { offset, range, .. } => offset + range.len() as u64 + 1,
            Item::TooLong { offset, len, .. } => offset + len + 1,
            Item::NulRun { offset, len, .. } => offset + len,
        }
    }

    pub fn offset(&self) -> u64 {
        match self {
            Item::Line { offset, .. } | Item::TooLong { offset, .. } | Item::NulRun { offset, .. } => *offset,
        }
    }

    /// CRC-32 of the file from offset 0 to [`Self::end`].
    pub fn crc(&self) -> u32 {
        match self {
            Item::Line { crc, .. } | Item::TooLong { crc, .. } | Item::NulRun { crc, .. } => *crc,
        }
    }
}

/// A piece longer than the buffer, being skipped.
enum Skipping {
    Overlong { offset: u64, head: Vec<u8>, len: u64 },
    Nul { offset: u64, len: u64 },
}

pub struct LineReader {
    cap: usize,
    /// Bytes not yet split into lines; `buf[0]` is at file offset `buf_offset`.
    buf: Vec<u8>,
    buf_offset: u64,
    /// Set while skipping the rest of an over-long line or a long NUL run.
    skipping: Option<Skipping>,
    /// Bytes of `buf` already handed out as items (dropped on the next read).
    consumed: usize,
    /// CRC-32 of the file up to `buf_offset + consumed` (or to the end of what is being skipped).
    crc: crc32fast::Hasher,
    /// Offset of the file's first line: 3 once a BOM at offset 0 was skipped, else 0
    /// ([`tradeflow_core::log_format::framing::first_line_offset`]). A reader that starts past 0
    /// is past the first line too (a cursor only stands at 0 or after an item), so 0 is right there.
    first_line_offset: u64,
}

impl LineReader {
    /// A reader positioned at `offset` (the start of a line), `crc` being the CRC-32 of the file's
    /// bytes before it (0 at offset 0).
    pub fn new(offset: u64, crc: u32, cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            buf: Vec::with_capacity(CHUNK),
            buf_offset: offset,
            skipping: None,
            consumed: 0,
            crc: crc32fast::Hasher::new_with_initial_len(crc, offset),
            first_line_offset: 0,
        }
    }

    /// Whether the line at `offset` is the file's first (a delimited mapping's header line).
    pub fn is_first_line(&self, offset: u64) -> bool {
        offset == self.first_line_offset
    }

    /// File offset of the next byte to read.
    pub fn read_offset(&self) -> u64 {
        match &self.skipping {
            Some(Skipping::Overlong { offset, len, .. } | Skipping::Nul { offset, len }) => offset + len,
            None => self.buf_offset + self.buf.len() as u64,
        }
    }

    /// Start of the first line not yet handed out.
    pub fn line_offset(&self) -> u64 {
        match &self.skipping {
            Some(Skipping::Overlong { offset, .. } | Skipping::Nul { offset, .. }) => *offset,
            None => self.buf_offset + self.consumed as u64,
        }
    }

    pub fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    fn hash(&mut self, range: Range<usize>) -> u32 {
        self.crc.update(&self.buf[range]);
        self.crc.clone().finalize()
    }

    /// Reads up to one chunk from `file` and returns the items it completes (empty at EOF or
    /// while the last line is partial). Items index into this reader until the next call.
    pub fn read(&mut self, file: &File) -> std::io::Result<Vec<Item>> {
        let size = file.metadata()?.len();
        self.read_upto(file, size)
    }

    /// [`Self::read`] with the file's size already known (an `fstat` the caller made): reads up to
    /// one chunk of what lies between the read offset and `size`, and makes no read at all when
    /// nothing does. Bytes appended after that `fstat` are read by a later call.
    pub fn read_upto(&mut self, file: &File, size: u64) -> std::io::Result<Vec<Item>> {
        self.buf.drain(..self.consumed);
        self.buf_offset += self.consumed as u64;
        self.consumed = 0;
        let start = self.buf.len();
        let offset = self.read_offset();
        // Zero-fill only what the file holds past `offset`, up to a chunk: a live file grows by a
        // line or two between reads, and zeroing a whole chunk (256 KiB) per read was ~11 % of the
        // live ingestor's CPU in `perf` at 10 k lines/s (docs/benchmarks.md, ingest). A file that
        // grows after the `fstat` is read further on the next call.
        let available = size.saturating_sub(offset);
        let want = usize::try_from(available).map_or(CHUNK, |a| a.min(CHUNK));
        if want == 0 {
            return Ok(Vec::new());
        }
        self.buf.resize(start + want, 0);
        let n = match file.read_at(&mut self.buf[start..], offset) {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(start);
                return Err(e);
            }
        };
        self.buf.truncate(start + n);
        let mut items = Vec::new();
        if n == 0 {
            return Ok(items);
        }
        if self.skipping.is_some() && !self.skip(start, &mut items) {
            return Ok(items);
        }
        let mut pos = 0;
        loop {
            let offset = self.buf_offset + pos as u64;
            match next_frame(&self.buf[pos..], offset == 0, self.cap) {
                Frame::Bom => {
                    self.hash(pos..pos + BOM.len());
                    pos += BOM.len();
                    self.first_line_offset = BOM.len() as u64;
                }
                Frame::NulRun { len, complete: true } => {
                    let crc = self.hash(pos..pos + len);
                    items.push(Item::NulRun { offset, len: len as u64, crc });
                    pos += len;
                }
                Frame::NulRun { len, complete: false } => {
                    self.hash(pos..pos + len);
                    self.skipping = Some(Skipping::Nul { offset, len: len as u64 });
                    self.buf.truncate(pos);
                    break;
                }
                Frame::Line { len } => {
                    let crc = self.hash(pos..pos + len + 1);
                    items.push(Item::Line { offset, range: pos..pos + len, crc });
                    pos += len + 1;
                }
                Frame::TooLong => {
                    let head = self.buf[pos..pos + self.cap.min(DEAD_LETTER_VALUE_MAX)].to_vec();
                    match memchr::memchr(b'\n', &self.buf[pos..]) {
                        Some(len) => {
                            let crc = self.hash(pos..pos + len + 1);
                            items.push(Item::TooLong { offset, head, len: len as u64, crc });
                            pos += len + 1;
                        }
                        None => {
                            // No newline yet: keep the head, drop the rest, skip until the newline.
                            // Items already found index before `pos`: keep those bytes until the
                            // next call.
                            let len = self.buf.len() - pos;
                            self.hash(pos..self.buf.len());
                            self.skipping = Some(Skipping::Overlong { offset, head, len: len as u64 });
                            self.buf.truncate(pos);
                            break;
                        }
                    }
                }
                Frame::Incomplete => break,
            }
        }
        self.consumed = pos;
        Ok(items)
    }

    /// Goes on skipping with the `buf[start..]` just read (`start` is 0: the buffer was emptied
    /// when skipping began). Returns whether the skipped piece ended (its item pushed, the buffer
    /// now starting after it).
    fn skip(&mut self, start: usize, items: &mut Vec<Item>) -> bool {
        let new = &self.buf[start..];
        let (used, ended) = match &self.skipping {
            Some(Skipping::Overlong { .. }) => match memchr::memchr(b'\n', new) {
                Some(i) => (i + 1, true),
                None => (new.len(), false),
            },
            Some(Skipping::Nul { .. }) => match new.iter().position(|&b| b != 0) {
                Some(i) => (i, true),
                None => (new.len(), false),
            },
            None => return true,
        };
        let crc = self.hash(start..start + used);
        match &mut self.skipping {
            Some(Skipping::Overlong { len, .. }) => *len += (used - usize::from(ended)) as u64,
            Some(Skipping::Nul { len, .. }) => *len += used as u64,
            None => {}
        }
        if !ended {
            self.buf.truncate(start);
            return false;
        }
        let item = match self.skipping.take() {
            Some(Skipping::Overlong { offset, head, len }) => Item::TooLong { offset, head, len, crc },
            Some(Skipping::Nul { offset, len }) => Item::NulRun { offset, len, crc },
            None => return true,
        };
        self.buf_offset = item.end();
        items.push(item);
        self.buf.drain(..start + used);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write as _;
    use tradeflow_core::log_format::framing::{Piece, frames};

    /// (offset, bytes or head, kind) of every item until the reader has read the whole file.
    fn collect(reader: &mut LineReader, file: &File) -> Vec<(u64, Vec<u8>, &'static str)> {
        let mut out = Vec::new();
        loop {
            let items = reader.read(file).unwrap();
            if items.is_empty() && reader.read_offset() >= file.metadata().unwrap().len() {
                return out;
            }
            for item in items {
                match item {
                    Item::Line { offset, range, .. } => out.push((offset, reader.bytes(range).to_vec(), "line")),
                    Item::TooLong { offset, head, .. } => out.push((offset, head, "too_long")),
                    Item::NulRun { offset, len, .. } => out.push((offset, vec![0; len as usize], "nul")),
                }
            }
        }
    }

    #[test]
    fn complete_lines_only_and_partial_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = std::fs::File::create(&path).unwrap();
        w.write_all(b"one\ntwo\nthr").unwrap();
        let f = File::open(&path).unwrap();
        let mut r = LineReader::new(0, 0, 100);
        assert_eq!(collect(&mut r, &f), vec![(0, b"one".to_vec(), "line"), (4, b"two".to_vec(), "line")]);
        assert_eq!(r.line_offset(), 8);
        w.write_all(b"ee\n\nfour\n").unwrap();
        assert_eq!(
            collect(&mut r, &f),
            vec![(8, b"three".to_vec(), "line"), (14, b"".to_vec(), "line"), (15, b"four".to_vec(), "line")]
        );
        assert_eq!(r.line_offset(), 20);
    }

    #[test]
    fn overlong_lines_are_cut_and_skipped_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = std::fs::File::create(&path).unwrap();
        let big = vec![b'x'; 3 * CHUNK + 17];
        w.write_all(b"a\n").unwrap();
        w.write_all(&big).unwrap();
        let f = File::open(&path).unwrap();
        let mut r = LineReader::new(0, 0, 10);
        let first = collect(&mut r, &f);
        assert_eq!(first, vec![(0, b"a".to_vec(), "line")]);
        assert!(r.buf.capacity() <= 2 * CHUNK + 1024, "buffer grew to {}", r.buf.capacity());
        w.write_all(b"yy\nb\n0123456789AB\n").unwrap();
        let rest = collect(&mut r, &f);
        assert_eq!(rest[0], (2, vec![b'x'; 10], "too_long"));
        assert_eq!(rest[1], (2 + big.len() as u64 + 3, b"b".to_vec(), "line"));
        assert_eq!(rest[2], (2 + big.len() as u64 + 5, b"0123456789".to_vec(), "too_long"));
        assert_eq!(r.line_offset(), f.metadata().unwrap().len());
    }

    #[test]
    fn too_long_item_reports_full_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [vec![b'z'; CHUNK + 5], b"\nok\n".to_vec()].concat()).unwrap();
        let f = File::open(&path).unwrap();
        let mut r = LineReader::new(0, 0, 8);
        let mut items = Vec::new();
        for _ in 0..4 {
            items.extend(r.read(&f).unwrap());
        }
        assert!(
            matches!(&items[0], Item::TooLong { offset: 0, head, len, .. } if head == &vec![b'z'; 8] && *len == CHUNK as u64 + 5)
        );
        assert_eq!(items[0].end(), CHUNK as u64 + 6);
        assert!(matches!(&items[1], Item::Line { offset, .. } if *offset == CHUNK as u64 + 6));
    }

    /// The case 4: copytruncate with a writer that does not append leaves a run of NULs
    /// before its next line; the run is reported, the line keeps its own offset. A run longer
    /// than a chunk is skipped in bounded memory.
    #[test]
    fn nul_runs_are_reported_and_the_next_line_keeps_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut bytes = vec![0u8; 3 * CHUNK + 5];
        bytes.extend_from_slice(b"OrderNo:1|x\n");
        std::fs::write(&path, &bytes).unwrap();
        let f = File::open(&path).unwrap();
        let mut r = LineReader::new(0, 0, 100);
        let items = collect(&mut r, &f);
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].0, items[0].1.len(), items[0].2), (0, 3 * CHUNK + 5, "nul"));
        assert_eq!(items[1], (3 * CHUNK as u64 + 5, b"OrderNo:1|x".to_vec(), "line"));
        assert!(r.buf.capacity() <= 2 * CHUNK + 1024, "buffer grew to {}", r.buf.capacity());
    }

    /// The case 7: a BOM at offset 0 is skipped; the first line starts at 3.
    #[test]
    fn a_bom_is_skipped_at_the_start_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"\xEF\xBB\xBFOrderNo:1\n\xEF\xBB\xBFb\n").unwrap();
        let f = File::open(&path).unwrap();
        let mut r = LineReader::new(0, 0, 100);
        assert_eq!(
            collect(&mut r, &f),
            vec![(3, b"OrderNo:1".to_vec(), "line"), (13, b"\xEF\xBB\xBFb".to_vec(), "line")]
        );
    }

    /// The first line is the one after a BOM (a CSV header at 3), or the one at 0; a reader that
    /// starts past 0 (from a cursor) is past the first line, and a line at 3 in a file without a
    /// BOM is the second line.
    #[test]
    fn the_first_line_is_at_3_after_a_bom_and_at_0_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"\xEF\xBB\xBFh\nrow\n").unwrap();
        let f = File::open(&path).unwrap();
        let mut r = LineReader::new(0, 0, 100);
        let items = r.read(&f).unwrap();
        let first: Vec<bool> = items.iter().map(|i| r.is_first_line(i.offset())).collect();
        assert_eq!(first, [true, false]);
        std::fs::write(&path, b"ab\nrow\n").unwrap();
        let mut r = LineReader::new(0, 0, 100);
        let items = r.read(&File::open(&path).unwrap()).unwrap();
        let first: Vec<bool> = items.iter().map(|i| r.is_first_line(i.offset())).collect();
        assert_eq!(first, [true, false]);
        assert!(!LineReader::new(5, 0, 100).is_first_line(5));
    }

    fn adversarial_file() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"\xEF\xBB\xBF".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            (1usize..40).prop_map(|n| vec![0u8; n]),
            (1usize..40).prop_map(|n| vec![b'a'; n]),
            proptest::collection::vec(any::<u8>(), 0..20),
        ];
        proptest::collection::vec(piece, 0..30).prop_map(|p| p.concat())
    }

    proptest! {
        /// The reader, fed the file in pieces of any size, frames it exactly as the oracle's
        /// `frames` does (same lines at the same offsets, same NUL runs and over-long lines), and
        /// each item's CRC is the CRC of the file up to its end.
        #[test]
        fn the_reader_frames_as_the_oracle(file in adversarial_file(), cap in 1usize..30, cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let mut w = std::fs::File::create(&path).unwrap();
            let f = File::open(&path).unwrap();
            let mut r = LineReader::new(0, 0, cap);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(file.len() + 1)).collect();
            cuts.push(file.len());
            cuts.sort();
            let mut written = 0;
            let mut got = Vec::new();
            for cut in cuts {
                w.write_all(&file[written..cut]).unwrap();
                written = cut;
                for (offset, bytes, kind) in collect(&mut r, &f) {
                    got.push((offset, bytes, kind));
                }
            }
            let want: Vec<_> = frames(&file, cap).filter_map(|p| match p {
                Piece::Line { offset, line } => Some((offset, line.to_vec(), "line")),
                Piece::TooLong { offset, .. } => Some((offset, file[offset as usize..offset as usize + cap].to_vec(), "too_long")),
                Piece::NulRun { offset, len } => Some((offset, vec![0; len as usize], "nul")),
                Piece::Partial { .. } => None,
            }).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn item_crcs_hash_the_file_up_to_their_end(file in adversarial_file()) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            std::fs::write(&path, &file).unwrap();
            let f = File::open(&path).unwrap();
            let mut r = LineReader::new(0, 0, 16);
            loop {
                let items = r.read(&f).unwrap();
                if items.is_empty() && r.read_offset() >= file.len() as u64 { break; }
                for item in items {
                    prop_assert_eq!(item.crc(), crc32fast::hash(&file[..item.end() as usize]));
                }
            }
        }
    }
}
