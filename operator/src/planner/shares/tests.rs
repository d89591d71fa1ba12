use proptest::prelude::*;

use super::*;

fn w(demand: u32, granted: u32, applied: u32) -> WorkerShare {
    WorkerShare { demand, granted, applied }
}

#[test]
fn proportional_split_follows_the_weights_and_spreads_the_leftover_by_remainder() {
    let cases: &[(u64, &[u32], &[u64])] = &[
        (100, &[1, 1], &[50, 50]),
        (100, &[1, 1, 1], &[34, 33, 33]),
        (10, &[3, 1], &[8, 2]),
        (7, &[1, 2, 4], &[1, 2, 4]),
        (0, &[5, 5], &[0, 0]),
        (5, &[0, 0], &[3, 2]),
        (9, &[0, 3], &[0, 9]),
        (1, &[1, 1, 1], &[1, 0, 0]),
        (1_000_000, &[u32::MAX, u32::MAX], &[500_000, 500_000]),
    ];
    for (total, weights, expected) in cases {
        assert_eq!(&proportional_split(*total, weights), expected, "total {total} weights {weights:?}");
    }
    assert!(proportional_split(10, &[]).is_empty());
}

#[test]
fn floors_lift_small_parts_for_burst_and_in_flight() {
    assert_eq!(split_with_floor(2, &[1, 1, 1, 1], 1), vec![1, 1, 1, 1]);
    assert_eq!(split_with_floor(40, &[3, 1], 1), vec![30, 10]);
}

/// Every worker heartbeats once (in order), then applies what it got.
fn round(effective: u32, ws: &mut [WorkerShare]) -> Vec<u32> {
    for i in 0..ws.len() {
        ws[i].granted = grant_for(effective, ws, i, 0);
    }
    for w in ws.iter_mut() {
        w.applied = w.granted;
    }
    ws.iter().map(|w| w.granted).collect()
}

#[test]
fn a_lone_new_worker_gets_the_whole_limit_at_once() {
    assert_eq!(grant_for(100, &[w(50, 0, 0)], 0, 0), 100);
    assert_eq!(grant_for(100, &[w(50, 0, 0)], 1, 0), 0, "an unknown worker gets nothing");
}

#[test]
fn a_joining_worker_waits_for_the_others_to_give_up_their_share() {
    let mut ws = vec![w(10, 100, 100), w(10, 0, 0)];
    assert_eq!(grant_for(100, &ws, 1, 0), 0, "w1 gets nothing while w0 may send at 100");
    ws[0].granted = grant_for(100, &ws, 0, 0);
    assert_eq!(ws[0].granted, 50, "w0 shrinks at its heartbeat");
    assert_eq!(grant_for(100, &ws, 1, 0), 0, "w0 has not applied 50 yet");
    ws[0].applied = 50;
    assert_eq!(grant_for(100, &ws, 1, 0), 50);
}

#[test]
fn a_larger_share_sent_but_not_yet_applied_is_still_counted() {
    // w0 was sent 100 and has not reported it applied; w1 joins.
    let ws = vec![w(0, 100, 0), w(10, 0, 0)];
    assert_eq!(grant_for(100, &ws, 1, 0), 0);
}

#[test]
fn a_dead_worker_share_is_free_at_once_for_the_others() {
    let mut ws = vec![w(1, 30, 30), w(1, 30, 30), w(1, 30, 30)];
    assert_eq!(round(90, &mut ws), vec![30, 30, 30]);
    ws.pop();
    assert_eq!(round(90, &mut ws), vec![45, 45]);
}

#[test]
fn a_cut_limit_is_granted_at_once_and_counted_at_the_applied_value_until_acknowledged() {
    let ws = vec![w(1, 50, 50), w(1, 50, 50)];
    assert_eq!((grant_for(70, &ws, 0, 0), grant_for(70, &ws, 1, 0)), (35, 35));
    assert_eq!(committed(&[w(1, 35, 50), w(1, 35, 50)]), 100, "not yet applied");
    assert_eq!(committed(&[w(1, 35, 35), w(1, 35, 35)]), 70);
}

#[test]
fn idle_workers_get_nothing_while_others_have_demand_and_an_even_split_when_all_are_idle() {
    assert_eq!(targets(100, &[w(0, 0, 0), w(5, 0, 0)]), vec![0, 100]);
    assert_eq!(targets(100, &[w(0, 0, 0), w(0, 0, 0)]), vec![50, 50]);
}

/// One event of the randomized sequence.
#[derive(Debug, Clone)]
enum Event {
    Join(u32),
    Leave(usize),
    Die(usize),
    Demand(usize, u32),
    /// Workers apply their grants (some of them, by mask).
    Apply(u8),
    Heartbeat(usize),
    /// The limit is raised (falling limits are covered by the acknowledgement test).
    Raise(u32),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (1u32..1000).prop_map(Event::Join),
        (0usize..8).prop_map(Event::Leave),
        (0usize..8).prop_map(Event::Die),
        ((0usize..8), (0u32..1000)).prop_map(|(i, d)| Event::Demand(i, d)),
        any::<u8>().prop_map(Event::Apply),
        (0usize..8).prop_map(Event::Heartbeat),
        (0usize..8).prop_map(Event::Heartbeat),
        (0usize..8).prop_map(Event::Heartbeat),
        (0u32..50).prop_map(Event::Raise),
    ]
}

proptest! {
    #[test]
    fn the_sum_of_held_shares_never_exceeds_the_limit_and_converges_to_the_proportional_split(
        start in 1u32..5000,
        events in proptest::collection::vec(event(), 1..80),
    ) {
        let mut effective = start;
        let mut workers: Vec<WorkerShare> = Vec::new();
        for ev in events {
            match ev {
                Event::Join(d) => workers.push(w(d, 0, 0)),
                Event::Leave(i) | Event::Die(i) => { if i < workers.len() { workers.remove(i); } }
                Event::Demand(i, d) => { if let Some(x) = workers.get_mut(i) { x.demand = d; } }
                Event::Apply(mask) => {
                    for (i, x) in workers.iter_mut().enumerate() {
                        if mask & (1 << (i % 8)) != 0 { x.applied = x.granted; }
                    }
                }
                Event::Heartbeat(i) => {
                    if i < workers.len() { workers[i].granted = grant_for(effective, &workers, i, 0); }
                }
                Event::Raise(by) => effective += by,
            }
            prop_assert!(committed(&workers) <= u64::from(effective),
                "committed {} > effective {} for {:?}", committed(&workers), effective, workers);
        }
        // Converges: a few rounds of heartbeats, each followed by everyone applying, reach the targets.
        for _ in 0..4 {
            round(effective, &mut workers);
            prop_assert!(committed(&workers) <= u64::from(effective));
        }
        let expected = targets(effective, &workers);
        let got: Vec<u32> = workers.iter().map(|x| x.granted).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn after_a_cut_the_invariant_holds_again_once_every_worker_acknowledged(
        demands in proptest::collection::vec(0u32..500, 1..8),
        start in 10u32..5000,
        cut_permille in 100u32..1000,
    ) {
        let mut workers: Vec<WorkerShare> = demands.iter().map(|&d| w(d, 0, 0)).collect();
        for _ in 0..4 {
            round(start, &mut workers);
        }
        let cut = (u64::from(start) * u64::from(cut_permille) / 1000).max(1) as u32;
        round(cut, &mut workers);
        prop_assert!(committed(&workers) <= u64::from(cut));
    }
}

#[test]
fn a_reserve_for_unknown_grants_holds_growth_back_but_never_shrinks_a_known_share() {
    let ws = [w(100, 60, 60), w(100, 0, 0)];
    assert_eq!(grant_for(100, &ws, 0, 40), 50, "its target is 50: shrinking is always allowed");
    let ws = [w(100, 60, 60)];
    assert_eq!(grant_for(100, &ws, 0, 40), 60, "it may not grow into the 40 held back");
    assert_eq!(grant_for(100, &ws, 0, 10), 90);
    assert_eq!(grant_for(100, &ws, 0, 0), 100);
}
