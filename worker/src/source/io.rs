//! Byte streams and adapters to `AsyncRead` (for async decoders) and `std::io::Read` (for the
//! Parquet/Avro decoders running on blocking threads).

use std::io;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::AsyncBufRead;
use tokio_util::io::StreamReader;

use super::SourceError;

/// Chunks of a file, in order.
pub type ByteStream = BoxStream<'static, Result<Bytes, SourceError>>;

/// An `AsyncBufRead` over a byte stream. I/O errors wrap the [`SourceError`]; get it back with
/// [`source_error_of`].
pub fn into_async_read(stream: ByteStream) -> impl AsyncBufRead + Send + Unpin + 'static {
    StreamReader::new(stream.map(|r| r.map_err(io::Error::other)))
}

/// The [`SourceError`] inside an `io::Error` produced by [`into_async_read`] or [`StreamRead`].
pub fn source_error_of(err: &io::Error) -> Option<&SourceError> {
    err.get_ref().and_then(|inner| inner.downcast_ref::<SourceError>())
}

/// A blocking `Read` over a byte stream. Use only on a blocking thread (`spawn_blocking`): each
/// refill waits for the next chunk on the given runtime.
pub struct StreamRead {
    stream: ByteStream,
    current: Bytes,
    handle: tokio::runtime::Handle,
    position: u64,
    done: bool,
}

impl StreamRead {
    /// Reads `stream`, whose first byte is at file offset `position`.
    pub fn new(stream: ByteStream, handle: tokio::runtime::Handle, position: u64) -> Self {
        StreamRead { stream, current: Bytes::new(), handle, position, done: false }
    }

    /// File offset of the next byte.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Makes sure some bytes are buffered; false at the end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        while self.current.is_empty() {
            if self.done {
                return Ok(false);
            }
            match self.handle.block_on(self.stream.next()) {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => self.done = true,
            }
        }
        Ok(true)
    }

    /// The buffered bytes (refilled when empty); empty at the end of the stream.
    pub fn peek_chunk(&mut self) -> io::Result<&[u8]> {
        self.fill()?;
        Ok(&self.current)
    }

    /// Drops `n` buffered bytes (at most what [`Self::peek_chunk`] returned).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.current.len());
        self.current.advance(n);
        self.position += n as u64;
    }

    /// True when no byte is left.
    pub fn at_end(&mut self) -> io::Result<bool> {
        Ok(!self.fill()?)
    }
}

impl io::Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.fill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.consume(n);
        Ok(n)
    }
}
