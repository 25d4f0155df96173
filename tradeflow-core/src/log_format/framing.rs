//! What is a line (the edge contract's framing, `docs/edge.md`): the one rule the ingestor's
//! reader and the oracle both apply, so they count the same lines.
//!
//! Reading a file from its start, the bytes at the reading position are, in this order of tests:
//!
//! 1. a UTF-8 byte-order mark `EF BB BF`, only at file offset 0: skipped (the first line's
//!    identity is its own byte offset, 3);
//! 2. a run of NUL bytes (what a writer leaves after `copytruncate` when it does not append):
//!    skipped and reported with its offset and length once a non-NUL byte ends it; the line after
//!    it starts at its own offset;
//! 3. a line: up to the next `\n`, at most [`MAX_LINE_BYTES`](crate::edge::MAX_LINE_BYTES) bytes
//!    before it (a CR before the `\n` is part of those bytes; the parser strips it);
//! 4. a line that is longer: refused whole (`line_too_long`) once its `\n` arrives; the reader
//!    resumes after that `\n` — a refused line never swallows the line after it.
//!
//! Bytes after the last `\n` (or a NUL run at the end) are not yet a line: nothing is counted
//! until the writer completes them.

use crate::edge::BOM;
use crate::log_format::ParseError;

/// The reason code of a reported NUL run (the ingestor's dead letter, `tradeflow mapping check`).
pub const NUL_RUN_CODE: &str = "nul_run";

/// Why a line of `len` bytes (before its `\n`) over the `cap` is refused whole: the one
/// reason (`line_too_long`) the ingestor's dead letter and `tradeflow mapping check` give.
pub fn line_too_long(len: u64, cap: usize) -> ParseError {
    ParseError::LineTooLong { len, max: cap }
}

/// The reason given for a run of `len` NUL bytes where a line would start ([`NUL_RUN_CODE`]).
pub fn nul_run_reason(len: u64) -> String {
    format!("run of {len} NUL bytes skipped where a line would start")
}

/// File offset of a file's first line, given the file's first bytes (at least 3 of them, or all
/// it has): [`BOM`]`.len()` when the file starts with a BOM (skipped), else 0. A delimited
/// mapping's header is the line at this offset — not simply the line at offset 0 (a BOM file's
/// first line is at 3), nor any line at 3 (in a file without a BOM whose first line is 2 bytes
/// long, the line at 3 is the second).
pub fn first_line_offset(head: &[u8]) -> u64 {
    if head.starts_with(BOM) { BOM.len() as u64 } else { 0 }
}

/// What the bytes at the start of a buffer are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The byte-order mark at file offset 0: skip [`BOM`]`.len()` bytes.
    Bom,
    /// `len` NUL bytes; `complete` when a non-NUL byte follows them in the buffer (else the run
    /// may go on: more bytes are needed before it is reported).
    NulRun { len: usize, complete: bool },
    /// A complete line of `len` bytes, then its `\n` (`len + 1` bytes in all).
    Line { len: usize },
    /// No `\n` within the cap: a line longer than the cap begins here. Its end is the next `\n`.
    TooLong,
    /// Not enough bytes to tell (a partial line, or a partial BOM at offset 0).
    Incomplete,
}

/// What the bytes at the start of `buf` are. `at_file_start`: `buf[0]` is file offset 0.
/// `cap`: the longest line, in bytes before its `\n`.
pub fn next_frame(buf: &[u8], at_file_start: bool, cap: usize) -> Frame {
    if at_file_start {
        if buf.starts_with(BOM) {
            return Frame::Bom;
        }
        if !buf.is_empty() && buf.len() < BOM.len() && BOM.starts_with(buf) {
            return Frame::Incomplete;
        }
    }
    match buf.first() {
        None => return Frame::Incomplete,
        Some(0) => {
            let len = buf.iter().position(|&b| b != 0).unwrap_or(buf.len());
            return Frame::NulRun { len, complete: len < buf.len() };
        }
        Some(_) => {}
    }
    let window = &buf[..buf.len().min(cap.saturating_add(1))];
    match memchr::memchr(b'\n', window) {
        Some(len) => Frame::Line { len },
        None if buf.len() > cap => Frame::TooLong,
        None => Frame::Incomplete,
    }
}

/// One framed piece of a whole buffer (a file's bytes as they stand): see [`frames`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A line at `offset` (without its `\n`).
    Line { offset: u64, line: &'a [u8] },
    /// A NUL run skipped.
    NulRun { offset: u64, len: u64 },
    /// A line over the cap at `offset`, `len` bytes before its `\n`.
    TooLong { offset: u64, len: u64 },
    /// Bytes after the last complete piece: not yet a line.
    Partial { offset: u64, len: u64 },
}

/// Every piece of `contents` (a whole file from offset 0) in order: the oracle's reading, and
/// the reference the ingestor's incremental reader is tested against.
pub fn frames(contents: &[u8], cap: usize) -> impl Iterator<Item = Piece<'_>> {
    let mut at = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        loop {
            if done {
                return None;
            }
            let rest = &contents[at..];
            let offset = at as u64;
            let partial = |len: usize| Piece::Partial { offset, len: len as u64 };
            match next_frame(rest, at == 0, cap) {
                Frame::Bom => at += BOM.len(),
                Frame::NulRun { len, complete: true } => {
                    at += len;
                    return Some(Piece::NulRun { offset, len: len as u64 });
                }
                Frame::Line { len } => {
                    at += len + 1;
                    return Some(Piece::Line { offset, line: &rest[..len] });
                }
                Frame::TooLong => match memchr::memchr(b'\n', rest) {
                    Some(len) => {
                        at += len + 1;
                        return Some(Piece::TooLong { offset, len: len as u64 });
                    }
                    None => {
                        done = true;
                        return Some(partial(rest.len()));
                    }
                },
                Frame::NulRun { complete: false, .. } | Frame::Incomplete => {
                    done = true;
                    return (!rest.is_empty()).then(|| partial(rest.len()));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(bytes: &[u8], cap: usize) -> Vec<Piece<'_>> {
        frames(bytes, cap).collect()
    }

    #[test]
    fn bom_only_at_the_start_and_the_first_line_keeps_its_offset() {
        assert_eq!(
            pieces(b"\xEF\xBB\xBFa\nb\n", 10),
            [Piece::Line { offset: 3, line: b"a" }, Piece::Line { offset: 5, line: b"b" }]
        );
        assert_eq!(pieces(b"a\n\xEF\xBB\xBFb\n", 10)[1], Piece::Line { offset: 2, line: b"\xEF\xBB\xBFb" });
        assert_eq!(pieces(b"\xEF\xBB", 10), [Piece::Partial { offset: 0, len: 2 }]);
        assert_eq!(next_frame(b"\xEF\xBB", false, 10), Frame::Incomplete);
    }

    #[test]
    fn nul_runs_are_skipped_and_reported_and_the_next_line_counts_once() {
        let mut file = vec![0u8; 98_000];
        file.extend_from_slice(b"OrderNo:1|x\n\0\0\n");
        assert_eq!(
            pieces(&file, 1024),
            [
                Piece::NulRun { offset: 0, len: 98_000 },
                Piece::Line { offset: 98_000, line: b"OrderNo:1|x" },
                Piece::NulRun { offset: 98_012, len: 2 },
                Piece::Line { offset: 98_014, line: b"" },
            ]
        );
        // A run at the end may go on: not reported yet.
        assert_eq!(
            pieces(b"a\n\0\0", 10),
            [Piece::Line { offset: 0, line: b"a" }, Piece::Partial { offset: 2, len: 2 }]
        );
        // NULs inside a line are the line's (the parser refuses them).
        assert_eq!(pieces(b"a\0b\n", 10), [Piece::Line { offset: 0, line: b"a\0b" }]);
    }

    #[test]
    fn a_line_over_the_cap_is_refused_whole_and_never_swallows_the_next() {
        assert_eq!(
            pieces(b"0123456789\n01234567890\nok\n0123456789012", 10),
            [
                Piece::Line { offset: 0, line: b"0123456789" },
                Piece::TooLong { offset: 11, len: 11 },
                Piece::Line { offset: 23, line: b"ok" },
                Piece::Partial { offset: 26, len: 13 },
            ]
        );
        assert_eq!(next_frame(b"0123456789", false, 10), Frame::Incomplete);
        assert_eq!(next_frame(b"01234567890", false, 10), Frame::TooLong);
    }
}
