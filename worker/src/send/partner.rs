//! Is the partner answering at all? Retryable failures in a row, across every record this
//! worker sends, tell a partner-wide outage (down, black-holed, failing or throttling every
//! request) from a failure of one record. The worker reports it to the coordinator
//! (`PartnerView` in its heartbeat), whose package status names the cause when a package
//! makes no progress for its `progressDeadlineSeconds`. During an outage a failed attempt does
//! not use up the record's `maxAttempts` — the record is not at fault, and dead-lettering every
//! record read while the partner is down for a minute would turn an outage into data to
//! replay — so records wait (their back-off, every attempt still through the limiter) and the
//! package keeps its place. `retryPolicy.maxRetrySeconds`, when set, bounds every retry (429s
//! and outages included); `activeDeadlineSeconds` bounds the whole package.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use courier_core::protocol::{PartnerFailure, PartnerFailureKind, PartnerView};

/// Retryable failures in a row, with no useful answer between them, that make an outage.
/// A failure rate of 20 % gives ten in a row about once in ten million attempts.
pub const OUTAGE_AFTER: u32 = 10;

/// Longest failure detail kept.
const DETAIL_MAX: usize = 200;

/// Shared by every send task of a worker (it outlives a rebuilt sender).
#[derive(Debug, Default)]
pub struct PartnerWatch {
    consecutive: AtomicU32,
    last_failure: Mutex<Option<PartnerFailure>>,
}

impl PartnerWatch {
    /// The partner answered an attempt in a way that settles its record (2xx, or a refusal of
    /// that record): it is up. Cheap when nothing was failing (one load).
    pub fn answered(&self) {
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// An attempt failed in a way worth retrying; returns whether the partner is now in an
    /// outage (at least [`OUTAGE_AFTER`] such failures in a row).
    pub fn failed(&self, kind: PartnerFailureKind, detail: &str) -> bool {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let mut detail = detail.to_owned();
        if detail.len() > DETAIL_MAX {
            let mut cut = DETAIL_MAX;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        let at_unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        *self.last_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(PartnerFailure { kind, at_unix_ms, detail });
        n >= OUTAGE_AFTER
    }

    /// Whether the partner is in an outage now.
    pub fn in_outage(&self) -> bool {
        self.consecutive.load(Ordering::Relaxed) >= OUTAGE_AFTER
    }

    /// The view reported to the coordinator.
    pub fn view(&self) -> PartnerView {
        let consecutive_failures = self.consecutive.load(Ordering::Relaxed);
        let last_failure = if consecutive_failures == 0 {
            None
        } else {
            self.last_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
        };
        PartnerView { consecutive_failures, last_failure }
    }
}

/// The kind of a retryable failure: a status, or no answer.
pub fn failure_kind(status: Option<u16>) -> PartnerFailureKind {
    match status {
        Some(429) => PartnerFailureKind::Throttled,
        Some(_) => PartnerFailureKind::ServerError,
        None => PartnerFailureKind::Unreachable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_failures_in_a_row_and_any_answer_ends_it() {
        let watch = PartnerWatch::default();
        for i in 1..OUTAGE_AFTER {
            assert!(!watch.failed(PartnerFailureKind::ServerError, "503"), "failure {i}");
        }
        assert!(watch.failed(PartnerFailureKind::Unreachable, "connection refused"));
        assert!(watch.in_outage());
        let view = watch.view();
        assert_eq!(view.consecutive_failures, OUTAGE_AFTER);
        let last = view.last_failure.expect("last failure");
        assert_eq!((last.kind, last.detail.as_str()), (PartnerFailureKind::Unreachable, "connection refused"));
        watch.answered();
        assert!(!watch.in_outage());
        assert_eq!(watch.view(), PartnerView::default(), "an answering partner reports nothing");
    }

    #[test]
    fn scattered_failures_between_answers_are_no_outage() {
        let watch = PartnerWatch::default();
        for _ in 0..1000 {
            for _ in 0..OUTAGE_AFTER - 1 {
                assert!(!watch.failed(PartnerFailureKind::ServerError, "500"));
            }
            watch.answered();
        }
        assert!(!watch.in_outage());
    }

    #[test]
    fn kinds_and_long_details() {
        assert_eq!(failure_kind(Some(429)), PartnerFailureKind::Throttled);
        assert_eq!(failure_kind(Some(503)), PartnerFailureKind::ServerError);
        assert_eq!(failure_kind(None), PartnerFailureKind::Unreachable);
        let watch = PartnerWatch::default();
        watch.failed(PartnerFailureKind::Unreachable, &"é".repeat(300));
        let detail = watch.view().last_failure.expect("failure").detail;
        assert!(detail.len() <= DETAIL_MAX && detail.chars().all(|c| c == 'é'));
    }
}
