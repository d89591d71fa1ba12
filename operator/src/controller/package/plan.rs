//! Planning: where the package's files and dead letters are, the shard plan, and what a status
//! already records (to resume after a restart).

use std::collections::{BTreeMap, BTreeSet};

use courier_api::package::PinnedDatum;
use courier_api::{Datum, DatumSpec, DeliveryPackage, DeliveryPackageStatus};
use courier_core::format::FormatSpec;
use courier_core::protocol::LeaseCounters;
use courier_core::shard::{ShardKind, plan_shards, shard_bytes};
use courier_core::source::list_all;
use courier_source::{Source, SourceError};

use crate::coordinator::{ActiveShardState, FailedShardState, FailureCount, PlannedShard, RestoredProgress};
use crate::planner::rollup::decode_ranges;

/// Why planning failed; the source's error is kept whole.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A path or glob matched nothing: the package fails (SourceNotFound).
    #[error(transparent)]
    NotFound(SourceError),
    /// Anything else (namenode unreachable, …): retried with backoff.
    #[error(transparent)]
    Unavailable(SourceError),
}

impl From<SourceError> for PlanError {
    fn from(err: SourceError) -> Self {
        match err {
            SourceError::NotFound { .. } => PlanError::NotFound(err),
            other => PlanError::Unavailable(other),
        }
    }
}

/// The base URL of the package's filesystem (`hdfs://nn:9000` or `file://`) and its patterns
/// as full URLs.
pub fn source_patterns(pkg: &DeliveryPackage) -> (String, Vec<String>) {
    if let Some(h) = &pkg.spec.source.hdfs {
        let base = h.url.trim_end_matches('/').to_owned();
        let patterns = h.paths.iter().map(|p| format!("{base}{p}")).collect();
        (base, patterns)
    } else if let Some(f) = &pkg.spec.source.file {
        ("file://".to_owned(), f.paths.iter().map(|p| format!("file://{p}")).collect())
    } else {
        ("file://".to_owned(), Vec::new())
    }
}

/// The directory under which every attempt's dead letters go: `spec.deadLetter.path`, or
/// `_courier/dead-letter/<namespace>/<name>` under the namenode (HDFS) or under the first
/// path's directory (file://).
pub fn dead_letter_base(pkg: &DeliveryPackage) -> String {
    if let Some(dl) = &pkg.spec.dead_letter {
        return dl.path.trim_end_matches('/').to_owned();
    }
    let ns = pkg.metadata.namespace.as_deref().unwrap_or("default");
    let name = pkg.metadata.name.as_deref().unwrap_or("unnamed");
    let root = match (&pkg.spec.source.hdfs, &pkg.spec.source.file) {
        (Some(h), _) => h.url.trim_end_matches('/').to_owned(),
        (None, Some(f)) => {
            let first = f.paths.first().map(String::as_str).unwrap_or("/tmp");
            let literal_end = first.find(['*', '?', '[', '{']).unwrap_or(first.len());
            let dir = first[..literal_end].rsplit_once('/').map_or("", |(d, _)| d);
            format!("file://{dir}")
        }
        (None, None) => "file:///tmp".to_owned(),
    };
    format!("{root}/_courier/dead-letter/{ns}/{name}")
}

/// The dead-letter directory of `attempt`.
pub fn dead_letter_path(pkg: &DeliveryPackage, attempt: u32) -> String {
    format!("{}/attempt-{attempt}", dead_letter_base(pkg))
}

/// Lists the package's files (every pattern; a pattern matching nothing is an error) and cuts
/// them into shards of about `target_bytes`.
pub async fn list_and_plan(
    pkg: &DeliveryPackage,
    format: &FormatSpec,
    target_bytes: u64,
) -> Result<Vec<PlannedShard>, PlanError> {
    let (base, patterns) = source_patterns(pkg);
    let source = Source::for_url(&format!("{base}/"))?;
    let files = list_all(&source, &patterns).await?;
    let shards = plan_shards(&files, format, target_bytes);
    Ok(shards
        .into_iter()
        .map(|spec| PlannedShard { bytes: shard_bytes(&spec, &files), spec, only_offsets: Vec::new() })
        .collect())
}

/// Which attempt a reconcile works on: (attempt number, the `retryNonce` it answers, whether
/// it starts now). A changed `retryNonce` starts a new attempt once the current one has
/// finished (Complete or Failed); while it runs, the change waits — `status.observedRetryNonce`
/// keeps the old value until then. Starting over at once would re-send, with `FailedRecords`,
/// only what the unfinished attempt had dead-lettered so far, and never the records it had not
/// reached yet.
pub fn attempt_for(
    prior: &DeliveryPackageStatus,
    finished: bool,
    spec_nonce: Option<&str>,
) -> (u32, Option<String>, bool) {
    let prior_attempt = u32::try_from(prior.attempt).unwrap_or(0);
    if prior_attempt == 0 {
        return (1, spec_nonce.map(str::to_owned), false);
    }
    let changed = spec_nonce != prior.observed_retry_nonce.as_deref();
    if changed && finished {
        (prior_attempt + 1, spec_nonce.map(str::to_owned), true)
    } else {
        (prior_attempt, prior.observed_retry_nonce.clone(), false)
    }
}

/// The Datum the attempt pinned when it was planned, if `prior` is the status of that attempt.
/// An attempt delivers with that one; with none pinned yet, it pins the Datum as it is now
/// ([`pin`]).
pub fn pinned_by_attempt(prior: &DeliveryPackageStatus, attempt: u32, started_now: bool) -> Option<PinnedDatum> {
    let same_attempt = !started_now && u32::try_from(prior.attempt).ok() == Some(attempt);
    prior.datum.clone().filter(|_| same_attempt)
}

/// The parts of `datum` an attempt delivers with, as they are now.
pub fn pin(datum: &Datum) -> PinnedDatum {
    PinnedDatum {
        generation: datum.metadata.generation.unwrap_or(0),
        format: datum.spec.format.clone(),
        request: datum.spec.request.clone(),
    }
}

/// The Datum spec a pinned Datum stands for (landing plays no part in delivering a package).
pub fn pinned_spec(pinned: &PinnedDatum) -> DatumSpec {
    DatumSpec { format: pinned.format.clone(), request: pinned.request.clone(), landing: None }
}

/// What a status already records, as the coordinator takes it back.
pub fn restored_from(status: &DeliveryPackageStatus) -> RestoredProgress {
    let to_u32 = |v: i32| u32::try_from(v).unwrap_or(0);
    let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
    let r = &status.progress.records;
    RestoredProgress {
        completed: decode_ranges(&status.shards.completed).unwrap_or_default(),
        active: status
            .shards
            .active
            .iter()
            .map(|a| ActiveShardState {
                id: to_u32(a.id),
                worker: a.worker.clone(),
                checkpoint: to_u64(a.checkpoint),
                frontier: to_u64(a.frontier),
                pending: a.unacknowledged.iter().map(|&o| to_u64(o)).collect(),
                attempt: to_u32(a.attempt),
                counters: LeaseCounters {
                    read: to_u64(a.records.read),
                    sent: to_u64(a.records.sent),
                    failed: to_u64(a.records.failed),
                    malformed: to_u64(a.records.malformed),
                    dead_lettered: to_u64(a.records.dead_lettered),
                    retried: to_u64(a.records.retried),
                    bytes: to_u64(a.bytes),
                    resent: to_u64(a.records.resent),
                },
            })
            .collect(),
        failed: status
            .shards
            .failed
            .iter()
            .map(|f| FailedShardState {
                id: to_u32(f.id),
                attempts: to_u32(f.attempts),
                message: f.message.clone(),
                exhausted: false,
                url: f.file.clone().unwrap_or_default(),
            })
            .collect(),
        counters: LeaseCounters {
            read: to_u64(r.read),
            sent: to_u64(r.sent),
            failed: to_u64(r.failed),
            malformed: to_u64(r.malformed),
            dead_lettered: to_u64(r.dead_lettered),
            retried: to_u64(r.retried),
            bytes: to_u64(status.progress.bytes_done),
            resent: to_u64(r.resent),
        },
        failure_reasons: status
            .failure_reasons
            .iter()
            .map(|f| FailureCount { code: f.code.clone(), count: to_u64(f.count), sample: f.sample.clone() })
            .collect(),
    }
}

/// Dead-lettered record offsets per file URL.
pub type DeadLetterOffsets = BTreeMap<String, BTreeSet<u64>>;

/// The shards a FailedRecords retry re-sends: every shard holding a dead-lettered record, with
/// the offsets to send. Byte-range shards get only the offsets inside their range; other kinds
/// get every offset of their file (a shard sends only records it contains).
pub fn failed_record_shards(plan: &[PlannedShard], dead: &DeadLetterOffsets) -> Vec<(PlannedShard, Vec<u64>)> {
    plan.iter()
        .filter_map(|shard| {
            let offsets = dead.get(&shard.spec.url)?;
            let only: Vec<u64> = match shard.spec.kind {
                ShardKind::ByteRange { start, end } => offsets.range(start..end).copied().collect(),
                _ => offsets.iter().copied().collect(),
            };
            (!only.is_empty()).then(|| (shard.clone(), only))
        })
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
