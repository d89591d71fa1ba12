//! The pure core of the limiter: virtual-scheduling GCRA on nanosecond timestamps, with no
//! clock and no I/O, so every rule is table-tested.
//!
//! Times are nanoseconds since the limiter's epoch. A request *arrives* when `acquire` is
//! called and may be admitted at `now` once every constraint allows it. While the schedule is
//! current — the theoretical arrival time (TAT) is at most [`MAX_CATCH_UP_NS`] behind `now` —
//! the TAT advances from itself, so requests that a timer wakes late (tokio's resolution is
//! 1 ms, while 50 k/s means one slot per 20 µs) keep their slots and the long-run rate stays
//! exact, whether the waiters queue concurrently or come one after another. The price is a
//! bounded catch-up: after a late wake-up or a gap shorter than `MAX_CATCH_UP_NS`, up to that
//! much time's worth of requests may go back to back (beyond the burst). After a longer idle
//! period the schedule restarts at the arrival, with the burst only.
//!
//! A rate set where there was none (a new share, or a share after a zero rate) starts with
//! an empty bucket: the burst is earned by being idle, never handed out at start. Otherwise
//! every worker that joins a Destination already sending at its limit would add its burst on
//! top, draining the partner's bucket for good (see `docs/architecture.md`, rate shares).
//!
//! A rate may be given an expiry ([`LimiterState::set_valid_until`]): past it nothing is
//! admitted until the rate is renewed, which is how a worker's share lapses when its
//! coordinator stops answering.
//!
//! A quota allowance ([`LimiterState::set_allowance`]) caps the requests started in one quota
//! period; used up, or past its period's end, nothing is admitted until a new one comes.

const NANOS_PER_SECOND: u128 = 1_000_000_000;

use courier_core::protocol::{QuotaAllowance, QuotaReport};

/// No request starts in the last this many milliseconds of a quota period, so one in flight
/// at the boundary still reaches the partner (who counts arrivals) within the period.
pub const QUOTA_END_GUARD_MS: u64 = 100;

/// Largest lateness of a wake-up that is credited back to the waiters (2 ms).
pub const MAX_CATCH_UP_NS: u64 = 2_000_000;

/// A rate: `per_second` units on average, at most `burst` units at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Units per second; 0 admits nothing until the rate changes.
    pub per_second: u64,
    /// Units admitted back to back after an idle period (at least 1).
    pub burst: u64,
}

impl Rate {
    /// A rate of `per_second` with a burst of `burst` (a burst of 0 is treated as 1).
    pub fn new(per_second: u64, burst: u64) -> Self {
        Self { per_second, burst: burst.max(1) }
    }

    /// Nanoseconds that `units` units occupy, rounded up so the limiter never runs fast.
    fn span_ns(&self, units: u64) -> u64 {
        if self.per_second == 0 {
            return u64::MAX;
        }
        let ns = (u128::from(units) * NANOS_PER_SECOND).div_ceil(u128::from(self.per_second));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// One generic cell rate algorithm: a rate and its theoretical arrival time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gcra {
    rate: Rate,
    tat: u64,
}

impl Gcra {
    /// A schedule starting at `now` with an empty bucket: the first unit goes at once, the
    /// next ones at the rate.
    fn drained(rate: Rate, now: u64) -> Self {
        let mut g = Self { rate, tat: 0 };
        g.drain(now);
        g
    }

    /// Empties the bucket as of `at` (the TAT is never moved back).
    fn drain(&mut self, at: u64) {
        if self.rate.per_second == 0 {
            return;
        }
        let empty_at = at.saturating_add(self.rate.span_ns(self.rate.burst)).saturating_sub(self.rate.span_ns(1));
        self.tat = self.tat.max(empty_at);
    }

    /// The earliest admission instant of `cost` units and the TAT after admitting them.
    /// `None` when the rate is zero.
    fn earliest(&self, arrival: u64, now: u64, cost: u64) -> Option<(u64, u64)> {
        if self.rate.per_second == 0 {
            return None;
        }
        let increment = self.rate.span_ns(cost);
        // A single request larger than the burst is admitted when the bucket is full.
        let limit = self.rate.span_ns(self.rate.burst).max(increment);
        let base = if self.tat >= now.saturating_sub(MAX_CATCH_UP_NS) {
            // The schedule is current (or at most MAX_CATCH_UP_NS behind, as after a timer that
            // fired late): continue it, so the slots that passed are not lost.
            self.tat
        } else {
            // Idle for longer: start afresh at the arrival, crediting at most MAX_CATCH_UP_NS.
            self.tat.max(arrival).max(now.saturating_sub(MAX_CATCH_UP_NS))
        };
        let new_tat = base.saturating_add(increment);
        Some((new_tat.saturating_sub(limit), new_tat))
    }

    /// Changes the rate; debt already accrued (TAT ahead of `now`) is rescaled to the new
    /// rate so a raised share applies at once and a lowered one does not wait for old debt.
    fn set_rate(&mut self, rate: Rate, now: u64) {
        let old = self.rate;
        self.rate = rate;
        if old.per_second == 0 {
            // Nothing was admitted under a zero rate: start afresh, without a burst.
            self.tat = 0;
            self.drain(now);
            return;
        }
        if self.tat <= now {
            return;
        }
        if rate.per_second == 0 {
            self.tat = now;
            return;
        }
        let debt = u128::from(self.tat - now) * u128::from(old.per_second) / u128::from(rate.per_second);
        self.tat = now.saturating_add(u64::try_from(debt).unwrap_or(u64::MAX));
    }
}

/// A quota allowance from the coordinator: at most `limit` requests started in the period
/// that began at `period` (Unix ms), and none from `ends` on (ns since the epoch) until a
/// newer allowance comes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allowance {
    period: u64,
    ends: u64,
    limit: u64,
    used: u64,
}

/// Everything the limiter decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterState {
    requests: Option<Gcra>,
    bytes: Option<Gcra>,
    allowance: Option<Allowance>,
    pause_until: u64,
    /// Nothing is admitted from this instant on, until it is moved (a lapsed share).
    valid_until: Option<u64>,
    /// Unix time in nanoseconds at the limiter's epoch, to place the end of a quota period.
    wall_at_epoch: u64,
}

/// What the limiter says to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send now; the state has been charged.
    Allow,
    /// Ask again at this instant (nanoseconds since the epoch).
    WaitUntil(u64),
    /// The rate is zero: nothing is admitted until the rate changes.
    Blocked,
}

impl LimiterState {
    /// A state with no limit at all; `wall_at_epoch` is the Unix time (ns) of the epoch.
    pub fn unlimited(wall_at_epoch: u64) -> Self {
        Self { requests: None, bytes: None, allowance: None, pause_until: 0, valid_until: None, wall_at_epoch }
    }

    /// Sets (or removes, with `None`) the requests-per-second rate.
    pub fn set_requests(&mut self, rate: Option<Rate>, now: u64) {
        set(&mut self.requests, rate, now);
    }

    /// Sets (or removes) the bytes-per-second rate.
    pub fn set_bytes(&mut self, rate: Option<Rate>, now: u64) {
        set(&mut self.bytes, rate, now);
    }

    /// Sets (or removes) the quota allowance. Within the same period the count goes on (the
    /// allowance is cumulative); a newer period starts counting at 0; an allowance of an older
    /// period than the one in force is ignored.
    pub fn set_allowance(&mut self, allowance: Option<QuotaAllowance>) {
        let Some(a) = allowance else {
            self.allowance = None;
            return;
        };
        let end_ms = a.period_end_unix_ms.saturating_sub(QUOTA_END_GUARD_MS);
        let ends = end_ms.saturating_mul(1_000_000).saturating_sub(self.wall_at_epoch);
        self.allowance = match self.allowance.take() {
            Some(q) if q.period > a.period_start_unix_ms => Some(q),
            Some(q) if q.period == a.period_start_unix_ms => Some(Allowance { ends, limit: a.requests, ..q }),
            _ => Some(Allowance { period: a.period_start_unix_ms, ends, limit: a.requests, used: 0 }),
        };
    }

    /// The allowance in force and what was used of it.
    pub fn quota_report(&self) -> Option<QuotaReport> {
        self.allowance.as_ref().map(|q| QuotaReport { period_start_unix_ms: q.period, allowed: q.limit, used: q.used })
    }

    /// Admits nothing before `until`; after it the request rate resumes smoothly, without a
    /// burst. An earlier instant than the current pause is ignored.
    pub fn pause_until(&mut self, until: u64) {
        if until <= self.pause_until {
            return;
        }
        self.pause_until = until;
        if let Some(g) = &mut self.requests {
            g.drain(until);
        }
    }

    /// Admits nothing from `until` on (`None`: no expiry), until this is called again.
    pub fn set_valid_until(&mut self, until: Option<u64>) {
        self.valid_until = until;
    }

    /// The expiry of the rates, if any.
    pub fn valid_until(&self) -> Option<u64> {
        self.valid_until
    }

    /// The current pause instant (0 when never paused).
    pub fn paused_until(&self) -> u64 {
        self.pause_until
    }

    /// The current requests-per-second rate, if limited.
    pub fn requests_rate(&self) -> Option<Rate> {
        self.requests.as_ref().map(|g| g.rate)
    }

    /// The current bytes-per-second rate, if limited.
    pub fn bytes_rate(&self) -> Option<Rate> {
        self.bytes.as_ref().map(|g| g.rate)
    }
}

fn set(slot: &mut Option<Gcra>, rate: Option<Rate>, now: u64) {
    match (slot.as_mut(), rate) {
        (_, None) => *slot = None,
        (Some(g), Some(rate)) => g.set_rate(rate, now),
        (None, Some(rate)) => *slot = Some(Gcra::drained(rate, now)),
    }
}

/// Decides on one request of `cost_bytes` bytes that arrived at `arrival`, asked at `now`.
/// On [`Decision::Allow`] the state is charged; otherwise it is left unchanged.
pub fn decide(state: &mut LimiterState, arrival: u64, now: u64, cost_bytes: u64) -> Decision {
    if state.valid_until.is_some_and(|v| now >= v) {
        return Decision::Blocked;
    }
    if now < state.pause_until {
        return Decision::WaitUntil(state.pause_until);
    }
    if let Some(q) = &state.allowance
        && (q.used >= q.limit || now >= q.ends)
    {
        // Used up, or its period is over: only a new allowance admits more.
        return Decision::Blocked;
    }
    let mut start = 0;
    let mut request_tat = None;
    if let Some(g) = &state.requests {
        let Some((at, tat)) = g.earliest(arrival, now, 1) else { return Decision::Blocked };
        start = start.max(at);
        request_tat = Some(tat);
    }
    let mut bytes_tat = None;
    if let Some(g) = &state.bytes {
        let Some((at, tat)) = g.earliest(arrival, now, cost_bytes) else { return Decision::Blocked };
        start = start.max(at);
        bytes_tat = Some(tat);
    }
    if start > now {
        return Decision::WaitUntil(start);
    }
    if let (Some(g), Some(tat)) = (&mut state.requests, request_tat) {
        g.tat = tat;
    }
    if let (Some(g), Some(tat)) = (&mut state.bytes, bytes_tat) {
        g.tat = tat;
    }
    if let Some(q) = &mut state.allowance {
        q.used += 1;
    }
    Decision::Allow
}

#[cfg(test)]
impl LimiterState {
    /// Fills every bucket, as after a long idle period (tests of bursts).
    fn fill(&mut self) {
        for g in [&mut self.requests, &mut self.bytes].into_iter().flatten() {
            g.tat = 0;
        }
    }
}

#[cfg(test)]
#[path = "gcra_tests.rs"]
mod tests;
