use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;

fn record(holder: Option<&str>, rv: &str) -> LeaseRecord {
    LeaseRecord { holder: holder.map(str::to_owned), duration_seconds: 10, transitions: 0, resource_version: rv.into() }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_missing_lease_is_created_and_a_released_one_acquired_at_once() {
    let t = Instant::now();
    let mut seen = None;
    assert_eq!(decide("a", false, None, &mut seen, t), Step::Create);
    assert_eq!(decide("a", false, Some(&record(None, "1")), &mut seen, t), Step::Acquire);
    assert_eq!(
        decide("a", false, Some(&record(Some(""), "2")), &mut seen, t),
        Step::Acquire,
        "empty holder = released"
    );
}

#[test]
fn the_holder_renews_its_own_lease() {
    let mut seen = None;
    assert_eq!(decide("a", true, Some(&record(Some("a"), "7")), &mut seen, Instant::now()), Step::Renew);
}

#[test]
fn a_holder_that_stepped_down_takes_its_lease_again_as_a_new_term() {
    // It could not renew in time (the apiserver or etcd was away) and stopped leading; the
    // Lease still names it. Taking it back counts a transition: a new term, not a renewal.
    let mut seen = None;
    assert_eq!(decide("a", false, Some(&record(Some("a"), "7")), &mut seen, Instant::now()), Step::Acquire);
}

#[test]
fn a_candidate_takes_over_only_after_the_record_stood_still_for_the_lease_duration_on_its_own_clock() {
    let t0 = Instant::now();
    let mut seen = None;
    let held = record(Some("b"), "5");
    assert_eq!(
        decide("a", false, Some(&held), &mut seen, t0),
        Step::Follow { holder: "b".into(), until: t0 + secs(10) },
        "first sight starts the clock, whatever renewTime says"
    );
    assert!(matches!(decide("a", false, Some(&held), &mut seen, t0 + secs(9)), Step::Follow { .. }));
    // The holder renewed at 9 s: the clock starts again from when the candidate saw it.
    let renewed = record(Some("b"), "6");
    assert_eq!(
        decide("a", false, Some(&renewed), &mut seen, t0 + secs(9)),
        Step::Follow { holder: "b".into(), until: t0 + secs(19) }
    );
    assert!(matches!(decide("a", false, Some(&renewed), &mut seen, t0 + secs(18)), Step::Follow { .. }));
    assert_eq!(decide("a", false, Some(&renewed), &mut seen, t0 + secs(19)), Step::Acquire);
}

#[test]
fn a_new_holder_restarts_the_observation() {
    let t0 = Instant::now();
    let mut seen = None;
    decide("a", false, Some(&record(Some("b"), "5")), &mut seen, t0);
    let step = decide("a", false, Some(&record(Some("c"), "9")), &mut seen, t0 + secs(8));
    assert_eq!(step, Step::Follow { holder: "c".into(), until: t0 + secs(18) });
}

#[test]
fn unsafe_timings_are_refused() {
    let ok = ElectionConfig::default();
    assert_eq!(ok.validate(), Ok(()));
    let cases = [
        ElectionConfig { renew_deadline: secs(10), ..ok },
        ElectionConfig { renew_deadline: secs(12), ..ok },
        ElectionConfig { retry_period: secs(7), ..ok },
        ElectionConfig { lease_duration: Duration::from_millis(1500), ..ok },
        ElectionConfig { lease_duration: Duration::ZERO, ..ok },
    ];
    for c in cases {
        assert!(c.validate().is_err(), "{c:?} must be refused");
    }
    assert_eq!(ok.duration_seconds(), 10);
}

// --- A simulation: replicas electing against one Lease with resourceVersion semantics ----------

/// The apiserver's copy of the Lease.
#[derive(Debug, Clone, Default)]
struct Server {
    lease: Option<LeaseRecord>,
    rv: u64,
}

impl Server {
    /// A write guarded by `expected` (None = create). Returns whether it was applied.
    fn write(&mut self, expected: Option<&str>, holder: &str, transitions: i32) -> bool {
        let matches = match (&self.lease, expected) {
            (None, None) => true,
            (Some(l), Some(rv)) => l.resource_version == rv,
            _ => false,
        };
        if matches {
            self.rv += 1;
            self.lease = Some(LeaseRecord {
                holder: Some(holder.to_owned()),
                duration_seconds: 10,
                transitions,
                resource_version: self.rv.to_string(),
            });
        }
        matches
    }
}

/// One round of one replica: read, decide, maybe write; the latencies of the four legs, the
/// pause before its next round, and whether it dies then (and comes back as a new process).
#[derive(Debug, Clone, Copy)]
struct Round {
    latency_ms: [u64; 4],
    gap_ms: u64,
    dies: bool,
}

fn round() -> impl Strategy<Value = Round> {
    (prop::array::uniform4(prop_oneof![4 => 0u64..200, 1 => 0u64..12_000]), 0u64..2_000, prop::bool::weighted(0.05))
        .prop_map(|(latency_ms, gap_ms, dies)| Round { latency_ms, gap_ms, dies })
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The replica's read reaches the server.
    ReadServed,
    /// The read's answer reaches the replica, which decides.
    ReadAnswered,
    /// The write reaches the server.
    WriteServed,
    /// The write's answer reaches the replica.
    WriteAnswered,
}

struct Replica {
    name: String,
    incarnation: u32,
    observed: Option<Observation>,
    round: usize,
    started: Instant,
    read: Option<LeaseRecord>,
    step: Option<Step>,
    write_ok: bool,
    /// The end of its current leading interval, if it led.
    leading_until: Option<Instant>,
    /// `leaseTransitions` of its last successful write: the term it leads in.
    term: i32,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the latencies (up to 12 s per leg: a partitioned replica), pauses, deaths and
    /// interleavings, the intervals during which replicas count themselves leader never overlap.
    #[test]
    fn no_two_replicas_ever_lead_at_once(rounds in prop::collection::vec(prop::collection::vec(round(), 1..40), 3)) {
        let config = ElectionConfig::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut server = Server::default();
        let mut replicas: Vec<Replica> = (0..3)
            .map(|i| Replica {
                name: format!("r{i}"),
                incarnation: 0,
                observed: None,
                round: 0,
                started: t0,
                read: None,
                step: None,
                write_ok: false,
                leading_until: None,
                term: 0,
            })
            .collect();
        // (time, replica, event), earliest first.
        let mut queue: std::collections::BTreeSet<(Instant, usize, Event)> = std::collections::BTreeSet::new();
        for (i, r) in rounds.iter().enumerate() {
            queue.insert((t0 + ms(r[0].latency_ms[0]), i, Event::ReadServed));
        }
        let mut intervals: Vec<(String, Instant, Instant)> = Vec::new();
        let mut terms: Vec<(String, i32)> = Vec::new();
        while let Some((now, i, event)) = queue.pop_first() {
            let rep = &mut replicas[i];
            let Some(plan) = rounds[i].get(rep.round).copied() else { continue };
            match event {
                Event::ReadServed => {
                    rep.read = server.lease.clone();
                    queue.insert((now + ms(plan.latency_ms[1]), i, Event::ReadAnswered));
                }
                Event::ReadAnswered => {
                    let leading = rep.leading_until.is_some_and(|until| now < until);
                    let step = decide(&rep.name, leading, rep.read.as_ref(), &mut rep.observed, now);
                    let writes = !matches!(step, Step::Follow { .. });
                    rep.step = Some(step);
                    if writes {
                        queue.insert((now + ms(plan.latency_ms[2]), i, Event::WriteServed));
                    } else {
                        rep.write_ok = false;
                        queue.insert((now, i, Event::WriteAnswered));
                    }
                }
                Event::WriteServed => {
                    let current = rep.read.clone();
                    rep.write_ok = match &rep.step {
                        Some(Step::Create) => {
                            rep.term = 0;
                            server.write(None, &rep.name, 0)
                        }
                        Some(step @ (Step::Acquire | Step::Renew)) => {
                            let rv = current.as_ref().map(|l| l.resource_version.clone()).unwrap_or_default();
                            let transitions =
                                current.as_ref().map_or(0, |l| l.transitions) + i32::from(*step == Step::Acquire);
                            rep.term = transitions;
                            server.write(Some(&rv), &rep.name, transitions)
                        }
                        _ => false,
                    };
                    queue.insert((now + ms(plan.latency_ms[3]), i, Event::WriteAnswered));
                }
                Event::WriteAnswered => {
                    let lapsed = rep.step == Some(Step::Renew) && rep.leading_until.is_none_or(|u| now >= u);
                    if rep.write_ok && lapsed {
                        // A renewal answered after leading lapsed: not leading; the next round
                        // takes the Lease as a new term (as the elector does).
                        rep.leading_until = None;
                    } else if rep.write_ok {
                        // Leads from now until the deadline counted from the start of the round
                        // (the read before the write), as the elector does.
                        let until = config.leading_until(rep.started);
                        if now < until {
                            // A renewal within the interval continues the term; a write after
                            // it ended (the replica stepped down) must begin a new one.
                            let continues = rep.leading_until.is_some_and(|u| now < u);
                            if let (false, Some(last)) = (continues, terms.iter().rev().find(|t| t.0 == rep.name)) {
                                prop_assert!(rep.term > last.1, "{} led again in term {} after term {}", rep.name, rep.term, last.1);
                            }
                            terms.push((rep.name.clone(), rep.term));
                            intervals.push((rep.name.clone(), now, until));
                            rep.leading_until = Some(until);
                        }
                    }
                    // Next round.
                    let mut next = now + ms(plan.gap_ms);
                    if plan.dies {
                        // A new process: new identity, no memory, back after a while.
                        rep.incarnation += 1;
                        rep.name = format!("r{i}-{}", rep.incarnation);
                        rep.observed = None;
                        rep.leading_until = None;
                        next += ms(5_000);
                    }
                    rep.round += 1;
                    rep.started = next;
                    if let Some(n) = rounds[i].get(rep.round) {
                        queue.insert((next + ms(n.latency_ms[0]), i, Event::ReadServed));
                    }
                }
            }
        }
        for (k, x) in intervals.iter().enumerate() {
            for y in &intervals[k + 1..] {
                if x.0 != y.0 {
                    let overlap = x.1 < y.2 && y.1 < x.2;
                    prop_assert!(!overlap, "{} and {} led at once: {:?} and {:?}", x.0, y.0, x, y);
                }
            }
        }
    }
}

#[test]
fn an_election_round_is_given_up_well_before_the_renew_deadline() {
    let ms = Duration::from_millis;
    for (renew, retry, expected) in
        [(secs(7), secs(1), secs(2)), (secs(7), secs(3), secs(3)), (secs(2), ms(200), secs(1))]
    {
        let c = ElectionConfig { renew_deadline: renew, retry_period: retry, ..ElectionConfig::default() };
        assert_eq!(c.round_timeout(), expected, "renew {renew:?}, retry {retry:?}");
    }
}
