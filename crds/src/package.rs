//! `DeliveryPackage`: one batch of files of one Datum, for one Destination.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{LocalRef, is_false};
pub use crate::package_status::*;

/// One batch of HDFS files of one Datum, delivered to one Destination. Watch it with
/// `kubectl get dp`, wait for it with `kubectl wait --for=condition=Complete dp/NAME`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "courier.dev",
    version = "v1alpha1",
    kind = "DeliveryPackage",
    doc = "One batch of files of one Datum, delivered to one Destination. Wait for it with kubectl wait --for=condition=Complete.",
    namespaced,
    status = "DeliveryPackageStatus",
    shortname = "dp",
    category = "courier",
    derive = "PartialEq",
    printcolumn(name = "Destination", type_ = "string", json_path = ".spec.destinationRef.name"),
    printcolumn(name = "Datum", type_ = "string", json_path = ".spec.datumRef.name"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Progress",
        type_ = "string",
        json_path = ".status.progress.percent",
        description = "percent of bytes delivered"
    ),
    printcolumn(
        name = "Rate",
        type_ = "integer",
        json_path = ".status.progress.ratePerSecond",
        description = "records per second"
    ),
    printcolumn(name = "ETA", type_ = "string", json_path = ".status.progress.eta"),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.progress.records.deadLettered",
        description = "records dead-lettered"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.retryNonce) || size(self.retryNonce) <= 63").message("retryNonce must be at most 63 characters"))]
pub struct DeliveryPackageSpec {
    /// The Destination to deliver to. Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("destinationRef is immutable"))]
    pub destination_ref: LocalRef,
    /// The Datum describing the files. Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("datumRef is immutable"))]
    pub datum_ref: LocalRef,
    /// The files. Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("source is immutable"))]
    pub source: PackageSource,
    /// Higher first. Shards of a higher-priority package on the same Destination are leased
    /// first and may pre-empt leases of lower-priority packages.
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("self >= -1000 && self <= 1000").message("priority must be between -1000 and 1000"))]
    pub priority: i32,
    /// Attempts of a shard that fails as a whole (unreadable file, worker lost) before the
    /// package fails with BackoffLimitExceeded.
    #[serde(default = "default_backoff_limit")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0 && self <= 100").message("backoffLimit must be between 0 and 100"))]
    pub backoff_limit: i32,
    /// Fail the package (DeadlineExceeded) if it has not finished this many seconds after it
    /// started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self > 0").message("activeDeadlineSeconds must be positive"))]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds without progress (no record acknowledged) after which the package reports
    /// `Progressing=False` with why: `PartnerThrottling` (the partner answers 429),
    /// `PartnerFailing` (5xx), `PartnerUnreachable` (no connection, resets, timeouts),
    /// `DestinationSuspended` or another waiting reason, else `ProgressDeadlineExceeded`. The
    /// package keeps its place and goes on once the partner recovers; only
    /// `activeDeadlineSeconds` fails it. As Deployment's field of the same name, 600 by default.
    #[serde(default = "default_progress_deadline_seconds")]
    #[x_kube(validation = kube::core::Rule::new("self > 0").message("progressDeadlineSeconds must be positive"))]
    pub progress_deadline_seconds: i32,
    /// Delete the package this many seconds after it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("ttlSecondsAfterFinished must not be negative"))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Stop leasing this package's shards; workers finish their in-flight records and the
    /// package resumes from its checkpoints when set back to false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,
    /// When dead-lettered records make the package Failed. Unset: the package completes however
    /// many records were dead-lettered (they are all accounted for in status and the
    /// dead-letter files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// Where dead-lettered records are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
    /// Change this value to start a new attempt (a GitOps-friendly retry button). A change
    /// while an attempt runs takes effect when it finishes (`status.observedRetryNonce` shows
    /// the value the current attempt answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub retry_nonce: Option<String>,
    /// What a new attempt re-sends.
    #[serde(default)]
    pub retry_scope: RetryScope,
}

fn default_backoff_limit() -> i32 {
    3
}

/// Deployment's default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

fn default_progress_deadline_seconds() -> i32 {
    DEFAULT_PROGRESS_DEADLINE_SECONDS
}

/// Exactly one of `hdfs` or `file`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.hdfs) != has(self.file)").message("source must set exactly one of hdfs or file"))]
pub struct PackageSource {
    /// Files in HDFS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdfs: Option<HdfsSource>,
    /// Files on a filesystem every worker sees at the same path (tests, demos, NFS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSource>,
}

/// Files in HDFS.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HdfsSource {
    /// The namenode or name service, e.g. `hdfs://namenode:9000` or `hdfs://prod-ns`.
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('hdfs://') || self.startsWith('viewfs://')").message("source.hdfs.url must start with hdfs:// or viewfs://"))]
    #[schemars(length(max = 2048))]
    pub url: String,
    /// Absolute paths or globs (`*`, `?`, `[abc]`, `{a,b}`), e.g. `/data/users/2026-11-25/*.jsonl.gz`.
    #[x_kube(validation = kube::core::Rule::new("size(self) > 0 && size(self) <= 1000").message("source.hdfs.paths must list 1 to 1000 paths"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(p, p.startsWith('/'))").message("source.hdfs.paths must be absolute (start with /)"))]
    #[schemars(length(max = 1000), inner(length(max = 4096)))]
    pub paths: Vec<String>,
}

/// Files on a shared filesystem.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSource {
    /// Absolute paths or globs.
    #[x_kube(validation = kube::core::Rule::new("size(self) > 0 && size(self) <= 1000").message("source.file.paths must list 1 to 1000 paths"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(p, p.startsWith('/'))").message("source.file.paths must be absolute (start with /)"))]
    #[schemars(length(max = 1000), inner(length(max = 4096)))]
    pub paths: Vec<String>,
}

/// When dead-lettered records fail the package.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.maxFailedRecords) || has(self.maxFailedPercent)").message("failurePolicy must set maxFailedRecords or maxFailedPercent"))]
pub struct FailurePolicy {
    /// More dead-lettered records than this fail the package (TooManyFailedRecords).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("failurePolicy.maxFailedRecords must not be negative"))]
    pub max_failed_records: Option<i64>,
    /// More than this percentage of records dead-lettered fails the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0 && self <= 100").message("failurePolicy.maxFailedPercent must be between 0 and 100"))]
    pub max_failed_percent: Option<i32>,
}

impl FailurePolicy {
    /// Whether `dead_lettered` of `total` records breaks this policy.
    pub fn is_exceeded(&self, dead_lettered: i64, total: i64) -> bool {
        let by_count = self.max_failed_records.is_some_and(|max| dead_lettered > max);
        let by_percent = self
            .max_failed_percent
            .is_some_and(|pct| total > 0 && dead_lettered.saturating_mul(100) > i64::from(pct).saturating_mul(total));
        by_count || by_percent
    }
}

/// Where dead letters go.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// A directory URL (`hdfs://…` or `file://…`). Default: `_courier/dead-letter/<namespace>/<name>/`
    /// under the source's namenode.
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('hdfs://') || self.startsWith('file://')").message("deadLetter.path must start with hdfs:// or file://"))]
    #[schemars(length(max = 4096))]
    pub path: String,
}

/// What a new attempt (a changed `retryNonce`) re-sends.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum RetryScope {
    /// Only the records dead-lettered by earlier attempts.
    #[default]
    FailedRecords,
    /// Every record again (same idempotency keys, so partners can de-duplicate).
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_policy_counts_and_percentages_are_upper_bounds() {
        let cases = [
            (Some(10), None, 10, 1000, false),
            (Some(10), None, 11, 1000, true),
            (None, Some(1), 10, 1000, false),
            (None, Some(1), 11, 1000, true),
            (None, Some(0), 1, 1000, true),
            (None, Some(0), 0, 0, false),
            (Some(100), Some(1), 50, 1000, true),
        ];
        for (max_records, max_percent, dead, total, exceeded) in cases {
            let policy = FailurePolicy { max_failed_records: max_records, max_failed_percent: max_percent };
            assert_eq!(policy.is_exceeded(dead, total), exceeded, "{policy:?} {dead}/{total}");
        }
    }
}
