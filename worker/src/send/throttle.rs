//! When a partner's "wait" is worth pausing more than the one record it answered.
//!
//! A `Retry-After` (or `RateLimit-Reset`) always delays the record it came with. Pausing the
//! whole worker, and through the coordinator every worker of the Destination, only pays when
//! the pause outlasts the time it takes to spread it (about two heartbeats,
//! [`SHORTEST_SPREAD_PAUSE_MS`]). A strict token-bucket partner answers every request beyond
//! its limit with `Retry-After: 1` (the next token, rounded up to a second): stopping
//! everything for that second, again each time the partner's small burst is spent, had
//! workers sending a tenth of each second, a fifth of what the partner took. A partner that
//! keeps answering 429 is answered by the coordinator instead, which cuts the Destination's
//! limit once the 429s are more than a few and spread (the operator's AIMD).

use std::time::SystemTime;

pub use crate::protocol::SHORTEST_SPREAD_PAUSE_MS;

/// Whether a wait until `until`, asked at `now`, is long enough to pause everything for.
pub fn worth_pausing(until: SystemTime, now: SystemTime) -> bool {
    until.duration_since(now).is_ok_and(|ahead| ahead.as_millis() >= u128::from(SHORTEST_SPREAD_PAUSE_MS))
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
}
