//! The progress deadline (pure): has a running package made no progress for
//! `progressDeadlineSeconds`, and why? Like a Deployment's, it reports and never fails the
//! package: the package keeps its place and goes on when the cause goes away
//! (`activeDeadlineSeconds` is what fails it).

use courier_api::conditions::PackageReason;
use courier_core::protocol::{PartnerFailure, PartnerFailureKind, PartnerView};

/// What the operator knows about a package that is not finished.
#[derive(Debug, Clone, Copy)]
pub struct ProgressFacts<'a> {
    /// Now, Unix seconds.
    pub now: i64,
    /// When the package last made progress (or started, or resumed), Unix seconds.
    pub last_progress: i64,
    /// `spec.progressDeadlineSeconds`.
    pub deadline_seconds: i64,
    /// Why the package waits, when it does (e.g. `DestinationSuspended`).
    pub waiting: Option<PackageReason>,
    /// How the partner answers each worker of the Destination.
    pub partner: &'a [PartnerView],
}

/// A stalled package: the reason of `Progressing=False` and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub reason: PackageReason,
    pub message: String,
}

/// The stall, if the package has made no progress for its deadline.
pub fn stall(facts: &ProgressFacts<'_>) -> Option<Stall> {
    let idle = facts.now - facts.last_progress;
    if idle < facts.deadline_seconds {
        return None;
    }
    // No running figure in the message: it stays the same while the stall lasts (no status
    // write each reconcile); lastProgressTime says since when.
    let prefix = format!("no record acknowledged within progressDeadlineSeconds ({}s)", facts.deadline_seconds);
    if let Some(reason) = facts.waiting {
        return Some(Stall { reason, message: format!("{prefix}: waiting ({reason})") });
    }
    let Some(latest) = latest_failure(facts.partner) else {
        return Some(Stall { reason: PackageReason::ProgressDeadlineExceeded, message: prefix });
    };
    let (reason, what) = match latest.kind {
        PartnerFailureKind::Throttled => {
            (PackageReason::PartnerThrottling, "the partner answers 429 Too Many Requests")
        }
        PartnerFailureKind::ServerError => (PackageReason::PartnerFailing, "the partner answers with server errors"),
        PartnerFailureKind::Unreachable => (PackageReason::PartnerUnreachable, "the partner does not answer"),
    };
    Some(Stall { reason, message: format!("{prefix}: {what} (latest: {})", latest.detail) })
}

/// The most recent failure among workers whose partner is failing now.
fn latest_failure(partner: &[PartnerView]) -> Option<&PartnerFailure> {
    partner.iter().filter(|p| !p.is_answering()).filter_map(|p| p.last_failure.as_ref()).max_by_key(|f| f.at_unix_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(kind: PartnerFailureKind, at: u64, detail: &str) -> PartnerView {
        PartnerView {
            consecutive_failures: 12,
            last_failure: Some(PartnerFailure { kind, at_unix_ms: at, detail: detail.to_owned() }),
        }
    }

    fn facts(idle: i64, waiting: Option<PackageReason>, partner: &[PartnerView]) -> ProgressFacts<'_> {
        ProgressFacts { now: 10_000 + idle, last_progress: 10_000, deadline_seconds: 600, waiting, partner }
    }

    #[test]
    fn the_reason_of_a_stall_is_what_the_partner_last_said_or_what_the_package_waits_for() {
        use PartnerFailureKind::*;
        let throttled = [failing(Throttled, 5, "429")];
        let failing_5xx = [failing(ServerError, 5, "503")];
        let down = [failing(Unreachable, 5, "connection refused")];
        let mixed = [failing(Throttled, 5, "429"), failing(Unreachable, 9, "timeout"), PartnerView::default()];
        // An answering worker's old failure says nothing.
        let recovered =
            [PartnerView { consecutive_failures: 0, last_failure: Some(down[0].last_failure.clone().expect("set")) }];
        type Case<'a> = (i64, Option<PackageReason>, &'a [PartnerView], Option<PackageReason>);
        let cases: &[Case] = &[
            (599, None, &throttled, None),
            (0, Some(PackageReason::DestinationSuspended), &[], None),
            (600, None, &throttled, Some(PackageReason::PartnerThrottling)),
            (601, None, &failing_5xx, Some(PackageReason::PartnerFailing)),
            (3_600, None, &down, Some(PackageReason::PartnerUnreachable)),
            (600, None, &mixed, Some(PackageReason::PartnerUnreachable)),
            (600, None, &recovered, Some(PackageReason::ProgressDeadlineExceeded)),
            (600, None, &[], Some(PackageReason::ProgressDeadlineExceeded)),
            (600, Some(PackageReason::DestinationSuspended), &down, Some(PackageReason::DestinationSuspended)),
            (700, Some(PackageReason::DestinationNotFound), &[], Some(PackageReason::DestinationNotFound)),
        ];
        for (idle, waiting, partner, want) in cases {
            let got = stall(&facts(*idle, *waiting, partner));
            assert_eq!(got.as_ref().map(|s| s.reason), *want, "idle {idle}s, waiting {waiting:?}, {partner:?}");
        }
    }

    #[test]
    fn the_message_says_how_long_and_what_the_partner_answered() {
        let down = [failing(PartnerFailureKind::Unreachable, 5, "connection refused")];
        let s = stall(&facts(615, None, &down)).expect("stalled");
        assert_eq!(
            s.message,
            "no record acknowledged within progressDeadlineSeconds (600s): the partner does not answer \
             (latest: connection refused)"
        );
    }
}
