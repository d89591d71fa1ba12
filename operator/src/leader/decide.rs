//! The pure core of leader election: given the Lease as last read and what this replica has
//! observed of it, what to do next. No clock and no I/O: instants are passed in.
//!
//! The rules are those of client-go's leader election, which compare no clocks across
//! machines:
//! - a candidate takes over a Lease held by someone else only once the Lease record has not
//!   changed for `leaseDurationSeconds`, measured on the candidate's own monotonic clock from
//!   the moment it first saw that record;
//! - the holder counts itself leader only until `renew_deadline` after the *start* of its last
//!   successful renewal (a write guarded by the Lease's resourceVersion), and
//!   `renew_deadline < lease_duration`, so it has stopped before any candidate may take over;
//! - every write carries the resourceVersion read before it, so of two replicas writing the
//!   same free Lease exactly one wins (the other gets 409 Conflict).

use std::time::Duration;

use tokio::time::Instant;

/// The parts of a Lease that election reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `spec.holderIdentity`; `None` or empty when released.
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub duration_seconds: i32,
    /// `spec.leaseTransitions`.
    pub transitions: i32,
    /// `metadata.resourceVersion`: changes with every write, renewals included.
    pub resource_version: String,
}

impl LeaseRecord {
    /// The holder, if anyone holds the Lease.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// A record as this replica first saw it, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub record: LeaseRecord,
    pub at: Instant,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No Lease exists: create it, holding it.
    Create,
    /// The Lease is free or its holder stopped renewing: take it over (guarded by the
    /// resourceVersion read).
    Acquire,
    /// This replica holds the Lease: renew it (guarded by the resourceVersion read).
    Renew,
    /// Someone else holds it; look again later. The Lease may be taken over at `until` if it
    /// has not changed by then.
    Follow { holder: String, until: Instant },
}

/// Decides the next step for `me` given the Lease just read (`None`: it does not exist).
/// `leading` says whether `me` leads right now (its renew deadline has not passed);
/// `observed` is this replica's memory of the record and is updated here.
///
/// A Lease that still names `me` while `me` does not lead (it stepped down when a renewal did
/// not get through in time, e.g. the apiserver or etcd was away) is taken again as a new
/// term (`Acquire` counts a transition), not renewed: the work of the term it gave up may
/// still be winding down, and the new term's state must not be mistaken for it.
pub fn decide(
    me: &str,
    leading: bool,
    current: Option<&LeaseRecord>,
    observed: &mut Option<Observation>,
    now: Instant,
) -> Step {
    let Some(record) = current else {
        *observed = None;
        return Step::Create;
    };
    let changed = observed.as_ref().is_none_or(|o| o.record != *record);
    if changed {
        *observed = Some(Observation { record: record.clone(), at: now });
    }
    match record.holder() {
        None => Step::Acquire,
        Some(holder) if holder == me => {
            if leading {
                Step::Renew
            } else {
                Step::Acquire
            }
        }
        Some(holder) => {
            let seen = observed.as_ref().map_or(now, |o| o.at);
            let duration = Duration::from_secs(u64::try_from(record.duration_seconds.max(1)).unwrap_or(1));
            let until = seen + duration;
            if now >= until { Step::Acquire } else { Step::Follow { holder: holder.to_owned(), until } }
        }
    }
}

/// Election timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionConfig {
    /// How long a Lease record must stay unchanged before a candidate takes it over
    /// (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How long after the start of its last successful renewal the holder still leads. Less
    /// than `lease_duration`; the difference absorbs request latency and clock-rate drift.
    pub renew_deadline: Duration,
    /// How often the holder renews and candidates look.
    pub retry_period: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            lease_duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(7),
            retry_period: Duration::from_secs(1),
        }
    }
}

/// Why a configuration is unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "the renew deadline ({renew:?}) must be shorter than the lease duration ({lease:?}), or two replicas could lead at once"
    )]
    DeadlineNotBelowDuration { renew: Duration, lease: Duration },
    #[error("the retry period ({retry:?}) must be shorter than the renew deadline ({renew:?})")]
    RetryNotBelowDeadline { retry: Duration, renew: Duration },
    #[error("the lease duration must be a whole number of seconds of at least 1, got {0:?}")]
    Duration(Duration),
}

impl ElectionConfig {
    /// How long one election round (a read and maybe a write) may take before it is given
    /// up: the retry period, at least 2 s, and never as long as the renew deadline.
    pub fn round_timeout(&self) -> Duration {
        self.retry_period.max(Duration::from_secs(2)).min(self.renew_deadline / 2)
    }

    /// Checks the invariants that make election safe.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.lease_duration.as_secs() < 1 || self.lease_duration.subsec_nanos() != 0 {
            return Err(ConfigError::Duration(self.lease_duration));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(ConfigError::DeadlineNotBelowDuration {
                renew: self.renew_deadline,
                lease: self.lease_duration,
            });
        }
        if self.retry_period >= self.renew_deadline {
            return Err(ConfigError::RetryNotBelowDeadline { retry: self.retry_period, renew: self.renew_deadline });
        }
        Ok(())
    }

    /// `leaseDurationSeconds` to write.
    pub fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Until when a holder whose renewal *started* at `started` (and succeeded) leads.
    pub fn leading_until(&self, started: Instant) -> Instant {
        started + self.renew_deadline
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
