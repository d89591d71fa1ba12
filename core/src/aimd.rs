//! The effective limit of a Destination: additive increase, multiplicative decrease (AIMD)
//! around the spec limit, and the Destination-wide pause asked for by `Retry-After`.
//!
//! A few 429s are tolerated: a strict partner whose limit is exactly ours answers the odd
//! request that arrived a millisecond early (network jitter) with 429, which says nothing about
//! its limit being lower. The limit is cut only when the 429s of one window are more than
//! [`AimdConfig::tolerated`] — at least 3, or 0.5 % of the requests the window carries — and
//! only when they are spread over more than one clump ([`CLUMP_MS`]): requests sent evenly that
//! a stalled process or link delivered together are refused together, within milliseconds, and
//! say nothing about the partner's limit either.
//!
//! A `Retry-After` of at least [`SHORTEST_SPREAD_PAUSE_MS`] pauses the Destination; a shorter
//! one never does, however many 429s carry it. A token-bucket partner below our limit answers
//! each refused request `Retry-After: 1`; pausing every worker for that second each time the
//! partner's burst was spent left the Destination sending a tenth of each second (measured:
//! 25-40 requests/s accepted by a partner taking 120/s), and its 429s came in one clump at each
//! resume, so the limit was never cut to the partner's. The cut is the answer to those 429s;
//! each refused record still waits for the instant it was given.
//!
//! The operator runs it per Destination on the workers' throttle reports; a worker run alone
//! (`courier-worker run`) runs the same on its own.

use courier_api::conditions::DestinationReason;

#[cfg(doc)]
use crate::protocol::CLUMP_MS;
use crate::protocol::{SHORTEST_SPREAD_PAUSE_MS, THROTTLE_WINDOW_MS, ThrottleReport, spread_beyond_a_clump};

/// Milliseconds on the caller's clock.
pub type Millis = u64;

/// AIMD tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AimdConfig {
    /// The limit is multiplied by this on a 429, in per mille (700 = ×0.7).
    pub decrease_permille: u64,
    /// At most one cut per window.
    pub window_ms: Millis,
    /// Increase per second, in per mille of the spec limit (50 = +5 % of spec per second).
    pub increase_permille_per_second: u64,
    /// Longest pause a `Retry-After` may impose.
    pub max_pause_ms: Millis,
    /// 429s tolerated per window, in per mille of the requests the window carries at the
    /// effective limit (5 = 0.5 %) ...
    pub tolerated_permille: u64,
    /// ... and at least this many.
    pub tolerated_min: u64,
}

impl Default for AimdConfig {
    fn default() -> Self {
        AimdConfig {
            decrease_permille: 700,
            window_ms: THROTTLE_WINDOW_MS,
            increase_permille_per_second: 50,
            max_pause_ms: 600_000,
            tolerated_permille: 5,
            tolerated_min: 3,
        }
    }
}

impl AimdConfig {
    /// 429s tolerated in one window at an effective limit of `effective` requests/s.
    pub fn tolerated(&self, effective: u32) -> u64 {
        let carried = u64::from(effective) * self.window_ms / 1000;
        (carried * self.tolerated_permille / 1000).max(self.tolerated_min)
    }
}

/// The adaptive limit of one Destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AimdState {
    spec: u32,
    /// Effective limit in thousandths of a request per second (smooth additive increase).
    effective_milli: u64,
    last_cut: Option<Millis>,
    last_update: Millis,
    pause_until: Option<Millis>,
    last_throttled: Option<Millis>,
    /// 429s of the current window and when it began.
    window: (Millis, u64),
    /// Whether any report of the current window had its 429s spread beyond one clump.
    window_spread: bool,
}

impl AimdState {
    /// Starts at the spec limit.
    pub fn new(spec: u32, now: Millis) -> Self {
        AimdState {
            spec,
            effective_milli: u64::from(spec) * 1000,
            last_cut: None,
            last_update: now,
            pause_until: None,
            last_throttled: None,
            window: (now, 0),
            window_spread: false,
        }
    }

    /// The spec limit.
    pub fn spec(&self) -> u32 {
        self.spec
    }

    /// Requests/s in force (at least 1).
    pub fn effective(&self) -> u32 {
        ((self.effective_milli / 1000) as u32).clamp(1, self.spec.max(1))
    }

    /// Re-bases on a new spec limit at once: the effective limit becomes the new spec.
    pub fn set_spec(&mut self, spec: u32, now: Millis) {
        if spec != self.spec {
            self.spec = spec;
            self.effective_milli = u64::from(spec) * 1000;
            self.last_update = now;
        }
    }

    /// Advances the additive increase to `now`.
    pub fn advance(&mut self, config: &AimdConfig, now: Millis) {
        // No increase while 429s are still arriving (within a window of the last one).
        let quiet_from = self.last_throttled.map_or(0, |t| t + config.window_ms);
        let from = self.last_update.max(quiet_from);
        self.last_update = self.last_update.max(now);
        let elapsed = now.saturating_sub(from);
        if elapsed == 0 {
            return;
        }
        let spec_milli = u64::from(self.spec) * 1000;
        // spec × 1000 × permille/1000 per second × elapsed/1000 s
        let step = u64::from(self.spec) * config.increase_permille_per_second * elapsed / 1000;
        self.effective_milli = (self.effective_milli + step.max(1)).min(spec_milli);
    }

    /// Takes in a heartbeat's throttle report: its 429s and an optional `Retry-After`
    /// instant. Once the window's 429s exceed the tolerance, spread over more than one clump,
    /// the limit is cut (at most once per window). A `Retry-After` of at least
    /// [`SHORTEST_SPREAD_PAUSE_MS`] pauses the Destination until the latest instant asked,
    /// capped.
    pub fn observe(&mut self, config: &AimdConfig, report: &ThrottleReport, now: Millis) {
        let (too_many, retry_until) = (report.too_many_requests, report.retry_after_until_unix_ms);
        self.advance(config, now);
        if now.saturating_sub(self.window.0) >= config.window_ms {
            self.window = (now, 0);
            self.window_spread = false;
        }
        self.window.1 += too_many;
        if too_many > 0 {
            self.window_spread |= spread_beyond_a_clump(report.spread_ms);
        }
        let sustained = self.window_spread && self.window.1 > config.tolerated(self.effective());
        if too_many > 0 && sustained {
            self.last_throttled = Some(now);
            let can_cut = self.last_cut.is_none_or(|t| now.saturating_sub(t) >= config.window_ms);
            if can_cut {
                self.effective_milli = (self.effective_milli * config.decrease_permille / 1000).max(1000);
                self.last_cut = Some(now);
            }
        }
        if let Some(until) = retry_until
            && until > now
            && until - now >= SHORTEST_SPREAD_PAUSE_MS
        {
            let until = until.min(now + config.max_pause_ms);
            self.pause_until = Some(self.pause_until.map_or(until, |p| p.max(until)));
            self.last_throttled = Some(now);
        }
    }

    /// The pause in force at `now`, if any.
    pub fn paused_until(&self, now: Millis) -> Option<Millis> {
        self.pause_until.filter(|&p| p > now)
    }

    /// Why the Destination counts as throttled at `now`: `RetryAfter` while paused,
    /// `RateLimited` while below spec after a 429 (or within a window of one).
    pub fn throttled_reason(&self, config: &AimdConfig, now: Millis) -> Option<&'static str> {
        if self.paused_until(now).is_some() {
            return Some(DestinationReason::RetryAfter.as_str());
        }
        let recent = self.last_throttled.is_some_and(|t| now.saturating_sub(t) < config.window_ms);
        if recent || self.effective() < self.spec {
            return Some(DestinationReason::RateLimited.as_str());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of `n` 429s spread as an older worker's (unknown, so spread).
    fn report(n: u64, retry_until: Option<Millis>) -> ThrottleReport {
        ThrottleReport { too_many_requests: n, retry_after_until_unix_ms: retry_until, spread_ms: None }
    }

    /// The defaults, but no 429 tolerated (the rules of cutting alone).
    const C: AimdConfig = AimdConfig {
        decrease_permille: 700,
        window_ms: 2_000,
        increase_permille_per_second: 50,
        max_pause_ms: 600_000,
        tolerated_permille: 0,
        tolerated_min: 0,
    };

    #[test]
    fn it_starts_at_the_spec_limit() {
        let s = AimdState::new(100, 0);
        assert_eq!(s.effective(), 100);
        assert_eq!(s.throttled_reason(&C, 0), None);
    }

    #[test]
    fn a_429_cuts_the_limit_multiplicatively_once_per_window() {
        let cases: &[(&[(u64, Millis)], u32)] = &[
            (&[(1, 0)], 70),
            (&[(5, 0)], 70),
            (&[(1, 0), (1, 500), (1, 1999)], 70),
            (&[(1, 0), (1, 2000)], 49),
            (&[(0, 0)], 100),
        ];
        for (reports, expected) in cases {
            let mut s = AimdState::new(100, 0);
            for &(n, t) in *reports {
                s.observe(&C, &report(n, None), t);
            }
            assert_eq!(s.effective(), *expected, "{reports:?}");
        }
    }

    #[test]
    fn the_limit_never_drops_below_one() {
        let mut s = AimdState::new(2, 0);
        for i in 0..20 {
            s.observe(&C, &report(1, None), i * 2_000);
        }
        assert_eq!(s.effective(), 1);
    }

    #[test]
    fn after_a_quiet_window_the_limit_climbs_back_additively_to_the_spec_and_no_further() {
        let mut s = AimdState::new(100, 0);
        s.observe(&C, &report(1, None), 0);
        assert_eq!(s.effective(), 70);
        let points: &[(Millis, u32)] =
            &[(1_000, 70), (2_000, 70), (3_000, 75), (4_000, 80), (6_000, 90), (8_000, 100), (60_000, 100)];
        for &(t, expected) in points {
            s.advance(&C, t);
            assert_eq!(s.effective(), expected, "at {t} ms");
        }
    }

    #[test]
    fn a_spec_change_re_bases_at_once_both_up_and_down() {
        let mut s = AimdState::new(100, 0);
        s.observe(&C, &report(1, None), 0);
        s.set_spec(200, 100);
        assert_eq!(s.effective(), 200);
        s.set_spec(20, 200);
        assert_eq!(s.effective(), 20);
        s.set_spec(20, 300);
        assert_eq!(s.effective(), 20);
    }

    #[test]
    fn retry_after_pauses_until_the_latest_instant_asked_capped() {
        let mut s = AimdState::new(100, 0);
        s.observe(&C, &report(0, Some(5_000)), 1_000);
        s.observe(&C, &report(0, Some(3_000)), 1_000);
        assert_eq!(s.paused_until(1_000), Some(5_000));
        assert_eq!(s.throttled_reason(&C, 1_000), Some("RetryAfter"));
        assert_eq!(s.paused_until(5_000), None, "over once reached");
        s.observe(&C, &report(0, Some(10_000_000)), 6_000);
        assert_eq!(s.paused_until(6_000), Some(606_000), "capped at ten minutes");
        s.observe(&C, &report(0, Some(100)), 700_000);
        assert_eq!(s.paused_until(700_000), None, "an instant in the past does not pause");
    }

    #[test]
    fn it_counts_as_rate_limited_while_below_spec() {
        let mut s = AimdState::new(100, 0);
        s.observe(&C, &report(1, None), 0);
        assert_eq!(s.throttled_reason(&C, 3_000), Some("RateLimited"));
        s.advance(&C, 20_000);
        assert_eq!(s.throttled_reason(&C, 20_000), None);
    }

    #[test]
    fn a_few_429s_per_window_are_tolerated_and_more_cut_the_limit() {
        let c = AimdConfig::default();
        assert_eq!(c.tolerated(100), 3, "at least three");
        assert_eq!(c.tolerated(1_000), 10, "0.5 % of the 2,000 requests of a 2 s window");
        assert_eq!(c.tolerated(50_000), 500);
        type Case = (&'static [(u64, Millis)], u32, &'static str);
        let cases: &[Case] = &[
            (&[(3, 0)], 1_000, "three 429s at 1,000/s"),
            (&[(10, 0)], 1_000, "ten: the tolerance"),
            (&[(11, 0)], 700, "eleven cut"),
            (&[(6, 0), (6, 1_000)], 700, "added up within one window"),
            (&[(6, 0), (6, 2_000)], 1_000, "a new window starts afresh"),
        ];
        for (reports, expected, what) in cases {
            let mut s = AimdState::new(1_000, 0);
            for &(n, t) in *reports {
                s.observe(&c, &report(n, None), t);
            }
            assert_eq!(s.effective(), *expected, "{what}");
        }
    }

    #[test]
    fn only_a_retry_after_of_two_seconds_or_more_pauses_and_a_storm_of_short_ones_cuts() {
        let c = AimdConfig::default();
        let mut s = AimdState::new(1_000, 0);
        s.observe(&c, &report(1, Some(1_000)), 0);
        assert_eq!(s.paused_until(0), None, "one early request's Retry-After: 1 is not spread");
        assert_eq!(s.throttled_reason(&c, 0), None);
        s.observe(&c, &report(0, Some(2_000)), 0);
        assert_eq!(s.paused_until(0), Some(2_000), "two seconds or more always are");
        let mut s = AimdState::new(1_000, 0);
        s.observe(&c, &report(50, Some(1_000)), 0);
        assert_eq!(s.paused_until(0), None, "a storm's short Retry-After is not spread ...");
        assert_eq!(s.effective(), 700, "... its 429s cut the limit");
        assert_eq!(s.throttled_reason(&c, 0), Some("RateLimited"));
        s.observe(&c, &report(50, Some(2_998)), 999);
        assert_eq!(s.paused_until(999), None, "1,999 ms ahead: still short");
        s.observe(&c, &report(50, Some(3_100)), 1_000);
        assert_eq!(s.paused_until(1_000), Some(3_100));
    }

    #[test]
    fn a_clump_of_429s_is_jitter_and_429s_spread_over_time_are_pushback() {
        let c = AimdConfig::default();
        let clump = |n, ms| ThrottleReport {
            too_many_requests: n,
            retry_after_until_unix_ms: Some(1_000),
            spread_ms: Some(ms),
        };
        type Case = (&'static str, &'static [(u64, u64, Millis)], u32);
        let cases: &[Case] = &[
            ("two workers each refused 30 within 9 ms", &[(30, 9, 0), (30, 4, 300)], 1_000),
            ("a clump of 500 is still one clump", &[(500, 20, 0)], 1_000),
            ("30 spread over 150 ms", &[(30, 150, 0)], 700),
            ("exactly one clump's span counts as spread", &[(30, 100, 0)], 700),
            ("a clump, then a worker refused over 400 ms in the same window", &[(8, 2, 0), (8, 400, 900)], 700),
            ("spread, but within the tolerance", &[(10, 900, 0)], 1_000),
            ("clumps in two windows are two clumps", &[(30, 5, 0), (30, 5, 2_000)], 1_000),
        ];
        for (what, reports, effective) in cases {
            let mut s = AimdState::new(1_000, 0);
            for &(n, ms, t) in *reports {
                s.observe(&c, &clump(n, ms), t);
            }
            assert_eq!(s.effective(), *effective, "{what}");
            assert_eq!(s.paused_until(0), None, "a Retry-After of one second never pauses: {what}");
        }
    }
}
