//! The allowance planner through churn: workers joining, sending, killed, restarted, idle,
//! answers lost, leader changes (the new leader restores from what status holds), status
//! writes read back late, and period changes. Invariant: in every period the requests started
//! by all worker processes together (dead ones included), plus what live allowances still let
//! them start, never exceed the quota.

use proptest::prelude::*;

use super::*;

const LIMIT: u64 = 500;
const RATE: u32 = 40;

fn period(k: u64) -> Period {
    Period { start_unix_ms: 1_000_000 + k * 30_000, end_unix_ms: 1_000_000 + (k + 1) * 30_000 }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Worker i heartbeats; its answer is lost when the flag says so.
    Beat(usize, bool),
    /// Worker i starts up to n requests its allowance admits.
    Send(usize, u64),
    /// SIGKILL: its process says nothing more.
    Kill(usize),
    /// The coordinator notices a dead worker (its TTL lapsed).
    Expire(usize),
    /// A new process under the name (a restart, or a new pod).
    Start(usize),
    /// Worker i runs out of work, or gets some.
    Work(usize, bool),
    /// The leader writes `status.quota`.
    Write,
    /// The leader reads `status.quota` back.
    Read,
    /// The leader is replaced; the new one reads status (fresh) before anything else.
    LeaderChange,
    /// The next quota period begins.
    Roll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..4, prop::bool::weighted(0.1)).prop_map(|(i, lost)| Op::Beat(i, lost)),
        8 => (0usize..4, 0u64..120).prop_map(|(i, n)| Op::Send(i, n)),
        1 => (0usize..4).prop_map(Op::Kill),
        1 => (0usize..4).prop_map(Op::Expire),
        1 => (0usize..4).prop_map(Op::Start),
        1 => (0usize..4, any::<bool>()).prop_map(|(i, w)| Op::Work(i, w)),
        3 => Just(Op::Write),
        3 => Just(Op::Read),
        1 => Just(Op::LeaderChange),
        1 => Just(Op::Roll),
    ]
}

/// One worker process, as the limiter enforces its allowance.
#[derive(Debug, Clone)]
struct Process {
    incarnation: u64,
    alive: bool,
    working: bool,
    allowance: Option<QuotaAllowance>,
    used: u64,
}

impl Process {
    fn new(incarnation: u64) -> Self {
        Process { incarnation, alive: true, working: true, allowance: None, used: 0 }
    }

    fn report(&self) -> Option<QuotaReport> {
        self.allowance.map(|a| QuotaReport {
            period_start_unix_ms: a.period_start_unix_ms,
            allowed: a.requests,
            used: self.used,
        })
    }

    fn apply(&mut self, a: QuotaAllowance) {
        match self.allowance {
            Some(old) if old.period_start_unix_ms == a.period_start_unix_ms => {}
            Some(old) if old.period_start_unix_ms > a.period_start_unix_ms => return,
            _ => self.used = 0,
        }
        self.allowance = Some(a);
    }

    /// Still able to start requests in `p`: what it used there plus what it may still start.
    fn bound_in(&self, p: Period) -> u64 {
        match self.allowance {
            Some(a) if a.period_start_unix_ms == p.start_unix_ms => {
                if self.alive {
                    a.requests.max(self.used)
                } else {
                    self.used
                }
            }
            _ => 0,
        }
    }
}

struct World {
    k: u64,
    ledger: QuotaLedger,
    /// `status.quota` as stored: (period start, reserved, used).
    stored: Option<(u64, u64, u64)>,
    /// Every process ever, per slot.
    slots: Vec<Vec<Process>>,
    next_incarnation: u64,
}

impl World {
    fn new() -> Self {
        let mut ledger = QuotaLedger::new(LIMIT, period(0));
        ledger.observe_persisted(None);
        World {
            k: 0,
            ledger,
            stored: None,
            slots: (0..4).map(|i| vec![Process::new(i + 1)]).collect(),
            next_incarnation: 10,
        }
    }

    fn name(i: usize) -> String {
        format!("w-{i}")
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Beat(i, lost) => {
                let Some(p) = self.slots[i].last_mut().filter(|p| p.alive) else { return };
                self.ledger.observe(&Self::name(i), p.incarnation, p.report());
                let a = self.ledger.allowance(&Self::name(i), p.incarnation, RATE, p.working);
                if !lost {
                    p.apply(a);
                }
            }
            Op::Send(i, n) => {
                let current = period(self.k).start_unix_ms;
                let Some(p) = self.slots[i].last_mut().filter(|p| p.alive && p.working) else { return };
                if let Some(a) = p.allowance.filter(|a| a.period_start_unix_ms == current) {
                    p.used += n.min(a.requests.saturating_sub(p.used));
                }
            }
            Op::Kill(i) => {
                if let Some(p) = self.slots[i].last_mut() {
                    p.alive = false;
                }
            }
            Op::Expire(i) => {
                if let Some(p) = self.slots[i].last().filter(|p| !p.alive) {
                    self.ledger.gone(&Self::name(i), p.incarnation);
                }
            }
            Op::Start(i) => {
                if let Some(p) = self.slots[i].last_mut() {
                    p.alive = false;
                    self.ledger.gone(&Self::name(i), p.incarnation);
                }
                self.next_incarnation += 1;
                self.slots[i].push(Process::new(self.next_incarnation));
            }
            Op::Work(i, working) => {
                if let Some(p) = self.slots[i].last_mut() {
                    p.working = working;
                }
            }
            Op::Write => {
                let f = self.ledger.figures(RATE * 4);
                self.stored = Some((f.period.start_unix_ms, f.reserved, f.used));
            }
            Op::Read => self.ledger.observe_persisted(self.stored),
            Op::LeaderChange => {
                self.ledger = QuotaLedger::new(LIMIT, period(self.k));
                self.ledger.observe_persisted(self.stored);
            }
            Op::Roll => {
                self.k += 1;
                self.ledger.roll(LIMIT, period(self.k));
            }
        }
    }

    /// What all processes together may have started in the current period, at most.
    fn bound(&self) -> u64 {
        let p = period(self.k);
        self.slots.iter().flatten().map(|w| w.bound_in(p)).sum()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn allowances_never_add_up_to_more_than_the_quota(ops in prop::collection::vec(op(), 1..300)) {
        let mut world = World::new();
        for (step, op) in ops.iter().enumerate() {
            world.run(*op);
            let bound = world.bound();
            prop_assert!(bound <= LIMIT, "step {step} {op:?}: {bound} > {LIMIT}");
            if world.ledger.base.is_some() {
                prop_assert!(
                    world.ledger.committed() >= bound,
                    "step {step} {op:?}: the ledger counts {} < {bound}", world.ledger.committed()
                );
            }
        }
    }
}

/// Three working workers, heartbeats, sends and status round trips: the whole quota is used,
/// exactly, and nothing more in the period.
#[test]
fn three_busy_workers_use_exactly_the_quota() {
    let mut world = World::new();
    for round in 0..200 {
        world.run(Op::Write);
        world.run(Op::Read);
        for i in 0..3 {
            world.run(Op::Beat(i, round % 7 == 3));
            world.run(Op::Send(i, 30 + i as u64 * 7));
        }
    }
    let used: u64 = world.slots.iter().flatten().map(|p| p.used).sum();
    assert_eq!(used, LIMIT);
    assert_eq!(world.ledger.figures(RATE).remaining, 0);
    assert!(world.ledger.figures(RATE).exhausted);
}

/// An idle worker gives back what it holds unused: the busy ones use it.
#[test]
fn an_idle_workers_allowance_returns_to_the_busy_ones() {
    let mut world = World::new();
    for _ in 0..3 {
        world.run(Op::Write);
        world.run(Op::Read);
        for i in 0..3 {
            world.run(Op::Beat(i, false));
        }
    }
    world.run(Op::Work(2, false));
    for _ in 0..200 {
        world.run(Op::Write);
        world.run(Op::Read);
        for i in 0..3 {
            world.run(Op::Beat(i, false));
            world.run(Op::Send(i, 50));
        }
    }
    let used: Vec<u64> = world.slots.iter().map(|s| s.iter().map(|p| p.used).sum()).collect();
    assert_eq!(used[2], 0);
    assert_eq!(used.iter().sum::<u64>(), LIMIT, "{used:?}");
}

/// A new leader restores the period from status: it grants nothing beyond the earlier
/// leader's reservation until it has reserved more itself, and the period ends at the quota
/// less what the earlier leader had reserved but not granted (stranded by the change).
#[test]
fn a_new_leader_restores_the_period_from_status_and_the_total_stays_exact() {
    let mut world = World::new();
    for _ in 0..5 {
        world.run(Op::Write);
        world.run(Op::Read);
        for i in 0..3 {
            world.run(Op::Beat(i, false));
            world.run(Op::Send(i, 20));
        }
    }
    let stored = world.stored.expect("written");
    let granted_before = world.bound();
    world.run(Op::LeaderChange);
    assert_eq!(world.ledger.committed(), stored.1, "everything the earlier leader reserved counts");
    for _ in 0..200 {
        world.run(Op::Write);
        world.run(Op::Read);
        for i in 0..3 {
            world.run(Op::Beat(i, false));
            world.run(Op::Send(i, 20));
        }
    }
    let used: u64 = world.slots.iter().flatten().map(|p| p.used).sum();
    let stranded = stored.1 - granted_before;
    assert!(stranded <= u64::from(RATE) * 4 * RESERVE_AHEAD_SECONDS, "{stranded}");
    assert_eq!(used, LIMIT - stranded);
    // The next period starts whole.
    world.run(Op::Roll);
    for _ in 0..3 {
        world.run(Op::Write);
        world.run(Op::Read);
        for i in 0..3 {
            world.run(Op::Beat(i, false));
            world.run(Op::Send(i, 20));
        }
    }
    let f = world.ledger.figures(RATE);
    let used: u64 = world
        .slots
        .iter()
        .flatten()
        .filter(|p| p.allowance.is_some_and(|a| a.period_start_unix_ms == period(1).start_unix_ms))
        .map(|p| p.used)
        .sum();
    assert_eq!(used, 180);
    assert_eq!((f.period, f.used), (period(1), 120), "as reported: the last sends are not yet");
}

/// Before a leader has read status it grants nothing new, and a lowered allowance is freed
/// only once the worker reports enforcing it.
#[test]
fn nothing_is_granted_before_status_is_read_and_giving_back_waits_for_the_worker() {
    let mut ledger = QuotaLedger::new(100, period(0));
    let a = ledger.allowance("w", 1, 10, true);
    assert_eq!(a.requests, 0, "not restored");
    ledger.observe_persisted(Some((period(0).start_unix_ms, 40, 10)));
    assert_eq!(ledger.committed(), 40);
    assert_eq!(ledger.allowance("w", 1, 10, true).requests, 0, "the reservation is all spoken for");
    ledger.observe_persisted(Some((period(0).start_unix_ms, 70, 10)));
    assert_eq!(ledger.allowance("w", 1, 10, true).requests, 20, "two seconds of its share");
    ledger.observe("w", 1, Some(QuotaReport { period_start_unix_ms: period(0).start_unix_ms, allowed: 20, used: 5 }));
    assert_eq!(ledger.allowance("w", 1, 10, false).requests, 5, "idle: lowered to what it used");
    assert_eq!(ledger.committed(), 60, "still counted until it reports enforcing 5");
    ledger.observe("w", 1, Some(QuotaReport { period_start_unix_ms: period(0).start_unix_ms, allowed: 5, used: 5 }));
    assert_eq!(ledger.committed(), 45);
    let f = ledger.figures(10);
    assert_eq!((f.used, f.remaining, f.exhausted), (15, 55, false));
}
