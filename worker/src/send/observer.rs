//! What the send path tells the rest of the worker: every attempt (for metrics) and every
//! throttle signal (for the coordinator, which cuts the Destination's rate and pauses it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::retry::TransportError;

/// One finished attempt.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    /// 1 for a first attempt.
    pub attempt: u32,
    /// The response status, if a response arrived.
    pub status: Option<u16>,
    /// The transport error, if none did.
    pub error: Option<TransportError>,
    /// Time from sending to the end of the response.
    pub latency: Duration,
    /// Time spent waiting for the limiter before sending.
    pub limiter_wait: Duration,
    /// Request body bytes.
    pub bytes: u64,
}

/// A partner's throttle signal: a 429, or a 503 carrying Retry-After.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub status: u16,
    /// The instant named by Retry-After / RateLimit-Reset, if any.
    pub until: Option<SystemTime>,
}

/// Receives reports from every send task; must be cheap and must not block.
pub trait SendObserver: Send + Sync {
    /// An attempt finished.
    fn attempt(&self, _report: &AttemptReport) {}
    /// The partner throttled us.
    fn throttled(&self, _throttle: Throttle) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl SendObserver for NoopObserver {}

/// Two observers told the same things, in order.
pub struct Both(pub Arc<dyn SendObserver>, pub Arc<dyn SendObserver>);

impl SendObserver for Both {
    fn attempt(&self, report: &AttemptReport) {
        self.0.attempt(report);
        self.1.attempt(report);
    }

    fn throttled(&self, throttle: Throttle) {
        self.0.throttled(throttle);
        self.1.throttled(throttle);
    }
}

/// Collects throttle signals between two heartbeats.
#[derive(Debug, Default)]
pub struct ThrottleTracker {
    count: AtomicU64,
    /// When the first and the latest of them came.
    span: Mutex<Option<(Instant, Instant)>>,
    latest_until: Mutex<Option<SystemTime>>,
    /// Signalled when a throttle names an instant: a pause the coordinator should spread to
    /// every worker of the Destination without waiting for the next regular heartbeat.
    pause: tokio::sync::Notify,
}

/// Throttle signals since the last [`ThrottleTracker::take`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleSummary {
    /// 429s (and 503s with Retry-After) seen.
    pub count: u64,
    /// The latest instant any of them named.
    pub until: Option<SystemTime>,
    /// Milliseconds from the first to the last of them (`None` when there were none).
    pub spread_ms: Option<u64>,
}

impl ThrottleTracker {
    /// Returns and clears what was collected.
    pub fn take(&self) -> ThrottleSummary {
        let count = self.count.swap(0, Ordering::AcqRel);
        let until = self.latest_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let span = self.span.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let spread_ms =
            span.map(|(first, last)| u64::try_from(last.duration_since(first).as_millis()).unwrap_or(u64::MAX));
        ThrottleSummary { count, until, spread_ms }
    }

    /// Resolves once a throttle named a Retry-After instant since the last time it resolved
    /// (a signal that arrives while nobody waits is kept for the next waiter).
    pub async fn pause_signalled(&self) {
        self.pause.notified().await;
    }
}

impl SendObserver for ThrottleTracker {
    fn throttled(&self, throttle: Throttle) {
        let now = Instant::now();
        {
            let mut span = self.span.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *span = Some(span.map_or((now, now), |(first, _)| (first, now)));
        }
        self.count.fetch_add(1, Ordering::AcqRel);
        if let Some(until) = throttle.until {
            let mut latest = self.latest_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *latest = Some(latest.map_or(until, |l| l.max(until)));
            if super::throttle::worth_pausing(until, std::time::SystemTime::now()) {
                self.pause.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_throttle_naming_an_instant_signals_a_pause_and_the_signal_is_kept_until_awaited() {
        let tracker = ThrottleTracker::default();
        tracker.throttled(Throttle { status: 429, until: None });
        let waited = tokio::time::timeout(Duration::from_millis(50), tracker.pause_signalled()).await;
        assert!(waited.is_err(), "a 429 without Retry-After is no pause");

        let until = SystemTime::now() + Duration::from_secs(5);
        tracker.throttled(Throttle { status: 429, until: Some(until) });
        let waited = tokio::time::timeout(Duration::from_millis(50), tracker.pause_signalled()).await;
        assert!(waited.is_ok(), "the signal given before anyone waited is delivered");
        let taken = tracker.take();
        assert_eq!((taken.count, taken.until), (2, Some(until)));
        assert!(taken.spread_ms.is_some_and(|ms| ms < 1_000), "first to last of the two: {taken:?}");
        assert_eq!(tracker.take(), ThrottleSummary::default());
    }
}
