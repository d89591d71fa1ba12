//! Counters stay exact through any churn: the operator's real coordinator (lease table, warm-up,
//! status written and restored across leader changes) against workers that use the worker's
//! real acknowledgement tracker and resume rule, under random kills, drains, restarts, lost
//! answers, leader changes with stale status, and out-of-order completions.
//!
//! Checked at every step: the package never counts a record the partner has not accepted.
//! Checked at the end: every record was accepted, and `sent` counts each exactly once with
//! `read == sent`.

use std::collections::BTreeMap;

use courier_api::{DatumSpec, DeliveryPackageStatus};
use courier_core::protocol::{
    HeartbeatRequest, LeaseCounters, LeaseReport, PROTOCOL_VERSION, ShardLease, ThrottleReport, WorkerStats,
};
use courier_core::shard::{ShardKind, ShardSpec};
use courier_operator::controller::package::plan::restored_from;
use courier_operator::controller::package::status::progress_of;
use courier_operator::coordinator::{
    Coordinator, CoordinatorConfig, ObjectKey, PackagePlan, PlannedShard, RestoredProgress,
};
use courier_worker::ack::{AckTracker, Completion, Resume};
use proptest::prelude::*;

const SHARDS: u64 = 6;
const RECORDS: u64 = 20;
const STEP_MS: u64 = 300;

fn offset(shard: u64, k: u64) -> u64 {
    shard * 1000 + 10 * k
}

fn datum() -> DatumSpec {
    serde_json::from_value(serde_json::json!({"format": {"type": "JsonLines"}})).expect("minimal datum")
}

fn destination() -> courier_api::DestinationSpec {
    serde_json::from_value(serde_json::json!({
        "endpoint": {"url": "http://127.0.0.1:1/"},
        "rateLimit": {"requestsPerSecond": 100},
        "workers": {"min": 0, "max": 8, "cooldownSeconds": 0, "maxInFlightPerWorker": 16}
    }))
    .expect("minimal destination")
}

fn plan(restored: RestoredProgress) -> PackagePlan {
    PackagePlan {
        key: ObjectKey::new("ns", "p"),
        uid: "uid-p".into(),
        destination: "d".into(),
        attempt: 1,
        priority: 0,
        created_unix_ms: 0,
        suspended: false,
        backoff_limit: 3,
        datum: datum(),
        dead_letter_path: "file:///tmp/dl".into(),
        shards: (0..SHARDS)
            .map(|i| PlannedShard {
                spec: ShardSpec {
                    url: "file:///data/p.jsonl".into(),
                    kind: ShardKind::ByteRange { start: i * 1000, end: (i + 1) * 1000 },
                },
                bytes: 1000,
                only_offsets: Vec::new(),
            })
            .collect(),
        restored,
    }
}

/// One lease as a worker runs it.
struct Run {
    lease: ShardLease,
    tracker: AckTracker,
    resume: Resume,
    /// Index of the next record of the shard to read.
    next: u64,
    /// Read, not completed yet, in read order.
    open: Vec<u64>,
    read: u64,
    resent: u64,
}

impl Run {
    fn new(lease: ShardLease) -> Self {
        let tracker = AckTracker::resuming(lease.checkpoint, lease.frontier, &lease.pending);
        let resume = Resume::new(lease.checkpoint, lease.frontier, &lease.pending);
        Run { lease, tracker, resume, next: 0, open: Vec::new(), read: 0, resent: 0 }
    }

    fn shard(&self) -> u64 {
        u64::from(self.lease.key.shard)
    }

    /// Reads up to `n` records, then completes those `done` picks (by index into the open
    /// ones), each accepted by the partner.
    fn work(&mut self, n: u8, done: &[bool], accepted: &mut BTreeMap<u64, u32>) {
        let shard = self.shard();
        let mut left = n;
        while left > 0 && self.next < RECORDS {
            let o = offset(shard, self.next);
            self.next += 1;
            if self.resume.skips(o) {
                continue;
            }
            self.tracker.register(o).expect("increasing offsets");
            self.open.push(o);
            self.read += 1;
            left -= 1;
        }
        if self.next >= RECORDS {
            self.tracker.finish((shard + 1) * 1000);
        }
        let mut still = Vec::new();
        for (i, o) in std::mem::take(&mut self.open).into_iter().enumerate() {
            if done.get(i).copied().unwrap_or(true) {
                self.tracker.complete(o, Completion::Sent { bytes: 1 }).expect("pending");
                *accepted.entry(o).or_default() += 1;
                if self.resume.resends(o) {
                    self.resent += 1;
                }
            } else {
                still.push(o);
            }
        }
        self.open = still;
    }

    fn report(&self, released: bool) -> LeaseReport {
        let c = self.tracker.checkpoint();
        let own = LeaseCounters {
            read: self.read,
            sent: c.counters.sent,
            bytes: c.counters.bytes,
            resent: self.resent,
            ..LeaseCounters::default()
        };
        let mut counters = self.lease.counters.clone();
        counters += &own;
        LeaseReport {
            key: self.lease.key.clone(),
            checkpoint: c.offset,
            frontier: c.frontier,
            pending: c.pending,
            counters,
            base: self.lease.counters.clone(),
            failures: vec![],
            done: c.complete,
            error: None,
            released: released && !c.complete,
        }
    }
}

struct Worker {
    name: String,
    incarnation: u64,
    alive: bool,
    runs: Vec<Run>,
}

#[derive(Debug, Clone)]
enum Op {
    /// Worker `w` works its leases (`n` records each, completing what `done` says) and
    /// heartbeats; `lost` drops the answer.
    Beat { w: usize, n: u8, done: Vec<bool>, lost: bool },
    /// SIGKILL: its leases end with it, no report.
    Kill(usize),
    /// SIGTERM: one last heartbeat giving its leases back, then gone.
    Drain(usize),
    /// Its container starts again (new incarnation).
    Restart(usize),
    /// The status writer writes the current progress.
    WriteStatus,
    /// The leader changes: the next one restores from the last status written.
    LeaderChange,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..3, 0u8..6, prop::collection::vec(prop::bool::weighted(0.7), 8), prop::bool::weighted(0.1))
            .prop_map(|(w, n, done, lost)| Op::Beat { w, n, done, lost }),
        1 => (0usize..3).prop_map(Op::Kill),
        1 => (0usize..3).prop_map(Op::Drain),
        2 => (0usize..3).prop_map(Op::Restart),
        2 => Just(Op::WriteStatus),
        1 => Just(Op::LeaderChange),
    ]
}

struct World {
    now: u64,
    term: u64,
    leader: Coordinator,
    status: DeliveryPackageStatus,
    workers: Vec<Worker>,
    accepted: BTreeMap<u64, u32>,
}

impl World {
    fn new() -> Self {
        let mut w = World {
            now: 1_000_000,
            term: 0,
            leader: Coordinator::new(CoordinatorConfig::default()),
            status: DeliveryPackageStatus::default(),
            workers: (0..3)
                .map(|i| Worker { name: format!("w{i}"), incarnation: 1, alive: true, runs: Vec::new() })
                .collect(),
            accepted: BTreeMap::new(),
        };
        w.elect();
        w
    }

    /// A new leader: a fresh coordinator that knows only the status last written.
    fn elect(&mut self) {
        self.term += 1;
        let c = Coordinator::new(CoordinatorConfig::default());
        c.begin_term(self.term, self.now);
        c.upsert_destination_at("ns", "d", &destination(), 1, self.now);
        c.set_prior_workers("ns", "d", self.workers.iter().filter(|w| w.alive).map(|w| w.name.clone()).collect());
        c.upsert_package_at(plan(restored_from(&self.status)), self.now);
        self.leader = c;
    }

    fn write_status(&mut self) {
        if let Some(snap) = self.leader.package_snapshot("ns", "p") {
            let (progress, shards, failure_reasons) = progress_of(&snap, 1);
            self.status = DeliveryPackageStatus { progress, shards, failure_reasons, ..self.status.clone() };
        }
    }

    fn beat(&mut self, w: usize, n: u8, done: &[bool], lost: bool, draining: bool) {
        let worker = &mut self.workers[w];
        if !worker.alive {
            return;
        }
        for run in &mut worker.runs {
            run.work(n, done, &mut self.accepted);
        }
        let req = HeartbeatRequest {
            protocol_version: PROTOCOL_VERSION,
            worker: worker.name.clone(),
            incarnation: worker.incarnation,
            namespace: "ns".into(),
            destination: "d".into(),
            destination_generation: 1,
            applied_share: 0,
            demand: 100,
            free_slots: if draining { 0 } else { 2u32.saturating_sub(worker.runs.len() as u32) },
            draining,
            leases: worker.runs.iter().map(|r| r.report(draining)).collect(),
            throttle: ThrottleReport::default(),
            stats: WorkerStats::default(),
            quota: None,
            clock_ms: Some(self.now),
        };
        self.leader.tick(self.now);
        let answer = self.leader.heartbeat_in_term(&req, self.now, self.term);
        let worker = &mut self.workers[w];
        if draining {
            worker.alive = false;
            worker.runs.clear();
            return;
        }
        let Ok(answer) = answer else { return };
        if lost {
            return;
        }
        // Finished leases were reported for the last time; revoked ones stop here.
        worker.runs.retain(|r| !r.tracker.checkpoint().complete && !answer.revoked.contains(&r.lease.key));
        for lease in answer.granted {
            worker.runs.push(Run::new(lease));
        }
    }

    fn apply(&mut self, op: &Op) {
        self.now += STEP_MS;
        match op {
            Op::Beat { w, n, done, lost } => self.beat(*w, *n, done, *lost, false),
            Op::Kill(w) => {
                self.workers[*w].alive = false;
                self.workers[*w].runs.clear();
            }
            Op::Drain(w) => self.beat(*w, 0, &[], false, true),
            Op::Restart(w) => {
                let worker = &mut self.workers[*w];
                if !worker.alive {
                    worker.alive = true;
                    worker.incarnation += 1;
                }
            }
            Op::WriteStatus => self.write_status(),
            Op::LeaderChange => {
                self.now += 2_000;
                self.elect();
            }
        }
    }

    fn counted(&self) -> LeaseCounters {
        self.leader.package_snapshot("ns", "p").map(|s| s.counters).unwrap_or_default()
    }

    /// Every worker comes back and works until the package is complete (or 2,000 heartbeats).
    fn finish(&mut self) {
        for w in 0..3 {
            self.apply(&Op::Restart(w));
        }
        for round in 0..2_000u32 {
            if self.complete() {
                break;
            }
            let w = (round % 3) as usize;
            self.beat(w, 5, &[], false, false);
            self.now += if round % 50 == 49 { 16_000 } else { STEP_MS };
        }
    }

    fn complete(&self) -> bool {
        self.leader.package_snapshot("ns", "p").is_some_and(|s| s.complete)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn counters_are_exact_through_kills_drains_restarts_lost_answers_and_leader_changes(
        ops in prop::collection::vec(op(), 0..150),
    ) {
    let _turn = courier_e2e::testkit::turn(module_path!());
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
            let distinct = world.accepted.len() as u64;
            let counted = world.counted();
            prop_assert!(counted.sent <= distinct, "counted {} sent, the partner has {} distinct records after {op:?}", counted.sent, distinct);
        }
        // Then every worker comes back and works until the package is complete.
        world.finish();
        prop_assert!(world.complete(), "the package completes");
        let c = world.counted();
        let records = SHARDS * RECORDS;
        prop_assert_eq!(world.accepted.len() as u64, records, "every record reached the partner");
        prop_assert_eq!(c.sent, records, "each record counted exactly once: {:?}", c);
        prop_assert_eq!(c.read, c.sent, "read == sent: {:?}", c);
    }
}

/// Runs `ops`, then brings every worker back and works until the package completes; returns
/// the final counters (printing each step's for a failing case).
fn replay(ops: &[Op]) -> LeaseCounters {
    let mut world = World::new();
    for op in ops {
        world.apply(op);
        let snap = world.leader.package_snapshot("ns", "p");
        eprintln!(
            "after {op:?}: {:?} active {:?}",
            world.counted(),
            snap.map(|s| s
                .active
                .iter()
                .map(|a| (a.id, a.worker.clone(), a.counters.sent, a.checkpoint, a.frontier, a.pending.clone()))
                .collect::<Vec<_>>())
        );
    }
    eprintln!("status: {:?} {:?}", world.status.progress.records, world.status.shards);
    world.finish();
    assert!(world.complete(), "the package completes");
    assert_eq!(world.accepted.len() as u64, SHARDS * RECORDS, "every record reached the partner");
    world.counted()
}

fn idle(w: usize) -> Op {
    Op::Beat { w, n: 0, done: vec![false; 8], lost: false }
}

#[test]
fn a_drained_lease_whose_status_was_written_after_it_went_back_is_counted_once() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let ops = [
        idle(2),
        idle(1),
        idle(0),
        idle(0),
        Op::Beat { w: 0, n: 1, done: vec![false; 8], lost: false },
        Op::Drain(0),
        Op::WriteStatus,
        Op::Kill(0),
        Op::LeaderChange,
    ];
    assert_eq!(replay(&ops).sent, SHARDS * RECORDS);
}

#[test]
fn a_lease_adopted_by_a_leader_that_had_no_status_then_drained_is_counted_once() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let ops = [
        idle(0),
        idle(0),
        idle(2),
        idle(1),
        Op::LeaderChange,
        Op::Beat { w: 1, n: 1, done: vec![false; 8], lost: false },
        Op::Drain(1),
        idle(0),
        Op::WriteStatus,
        Op::LeaderChange,
    ];
    assert_eq!(replay(&ops).sent, SHARDS * RECORDS);
}
