//! Validate: turn the fetched Secret keys into a verdict on the Destination.

use courier_api::conditions::DestinationReason;

use super::dereference::{NeededKey, SecretKeys, SecretState};

/// Why the Destination cannot get workers yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Ready=False reason.
    pub reason: DestinationReason,
    /// Human-readable message naming the Secret and key.
    pub message: String,
}

/// Checks that `rateLimit.quotaResetTimeZone` names a time zone the operator knows (CEL only
/// checks its shape).
pub fn check_time_zone(dest: &courier_api::Destination) -> Result<(), Invalid> {
    let rl = &dest.spec.rate_limit;
    match courier_core::quota::time_zone(rl.quota_time_zone()) {
        Ok(_) => Ok(()),
        Err(e) => Err(Invalid {
            reason: DestinationReason::InvalidTimeZone,
            message: format!("rateLimit.quotaResetTimeZone: {e} (an IANA name such as UTC or Europe/Berlin)"),
        }),
    }
}

/// Checks that every needed Secret exists and holds its key; the first problem wins.
pub fn check_secrets(needed: &[NeededKey], found: &SecretKeys) -> Result<(), Invalid> {
    for n in needed {
        match found.get(&n.secret) {
            None | Some(SecretState::Missing) => {
                return Err(Invalid {
                    reason: DestinationReason::SecretNotFound,
                    message: format!("Secret {:?} not found", n.secret),
                });
            }
            Some(SecretState::Unreadable(why)) => {
                return Err(Invalid {
                    reason: DestinationReason::SecretUnreadable,
                    message: format!("Secret {:?} cannot be read by the operator: {why}", n.secret),
                });
            }
            Some(SecretState::Keys(keys)) if !keys.iter().any(|k| k == &n.key) => {
                return Err(Invalid {
                    reason: DestinationReason::SecretKeyMissing,
                    message: format!("Secret {:?} has no key {:?}", n.secret, n.key),
                });
            }
            Some(SecretState::Keys(_)) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(secret: &str, key: &str) -> NeededKey {
        NeededKey { secret: secret.into(), key: key.into() }
    }

    #[test]
    fn a_missing_secret_is_reported_as_secret_not_found() {
        let found = SecretKeys::from([("tok".to_owned(), SecretState::Missing)]);
        let err = check_secrets(&[need("tok", "token")], &found).expect_err("invalid");
        assert_eq!(err.reason, DestinationReason::SecretNotFound);
        assert!(err.message.contains("tok"));
    }

    #[test]
    fn a_missing_key_is_reported_as_secret_key_missing() {
        let found = SecretKeys::from([("tok".to_owned(), SecretState::Keys(vec!["other".to_owned()]))]);
        let err = check_secrets(&[need("tok", "token")], &found).expect_err("invalid");
        assert_eq!(err.reason, DestinationReason::SecretKeyMissing);
        assert!(err.message.contains("token"));
    }

    #[test]
    fn a_secret_the_operator_may_not_read_is_reported_as_secret_unreadable() {
        let found = SecretKeys::from([("tok".to_owned(), SecretState::Unreadable("forbidden".into()))]);
        let err = check_secrets(&[need("tok", "token")], &found).expect_err("invalid");
        assert_eq!(err.reason, DestinationReason::SecretUnreadable);
        assert!(err.message.contains("tok") && err.message.contains("forbidden"), "{}", err.message);
    }

    #[test]
    fn present_keys_pass() {
        let found = SecretKeys::from([("tok".to_owned(), SecretState::Keys(vec!["token".to_owned()]))]);
        assert_eq!(check_secrets(&[need("tok", "token")], &found), Ok(()));
        assert_eq!(check_secrets(&[], &SecretKeys::new()), Ok(()));
    }
}
