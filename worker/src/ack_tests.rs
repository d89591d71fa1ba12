use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::*;

const SENT: Completion = Completion::Sent { bytes: 10 };

#[test]
fn a_new_tracker_checkpoints_at_its_start() {
    let t = AckTracker::new(40);
    assert_eq!(t.checkpoint().offset, 40);
    assert!(!t.checkpoint().complete);
}

#[test]
fn table_of_completion_orders_and_their_watermarks() {
    // (registered offsets, completed offsets in order, expected checkpoint offset)
    let cases: &[(&[u64], &[u64], u64)] = &[
        (&[0, 10, 20], &[], 0),
        (&[0, 10, 20], &[0], 10),
        (&[0, 10, 20], &[10], 0),
        (&[0, 10, 20], &[10, 20], 0),
        (&[0, 10, 20], &[20, 10, 0], 21),
        (&[0, 10, 20], &[0, 20], 10),
        (&[5, 7, 9, 11], &[7, 5], 9),
    ];
    for (registered, completed, expected) in cases {
        let mut t = AckTracker::new(0);
        for &o in *registered {
            t.register(o).expect("register");
        }
        for &o in *completed {
            t.complete(o, SENT).expect("complete");
        }
        assert_eq!(t.checkpoint().offset, *expected, "registered {registered:?} completed {completed:?}");
    }
}

#[test]
fn a_finished_shard_checkpoints_at_its_end_once_everything_is_acknowledged() {
    let mut t = AckTracker::new(0);
    t.register(0).expect("register");
    t.register(100).expect("register");
    t.finish(250);
    t.complete(100, SENT).expect("complete");
    assert_eq!(t.checkpoint().offset, 0);
    assert!(!t.checkpoint().complete);
    t.complete(0, Completion::DeadLettered).expect("complete");
    assert_eq!(t.checkpoint().offset, 250);
    assert!(t.checkpoint().complete);
}

#[test]
fn offsets_must_increase_and_a_record_completes_only_once() {
    let mut t = AckTracker::new(0);
    t.register(10).expect("register");
    assert_eq!(t.register(10), Err(AckError::OutOfOrder { offset: 10, last: 10 }));
    assert_eq!(t.register(3), Err(AckError::OutOfOrder { offset: 3, last: 10 }));
    t.complete(10, SENT).expect("complete");
    assert_eq!(t.complete(10, SENT), Err(AckError::NotPending(10)));
    assert_eq!(t.complete(99, SENT), Err(AckError::NotPending(99)));
}

#[test]
fn counters_add_up_by_kind_of_completion() {
    let mut t = AckTracker::new(0);
    for o in 0..4 {
        t.register(o).expect("register");
    }
    t.complete(0, Completion::Sent { bytes: 100 }).expect("complete");
    t.complete(1, Completion::Sent { bytes: 50 }).expect("complete");
    t.complete(2, Completion::DeadLettered).expect("complete");
    t.complete(3, Completion::Failed).expect("complete");
    t.add_retries(5);
    let c = t.checkpoint().counters;
    assert_eq!(c, AckCounters { sent: 2, failed: 2, dead_lettered: 1, retried: 5, bytes: 150 });
    let earlier = AckCounters { sent: 1, bytes: 100, ..AckCounters::default() };
    assert_eq!(c.since(&earlier), AckCounters { sent: 1, failed: 2, dead_lettered: 1, retried: 5, bytes: 50 });
}

#[test]
fn hundred_thousand_records_completed_in_random_windows_never_pass_a_pending_record() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut t = AckTracker::new(0);
    let mut in_flight: Vec<u64> = Vec::new();
    let mut next = 0u64;
    let total = 100_000u64;
    let mut completed = 0u64;
    while completed < total {
        // Read up to 256 records ahead, then complete a random handful of those in flight.
        while next < total && in_flight.len() < 256 {
            let offset = next * 3 + 1;
            t.register(offset).expect("register");
            in_flight.push(offset);
            next += 1;
        }
        in_flight.shuffle(&mut rng);
        let k = rng.random_range(1..=in_flight.len().min(32));
        for offset in in_flight.drain(..k) {
            t.complete(offset, SENT).expect("complete");
            completed += 1;
        }
        let expected = in_flight.iter().min().copied().unwrap_or((next - 1) * 3 + 2);
        assert_eq!(t.checkpoint().offset, expected);
    }
    t.finish(total * 3 + 1);
    assert!(t.checkpoint().complete);
    assert_eq!(t.checkpoint().counters.sent, total);
}

#[test]
fn the_checkpoint_carries_the_frontier_and_the_records_still_pending() {
    type Case = (&'static [u64], &'static [u64], u64, u64, &'static [u64]);
    // (registered, completed, checkpoint, frontier, pending)
    let cases: &[Case] = &[
        (&[], &[], 40, 40, &[]),
        (&[40, 50, 60], &[], 40, 61, &[40, 50, 60]),
        (&[40, 50, 60], &[50], 40, 61, &[40, 60]),
        (&[40, 50, 60], &[40, 60], 50, 61, &[50]),
        (&[40, 50, 60], &[40, 50, 60], 61, 61, &[]),
    ];
    for (registered, completed, checkpoint, frontier, pending) in cases {
        let mut t = AckTracker::new(40);
        for &o in *registered {
            t.register(o).expect("increasing");
        }
        for &o in *completed {
            t.complete(o, Completion::Sent { bytes: 1 }).expect("pending");
        }
        let c = t.checkpoint();
        assert_eq!(
            (c.offset, c.frontier, c.pending.as_slice()),
            (*checkpoint, *frontier, *pending),
            "{registered:?} {completed:?}"
        );
    }
}

#[test]
fn a_resumed_tracker_never_reports_a_frontier_below_the_one_it_inherited() {
    // An earlier lease read up to 500 and left 100 and 300 pending: the new one reads only those.
    let mut t = AckTracker::resuming(100, 500, &[100, 300]);
    t.register(100).expect("first");
    t.register(300).expect("second");
    assert_eq!((t.checkpoint().offset, t.checkpoint().frontier), (100, 500));
    t.complete(100, Completion::Sent { bytes: 1 }).expect("pending");
    t.complete(300, Completion::DeadLettered).expect("pending");
    let c = t.checkpoint();
    assert_eq!((c.offset, c.frontier, c.pending.len()), (301, 500, 0));
    t.register(500).expect("the next unread record");
    assert_eq!(t.checkpoint().frontier, 501);
}

#[test]
fn inherited_pending_records_stay_pending_until_this_lease_acknowledges_them_even_if_it_stops_early() {
    // The last lease read up to 500 and left 100 and 300 unacknowledged. This one acknowledges
    // 100 and stops before reading 300: its report must still hold 300 back, or the next lease
    // would skip it as acknowledged (a record lost).
    let mut t = AckTracker::resuming(100, 500, &[100, 300]);
    assert_eq!(t.checkpoint().pending, vec![100, 300], "pending from the start");
    t.register(100).expect("first");
    t.complete(100, Completion::Sent { bytes: 1 }).expect("pending");
    let c = t.checkpoint();
    assert_eq!((c.offset, c.frontier, c.pending.as_slice()), (300, 500, &[300][..]));
    assert!(!c.complete);
    t.register(300).expect("read at last");
    t.complete(300, Completion::Sent { bytes: 1 }).expect("pending");
    assert!(t.checkpoint().pending.is_empty());
}

#[test]
fn an_inherited_pending_record_the_reader_never_produces_does_not_hold_the_shard_open() {
    let mut t = AckTracker::resuming(100, 500, &[100, 300]);
    t.register(100).expect("first");
    t.complete(100, Completion::Sent { bytes: 1 }).expect("pending");
    t.finish(600);
    let c = t.checkpoint();
    assert!(c.complete && c.pending.is_empty());
}

mod leases_over_one_shard {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::ack::Resume;

    /// One lease of the shard: how many records it reads before it stops (or the shard ends),
    /// which of those it completes, and whether its last report is lost (the worker dies).
    #[derive(Debug, Clone)]
    struct LeaseRun {
        reads: usize,
        completes: Vec<bool>,
        report_lost: bool,
    }

    fn lease_run() -> impl Strategy<Value = LeaseRun> {
        (0usize..40, prop::collection::vec(prop::bool::weighted(0.8), 40), prop::bool::weighted(0.3))
            .prop_map(|(reads, completes, report_lost)| LeaseRun { reads, completes, report_lost })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Leases of one shard that stop anywhere, complete any subset of what they read and
        /// lose their last report, each resuming from the last report that arrived: every
        /// record is acknowledged in the reports exactly once and none is skipped unsent.
        #[test]
        fn every_record_is_acknowledged_exactly_once_whatever_the_leases_do(
            runs in prop::collection::vec(lease_run(), 1..12),
        ) {
            let records: Vec<u64> = (0..60u64).map(|i| i * 10).collect();
            let end = 600;
            // The coordinator's view: the last report that arrived.
            let mut resume = Resume::new(0, 0, &[]);
            let mut counted: u64 = 0; // acknowledged records the reports count
            let mut sent_ever: BTreeMap<u64, u32> = BTreeMap::new();
            let mut done = false;
            let mut leases = runs.clone();
            // Finish with a lease that reads and completes everything.
            leases.push(LeaseRun { reads: usize::MAX, completes: vec![true; 70], report_lost: false });
            for run in &leases {
                if done {
                    break;
                }
                let pending: Vec<u64> = resume.pending.iter().copied().collect();
                let mut t = AckTracker::resuming(resume.checkpoint, resume.frontier, &pending);
                let mut read = Vec::new();
                let mut ended = true;
                for &o in &records {
                    if resume.skips(o) {
                        continue;
                    }
                    if read.len() >= run.reads {
                        ended = false;
                        break;
                    }
                    t.register(o).expect("increasing");
                    read.push(o);
                }
                for (i, &o) in read.iter().enumerate() {
                    if run.completes.get(i).copied().unwrap_or(true) {
                        t.complete(o, Completion::Sent { bytes: 1 }).expect("pending");
                        *sent_ever.entry(o).or_default() += 1;
                    }
                }
                if ended {
                    t.finish(end);
                }
                let c = t.checkpoint();
                if run.report_lost {
                    continue;
                }
                counted += c.counters.sent;
                done = c.complete;
                resume = Resume::new(c.offset, c.frontier, &c.pending);
            }
            prop_assert!(done, "the last lease completes the shard");
            prop_assert_eq!(counted, records.len() as u64, "each record counted once");
            let never: BTreeSet<u64> = records.iter().copied().filter(|o| !sent_ever.contains_key(o)).collect();
            prop_assert!(never.is_empty(), "records skipped without ever being sent: {:?}", never);
        }
    }
}
