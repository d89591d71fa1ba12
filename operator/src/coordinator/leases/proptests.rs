//! Randomized workers against the lease table: crashes, expiries, pre-emption and replayed
//! reports never over-count, and every shard completes.

use courier_core::protocol::{LeaseCounters, LeaseReport, ShardLease};
use courier_core::shard::ShardKind;
use proptest::prelude::*;

use super::tests::plan;
use super::*;
use crate::coordinator::types::ObjectKey;

/// A worker: its leases and where it stands in each.
#[derive(Default)]
struct Worker {
    leases: Vec<(ShardLease, u64, u64)>,
}

#[derive(Debug, Clone)]
enum Step {
    Work(usize, u8),
    Crash(usize),
    Wait(u16),
    Replay(usize),
    Urgent,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => ((0usize..3), (0u8..6)).prop_map(|(w, n)| Step::Work(w, n)),
        1 => (0usize..3).prop_map(Step::Crash),
        1 => (0u16..15_000).prop_map(Step::Wait),
        1 => any::<usize>().prop_map(Step::Replay),
        1 => Just(Step::Urgent),
    ]
}

fn end_of(lease: &ShardLease) -> (u64, u64) {
    match lease.shard.kind {
        ShardKind::ByteRange { start, end } => (start, end),
        _ => (0, 0),
    }
}

/// Heartbeat of worker `w`: advance each lease by `n` records (10 bytes each), report, take grants.
fn heartbeat(
    t: &mut LeaseTable,
    workers: &mut [Worker],
    w: usize,
    n: u8,
    now: u64,
    sends: &mut u64,
    log: &mut Vec<(String, LeaseReport)>,
) {
    let name = format!("w{w}");
    t.expire(now);
    let mut keep = Vec::new();
    for (lease, mut pos, mut sent) in std::mem::take(&mut workers[w].leases) {
        let (_, end) = end_of(&lease);
        for _ in 0..n {
            if pos < end {
                pos += 10;
                sent += 1;
                *sends += 1;
            }
        }
        let report = LeaseReport {
            key: lease.key.clone(),
            checkpoint: pos,
            frontier: 0,
            pending: vec![],
            counters: LeaseCounters { read: sent, sent, bytes: sent * 10, ..Default::default() },
            base: lease.counters.clone(),
            failures: vec![],
            done: pos >= end,
            error: None,
            released: false,
        };
        log.push((name.clone(), report.clone()));
        if t.report(&name, &report, now) == ReportOutcome::Renewed {
            keep.push((lease, pos, sent));
        }
    }
    let free = 2u32.saturating_sub(keep.len() as u32);
    for lease in t.grant(&name, "ns", "d", free, now) {
        let (start, _) = end_of(&lease);
        let pos = lease.checkpoint.max(start);
        let sent = lease.counters.sent;
        keep.push((lease, pos, sent));
    }
    if free == 0 {
        t.preempt(&name, "ns", "d");
    }
    workers[w].leases = keep;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn random_workers_never_over_count_and_finish_every_shard(steps in proptest::collection::vec(step(), 0..120)) {
        let mut t = LeaseTable::new(DEFAULT_LEASE_TTL_MS);
        t.upsert_package(plan("p", "d", 0, 0, 6), 0);
        let mut workers: Vec<Worker> = (0..3).map(|_| Worker::default()).collect();
        let (mut now, mut sends, mut log) = (1u64, 0u64, Vec::new());
        let mut urgent = false;
        for s in steps {
            now += 100;
            match s {
                Step::Work(w, n) => heartbeat(&mut t, &mut workers, w, n, now, &mut sends, &mut log),
                Step::Crash(w) => workers[w].leases.clear(),
                Step::Wait(ms) => now += u64::from(ms),
                Step::Replay(i) => {
                    if !log.is_empty() {
                        let (who, r) = log[i % log.len()].clone();
                        t.report(&who, &r, now);
                    }
                }
                Step::Urgent => {
                    if !urgent {
                        urgent = true;
                        t.upsert_package(plan("u", "d", 9, now, 2), now);
                    }
                }
            }
            let counted: u64 = t.keys().filter_map(|k| t.package(k)).map(|p| p.counters().sent).sum();
            prop_assert!(counted <= sends, "counted {counted} > sent {sends}");
        }
        // Everyone keeps working (long waits let lost leases expire) until all is done.
        for round in 0..400 {
            now += if round % 20 == 19 { 11_000 } else { 100 };
            let w = round % 3;
            heartbeat(&mut t, &mut workers, w, 3, now, &mut sends, &mut log);
            if t.keys().filter_map(|k| t.package(k)).all(|p| p.complete()) {
                break;
            }
        }
        let p = t.package(&ObjectKey::new("ns", "p")).map(|p| (p.complete(), p.counters().sent));
        prop_assert_eq!(p.map(|p| p.0), Some(true));
        let counted: u64 = t.keys().filter_map(|k| t.package(k)).map(|p| p.counters().sent).sum();
        prop_assert!(counted <= sends);
        let records = 6 * 10 + if urgent { 2 * 10 } else { 0 };
        prop_assert!(counted >= records, "counted {counted} < {records} records");
    }
}
