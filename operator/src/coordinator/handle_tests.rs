//! The coordinator handle driven by heartbeats, without HTTP.

use courier_api::DestinationSpec;
use courier_core::protocol::{
    HeartbeatRequest, LeaseCounters, LeaseKey, LeaseReport, PROTOCOL_VERSION, ShardLease, ThrottleReport, WorkerStats,
};

use super::leases::tests::{earlier_lease_report, plan};
use super::*;

pub(crate) fn dest_spec(rps: i32) -> DestinationSpec {
    serde_json::from_value(serde_json::json!({
        "endpoint": {"url": "http://127.0.0.1:1/"},
        "rateLimit": {"requestsPerSecond": rps, "burst": rps / 10 + 1},
        "workers": {"min": 0, "max": 8, "cooldownSeconds": 0, "maxInFlightPerWorker": 16}
    }))
    .expect("minimal destination")
}

pub(crate) fn hb(worker: &str, generation: i64, demand: u32, applied: u32, free_slots: u32) -> HeartbeatRequest {
    HeartbeatRequest {
        protocol_version: PROTOCOL_VERSION,
        worker: worker.into(),
        incarnation: 1,
        namespace: "ns".into(),
        destination: "d".into(),
        destination_generation: generation,
        applied_share: applied,
        demand,
        free_slots,
        draining: false,
        leases: vec![],
        throttle: ThrottleReport::default(),
        stats: WorkerStats::default(),
        quota: None,
        clock_ms: None,
    }
}

pub(crate) fn progress(lease: &ShardLease, checkpoint: u64, sent: u64, done: bool) -> LeaseReport {
    LeaseReport {
        key: lease.key.clone(),
        checkpoint,
        frontier: 0,
        pending: vec![],
        counters: LeaseCounters { read: sent, sent, bytes: sent, ..Default::default() },
        base: lease.counters.clone(),
        failures: vec![],
        done,
        error: None,
        released: false,
    }
}

fn coordinator() -> Coordinator {
    let c = Coordinator::new(CoordinatorConfig::default());
    c.upsert_destination("ns", "d", &dest_spec(100), 1);
    c
}

#[test]
fn a_heartbeat_for_an_unknown_destination_is_refused() {
    let c = Coordinator::new(CoordinatorConfig::default());
    assert!(matches!(c.heartbeat(&hb("w1", 0, 0, 0, 1), 0), Err(HeartbeatError::UnknownDestination { .. })));
}

#[test]
fn a_first_heartbeat_gets_the_config_the_whole_limit_and_leases() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 3));
    let r = c.heartbeat(&hb("w1", 0, 0, 0, 2), 1_000).expect("known destination");
    assert_eq!(r.destination.as_ref().map(|d| d.generation), Some(1));
    assert_eq!(r.share.requests_per_second, 100);
    assert_eq!(r.share.burst, 6, "half the Destination's burst of 11, rounded up: the rest is the network's");
    assert_eq!(r.share.max_in_flight, 16);
    assert_eq!(r.granted.len(), 2);
    assert_eq!(r.lease_ttl_ms, 15_000);
    assert_eq!(r.heartbeat_interval_ms, 100, "a share in transition (granted 100, enforcing 0) is settled sooner");
    let r = c.heartbeat(&hb("w1", 1, 50, 100, 0), 2_000).expect("known destination");
    assert!(r.destination.is_none(), "the worker's config is current");
    assert_eq!(r.heartbeat_interval_ms, 1_000, "settled: the regular interval");
    assert!(r.granted.is_empty(), "no free slot");
}

#[test]
fn a_worker_that_could_use_more_than_its_share_beside_others_heartbeats_sooner() {
    let c = coordinator();
    let interval = |w: &str, demand: u32, applied: u32, now: u64| {
        c.heartbeat(&hb(w, 1, demand, applied, 0), now).map(|r| (r.share.requests_per_second, r.heartbeat_interval_ms))
    };
    assert_eq!(interval("w1", 100, 0, 0), Ok((100, 100)), "in transition");
    assert_eq!(interval("w1", 100, 100, 100), Ok((100, 1_000)), "alone, all it can have: the regular interval");
    interval("w2", 100, 0, 200).expect("ok");
    interval("w1", 100, 100, 300).expect("ok");
    interval("w1", 100, 50, 400).expect("ok");
    interval("w2", 100, 0, 500).expect("ok");
    assert_eq!(interval("w2", 100, 50, 600), Ok((50, 500)), "beside another, wanting more: half a second");
    assert_eq!(interval("w1", 40, 50, 700).map(|r| r.1), Ok(1_000), "wanting less than its share");
}

#[test]
fn a_joining_worker_gets_its_share_only_once_the_first_gave_it_up() {
    let c = coordinator();
    c.heartbeat(&hb("w1", 1, 10, 0, 0), 0).expect("ok");
    assert_eq!(c.heartbeat(&hb("w1", 1, 10, 100, 0), 100).map(|r| r.share.requests_per_second), Ok(100));
    assert_eq!(c.heartbeat(&hb("w2", 1, 10, 0, 0), 200).map(|r| r.share.requests_per_second), Ok(0));
    assert_eq!(c.heartbeat(&hb("w1", 1, 10, 100, 0), 300).map(|r| r.share.requests_per_second), Ok(50));
    assert_eq!(
        c.heartbeat(&hb("w2", 1, 10, 0, 0), 400).map(|r| r.share.requests_per_second),
        Ok(0),
        "w1 still applies 100"
    );
    c.heartbeat(&hb("w1", 1, 10, 50, 0), 500).expect("ok");
    assert_eq!(c.heartbeat(&hb("w2", 1, 10, 0, 0), 600).map(|r| r.share.requests_per_second), Ok(50));
    let d = c.destination_snapshot_at("ns", "d", 700).expect("known");
    let held: u32 = d.workers.iter().map(|w| w.granted_share.max(w.applied_share)).sum();
    assert!(held <= 100);
}

#[test]
fn a_silent_worker_share_lapses_after_the_lease_ttl_and_the_clock_margin() {
    let c = coordinator();
    c.heartbeat(&hb("w1", 1, 10, 50, 0), 0).expect("ok");
    c.heartbeat(&hb("w2", 1, 10, 50, 0), 0).expect("ok");
    assert_eq!(c.heartbeat(&hb("w2", 1, 10, 50, 0), 5_000).map(|r| r.share.requests_per_second), Ok(50));
    assert_eq!(c.heartbeat(&hb("w2", 1, 10, 50, 0), 15_999).map(|r| r.share.requests_per_second), Ok(50));
    assert_eq!(c.heartbeat(&hb("w2", 1, 10, 50, 0), 16_001).map(|r| r.share.requests_per_second), Ok(100));
    assert_eq!(c.destination_snapshot_at("ns", "d", 16_002).map(|d| d.workers.len()), Some(1));
}

#[test]
fn a_429_cuts_every_share_and_retry_after_pauses_the_destination() {
    let c = coordinator();
    c.heartbeat(&hb("w1", 1, 10, 100, 0), 0).expect("ok");
    let mut throttled = hb("w1", 1, 10, 100, 0);
    throttled.throttle =
        ThrottleReport { too_many_requests: 4, retry_after_until_unix_ms: Some(5_000), spread_ms: None };
    let r = c.heartbeat(&throttled, 1_000).expect("ok");
    assert_eq!(r.share.requests_per_second, 70);
    assert_eq!(r.pause_until_unix_ms, Some(5_000));
    let d = c.destination_snapshot_at("ns", "d", 1_000).expect("known");
    assert_eq!((d.effective_rps, d.throttled, d.throttled_reason), (70, true, Some("RetryAfter")));
    assert_eq!(c.destination_snapshot_at("ns", "d", 6_000).and_then(|d| d.throttled_reason), Some("RateLimited"));
}

#[test]
fn a_spec_change_re_shares_within_one_heartbeat_and_sends_the_new_config() {
    let c = coordinator();
    c.heartbeat(&hb("w1", 1, 10, 100, 0), 0).expect("ok");
    c.upsert_destination("ns", "d", &dest_spec(300), 2);
    let r = c.heartbeat(&hb("w1", 1, 10, 100, 0), 100).expect("ok");
    assert_eq!(r.share.requests_per_second, 300);
    assert_eq!(r.destination.map(|d| d.spec.rate_limit.requests_per_second), Some(300));
}

#[test]
fn progress_flows_from_heartbeats_into_the_package_snapshot_and_completion() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 2));
    let r = c.heartbeat(&hb("w1", 1, 10, 100, 2), 0).expect("ok");
    let mut req = hb("w1", 1, 10, 100, 0);
    req.leases = vec![progress(&r.granted[0], 50, 5, false), progress(&r.granted[1], 100, 10, true)];
    let r2 = c.heartbeat(&req, 1_000).expect("ok");
    assert!(r2.revoked.is_empty());
    let s = c.package_snapshot("ns", "p").expect("known");
    assert_eq!((s.counters.sent, s.completed_ranges.as_str(), s.complete), (15, "1", false));
    assert_eq!(s.active.len(), 1);
    req.leases = vec![progress(&r.granted[0], 100, 10, true)];
    c.heartbeat(&req, 2_000).expect("ok");
    let s = c.package_snapshot("ns", "p").expect("known");
    assert!(s.complete);
    assert_eq!(s.counters.sent, 20);
    assert_eq!(s.bytes_done, s.bytes_total);
}

#[test]
fn backlog_and_desired_replicas_follow_the_packages() {
    let c = coordinator();
    let d = c.destination_snapshot_at("ns", "d", 0).expect("known");
    assert_eq!((d.backlog_packages, d.desired_replicas), (0, 0));
    c.upsert_package(plan("p", "d", 0, 0, 4));
    let d = c.destination_snapshot_at("ns", "d", 1).expect("known");
    assert_eq!((d.backlog_packages, d.backlog_bytes, d.leasable_shards), (1, 400, 4));
    assert_eq!(d.desired_replicas, 1, "{}", d.desired_reason);
    c.upsert_destination("ns", "d", &dest_spec(100_000), 2);
    let desired = |now| c.destination_snapshot_at("ns", "d", now).map(|d| d.desired_replicas);
    assert_eq!(desired(2), Some(1), "the latency not measured yet: one worker measures it");
    let mut measuring = hb("w1", 2, 10, 0, 0);
    measuring.stats.latency_p50_micros = 50_000;
    c.heartbeat(&measuring, 3).expect("ok");
    assert_eq!(desired(4), Some(4), "never more than the shards");
    assert_eq!(desired(60_000), Some(4), "the latency is remembered when the worker is gone");
    c.set_package_suspended("ns", "p", true);
    assert_eq!(
        c.destination_snapshot_at("ns", "d", 60_001).map(|d| d.desired_replicas),
        Some(0),
        "a suspended package is no backlog"
    );
}

#[test]
fn a_draining_worker_gets_no_leases_and_no_demand() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 2));
    let mut req = hb("w1", 1, 10, 0, 2);
    req.draining = true;
    let r = c.heartbeat(&req, 0).expect("ok");
    assert!(r.granted.is_empty());
}

#[test]
fn a_suspended_package_lease_is_revoked_in_the_next_heartbeat() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 1));
    let r = c.heartbeat(&hb("w1", 1, 10, 0, 1), 0).expect("ok");
    c.set_package_suspended("ns", "p", true);
    let mut next = hb("w1", 1, 10, 0, 0);
    next.leases = vec![progress(&r.granted[0], 0, 0, false)];
    let r2 = c.heartbeat(&next, 100).expect("ok");
    assert_eq!(r2.revoked, vec![r.granted[0].key.clone()]);
}

#[test]
fn changes_are_announced_per_object() {
    let c = coordinator();
    let mut version = c.changes();
    let mut events = c.subscribe();
    let before = *version.borrow_and_update();
    c.upsert_package(plan("p", "d", 0, 0, 1));
    assert!(*version.borrow_and_update() > before);
    assert_eq!(events.try_recv().ok(), Some(Change::Package(ObjectKey::new("ns", "p"))));
    assert_eq!(events.try_recv().ok(), Some(Change::Destination(ObjectKey::new("ns", "d"))));
    c.tick(0);
    let _ = events.try_recv();
    c.tick(1);
    assert!(events.try_recv().is_err(), "a tick without a change announces nothing");
}

#[test]
fn removing_a_destination_refuses_its_workers() {
    let c = coordinator();
    c.remove_destination("ns", "d");
    assert!(c.heartbeat(&hb("w1", 1, 0, 0, 0), 0).is_err());
    assert!(c.destination_snapshot("ns", "d").is_none());
}

#[test]
fn a_suspended_destination_revokes_its_workers_leases_and_grants_none() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 2));
    let r = c.heartbeat(&hb("w1", 1, 10, 0, 1), 0).expect("ok");
    let mut spec = dest_spec(100);
    spec.suspend = true;
    c.upsert_destination("ns", "d", &spec, 2);
    let mut next = hb("w1", 2, 10, 0, 1);
    next.leases = vec![progress(&r.granted[0], 0, 0, false)];
    let r2 = c.heartbeat(&next, 100).expect("ok");
    assert_eq!(r2.revoked, vec![r.granted[0].key.clone()]);
    assert!(r2.granted.is_empty());
}

#[test]
fn only_workers_holding_leases_share_the_limit() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 2));
    // w1 reports demand but takes no lease.
    assert_eq!(
        c.heartbeat(&hb("w1", 1, 40, 0, 0), 0).map(|r| r.share.requests_per_second),
        Ok(100),
        "alone, it gets all"
    );
    let r = c.heartbeat(&hb("w2", 1, 0, 0, 1), 100).expect("ok");
    assert_eq!(r.granted.len(), 1);
    assert_eq!(r.share.requests_per_second, 0, "w1 was sent 100 and may be sending at it");
    let w2_lease = progress(&r.granted[0], 0, 0, false);
    assert_eq!(
        c.heartbeat(&hb("w1", 1, 40, 100, 0), 200).map(|r| r.share.requests_per_second),
        Ok(0),
        "no lease, no share"
    );
    c.heartbeat(&hb("w1", 1, 40, 0, 0), 300).expect("ok");
    let mut w2 = hb("w2", 1, 0, 0, 0);
    w2.leases = vec![w2_lease];
    let r = c.heartbeat(&w2, 400).expect("ok");
    assert_eq!(r.share.requests_per_second, 100, "w2 holds the work; no demand reported yet still counts");
}

#[test]
fn a_reset_forgets_everything_for_a_new_term() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 1));
    c.reset();
    assert!(!c.has_package("ns", "p"));
    assert!(c.destination_snapshot("ns", "d").is_none());
}

#[test]
fn a_report_about_another_destinations_package_is_revoked_and_ignored() {
    let c = coordinator();
    c.upsert_destination("ns", "e", &dest_spec(100), 1);
    c.upsert_package(plan("other", "e", 0, 0, 1));
    let mut on_e = hb("w9", 1, 10, 0, 1);
    on_e.destination = "e".into();
    let lease = c.heartbeat(&on_e, 0).expect("ok").granted.remove(0);
    c.tick(20_000);
    let mut req = hb("w1", 1, 10, 0, 0);
    req.leases = vec![progress(
        &ShardLease { key: LeaseKey { lease_epoch: lease.key.lease_epoch + 1, ..lease.key.clone() }, ..lease },
        50,
        5,
        false,
    )];
    let r = c.heartbeat(&req, 20_001).expect("ok");
    assert_eq!(r.revoked.len(), 1);
    assert_eq!(c.package_snapshot("ns", "other").map(|p| (p.counters.sent, p.active.len())), Some((0, 0)));
}

/// A coordinator in term 1 that began at `t0` (its warm-up runs to `t0` + TTL + margin).
fn new_term(t0: u64) -> Coordinator {
    let c = Coordinator::new(CoordinatorConfig::default());
    c.begin_term(1, t0);
    c.upsert_destination_at("ns", "d", &dest_spec(100), 1, t0);
    c
}

#[test]
fn a_new_leader_holds_back_what_it_does_not_know_was_granted_until_earlier_grants_lapse() {
    let t0 = 1_000_000;
    let c = new_term(t0);
    c.upsert_package_at(plan("p", "d", 0, 0, 4), t0);
    // w1 enforces 60 granted by the last leader: it keeps that, but 40 may be held by a worker
    // that has not reported yet, so a new worker gets nothing.
    let r = c.heartbeat_in_term(&hb("w1", 1, 100, 60, 1), t0 + 100, 1).expect("ok");
    assert_eq!(r.share.requests_per_second, 60);
    assert_eq!(r.term, 1);
    let r = c.heartbeat_in_term(&hb("w2", 1, 100, 0, 1), t0 + 200, 1).expect("ok");
    assert_eq!(r.share.requests_per_second, 0, "40 are held back for unreported grants");
    // The other 40 report: nothing is unaccounted for any more.
    c.heartbeat_in_term(&hb("w3", 1, 100, 40, 0), t0 + 300, 1).expect("ok");
    // Once every earlier grant has lapsed the limit is shared as usual.
    let after = t0 + 15_000 + CLOCK_MARGIN_MS;
    for w in ["w1", "w3"] {
        c.heartbeat_in_term(&hb(w, 1, 100, 0, 0), after, 1).expect("ok");
    }
    let r = c.heartbeat_in_term(&hb("w2", 1, 100, 0, 0), after + RELEASE_SETTLE_MS, 1).expect("ok");
    assert!(r.share.requests_per_second > 0);
}

#[test]
fn capacity_a_worker_gives_up_goes_to_another_only_after_it_settled() {
    let c = Coordinator::new(CoordinatorConfig::default());
    c.upsert_destination_at("ns", "d", &dest_spec(100), 1, 0);
    // w1 alone holds the whole limit.
    assert_eq!(c.heartbeat(&hb("w1", 1, 100, 0, 0), 0).expect("ok").share.requests_per_second, 100);
    assert_eq!(c.heartbeat(&hb("w1", 1, 100, 100, 0), 1_000).expect("ok").share.requests_per_second, 100);
    // w2 joins: w1's share shrinks at once, w2's grows only from what w1 gave up.
    assert_eq!(c.heartbeat(&hb("w2", 1, 100, 0, 0), 1_100).expect("ok").share.requests_per_second, 0);
    assert_eq!(c.heartbeat(&hb("w1", 1, 100, 100, 0), 1_200).expect("ok").share.requests_per_second, 50);
    // w1 reports enforcing 50: the 50 it gave up stay counted while its last requests arrive.
    c.heartbeat(&hb("w1", 1, 100, 50, 0), 1_300).expect("ok");
    let r = c.heartbeat(&hb("w2", 1, 100, 0, 0), 1_300 + RELEASE_SETTLE_MS - 1).expect("ok");
    assert_eq!(r.share.requests_per_second, 0, "not yet settled");
    let r = c.heartbeat(&hb("w2", 1, 100, 0, 0), 1_300 + RELEASE_SETTLE_MS).expect("ok");
    assert_eq!(r.share.requests_per_second, 50, "settled");
}

#[test]
fn with_no_worker_pods_at_the_start_of_a_term_nothing_is_held_back() {
    let t0 = 1_000_000;
    let c = new_term(t0);
    c.upsert_package_at(plan("p", "d", 0, 0, 4), t0);
    c.set_prior_workers("ns", "d", vec![]);
    let r = c.heartbeat_in_term(&hb("w1", 1, 100, 0, 1), t0 + 100, 1).expect("ok");
    assert_eq!(r.share.requests_per_second, 100, "a cold start gets the whole limit at once");
}

#[test]
fn an_answer_of_another_term_is_refused() {
    let c = new_term(0);
    assert_eq!(c.heartbeat_in_term(&hb("w1", 1, 10, 0, 0), 10, 2), Err(HeartbeatError::NotReady));
    assert!(c.heartbeat_in_term(&hb("w1", 1, 10, 0, 0), 10, 1).is_ok());
}

#[test]
fn a_draining_worker_gives_its_share_back_at_once() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 4));
    let w1 = c.heartbeat(&hb("w1", 1, 100, 0, 1), 0).expect("ok").granted;
    let mut again = hb("w1", 1, 100, 100, 0);
    again.leases = vec![progress(&w1[0], 0, 0, false)];
    c.heartbeat(&again, 100).expect("ok");
    let w2 = c.heartbeat(&hb("w2", 1, 100, 0, 1), 200).expect("ok").granted;
    let mut bye = hb("w1", 1, 0, 0, 0);
    bye.draining = true;
    bye.leases = vec![progress(&w1[0], 0, 0, false)];
    assert_eq!(c.heartbeat(&bye, 300).map(|r| r.share.requests_per_second), Ok(0));
    let mut next = hb("w2", 1, 100, 0, 0);
    next.leases = vec![progress(&w2[0], 0, 0, false)];
    assert_eq!(c.heartbeat(&next, 400).map(|r| r.share.requests_per_second), Ok(100));
}

#[test]
fn a_restarted_worker_frees_its_leases_and_share_at_once() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 1));
    let first = c.heartbeat(&hb("w1", 1, 100, 0, 1), 0).expect("ok");
    assert_eq!(first.granted.len(), 1);
    let mut renew = hb("w1", 1, 100, 100, 0);
    renew.leases = vec![progress(&first.granted[0], 30, 3, false)];
    c.heartbeat(&renew, 100).expect("ok");
    // The container restarts: same name, new incarnation, no leases.
    let mut again = hb("w1", 1, 100, 0, 0);
    again.incarnation = 2;
    c.heartbeat(&again, 200).expect("ok");
    let r = c.heartbeat(&hb("w2", 1, 100, 0, 1), 300).expect("ok");
    assert_eq!(r.granted.len(), 1, "the shard is leased again without waiting for its TTL");
    assert_eq!((r.granted[0].checkpoint, r.granted[0].counters.sent), (30, 3));
}

#[test]
fn a_report_of_a_package_not_loaded_yet_keeps_its_lease_during_the_warm_up() {
    let t0 = 1_000_000;
    let c = new_term(t0);
    c.set_prior_workers("ns", "d", vec!["w1".into(), "w2".into()]);
    let mut req = hb("w1", 1, 100, 100, 0);
    let lease = plan("late", "d", 0, 0, 1);
    req.leases = vec![LeaseReport {
        key: LeaseKey {
            namespace: "ns".into(),
            package: lease.key.name.clone(),
            package_uid: lease.uid.clone(),
            shard: 0,
            package_attempt: 1,
            lease_epoch: 9,
        },
        checkpoint: 10,
        frontier: 0,
        pending: vec![],
        counters: LeaseCounters::default(),
        base: LeaseCounters::default(),
        failures: vec![],
        done: false,
        error: None,
        released: false,
    }];
    let r = c.heartbeat_in_term(&req, t0 + 500, 1).expect("ok");
    assert!(r.revoked.is_empty(), "not revoked while the new leader may still be loading packages");
    let r = c.heartbeat_in_term(&req, t0 + 16_001, 1).expect("ok");
    assert_eq!(r.revoked.len(), 1, "after the warm-up an unknown package is gone");
}

#[test]
fn a_lease_granted_again_skips_what_the_last_one_acknowledged_and_resends_what_it_had_pending() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 1));
    let first = c.heartbeat(&hb("w1", 1, 100, 0, 1), 0).expect("ok");
    let mut renew = hb("w1", 1, 100, 100, 0);
    renew.leases =
        vec![LeaseReport { frontier: 60, pending: vec![30, 50], ..progress(&first.granted[0], 30, 3, false) }];
    c.heartbeat(&renew, 100).expect("ok");
    let mut again = hb("w1", 1, 100, 0, 0);
    again.incarnation = 2;
    c.heartbeat(&again, 200).expect("ok");
    let r = c.heartbeat(&hb("w2", 1, 100, 0, 1), 300).expect("ok");
    let g = &r.granted[0];
    assert_eq!((g.checkpoint, g.frontier, g.pending.as_slice()), (30, 60, &[30, 50][..]));
    assert_eq!(g.counters.sent, 3, "the acknowledged records between 30 and 60 are counted once, not sent again");
}

#[test]
fn a_lease_given_back_by_a_draining_worker_goes_to_another_worker_at_once() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 1));
    let first = c.heartbeat(&hb("w1", 1, 100, 0, 1), 0).expect("ok");
    let mut bye = hb("w1", 1, 0, 0, 0);
    bye.draining = true;
    bye.leases = vec![LeaseReport { released: true, ..progress(&first.granted[0], 40, 4, false) }];
    c.heartbeat(&bye, 100).expect("ok");
    let r = c.heartbeat(&hb("w2", 1, 100, 0, 1), 200).expect("ok");
    assert_eq!(r.granted.len(), 1, "not after the lease TTL: at once");
    assert_eq!((r.granted[0].checkpoint, r.granted[0].counters.sent), (40, 4));
}

#[test]
fn a_worker_of_an_older_protocol_version_gets_no_new_lease_until_a_current_one_asks() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 2));
    let old = HeartbeatRequest { protocol_version: 1, ..hb("w-old", 1, 10, 0, 2) };
    let r = c.heartbeat(&old, 0).expect("an old worker is still answered");
    assert!(r.granted.is_empty(), "it may not read every shard kind");
    assert_eq!(r.protocol_version, PROTOCOL_VERSION);
    let r = c.heartbeat(&hb("w-new", 1, 10, 0, 2), 100).expect("ok");
    assert_eq!(r.granted.len(), 2);
}

#[test]
fn the_warm_up_waits_only_for_pods_of_the_earlier_leaders_time() {
    let t0 = 1_000_000;
    let c = new_term(t0);
    c.upsert_package_at(plan("p", "d", 0, 0, 4), t0);
    c.set_prior_workers("ns", "d", vec!["w1".into(), "w2".into()]);
    // w2's pod is gone, and a new pod w3 was created since: only w1 is waited for.
    c.set_prior_workers("ns", "d", vec!["w1".into(), "w3".into()]);
    assert!(c.heartbeat_in_term(&hb("w3", 1, 100, 0, 1), t0 + 100, 1).expect("ok").granted.is_empty(), "warming up");
    c.heartbeat_in_term(&hb("w1", 1, 100, 0, 1), t0 + 200, 1).expect("ok");
    let r = c.heartbeat_in_term(&hb("w3", 1, 100, 0, 1), t0 + 300, 1).expect("ok");
    assert_eq!(r.granted.len(), 1, "every pod of the earlier leader's time reported: warm-up over");
}

#[test]
fn a_lease_the_worker_does_not_report_is_freed_at_once() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 1));
    let lost = c.heartbeat(&hb("w1", 1, 100, 0, 1), 0).expect("ok");
    assert_eq!(lost.granted.len(), 1, "granted, but say the answer never reached the worker");
    let r = c.heartbeat(&hb("w1", 1, 100, 0, 1), 100).expect("ok");
    assert_eq!(r.granted.len(), 1, "not held for the lease TTL: granted again");
    assert!(r.granted[0].key.lease_epoch > lost.granted[0].key.lease_epoch);
}

#[test]
fn workers_use_half_the_destinations_burst_together_and_at_least_one_request() {
    use super::destination::own_burst;
    for (burst, own) in [(20, 10), (21, 11), (2, 1), (1, 1), (0, 1), (-3, 1), (300, 150)] {
        assert_eq!(own_burst(burst), own, "burst {burst}");
    }
}

#[test]
fn a_completion_is_settled_once_the_status_in_the_api_records_it() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 2));
    let r = c.heartbeat(&hb("w1", 1, 100, 0, 1), 1_000).expect("ok");
    let lease = r.granted[0].clone();
    let mut beat = hb("w1", 1, 100, 100, 0);
    beat.leases = vec![progress(&lease, 100, 10, true)];
    let r = c.heartbeat(&beat, 2_000).expect("ok");
    assert!(r.settled.is_empty() && r.revoked.is_empty(), "complete, but only in this leader's memory");
    // Reported again (the worker keeps it until settled): nothing changes, nothing counted twice.
    let r = c.heartbeat(&beat, 3_000).expect("ok");
    assert!(r.settled.is_empty() && r.revoked.is_empty());
    assert_eq!(c.package_snapshot("ns", "p").map(|p| p.counters.sent), Some(10));
    // A status of another attempt, or not listing the shard, settles nothing.
    c.persist_completions("ns", "p", "uid-p", 2, &[0]);
    c.persist_completions("ns", "p", "uid-p", 1, &[1]);
    assert!(c.heartbeat(&beat, 4_000).expect("ok").settled.is_empty());
    c.persist_completions("ns", "p", "uid-p", 1, &[0]);
    let r = c.heartbeat(&beat, 5_000).expect("ok");
    assert_eq!(r.settled, vec![lease.key.clone()]);
    assert_eq!(c.package_snapshot("ns", "p").map(|p| p.counters.sent), Some(10));
}

#[test]
fn a_completion_answered_by_a_leader_that_died_before_its_status_write_reaches_the_next() {
    // The status as the dead leader last wrote it: shard 0 leased to w1, 4 records sent.
    let t0 = 1_000_000;
    let c = new_term(t0);
    let mut p = plan("p", "d", 0, 0, 2);
    p.restored.active = vec![ActiveShardState {
        id: 0,
        worker: "w1".into(),
        checkpoint: 40,
        frontier: 0,
        pending: vec![],
        attempt: 1,
        counters: LeaseCounters { read: 4, sent: 4, bytes: 40, ..Default::default() },
    }];
    c.upsert_package_at(p, t0);
    // w1 completed shard 0 (10 records) and was answered by the dead leader; it reports the
    // completion again to the new one.
    let completed = earlier_lease_report(0, 1, 100, 10, true);
    let key = completed.key.clone();
    let mut beat = hb("w1", 1, 100, 0, 0);
    beat.leases = vec![completed];
    let r = c.heartbeat_in_term(&beat, t0 + 100, 1).expect("ok");
    assert!(r.revoked.is_empty(), "taken in: {r:?}");
    let snapshot = c.package_snapshot("ns", "p").expect("known");
    assert_eq!(snapshot.completed, vec![0], "complete, not pending again: nobody sends it twice");
    assert_eq!(snapshot.counters.sent, 10);
    c.persist_completions("ns", "p", "uid-p", 1, &[0]);
    assert_eq!(c.heartbeat_in_term(&beat, t0 + 1_100, 1).expect("ok").settled, vec![key]);
}

#[test]
fn the_last_reports_of_a_deleted_destinations_workers_still_count() {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 1));
    let granted = c.heartbeat(&hb("w1", 1, 100, 0, 1), 0).expect("ok").granted;
    c.remove_destination("ns", "d");
    // The worker drains as its pods go with the Destination: its final report gives the lease
    // back at checkpoint 30 with 3 records sent.
    let mut last = hb("w1", 1, 0, 0, 0);
    last.draining = true;
    last.leases = vec![LeaseReport { released: true, ..progress(&granted[0], 30, 3, false) }];
    assert!(matches!(c.heartbeat(&last, 100), Err(HeartbeatError::UnknownDestination { .. })));
    // The Destination comes back: the shard resumes where the report left it, at once.
    c.upsert_destination("ns", "d", &dest_spec(100), 2);
    let again = c.heartbeat(&hb("w2", 2, 100, 0, 1), 200).expect("ok").granted;
    assert_eq!(again.len(), 1, "the lease given back is free at once, not after its TTL");
    assert_eq!((again[0].checkpoint, again[0].counters.sent), (30, 3), "it resumes at the reported checkpoint");
}

#[test]
fn workers_the_autoscaler_asked_for_find_work_when_they_join_a_moment_later() {
    let c = Coordinator::new(CoordinatorConfig::default());
    let mut spec = dest_spec(3_000);
    spec.workers.min = 3;
    spec.workers.max = 3;
    c.upsert_destination("ns", "d", &spec, 1);
    c.upsert_package(plan("p", "d", 0, 0, 7));
    let d = c.destination_snapshot_at("ns", "d", 0).expect("known");
    assert_eq!(d.desired_replicas, 3, "{}", d.desired_reason);
    // Each asks for 4 shards; none takes all: the first and the second the shards nearest a
    // third of the work (2 of 7, 2.33 shards' worth), the third a third of the 3 still pending
    // (1), and the rest go at the next heartbeats.
    let granted: Vec<usize> = ["w1", "w2", "w3"]
        .iter()
        .enumerate()
        .map(|(i, w)| c.heartbeat(&hb(w, 1, 100, 0, 4), 100 + i as u64).expect("ok").granted.len())
        .collect();
    assert_eq!(granted, vec![2, 2, 1]);
    assert_eq!(c.heartbeat(&hb("w3", 1, 100, 0, 3), 1_100).expect("ok").granted.len(), 1);
}

/// Two workers of demand 100 holding one shard each of package `p` (2 shards of 100 bytes),
/// sharing the limit of 100 at 50 each, by t = 300.
fn two_workers_at_half_each() -> (Coordinator, ShardLease, ShardLease) {
    let c = coordinator();
    c.upsert_package(plan("p", "d", 0, 0, 2));
    let first = c.heartbeat(&hb("w1", 1, 100, 0, 1), 0).expect("ok").granted.remove(0);
    let second = c.heartbeat(&hb("w2", 1, 100, 0, 1), 10).expect("ok").granted.remove(0);
    let beat = |w: &str, lease: &ShardLease, applied: u32, now: u64| {
        let mut req = hb(w, 1, 100, applied, 0);
        req.leases = vec![progress(lease, lease_start(lease), 0, false)];
        c.heartbeat(&req, now).expect("ok").share.requests_per_second
    };
    beat("w1", &first, 100, 20);
    beat("w1", &first, 50, 30);
    assert_eq!(beat("w2", &second, 0, 200), 50);
    assert_eq!(beat("w2", &second, 50, 300), 50);
    (c, first, second)
}

fn lease_start(lease: &ShardLease) -> u64 {
    u64::from(lease.key.shard) * 100
}

#[test]
fn a_worker_done_with_every_lease_hands_its_share_over_at_once() {
    let (c, first, second) = two_workers_at_half_each();
    // w2 reports its only lease done (every record acknowledged) and nothing is pending.
    let mut done = hb("w2", 1, 100, 50, 1);
    done.leases = vec![progress(&second, lease_start(&second) + 100, 100, true)];
    let r = c.heartbeat(&done, 400).expect("ok");
    assert!(r.granted.is_empty());
    assert_eq!(r.share.requests_per_second, 0, "no lease, no share");
    // w1's very next heartbeat gets the whole limit: w2 has nothing in flight, so neither its
    // next heartbeat nor a settling pause is waited for.
    let mut w1 = hb("w1", 1, 100, 50, 0);
    w1.leases = vec![progress(&first, lease_start(&first) + 30, 30, false)];
    assert_eq!(c.heartbeat(&w1, 401).expect("ok").share.requests_per_second, 100);
    let d = c.destination_snapshot_at("ns", "d", 402).expect("known");
    let held: u32 = d.workers.iter().map(|w| w.granted_share.max(w.applied_share)).sum();
    assert_eq!(held, 100);
}

#[test]
fn a_worker_still_sending_keeps_its_share_counted_until_it_settled() {
    let (c, first, second) = two_workers_at_half_each();
    // w2 gives its lease back unfinished (released, not done): records may be in flight.
    let mut released = hb("w2", 1, 100, 50, 0);
    let mut report = progress(&second, lease_start(&second) + 40, 40, false);
    report.released = true;
    released.leases = vec![report];
    c.heartbeat(&released, 400).expect("ok");
    let mut w1 = hb("w1", 1, 100, 50, 0);
    w1.leases = vec![progress(&first, lease_start(&first) + 30, 30, false)];
    assert_eq!(c.heartbeat(&w1, 401).expect("ok").share.requests_per_second, 50, "w2 may still be sending at 50");
}

#[test]
fn a_hungry_worker_is_asked_back_just_after_another_is_expected_to_finish() {
    let (c, first, second) = two_workers_at_half_each();
    let beat = |w: &str, lease: &ShardLease, done: u64, now: u64| {
        let mut req = hb(w, 1, 100, 50, 0);
        req.leases = vec![progress(lease, lease_start(lease) + done, done, false)];
        c.heartbeat(&req, now).expect("ok")
    };
    // w2 has 80 of its 100 bytes left, at 1 record a byte and 50/s: 1.6 s of work. w1, wanting
    // more than its half, is asked back at the usual half-second.
    beat("w2", &second, 20, 1_000);
    let r = beat("w1", &first, 20, 1_050);
    assert_eq!((r.share.requests_per_second, r.heartbeat_interval_ms), (50, 500));
    // 10 bytes left: done in about 200 ms — w1 is asked back 25 ms after that.
    beat("w2", &second, 90, 1_100);
    assert_eq!(beat("w1", &first, 25, 1_150).heartbeat_interval_ms, 1_300 - 1_150 + 25);
    // A worker without a lease could not use the capacity: its usual interval.
    assert_eq!(c.heartbeat(&hb("w3", 1, 100, 0, 0), 1_160).expect("ok").heartbeat_interval_ms, 500);
    // Due and not done yet: every 100 ms, for a second.
    assert_eq!(beat("w1", &first, 30, 1_400).heartbeat_interval_ms, 100);
    assert_eq!(beat("w1", &first, 35, 2_400).heartbeat_interval_ms, 500);
    // A shard pending: a finishing worker takes it, nothing will be released.
    c.upsert_package(plan("q", "d", 0, 0, 1));
    beat("w2", &second, 95, 2_500);
    assert_eq!(beat("w1", &first, 40, 2_550).heartbeat_interval_ms, 500);
}
