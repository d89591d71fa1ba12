//! One package in the lease table and its shards.

use std::collections::BTreeMap;

use courier_api::DatumSpec;
use courier_core::protocol::{FailureSample, LeaseCounters};
use courier_core::shard::{ShardKind, ShardSpec};

use crate::coordinator::types::{
    ActiveShardState, FailedShardState, FailureCount, ObjectKey, PackagePlan, PackageSnapshot,
};
use crate::planner::Millis;
use crate::planner::rollup::{self, RateWindow, Reason};

/// The window of a package's RATE (records acknowledged per second) and so of its ETA.
pub const RATE_WINDOW_MS: Millis = 15_000;

/// How many failure reasons a snapshot keeps.
pub const TOP_REASONS: usize = 5;

/// A live lease of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    pub worker: String,
    /// The lease epoch; `None` for a lease restored from status whose epoch only the worker
    /// knows (adopted at its first report).
    pub epoch: Option<u64>,
    pub expires: Millis,
    /// Revoked: the worker must stop; the shard waits for its final report or the expiry.
    pub revoking: bool,
}

/// Where a shard stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardState {
    Pending,
    Leased(LeaseState),
    Completed,
    /// Out of attempts.
    Failed,
}

/// A shard and its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardEntry {
    pub spec: ShardSpec,
    pub bytes: u64,
    /// Record offsets to send (empty = all), carried into every lease of the shard.
    pub only_offsets: Vec<u64>,
    pub state: ShardState,
    /// Resume position.
    pub checkpoint: u64,
    /// What the last report said was read (see `LeaseReport::frontier`), with the records
    /// still pending then: a new lease skips the rest, which `counters` already count.
    pub frontier: u64,
    pub pending: Vec<u64>,
    /// Highest cumulative counters reported for this shard (in the workers' frame: a new
    /// lease continues from them).
    pub counters: LeaseCounters,
    /// Highest epoch granted or adopted.
    pub epoch: u64,
    /// Times leased (1 for the first lease).
    pub leases: u32,
    /// Whole-shard failures so far.
    pub errors: u32,
    pub last_error: Option<String>,
    /// Failure reasons of finished leases (summed).
    pub reasons_closed: BTreeMap<String, (u64, Option<String>)>,
    /// Failure reasons of the current lease (cumulative, highest seen).
    pub reasons_current: BTreeMap<String, (u64, Option<String>)>,
    /// The package's status in the API lists the shard completed: its completion outlives this
    /// leader, and the worker that reported it may forget it (`HeartbeatResponse::settled`).
    pub completion_persisted: bool,
    /// The lease that ran out last (worker, epoch; `None` for one restored from status), while
    /// the shard waits for its next one: if that worker is heard from again before anyone else
    /// is granted the shard, it resumes its lease with everything it did meanwhile, instead of
    /// the shard being sent again from the last checkpoint known here.
    pub lapsed: Option<(String, Option<u64>)>,
}

impl ShardEntry {
    fn new(spec: ShardSpec, bytes: u64, only_offsets: Vec<u64>) -> Self {
        ShardEntry {
            spec,
            bytes,
            only_offsets,
            state: ShardState::Pending,
            checkpoint: 0,
            frontier: 0,
            pending: Vec::new(),
            counters: LeaseCounters::default(),
            epoch: 0,
            leases: 0,
            errors: 0,
            last_error: None,
            reasons_closed: BTreeMap::new(),
            reasons_current: BTreeMap::new(),
            completion_persisted: false,
            lapsed: None,
        }
    }

    /// Whether `worker`'s report of lease `epoch` is of the lease that ran out last.
    pub fn lapsed_lease_of(&self, worker: &str, epoch: u64) -> bool {
        self.lapsed.as_ref().is_some_and(|(w, e)| w == worker && e.is_none_or(|e| e == epoch))
    }

    /// Counters this shard adds to the package's base.
    pub fn contribution(&self) -> LeaseCounters {
        self.counters.clone()
    }

    /// Prepares the counters for a new lease from the checkpoint: it reads again the records
    /// the last lease had read but not acknowledged (in flight when it ended), so `read` keeps
    /// only the acknowledged ones and counts nothing twice.
    pub fn rebase_for_new_lease(&mut self) {
        let c = &mut self.counters;
        c.read = c.read.min(c.sent + c.dead_lettered);
    }

    /// Takes in the resume point of a report: its checkpoint, frontier and pending records,
    /// which belong together with the counters of the same report.
    pub fn take_resume(&mut self, checkpoint: u64, frontier: u64, pending: &[u64]) {
        if checkpoint < self.checkpoint {
            return;
        }
        self.checkpoint = checkpoint;
        self.frontier = frontier.max(checkpoint);
        self.pending = pending.iter().copied().filter(|&o| o >= checkpoint && o < self.frontier).collect();
    }

    /// Takes in cumulative counters, keeping the highest of each.
    pub fn merge_counters(&mut self, c: &LeaseCounters) {
        let s = &mut self.counters;
        s.read = s.read.max(c.read);
        s.sent = s.sent.max(c.sent);
        s.failed = s.failed.max(c.failed);
        s.malformed = s.malformed.max(c.malformed);
        s.dead_lettered = s.dead_lettered.max(c.dead_lettered);
        s.retried = s.retried.max(c.retried);
        s.bytes = s.bytes.max(c.bytes);
        s.resent = s.resent.max(c.resent);
    }

    /// Takes in the current lease's cumulative failure samples.
    pub fn merge_failures(&mut self, failures: &[FailureSample]) {
        for f in failures {
            let entry = self.reasons_current.entry(f.code.clone()).or_insert((0, None));
            entry.0 = entry.0.max(f.count);
            if entry.1.is_none() {
                entry.1 = f.sample.clone();
            }
        }
    }

    /// Ends the current lease's failure tally.
    pub fn close_failures(&mut self) {
        for (code, (count, sample)) in std::mem::take(&mut self.reasons_current) {
            let entry = self.reasons_closed.entry(code).or_insert((0, None));
            entry.0 += count;
            if entry.1.is_none() {
                entry.1 = sample;
            }
        }
    }

    /// Bytes of the shard done: all of it once complete, else what the checkpoint covers.
    pub fn bytes_done(&self) -> u64 {
        match (&self.state, &self.spec.kind) {
            (ShardState::Completed, _) => self.bytes,
            (_, ShardKind::ByteRange { start, .. } | ShardKind::AvroBlocks { start, .. }) => {
                self.checkpoint.saturating_sub(*start).min(self.bytes)
            }
            _ => self.contribution().bytes.min(self.bytes),
        }
    }

    /// Bytes of the shard left to send, when its position is a byte offset (plain text, Avro):
    /// for other kinds the checkpoint does not tell how far into the file the shard is.
    pub fn bytes_left(&self) -> Option<u64> {
        match &self.spec.kind {
            ShardKind::ByteRange { .. } | ShardKind::AvroBlocks { .. } => {
                Some(self.bytes.saturating_sub(self.bytes_done()))
            }
            _ => None,
        }
    }

    /// Whether the shard has been leased and has progress to resume from.
    pub fn started(&self) -> bool {
        self.leases > 0 && (self.frontier > 0 || self.checkpoint > 0 || self.counters != LeaseCounters::default())
    }

    /// True while the shard can still be leased or is leased.
    pub fn is_open(&self) -> bool {
        matches!(self.state, ShardState::Pending | ShardState::Leased(_))
    }
}

/// A package in the lease table.
#[derive(Debug, Clone)]
pub struct PackageEntry {
    pub key: ObjectKey,
    pub uid: String,
    pub destination: String,
    pub attempt: u32,
    pub priority: i32,
    pub created: Millis,
    pub suspended: bool,
    pub backoff_limit: u32,
    pub datum: DatumSpec,
    pub dead_letter_path: String,
    pub shards: Vec<ShardEntry>,
    /// Counters restored from status that no shard accounts for.
    pub base_counters: LeaseCounters,
    pub base_reasons: Vec<Reason>,
    pub rate: RateWindow,
}

impl PackageEntry {
    /// Builds the entry from a plan, restoring its recorded progress. Restored active shards
    /// stay reserved for their worker until `now + hold` (or it reports; see
    /// [`super::LeaseTable::hold_restored_for`] for the workers that are gone).
    pub fn from_plan(plan: PackagePlan, now: Millis, hold: Millis) -> Self {
        let PackagePlan {
            key,
            uid,
            destination,
            attempt,
            priority,
            created_unix_ms,
            suspended,
            backoff_limit,
            datum,
            dead_letter_path,
            shards,
            restored,
        } = plan;
        let mut shards: Vec<ShardEntry> =
            shards.into_iter().map(|s| ShardEntry::new(s.spec, s.bytes, s.only_offsets)).collect();
        for id in &restored.completed {
            if let Some(s) = shards.get_mut(*id as usize) {
                s.state = ShardState::Completed;
            }
        }
        for f in &restored.failed {
            if let Some(s) = shards.get_mut(f.id as usize) {
                s.errors = f.attempts;
                s.last_error = Some(f.message.clone());
                if f.exhausted || f.attempts > backoff_limit {
                    s.state = ShardState::Failed;
                }
            }
        }
        let mut base = restored.counters.clone();
        for a in &restored.active {
            let Some(s) = shards.get_mut(a.id as usize) else { continue };
            if s.state != ShardState::Pending {
                continue;
            }
            s.take_resume(a.checkpoint, a.frontier, &a.pending);
            s.leases = a.attempt;
            s.counters = a.counters.clone();
            base = base.saturating_sub(&a.counters);
            // A shard waiting for its next lease (no worker) resumes where it was, leased to
            // nobody; a leased one stays its worker's until it reports or the lease runs out.
            if !suspended && !a.worker.is_empty() {
                s.state = ShardState::Leased(LeaseState {
                    worker: a.worker.clone(),
                    epoch: None,
                    expires: now + hold,
                    revoking: false,
                });
            }
        }
        let base_reasons = restored
            .failure_reasons
            .iter()
            .map(|r| Reason { code: r.code.clone(), count: r.count, sample: r.sample.clone() })
            .collect();
        PackageEntry {
            key,
            uid,
            destination,
            attempt,
            priority,
            created: created_unix_ms,
            suspended,
            backoff_limit,
            datum,
            dead_letter_path,
            shards,
            base_counters: base,
            base_reasons,
            rate: RateWindow::new(RATE_WINDOW_MS),
        }
    }

    /// Package-wide counters.
    pub fn counters(&self) -> LeaseCounters {
        let mut total = self.base_counters.clone();
        for s in &self.shards {
            total += &s.contribution();
        }
        total
    }

    /// Records acknowledged per byte of the shards done so far (`None` before any progress).
    pub fn records_per_byte(&self) -> Option<f64> {
        let (records, bytes) = self.shards.iter().fold((0u64, 0u64), |(r, b), s| {
            let c = s.contribution();
            (r + c.sent + c.dead_lettered, b + s.bytes_done())
        });
        (records > 0 && bytes > 0).then(|| records as f64 / bytes as f64)
    }

    /// Every shard is complete.
    pub fn complete(&self) -> bool {
        self.shards.iter().all(|s| s.state == ShardState::Completed)
    }

    /// No shard left to deliver (complete or out of attempts).
    pub fn finished(&self) -> bool {
        self.shards.iter().all(|s| !s.is_open())
    }

    /// Bytes of all shards.
    pub fn bytes_total(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }

    /// Bytes done.
    pub fn bytes_done(&self) -> u64 {
        self.shards.iter().map(ShardEntry::bytes_done).sum()
    }

    /// Adds a rate sample at `now`, right after a report was taken in.
    pub fn sample_rate(&mut self, now: Millis) {
        let c = self.counters();
        let done = self.bytes_done();
        self.rate.record(now, c.sent + c.dead_lettered, done);
    }

    /// Adds a reading at `now` between reports (the rate decays when reports stop moving).
    pub fn sample_rate_clock(&mut self, now: Millis) {
        let c = self.counters();
        let done = self.bytes_done();
        self.rate.record_clock(now, c.sent + c.dead_lettered, done);
    }

    /// The progress snapshot.
    pub fn snapshot(&self) -> PackageSnapshot {
        let completed: Vec<u32> = ids(&self.shards, |s| s.state == ShardState::Completed);
        // Every shard under way: leased now, or started and waiting for its next lease (its
        // resume point and counters must survive a leader change either way).
        let active = self
            .shards
            .iter()
            .enumerate()
            .filter_map(|(id, s)| {
                let worker = match &s.state {
                    ShardState::Leased(l) => l.worker.clone(),
                    ShardState::Pending if s.started() => String::new(),
                    _ => return None,
                };
                Some(ActiveShardState {
                    id: id as u32,
                    worker,
                    checkpoint: s.checkpoint,
                    frontier: s.frontier,
                    pending: s.pending.clone(),
                    attempt: s.leases.max(1),
                    counters: s.counters.clone(),
                })
            })
            .collect();
        let failed = self
            .shards
            .iter()
            .enumerate()
            .filter(|(_, s)| s.errors > 0 && s.state != ShardState::Completed)
            .map(|(id, s)| FailedShardState {
                id: id as u32,
                attempts: s.errors,
                message: s.last_error.clone().unwrap_or_default(),
                exhausted: s.state == ShardState::Failed,
                url: s.spec.url.clone(),
            })
            .collect();
        let shard_reasons: Vec<Reason> = self
            .shards
            .iter()
            .flat_map(|s| s.reasons_closed.iter().chain(&s.reasons_current))
            .map(|(code, (count, sample))| Reason { code: code.clone(), count: *count, sample: sample.clone() })
            .collect();
        let failure_reasons = rollup::merge_reasons(self.base_reasons.iter().chain(&shard_reasons), TOP_REASONS)
            .into_iter()
            .map(|r| FailureCount { code: r.code, count: r.count, sample: r.sample })
            .collect();
        let bytes_total = self.bytes_total();
        let bytes_done = self.bytes_done();
        let complete = self.complete();
        let counters = self.counters();
        let eta_seconds =
            rollup::package_eta(counters.sent + counters.dead_lettered, bytes_done, bytes_total, &self.rate);
        PackageSnapshot {
            key: self.key.clone(),
            uid: self.uid.clone(),
            attempt: self.attempt,
            counters,
            shards_total: self.shards.len() as u32,
            completed_ranges: rollup::encode_ranges(&completed),
            completed,
            active,
            failed,
            failure_reasons,
            bytes_total,
            bytes_done,
            records_per_second: self.rate.records_per_second(),
            eta_seconds,
            complete,
            failed_permanently: self.finished() && !complete,
            suspended: self.suspended,
        }
    }
}

fn ids(shards: &[ShardEntry], pred: impl Fn(&ShardEntry) -> bool) -> Vec<u32> {
    shards.iter().enumerate().filter(|(_, s)| pred(s)).map(|(i, _)| i as u32).collect()
}
