//! Dereference: fetch the Secrets a Destination names, and check every referenced key exists.
//!
//! Only the presence of keys is checked; values never leave the apiserver through the operator:
//! workers read them from the Secret volumes their pods mount. A Secret the operator may not
//! read (403) is a verdict on the Destination, like a missing one, not a failed reconcile.
//!
//! The operator watches Secrets' *metadata* only (a watch of `PartialObjectMeta<Secret>`: the
//! API server sends names, labels and resource versions, never the data), and reads one with a `get` only when a
//! Destination names it and it changed: Secrets found complete are trusted while the
//! Destination's generation and each Secret's resource version stay what they were read at
//! ([`CheckedSecrets::fresh`]). A change or a deletion shows in the watch, which reconciles
//! every Destination naming the Secret, so a Secret deleted under a Ready Destination is in its
//! `Ready` condition within seconds. Incomplete Secrets are read again at every reconcile, so a
//! Secret created to fix a Destination is seen even if the watch is not allowed (then nothing
//! is trusted and every reconcile reads the Secrets it needs).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use courier_api::Destination;
use courier_core::destination::DestinationSettings;
use courier_core::secrets::secret_uses;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
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

/// The resource version each fetched Secret was read at (absent: missing or unreadable).
pub type SecretVersions = BTreeMap<String, String>;

/// Fetches every Secret the Destination names (each once): what each holds and the resource
/// version it was read at.
pub async fn fetch_secret_keys(
    client: &Client,
    namespace: &str,
    needed: &[NeededKey],
) -> Result<(SecretKeys, SecretVersions), kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let (mut out, mut versions) = (SecretKeys::new(), SecretVersions::new());
    for n in needed {
        if out.contains_key(&n.secret) {
            continue;
        }
        let state = match api.get_opt(&n.secret).await {
            Ok(Some(s)) => {
                if let Some(v) = s.metadata.resource_version {
                    versions.insert(n.secret.clone(), v);
                }
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
    Ok((out, versions))
}

/// The watched Secrets' metadata: the resource version of each as the watch last saw it.
pub type SecretsSeen = Store<PartialObjectMeta<Secret>>;

/// The resource version of Secret `namespace/name` as the watch last saw it (`None`: not seen,
/// or the watch is not running).
pub fn seen_version(seen: &SecretsSeen, namespace: &str, name: &str) -> Option<String> {
    seen.get(&ObjectRef::new(name).within(namespace))?.metadata.resource_version.clone()
}

/// Secrets found complete, per Destination (by uid: one deleted and made again under the same
/// name starts over): the generation they were read for, each Secret's resource version, and
/// what was found.
#[derive(Debug, Default)]
pub struct CheckedSecrets(Mutex<HashMap<String, (i64, SecretVersions, SecretKeys)>>);

impl CheckedSecrets {
    /// What was found for the Destination `uid` at `generation`, if every Secret read then is
    /// still at the resource version it was read at (`current` gives a Secret's version now).
    pub fn fresh(&self, uid: &str, generation: i64, current: impl Fn(&str) -> Option<String>) -> Option<SecretKeys> {
        let checked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (read_for, versions, found) = checked.get(uid)?;
        let unchanged = found.keys().all(|name| versions.get(name).is_some_and(|v| current(name).as_ref() == Some(v)));
        (*read_for == generation && unchanged).then(|| found.clone())
    }

    /// Remembers Secrets found complete, read at `versions`.
    pub fn remember(&self, uid: &str, generation: i64, versions: SecretVersions, found: SecretKeys) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(uid.to_owned(), (generation, versions, found));
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
    fn complete_secrets_are_trusted_while_their_versions_and_the_generation_stay() {
        let checked = CheckedSecrets::default();
        let found = SecretKeys::from([("token".to_owned(), SecretState::Keys(vec!["token".to_owned()]))]);
        let at = |v: &'static str| move |name: &str| (name == "token").then(|| v.to_owned());
        assert_eq!(checked.fresh("u1", 1, at("7")), None, "never read");
        checked.remember("u1", 1, SecretVersions::from([("token".to_owned(), "7".to_owned())]), found.clone());
        assert_eq!(checked.fresh("u1", 1, at("7")), Some(found.clone()), "unchanged");
        assert_eq!(checked.fresh("u1", 1, at("8")), None, "the Secret changed");
        assert_eq!(checked.fresh("u1", 1, |_: &str| None), None, "deleted, or the watch not running");
        assert_eq!(checked.fresh("u1", 2, at("7")), None, "a new spec may name other Secrets");
        assert_eq!(checked.fresh("u2", 1, at("7")), None, "per Destination, made again or not");
        checked.forget("u1");
        assert_eq!(checked.fresh("u1", 1, at("7")), None, "forgotten");
    }

    #[test]
    fn a_secret_read_without_a_version_is_never_trusted() {
        let checked = CheckedSecrets::default();
        let found = SecretKeys::from([("token".to_owned(), SecretState::Keys(vec!["token".to_owned()]))]);
        checked.remember("u1", 1, SecretVersions::new(), found);
        assert_eq!(checked.fresh("u1", 1, |_: &str| Some("1".to_owned())), None);
    }
}
