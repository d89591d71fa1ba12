//! The limiter shared by every send task of a worker: the pure GCRA core behind a mutex,
//! a FIFO queue of waiters with a single timer at its head, and a notification that wakes
//! the head whenever the rate or the pause changes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use courier_core::protocol::{QuotaAllowance, QuotaReport};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::gcra::{Decision, LimiterState, Rate, decide};

/// A rate limiter shared (behind an `Arc`) by first attempts and retries of one worker.
///
/// `acquire` waits exactly as long as needed. Only the waiter at the head of the FIFO queue
/// holds a timer; when it wakes, every queued request whose slot has passed is admitted in
/// turn, so at tens of thousands of requests per second the wait is one timer per
/// millisecond, not one per request, and nothing spins.
#[derive(Debug)]
pub struct Limiter {
    epoch: Instant,
    state: Mutex<LimiterState>,
    queue: tokio::sync::Mutex<()>,
    waiting: AtomicUsize,
    changed: Notify,
}

/// What the limiter currently enforces, for metrics and heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterSnapshot {
    /// Requests per second and burst, if limited.
    pub requests: Option<Rate>,
    /// Bytes per second and burst, if limited.
    pub bytes: Option<Rate>,
    /// Paused until this instant, if a pause is still ahead.
    pub paused_until: Option<Instant>,
    /// Requests waiting in the queue now.
    pub waiting: usize,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::unlimited()
    }
}

impl Limiter {
    /// A limiter that admits everything (until a rate is set).
    pub fn unlimited() -> Self {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let wall_ns = u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX);
        Self {
            epoch: Instant::now(),
            state: Mutex::new(LimiterState::unlimited(wall_ns)),
            queue: tokio::sync::Mutex::new(()),
            waiting: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    /// A limiter of `per_second` requests with `burst`.
    pub fn new(per_second: u64, burst: u64) -> Self {
        let limiter = Self::unlimited();
        limiter.set_rate(Some(Rate::new(per_second, burst)));
        limiter
    }

    /// Sets the request rate (or removes it with `None`); applies to the very next decision,
    /// including requests already waiting.
    pub fn set_rate(&self, rate: Option<Rate>) {
        let now = self.now_ns();
        self.lock().set_requests(rate, now);
        self.changed.notify_waiters();
    }

    /// Sets the bytes-per-second rate (or removes it).
    pub fn set_bytes_rate(&self, rate: Option<Rate>) {
        let now = self.now_ns();
        self.lock().set_bytes(rate, now);
        self.changed.notify_waiters();
    }

    /// Sets the quota allowance (or removes it); see [`LimiterState::set_allowance`].
    pub fn set_allowance(&self, allowance: Option<QuotaAllowance>) {
        self.lock().set_allowance(allowance);
        self.changed.notify_waiters();
    }

    /// The quota allowance in force and what was used of it, for the heartbeat.
    pub fn quota_report(&self) -> Option<QuotaReport> {
        self.lock().quota_report()
    }

    /// Admits nothing from `until` on, until renewed by another call (`None`: no expiry). A
    /// worker's share lapses this way when the coordinator stops answering.
    pub fn set_valid_until(&self, until: Option<Instant>) {
        let ns = until.map(|u| self.ns_of(u));
        self.lock().set_valid_until(ns);
        self.changed.notify_waiters();
    }

    /// Admits nothing before `until` (a partner's Retry-After or the coordinator's pause).
    /// A pause that ends earlier than the current one is ignored.
    pub fn pause_until(&self, until: Instant) {
        let ns = self.ns_of(until);
        self.lock().pause_until(ns);
        self.changed.notify_waiters();
    }

    /// What the limiter currently enforces.
    pub fn snapshot(&self) -> LimiterSnapshot {
        let now = self.now_ns();
        let state = self.lock();
        let pause = state.paused_until();
        LimiterSnapshot {
            requests: state.requests_rate(),
            bytes: state.bytes_rate(),
            paused_until: (pause > now).then(|| self.epoch + Duration::from_nanos(pause)),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }

    /// Waits until one request of `cost_bytes` bytes may be sent and charges it. Returns how
    /// long it waited. Cancel-safe: a dropped call charges nothing.
    pub async fn acquire(&self, cost_bytes: u64) -> Duration {
        let arrival = self.now_ns();
        if self.waiting.load(Ordering::Acquire) == 0
            && decide(&mut self.lock(), arrival, arrival, cost_bytes) == Decision::Allow
        {
            return Duration::ZERO;
        }
        let started = Instant::now();
        let _counted = WaitingGuard::enter(&self.waiting);
        let _head = self.queue.lock().await;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let decision = decide(&mut self.lock(), arrival, self.now_ns(), cost_bytes);
            match decision {
                Decision::Allow => return started.elapsed(),
                Decision::WaitUntil(at) => {
                    let deadline = self.epoch + Duration::from_nanos(at);
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = &mut changed => {}
                    }
                }
                Decision::Blocked => changed.await,
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, LimiterState> {
        // The state is always consistent between statements, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ns(&self) -> u64 {
        self.ns_of(Instant::now())
    }

    fn ns_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Counts a waiter for as long as it exists, including when its future is dropped.
struct WaitingGuard<'a>(&'a AtomicUsize);

impl<'a> WaitingGuard<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;
