//! Status (pure): the Destination's status from what was applied and what the coordinator knows.

use courier_api::conditions::{DestinationConditionType as Type, DestinationReason as Reason, set_condition};
use courier_api::destination::{Backlog, QuotaStatus, WorkerCounts};
use courier_api::{Destination, DestinationStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::validate::Invalid;

/// Why the partner is being throttled, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The effective limit is below the spec after 429s.
    RateLimited,
    /// The partner asked to pause (Retry-After / RateLimit-Reset).
    RetryAfter,
}

/// What the coordinator and the Deployment say about a Destination.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DestinationFigures {
    /// Replicas wanted.
    pub desired: i32,
    /// Ready worker pods (from the Deployment status).
    pub ready: i32,
    /// Requests/s granted in total right now (after AIMD).
    pub effective_requests_per_second: Option<i32>,
    /// Destination-wide pause.
    pub paused_until: Option<Time>,
    /// Unfinished work across packages.
    pub backlog: Backlog,
    /// Packages with shards left.
    pub active_packages: i32,
    /// Throttling, if any.
    pub throttle: Option<Throttle>,
    /// The quota's period, when the Destination has one.
    pub quota: Option<crate::coordinator::quota::QuotaFigures>,
    /// The partner refuses the credentials on some workers, if it does.
    pub credentials: Option<RefusedCredentials>,
}

/// The partner refuses the credentials on some workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedCredentials {
    /// The status of the refusal (401 or 403).
    pub status: u16,
    /// Workers refused, and of those the ones still waiting for the rotated Secret.
    pub workers: usize,
    pub holding: usize,
}

/// `status.quota` as the coordinator reads it: (period start, reserved, used).
pub fn quota_reading(q: &QuotaStatus) -> Option<(u64, u64, u64)> {
    let start = u64::try_from(q.period_start.0.as_millisecond()).ok()?;
    Some((start, u64::try_from(q.reserved).ok()?, u64::try_from(q.used).ok()?))
}

fn time_of(unix_ms: u64) -> Time {
    Time(jiff::Timestamp::from_millisecond(i64::try_from(unix_ms).unwrap_or(i64::MAX)).unwrap_or(jiff::Timestamp::MAX))
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The status to write. `invalid` is the outcome of validation (a missing Secret keeps the
/// Destination un-Ready and its Deployment untouched).
pub fn build_status(
    dest: &Destination,
    invalid: Option<&Invalid>,
    figures: &DestinationFigures,
    now: &Time,
) -> DestinationStatus {
    let generation = dest.metadata.generation;
    let mut status = dest.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let conds = &mut status.conditions;
    match invalid {
        Some(inv) => {
            set_condition(conds, Type::Ready, false, inv.reason, inv.message.clone(), generation, now);
        }
        None => {
            set_condition(
                conds,
                Type::Ready,
                true,
                Reason::Available,
                "secrets resolved, workers configured",
                generation,
                now,
            );
        }
    }
    let suspended = dest.spec.suspend;
    let (reason, message) = if suspended { (Reason::Suspended, "spec.suspend is true") } else { (Reason::Active, "") };
    set_condition(conds, Type::Suspended, suspended, reason, message, generation, now);
    match (figures.quota.filter(|q| q.exhausted), figures.throttle) {
        (Some(q), _) => {
            let resets = time_of(q.period.end_unix_ms).0;
            let msg = format!(
                "quota of {} requests used up ({} started, the rest held by workers); records wait until it resets at {resets}",
                q.limit, q.used
            );
            set_condition(conds, Type::Throttled, true, Reason::QuotaExhausted, msg, generation, now)
        }
        (None, Some(Throttle::RateLimited)) => {
            let msg = format!(
                "partner answered 429; effective limit {} of {} requests/s",
                figures.effective_requests_per_second.unwrap_or_default(),
                dest.spec.rate_limit.requests_per_second
            );
            set_condition(conds, Type::Throttled, true, Reason::RateLimited, msg, generation, now)
        }
        (None, Some(Throttle::RetryAfter)) => {
            set_condition(conds, Type::Throttled, true, Reason::RetryAfter, "partner asked to pause", generation, now)
        }
        (None, None) => set_condition(conds, Type::Throttled, false, Reason::NotThrottled, "", generation, now),
    };
    set_credentials(conds, dest, figures.credentials, generation, now);
    let degraded = !suspended && figures.desired > 0 && figures.ready < figures.desired;
    if degraded {
        let msg = format!("{} of {} workers ready", figures.ready, figures.desired);
        set_condition(conds, Type::Degraded, true, Reason::WorkersUnavailable, msg, generation, now);
    } else {
        let msg = format!("{} workers ready", figures.ready);
        set_condition(conds, Type::Degraded, false, Reason::WorkersAvailable, msg, generation, now);
    }
    status.workers = WorkerCounts { desired: figures.desired, ready: figures.ready };
    status.backlog = figures.backlog.clone();
    status.effective_requests_per_second = figures.effective_requests_per_second;
    status.paused_until = figures.paused_until.clone();
    status.active_packages = figures.active_packages;
    if let Some(q) = figures.quota {
        status.quota = Some(QuotaStatus {
            period_start: time_of(q.period.start_unix_ms),
            resets_at: time_of(q.period.end_unix_ms),
            limit: count(q.limit),
            used: count(q.used),
            remaining: count(q.remaining),
            reserved: count(q.reserved),
        });
    } else if dest.spec.rate_limit.requests_per_day.is_none() {
        status.quota = None;
    }
    status
}

fn set_credentials(
    conds: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    dest: &Destination,
    refused: Option<RefusedCredentials>,
    generation: Option<i64>,
    now: &Time,
) {
    let grace = dest.spec.retry_policy.auth_grace_seconds;
    match refused {
        Some(r) if r.holding > 0 => {
            let msg = format!(
                "partner refused credentials ({}) on {} worker(s); waiting for the rotated Secret \
                 (new sends held, at most retryPolicy.authGraceSeconds = {grace}s)",
                r.status, r.workers
            );
            set_condition(conds, Type::CredentialsRefused, true, Reason::WaitingForRotatedSecret, msg, generation, now)
        }
        Some(r) => {
            let msg = format!(
                "partner refused credentials ({}) on {} worker(s) for longer than retryPolicy.authGraceSeconds \
                 ({grace}s): refused records are dead-lettered; check the Secret the Destination's auth names",
                r.status, r.workers
            );
            set_condition(conds, Type::CredentialsRefused, true, Reason::CredentialsRejected, msg, generation, now)
        }
        None => set_condition(conds, Type::CredentialsRefused, false, Reason::CredentialsAccepted, "", generation, now),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_api::conditions::{find_condition, is_condition_true};

    fn dest(suspend: bool) -> Destination {
        let yaml = format!(
            r#"
apiVersion: courier.dev/v1alpha1
kind: Destination
metadata: {{ name: partner, namespace: ns, generation: 4 }}
spec:
  endpoint: {{ url: "http://127.0.0.1:1/" }}
  rateLimit: {{ requestsPerSecond: 100 }}
  suspend: {suspend}
"#
        );
        serde_norway::from_str(&yaml).expect("valid YAML")
    }

    fn now() -> Time {
        Time(jiff::Timestamp::from_second(1_000).expect("ts"))
    }

    #[test]
    fn a_valid_destination_is_ready_with_worker_counts_and_generation() {
        let figures =
            DestinationFigures { desired: 2, ready: 2, effective_requests_per_second: Some(100), ..Default::default() };
        let s = build_status(&dest(false), None, &figures, &now());
        assert_eq!(s.observed_generation, Some(4));
        assert!(is_condition_true(&s.conditions, "Ready"));
        assert!(!is_condition_true(&s.conditions, "Degraded"));
        assert!(!is_condition_true(&s.conditions, "Suspended"));
        assert_eq!((s.workers.desired, s.workers.ready), (2, 2));
        assert_eq!(s.effective_requests_per_second, Some(100));
        assert_eq!(find_condition(&s.conditions, "Ready").and_then(|c| c.observed_generation), Some(4));
    }

    #[test]
    fn a_missing_secret_makes_ready_false_with_its_reason() {
        let inv = Invalid { reason: Reason::SecretNotFound, message: "Secret \"x\" not found".into() };
        let s = build_status(&dest(false), Some(&inv), &DestinationFigures::default(), &now());
        let ready = find_condition(&s.conditions, "Ready").expect("Ready");
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "SecretNotFound"));
    }

    #[test]
    fn fewer_ready_workers_than_desired_is_degraded() {
        let figures = DestinationFigures { desired: 3, ready: 1, ..Default::default() };
        let s = build_status(&dest(false), None, &figures, &now());
        let c = find_condition(&s.conditions, "Degraded").expect("Degraded");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            ("True", "WorkersUnavailable", "1 of 3 workers ready")
        );
    }

    #[test]
    fn suspension_and_throttling_show_as_conditions() {
        let figures = DestinationFigures {
            throttle: Some(Throttle::RateLimited),
            effective_requests_per_second: Some(50),
            ..Default::default()
        };
        let s = build_status(&dest(true), None, &figures, &now());
        assert!(is_condition_true(&s.conditions, "Suspended"));
        let t = find_condition(&s.conditions, "Throttled").expect("Throttled");
        assert_eq!(t.reason, "RateLimited");
        assert!(t.message.contains("50 of 100"));
    }

    #[test]
    fn a_used_up_quota_is_throttling_with_when_it_resets_and_the_figures_in_status() {
        use crate::coordinator::quota::QuotaFigures;
        use courier_core::quota::Period;
        let period = Period { start_unix_ms: 1_800_000_000_000, end_unix_ms: 1_800_000_030_000 };
        let quota = QuotaFigures { period, limit: 300, used: 297, remaining: 0, reserved: 300, exhausted: true };
        let figures =
            DestinationFigures { quota: Some(quota), throttle: Some(Throttle::RateLimited), ..Default::default() };
        let s = build_status(&dest(false), None, &figures, &now());
        let t = find_condition(&s.conditions, "Throttled").expect("Throttled");
        assert_eq!((t.status.as_str(), t.reason.as_str()), ("True", "QuotaExhausted"));
        assert!(t.message.contains("300 requests") && t.message.contains("2027-01-15T08:00:30Z"), "{}", t.message);
        let q = s.quota.expect("status.quota");
        assert_eq!((q.limit, q.used, q.remaining, q.reserved), (300, 297, 0, 300));
        assert_eq!(quota_reading(&q), Some((period.start_unix_ms, 300, 297)));
        let left = QuotaFigures { remaining: 10, exhausted: false, ..quota };
        let s =
            build_status(&dest(false), None, &DestinationFigures { quota: Some(left), ..Default::default() }, &now());
        assert!(!is_condition_true(&s.conditions, "Throttled"));
    }

    #[test]
    fn refused_credentials_say_what_the_workers_do_about_them() {
        let refused = |holding| Some(RefusedCredentials { status: 401, workers: 2, holding });
        // (refusal, status, reason, words in the message)
        let table = [
            (
                refused(2),
                "True",
                "WaitingForRotatedSecret",
                "partner refused credentials (401) on 2 worker(s); waiting for the rotated Secret",
            ),
            (
                refused(0),
                "True",
                "CredentialsRejected",
                "for longer than retryPolicy.authGraceSeconds (180s): refused records are dead-lettered",
            ),
            (None, "False", "CredentialsAccepted", ""),
        ];
        for (credentials, status, reason, words) in table {
            let figures = DestinationFigures { credentials, ..Default::default() };
            let s = build_status(&dest(false), None, &figures, &now());
            let c = find_condition(&s.conditions, "CredentialsRefused").expect("CredentialsRefused");
            assert_eq!((c.status.as_str(), c.reason.as_str()), (status, reason), "{credentials:?}");
            assert!(c.message.contains(words), "{}", c.message);
        }
    }
}
