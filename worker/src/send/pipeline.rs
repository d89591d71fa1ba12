//! The per-shard send loop: reads records, builds requests, keeps at most `max_in_flight` of
//! them in flight (reading stops while it is full), and completes each record in the ack
//! tracker once it is sent or dead-lettered. Dead letters are flushed before every checkpoint
//! is published, so a published checkpoint never passes a record that is not durably
//! accounted for.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, Stream, StreamExt as _};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::attempt::{Delivery, Sender};
use crate::ack::{AckError, AckTracker, Checkpoint, Completion};
use crate::deadletter::{DeadLetter, DeadLetterError, DeadLetterSink, DeadLetterWriter};
use crate::record::{Decoded, Record};
use crate::request::{BuiltRequest, RequestBuilder};

/// Why a shard's delivery stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("failed to read the shard: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    #[error("record bookkeeping failed: {0}")]
    Ack(#[from] AckError),
}

/// How a shard's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardOutcome {
    /// The final checkpoint (complete unless stopped).
    pub checkpoint: Checkpoint,
    /// True when `stop` ended the delivery before the end of the shard.
    pub stopped: bool,
}

/// Delivers the records of one shard.
#[derive(Debug, Clone)]
pub struct ShardDelivery {
    pub sender: Arc<Sender>,
    pub builder: Arc<RequestBuilder>,
    /// How often dead letters are flushed and the checkpoint published.
    pub checkpoint_interval: Duration,
    /// Cancelled on drain (SIGTERM, lease revoked): reading stops, requests on the wire finish,
    /// and records still waiting for the limiter or a back-off are left for the next lease.
    pub stop: CancellationToken,
    /// Where checkpoints are published (for heartbeats).
    pub progress: Option<watch::Sender<Checkpoint>>,
}

struct Done {
    record: Record,
    request: BuiltRequest,
    delivery: Delivery,
}

impl ShardDelivery {
    /// A delivery that publishes nothing and is never stopped from outside.
    pub fn new(sender: Arc<Sender>, builder: Arc<RequestBuilder>) -> Self {
        Self {
            sender,
            builder,
            checkpoint_interval: Duration::from_secs(1),
            stop: CancellationToken::new(),
            progress: None,
        }
    }

    /// Runs until `records` ends (then the shard is finished at `end`, or just past its last
    /// record when `end` is `None`) or `stop` is cancelled.
    pub async fn run<St, E, S>(
        &self,
        records: St,
        mut tracker: AckTracker,
        end: Option<u64>,
        dead_letters: &mut DeadLetterWriter<S>,
    ) -> Result<ShardOutcome, DeliverError>
    where
        St: Stream<Item = Result<Decoded, E>>,
        E: std::error::Error + Send + Sync + 'static,
        S: DeadLetterSink,
    {
        let max_in_flight = self.sender.config().max_in_flight.max(1);
        let key_header = self.builder.key_header().clone();
        let send = |record: Record, request: BuiltRequest| {
            let (sender, key_header) = (&self.sender, &key_header);
            async move {
                let delivery = sender.deliver_until(&request, key_header, &self.stop).await;
                Done { record, request, delivery }
            }
        };
        let mut records = std::pin::pin!(records);
        let mut in_flight = FuturesUnordered::new();
        let mut reading = true;
        let mut stopped = false;
        let mut ticker = tokio::time::interval(self.checkpoint_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        while reading || !in_flight.is_empty() {
            tokio::select! {
                biased;
                () = self.stop.cancelled(), if reading => {
                    reading = false;
                    stopped = true;
                }
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    complete(done, &mut tracker, dead_letters).await?;
                }
                _ = ticker.tick() => {
                    self.publish(&tracker, dead_letters).await?;
                }
                item = records.next(), if reading && in_flight.len() < max_in_flight => match item {
                    None => reading = false,
                    Some(Err(e)) => return Err(DeliverError::Source(Box::new(e))),
                    Some(Ok(Err(malformed))) => {
                        tracker.register(malformed.offset)?;
                        dead_letters.append(&DeadLetter::malformed(&malformed)).await?;
                        tracker.complete(malformed.offset, Completion::DeadLettered)?;
                    }
                    Some(Ok(Ok(record))) => {
                        tracker.register(record.offset)?;
                        match self.builder.build(&record) {
                            Ok(request) => in_flight.push(send(record, request)),
                            Err(e) => {
                                dead_letters.append(&DeadLetter::unbuildable(&record, &e)).await?;
                                tracker.complete(record.offset, Completion::DeadLettered)?;
                            }
                        }
                    }
                },
            }
        }
        if !stopped {
            let end = end.unwrap_or_else(|| tracker.checkpoint().offset);
            tracker.finish(end);
        }
        let checkpoint = self.publish(&tracker, dead_letters).await?;
        Ok(ShardOutcome { checkpoint, stopped })
    }

    async fn publish<S: DeadLetterSink>(
        &self,
        tracker: &AckTracker,
        dead_letters: &mut DeadLetterWriter<S>,
    ) -> Result<Checkpoint, DeliverError> {
        // Snapshot first: every dead letter of a record it counts was appended before it.
        let checkpoint = tracker.checkpoint();
        dead_letters.flush().await?;
        if let Some(progress) = &self.progress {
            progress.send_replace(checkpoint);
        }
        Ok(checkpoint)
    }
}

async fn complete<S: DeadLetterSink>(
    done: Done,
    tracker: &mut AckTracker,
    dead_letters: &mut DeadLetterWriter<S>,
) -> Result<(), DeliverError> {
    let Done { record, request, delivery } = done;
    match delivery {
        Delivery::Sent { attempts, bytes, .. } => {
            tracker.add_retries(u64::from(attempts.saturating_sub(1)));
            tracker.complete(record.offset, Completion::Sent { bytes })?;
        }
        Delivery::Failed(failure) => {
            tracker.add_retries(u64::from(failure.attempts.saturating_sub(1)));
            dead_letters.append(&DeadLetter::failed(&record, &request.idempotency_key, &failure)).await?;
            tracker.complete(record.offset, Completion::DeadLettered)?;
        }
        Delivery::Abandoned { attempts } => {
            // Left pending, so the checkpoint stays below it.
            tracker.add_retries(u64::from(attempts.saturating_sub(1)));
        }
    }
    Ok(())
}
