//! Finding the fields of a line: every `|` ends a field, the field's first `:` ends its key.
//!
//! The line is scanned 64 bytes at a time into two bitmasks (positions of `|` and of `:`; SSE2
//! on x86_64, a plain loop elsewhere), and fields are read off the masks. This is what makes
//! parsing run at several million lines per second (see the `log_format` benchmark).

/// One field: `bytes[start..end]`, with its first `:` at `colon` (`None`: no `:` in the field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub start: usize,
    pub colon: Option<usize>,
    pub end: usize,
}

pub(crate) struct Fields<'a> {
    bytes: &'a [u8],
    base: usize,
    pipes: u64,
    colons: u64,
    start: usize,
    colon: Option<usize>,
    done: bool,
}

impl<'a> Fields<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let (pipes, colons) = masks(bytes, 0);
        Self { bytes, base: 0, pipes, colons, start: 0, colon: None, done: false }
    }
}

impl Iterator for Fields<'_> {
    type Item = Field;

    #[inline]
    fn next(&mut self) -> Option<Field> {
        if self.done {
            return None;
        }
        loop {
            let pipe = self.pipes.trailing_zeros() as usize; // 64 when none
            if self.colon.is_none() {
                let colon = self.colons.trailing_zeros() as usize;
                if colon < pipe {
                    self.colon = Some(self.base + colon);
                }
            }
            if pipe < 64 {
                let keep = if pipe == 63 { 0 } else { !0u64 << (pipe + 1) };
                self.pipes &= keep;
                self.colons &= keep;
                let field = Field { start: self.start, colon: self.colon.take(), end: self.base + pipe };
                self.start = field.end + 1;
                return Some(field);
            }
            self.base += 64;
            if self.base >= self.bytes.len() {
                self.done = true;
                return Some(Field { start: self.start, colon: self.colon.take(), end: self.bytes.len() });
            }
            (self.pipes, self.colons) = masks(self.bytes, self.base);
        }
    }
}

/// Bitmasks of `|` and `:` in `bytes[base..base + 64]` (bytes past the end count as neither).
#[inline]
fn masks(bytes: &[u8], base: usize) -> (u64, u64) {
    let rest = &bytes[base.min(bytes.len())..];
    if rest.len() >= 64 {
        let block: &[u8; 64] = rest[..64].try_into().unwrap_or(&[0; 64]);
        masks64(block)
    } else {
        let mut block = [0u8; 64];
        block[..rest.len()].copy_from_slice(rest);
        masks64(&block)
    }
}

#[cfg(target_arch = "x86_64")]
fn masks64(block: &[u8; 64]) -> (u64, u64) {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let mut pipes = 0u64;
    let mut colons = 0u64;
    // SAFETY: SSE2 is part of the x86_64 baseline; each load reads 16 bytes inside `block`.
    unsafe {
        let pipe = _mm_set1_epi8(b'|' as i8);
        let colon = _mm_set1_epi8(b':' as i8);
        for i in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(i * 16) as *const __m128i);
            pipes |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, pipe)) as u16 as u64) << (i * 16);
            colons |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, colon)) as u16 as u64) << (i * 16);
        }
    }
    (pipes, colons)
}

#[cfg(not(target_arch = "x86_64"))]
fn masks64(block: &[u8; 64]) -> (u64, u64) {
    let mut pipes = 0u64;
    let mut colons = 0u64;
    for (i, &b) in block.iter().enumerate() {
        pipes |= ((b == b'|') as u64) << i;
        colons |= ((b == b':') as u64) << i;
    }
    (pipes, colons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious definition, to check the bitmask version against.
    fn naive(bytes: &[u8]) -> Vec<Field> {
        let mut out = Vec::new();
        let mut start = 0;
        for part in bytes.split(|&b| b == b'|') {
            let colon = part.iter().position(|&b| b == b':').map(|c| start + c);
            out.push(Field { start, colon, end: start + part.len() });
            start += part.len() + 1;
        }
        out
    }

    #[test]
    fn edges() {
        for line in [&b""[..], b"|", b"a:b", b"a:b|", b"|a:b:c|d", &[b'x'; 64], &[b'|'; 130], &[b':'; 129]] {
            assert_eq!(Fields::new(line).collect::<Vec<_>>(), naive(line), "{:?}", String::from_utf8_lossy(line));
        }
    }

    proptest! {
        #[test]
        fn matches_naive(bytes in proptest::collection::vec(prop_oneof![Just(b'|'), Just(b':'), Just(b'a'), any::<u8>()], 0..300)) {
            prop_assert_eq!(Fields::new(&bytes).collect::<Vec<_>>(), naive(&bytes));
        }
    }
}
