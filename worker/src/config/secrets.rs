//! Secret values the Destination refers to: from Secret manifests (`courier-worker run`), from
//! the Secret volumes the operator mounts in worker pods (one directory per Secret under
//! [`MOUNT_ROOT`], one file per key, read each time a value is needed so a rotated Secret is
//! seen), or from environment variables (the fallback of `run` and of older worker pods).

use std::collections::BTreeMap;
use std::path::PathBuf;

use courier_core::destination::SecretKeyRef;
pub use courier_core::secrets::{MOUNT_ROOT, env_names};

use super::{ConfigError, SecretFault};

/// Secret values by Secret name and key, from mounted files first, with an environment
/// fallback per use. `Debug` lists the Secrets' keys, the variables' names and the mount root,
/// never a value.
#[derive(Clone, Default)]
pub struct SecretStore {
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    env: BTreeMap<String, String>,
    /// Where mounted Secrets are looked for (`<root>/<secret>/<key>`).
    mounts: Option<PathBuf>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secrets: BTreeMap<&str, Vec<&str>> = self
            .secrets
            .iter()
            .map(|(name, values)| (name.as_str(), values.keys().map(String::as_str).collect()))
            .collect();
        let env: Vec<&str> = self.env.keys().map(String::as_str).collect();
        f.debug_struct("SecretStore")
            .field("secrets", &secrets)
            .field("env", &env)
            .field("mounts", &self.mounts)
            .finish()
    }
}

impl SecretStore {
    /// A store with the current process environment as fallback.
    pub fn from_env() -> Self {
        let env = std::env::vars().filter(|(k, _)| k.starts_with("COURIER_")).collect();
        Self { secrets: BTreeMap::new(), env, mounts: None }
    }

    /// Looks for Secrets mounted under `root` (before the environment).
    #[must_use]
    pub fn with_mounts(mut self, root: impl Into<PathBuf>) -> Self {
        self.mounts = Some(root.into());
        self
    }

    /// Whether values are read from mounted files (which the kubelet updates when a Secret
    /// changes), so re-reading may find rotated credentials.
    pub fn reads_mounts(&self) -> bool {
        self.mounts.is_some()
    }

    /// The value of `key` in the Secret mounted as `name`, if the file is there. A name or key
    /// that is not a plain path segment is never looked up.
    fn mounted(&self, name: &str, key: &str) -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(root) = &self.mounts else { return Ok(None) };
        let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('/');
        if !plain(name) || !plain(key) {
            return Ok(None);
        }
        match std::fs::read(root.join(name).join(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConfigError::BadSecret {
                name: name.to_owned(),
                key: key.to_owned(),
                source: SecretFault::Unreadable(e),
            }),
        }
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
        let mounted = self.mounted(name, key)?;
        if let Some(bytes) = self.secrets.get(name).and_then(|s| s.get(key)).or(mounted.as_ref()) {
            return String::from_utf8(bytes.clone()).map_err(|e| ConfigError::BadSecret {
                name: name.to_owned(),
                key: key.to_owned(),
                source: SecretFault::NotUtf8(e.utf8_error()),
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

    #[test]
    fn mounted_files_come_before_the_environment_and_are_read_anew_each_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = SecretStore::empty().with_mounts(dir.path());
        store.set_env("COURIER_AUTH_TOKEN", "from-env");
        assert_eq!(store.named("tok", "token", "COURIER_AUTH_TOKEN").expect("env"), "from-env");
        std::fs::create_dir(dir.path().join("tok")).expect("dir");
        std::fs::write(dir.path().join("tok/token"), "first").expect("write");
        assert_eq!(store.named("tok", "token", "COURIER_AUTH_TOKEN").expect("file"), "first");
        std::fs::write(dir.path().join("tok/token"), "rotated").expect("write");
        assert_eq!(store.named("tok", "token", "COURIER_AUTH_TOKEN").expect("file"), "rotated");
    }

    #[test]
    fn names_that_would_leave_the_mount_are_never_looked_up() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("outside"), "x").expect("write");
        let sub = dir.path().join("root");
        std::fs::create_dir(&sub).expect("dir");
        let store = SecretStore::empty().with_mounts(&sub);
        for (name, key) in [("..", "outside"), ("a/..", "x"), ("", "k"), ("s", "../x")] {
            assert!(store.named(name, key, "").is_err(), "{name}/{key}");
        }
    }

    #[test]
    fn a_store_never_prints_values() {
        let mut store = SecretStore::empty();
        store.add_secret("s".into(), [("k".to_owned(), b"hunter2".to_vec())].into());
        store.set_env("COURIER_AUTH_TOKEN", "sekrit");
        let printed = format!("{store:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("sekrit"), "{printed}");
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_without_its_bytes() {
        let mut store = SecretStore::empty();
        store.add_secret("s".into(), [("k".to_owned(), vec![b'p', b'w', 0xff, b'x'])].into());
        let err = store.named("s", "k", "").expect_err("not UTF-8");
        let debug = format!("{err:?}");
        // FromUtf8Error's Debug would list the bytes (112, 119, 255, 120).
        assert!(!debug.contains("112") && !debug.contains("255"), "{debug}");
        assert!(err.to_string().starts_with("secret s/k is not valid: invalid utf-8"), "{err}");
        assert!(std::error::Error::source(&err).is_some(), "the cause is kept");
    }
}
