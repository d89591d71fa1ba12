//! When a partner's "wait" is worth pausing more than the one record it answered.
//!
//! A `Retry-After` (or `RateLimit-Reset`) always delays the record it came with. Pausing the
//! whole worker, and through the coordinator every worker of the Destination, only pays when
//! the pause outlasts the time it takes to spread it (about two heartbeats,
//! [`SHORTEST_SPREAD_PAUSE_MS`]): a strict token-bucket partner answers the one request that
//! arrived a millisecond early with `Retry-After: 1`, and stopping everything for a second
//! then would cost a second of delivery for one request's worth of overshoot. A partner that
//! keeps answering 429 is handled by the coordinator, which cuts the limit and pauses the
//! Destination once the 429s are more than a few (see the operator's AIMD).

use std::sync::Mutex;
use std::time::SystemTime;

use tokio::time::Instant;

pub use crate::protocol::{CLUMP_MS, SHORTEST_SPREAD_PAUSE_MS, THROTTLE_WINDOW_MS, tolerated_429s};

/// Whether a wait until `until`, asked at `now`, is long enough to pause everything for.
pub fn worth_pausing(until: SystemTime, now: SystemTime) -> bool {
    until.duration_since(now).is_ok_and(|ahead| ahead.as_millis() >= u128::from(SHORTEST_SPREAD_PAUSE_MS))
}

/// The 429s one worker saw in the current window: more than [`tolerated_429s`], spread over
/// more than one clump ([`CLUMP_MS`]), means the partner is pushing back for real, and then even a short `Retry-After` pauses the worker
/// (a worker run without a coordinator has nobody else to cut its rate).
#[derive(Debug)]
pub struct ThrottleWindow {
    state: Mutex<Window>,
}

/// One window: when it began, its 429s, when the first of them came.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u64,
    first: Option<Instant>,
}

impl Default for ThrottleWindow {
    fn default() -> Self {
        Self { state: Mutex::new(Window { start: Instant::now(), count: 0, first: None }) }
    }
}

impl ThrottleWindow {
    /// Counts one 429 at `now`; true when the window's 429s exceed the tolerance at `rate`.
    pub fn sustained(&self, now: Instant, rate: u32) -> bool {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.duration_since(state.start).as_millis() >= u128::from(THROTTLE_WINDOW_MS) {
            *state = Window { start: now, count: 0, first: None };
        }
        state.count += 1;
        let first = *state.first.get_or_insert(now);
        let spread = now.duration_since(first).as_millis() >= u128::from(CLUMP_MS);
        spread && state.count > tolerated_429s(rate)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_waits_of_two_seconds_or_more_are_spread() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let cases = [(0, false), (999, false), (1_000, false), (1_999, false), (2_000, true), (60_000, true)];
        for (ms, want) in cases {
            assert_eq!(worth_pausing(now + Duration::from_millis(ms), now), want, "{ms} ms");
        }
        assert!(!worth_pausing(now - Duration::from_secs(5), now), "an instant in the past");
    }

    #[test]
    fn more_than_a_few_429s_in_a_window_are_sustained() {
        assert_eq!((tolerated_429s(100), tolerated_429s(1_000), tolerated_429s(50_000)), (3, 10, 500));
        let w = ThrottleWindow::default();
        let t = Instant::now();
        let seen: Vec<bool> = (0..5).map(|i| w.sustained(t + Duration::from_millis(100 * i), 100)).collect();
        assert_eq!(seen, [false, false, false, true, true]);
        assert!(!w.sustained(t + Duration::from_millis(2_400), 100), "a new window starts afresh");
    }

    #[test]
    fn a_clump_of_429s_within_100_ms_is_not_sustained() {
        let w = ThrottleWindow::default();
        let t = Instant::now();
        let clump: Vec<bool> = (0..50).map(|i| w.sustained(t + Duration::from_millis(i), 100)).collect();
        assert!(clump.iter().all(|s| !s), "50 refused within 50 ms: one clump");
        assert!(
            w.sustained(t + Duration::from_millis(150), 100),
            "one more 150 ms later: spread, and over the tolerance"
        );
    }
}
