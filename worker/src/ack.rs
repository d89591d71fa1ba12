//! Acknowledgement tracking for one shard: records are registered in read order and completed
//! (sent or dead-lettered) in any order; the checkpoint is the low watermark below which every
//! record is acknowledged, so a worker that resumes a lease skips exactly those records.
//!
//! Only the records still pending are stored, so memory is bounded by the records in flight,
//! not by how far completions run ahead of a slow record.

use std::collections::BTreeSet;

/// Why a registration or completion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// Offsets must be registered in strictly increasing order.
    #[error("record at offset {offset} registered after offset {last}: offsets must increase")]
    OutOfOrder { offset: u64, last: u64 },
    /// The record was never registered or was already completed.
    #[error("record at offset {0} is not pending")]
    NotPending(u64),
}

/// How a record was completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Accepted by the partner (2xx); `bytes` of body were sent.
    Sent { bytes: u64 },
    /// Given up on and written to the dead-letter sink.
    DeadLettered,
    /// Given up on, but the dead-letter write itself failed (the record is lost to the DLQ).
    Failed,
}

/// Counters of a shard, reported with every checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckCounters {
    /// Records accepted by the partner.
    pub sent: u64,
    /// Records given up on (every dead-lettered record, plus any whose dead letter failed).
    pub failed: u64,
    /// Records written to the dead-letter sink.
    pub dead_lettered: u64,
    /// Attempts beyond the first, over all records.
    pub retried: u64,
    /// Body bytes of records accepted by the partner.
    pub bytes: u64,
}

impl AckCounters {
    /// The counters accrued since `earlier` (for heartbeat deltas).
    pub fn since(&self, earlier: &AckCounters) -> AckCounters {
        AckCounters {
            sent: self.sent.saturating_sub(earlier.sent),
            failed: self.failed.saturating_sub(earlier.failed),
            dead_lettered: self.dead_lettered.saturating_sub(earlier.dead_lettered),
            retried: self.retried.saturating_sub(earlier.retried),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

/// A checkpoint: every record with an offset below `offset` is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The low watermark: resume by skipping records whose offset is below it.
    pub offset: u64,
    /// Every record below it was registered; between `offset` and here only `pending` are
    /// not acknowledged, so a new lease may skip the others.
    pub frontier: u64,
    /// Registered, not acknowledged, in increasing order (bounded by the records in flight).
    pub pending: Vec<u64>,
    /// True when the shard is finished and every record is acknowledged.
    pub complete: bool,
    /// Counters since the tracker was created.
    pub counters: AckCounters,
}

/// Where a lease resumes its shard: records before `checkpoint` are acknowledged, and so are
/// those before `frontier` except `pending` (an earlier lease read them and did not finish).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    pub checkpoint: u64,
    pub frontier: u64,
    pub pending: std::collections::HashSet<u64>,
}

impl Resume {
    /// The resume point of a lease grant.
    pub fn new(checkpoint: u64, frontier: u64, pending: &[u64]) -> Self {
        Self { checkpoint, frontier: frontier.max(checkpoint), pending: pending.iter().copied().collect() }
    }

    /// Whether the record at `offset` is already acknowledged (the reader skips it).
    pub fn skips(&self, offset: u64) -> bool {
        offset < self.checkpoint || (offset < self.frontier && !self.pending.contains(&offset))
    }

    /// Whether the record at `offset` was read by an earlier lease and not acknowledged (it
    /// is sent again, and counted as `resent`).
    pub fn resends(&self, offset: u64) -> bool {
        self.pending.contains(&offset)
    }
}

/// The low-watermark tracker of one shard.
#[derive(Debug, Clone)]
pub struct AckTracker {
    start: u64,
    inherited_frontier: u64,
    /// Inherited pending records this lease has not read yet (already in `pending`).
    unread: BTreeSet<u64>,
    end: Option<u64>,
    last: Option<u64>,
    pending: BTreeSet<u64>,
    counters: AckCounters,
}

impl AckTracker {
    /// A tracker for a shard whose first unacknowledged position is `start` (the shard's start
    /// or the checkpoint it resumes from).
    pub fn new(start: u64) -> Self {
        Self::resuming(start, start, &[])
    }

    /// A tracker resuming at `start` after an earlier lease that read up to `frontier` and
    /// left `pending` unacknowledged: the records it acknowledged in between are skipped by
    /// the reader, so the frontier reported never falls below the inherited one, and the
    /// inherited pending records stay pending — holding the checkpoint back and listed in every
    /// report — until this lease reads and acknowledges them, however early it stops.
    pub fn resuming(start: u64, frontier: u64, pending: &[u64]) -> Self {
        let frontier = frontier.max(start);
        let inherited: BTreeSet<u64> = pending.iter().copied().filter(|&o| o >= start && o < frontier).collect();
        Self {
            start,
            inherited_frontier: frontier,
            end: None,
            last: None,
            pending: inherited.clone(),
            unread: inherited,
            counters: AckCounters::default(),
        }
    }

    /// Registers the next record read, in read order.
    pub fn register(&mut self, offset: u64) -> Result<(), AckError> {
        if let Some(last) = self.last
            && offset <= last
        {
            return Err(AckError::OutOfOrder { offset, last });
        }
        self.last = Some(offset);
        if !self.unread.remove(&offset) {
            self.pending.insert(offset);
        }
        Ok(())
    }

    /// Completes a pending record, in any order.
    pub fn complete(&mut self, offset: u64, how: Completion) -> Result<(), AckError> {
        if !self.pending.remove(&offset) {
            return Err(AckError::NotPending(offset));
        }
        match how {
            Completion::Sent { bytes } => {
                self.counters.sent += 1;
                self.counters.bytes += bytes;
            }
            Completion::DeadLettered => {
                self.counters.failed += 1;
                self.counters.dead_lettered += 1;
            }
            Completion::Failed => self.counters.failed += 1,
        }
        Ok(())
    }

    /// Counts `n` retry attempts (attempts beyond a record's first).
    pub fn add_retries(&mut self, n: u64) {
        self.counters.retried += n;
    }

    /// Marks the end of the shard: no record will be registered any more. `end` is the
    /// position just past the shard (its byte range end, or one past the last ordinal).
    pub fn finish(&mut self, end: u64) {
        // An inherited pending record the reader never produced is no record (a shard's
        // records do not change): it no longer holds the shard open.
        for offset in std::mem::take(&mut self.unread) {
            self.pending.remove(&offset);
        }
        self.end = Some(end);
    }

    /// Records registered and not completed yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The current low watermark and counters.
    pub fn checkpoint(&self) -> Checkpoint {
        let offset = match (self.pending.first(), self.end, self.last) {
            (Some(&first), _, _) => first,
            (None, Some(end), _) => end,
            (None, None, Some(last)) => last + 1,
            (None, None, None) => self.start,
        };
        let complete = self.pending.is_empty() && self.end.is_some();
        let read_to = self.last.map_or(self.start, |last| last + 1);
        let frontier = read_to.max(self.inherited_frontier).max(offset);
        let pending = self.pending.iter().copied().collect();
        Checkpoint { offset, frontier, pending, complete, counters: self.counters }
    }
}

#[cfg(test)]
#[path = "ack_tests.rs"]
mod tests;
