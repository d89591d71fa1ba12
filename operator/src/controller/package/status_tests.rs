use super::*;
use courier_api::conditions::{PackageReason, is_condition_true};
use courier_core::protocol::LeaseCounters;

use crate::coordinator::{ActiveShardState, FailedShardState, FailureCount, ObjectKey};

fn package(extra: &str) -> DeliveryPackage {
    serde_norway::from_str(&format!(
        "apiVersion: courier.dev/v1alpha1\nkind: DeliveryPackage\nmetadata: {{ name: p, namespace: ns, generation: 2 }}\nspec:\n  destinationRef: {{ name: d }}\n  datumRef: {{ name: u }}\n  source: {{ file: {{ paths: [\"/in/*.jsonl\"] }} }}\n{extra}"
    ))
    .expect("valid package")
}

fn at(s: i64) -> Time {
    Time(jiff::Timestamp::from_second(s).expect("ts"))
}

fn attempt() -> AttemptInfo {
    AttemptInfo {
        attempt: 1,
        nonce: None,
        dead_letter_path: "file:///in/_courier/dead-letter/ns/p/attempt-1".into(),
        started_now: false,
    }
}

fn snapshot() -> PackageSnapshot {
    PackageSnapshot {
        key: ObjectKey::new("ns", "p"),
        uid: "u".into(),
        attempt: 1,
        counters: LeaseCounters { read: 60, sent: 58, dead_lettered: 2, failed: 2, bytes: 600, ..Default::default() },
        shards_total: 10,
        completed: vec![0, 1, 2, 3, 5],
        completed_ranges: "0-3,5".into(),
        active: vec![ActiveShardState {
            id: 4,
            worker: "w-1".into(),
            checkpoint: 4096,
            frontier: 0,
            pending: vec![],
            attempt: 1,
            counters: LeaseCounters::default(),
        }],
        failed: vec![],
        failure_reasons: vec![FailureCount { code: "400".into(), count: 2, sample: Some("bad".into()) }],
        bytes_total: 1000,
        bytes_done: 600,
        records_per_second: 30,
        eta_seconds: Some(90),
        complete: false,
        failed_permanently: false,
        suspended: false,
    }
}

fn cond<'a>(s: &'a DeliveryPackageStatus, t: &str) -> Option<(&'a str, &'a str)> {
    find_condition(&s.conditions, t).map(|c| (c.status.as_str(), c.reason.as_str()))
}

#[test]
fn each_waiting_reason_becomes_the_waiting_condition_and_phase() {
    for reason in [
        PackageReason::DestinationNotFound,
        PackageReason::DestinationSuspended,
        PackageReason::DestinationNotReady,
        PackageReason::DatumNotFound,
        PackageReason::DatumNotReady,
    ] {
        let w = Waiting { reason, message: "x".into() };
        let s =
            build_status(&package(""), &DeliveryPackageStatus::default(), Verdict::Waiting(&w), &attempt(), &at(10));
        assert_eq!(cond(&s, "Waiting"), Some(("True", reason.as_str())));
        assert_eq!(s.phase, Some(PackagePhase::Waiting));
        assert!(cond(&s, "Failed").is_none(), "waiting is not failing");
        assert_eq!(find_condition(&s.conditions, "Waiting").and_then(|c| c.observed_generation), Some(2));
    }
}

#[test]
fn leaving_waiting_sets_waiting_false() {
    let w = Waiting { reason: PackageReason::DatumNotFound, message: "x".into() };
    let waiting =
        build_status(&package(""), &DeliveryPackageStatus::default(), Verdict::Waiting(&w), &attempt(), &at(10));
    let running = build_status(
        &package(""),
        &waiting,
        Verdict::Running { snapshot: &snapshot(), files: Some(3), partner: &[], waiting: None },
        &attempt(),
        &at(11),
    );
    assert_eq!(cond(&running, "Waiting"), Some(("False", "Ready")));
    assert_eq!(running.phase, Some(PackagePhase::Running));
}

#[test]
fn a_running_snapshot_fills_progress_shards_and_failure_reasons() {
    let s = build_status(
        &package(""),
        &DeliveryPackageStatus::default(),
        Verdict::Running { snapshot: &snapshot(), files: Some(3), partner: &[], waiting: None },
        &attempt(),
        &at(10),
    );
    assert_eq!(cond(&s, "Planned"), Some(("True", "Planned")));
    assert_eq!(cond(&s, "Progressing"), Some(("True", "Delivering")));
    assert_eq!(s.progress.percent, 60);
    assert_eq!((s.progress.records.sent, s.progress.records.dead_lettered), (58, 2));
    assert_eq!(s.progress.eta.as_deref(), Some("1m30s"));
    assert_eq!(s.progress.files, 3);
    assert_eq!((s.shards.total, s.shards.completed.as_str()), (10, "0-3,5"));
    assert_eq!((s.shards.active[0].id, s.shards.active[0].checkpoint), (4, 4096));
    assert_eq!(s.failure_reasons[0].count, 2);
    assert_eq!(s.start_time, Some(at(10)));
    assert_eq!(s.attempt, 1);
    assert_eq!(s.dead_letter_path.as_deref(), Some("file:///in/_courier/dead-letter/ns/p/attempt-1"));
}

#[test]
fn every_shard_done_is_complete_with_completion_time() {
    let snap = PackageSnapshot { complete: true, bytes_done: 1000, ..snapshot() };
    let s = build_status(
        &package(""),
        &DeliveryPackageStatus::default(),
        Verdict::Running { snapshot: &snap, files: Some(1), partner: &[], waiting: None },
        &attempt(),
        &at(20),
    );
    assert_eq!(cond(&s, "Complete"), Some(("True", "DeliveredWithFailures")));
    assert_eq!(cond(&s, "Progressing"), Some(("False", "DeliveredWithFailures")));
    assert_eq!(s.phase, Some(PackagePhase::Complete));
    assert_eq!(s.progress.percent, 100);
    assert_eq!(s.completion_time, Some(at(20)));
    assert!(is_finished(&s));
}

#[test]
fn complete_beyond_the_failure_policy_is_failed_too_many_failed_records() {
    let snap = PackageSnapshot { complete: true, ..snapshot() };
    let pkg = package("  failurePolicy: { maxFailedRecords: 1 }\n");
    let s = build_status(
        &pkg,
        &DeliveryPackageStatus::default(),
        Verdict::Running { snapshot: &snap, files: None, partner: &[], waiting: None },
        &attempt(),
        &at(20),
    );
    assert_eq!(cond(&s, "Failed"), Some(("True", "TooManyFailedRecords")));
    assert!(cond(&s, "Complete").is_none());
    assert_eq!(s.phase, Some(PackagePhase::Failed));
}

#[test]
fn an_exhausted_shard_is_failed_backoff_limit_exceeded() {
    let snap = PackageSnapshot {
        failed_permanently: true,
        failed: vec![FailedShardState {
            id: 7,
            attempts: 4,
            message: "unreadable".into(),
            exhausted: true,
            url: String::new(),
        }],
        ..snapshot()
    };
    let s = build_status(
        &package(""),
        &DeliveryPackageStatus::default(),
        Verdict::Running { snapshot: &snap, files: None, partner: &[], waiting: None },
        &attempt(),
        &at(20),
    );
    assert_eq!(cond(&s, "Failed"), Some(("True", "BackoffLimitExceeded")));
    assert_eq!(s.shards.failed[0].id, 7);
}

#[test]
fn running_past_the_active_deadline_is_failed_deadline_exceeded() {
    let pkg = package("  activeDeadlineSeconds: 30\n");
    let first = build_status(
        &pkg,
        &DeliveryPackageStatus::default(),
        Verdict::Running { snapshot: &snapshot(), files: None, partner: &[], waiting: None },
        &attempt(),
        &at(100),
    );
    assert_eq!(first.phase, Some(PackagePhase::Running));
    let later = build_status(
        &pkg,
        &first,
        Verdict::Running { snapshot: &snapshot(), files: None, partner: &[], waiting: None },
        &attempt(),
        &at(131),
    );
    assert_eq!(cond(&later, "Failed"), Some(("True", "DeadlineExceeded")));
}

#[test]
fn an_empty_glob_is_failed_source_not_found() {
    let s = build_status(
        &package(""),
        &DeliveryPackageStatus::default(),
        Verdict::SourceNotFound("path not found: /in"),
        &attempt(),
        &at(5),
    );
    assert_eq!(cond(&s, "Failed"), Some(("True", "SourceNotFound")));
    assert_eq!(cond(&s, "Planned"), Some(("False", "SourceNotFound")));
    assert_eq!(s.phase, Some(PackagePhase::Failed));
}

#[test]
fn an_unreachable_source_is_not_failed_but_says_why() {
    let s = build_status(
        &package(""),
        &DeliveryPackageStatus::default(),
        Verdict::SourceUnreachable("cannot reach 127.0.0.1:9000"),
        &attempt(),
        &at(5),
    );
    assert_eq!(cond(&s, "Planned"), Some(("False", "SourceUnreachable")));
    assert!(cond(&s, "Failed").is_none());
    assert_eq!(s.phase, Some(PackagePhase::Pending));
}

#[test]
fn a_suspended_package_is_paused_and_says_so() {
    let pkg = package("  suspend: true\n");
    let s = build_status(
        &pkg,
        &DeliveryPackageStatus::default(),
        Verdict::Running { snapshot: &snapshot(), files: None, partner: &[], waiting: None },
        &attempt(),
        &at(5),
    );
    assert_eq!(cond(&s, "Suspended"), Some(("True", "Suspended")));
    assert_eq!(cond(&s, "Progressing"), Some(("False", "Paused")));
    assert_eq!(s.phase, Some(PackagePhase::Suspended));
    let resumed = build_status(
        &package(""),
        &s,
        Verdict::Running { snapshot: &snapshot(), files: None, partner: &[], waiting: None },
        &attempt(),
        &at(6),
    );
    assert_eq!(cond(&resumed, "Suspended"), Some(("False", "Resumed")));
    assert!(is_condition_true(&resumed.conditions, "Progressing"));
}

#[test]
fn a_new_attempt_drops_the_old_progress_and_outcome() {
    let done = build_status(
        &package(""),
        &DeliveryPackageStatus::default(),
        Verdict::Running {
            snapshot: &PackageSnapshot { complete: true, ..snapshot() },
            files: None,
            partner: &[],
            waiting: None,
        },
        &attempt(),
        &at(5),
    );
    let retry =
        AttemptInfo { attempt: 2, nonce: Some("r1".into()), dead_letter_path: "x/attempt-2".into(), started_now: true };
    let w = Waiting { reason: PackageReason::DatumNotReady, message: String::new() };
    let pinned: courier_api::package::PinnedDatum =
        serde_json::from_value(serde_json::json!({"generation": 4, "format": {"type": "JsonLines"}})).expect("pinned");
    let done = DeliveryPackageStatus { datum: Some(pinned), ..done };
    let s = build_status(&package("  retryNonce: r1\n"), &done, Verdict::Waiting(&w), &retry, &at(9));
    assert_eq!(s.attempt, 2);
    assert_eq!(s.datum, None, "the new attempt pins the Datum anew when it is planned");
    assert_eq!(s.observed_retry_nonce.as_deref(), Some("r1"));
    assert_eq!(cond(&s, "Complete"), Some(("False", "RetryRequested")));
    assert_eq!(s.shards.total, 0);
    assert!(s.completion_time.is_none());
    assert!(significant_change(&done, &s));
}

#[test]
fn active_shard_counters_survive_a_status_round_trip_so_a_new_leader_counts_exactly() {
    let mut snap = snapshot();
    let counters = LeaseCounters {
        read: 40,
        sent: 37,
        failed: 1,
        malformed: 2,
        dead_lettered: 3,
        retried: 5,
        bytes: 4000,
        resent: 0,
    };
    snap.active[0].counters = counters.clone();
    let (_, shards, _) = progress_of(&snap, 3);
    assert_eq!(shards.active[0].records.sent, 37);
    assert_eq!(shards.active[0].bytes, 4000);
    let status = DeliveryPackageStatus { shards, ..Default::default() };
    let restored = super::super::plan::restored_from(&status);
    assert_eq!(restored.active[0].counters, counters);
    assert_eq!(restored.active[0].checkpoint, 4096);
}

/// A package run through reconciles at the given instants with the same snapshot (no
/// progress), a partner answering `partner`, returning each status.
fn run_without_progress(
    extra: &str,
    times: &[i64],
    partner: &[courier_core::protocol::PartnerView],
) -> Vec<DeliveryPackageStatus> {
    let pkg = package(extra);
    let snap = snapshot();
    let mut prior = DeliveryPackageStatus::default();
    let mut out = Vec::new();
    for t in times {
        prior = build_status(
            &pkg,
            &prior,
            Verdict::Running { snapshot: &snap, files: Some(3), partner, waiting: None },
            &attempt(),
            &at(*t),
        );
        out.push(prior.clone());
    }
    out
}

#[test]
fn no_progress_for_the_deadline_is_progressing_false_with_the_partners_reason_and_progress_ends_it() {
    use courier_core::protocol::{PartnerFailure, PartnerFailureKind, PartnerView};
    let throttled = [PartnerView {
        consecutive_failures: 40,
        last_failure: Some(PartnerFailure { kind: PartnerFailureKind::Throttled, at_unix_ms: 1, detail: "429".into() }),
    }];
    let s = run_without_progress("  progressDeadlineSeconds: 30\n", &[100, 129, 130, 400], &throttled);
    assert_eq!(s[0].last_progress_time, Some(at(100)), "the start counts as progress");
    assert_eq!(cond(&s[1], "Progressing"), Some(("True", "Delivering")));
    assert_eq!(cond(&s[2], "Progressing"), Some(("False", "PartnerThrottling")));
    assert_eq!(s[2].phase, Some(PackagePhase::Running), "it keeps its place");
    assert!(cond(&s[3], "Failed").is_none(), "a stall never fails the package");
    assert_eq!(s[3].last_progress_time, Some(at(100)));
    // Records acknowledged again: Delivering, and the clock restarts.
    let pkg = package("  progressDeadlineSeconds: 30\n");
    let mut moved = snapshot();
    moved.counters.sent += 5;
    let recovered = build_status(
        &pkg,
        &s[3],
        Verdict::Running { snapshot: &moved, files: Some(3), partner: &[], waiting: None },
        &attempt(),
        &at(401),
    );
    assert_eq!(cond(&recovered, "Progressing"), Some(("True", "Delivering")));
    assert_eq!(recovered.last_progress_time, Some(at(401)));
}

#[test]
fn the_default_deadline_is_ten_minutes_and_the_active_deadline_still_fails() {
    let s = run_without_progress("", &[100, 699, 700], &[]);
    assert_eq!(cond(&s[1], "Progressing"), Some(("True", "Delivering")));
    assert_eq!(cond(&s[2], "Progressing"), Some(("False", "ProgressDeadlineExceeded")));
    let s = run_without_progress("  progressDeadlineSeconds: 30\n  activeDeadlineSeconds: 60\n", &[100, 130, 160], &[]);
    assert_eq!(cond(&s[1], "Progressing"), Some(("False", "ProgressDeadlineExceeded")));
    assert_eq!(cond(&s[2], "Failed"), Some(("True", "DeadlineExceeded")));
}

#[test]
fn a_suspended_package_does_not_stall_and_a_started_one_waiting_for_its_destination_does() {
    let s = run_without_progress("  progressDeadlineSeconds: 30\n  suspend: true\n", &[100, 200], &[]);
    assert_eq!(cond(&s[1], "Progressing"), Some(("False", "Paused")));
    assert_eq!(s[1].last_progress_time, Some(at(200)), "a pause is not a stall");
    let started = run_without_progress("  progressDeadlineSeconds: 30\n", &[100], &[]).remove(0);
    let w = Waiting { reason: PackageReason::DestinationSuspended, message: "suspended".into() };
    let pkg = package("  progressDeadlineSeconds: 30\n");
    let early = build_status(&pkg, &started, Verdict::Waiting(&w), &attempt(), &at(120));
    assert_eq!(cond(&early, "Progressing"), Some(("True", "Delivering")));
    let late = build_status(&pkg, &early, Verdict::Waiting(&w), &attempt(), &at(131));
    assert_eq!(cond(&late, "Progressing"), Some(("False", "DestinationSuspended")));
    assert_eq!(late.phase, Some(PackagePhase::Waiting));
}

#[test]
fn a_package_held_by_a_used_up_quota_waits_and_names_it_without_failing() {
    let pkg = package("  progressDeadlineSeconds: 30\n");
    let snap = snapshot();
    let waiting = Some(PackageReason::QuotaExhausted);
    let mut prior = DeliveryPackageStatus::default();
    for t in [100, 120, 131, 500] {
        prior = build_status(
            &pkg,
            &prior,
            Verdict::Running { snapshot: &snap, files: Some(3), partner: &[], waiting },
            &attempt(),
            &at(t),
        );
    }
    assert_eq!(cond(&prior, "Progressing"), Some(("False", "QuotaExhausted")));
    assert!(cond(&prior, "Failed").is_none(), "waiting for the quota is not failing");
    assert_eq!(prior.phase, Some(PackagePhase::Running));
}
