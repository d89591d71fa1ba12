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
    let mut t = AckTracker::resuming(100, 500);
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
