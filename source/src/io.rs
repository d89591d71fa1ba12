//! Byte streams and their adapter to `AsyncBufRead`.

use std::io;

use bytes::Bytes;
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

/// The [`SourceError`] inside an `io::Error` produced by [`into_async_read`].
pub fn source_error_of(err: &io::Error) -> Option<&SourceError> {
    err.get_ref().and_then(|inner| inner.downcast_ref::<SourceError>())
}
