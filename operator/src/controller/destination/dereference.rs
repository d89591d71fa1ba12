//! Dereference: fetch the Secrets a Destination names, and check every referenced key exists.
//!
//! Only the presence of keys is checked; values never leave the apiserver through the operator:
//! workers read them from the Secret volumes their pods mount. A Secret the operator may not
//! read (403) is a verdict on the Destination, like a missing one, not a failed reconcile.
//!
//! The operator may get Secrets but not list or watch them (least privilege: it would otherwise
//! see every Secret of every namespace it watches). Secrets found complete are trusted for
//! [`SECRETS_RECHECK`] unless the Destination's spec changes; incomplete ones are read again at
//! every reconcile, so a Secret created to fix a Destination is seen within seconds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use courier_api::Destination;
use courier_core::destination::DestinationSettings;
use courier_core::secrets::secret_uses;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// One Secret key the Destination needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededKey {
    /// Secret name.
    pub secret: String,
    /// Key inside the Secret.
    pub key: String,
}

/// Every Secret key the Destination refers to (auth and TLS CA), in a stable order.
pub fn needed_keys(dest: &Destination) -> Vec<NeededKey> {
    secret_uses(&DestinationSettings::from(&dest.spec))
        .into_iter()
        .map(|u| NeededKey { secret: u.secret, key: u.key })
        .collect()
}

/// What the apiserver said about one Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretState {
    /// It exists, with these key names.
    Keys(Vec<String>),
    /// It does not exist.
    Missing,
    /// The operator may not read it (the apiserver's message).
    Unreadable(String),
}

/// The state of each fetched Secret, by name.
pub type SecretKeys = BTreeMap<String, SecretState>;

/// Fetches every Secret the Destination names (each once).
pub async fn fetch_secret_keys(
    client: &Client,
    namespace: &str,
    needed: &[NeededKey],
) -> Result<SecretKeys, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut out = SecretKeys::new();
    for n in needed {
        if out.contains_key(&n.secret) {
            continue;
        }
        let state = match api.get_opt(&n.secret).await {
            Ok(Some(s)) => {
                let mut keys: Vec<String> = s.data.unwrap_or_default().into_keys().collect();
                keys.extend(s.string_data.unwrap_or_default().into_keys());
                SecretState::Keys(keys)
            }
            Ok(None) => SecretState::Missing,
            Err(kube::Error::Api(status)) if status.code == 403 => SecretState::Unreadable(status.message),
            Err(e) => return Err(e),
        };
        out.insert(n.secret.clone(), state);
    }
    Ok(out)
}

/// How long Secrets found complete are trusted before they are read again: a Secret deleted
/// under a Ready Destination shows in its `Ready` condition within this (running workers keep
/// their mounted copy meanwhile).
pub const SECRETS_RECHECK: Duration = Duration::from_secs(30);

/// Secrets found complete, per Destination (by uid: one deleted and made again under the same
/// name starts over): the generation they were read for, when, and what.
#[derive(Debug, Default)]
pub struct CheckedSecrets(Mutex<HashMap<String, (i64, Instant, SecretKeys)>>);

impl CheckedSecrets {
    /// What was found for the Destination `uid` at `generation`, read less than
    /// [`SECRETS_RECHECK`] before `now`.
    pub fn fresh(&self, uid: &str, generation: i64, now: Instant) -> Option<SecretKeys> {
        let checked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (read_for, at, found) = checked.get(uid)?;
        (*read_for == generation && now.saturating_duration_since(*at) < SECRETS_RECHECK).then(|| found.clone())
    }

    /// Remembers Secrets read at `at` and found complete.
    pub fn remember(&self, uid: &str, generation: i64, at: Instant, found: SecretKeys) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(uid.to_owned(), (generation, at, found));
    }

    /// Forgets what was read for a Destination (found incomplete).
    pub fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }

    /// Forgets the Destinations whose uid is not `live` (deleted); returns how many.
    pub fn retain(&self, live: &HashSet<String>) -> usize {
        let mut checked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let before = checked.len();
        checked.retain(|uid, _| live.contains(uid));
        before - checked.len()
    }

    /// How many Destinations are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_secrets_are_trusted_for_a_while_and_for_one_generation() {
        let checked = CheckedSecrets::default();
        let t0 = Instant::now();
        let found = SecretKeys::from([("token".to_owned(), SecretState::Keys(vec!["token".to_owned()]))]);
        assert_eq!(checked.fresh("u1", 1, t0), None, "never read");
        checked.remember("u1", 1, t0, found.clone());
        assert_eq!(checked.fresh("u1", 1, t0 + Duration::from_secs(29)), Some(found.clone()));
        assert_eq!(checked.fresh("u1", 1, t0 + SECRETS_RECHECK), None, "due again");
        assert_eq!(checked.fresh("u1", 2, t0), None, "a new spec may name other Secrets");
        assert_eq!(checked.fresh("u2", 1, t0), None, "per Destination, made again or not");
        checked.forget("u1");
        assert_eq!(checked.fresh("u1", 1, t0), None, "forgotten");
    }
}
