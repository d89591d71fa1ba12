//! The producer side of a shard stream: batches records into a bounded channel.

use tokio::sync::mpsc;

use crate::record::Decoded;

use super::ShardError;

/// Records per channel message.
pub(crate) const BATCH: usize = 256;
/// Batches buffered between reader and consumer (back-pressure beyond this).
pub(crate) const CHANNEL_BATCHES: usize = 4;

pub(crate) type Item = Result<Decoded, ShardError>;

/// What travels on the channel: batches, then an explicit end so that a dead reader is told
/// apart from a finished one.
pub(crate) enum Message {
    Batch(Vec<Item>),
    End,
}

/// The consumer went away; the reader should stop.
#[derive(Debug)]
pub(crate) struct Stopped;

/// Sends a shard's records in batches; skips records before `resume_from`.
pub(crate) struct Emitter {
    tx: mpsc::Sender<Message>,
    batch: Vec<Item>,
    resume_from: u64,
}

fn offset_of(decoded: &Decoded) -> u64 {
    match decoded {
        Ok(record) => record.offset,
        Err(malformed) => malformed.offset,
    }
}

impl Emitter {
    pub(crate) fn new(tx: mpsc::Sender<Message>, resume_from: u64) -> Self {
        Emitter { tx, batch: Vec::with_capacity(BATCH), resume_from }
    }

    /// Queues one record (async producers).
    pub(crate) async fn push(&mut self, decoded: Decoded) -> Result<(), Stopped> {
        if offset_of(&decoded) < self.resume_from {
            return Ok(());
        }
        self.batch.push(Ok(decoded));
        if self.batch.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues one record (producers on blocking threads).
    pub(crate) fn blocking_push(&mut self, decoded: Decoded) -> Result<(), Stopped> {
        if offset_of(&decoded) < self.resume_from {
            return Ok(());
        }
        self.batch.push(Ok(decoded));
        if self.batch.len() >= BATCH {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.tx.blocking_send(Message::Batch(batch)).map_err(|_| Stopped)?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx.send(Message::Batch(batch)).await.map_err(|_| Stopped)
    }

    /// Sends what is queued, then the error (if any) and the end marker.
    pub(crate) async fn finish(mut self, result: Result<(), ShardError>) {
        if let Err(e) = result {
            self.batch.push(Err(e));
        }
        if self.flush().await.is_ok() {
            let _ = self.tx.send(Message::End).await;
        }
    }
}
