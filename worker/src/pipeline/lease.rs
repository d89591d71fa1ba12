//! Delivering one lease: read the shard from its checkpoint, build each request, send it within
//! the worker's shared in-flight slots and limiter, and complete every record — sent or
//! dead-lettered — in the lease's ack tracker. Dead letters are flushed before each checkpoint is
//! published, so a published checkpoint never passes a record that is not durably accounted for.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, FuturesUnordered, Stream, StreamExt as _};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio_util::sync::CancellationToken;

use super::progress::{FailureTally, LeaseProgress};
use super::{LeaseWork, Shared};
use crate::ack::{AckTracker, Completion, Resume};
use crate::deadletter::{AnySink, DeadLetter, DeadLetterError, DeadLetterWriter, dead_letter_file_name};
use crate::protocol::LeaseCounters;
use crate::record::{Decoded, Record};
use crate::request::BuiltRequest;
use crate::send::{Delivery, Failure};
use crate::shard::{ShardError, ShardKind, read_shard_from};

/// Records handed to a lease instead of its shard's reader (tests and benchmarks).
pub type Records = BoxStream<'static, Result<Decoded, ShardError>>;

/// Why a lease stopped before the end of its shard.
#[derive(Debug, thiserror::Error)]
enum LeaseError {
    #[error("{0}")]
    Shard(#[from] ShardError),
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    #[error("record bookkeeping failed: {0}")]
    Ack(#[from] crate::ack::AckError),
    #[error("{0}")]
    Source(#[from] crate::source::SourceError),
}

struct Done {
    record: Record,
    request: BuiltRequest,
    delivery: Delivery,
    /// An earlier lease had read it and not acknowledged it.
    resend: bool,
}

/// The bookkeeping of one lease.
struct Books {
    tracker: AckTracker,
    own: LeaseCounters,
    failures: FailureTally,
    dead_letters: DeadLetterWriter<AnySink>,
}

/// How often a lease publishes its counters when that needs no I/O (no dead letter waiting to
/// be made durable). A heartbeat reports the latest published counters as of the instant it
/// leaves: published once a checkpoint (a second), they were up to a second old, and by a
/// different amount at each end of the leader's rate window — a starting package's first
/// report said 0 records sent when the lease had been sending for most of a second, and the
/// package's RATE read 16 % over its limit for a whole window.
pub const COUNTS_EVERY: Duration = Duration::from_millis(100);

/// Runs a lease to its end (or until `stop`), publishing progress on `progress`.
pub(super) async fn run(
    shared: Arc<Shared>,
    work: LeaseWork,
    records: Option<Records>,
    stop: CancellationToken,
    progress: watch::Sender<LeaseProgress>,
) {
    let base = work.base.clone();
    let mut books = match open_books(&shared, &work) {
        Ok(b) => b,
        Err(e) => {
            finish_with_error(&progress, &work, &base, e.to_string());
            shared.metrics.active_leases.dec();
            shared.lease_ended.notify_one();
            return;
        }
    };
    let result = match records {
        Some(records) => deliver(&shared, &work, records, &stop, &progress, &mut books).await,
        None => match shared.source_for(&work.shard.url) {
            Ok(source) => {
                let records = read_shard_from(source, work.shard.clone(), work.format.clone(), work.checkpoint);
                deliver(&shared, &work, records, &stop, &progress, &mut books).await
            }
            Err(e) => Err(e.into()),
        },
    };
    let close = books.dead_letters.close().await;
    let mut last = snapshot(&work, &base, &books);
    match (result, close) {
        (Ok(()), Ok(())) => {}
        (Err(e), _) => {
            tracing::warn!(shard = work.key.shard, url = %work.shard.url, error = %e, "lease failed");
            last.error = Some(e.to_string());
            last.done = false;
        }
        (Ok(()), Err(e)) => {
            last.error = Some(e.to_string());
            last.done = false;
        }
    }
    last.finished = true;
    shared.metrics.active_leases.dec();
    progress.send_replace(last);
    shared.lease_ended.notify_one();
}

fn finish_with_error(progress: &watch::Sender<LeaseProgress>, work: &LeaseWork, base: &LeaseCounters, error: String) {
    tracing::warn!(shard = work.key.shard, url = %work.shard.url, %error, "lease cannot start");
    progress.send_replace(LeaseProgress {
        checkpoint: work.checkpoint,
        frontier: work.frontier.max(work.checkpoint),
        pending: work.pending.clone(),
        counters: base.clone(),
        error: Some(error),
        finished: true,
        ..LeaseProgress::default()
    });
}

fn open_books(shared: &Shared, work: &LeaseWork) -> Result<Books, DeadLetterError> {
    let shard_id = format!("{}-shard-{:05}", work.key.package, work.key.shard);
    let name = dead_letter_file_name(&shard_id, &shared.worker, work.key.package_attempt);
    let sink = AnySink::open(&work.dead_letter_dir, &name)?;
    Ok(Books {
        tracker: AckTracker::resuming(work.checkpoint, work.frontier, &work.pending),
        own: LeaseCounters::default(),
        failures: FailureTally::default(),
        dead_letters: DeadLetterWriter::new(sink),
    })
}

fn snapshot(work: &LeaseWork, base: &LeaseCounters, books: &Books) -> LeaseProgress {
    let checkpoint = books.tracker.checkpoint();
    let mut own = books.own.clone();
    own.sent = checkpoint.counters.sent;
    own.failed = checkpoint.counters.failed;
    own.dead_lettered = checkpoint.counters.dead_lettered;
    own.retried = checkpoint.counters.retried;
    own.bytes = checkpoint.counters.bytes;
    let lag_bytes = match work.shard.kind {
        ShardKind::ByteRange { end, .. } | ShardKind::AvroBlocks { end, .. } => end.saturating_sub(checkpoint.offset),
        ShardKind::Whole | ShardKind::RowGroups { .. } | ShardKind::RowGroupRange { .. } => 0,
    };
    let mut counters = base.clone();
    counters += &own;
    LeaseProgress {
        checkpoint: checkpoint.offset,
        frontier: checkpoint.frontier,
        pending: checkpoint.pending,
        counters,
        failures: books.failures.samples(),
        done: checkpoint.complete,
        error: None,
        finished: false,
        lag_bytes,
    }
}

async fn publish(
    work: &LeaseWork,
    progress: &watch::Sender<LeaseProgress>,
    books: &mut Books,
) -> Result<(), DeadLetterError> {
    // Snapshot first: every dead letter of a record it counts was appended before it.
    let state = snapshot(work, &work.base, books);
    books.dead_letters.flush().await?;
    progress.send_replace(state);
    Ok(())
}

fn shard_end(kind: ShardKind) -> Option<u64> {
    match kind {
        ShardKind::ByteRange { end, .. } | ShardKind::AvroBlocks { end, .. } => Some(end),
        ShardKind::Whole | ShardKind::RowGroups { .. } | ShardKind::RowGroupRange { .. } => None,
    }
}

async fn deliver(
    shared: &Arc<Shared>,
    work: &LeaseWork,
    records: impl Stream<Item = Result<Decoded, ShardError>>,
    stop: &CancellationToken,
    progress: &watch::Sender<LeaseProgress>,
    books: &mut Books,
) -> Result<(), LeaseError> {
    let mut records = std::pin::pin!(records);
    let only: Option<HashSet<u64>> =
        (!work.only_offsets.is_empty()).then(|| work.only_offsets.iter().copied().collect());
    // Records an earlier lease read: between the checkpoint and its frontier, only those it
    // left pending are sent again.
    let resume = Resume::new(work.checkpoint, work.frontier, &work.pending);
    let skip = |offset: u64| resume.skips(offset) || only.as_ref().is_some_and(|o| !o.contains(&offset));
    let key_header = work.builder.key_header().clone();
    let mut gate = shared.gate.clone();
    let mut in_flight = FuturesUnordered::new();
    let mut slot: Option<OwnedSemaphorePermit> = None;
    let mut reading = true;
    let mut stopped = false;
    // The offset of the last record the reader produced (skipped or not).
    let mut last_seen: Option<u64> = None;
    let mut ticker = tokio::time::interval(shared.checkpoint_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut counts = tokio::time::interval(shared.checkpoint_interval.min(COUNTS_EVERY));
    counts.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    counts.tick().await;
    // Made once: a fresh one each turn would register with the token (a lock) every time.
    let mut cancelled = std::pin::pin!(stop.cancelled());
    while reading || !in_flight.is_empty() {
        let open = *gate.borrow_and_update();
        tokio::select! {
            biased;
            () = &mut cancelled, if reading => {
                reading = false;
                stopped = true;
            }
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                shared.metrics.in_flight.dec();
                complete(shared, done, books).await?;
            }
            _ = ticker.tick() => publish(work, progress, books).await?,
            // Between checkpoints, while every dead letter counted is durable already, the
            // counters go out with no I/O at all.
            _ = counts.tick(), if books.dead_letters.is_durable() => publish(work, progress, books).await?,
            changed = gate.changed(), if reading && !open => {
                if changed.is_err() {
                    reading = false;
                    stopped = true;
                }
            }
            permit = shared.slots.clone().acquire_owned(), if reading && open && slot.is_none() => match permit {
                Ok(p) => slot = Some(p),
                Err(_) => {
                    reading = false;
                    stopped = true;
                }
            },
            item = records.next(), if reading && open && slot.is_some() => match item {
                None => reading = false,
                Some(Err(ShardError::Unreadable { url, message })) => {
                    // The rest of the file cannot be decoded (truncated gzip, corrupt Parquet
                    // footer, bad Avro block): the same on every read, so retrying the shard
                    // cannot help. It becomes one dead letter, right after the last record read.
                    reading = false;
                    let offset = last_seen.map_or(work.checkpoint, |o| o + 1);
                    if !skip(offset) {
                        shared.metrics.records_read.inc();
                        shared.metrics.records_malformed.inc();
                        books.own.read += 1;
                        books.own.malformed += 1;
                        books.tracker.register(offset)?;
                        books.dead_letters.append(&DeadLetter::unreadable(&url, offset, &message)).await?;
                        books.failures.add("unreadable", || Some(message.clone()));
                        dead_lettered(shared, books, offset)?;
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(decoded)) => {
                    let offset = match &decoded {
                        Ok(r) => r.offset,
                        Err(m) => m.offset,
                    };
                    last_seen = Some(offset);
                    if skip(offset) {
                        continue;
                    }
                    let resent = resume.resends(offset);
                    shared.metrics.records_read.inc();
                    books.own.read += 1;
                    books.tracker.register(offset)?;
                    match decoded {
                        Err(malformed) => {
                            books.own.malformed += 1;
                            shared.metrics.records_malformed.inc();
                            books.dead_letters.append(&DeadLetter::malformed(&malformed)).await?;
                            books.failures.add("malformed", || Some(malformed.reason.clone()));
                            dead_lettered(shared, books, offset)?;
                        }
                        Ok(record) => match work.builder.build(&record) {
                            Ok(request) => {
                                let permit = slot.take();
                                let sender = shared.sender();
                                let key_header = key_header.clone();
                                let stop = stop.clone();
                                shared.metrics.in_flight.inc();
                                in_flight.push(async move {
                                    let delivery = sender.deliver_until(&request, &key_header, &stop).await;
                                    drop(permit);
                                    Done { record, request, delivery, resend: resent }
                                });
                            }
                            Err(e) => {
                                books.dead_letters.append(&DeadLetter::unbuildable(&record, &e)).await?;
                                books.failures.add("build", || Some(e.to_string()));
                                dead_lettered(shared, books, offset)?;
                            }
                        },
                    }
                }
            },
        }
    }
    drop(slot);
    if !stopped {
        let end = shard_end(work.shard.kind).unwrap_or_else(|| books.tracker.checkpoint().offset);
        books.tracker.finish(end.max(books.tracker.checkpoint().offset));
    }
    publish(work, progress, books).await?;
    Ok(())
}

fn dead_lettered(shared: &Shared, books: &mut Books, offset: u64) -> Result<(), LeaseError> {
    books.tracker.complete(offset, Completion::DeadLettered)?;
    shared.metrics.records_failed.inc();
    shared.metrics.records_dead_lettered.inc();
    Ok(())
}

async fn complete(shared: &Shared, done: Done, books: &mut Books) -> Result<(), LeaseError> {
    let Done { record, request, delivery, resend } = done;
    if resend && !matches!(delivery, Delivery::Abandoned { .. }) {
        books.own.resent += 1;
    }
    match delivery {
        Delivery::Sent { attempts, bytes, .. } => {
            let retries = u64::from(attempts.saturating_sub(1));
            books.tracker.add_retries(retries);
            shared.metrics.retries.inc_by(retries);
            books.tracker.complete(record.offset, Completion::Sent { bytes })?;
            shared.metrics.records_sent.inc();
        }
        Delivery::Failed(failure) => {
            let retries = u64::from(failure.attempts.saturating_sub(1));
            books.tracker.add_retries(retries);
            shared.metrics.retries.inc_by(retries);
            books.dead_letters.append(&DeadLetter::failed(&record, &request.idempotency_key, &failure)).await?;
            books.failures.add(&failure_code(&failure), || Some(failure_sample(&failure)));
            dead_lettered(shared, books, record.offset)?;
        }
        Delivery::Abandoned { attempts } => {
            // Left pending: the checkpoint stays below it and the next lease reads it again, so
            // it is not counted as read here either.
            let retries = u64::from(attempts.saturating_sub(1));
            books.tracker.add_retries(retries);
            shared.metrics.retries.inc_by(retries);
            books.own.read = books.own.read.saturating_sub(1);
            shared.metrics.records_abandoned.inc();
        }
    }
    Ok(())
}

/// The failure code of a record given up on: the last status, or the transport error class.
fn failure_code(failure: &Failure) -> String {
    match &failure.response {
        Some(r) => r.status.as_u16().to_string(),
        None if failure.error.contains("no complete response within") => "timeout".to_owned(),
        None => "connect".to_owned(),
    }
}

fn failure_sample(failure: &Failure) -> String {
    match &failure.response {
        Some(r) if !r.body.is_empty() => String::from_utf8_lossy(&r.body).into_owned(),
        _ => failure.error.clone(),
    }
}
