//! Splits a byte stream into lines, each with the offset of its first byte.
//!
//! Lines end at `\n`; a `\r` right before it is dropped too. The last line needs no
//! terminator. Each line is a [`Bytes`] slice of a shared read buffer: no copy per line.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Capacity of each read buffer.
const BUFFER: usize = 1 << 20;
/// Refill when less than this much room is left.
const MIN_ROOM: usize = 64 << 10;

/// One line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Offset of the first byte (in the — possibly decompressed — stream).
    pub offset: u64,
    /// The line without its terminator.
    pub bytes: Bytes,
}

/// Frames lines out of an `AsyncRead`.
pub struct LineFramer<R> {
    reader: R,
    buf: BytesMut,
    /// Offset of `buf[0]`.
    position: u64,
    /// `buf[..scanned]` holds no newline.
    scanned: usize,
    eof: bool,
}

impl<R: AsyncRead + Unpin> LineFramer<R> {
    /// Frames `reader`, whose first byte is at `offset`.
    pub fn new(reader: R, offset: u64) -> Self {
        LineFramer { reader, buf: BytesMut::with_capacity(BUFFER), position: offset, scanned: 0, eof: false }
    }

    /// Offset of the next line's first byte.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next line, or `None` at the end of input.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
                let end = self.scanned + i;
                let mut line = self.buf.split_to(end + 1);
                let offset = self.position;
                self.position += line.len() as u64;
                self.scanned = 0;
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                return Ok(Some(Line { offset, bytes: line.freeze() }));
            }
            self.scanned = self.buf.len();
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let mut line = self.buf.split();
                let offset = self.position;
                self.position += line.len() as u64;
                self.scanned = 0;
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                return Ok(Some(Line { offset, bytes: line.freeze() }));
            }
            self.fill().await?;
        }
    }

    /// Discards input up to and including the next `\n` (or to the end).
    pub async fn skip_line(&mut self) -> std::io::Result<()> {
        self.next_line().await.map(|_| ())
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        if self.buf.capacity() - self.buf.len() < MIN_ROOM {
            // Reuses the allocation when no line still points into it, else allocates anew.
            self.buf.reserve(BUFFER.max(self.buf.len() * 2) - self.buf.len());
        }
        if self.reader.read_buf(&mut self.buf).await? == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8], offset: u64) -> Vec<(u64, String)> {
        let mut framer = LineFramer::new(input, offset);
        let mut out = Vec::new();
        while let Some(line) = framer.next_line().await.expect("in-memory read") {
            out.push((line.offset, String::from_utf8_lossy(&line.bytes).into_owned()));
        }
        out
    }

    #[tokio::test]
    async fn lines_carry_the_offset_of_their_first_byte() {
        let got = lines_of(b"ab\ncde\n\nf", 0).await;
        assert_eq!(got, vec![(0, "ab".into()), (3, "cde".into()), (7, "".into()), (8, "f".into())]);
    }

    #[tokio::test]
    async fn crlf_terminators_are_dropped_and_offsets_count_them() {
        let got = lines_of(b"a\r\nbb\r\nc\r", 100).await;
        assert_eq!(got, vec![(100, "a".into()), (103, "bb".into()), (107, "c".into())]);
    }

    #[tokio::test]
    async fn a_trailing_newline_does_not_make_an_extra_line() {
        assert_eq!(lines_of(b"x\n", 0).await, vec![(0, "x".into())]);
        assert_eq!(lines_of(b"", 0).await, vec![]);
    }

    #[tokio::test]
    async fn lines_longer_than_the_buffer_are_whole() {
        let long = vec![b'z'; 3 * BUFFER + 17];
        let mut input = long.clone();
        input.extend_from_slice(b"\nend");
        let got = lines_of(&input, 0).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.len(), long.len());
        assert_eq!(got[1], (long.len() as u64 + 1, "end".into()));
    }

    #[tokio::test]
    async fn skipping_a_line_moves_to_the_next_line_start() {
        let mut framer = LineFramer::new(&b"abc\ndef"[..], 10);
        framer.skip_line().await.expect("read");
        assert_eq!(framer.position(), 14);
        let line = framer.next_line().await.expect("read").expect("a line");
        assert_eq!((line.offset, &line.bytes[..]), (14, &b"def"[..]));
    }
}
