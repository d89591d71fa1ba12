//! Dereference: fetch the Secrets a Destination names, and check every referenced key exists.
//!
//! Only the presence of keys is checked; values never leave the apiserver through the operator:
//! workers read them from the Secret volumes their pods mount. A Secret the operator may not
//! read (403) is a verdict on the Destination, like a missing one, not a failed reconcile.

use std::collections::BTreeMap;

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
