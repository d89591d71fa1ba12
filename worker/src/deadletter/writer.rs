//! Buffers dead-letter lines and hands them to a sink in batches.

use bytes::BytesMut;

use super::entry::DeadLetter;
use super::sink::{DeadLetterError, DeadLetterSink};

/// Buffered bytes that trigger a write before the next checkpoint.
const WRITE_AT: usize = 64 * 1024;

/// Writes dead letters as JSON lines.
#[derive(Debug)]
pub struct DeadLetterWriter<S> {
    sink: S,
    buffer: BytesMut,
    entries: u64,
}

impl<S: DeadLetterSink> DeadLetterWriter<S> {
    /// A writer over `sink`.
    pub fn new(sink: S) -> Self {
        Self { sink, buffer: BytesMut::new(), entries: 0 }
    }

    /// Adds one entry (written out when the buffer is large, and on every flush).
    pub async fn append(&mut self, entry: &DeadLetter) -> Result<(), DeadLetterError> {
        let line = serde_json::to_vec(entry)?;
        self.buffer.extend_from_slice(&line);
        self.buffer.extend_from_slice(b"\n");
        self.entries += 1;
        if self.buffer.len() >= WRITE_AT {
            self.sink.write(self.buffer.split().freeze()).await?;
        }
        Ok(())
    }

    /// Writes out the buffer and makes it durable.
    pub async fn flush(&mut self) -> Result<(), DeadLetterError> {
        if !self.buffer.is_empty() {
            self.sink.write(self.buffer.split().freeze()).await?;
        }
        self.sink.flush().await
    }

    /// Flushes and closes the sink.
    pub async fn close(&mut self) -> Result<(), DeadLetterError> {
        self.flush().await?;
        self.sink.close().await
    }

    /// Entries appended so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }
}
