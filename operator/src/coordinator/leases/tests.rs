use courier_api::DatumSpec;
use courier_core::protocol::{FailureSample, LeaseCounters, LeaseKey, LeaseReport, ShardLease};
use courier_core::shard::{ShardKind, ShardSpec};

use super::*;
use crate::coordinator::types::{
    ActiveShardState, FailedShardState, FailureCount, ObjectKey, PackagePlan, PlannedShard, RestoredProgress,
};

const TTL: u64 = 10_000;

pub(crate) fn datum() -> DatumSpec {
    serde_json::from_value(serde_json::json!({"format": {"type": "JsonLines"}})).expect("minimal datum")
}

/// A package of `shards` byte-range shards of 100 bytes each.
pub(crate) fn plan(name: &str, dest: &str, priority: i32, created: u64, shards: u32) -> PackagePlan {
    PackagePlan {
        key: ObjectKey::new("ns", name),
        uid: format!("uid-{name}"),
        destination: dest.into(),
        attempt: 1,
        priority,
        created_unix_ms: created,
        suspended: false,
        backoff_limit: 2,
        datum: datum(),
        dead_letter_path: "file:///tmp/dl".into(),
        shards: (0..shards)
            .map(|i| PlannedShard {
                only_offsets: Vec::new(),
                spec: ShardSpec {
                    url: format!("file:///data/{name}.jsonl"),
                    kind: ShardKind::ByteRange { start: u64::from(i) * 100, end: u64::from(i + 1) * 100 },
                },
                bytes: 100,
            })
            .collect(),
        restored: RestoredProgress::default(),
    }
}

fn report(lease: &ShardLease, checkpoint: u64, sent: u64) -> LeaseReport {
    LeaseReport {
        key: lease.key.clone(),
        checkpoint,
        frontier: 0,
        pending: vec![],
        counters: LeaseCounters { read: sent, sent, bytes: sent * 10, ..Default::default() },
        base: lease.counters.clone(),
        failures: vec![],
        done: false,
        error: None,
        released: false,
    }
}

/// What a new leader restores of a one-shard package whose shard 0 `worker` held, at
/// checkpoint 40 with `sent` records counted.
fn restored_lease(worker: &str, sent: u64) -> RestoredProgress {
    let counters = LeaseCounters { sent, ..Default::default() };
    RestoredProgress {
        active: vec![ActiveShardState {
            id: 0,
            worker: worker.into(),
            checkpoint: 40,
            frontier: 0,
            pending: vec![],
            attempt: 1,
            counters: counters.clone(),
        }],
        counters,
        ..Default::default()
    }
}

/// A report by a worker of package `ns/p`'s shard `shard` under lease `epoch`, granted by an
/// earlier leader (so no grant here to build it from): at `checkpoint`, `sent` records of 10
/// bytes counted from nothing.
pub(crate) fn earlier_lease_report(shard: u32, epoch: u64, checkpoint: u64, sent: u64, done: bool) -> LeaseReport {
    LeaseReport {
        key: LeaseKey {
            namespace: "ns".into(),
            package: "p".into(),
            package_uid: "uid-p".into(),
            shard,
            package_attempt: 1,
            lease_epoch: epoch,
        },
        checkpoint,
        frontier: 0,
        pending: vec![],
        counters: LeaseCounters { read: sent, sent, bytes: sent * 10, ..Default::default() },
        base: LeaseCounters::default(),
        failures: vec![],
        done,
        error: None,
        released: false,
    }
}

fn done(lease: &ShardLease, sent: u64) -> LeaseReport {
    LeaseReport { done: true, ..report(lease, lease.checkpoint, sent) }
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("ns", name)
}

fn granted_ids(grants: &[ShardLease]) -> Vec<(String, u32)> {
    grants.iter().map(|g| (g.key.package.clone(), g.key.shard)).collect()
}

#[test]
fn grants_follow_priority_then_age_then_shard_id_and_only_of_the_destination() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("old-low", "d", 0, 100, 2), 0);
    t.upsert_package(plan("new-high", "d", 5, 300, 2), 0);
    t.upsert_package(plan("old-high", "d", 5, 200, 1), 0);
    t.upsert_package(plan("other-dest", "e", 9, 0, 3), 0);
    let g = t.grant("w1", "ns", "d", 4, 1_000);
    assert_eq!(
        granted_ids(&g),
        vec![("old-high".into(), 0), ("new-high".into(), 0), ("new-high".into(), 1), ("old-low".into(), 0)]
    );
    let g = t.grant("w2", "ns", "d", 10, 1_000);
    assert_eq!(granted_ids(&g), vec![("old-low".into(), 1)]);
    assert!(t.grant("w3", "ns", "d", 10, 1_000).is_empty(), "nothing left to lease");
    assert!(t.grant("w3", "other", "d", 10, 1_000).is_empty(), "another namespace has nothing");
}

#[test]
fn a_grant_carries_the_shard_datum_checkpoint_and_a_fresh_epoch() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 1), 0);
    let g = t.grant("w1", "ns", "d", 1, 5_000).remove(0);
    assert_eq!(g.key.package_uid, "uid-p");
    assert_eq!(g.key.lease_epoch, 5_000);
    assert_eq!(g.checkpoint, 0);
    assert_eq!(g.shard.kind, ShardKind::ByteRange { start: 0, end: 100 });
    assert_eq!(g.dead_letter_path, "file:///tmp/dl");
    assert!(t.grant("w1", "ns", "d", 0, 5_000).is_empty(), "no free slot, no grant");
}

#[test]
fn reports_renew_the_lease_and_a_lease_not_renewed_expires_back_to_pending_at_its_checkpoint() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 1), 0);
    let g = t.grant("w1", "ns", "d", 1, 0).remove(0);
    assert_eq!(t.report("w1", &report(&g, 40, 4), 8_000), ReportOutcome::Renewed);
    assert!(t.expire(12_000).is_empty(), "renewed at 8 s, lives until 18 s");
    let expired = t.expire(18_000);
    assert_eq!(expired, vec![("w1".to_string(), g.key.clone())]);
    let again = t.grant("w2", "ns", "d", 1, 19_000).remove(0);
    assert_eq!(again.checkpoint, 40, "resumes at the last checkpoint");
    assert_eq!(again.counters.sent, 4, "counters continue from the earlier lease");
    assert!(again.key.lease_epoch > g.key.lease_epoch);
    assert_eq!(t.package(&key("p")).map(|p| p.snapshot().active[0].attempt), Some(2));
}

#[test]
fn records_in_flight_when_a_lease_ends_are_counted_as_read_once_after_the_next_lease_reads_them_again() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 1), 0);
    let g = t.grant("w1", "ns", "d", 1, 0).remove(0);
    // 10 records read, 7 acknowledged (the checkpoint is past them), 3 in flight when w1 dies.
    let in_flight =
        LeaseReport { counters: LeaseCounters { read: 10, sent: 7, ..Default::default() }, ..report(&g, 70, 7) };
    assert_eq!(t.report("w1", &in_flight, 1_000), ReportOutcome::Renewed);
    t.expire(20_000);
    let again = t.grant("w2", "ns", "d", 1, 21_000).remove(0);
    assert_eq!(
        (again.checkpoint, again.counters.read, again.counters.sent),
        (70, 7, 7),
        "read restarts at the acknowledged"
    );
    // w2 reads the 3 again plus 5 more, and sends all 8.
    let end = LeaseReport { counters: LeaseCounters { read: 15, sent: 15, ..Default::default() }, ..done(&again, 15) };
    assert_eq!(t.report("w2", &end, 22_000), ReportOutcome::Completed);
    let c = t.package(&key("p")).map(|p| p.counters()).expect("known");
    assert_eq!((c.read, c.sent), (15, 15), "read == sent + deadLettered");
}

#[test]
fn reports_of_a_stale_epoch_are_ignored_and_revoked() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 1), 0);
    let old = t.grant("w1", "ns", "d", 1, 0).remove(0);
    t.expire(10_000);
    let new = t.grant("w2", "ns", "d", 1, 11_000).remove(0);
    assert_eq!(t.report("w1", &report(&old, 90, 9), 11_500), ReportOutcome::Revoke);
    assert_eq!(t.report("w2", &report(&new, 20, 2), 11_500), ReportOutcome::Renewed);
    let snap = t.package(&key("p")).map(|p| p.snapshot()).expect("known");
    assert_eq!(snap.counters.sent, 2, "the stale report counted nothing");
    assert_eq!(snap.active[0].checkpoint, 20);
    assert_eq!(snap.active[0].worker, "w2");
    assert_eq!(
        t.report(
            "w2",
            &LeaseReport { key: LeaseKey { package_uid: "other".into(), ..new.key.clone() }, ..report(&new, 1, 1) },
            11_600
        ),
        ReportOutcome::Revoke,
        "another uid is another package"
    );
}

#[test]
fn repeated_or_reordered_cumulative_reports_never_double_count() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 2), 0);
    let g = t.grant("w1", "ns", "d", 2, 0);
    for (sent, at) in [(5, 1_000), (5, 2_000), (9, 3_000), (7, 4_000)] {
        t.report("w1", &report(&g[0], sent * 10, sent), at);
    }
    t.report("w1", &report(&g[1], 30, 3), 4_000);
    let snap = t.package(&key("p")).map(|p| p.snapshot()).expect("known");
    assert_eq!(snap.counters.sent, 12);
    assert_eq!(snap.counters.bytes, 120);
    assert_eq!(
        snap.active.iter().map(|a| a.checkpoint).collect::<Vec<_>>(),
        vec![90, 30],
        "checkpoints never move back"
    );
}

#[test]
fn every_shard_done_completes_the_package() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 3), 0);
    let g = t.grant("w1", "ns", "d", 3, 0);
    assert_eq!(t.report("w1", &done(&g[0], 10), 1_000), ReportOutcome::Completed);
    assert_eq!(t.report("w1", &done(&g[2], 10), 1_000), ReportOutcome::Completed);
    let snap = t.package(&key("p")).map(|p| p.snapshot()).expect("known");
    assert!(!snap.complete);
    assert_eq!(snap.completed_ranges, "0,2");
    assert_eq!(snap.bytes_done, 200);
    t.report("w1", &done(&g[1], 10), 2_000);
    let snap = t.package(&key("p")).map(|p| p.snapshot()).expect("known");
    assert!(snap.complete);
    assert_eq!(snap.completed_ranges, "0-2");
    assert_eq!(snap.counters.sent, 30);
    assert_eq!(snap.bytes_done, snap.bytes_total);
    assert_eq!(
        t.report("w1", &done(&g[1], 10), 3_000),
        ReportOutcome::AlreadyCompleted,
        "a repeated done changes nothing"
    );
    assert_eq!(t.package(&key("p")).map(|p| p.counters().sent), Some(30));
}

#[test]
fn a_failing_shard_is_retried_up_to_the_backoff_limit_then_failed() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 1), 0);
    for attempt in 1..=3u32 {
        let g = t.grant("w1", "ns", "d", 1, u64::from(attempt) * 1_000).remove(0);
        let r = LeaseReport { error: Some(format!("unreadable #{attempt}")), ..report(&g, 0, 0) };
        let outcome = t.report("w1", &r, u64::from(attempt) * 1_000 + 1);
        assert_eq!(outcome, ReportOutcome::ShardFailed { exhausted: attempt == 3 }, "attempt {attempt}");
    }
    assert!(t.grant("w1", "ns", "d", 1, 10_000).is_empty(), "a failed shard is not leased again");
    let snap = t.package(&key("p")).map(|p| p.snapshot()).expect("known");
    assert_eq!(
        snap.failed,
        vec![FailedShardState {
            id: 0,
            attempts: 3,
            message: "unreadable #3".into(),
            exhausted: true,
            url: "file:///data/p.jsonl".into()
        }]
    );
    assert!(snap.failed_permanently);
    assert!(!snap.complete);
}

#[test]
fn a_higher_priority_package_pre_empts_a_lower_priority_lease_of_a_full_worker() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("low", "d", 0, 0, 2), 0);
    let low = t.grant("w1", "ns", "d", 2, 0);
    assert_eq!(t.preempt("w1", "ns", "d"), None, "nothing more urgent is waiting");
    t.report("w1", &report(&low[1], 150, 5), 500);
    t.upsert_package(plan("high", "d", 10, 1_000, 1), 1_000);
    let revoked = t.preempt("w1", "ns", "d").expect("one lease pre-empted");
    assert_eq!((revoked.package.as_str(), revoked.shard), ("low", 1));
    assert_eq!(t.preempt("w1", "ns", "d"), None, "one pending high shard needs one lease only");
    assert_eq!(t.revoking_of("w1", "ns", "d"), vec![revoked.clone()]);
    assert!(
        t.grant("w2", "ns", "d", 5, 1_100).iter().all(|g| g.key.package == "high"),
        "the revoking shard is not re-leased yet"
    );
    // The worker's final report releases the shard at its checkpoint.
    assert_eq!(t.report("w1", &report(&low[1], 160, 6), 1_200), ReportOutcome::Revoke);
    let again = t.grant("w2", "ns", "d", 5, 1_300);
    assert_eq!(granted_ids(&again), vec![("low".into(), 1)]);
    assert_eq!(again[0].checkpoint, 160, "the checkpoint is kept");
    assert_eq!(t.package(&key("low")).map(|p| p.counters().sent), Some(6));
}

#[test]
fn suspension_revokes_the_package_leases_and_resuming_grants_again() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 2), 0);
    let g = t.grant("w1", "ns", "d", 2, 0);
    assert!(t.set_suspended(&key("p"), true));
    assert_eq!(t.revoking_of("w1", "ns", "d").len(), 2);
    assert_eq!(t.report("w1", &report(&g[0], 30, 3), 100), ReportOutcome::Revoke);
    assert!(t.grant("w2", "ns", "d", 5, 200).is_empty(), "a suspended package grants nothing");
    t.expire(20_000);
    assert!(
        t.package(&key("p")).is_some_and(|p| p.snapshot().active.iter().all(|a| a.worker.is_empty())),
        "no shard of a suspended package is leased (started ones wait, leased to nobody)"
    );
    t.set_suspended(&key("p"), false);
    let again = t.grant("w2", "ns", "d", 5, 21_000);
    assert_eq!(
        again.iter().map(|g| g.checkpoint).collect::<Vec<_>>(),
        vec![30, 0],
        "the untouched shard starts from its beginning"
    );
}

#[test]
fn a_removed_package_revokes_its_leases() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 1), 0);
    let g = t.grant("w1", "ns", "d", 1, 0).remove(0);
    assert!(t.remove_package(&key("p")));
    assert_eq!(t.report("w1", &report(&g, 10, 1), 100), ReportOutcome::Revoke);
    assert!(!t.remove_package(&key("p")));
}

#[test]
fn a_new_attempt_or_uid_replaces_the_package_and_its_progress() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 1), 0);
    let g = t.grant("w1", "ns", "d", 1, 0).remove(0);
    t.report("w1", &report(&g, 50, 5), 100);
    t.upsert_package(PackagePlan { attempt: 2, ..plan("p", "d", 0, 0, 1) }, 200);
    assert_eq!(t.report("w1", &report(&g, 60, 6), 300), ReportOutcome::Revoke);
    let again = t.grant("w2", "ns", "d", 1, 400).remove(0);
    assert_eq!((again.checkpoint, again.key.package_attempt), (0, 2));
}

#[test]
fn an_upsert_with_the_same_uid_keeps_progress_and_updates_priority() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 2), 0);
    let g = t.grant("w1", "ns", "d", 1, 0).remove(0);
    t.report("w1", &report(&g, 50, 5), 100);
    t.upsert_package(plan("p", "d", 7, 0, 2), 200);
    assert_eq!(t.package(&key("p")).map(|p| (p.priority, p.counters().sent)), Some((7, 5)));
    assert_eq!(t.report("w1", &report(&g, 60, 6), 300), ReportOutcome::Renewed);
}

#[test]
fn a_new_leader_restores_completed_shards_checkpoints_and_counters_from_status() {
    let mut t = LeaseTable::new(TTL);
    let restored = RestoredProgress {
        completed: vec![0, 1],
        active: vec![ActiveShardState {
            id: 2,
            worker: "w1".into(),
            checkpoint: 250,
            frontier: 0,
            pending: vec![],
            attempt: 1,
            counters: LeaseCounters { read: 2, sent: 2, bytes: 20, ..Default::default() },
        }],
        failed: vec![FailedShardState {
            id: 3,
            attempts: 1,
            message: "boom".into(),
            exhausted: false,
            url: String::new(),
        }],
        counters: LeaseCounters { read: 25, sent: 25, bytes: 250, ..Default::default() },
        failure_reasons: vec![FailureCount { code: "400".into(), count: 2, sample: Some("bad".into()) }],
    };
    t.upsert_package(PackagePlan { restored, ..plan("p", "d", 0, 0, 5) }, 1_000);
    // Shard 2 stays reserved for w1 for one TTL; shards 3 and 4 are free.
    let g = t.grant("w2", "ns", "d", 5, 1_000);
    assert_eq!(granted_ids(&g), vec![("p".into(), 3), ("p".into(), 4)]);
    // w1 reports its lease from before the restart: adopted. The status held the shard's 2
    // records (part of the restored totals); the lease's cumulative counters replace them.
    let old = LeaseReport {
        key: LeaseKey {
            namespace: "ns".into(),
            package: "p".into(),
            package_uid: "uid-p".into(),
            shard: 2,
            package_attempt: 1,
            lease_epoch: 77,
        },
        checkpoint: 260,
        frontier: 0,
        pending: vec![],
        counters: LeaseCounters { read: 6, sent: 6, bytes: 60, ..Default::default() },
        base: LeaseCounters { read: 2, sent: 2, bytes: 20, ..Default::default() },
        failures: vec![],
        done: false,
        error: None,
        released: false,
    };
    assert_eq!(t.report("w1", &old, 1_500), ReportOutcome::Renewed);
    let later = LeaseReport {
        checkpoint: 280,
        counters: LeaseCounters { read: 8, sent: 8, bytes: 80, ..Default::default() },
        ..old.clone()
    };
    assert_eq!(t.report("w1", &later, 2_500), ReportOutcome::Renewed);
    let snap = t.package(&key("p")).map(|p| p.snapshot()).expect("known");
    assert_eq!(snap.counters.sent, 25 - 2 + 8, "nothing sent after the last status write is lost, nothing twice");
    assert_eq!(snap.completed_ranges, "0-1");
    assert_eq!(snap.active.iter().find(|a| a.id == 2).map(|a| a.checkpoint), Some(280));
    assert_eq!(snap.failure_reasons[0].code, "400");
    assert_eq!(snap.failed[0].attempts, 1);
}

#[test]
fn a_restored_lease_of_a_pod_that_is_gone_is_granted_again_after_one_ttl_from_its_checkpoint() {
    let mut t = LeaseTable::new(TTL);
    let restored = restored_lease("gone", 4);
    t.upsert_package(PackagePlan { restored, ..plan("p", "d", 0, 0, 1) }, 0);
    assert!(t.has_restored("ns", "d"));
    // The controller names the worker pods that exist: "gone" is not among them.
    assert_eq!(t.hold_restored_for("ns", "d", &["w2".to_owned()].into(), 0), 1);
    assert!(t.grant("w2", "ns", "d", 1, 5_000).is_empty());
    t.expire(10_000);
    assert!(!t.has_restored("ns", "d"));
    let g = t.grant("w2", "ns", "d", 1, 10_001).remove(0);
    assert_eq!((g.checkpoint, g.counters.sent), (40, 4));
    t.report("w2", &report(&g, 60, 6), 11_000);
    assert_eq!(
        t.package(&key("p")).map(|p| p.counters().sent),
        Some(6),
        "known per-shard counters are not counted twice"
    );
}

#[test]
fn failure_samples_are_per_lease_and_add_up_across_leases() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 1), 0);
    let g = t.grant("w1", "ns", "d", 1, 0).remove(0);
    let sample = |count| vec![FailureSample { code: "503".into(), count, sample: Some("busy".into()) }];
    t.report("w1", &LeaseReport { failures: sample(2), ..report(&g, 10, 1) }, 100);
    t.report("w1", &LeaseReport { failures: sample(3), ..report(&g, 10, 1) }, 200);
    t.expire(20_000);
    let g2 = t.grant("w2", "ns", "d", 1, 20_001).remove(0);
    t.report("w2", &LeaseReport { failures: sample(4), ..report(&g2, 20, 2) }, 20_100);
    let snap = t.package(&key("p")).map(|p| p.snapshot()).expect("known");
    assert_eq!(snap.failure_reasons, vec![FailureCount { code: "503".into(), count: 7, sample: Some("busy".into()) }]);
}

#[test]
fn a_plan_with_another_shard_count_replaces_the_package() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 0), 0);
    assert!(t.package(&key("p")).is_some_and(|p| p.complete()), "an empty plan has nothing to do");
    t.upsert_package(plan("p", "d", 0, 0, 3), 100);
    assert_eq!(t.grant("w1", "ns", "d", 5, 200).len(), 3);
}

#[test]
fn revoking_a_worker_marks_all_its_leases_on_the_destination() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 2), 0);
    t.upsert_package(plan("q", "e", 0, 0, 1), 0);
    t.grant("w1", "ns", "d", 2, 0);
    t.grant("w1", "ns", "e", 1, 0);
    assert_eq!(t.revoke_worker("w1", "ns", "d").len(), 2);
    assert_eq!(t.leases_of("w1"), 1, "the lease on the other destination stays");
}

#[test]
fn a_shard_restricted_to_some_offsets_carries_them_in_every_lease() {
    let mut t = LeaseTable::new(TTL);
    let mut p = plan("retry", "d", 0, 0, 2);
    p.shards[1].only_offsets = vec![120, 160];
    t.upsert_package(p, 0);
    let g = t.grant("w1", "ns", "d", 2, 1_000);
    assert_eq!(g.len(), 2);
    assert!(g[0].only_offsets.is_empty(), "an unrestricted shard sends everything");
    assert_eq!(g[1].only_offsets, vec![120, 160]);
    t.expire(1_000 + TTL + 1);
    let again = t.grant("w2", "ns", "d", 2, 1_000 + TTL + 2);
    let shard1 = again.iter().find(|l| l.key.shard == 1).expect("shard 1 leased again");
    assert_eq!(shard1.only_offsets, vec![120, 160], "a re-lease keeps the restriction");
}

#[test]
fn a_worker_heard_from_again_after_its_lease_ran_out_resumes_it_unless_the_shard_went_to_another() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 2), 0);
    let g = t.grant("w1", "ns", "d", 2, 0);
    t.report("w1", &report(&g[0], 10, 1), 1_000);
    t.report("w1", &report(&g[1], 110, 1), 1_000);
    // Cut off from the coordinator for longer than the TTL: both leases run out.
    assert_eq!(t.expire(11_000).len(), 2);
    // Back before anyone else asked: it finished shard 0 meanwhile, and is still at shard 1.
    assert_eq!(t.report("w1", &done(&g[0], 9), 12_000), ReportOutcome::Completed, "nothing sent twice");
    assert_eq!(t.report("w1", &report(&g[1], 170, 7), 12_000), ReportOutcome::Renewed);
    let snap = t.package(&key("p")).map(|p| p.snapshot()).expect("known");
    assert_eq!((snap.counters.sent, snap.completed_ranges.as_str()), (16, "0"));
    assert!(t.grant("w2", "ns", "d", 2, 12_001).is_empty(), "shard 1 is w1's again");

    // Once the shard went to another worker, the lapsed lease stays ended.
    t.expire(30_000);
    let g2 = t.grant("w2", "ns", "d", 1, 30_001).remove(0);
    assert_eq!(g2.checkpoint, 170, "resumes where w1 was");
    assert_eq!(t.report("w1", &report(&g[1], 190, 9), 30_100), ReportOutcome::Revoke);
    // And another worker cannot take a lapsed lease over by its epoch.
    t.expire(50_000);
    assert_eq!(t.report("w3", &report(&g2, 200, 3), 50_100), ReportOutcome::Revoke);
}

#[test]
fn a_restored_lease_of_a_pod_that_exists_is_held_for_it_past_one_ttl_and_resumed_with_all_it_did() {
    let mut t = LeaseTable::new(TTL);
    let restored = restored_lease("w1", 4);
    t.upsert_package(PackagePlan { restored, ..plan("p", "d", 0, 0, 1) }, 0);
    // w1 exists but cannot reach this leader yet (its Service endpoint has not moved).
    assert_eq!(t.hold_restored_for("ns", "d", &["w1".to_owned(), "w2".to_owned()].into(), 0), 0);
    t.expire(3 * TTL);
    assert!(t.grant("w2", "ns", "d", 1, 3 * TTL).is_empty(), "held for w1 beyond one TTL");
    // w1 gets through and reports its lease of the earlier leader: it finished the shard.
    let finished = earlier_lease_report(0, 77, 100, 10, true);
    assert_eq!(t.report("w1", &finished, 3 * TTL + 1), ReportOutcome::Completed);
    let snap = t.package(&key("p")).map(|p| p.snapshot()).expect("known");
    assert_eq!((snap.counters.sent, snap.completed_ranges.as_str()), (10, "0"), "nothing sent twice");

    // Not for ever: a pod that never gets through loses it after the hold.
    let mut t = LeaseTable::new(TTL);
    let restored = restored_lease("w1", 0);
    t.upsert_package(PackagePlan { restored, ..plan("p", "d", 0, 0, 1) }, 0);
    t.expire(RESTORED_HOLD_TTLS * TTL);
    assert_eq!(t.grant("w2", "ns", "d", 1, RESTORED_HOLD_TTLS * TTL).len(), 1);
}

#[test]
fn a_worker_takes_its_even_share_of_the_work_left() {
    let mut t = LeaseTable::new(TTL);
    t.upsert_package(plan("p", "d", 0, 0, 7), 0);
    t.upsert_package(plan("other", "elsewhere", 0, 0, 9), 0);
    // 7 shards of 100 bytes over 3 workers: a third of the work is 233 bytes — 2 shards.
    assert_eq!(t.work("w1", "ns", "d").room(3), 2);
    let first = t.grant("w1", "ns", "d", 2, 0);
    assert_eq!(t.work("w1", "ns", "d").room(3), 0, "w1 holds its share");
    assert_eq!(t.work("w2", "ns", "d").room(3), 2, "2 of the 5 pending");
    t.grant("w2", "ns", "d", 2, 0);
    assert_eq!(t.work("w3", "ns", "d").room(3), 1, "a third of the 3 pending");
    t.grant("w3", "ns", "d", 1, 0);
    // w1 finished a shard: 600 bytes left, 200 each; w1 and w3 hold 100 — one more each.
    let mut done = report(&first[0], 100, 1);
    done.done = true;
    t.report("w1", &done, 100);
    assert_eq!(t.work("w1", "ns", "d").room(3), 1);
    assert_eq!(t.work("w3", "ns", "d").room(3), 1);
    assert_eq!(t.work("w2", "ns", "d").room(3), 0, "w2 holds its 200");
    // One worker alone takes everything open; a suspended package counts for nothing.
    assert_eq!(t.work("w4", "ns", "elsewhere").room(1), 9);
    assert!(t.set_suspended(&key("other"), true));
    assert_eq!(t.work("w4", "ns", "elsewhere").room(1), 0);
}
