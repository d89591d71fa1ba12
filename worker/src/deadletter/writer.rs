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
    /// Bytes handed to the sink since it was last made durable.
    unsynced: bool,
}

impl<S: DeadLetterSink> DeadLetterWriter<S> {
    /// A writer over `sink`.
    pub fn new(sink: S) -> Self {
        Self { sink, buffer: BytesMut::new(), entries: 0, unsynced: false }
    }

    /// Adds one entry (written out when the buffer is large, and on every flush).
    pub async fn append(&mut self, entry: &DeadLetter) -> Result<(), DeadLetterError> {
        let line = serde_json::to_vec(entry)?;
        self.buffer.extend_from_slice(&line);
        self.buffer.extend_from_slice(b"\n");
        self.entries += 1;
        if self.buffer.len() >= WRITE_AT {
            self.unsynced = true;
            self.sink.write(self.buffer.split().freeze()).await?;
        }
        Ok(())
    }

    /// Every entry appended so far is durable: nothing buffered, nothing written since the
    /// last flush.
    pub fn is_durable(&self) -> bool {
        self.buffer.is_empty() && !self.unsynced
    }

    /// Writes out the buffer and makes it durable. With nothing new since the last flush it
    /// does nothing (an HDFS `hsync` of nothing is still a round trip to every datanode).
    pub async fn flush(&mut self) -> Result<(), DeadLetterError> {
        if self.is_durable() {
            return Ok(());
        }
        if !self.buffer.is_empty() {
            self.unsynced = true;
            self.sink.write(self.buffer.split().freeze()).await?;
        }
        self.sink.flush().await?;
        self.unsynced = false;
        Ok(())
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;

    /// A sink that counts what it is asked to do.
    #[derive(Debug, Default)]
    struct Counting {
        written: Vec<Bytes>,
        flushes: u32,
    }

    impl DeadLetterSink for Counting {
        async fn write(&mut self, data: Bytes) -> Result<(), DeadLetterError> {
            self.written.push(data);
            Ok(())
        }
        async fn flush(&mut self) -> Result<(), DeadLetterError> {
            self.flushes += 1;
            Ok(())
        }
        async fn close(&mut self) -> Result<(), DeadLetterError> {
            Ok(())
        }
    }

    fn entry(offset: u64) -> DeadLetter {
        DeadLetter {
            record: serde_json::json!({ "id": offset }),
            file: "hdfs://nn/x.jsonl".into(),
            offset,
            idempotency_key: None,
            status: Some(400),
            headers: BTreeMap::new(),
            body: None,
            attempts: 1,
            error: "refused".into(),
            time: "2026-12-04T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn a_flush_with_nothing_new_costs_no_sync() {
        let mut w = DeadLetterWriter::new(Counting::default());
        assert!(w.is_durable(), "nothing appended yet");
        w.flush().await.expect("flush");
        assert_eq!(w.sink().flushes, 0);

        w.append(&entry(1)).await.expect("append");
        assert!(!w.is_durable(), "buffered, not written");
        w.flush().await.expect("flush");
        assert!(w.is_durable());
        assert_eq!((w.sink().written.len(), w.sink().flushes), (1, 1));

        // Once a file exists, a flush every checkpoint with nothing new is not an hsync.
        w.flush().await.expect("flush");
        w.flush().await.expect("flush");
        assert_eq!(w.sink().flushes, 1);
        assert_eq!(w.entries(), 1);
    }

    #[tokio::test]
    async fn a_batch_written_early_is_not_durable_until_flushed() {
        let mut w = DeadLetterWriter::new(Counting::default());
        let mut n = 0;
        while w.sink().written.is_empty() {
            n += 1;
            w.append(&entry(n)).await.expect("append");
        }
        // The buffer went out at WRITE_AT bytes: written, but not synced.
        assert!(!w.is_durable(), "written to the sink but not synced");
        w.flush().await.expect("flush");
        assert!(w.is_durable());
        assert_eq!(w.sink().flushes, 1);
        let lines: usize = w.sink().written.iter().map(|b| b.iter().filter(|&&c| c == b'\n').count()).sum();
        assert_eq!(lines as u64, n);
    }
}
