use super::*;

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;

fn limited(per_second: u64, burst: u64) -> LimiterState {
    let mut s = LimiterState::unlimited(0);
    s.set_requests(Some(Rate::new(per_second, burst)), 0);
    s.fill();
    s
}

/// Admits requests arriving at `arrivals` one after another, each as soon as allowed, and
/// returns the admission instants.
fn admit_all(state: &mut LimiterState, arrivals: &[u64], cost: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut clock = 0;
    for &a in arrivals {
        clock = clock.max(a);
        loop {
            match decide(state, a, clock, cost) {
                Decision::Allow => break,
                Decision::WaitUntil(t) => {
                    assert!(t > clock, "a wait must lie in the future");
                    clock = t;
                }
                Decision::Blocked => panic!("unexpectedly blocked"),
            }
        }
        out.push(clock);
    }
    out
}

#[test]
fn table_of_rates_bursts_and_arrivals() {
    struct Case {
        name: &'static str,
        per_second: u64,
        burst: u64,
        arrivals: Vec<u64>,
        admitted: Vec<u64>,
    }
    let cases = [
        Case {
            name: "burst of one spaces every request by the interval",
            per_second: 10,
            burst: 1,
            arrivals: vec![0, 0, 0, 0],
            admitted: vec![0, 100 * MS, 200 * MS, 300 * MS],
        },
        Case {
            name: "a burst of three goes at once, the fourth waits one interval",
            per_second: 10,
            burst: 3,
            arrivals: vec![0, 0, 0, 0, 0],
            admitted: vec![0, 0, 0, 100 * MS, 200 * MS],
        },
        Case {
            name: "spaced arrivals slower than the rate are never delayed",
            per_second: 10,
            burst: 1,
            arrivals: vec![0, 150 * MS, 400 * MS],
            admitted: vec![0, 150 * MS, 400 * MS],
        },
        Case {
            name: "an idle period refills the burst but no more",
            per_second: 10,
            burst: 2,
            arrivals: vec![0, 0, 10 * S, 10 * S, 10 * S],
            admitted: vec![0, 0, 10 * S, 10 * S, 10 * S + 100 * MS],
        },
        Case {
            name: "an interval that does not divide a second is rounded up, never down",
            per_second: 3,
            burst: 1,
            arrivals: vec![0, 0, 0],
            admitted: vec![0, 333_333_334, 666_666_668],
        },
    ];
    for case in cases {
        let mut state = limited(case.per_second, case.burst);
        assert_eq!(admit_all(&mut state, &case.arrivals, 0), case.admitted, "{}", case.name);
    }
}

#[test]
fn a_late_wake_up_keeps_the_slot_so_the_long_run_rate_is_exact() {
    let mut state = limited(1000, 1);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::Allow);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::WaitUntil(MS));
    // The timer fires 0.5 ms late: the next requests are admitted on their original slots.
    let late = MS + MS / 2;
    assert_eq!(decide(&mut state, 0, late, 0), Decision::Allow);
    assert_eq!(decide(&mut state, 0, late, 0), Decision::WaitUntil(2 * MS));
}

#[test]
fn catch_up_credit_after_a_very_late_wake_up_is_capped() {
    let mut state = limited(1000, 1);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::Allow);
    // Woken 100 ms late: only MAX_CATCH_UP_NS worth of requests (plus the burst) go at once.
    let now = 100 * MS;
    let mut at_once = 0;
    while decide(&mut state, 0, now, 0) == Decision::Allow {
        at_once += 1;
    }
    assert_eq!(at_once, 1 + MAX_CATCH_UP_NS / MS);
}

#[test]
fn pause_admits_nothing_before_the_instant_then_resumes_without_a_burst() {
    let mut state = limited(10, 5);
    state.pause_until(2 * S);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::WaitUntil(2 * S));
    assert_eq!(decide(&mut state, 0, 2 * S - 1, 0), Decision::WaitUntil(2 * S));
    assert_eq!(decide(&mut state, 0, 2 * S, 0), Decision::Allow);
    assert_eq!(decide(&mut state, 0, 2 * S, 0), Decision::WaitUntil(2 * S + 100 * MS));
}

#[test]
fn an_earlier_pause_does_not_shorten_a_later_one() {
    let mut state = LimiterState::unlimited(0);
    state.pause_until(5 * S);
    state.pause_until(3 * S);
    assert_eq!(decide(&mut state, 0, 4 * S, 0), Decision::WaitUntil(5 * S));
    assert_eq!(decide(&mut state, 0, 5 * S, 0), Decision::Allow);
}

#[test]
fn a_zero_rate_blocks_until_the_rate_changes() {
    let mut state = limited(0, 1);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::Blocked);
    state.set_requests(Some(Rate::new(10, 1)), 7 * S);
    assert_eq!(decide(&mut state, 7 * S, 7 * S, 0), Decision::Allow);
}

#[test]
fn raising_the_rate_rescales_debt_already_accrued() {
    let mut state = limited(1, 1);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::Allow);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::WaitUntil(S));
    state.set_requests(Some(Rate::new(100, 1)), 0);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::WaitUntil(10 * MS));
}

#[test]
fn lowering_the_rate_applies_to_the_very_next_request() {
    let mut state = limited(100, 1);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::Allow);
    state.set_requests(Some(Rate::new(1, 1)), 0);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::WaitUntil(S));
}

#[test]
fn bytes_rate_spaces_requests_by_their_size() {
    let mut state = LimiterState::unlimited(0);
    state.set_bytes(Some(Rate::new(1000, 1000)), 0);
    state.fill();
    // 1000 bytes of burst, then 500-byte requests every half second.
    assert_eq!(admit_all(&mut state, &[0, 0, 0, 0], 500), vec![0, 0, S / 2, S]);
}

#[test]
fn a_request_larger_than_the_byte_burst_goes_when_the_bucket_is_full() {
    let mut state = LimiterState::unlimited(0);
    state.set_bytes(Some(Rate::new(100, 100)), 0);
    state.fill();
    assert_eq!(admit_all(&mut state, &[0, 0], 300), vec![0, 3 * S]);
}

#[test]
fn both_rates_must_allow_and_neither_is_charged_on_a_wait() {
    let mut state = limited(10, 10);
    state.set_bytes(Some(Rate::new(100, 100)), 0);
    state.fill();
    assert_eq!(decide(&mut state, 0, 0, 100), Decision::Allow);
    let before = state.clone();
    assert_eq!(decide(&mut state, 0, 0, 100), Decision::WaitUntil(S));
    assert_eq!(state, before);
}

#[test]
fn an_allowance_admits_exactly_its_requests_in_its_period_and_a_new_period_counts_from_zero() {
    use courier_core::protocol::{QuotaAllowance, QuotaReport};
    // Epoch at Unix second 1000.
    let mut state = LimiterState::unlimited(1_000 * S);
    let allowance = |start_s: u64, end_s: u64, requests| QuotaAllowance {
        period_start_unix_ms: start_s * 1000,
        period_end_unix_ms: end_s * 1000,
        requests,
    };
    state.set_allowance(Some(allowance(990, 1_010, 2)));
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::Allow);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::Allow);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::Blocked, "used up");
    // The same period, grown: the count goes on.
    state.set_allowance(Some(allowance(990, 1_010, 3)));
    assert_eq!(state.quota_report(), Some(QuotaReport { period_start_unix_ms: 990_000, allowed: 3, used: 2 }));
    assert_eq!(decide(&mut state, S, S, 0), Decision::Allow);
    assert_eq!(decide(&mut state, S, S, 0), Decision::Blocked);
    // Lowered below what was used (the worker had no work): still nothing more.
    state.set_allowance(Some(allowance(990, 1_010, 1)));
    assert_eq!(decide(&mut state, S, S, 0), Decision::Blocked);
    // Past the period's end nothing starts, whatever is left.
    state.set_allowance(Some(allowance(990, 1_010, 100)));
    assert_eq!(
        decide(&mut state, 10 * S - 100_000_000, 10 * S - 100_000_000, 0),
        Decision::Blocked,
        "it ends 100 ms early"
    );
    assert_eq!(decide(&mut state, 10 * S, 10 * S, 0), Decision::Blocked, "the period is over");
    // The next period counts from zero; an answer about the older one changes nothing.
    state.set_allowance(Some(allowance(1_010, 1_030, 1)));
    assert_eq!(decide(&mut state, 10 * S, 10 * S, 0), Decision::Allow);
    state.set_allowance(Some(allowance(990, 1_010, 100)));
    assert_eq!(state.quota_report(), Some(QuotaReport { period_start_unix_ms: 1_010_000, allowed: 1, used: 1 }));
    assert_eq!(decide(&mut state, 10 * S, 10 * S, 0), Decision::Blocked);
    state.set_allowance(None);
    assert_eq!(decide(&mut state, 10 * S, 10 * S, 0), Decision::Allow, "no quota");
}

#[test]
fn a_sequential_caller_woken_on_millisecond_ticks_keeps_fifty_thousand_per_second() {
    // One caller at a time; every wait ends on the next whole millisecond, like tokio's timer.
    let mut state = limited(50_000, 1);
    let mut clock = 0;
    let mut admitted = 0;
    while clock < S {
        match decide(&mut state, clock, clock, 0) {
            Decision::Allow => admitted += 1,
            Decision::WaitUntil(t) => clock = t.div_ceil(MS) * MS,
            Decision::Blocked => unreachable!(),
        }
    }
    assert!((49_950..=50_001).contains(&admitted), "admitted {admitted} in one second");
}

#[test]
fn catch_up_after_a_short_gap_is_bounded_by_the_catch_up_window() {
    let mut state = limited(50_000, 1);
    assert_eq!(decide(&mut state, 0, 0, 0), Decision::Allow);
    // Nobody asked for 1.5 ms; then a crowd arrives at once.
    let now = 1_500_000;
    let mut at_once = 0;
    while decide(&mut state, now, now, 0) == Decision::Allow {
        at_once += 1;
    }
    assert!(at_once <= 1 + MAX_CATCH_UP_NS / 20_000, "{at_once} back to back");
}

#[test]
fn a_new_rate_starts_with_an_empty_bucket_so_a_joining_worker_adds_no_burst() {
    let mut state = LimiterState::unlimited(0);
    state.set_requests(Some(Rate::new(10, 5)), 3 * S);
    let admitted = admit_all(&mut state, &[3 * S, 3 * S, 3 * S], 0);
    assert_eq!(admitted, vec![3 * S, 3 * S + 100 * MS, 3 * S + 200 * MS], "paced from the first request");
    // The burst is earned by being idle.
    let later = admit_all(&mut state, &[10 * S, 10 * S, 10 * S], 0);
    assert_eq!(later, vec![10 * S, 10 * S, 10 * S]);
}

#[test]
fn a_rate_after_a_zero_rate_starts_with_an_empty_bucket() {
    let mut state = limited(0, 5);
    state.set_requests(Some(Rate::new(10, 5)), 7 * S);
    assert_eq!(admit_all(&mut state, &[7 * S, 7 * S], 0), vec![7 * S, 7 * S + 100 * MS]);
}

#[test]
fn nothing_is_admitted_once_the_rate_expired_until_it_is_renewed() {
    let mut state = limited(10, 1);
    state.set_valid_until(Some(2 * S));
    assert_eq!(decide(&mut state, S, S, 0), Decision::Allow);
    assert_eq!(decide(&mut state, 2 * S, 2 * S, 0), Decision::Blocked, "lapsed at its expiry");
    assert_eq!(decide(&mut state, 5 * S, 5 * S, 0), Decision::Blocked);
    state.set_valid_until(Some(9 * S));
    assert_eq!(decide(&mut state, 5 * S, 5 * S, 0), Decision::Allow, "renewed");
    state.set_valid_until(None);
    assert_eq!(decide(&mut state, 20 * S, 20 * S, 0), Decision::Allow, "no expiry");
}
