//! Incremental line splitting of a growing file: only complete lines come out (a trailing partial
//! line waits for its newline), and a line longer than the cap is reported cut at the cap without
//! ever being held whole in memory.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt as _;

/// Bytes read per call.
pub const CHUNK: usize = 256 * 1024;

/// A line found in the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A complete line: `range` indexes [`LineReader::bytes`]; the line starts at file `offset`.
    Line { offset: u64, range: Range<usize> },
    /// A line longer than the cap: its first `cap` bytes, its full length (without `\n`).
    TooLong { offset: u64, head: Vec<u8>, len: u64 },
}

impl Item {
    /// File offset just after the line's `\n`.
    pub fn end(&self) -> u64 {
        match self {
            Item::Line { offset, range } => offset + range.len() as u64 + 1,
            Item::TooLong { offset, len, .. } => offset + len + 1,
        }
    }
}

struct Overlong {
    offset: u64,
    head: Vec<u8>,
    len: u64,
}

pub struct LineReader {
    cap: usize,
    /// Bytes not yet split into lines; `buf[0]` is at file offset `buf_offset`.
    buf: Vec<u8>,
    buf_offset: u64,
    /// Set while skipping the rest of an over-long line.
    overlong: Option<Overlong>,
    /// Bytes of `buf` already handed out as items (dropped on the next read).
    consumed: usize,
}

impl LineReader {
    /// A reader positioned at `offset` (the start of a line).
    pub fn new(offset: u64, cap: usize) -> Self {
        Self { cap: cap.max(1), buf: Vec::with_capacity(CHUNK), buf_offset: offset, overlong: None, consumed: 0 }
    }

    /// File offset of the next byte to read.
    pub fn read_offset(&self) -> u64 {
        match &self.overlong {
            Some(o) => o.offset + o.len,
            None => self.buf_offset + self.buf.len() as u64,
        }
    }

    /// Start of the first line not yet handed out.
    pub fn line_offset(&self) -> u64 {
        match &self.overlong {
            Some(o) => o.offset,
            None => self.buf_offset + self.consumed as u64,
        }
    }

    pub fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Reads up to one chunk from `file` and returns the lines it completes (empty at EOF or
    /// while the last line is partial). Items index into this reader until the next call.
    pub fn read(&mut self, file: &File) -> std::io::Result<Vec<Item>> {
        self.buf.drain(..self.consumed);
        self.buf_offset += self.consumed as u64;
        self.consumed = 0;
        let start = self.buf.len();
        let offset = self.read_offset();
        self.buf.resize(start + CHUNK, 0);
        let n = match file.read_at(&mut self.buf[start..], offset) {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(start);
                return Err(e);
            }
        };
        self.buf.truncate(start + n);
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut items = Vec::new();
        if let Some(o) = &mut self.overlong {
            // Skip to the end of the over-long line; keep nothing but its head.
            match memchr::memchr(b'\n', &self.buf[start..]) {
                None => {
                    o.len += n as u64;
                    self.buf.truncate(start);
                    return Ok(items);
                }
                Some(i) => {
                    o.len += i as u64;
                    let Some(o) = self.overlong.take() else { return Ok(items) };
                    let resume = o.offset + o.len + 1;
                    items.push(Item::TooLong { offset: o.offset, head: o.head, len: o.len });
                    self.buf.drain(..start + i + 1);
                    self.buf_offset = resume;
                }
            }
        }
        let mut pos = 0;
        while let Some(i) = memchr::memchr(b'\n', &self.buf[pos..]) {
            let offset = self.buf_offset + pos as u64;
            if i > self.cap {
                items.push(Item::TooLong { offset, head: self.buf[pos..pos + self.cap].to_vec(), len: i as u64 });
            } else {
                items.push(Item::Line { offset, range: pos..pos + i });
            }
            pos += i + 1;
        }
        self.consumed = pos;
        let partial = self.buf.len() - pos;
        if partial > self.cap {
            // No newline within the cap: keep the head, drop the rest, skip until the newline.
            // Items already found index before `pos`, so keep those bytes until the next call.
            let offset = self.buf_offset + pos as u64;
            let head = self.buf[pos..pos + self.cap].to_vec();
            self.overlong = Some(Overlong { offset, head, len: partial as u64 });
            self.buf.truncate(pos);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn collect(reader: &mut LineReader, file: &File) -> Vec<(u64, Vec<u8>, bool)> {
        let mut out = Vec::new();
        loop {
            let items = reader.read(file).unwrap();
            if items.is_empty() && reader.read_offset() >= file.metadata().unwrap().len() {
                return out;
            }
            for item in items {
                match item {
                    Item::Line { offset, range } => out.push((offset, reader.bytes(range).to_vec(), false)),
                    Item::TooLong { offset, head, .. } => out.push((offset, head, true)),
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
        let mut r = LineReader::new(0, 100);
        assert_eq!(collect(&mut r, &f), vec![(0, b"one".to_vec(), false), (4, b"two".to_vec(), false)]);
        assert_eq!(r.line_offset(), 8);
        w.write_all(b"ee\n\nfour\n").unwrap();
        assert_eq!(
            collect(&mut r, &f),
            vec![(8, b"three".to_vec(), false), (14, b"".to_vec(), false), (15, b"four".to_vec(), false)]
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
        let mut r = LineReader::new(0, 10);
        let first = collect(&mut r, &f);
        assert_eq!(first, vec![(0, b"a".to_vec(), false)]);
        assert!(r.buf.capacity() <= 2 * CHUNK + 1024, "buffer grew to {}", r.buf.capacity());
        w.write_all(b"yy\nb\n0123456789AB\n").unwrap();
        let rest = collect(&mut r, &f);
        assert_eq!(rest[0], (2, vec![b'x'; 10], true));
        assert_eq!(rest[1], (2 + big.len() as u64 + 3, b"b".to_vec(), false));
        assert!(rest[2].2);
        assert_eq!(rest[2].1, b"0123456789".to_vec());
        assert_eq!(r.line_offset(), f.metadata().unwrap().len());
    }

    #[test]
    fn too_long_item_reports_full_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [vec![b'z'; CHUNK + 5], b"\nok\n".to_vec()].concat()).unwrap();
        let f = File::open(&path).unwrap();
        let mut r = LineReader::new(0, 8);
        let mut items = Vec::new();
        for _ in 0..4 {
            items.extend(r.read(&f).unwrap());
        }
        assert_eq!(items[0], Item::TooLong { offset: 0, head: vec![b'z'; 8], len: CHUNK as u64 + 5 });
        assert_eq!(items[0].end(), CHUNK as u64 + 6);
        assert!(matches!(&items[1], Item::Line { offset, .. } if *offset == CHUNK as u64 + 6));
    }
}
