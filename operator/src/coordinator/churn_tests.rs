//! A simulation of one Destination's workers and its coordinators through churn — workers
//! joining, killed without a goodbye, terminated gracefully, restarted in place, cut off from
//! the coordinator, limit changes, and leader changes with a gap while no replica leads — run
//! against the real [`Coordinator`] and the worker's rules for its share (the share holds until
//! the lease TTL after the heartbeat was *sent*; draining gives it back at once).
//!
//! Invariant: at every instant the shares the live workers enforce add up to no more than the
//! limit. A limit *decrease* is in force once a leader has served for a heartbeat round after
//! it (nobody can tell the workers before); and a worker that cannot reach the coordinator
//! keeps its old share until it lapses, so the bound is the largest limit that was in force
//! within the last TTL.

use std::collections::BTreeMap;

use courier_core::protocol::{
    HeartbeatRequest, HeartbeatResponse, LeaseReport, ShardLease, ThrottleReport, WorkerStats,
};
use proptest::prelude::*;

use super::handle_tests::dest_spec;
use super::leases::tests::plan;
use super::*;
use crate::planner::Millis;

const TTL: Millis = 15_000;
const INTERVAL: Millis = 1_000;

#[derive(Debug, Clone, Copy)]
enum Op {
    Join,
    /// SIGKILL: the process stops at once, says nothing.
    Kill(usize),
    /// SIGTERM: drains, says goodbye, exits.
    Terminate(usize),
    /// A killed worker's container is started again under the same name.
    Restart(usize),
    /// Cannot reach the coordinator for this long (but still reaches the partner).
    Partition(usize, Millis),
    /// The leader stops at once; the next one starts after this gap.
    LeaderChange(Millis),
    Limit(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Join),
        3 => (0usize..8).prop_map(Op::Kill),
        2 => (0usize..8).prop_map(Op::Terminate),
        2 => (0usize..8).prop_map(Op::Restart),
        1 => (0usize..8, 0u64..25_000).prop_map(|(w, d)| Op::Partition(w, d)),
        2 => (0u64..14_000).prop_map(Op::LeaderChange),
        1 => (50u32..400).prop_map(Op::Limit),
    ]
}

#[derive(Debug)]
struct Worker {
    name: String,
    incarnation: u64,
    alive: bool,
    draining: bool,
    partitioned_until: Millis,
    /// The share it enforces and until when (the TTL after the heartbeat that granted it).
    rate: u32,
    valid_until: Millis,
    leases: Vec<ShardLease>,
    /// A heartbeat is on its way: no other is sent meanwhile.
    in_flight: bool,
    /// Bumped when the process (re)starts: heartbeats of an earlier process are dropped.
    chain: u64,
}

impl Worker {
    fn enforced(&self, now: Millis) -> u32 {
        if self.alive && !self.draining && now < self.valid_until { self.rate } else { 0 }
    }
}

#[derive(Debug, Clone)]
enum Event {
    Beat(usize, u64),
    /// The answer (if any) to the heartbeat worker `.0` sent at `.1` (draining: `.2`).
    Answer(usize, Millis, bool, u64, Option<Box<HeartbeatResponse>>),
    Op(Op),
    LeaderStart,
}

struct World {
    now: Millis,
    queue: BTreeMap<(Millis, u64), Event>,
    seq: u64,
    workers: Vec<Worker>,
    leader: Option<Coordinator>,
    term: u64,
    limit: u32,
    limits: Vec<(Millis, u32)>,
    /// When each leader started and stopped serving.
    leaders: Vec<(Millis, Option<Millis>)>,
    generation: i64,
    latency: Vec<Millis>,
    next_latency: usize,
}

impl World {
    fn at(&mut self, t: Millis, e: Event) {
        self.seq += 1;
        self.queue.insert((t, self.seq), e);
    }

    fn latency(&mut self) -> Millis {
        self.next_latency += 1;
        self.latency[self.next_latency % self.latency.len()]
    }

    fn start_leader(&mut self) {
        self.term += 1;
        let c = Coordinator::new(CoordinatorConfig { lease_ttl_ms: TTL as u32, ..CoordinatorConfig::default() });
        c.begin_term(self.term, self.now);
        c.upsert_destination_at("ns", "d", &dest_spec(self.limit as i32), self.generation, self.now);
        c.upsert_package_at(plan("p", "d", 0, 0, 400), self.now);
        // The Destination controller names the worker pods that exist (a killed one whose
        // container is not restarted is gone; a draining one is still there).
        let pods = self.workers.iter().filter(|w| w.alive).map(|w| w.name.clone()).collect();
        c.set_prior_workers("ns", "d", pods);
        self.leader = Some(c);
        self.leaders.push((self.now, None));
    }

    fn request(&self, i: usize) -> HeartbeatRequest {
        let w = &self.workers[i];
        HeartbeatRequest {
            protocol_version: courier_core::protocol::PROTOCOL_VERSION,
            worker: w.name.clone(),
            incarnation: w.incarnation,
            namespace: "ns".into(),
            destination: "d".into(),
            destination_generation: self.generation,
            applied_share: w.enforced(self.now),
            demand: self.limit,
            free_slots: if w.draining || w.leases.len() >= 2 { 0 } else { 1 },
            draining: w.draining,
            leases: w
                .leases
                .iter()
                .map(|l| LeaseReport {
                    key: l.key.clone(),
                    checkpoint: l.checkpoint,
                    frontier: 0,
                    pending: vec![],
                    counters: l.counters.clone(),
                    base: l.counters.clone(),
                    failures: vec![],
                    done: false,
                    error: None,
                    released: false,
                })
                .collect(),
            throttle: ThrottleReport::default(),
            stats: WorkerStats::default(),
            quota: None,
            clock_ms: None,
        }
    }

    fn step(&mut self, e: Event) {
        match e {
            Event::Beat(i, chain) => {
                let w = &self.workers[i];
                if !w.alive || w.in_flight || w.chain != chain {
                    return;
                }
                let sent = self.now;
                let reach = self.now >= w.partitioned_until;
                let answer = match (&self.leader, reach) {
                    (Some(c), true) => {
                        let req = self.request(i);
                        c.tick(self.now);
                        c.heartbeat_in_term(&req, self.now, self.term).ok().map(Box::new)
                    }
                    _ => None,
                };
                self.workers[i].in_flight = true;
                let back = self.latency();
                let draining = self.workers[i].draining;
                self.at(self.now + back, Event::Answer(i, sent, draining, chain, answer));
                let next = if draining { 100 } else { INTERVAL };
                self.at(self.now + back + next, Event::Beat(i, chain));
            }
            Event::Answer(i, sent, draining_request, chain, answer) => {
                let w = &mut self.workers[i];
                if w.chain != chain {
                    return;
                }
                w.in_flight = false;
                if !w.alive {
                    return;
                }
                let Some(r) = answer.map(|b| *b) else { return };
                w.leases.retain(|l| !r.revoked.contains(&l.key));
                w.leases.extend(r.granted);
                w.rate = if w.draining { 0 } else { r.share.requests_per_second };
                w.valid_until = sent + u64::from(r.lease_ttl_ms);
                if std::env::var_os("CHURN_TRACE").is_some() {
                    eprintln!(
                        "{} {} applies {} (sent {}, term {}) until {}",
                        self.now, w.name, w.rate, sent, r.term, w.valid_until
                    );
                }
                if draining_request {
                    // Its goodbye was heard: the process exits.
                    w.alive = false;
                }
            }
            Event::LeaderStart => self.start_leader(),
            Event::Op(op) => self.apply(op),
        }
    }

    fn apply(&mut self, op: Op) {
        let n = self.workers.len();
        match op {
            Op::Join => {
                let i = self.workers.len();
                self.workers.push(Worker {
                    name: format!("w{i}"),
                    incarnation: 1 + i as u64 * 1000,
                    alive: true,
                    draining: false,
                    partitioned_until: 0,
                    rate: 0,
                    valid_until: 0,
                    leases: vec![],
                    in_flight: false,
                    chain: 0,
                });
                self.at(self.now, Event::Beat(i, 0));
            }
            Op::Kill(i) if i < n => {
                self.workers[i].alive = false;
                self.workers[i].chain += 1;
            }
            Op::Terminate(i) if i < n && self.workers[i].alive => {
                self.workers[i].draining = true;
                self.workers[i].rate = 0;
                let chain = self.workers[i].chain;
                self.at(self.now, Event::Beat(i, chain));
            }
            Op::Restart(i) if i < n && !self.workers[i].alive => {
                let w = &mut self.workers[i];
                w.alive = true;
                w.draining = false;
                w.incarnation += 1;
                w.rate = 0;
                w.valid_until = 0;
                w.leases.clear();
                w.in_flight = false;
                w.chain += 1;
                let chain = w.chain;
                self.at(self.now, Event::Beat(i, chain));
            }
            Op::Partition(i, d) if i < n => self.workers[i].partitioned_until = self.now + d,
            Op::LeaderChange(gap) if self.leader.take().is_some() => {
                if let Some(last) = self.leaders.last_mut() {
                    last.1 = Some(self.now);
                }
                self.at(self.now + gap, Event::LeaderStart);
            }
            Op::Limit(rps) => {
                self.limit = rps;
                self.generation += 1;
                self.limits.push((self.now, rps));
                if let Some(c) = &self.leader {
                    c.upsert_destination_at("ns", "d", &dest_spec(rps as i32), self.generation, self.now);
                }
            }
            _ => {}
        }
    }

    /// When a limit set at `changed` is in force at the workers: once a leader has served a
    /// whole heartbeat round (interval plus the slowest round trip) after it.
    fn in_force_at(&self, changed: Millis) -> Option<Millis> {
        let round = INTERVAL + 2 * 400;
        self.leaders
            .iter()
            .filter_map(|&(start, stop)| {
                let from = start.max(changed);
                let ready = from + round;
                stop.is_none_or(|s| s >= ready).then_some(ready)
            })
            .min()
    }

    /// The largest limit that was in force at the workers at any time within `window` before
    /// now (a decrease counts from when it is in force, see [`World::in_force_at`]).
    fn bound(&self, window: Millis) -> u32 {
        let since = self.now.saturating_sub(window);
        let mut bound = 0;
        for (i, &(_, l)) in self.limits.iter().enumerate() {
            let superseded = self.limits.get(i + 1).map(|&(t, next)| {
                // An increase holds at once; a decrease only once in force.
                if next >= l { t } else { self.in_force_at(t).unwrap_or(Millis::MAX) }
            });
            if superseded.is_none_or(|end| end > since) {
                bound = bound.max(l);
            }
        }
        bound
    }
}

/// Runs one scenario; the first instant at which the shares in force exceed the bound, if any.
fn simulate(ops: &[(Millis, Op)], latency: Vec<Millis>) -> Result<(), String> {
    let t0: Millis = 1_000_000;
    let mut world = World {
        now: t0,
        queue: BTreeMap::new(),
        seq: 0,
        workers: Vec::new(),
        leader: None,
        term: 0,
        limit: 200,
        limits: vec![(t0, 200)],
        leaders: Vec::new(),
        generation: 1,
        latency,
        next_latency: 0,
    };
    world.start_leader();
    let mut t = t0;
    for (gap, op) in ops {
        t += gap;
        world.at(t, Event::Op(*op));
    }
    let end = t + 30_000;
    while let Some(((at, _), e)) = world.queue.pop_first() {
        if at > end {
            break;
        }
        world.now = at;
        world.step(e);
        let enforced: u32 = world.workers.iter().map(|w| w.enforced(at)).sum();
        let bound = world.bound(TTL + CLOCK_MARGIN_MS);
        if enforced > bound {
            return Err(format!(
                "at {} ms shares add up to {enforced} > limit {bound}: {:?}",
                at - t0,
                world.workers.iter().map(|w| (w.name.as_str(), w.enforced(at), w.alive)).collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn shares_in_force_never_add_up_to_more_than_the_limit(
        ops in prop::collection::vec((200u64..4_000, op()), 5..60),
        latency in prop::collection::vec(0u64..400, 1..16),
    ) {
        if let Err(e) = simulate(&ops, latency) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn a_limit_lowered_while_no_leader_leads() {
    use Op::*;
    let ops = [
        (200, Join),
        (1465, Join),
        (2194, Join),
        (1182, Join),
        (720, LeaderChange(8568)),
        (2880, Limit(50)),
        (658, Join),
        (2288, Join),
        (2276, Kill(6)),
        (1417, LeaderChange(7694)),
        (200, Terminate(6)),
        (2461, Join),
        (3661, Join),
    ];
    let latency = vec![173, 100, 27, 72, 47, 368, 215, 0, 16, 319, 304, 72, 204, 285];
    assert_eq!(simulate(&ops, latency), Ok(()));
}

#[test]
fn a_worker_joining_while_no_leader_leads_gets_nothing_from_the_next_until_earlier_grants_lapse() {
    use Op::*;
    let ops = [
        (200, Join),
        (2518, Kill(1)),
        (558, LeaderChange(7139)),
        (3052, Join),
        (2109, Limit(50)),
        (1979, Limit(51)),
        (200, Terminate(2)),
    ];
    assert_eq!(simulate(&ops, vec![0, 5, 42]), Ok(()));
}
