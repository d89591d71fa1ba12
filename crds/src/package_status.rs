//! Observed state of a `DeliveryPackage`: everything needed to resume after an operator restart.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a DeliveryPackage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPackageStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// A one-word summary for `kubectl get`; conditions are the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PackagePhase>,
    /// `Planned`, `Progressing`, `Complete`, `Failed`, `Suspended`, `Waiting`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Attempt number, 1 for the first; each new `retryNonce` adds one.
    #[serde(default)]
    pub attempt: i32,
    /// The `retryNonce` the current attempt answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_retry_nonce: Option<String>,
    /// When delivery of the current attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the last record was acknowledged (or the attempt started, or the package was
    /// resumed): `progressDeadlineSeconds` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_time: Option<Time>,
    /// When the package finished (Complete or Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Counters and rates.
    #[serde(default)]
    pub progress: Progress,
    /// Shard bookkeeping: what is done, what is leased, where each lease stands.
    #[serde(default)]
    pub shards: ShardsStatus,
    /// The most frequent failure answers, most frequent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_reasons: Vec<FailureReason>,
    /// Where this package's dead letters are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_path: Option<String>,
    /// The Datum this attempt delivers with, as it was when the attempt was planned. A change
    /// to the Datum applies to the next attempt (a new `retryNonce`), never halfway through
    /// one — not even across an operator restart, which plans the attempt again from this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datum: Option<PinnedDatum>,
}

/// The parts of a Datum's spec an attempt delivers with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinnedDatum {
    /// The Datum's `metadata.generation` they were taken from.
    pub generation: i64,
    /// How the files are read.
    pub format: crate::datum::Format,
    /// How one record becomes one HTTP request.
    #[serde(default)]
    pub request: crate::datum::RequestSpec,
}

/// Lifecycle summary.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum PackagePhase {
    /// Accepted, not yet planned.
    Pending,
    /// Blocked on something outside the package (see the Waiting condition).
    Waiting,
    /// Shards planned, being delivered.
    Running,
    /// Suspended by the user.
    Suspended,
    /// Every record sent or dead-lettered within the failure policy.
    Complete,
    /// Given up (see the Failed condition's reason).
    Failed,
}

impl PackagePhase {
    /// Whether the package has finished, successfully or not.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Complete | Self::Failed)
    }
}

/// Counters and rates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Files in the package.
    pub files: i32,
    /// Bytes of all files.
    pub bytes_total: i64,
    /// Bytes whose records are all acknowledged (sent or dead-lettered).
    pub bytes_done: i64,
    /// Record counters.
    pub records: RecordCounts,
    /// `bytesDone / bytesTotal` in percent, rounded down.
    pub percent: i32,
    /// Records acknowledged per second, recent average.
    pub rate_per_second: i64,
    /// Estimated seconds left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<i64>,
    /// Estimated time left, human-readable (`1h2m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
}

/// Record counters, exact after any fault: every record is counted once, by the lease whose
/// report acknowledged it. `read == sent + deadLettered` once the package is finished, and
/// records sent again after a lease ended early (a killed worker, a revoked lease) are counted
/// once in `sent` and also in `resent`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordCounts {
    /// Records read from the files.
    pub read: i64,
    /// Distinct records the partner accepted (2xx), each counted once.
    pub sent: i64,
    /// Records the partner refused, or whose attempts ran out.
    pub failed: i64,
    /// Records that could not be decoded or turned into a request.
    pub malformed: i64,
    /// Records written to the dead-letter files: `failed + malformed`.
    pub dead_lettered: i64,
    /// Extra attempts (retries) made.
    pub retried: i64,
    /// Records sent again because the lease that had them in flight ended before their
    /// answer was known (they may have reached the partner twice; the partner sees the same
    /// idempotency key). Included once in `sent` or `deadLettered`.
    #[serde(default)]
    pub resent: i64,
}

impl RecordCounts {
    /// Adds another set of counters to this one.
    pub fn add(&mut self, other: &RecordCounts) {
        self.read += other.read;
        self.sent += other.sent;
        self.failed += other.failed;
        self.malformed += other.malformed;
        self.dead_lettered += other.dead_lettered;
        self.retried += other.retried;
        self.resent += other.resent;
    }

    /// Records acknowledged: sent or dead-lettered.
    pub fn acknowledged(&self) -> i64 {
        self.sent + self.dead_lettered
    }
}

/// Shard bookkeeping.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardsStatus {
    /// Shards planned.
    pub total: i32,
    /// Finished shard ids as run-length ranges, e.g. `0-41,43,45-60`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub completed: String,
    /// Shards under way: leased to a worker now, or started and waiting for their next lease
    /// (no worker), with where each resumes and what it has counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<ActiveShard>,
    /// Shards that failed as a whole and will be retried (or ran out of attempts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedShard>,
}

/// A leased shard.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveShard {
    /// Shard id (index in the plan).
    pub id: i32,
    /// Pod holding the lease; empty while the shard waits for its next lease.
    #[serde(default)]
    pub worker: String,
    /// Every record before this position is acknowledged; a new lease resumes here.
    pub checkpoint: i64,
    /// Every record before this position was read; of those at or after `checkpoint`, only
    /// the `unacknowledged` ones are sent again by a new lease (0: same as `checkpoint`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frontier: i64,
    /// Offsets read but not yet acknowledged when the counters were taken (records in flight).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 65536))]
    pub unacknowledged: Vec<i64>,
    /// Attempt of this shard, 1 for the first.
    pub attempt: i32,
    /// Records of this shard counted so far (across its leases); a new leader resumes the
    /// package's counters from them exactly.
    #[serde(default)]
    pub records: RecordCounts,
    /// Bytes of this shard's acknowledged records.
    #[serde(default)]
    pub bytes: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A shard that failed as a whole.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedShard {
    /// Shard id.
    pub id: i32,
    /// Attempts so far.
    pub attempts: i32,
    /// Last error.
    pub message: String,
    /// The file the shard belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// One kind of failure answer, counted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureReason {
    /// The HTTP status (`400`, `503`) or the error class (`timeout`, `connect`, `malformed`).
    pub code: String,
    /// Records that ended with it.
    pub count: i64,
    /// The start of one response body or error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
}
