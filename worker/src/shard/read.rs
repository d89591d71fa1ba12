//! `read_shard`: a stream of a shard's records, produced by a reader task and pulled by the
//! consumer through a bounded channel (reading pauses while the consumer is busy).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::decode::{FormatKind, FormatSpec, avro, parquet};
use crate::source::Source;

use super::emit::{CHANNEL_BATCHES, Emitter, Item, Message};
use super::{ShardError, ShardSpec, text};

/// The records of one shard, in file order. Yields `Ok(Ok(record))`, `Ok(Err(malformed))`
/// (decoding failed; the shard goes on), or one final `Err(ShardError)` when the shard cannot
/// be read further. Dropping the stream stops the reader.
pub struct ShardStream {
    url: String,
    rx: mpsc::Receiver<Message>,
    current: std::vec::IntoIter<Item>,
    task: JoinHandle<()>,
    done: bool,
}

impl Drop for ShardStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for ShardStream {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        loop {
            if let Some(item) = self.current.next() {
                return Poll::Ready(Some(item));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Message::Batch(batch))) => self.current = batch.into_iter(),
                Poll::Ready(Some(Message::End)) => self.done = true,
                Poll::Ready(None) => {
                    self.done = true;
                    let url = self.url.clone();
                    return Poll::Ready(Some(Err(ShardError::ReaderDied { url })));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Streams all records of `spec`. Must be called inside a Tokio runtime.
pub fn read_shard(source: Source, spec: ShardSpec, format: FormatSpec) -> ShardStream {
    read_shard_from(source, spec, format, 0)
}

/// Streams the records of `spec` whose offset is at least `resume_from` (a checkpoint: the
/// offset of the first record not yet acknowledged, or any offset inside the last
/// acknowledged record). Plain text and Avro seek straight there; other shards read from their
/// start and skip.
pub fn read_shard_from(source: Source, spec: ShardSpec, format: FormatSpec, resume_from: u64) -> ShardStream {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let url = spec.url.clone();
    let emitter = Emitter::new(tx, resume_from);
    let task = match format.validate() {
        Err(e) => tokio::spawn(emitter.finish(Err(e.into()))),
        Ok(()) => match format.kind {
            FormatKind::JsonLines | FormatKind::Csv | FormatKind::Tsv => tokio::spawn(async move {
                let mut emitter = emitter;
                let result = text::read_text(&source, &spec, &format, resume_from, &mut emitter).await;
                emitter.finish(result).await;
            }),
            FormatKind::Parquet => tokio::spawn(parquet::read_shard(source, spec, format, emitter)),
            FormatKind::Avro => tokio::spawn(async move {
                let mut emitter = emitter;
                let result = avro::read_shard(&source, &spec, &format, resume_from, &mut emitter).await;
                emitter.finish(result).await;
            }),
        },
    };
    ShardStream { url, rx, current: Vec::new().into_iter(), task, done: false }
}
