//! Types the controllers exchange with the [`Coordinator`](super::Coordinator).

use courier_api::DatumSpec;
use courier_core::protocol::{LeaseCounters, WorkerStats};
use courier_core::shard::ShardSpec;

use crate::planner::Millis;

/// A package identified by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey { namespace: namespace.into(), name: name.into() }
    }
}

/// One planned shard and its size in bytes (for progress and backlog).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedShard {
    pub spec: ShardSpec,
    pub bytes: u64,
    /// Only these record offsets are sent (a FailedRecords retry re-sends the dead letters);
    /// empty = every record of the shard.
    pub only_offsets: Vec<u64>,
}

/// A shard that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedShardState {
    pub id: u32,
    /// Attempts so far.
    pub attempts: u32,
    /// Last error.
    pub message: String,
    /// True once attempts exceed the package's backoffLimit: never leased again.
    pub exhausted: bool,
    /// The file of the shard (empty when restored from a status that did not name it).
    pub url: String,
}

/// An active shard of a package as the status records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveShardState {
    pub id: u32,
    pub worker: String,
    pub checkpoint: u64,
    /// Records before it were read; those between the checkpoint and here not in `pending`
    /// are acknowledged (0: none read past the checkpoint).
    pub frontier: u64,
    /// Read, not acknowledged (counted in no counter yet).
    pub pending: Vec<u64>,
    /// Attempt of this shard, 1 for the first.
    pub attempt: u32,
    /// Counters of the shard so far (cumulative over its leases).
    pub counters: LeaseCounters,
}

/// One failure code, counted, with a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCount {
    pub code: String,
    pub count: u64,
    pub sample: Option<String>,
}

/// What a DeliveryPackage status already records, so a new leader resumes where the old one
/// stopped. Everything empty for a new package.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoredProgress {
    /// Shard ids already complete.
    pub completed: Vec<u32>,
    /// Shards that were leased: their checkpoint (resume point) and the worker holding them.
    /// The worker keeps its lease if it reports it within one lease TTL.
    pub active: Vec<ActiveShardState>,
    /// Shards that failed as a whole, with their attempts.
    pub failed: Vec<FailedShardState>,
    /// Package-wide counters as last written.
    pub counters: LeaseCounters,
    /// Failure reasons as last written.
    pub failure_reasons: Vec<FailureCount>,
}

/// A package as the controllers hand it to the coordinator: its plan and what is already done.
#[derive(Debug, Clone, PartialEq)]
pub struct PackagePlan {
    pub key: ObjectKey,
    /// `metadata.uid`: a re-created package with the same name is another package.
    pub uid: String,
    /// Destination name (same namespace).
    pub destination: String,
    /// Package attempt (`status.attempt`; a new retryNonce starts a new one).
    pub attempt: u32,
    /// Higher first.
    pub priority: i32,
    /// `metadata.creationTimestamp`: older first among equal priorities.
    pub created_unix_ms: Millis,
    pub suspended: bool,
    /// Automatic attempts of a failing shard after the first.
    pub backoff_limit: u32,
    pub datum: DatumSpec,
    /// Where dead letters go (directory URL).
    pub dead_letter_path: String,
    /// The shards, index = shard id.
    pub shards: Vec<PlannedShard>,
    /// Progress restored from status.
    pub restored: RestoredProgress,
}

/// A package's progress as the coordinator knows it, for the status writer.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageSnapshot {
    pub key: ObjectKey,
    pub uid: String,
    pub attempt: u32,
    pub counters: LeaseCounters,
    pub shards_total: u32,
    /// Completed shard ids, ascending.
    pub completed: Vec<u32>,
    /// Completed shard ids as run-length ranges (`0-41,43`).
    pub completed_ranges: String,
    pub active: Vec<ActiveShardState>,
    pub failed: Vec<FailedShardState>,
    /// Top failure reasons, most frequent first.
    pub failure_reasons: Vec<FailureCount>,
    pub bytes_total: u64,
    /// Bytes of completed shards plus bytes acknowledged in active ones.
    pub bytes_done: u64,
    /// Records per second over the recent window.
    pub records_per_second: u64,
    /// Seconds left at the current byte rate, if it can be told.
    pub eta_seconds: Option<u64>,
    /// Every shard is complete.
    pub complete: bool,
    /// Every shard is complete or has run out of attempts, and at least one ran out.
    pub failed_permanently: bool,
    pub suspended: bool,
}

/// One worker of a Destination as last heard.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRuntime {
    pub name: String,
    pub last_seen_unix_ms: Millis,
    pub demand: u32,
    pub granted_share: u32,
    pub applied_share: u32,
    pub leases: u32,
    pub draining: bool,
    pub stats: WorkerStats,
}

/// A Destination's runtime state, for its status and Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationRuntime {
    pub key: ObjectKey,
    pub generation: i64,
    /// Requests/s after AIMD.
    pub effective_rps: u32,
    /// Partner-wide pause (Retry-After), Unix ms.
    pub paused_until_unix_ms: Option<Millis>,
    /// The partner answered 429 recently or asked for a pause: condition `Throttled`.
    pub throttled: bool,
    /// Why it is throttled: `RateLimited` or `RetryAfter`.
    pub throttled_reason: Option<&'static str>,
    pub workers: Vec<WorkerRuntime>,
    /// Requests/s one worker can do, as measured (or the default).
    pub capacity_per_worker_rps: u64,
    pub backlog_records_estimate: u64,
    pub backlog_bytes: u64,
    /// Packages not yet finished.
    pub backlog_packages: u32,
    /// Shards pending or leased.
    pub leasable_shards: u32,
    pub desired_replicas: i32,
    pub desired_reason: String,
    /// The quota's period and figures, when the Destination has `requestsPerDay`.
    pub quota: Option<super::quota::QuotaFigures>,
}

/// What changed, so a controller requeues only that object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    Package(ObjectKey),
    Destination(ObjectKey),
}
