//! Secret values the Destination refers to: from Secret manifests (`courier-worker run`) or from
//! the environment variables the operator sets on worker pods.

use std::collections::BTreeMap;

use courier_core::destination::SecretKeyRef;
pub use courier_core::secrets::env_names;

use super::ConfigError;

/// Secret values by Secret name and key, with an environment fallback per use. `Debug` lists
/// the Secrets' keys and the variables' names, never a value.
#[derive(Clone, Default)]
pub struct SecretStore {
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    env: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secrets: BTreeMap<&str, Vec<&str>> = self
            .secrets
            .iter()
            .map(|(name, values)| (name.as_str(), values.keys().map(String::as_str).collect()))
            .collect();
        let env: Vec<&str> = self.env.keys().map(String::as_str).collect();
        f.debug_struct("SecretStore").field("secrets", &secrets).field("env", &env).finish()
    }
}

impl SecretStore {
    /// A store with the current process environment as fallback.
    pub fn from_env() -> Self {
        let env = std::env::vars().filter(|(k, _)| k.starts_with("COURIER_")).collect();
        Self { secrets: BTreeMap::new(), env }
    }

    /// A store without environment fallback (tests).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds one Secret's values.
    pub fn add_secret(&mut self, name: String, values: BTreeMap<String, Vec<u8>>) {
        self.secrets.entry(name).or_default().extend(values);
    }

    /// Sets an environment fallback value.
    pub fn set_env(&mut self, name: &str, value: impl Into<String>) {
        self.env.insert(name.to_owned(), value.into());
    }

    fn value(&self, name: &str, key: &str, env: &str) -> Result<String, ConfigError> {
        if let Some(bytes) = self.secrets.get(name).and_then(|s| s.get(key)) {
            return String::from_utf8(bytes.clone()).map_err(|e| ConfigError::BadSecret {
                name: name.to_owned(),
                key: key.to_owned(),
                message: e.to_string(),
            });
        }
        self.env.get(env).cloned().ok_or_else(|| ConfigError::MissingSecret {
            name: name.to_owned(),
            key: key.to_owned(),
            env: env.to_owned(),
        })
    }

    /// An environment fallback value, if set and not empty.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The value `reference` names, or the environment variable `env`.
    pub fn key(&self, reference: &SecretKeyRef, env: &str) -> Result<String, ConfigError> {
        self.value(&reference.name, &reference.key, env)
    }

    /// The value of `key` in the Secret `name` (fixed key names, e.g. basic auth), or `env`.
    pub fn named(&self, name: &str, key: &str, env: &str) -> Result<String, ConfigError> {
        self.value(name, key, env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_lists_names_and_keys_but_no_value() {
        let mut store = SecretStore::empty();
        store.add_secret("partner-auth".into(), BTreeMap::from([("token".into(), b"tok-SECRET-1".to_vec())]));
        store.set_env("COURIER_SECRET_X", "env-SECRET-2");
        let text = format!("{store:?} {store:#?}");
        assert!(text.contains("partner-auth") && text.contains("token") && text.contains("COURIER_SECRET_X"), "{text}");
        assert!(!text.contains("SECRET-1") && !text.contains("SECRET-2"), "a value was printed: {text}");
    }
}
