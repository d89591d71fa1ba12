//! Status (pure): a DeliveryPackage's status from the verdict of this reconcile and the
//! coordinator's snapshot.

use courier_api::conditions::{PackageConditionType as Type, PackageReason as Reason, find_condition, set_condition};
use courier_api::package::{
    ActiveShard, FailedShard, FailureReason, PackagePhase, Progress, RecordCounts, ShardsStatus,
};
use courier_api::{DeliveryPackage, DeliveryPackageStatus};
use courier_core::protocol::{LeaseCounters, PartnerView};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::progress::{ProgressFacts, Stall, stall};
use super::validate::Waiting;
use crate::coordinator::PackageSnapshot;
use crate::planner::rollup::{human_duration, percent};

/// What this reconcile found.
#[derive(Debug, Clone, Copy)]
pub enum Verdict<'a> {
    /// Blocked on the Destination or Datum.
    Waiting(&'a Waiting),
    /// Suspended before it was ever planned.
    SuspendedUnplanned,
    /// Listing the source failed for a reason worth retrying.
    SourceUnreachable(&'a str),
    /// A path or glob matched nothing.
    SourceNotFound(&'a str),
    /// Registered with the coordinator; this is its progress, how the partner answers each
    /// worker of the Destination, and what the package waits for while running (the
    /// Destination's quota used up): a stall beyond the deadline names it.
    Running { snapshot: &'a PackageSnapshot, files: Option<i32>, partner: &'a [PartnerView], waiting: Option<Reason> },
}

/// The attempt this status describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptInfo {
    pub attempt: u32,
    pub nonce: Option<String>,
    pub dead_letter_path: String,
    /// True when this reconcile started the attempt (progress of the previous one is dropped).
    pub started_now: bool,
}

/// Whether a status says the package has finished.
pub fn is_finished(status: &DeliveryPackageStatus) -> bool {
    status.phase.is_some_and(PackagePhase::is_finished)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Record counters as the API writes them.
fn record_counts(c: &LeaseCounters) -> RecordCounts {
    RecordCounts {
        read: to_i64(c.read),
        sent: to_i64(c.sent),
        failed: to_i64(c.failed),
        malformed: to_i64(c.malformed),
        dead_lettered: to_i64(c.dead_lettered),
        retried: to_i64(c.retried),
        resent: to_i64(c.resent),
    }
}

/// The progress and shard sections from a snapshot.
pub fn progress_of(snapshot: &PackageSnapshot, files: i32) -> (Progress, ShardsStatus, Vec<FailureReason>) {
    let c = &snapshot.counters;
    let progress = Progress {
        files,
        bytes_total: to_i64(snapshot.bytes_total),
        bytes_done: to_i64(snapshot.bytes_done),
        records: record_counts(c),
        percent: if snapshot.complete { 100 } else { percent(snapshot.bytes_done, snapshot.bytes_total) },
        rate_per_second: to_i64(snapshot.records_per_second),
        eta_seconds: snapshot.eta_seconds.map(to_i64),
        eta: snapshot.eta_seconds.map(human_duration),
    };
    let shards = ShardsStatus {
        total: to_i32(snapshot.shards_total),
        completed: snapshot.completed_ranges.clone(),
        active: snapshot
            .active
            .iter()
            .map(|a| ActiveShard {
                id: to_i32(a.id),
                worker: a.worker.clone(),
                checkpoint: to_i64(a.checkpoint),
                frontier: if a.frontier > a.checkpoint { to_i64(a.frontier) } else { 0 },
                unacknowledged: a.pending.iter().map(|&o| to_i64(o)).collect(),
                attempt: to_i32(a.attempt),
                records: record_counts(&a.counters),
                bytes: to_i64(a.counters.bytes),
            })
            .collect(),
        failed: snapshot
            .failed
            .iter()
            .map(|f| FailedShard {
                id: to_i32(f.id),
                attempts: to_i32(f.attempts),
                message: f.message.clone(),
                file: (!f.url.is_empty()).then(|| f.url.clone()),
            })
            .collect(),
    };
    let reasons = snapshot
        .failure_reasons
        .iter()
        .map(|f| FailureReason { code: f.code.clone(), count: to_i64(f.count), sample: f.sample.clone() })
        .collect();
    (progress, shards, reasons)
}

/// Why a running package has ended, if it has.
fn terminal(
    pkg: &DeliveryPackage,
    status: &DeliveryPackageStatus,
    snap: &PackageSnapshot,
    now: &Time,
) -> Option<(bool, Reason, String)> {
    let records = &status.progress.records;
    if snap.complete {
        let total = records.read.max(records.sent + records.dead_lettered);
        if let Some(policy) = &pkg.spec.failure_policy
            && policy.is_exceeded(records.dead_lettered, total)
        {
            let msg = format!(
                "{} of {} records dead-lettered, more than the failure policy allows",
                records.dead_lettered, total
            );
            return Some((false, Reason::TooManyFailedRecords, msg));
        }
        let reason = if records.dead_lettered > 0 { Reason::DeliveredWithFailures } else { Reason::Delivered };
        let msg = format!("{} records sent, {} dead-lettered", records.sent, records.dead_lettered);
        return Some((true, reason, msg));
    }
    if snap.failed_permanently {
        let ids: Vec<String> = snap.failed.iter().filter(|f| f.exhausted).map(|f| f.id.to_string()).collect();
        let msg = format!("shards {} failed more than backoffLimit {} times", ids.join(","), pkg.spec.backoff_limit);
        return Some((false, Reason::BackoffLimitExceeded, msg));
    }
    if let (Some(deadline), Some(start)) = (pkg.spec.active_deadline_seconds, &status.start_time)
        && now.0.as_second() - start.0.as_second() >= deadline
    {
        return Some((
            false,
            Reason::DeadlineExceeded,
            format!("not finished within activeDeadlineSeconds {deadline}"),
        ));
    }
    None
}

fn finish(
    status: &mut DeliveryPackageStatus,
    ok: bool,
    reason: Reason,
    message: String,
    generation: Option<i64>,
    now: &Time,
) {
    let conds = &mut status.conditions;
    if ok {
        set_condition(conds, Type::Complete, true, reason, message.clone(), generation, now);
        set_condition(conds, Type::Progressing, false, reason, message, generation, now);
        status.phase = Some(PackagePhase::Complete);
    } else {
        set_condition(conds, Type::Failed, true, reason, message.clone(), generation, now);
        set_condition(conds, Type::Progressing, false, reason, message, generation, now);
        status.phase = Some(PackagePhase::Failed);
    }
    status.completion_time.get_or_insert_with(|| now.clone());
}

/// The new status.
pub fn build_status(
    pkg: &DeliveryPackage,
    prior: &DeliveryPackageStatus,
    verdict: Verdict<'_>,
    attempt: &AttemptInfo,
    now: &Time,
) -> DeliveryPackageStatus {
    let generation = pkg.metadata.generation;
    let mut status = prior.clone();
    if attempt.started_now {
        status.progress = Progress::default();
        status.shards = ShardsStatus::default();
        status.failure_reasons.clear();
        status.start_time = None;
        status.completion_time = None;
        status.last_progress_time = None;
        // A new attempt pins the Datum as it is when it is planned.
        status.datum = None;
        for t in [Type::Complete, Type::Failed] {
            if find_condition(&status.conditions, t).is_some() {
                set_condition(
                    &mut status.conditions,
                    t,
                    false,
                    Reason::RetryRequested,
                    format!("attempt {} started", attempt.attempt),
                    generation,
                    now,
                );
            }
        }
    }
    status.observed_generation = generation;
    status.attempt = to_i32(attempt.attempt);
    status.observed_retry_nonce = attempt.nonce.clone();
    status.dead_letter_path = Some(attempt.dead_letter_path.clone());
    let suspended = pkg.spec.suspend;
    if suspended || find_condition(&status.conditions, Type::Suspended).is_some() {
        let (reason, msg) = if suspended { (Reason::Suspended, "spec.suspend is true") } else { (Reason::Resumed, "") };
        set_condition(&mut status.conditions, Type::Suspended, suspended, reason, msg, generation, now);
    }
    if let Verdict::Waiting(w) = verdict {
        set_condition(&mut status.conditions, Type::Waiting, true, w.reason, w.message.clone(), generation, now);
        status.phase = Some(PackagePhase::Waiting);
        // A package that had started keeps its place while it waits; past its progress
        // deadline it says so.
        if status.start_time.is_some()
            && !suspended
            && let Some(s) = stalled(pkg, &status, Some(w.reason), &[], now)
        {
            set_condition(&mut status.conditions, Type::Progressing, false, s.reason, s.message, generation, now);
        }
        return status;
    }
    if find_condition(&status.conditions, Type::Waiting).is_some() {
        set_condition(
            &mut status.conditions,
            Type::Waiting,
            false,
            Reason::Ready,
            "Destination and Datum are ready",
            generation,
            now,
        );
    }
    match verdict {
        Verdict::Waiting(_) => {}
        Verdict::SuspendedUnplanned => status.phase = Some(PackagePhase::Suspended),
        Verdict::SourceUnreachable(msg) => {
            set_condition(
                &mut status.conditions,
                Type::Planned,
                false,
                Reason::SourceUnreachable,
                msg,
                generation,
                now,
            );
            status.phase = Some(PackagePhase::Pending);
        }
        Verdict::SourceNotFound(msg) => {
            set_condition(&mut status.conditions, Type::Planned, false, Reason::SourceNotFound, msg, generation, now);
            finish(&mut status, false, Reason::SourceNotFound, msg.to_owned(), generation, now);
        }
        Verdict::Running { snapshot, files, partner, waiting } => {
            let files = files.unwrap_or(status.progress.files);
            let (progress, shards, reasons) = progress_of(snapshot, files);
            let progressed = progress.records.acknowledged() > status.progress.records.acknowledged()
                || progress.bytes_done > status.progress.bytes_done;
            if progressed || suspended || status.last_progress_time.is_none() {
                status.last_progress_time = Some(now.clone());
            }
            let planned_msg = format!("{} shards in {} files", shards.total, files);
            set_condition(&mut status.conditions, Type::Planned, true, Reason::Planned, planned_msg, generation, now);
            status.progress = progress;
            status.shards = shards;
            status.failure_reasons = reasons;
            status.start_time.get_or_insert_with(|| now.clone());
            if let Some((ok, reason, msg)) = terminal(pkg, &status, snapshot, now) {
                finish(&mut status, ok, reason, msg, generation, now);
            } else if suspended {
                set_condition(
                    &mut status.conditions,
                    Type::Progressing,
                    false,
                    Reason::Paused,
                    "suspended",
                    generation,
                    now,
                );
                status.phase = Some(PackagePhase::Suspended);
            } else if let Some(s) = stalled(pkg, &status, waiting, partner, now) {
                set_condition(&mut status.conditions, Type::Progressing, false, s.reason, s.message, generation, now);
                status.phase = Some(PackagePhase::Running);
            } else {
                let msg = format!("{}% of {} bytes", status.progress.percent, status.progress.bytes_total);
                set_condition(
                    &mut status.conditions,
                    Type::Progressing,
                    true,
                    Reason::Delivering,
                    msg,
                    generation,
                    now,
                );
                status.phase = Some(PackagePhase::Running);
            }
        }
    }
    status
}

/// The package's stall, when it has made no progress for `progressDeadlineSeconds`.
fn stalled(
    pkg: &DeliveryPackage,
    status: &DeliveryPackageStatus,
    waiting: Option<Reason>,
    partner: &[PartnerView],
    now: &Time,
) -> Option<Stall> {
    let last = status.last_progress_time.as_ref().or(status.start_time.as_ref())?;
    stall(&ProgressFacts {
        now: now.0.as_second(),
        last_progress: last.0.as_second(),
        deadline_seconds: i64::from(pkg.spec.progress_deadline_seconds),
        waiting,
        partner,
    })
}

/// Whether the phase or any condition's status or reason differs (an urgent write and an Event).
pub fn significant_change(old: &DeliveryPackageStatus, new: &DeliveryPackageStatus) -> bool {
    old.phase != new.phase
        || old.attempt != new.attempt
        || new.conditions.iter().any(|c| {
            find_condition(&old.conditions, &c.type_).is_none_or(|o| o.status != c.status || o.reason != c.reason)
        })
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
