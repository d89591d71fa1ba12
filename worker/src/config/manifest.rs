//! Reading Destination, Datum and Secret manifests from YAML files, exactly as users apply them.

use std::collections::BTreeMap;

use courier_api::datum::DatumSpec;
use courier_api::destination::DestinationSpec;
use serde::Deserialize;

use super::{ConfigError, SecretFault};

const COURIER_API: &str = "courier.dev/v1alpha1";

/// A resource read from a manifest: its name, namespace (if given) and spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest<T> {
    pub name: String,
    pub namespace: Option<String>,
    pub spec: T,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    spec: T,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretEnvelope {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    string_data: BTreeMap<String, String>,
}

fn read(path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })
}

fn parse<T: serde::de::DeserializeOwned>(path: &str, kind: &'static str, text: &str) -> Result<T, ConfigError> {
    serde_norway::from_str(text).map_err(|source| ConfigError::Parse { path: path.to_owned(), kind, source })
}

fn load<T: serde::de::DeserializeOwned>(path: &str, kind: &'static str) -> Result<Manifest<T>, ConfigError> {
    // The kind is checked before the spec, so a wrong file is named as such.
    let envelope: Envelope<serde_norway::Value> = parse(path, kind, &read(path)?)?;
    if envelope.api_version != COURIER_API || envelope.kind != kind {
        return Err(ConfigError::WrongKind {
            path: path.to_owned(),
            api_version: COURIER_API,
            kind,
            found: format!("{} {}", envelope.api_version, envelope.kind),
        });
    }
    let spec = serde_norway::from_value(envelope.spec).map_err(|source| ConfigError::Spec {
        path: path.to_owned(),
        kind,
        source,
    })?;
    Ok(Manifest { name: envelope.metadata.name, namespace: envelope.metadata.namespace, spec })
}

/// Reads a `Destination` manifest.
pub fn load_destination(path: &str) -> Result<Manifest<DestinationSpec>, ConfigError> {
    load(path, "Destination")
}

/// Reads a `Datum` manifest.
pub fn load_datum(path: &str) -> Result<Manifest<DatumSpec>, ConfigError> {
    load(path, "Datum")
}

/// Reads a v1 `Secret` manifest: its name and decoded values (`data` is base64, `stringData`
/// plain; `stringData` wins, as on the apiserver).
pub fn load_secret(path: &str) -> Result<(String, BTreeMap<String, Vec<u8>>), ConfigError> {
    use base64::Engine as _;
    let secret: SecretEnvelope = parse(path, "Secret", &read(path)?)?;
    if secret.api_version != "v1" || secret.kind != "Secret" {
        return Err(ConfigError::WrongKind {
            path: path.to_owned(),
            api_version: "v1",
            kind: "Secret",
            found: format!("{} {}", secret.api_version, secret.kind),
        });
    }
    let name = secret.metadata.name;
    let mut values = BTreeMap::new();
    for (key, encoded) in secret.data {
        let cleaned: String = encoded.split_whitespace().collect();
        let value = base64::engine::general_purpose::STANDARD.decode(cleaned).map_err(|e| ConfigError::BadSecret {
            name: name.clone(),
            key: key.clone(),
            source: SecretFault::base64(&e),
        })?;
        values.insert(key, value);
    }
    for (key, value) in secret.string_data {
        values.insert(key, value.into_bytes());
    }
    Ok((name, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("writes");
        path.display().to_string()
    }

    #[test]
    fn a_destination_manifest_reads_into_its_spec_with_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "d.yaml",
            "apiVersion: courier.dev/v1alpha1\nkind: Destination\nmetadata:\n  name: partner\n  namespace: ns\nspec:\n  endpoint:\n    url: http://127.0.0.1:8080/in\n  rateLimit:\n    requestsPerSecond: 100\n",
        );
        let d = load_destination(&path).expect("valid");
        assert_eq!(d.name, "partner");
        assert_eq!(d.namespace.as_deref(), Some("ns"));
        assert_eq!(d.spec.rate_limit.requests_per_second, 100);
        assert_eq!(d.spec.retry_policy.max_attempts, 5);
    }

    #[test]
    fn a_datum_given_as_destination_is_refused_with_both_kinds_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "x.yaml",
            "apiVersion: courier.dev/v1alpha1\nkind: Datum\nmetadata:\n  name: users\nspec:\n  format:\n    type: JsonLines\n",
        );
        let err = load_destination(&path).expect_err("wrong kind");
        assert!(err.to_string().contains("found courier.dev/v1alpha1 Datum"), "{err}");
        assert!(load_datum(&path).is_ok());
    }

    #[test]
    fn secrets_decode_data_as_base64_and_take_string_data_verbatim() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "s.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ndata:\n  token: c2VjcmV0\nstringData:\n  username: alice\n",
        );
        let (name, values) = load_secret(&path).expect("valid");
        assert_eq!(name, "creds");
        assert_eq!(values["token"], b"secret");
        assert_eq!(values["username"], b"alice");
    }

    #[test]
    fn a_secret_that_is_not_base64_is_refused_without_showing_any_of_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        // `§` cannot occur in base64; neither it nor its neighbours may be printed.
        let path = write(
            &dir,
            "s.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ndata:\n  token: aHVudGVy§Mg==\n",
        );
        let err = load_secret(&path).expect_err("not base64");
        for printed in [err.to_string(), format!("{err:?}")] {
            assert!(printed.contains("creds/token") || printed.contains("\"creds\""), "{printed}");
            assert!(!printed.contains("aHVudGVy") && !printed.contains('§') && !printed.contains("194"), "{printed}");
        }
        assert!(matches!(err, ConfigError::BadSecret { source: SecretFault::NotBase64 { .. }, .. }), "{err:?}");
    }
}
