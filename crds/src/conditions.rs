//! Condition types and reasons of the three resources, and the helpers operator and worker use
//! to set them. Conditions are the standard `metav1.Condition`.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Declares a string-valued enum whose variants are written as they are named.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as written in the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

string_enum!(
    /// Condition types of a Destination.
    DestinationConditionType {
        /// Secrets resolved, workers can be created.
        Ready,
        /// The partner is pushing back (429 or Retry-After; the effective limit is lowered), or
        /// the quota (`requestsPerDay`) is used up until its period resets.
        Throttled,
        /// `spec.suspend` is true.
        Suspended,
        /// Workers are failing or fewer are ready than wanted.
        Degraded,
        /// The partner refuses the credentials (`retryPolicy.authFailureStatuses`): workers
        /// wait for the rotated Secret, then dead-letter refused records.
        CredentialsRefused,
    }
);

string_enum!(
    /// Reasons of Destination conditions.
    DestinationReason {
        Available,
        SecretNotFound,
        SecretKeyMissing,
        SecretUnreadable,
        InvalidCaBundle,
        RateLimited,
        RetryAfter,
        /// `rateLimit.requestsPerDay` is used up until the period resets.
        QuotaExhausted,
        /// `rateLimit.quotaResetTimeZone` names no known time zone.
        InvalidTimeZone,
        NotThrottled,
        Suspended,
        Active,
        WorkersUnavailable,
        WorkersAvailable,
        /// Refused; new sends held, waiting for the mounted Secret to change.
        WaitingForRotatedSecret,
        /// Refused for longer than `retryPolicy.authGraceSeconds`: refused records are
        /// dead-lettered.
        CredentialsRejected,
        CredentialsAccepted,
    }
);

string_enum!(
    /// Condition types of a Datum.
    DatumConditionType {
        /// Templates compile and the format settings are consistent.
        Ready,
        /// The landing path is listed and the ledger is written (only with `landing`).
        Landing,
        /// A file changed (size or modification time) after it was packaged; it is not sent
        /// again (only with `landing`).
        FilesChanged,
    }
);

string_enum!(
    /// Reasons of Datum conditions.
    DatumReason {
        Compiled,
        TemplateInvalid,
        FormatInvalid,
        LandingPathInvalid,
        Watching,
        ListingFailed,
        LedgerUnavailable,
        Unchanged,
        ChangedAfterPackaging,
    }
);

string_enum!(
    /// Condition types of a DeliveryPackage.
    PackageConditionType {
        /// Files listed and split into shards.
        Planned,
        /// Records are being delivered.
        Progressing,
        /// Every record sent or dead-lettered within the failure policy.
        Complete,
        /// The package gave up.
        Failed,
        /// `spec.suspend` is true.
        Suspended,
        /// Blocked on the Destination or Datum.
        Waiting,
    }
);

string_enum!(
    /// Reasons of DeliveryPackage conditions.
    PackageReason {
        Planning,
        Planned,
        SourceNotFound,
        SourceUnreachable,
        Delivering,
        Paused,
        Delivered,
        DeliveredWithFailures,
        BackoffLimitExceeded,
        DeadlineExceeded,
        TooManyFailedRecords,
        DestinationNotFound,
        DestinationSuspended,
        DestinationNotReady,
        DatumNotFound,
        DatumNotReady,
        Suspended,
        Resumed,
        RetryRequested,
        Ready,
        /// No progress for `progressDeadlineSeconds`: the partner answers 429.
        PartnerThrottling,
        /// No progress for `progressDeadlineSeconds`: the partner answers 5xx.
        PartnerFailing,
        /// No progress for `progressDeadlineSeconds`: no connection, resets or timeouts.
        PartnerUnreachable,
        /// No progress for `progressDeadlineSeconds`, for no reason the operator can tell.
        ProgressDeadlineExceeded,
        /// The Destination's quota (`requestsPerDay`) is used up: records wait for its reset.
        QuotaExhausted,
    }
);

/// `status` of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    /// The value as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// Sets condition `type_` in `conditions`: adds it, or updates it in place. `lastTransitionTime`
/// becomes `now` only when the condition is new or its status changes; reason, message and
/// `observedGeneration` are always updated. Returns whether anything changed, so callers write
/// status only when needed.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: impl AsRef<str>,
    status: impl Into<ConditionStatus>,
    reason: impl AsRef<str>,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: &Time,
) -> bool {
    let (type_, status, reason, message) = (type_.as_ref(), status.into().as_str(), reason.as_ref(), message.into());
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            let changed = existing.status != status
                || existing.reason != reason
                || existing.message != message
                || existing.observed_generation != observed_generation;
            if existing.status != status {
                existing.status = status.to_owned();
                existing.last_transition_time = now.clone();
            }
            existing.reason = reason.to_owned();
            existing.message = message;
            existing.observed_generation = observed_generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message,
                observed_generation,
                last_transition_time: now.clone(),
            });
            true
        }
    }
}

/// The condition of type `type_`, if present.
pub fn find_condition(conditions: &[Condition], type_: impl AsRef<str>) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_ref())
}

/// Whether condition `type_` is present with status True.
pub fn is_condition_true(conditions: &[Condition], type_: impl AsRef<str>) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Removes condition `type_`; returns whether it was present.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: impl AsRef<str>) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_.as_ref());
    conditions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    #[test]
    fn a_new_condition_is_added_with_its_transition_time() {
        let mut conds = Vec::new();
        let changed = set_condition(
            &mut conds,
            PackageConditionType::Planned,
            true,
            PackageReason::Planned,
            "12 shards",
            Some(1),
            &at(10),
        );
        assert!(changed);
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].type_, "Planned");
        assert_eq!(conds[0].status, "True");
        assert_eq!(conds[0].reason, "Planned");
        assert_eq!(conds[0].observed_generation, Some(1));
        assert_eq!(conds[0].last_transition_time, at(10));
    }

    #[test]
    fn same_status_keeps_the_transition_time_but_updates_message_and_generation() {
        let mut conds = Vec::new();
        set_condition(
            &mut conds,
            PackageConditionType::Progressing,
            true,
            PackageReason::Delivering,
            "10%",
            Some(1),
            &at(10),
        );
        let changed = set_condition(
            &mut conds,
            PackageConditionType::Progressing,
            true,
            PackageReason::Delivering,
            "20%",
            Some(2),
            &at(20),
        );
        assert!(changed);
        assert_eq!(conds[0].last_transition_time, at(10));
        assert_eq!(conds[0].message, "20%");
        assert_eq!(conds[0].observed_generation, Some(2));
    }

    #[test]
    fn a_status_change_moves_the_transition_time() {
        let mut conds = Vec::new();
        set_condition(
            &mut conds,
            DestinationConditionType::Ready,
            false,
            DestinationReason::SecretNotFound,
            "no secret",
            Some(1),
            &at(10),
        );
        set_condition(
            &mut conds,
            DestinationConditionType::Ready,
            true,
            DestinationReason::Available,
            "",
            Some(1),
            &at(30),
        );
        assert_eq!(conds[0].status, "True");
        assert_eq!(conds[0].reason, "Available");
        assert_eq!(conds[0].last_transition_time, at(30));
    }

    #[test]
    fn setting_an_identical_condition_reports_no_change() {
        let mut conds = Vec::new();
        set_condition(&mut conds, DatumConditionType::Ready, true, DatumReason::Compiled, "ok", Some(3), &at(10));
        let changed =
            set_condition(&mut conds, DatumConditionType::Ready, true, DatumReason::Compiled, "ok", Some(3), &at(50));
        assert!(!changed);
        assert_eq!(conds[0].last_transition_time, at(10));
    }

    #[test]
    fn other_conditions_are_left_alone_and_can_be_found_and_removed() {
        let mut conds = Vec::new();
        set_condition(&mut conds, PackageConditionType::Planned, true, PackageReason::Planned, "", None, &at(1));
        set_condition(
            &mut conds,
            PackageConditionType::Waiting,
            true,
            PackageReason::DestinationNotFound,
            "x",
            None,
            &at(2),
        );
        set_condition(
            &mut conds,
            PackageConditionType::Planned,
            ConditionStatus::Unknown,
            PackageReason::Planning,
            "",
            None,
            &at(3),
        );
        assert!(is_condition_true(&conds, PackageConditionType::Waiting));
        assert!(!is_condition_true(&conds, PackageConditionType::Planned));
        assert_eq!(find_condition(&conds, "Planned").map(|c| c.status.as_str()), Some("Unknown"));
        assert!(remove_condition(&mut conds, PackageConditionType::Waiting));
        assert!(!remove_condition(&mut conds, PackageConditionType::Waiting));
        assert_eq!(conds.len(), 1);
    }

    #[test]
    fn enum_values_are_written_as_named() {
        assert_eq!(PackageReason::TooManyFailedRecords.to_string(), "TooManyFailedRecords");
        assert_eq!(DestinationConditionType::ALL.len(), 5);
        assert_eq!(PackageConditionType::ALL.len(), 6);
        assert_eq!(ConditionStatus::from(false).as_str(), "False");
    }
}
