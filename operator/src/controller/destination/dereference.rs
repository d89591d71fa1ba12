//! Dereference: fetch the Secrets a Destination names, and check every referenced key exists.
//!
//! Only the presence of keys is checked; values never leave the apiserver through the operator:
//! workers read them as environment variables via `secretKeyRef`.

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

/// The key names present in each fetched Secret; `None` for a Secret that does not exist.
pub type SecretKeys = BTreeMap<String, Option<Vec<String>>>;

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
        let keys = api.get_opt(&n.secret).await?.map(|s| {
            let mut keys: Vec<String> = s.data.unwrap_or_default().into_keys().collect();
            keys.extend(s.string_data.unwrap_or_default().into_keys());
            keys
        });
        out.insert(n.secret.clone(), keys);
    }
    Ok(out)
}
