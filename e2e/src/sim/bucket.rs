//! A token bucket that judges requests in the order they arrived, even when they are read in
//! another order.
//!
//! Requests come over many connections; when the simulator is late reading, the tasks that
//! read them run in any order. A plain bucket judging a request that arrived *before* the
//! newest one it judged gives it nothing for the time between: the earlier request is refused
//! although, judged in arrival order, it fit. This bucket keeps the requests it accepted over
//! the last [`REORDER_WINDOW`] with the level each left, so an earlier arrival is judged
//! against the level at its own instant, and is accepted only if every later request already
//! accepted still fits after it (earlier answers are final). In arrival order it is exactly
//! the classic bucket.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

/// How far back an arrival judged late is placed exactly; an earlier one is judged against
/// the level at the start of the window and refills nothing.
pub const REORDER_WINDOW: Duration = Duration::from_secs(2);

/// A bucket of `burst` tokens filled at `rate` per second.
#[derive(Debug, Clone)]
pub struct ArrivalBucket {
    rate: f64,
    burst: f64,
    /// The level at `base_at`, before everything in `accepted`.
    base_at: SystemTime,
    base_level: f64,
    /// Accepted arrivals in arrival order, each with the level right after it.
    accepted: VecDeque<(SystemTime, f64)>,
}

impl ArrivalBucket {
    /// A full bucket as of `at`.
    pub fn new(rate: f64, burst: u32, at: SystemTime) -> Self {
        let burst = f64::from(burst);
        Self { rate, burst, base_at: at, base_level: burst, accepted: VecDeque::new() }
    }

    /// The level at `at` given the level `level` at `since` (no refill backwards in time).
    fn refill(&self, level: f64, since: SystemTime, at: SystemTime) -> f64 {
        let elapsed = at.duration_since(since).unwrap_or_default();
        (level + elapsed.as_secs_f64() * self.rate).min(self.burst)
    }

    /// Takes a token for a request that arrived at `at` if it fits, and says whether it did
    /// and the level right after it.
    pub fn take(&mut self, at: SystemTime) -> (bool, f64) {
        // Where `at` falls among the accepted: everything before index `place` arrived no later.
        let place = self.accepted.partition_point(|&(t, _)| t <= at);
        let (before_at, before_level) = match place {
            0 => (self.base_at, self.base_level),
            n => self.accepted[n - 1],
        };
        let level = self.refill(before_level, before_at, at);
        if level < 1.0 {
            return (false, level);
        }
        // Every later acceptance must still find its token with this one taken.
        let mut replayed = Vec::with_capacity(self.accepted.len() - place);
        let (mut prev_at, mut prev_level) = (at, level - 1.0);
        for &(t, _) in self.accepted.range(place..) {
            let later = self.refill(prev_level, prev_at, t);
            if later < 1.0 {
                return (false, level);
            }
            (prev_at, prev_level) = (t, later - 1.0);
            replayed.push(later - 1.0);
        }
        for (entry, level) in self.accepted.range_mut(place..).zip(replayed) {
            entry.1 = level;
        }
        self.accepted.insert(place, (at, level - 1.0));
        self.forget_before(at);
        (true, level - 1.0)
    }

    /// Folds acceptances older than the window behind the newest into the base.
    fn forget_before(&mut self, at: SystemTime) {
        let newest = self.accepted.back().map_or(at, |&(t, _)| t.max(at));
        let Some(horizon) = newest.checked_sub(REORDER_WINDOW) else { return };
        while let Some(&(t, level)) = self.accepted.front() {
            if t >= horizon {
                break;
            }
            (self.base_at, self.base_level) = (t, level);
            self.accepted.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::UNIX_EPOCH;

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(millis)
    }

    /// The decisions for arrivals (ms) judged in the given order.
    fn judge(rate: f64, burst: u32, order: &[u64]) -> Vec<bool> {
        let mut bucket = ArrivalBucket::new(rate, burst, at(0));
        order.iter().map(|&ms| bucket.take(at(ms)).0).collect()
    }

    #[test]
    fn judged_in_arrival_order_it_is_the_classic_bucket() {
        // 10/s, bucket of 2.
        let cases: &[(&[u64], &[bool])] = &[
            (&[0, 0, 0], &[true, true, false]),
            (&[0, 0, 100, 150, 200], &[true, true, true, false, true]),
            (&[0, 100, 200, 300, 400], &[true, true, true, true, true]),
            (&[0, 0, 0, 1000, 1000, 1000], &[true, true, false, true, true, false]),
        ];
        for (order, expected) in cases {
            assert_eq!(&judge(10.0, 2, order), expected, "arrivals {order:?}");
        }
    }

    #[test]
    fn an_earlier_arrival_read_later_is_judged_at_its_own_instant() {
        // 10/s, bucket of 1: 0 and 150 both fit in arrival order, whatever order they are read.
        assert_eq!(judge(10.0, 1, &[150, 0]), [true, true]);
        assert_eq!(judge(10.0, 1, &[0, 150]), [true, true]);
        // 0 and 50 do not both fit: the one judged first keeps its token.
        assert_eq!(judge(10.0, 1, &[50, 0]), [true, false]);
        assert_eq!(judge(10.0, 1, &[0, 50]), [true, false]);
        // Read late in reverse: 300, 200, 100, 0, each 100 ms apart — all fit.
        assert_eq!(judge(10.0, 1, &[300, 200, 100, 0]), [true; 4]);
    }

    #[test]
    fn an_earlier_arrival_that_would_take_a_later_ones_token_is_refused() {
        // 10/s, bucket of 1: 0 and 100 accepted; 60 fits at its own instant (level 0.6 + …)?
        // No: after 0 the level is 0, at 60 it is 0.6 — refused on its own.
        assert_eq!(judge(10.0, 1, &[0, 100, 60]), [true, true, false]);
        // Bucket of 2: 0 and 100 accepted (levels 1 and 1); 50 fits at its own instant (1.5)
        // and leaves 100 its token (0.5 + 0.5 = 1.0).
        assert_eq!(judge(10.0, 2, &[0, 100, 50]), [true, true, true]);
        // … but a second request at 50 would leave 100 without one.
        assert_eq!(judge(10.0, 2, &[0, 100, 50, 50]), [true, true, true, false]);
    }

    #[test]
    fn arrivals_older_than_the_window_refill_nothing_and_old_entries_are_forgotten() {
        let mut bucket = ArrivalBucket::new(10.0, 1, at(0));
        assert!(bucket.take(at(0)).0);
        for ms in (100..=5_000).step_by(100) {
            assert!(bucket.take(at(ms)).0, "at {ms}");
        }
        assert!(bucket.accepted.len() <= 21, "kept {} entries", bucket.accepted.len());
        // 2.5 s late: judged against the window's start, which has no token to give.
        assert!(!bucket.take(at(2_450)).0);
    }

    /// The promise of a token bucket over the accepted arrivals: in every interval, no more
    /// than the burst plus the rate times its length.
    fn conforms(rate: f64, burst: u32, accepted: &mut [u64]) -> bool {
        accepted.sort_unstable();
        (0..accepted.len()).all(|i| {
            (i..accepted.len()).all(|j| {
                let span = (accepted[j] - accepted[i]) as f64 / 1000.0;
                (j - i + 1) as f64 <= f64::from(burst) + rate * span + 1e-9
            })
        })
    }

    /// Arrivals (ms) from gaps, and the order a late reader takes them in.
    fn arrivals_and_reading(gaps: &[u64], delays: &[u64]) -> (Vec<u64>, Vec<u64>) {
        let arrivals: Vec<u64> = gaps
            .iter()
            .scan(0, |t, g| {
                *t += g;
                Some(*t)
            })
            .collect();
        let mut order: Vec<(u64, u64)> = arrivals.iter().zip(delays).map(|(&a, &d)| (a + d, a)).collect();
        order.sort_unstable();
        let read = order.iter().map(|&(_, a)| a).collect();
        (arrivals, read)
    }

    proptest! {
        #[test]
        fn whatever_the_reading_order_the_accepted_fit_the_bucket(
            gaps in prop::collection::vec(0u64..40, 1..120),
            delays in prop::collection::vec(0u64..300, 120),
            burst in 1u32..6,
        ) {
            let (_, read) = arrivals_and_reading(&gaps, &delays);
            let decided = judge(50.0, burst, &read);
            let mut accepted: Vec<u64> = read.iter().zip(&decided).filter(|(_, ok)| **ok).map(|(a, _)| *a).collect();
            prop_assert!(conforms(50.0, burst, &mut accepted));
        }

        #[test]
        fn a_sender_that_keeps_the_rate_is_never_refused_however_late_it_is_read(
            gaps in prop::collection::vec(21u64..60, 1..120),
            delays in prop::collection::vec(0u64..500, 120),
            burst in 1u32..6,
        ) {
            let (_, read) = arrivals_and_reading(&gaps, &delays);
            prop_assert!(judge(50.0, burst, &read).iter().all(|ok| *ok));
        }
    }
}
