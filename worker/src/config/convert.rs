//! CRD specs → the worker's plain settings.

use courier_api::datum::{self, DatumSpec, FormatType};
use courier_api::destination::DestinationSpec;

use super::ConfigError;
use super::secrets::{SecretStore, env_names};
use crate::decode::{Compression, CsvOptions, FormatKind, FormatSpec};
use crate::limiter::Rate;
use crate::request::RequestSpec;
use crate::send::{FromApiError, SendConfig};

/// The send settings of a Destination, secrets resolved from `secrets`: Secret manifests first,
/// then the environment variable the operator sets for that use (e.g. `COURIER_AUTH_TOKEN`).
pub fn send_config(spec: &DestinationSpec, secrets: &SecretStore) -> Result<SendConfig, ConfigError> {
    let uses = secret_uses(spec);
    let lookup = |name: &str, key: &str| {
        let env = uses.iter().find(|(n, k, _)| n == name && k == key).map_or("", |(_, _, env)| *env);
        secrets.named(name, key, env).ok()
    };
    let extra_ca_pem = match spec.endpoint.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()) {
        Some(r) => Some(secrets.key(r, env_names::TLS_CA_PEM)?.into_bytes()),
        None => secrets.env_value(env_names::TLS_CA_PEM).map(|pem| pem.as_bytes().to_vec()),
    };
    let per_worker = usize::try_from(spec.workers.max_in_flight_per_worker.max(1)).unwrap_or(64);
    let max_in_flight =
        spec.rate_limit.max_in_flight.and_then(|m| usize::try_from(m).ok()).map_or(per_worker, |m| m.min(per_worker));
    crate::send::send_config(spec, &lookup, extra_ca_pem, Some(max_in_flight)).map_err(|e| match e {
        FromApiError::MissingSecret { name, key } => {
            let env = uses.iter().find(|(n, k, _)| *n == name && *k == key).map_or("", |(_, _, env)| *env);
            ConfigError::MissingSecret { name, key, env: env.to_owned() }
        }
        other => ConfigError::Invalid(other.to_string()),
    })
}

/// Every (Secret, key) the Destination's auth uses, with the environment variable standing in
/// for it in worker pods.
fn secret_uses(spec: &DestinationSpec) -> Vec<(String, String, &'static str)> {
    let mut uses = Vec::new();
    let Some(auth) = &spec.auth else { return uses };
    if let Some(b) = &auth.bearer {
        uses.push((b.secret_ref.name.clone(), b.secret_ref.key.clone(), env_names::AUTH_TOKEN));
    }
    if let Some(b) = &auth.basic {
        uses.push((b.secret_ref.name.clone(), "username".to_owned(), env_names::AUTH_USERNAME));
        uses.push((b.secret_ref.name.clone(), "password".to_owned(), env_names::AUTH_PASSWORD));
    }
    if let Some(h) = &auth.header {
        uses.push((h.secret_ref.name.clone(), h.secret_ref.key.clone(), env_names::AUTH_HEADER_VALUE));
    }
    if let Some(o) = &auth.oauth2_client_credentials {
        uses.push((o.client_id_ref.name.clone(), o.client_id_ref.key.clone(), env_names::OAUTH2_CLIENT_ID));
        uses.push((o.client_secret_ref.name.clone(), o.client_secret_ref.key.clone(), env_names::OAUTH2_CLIENT_SECRET));
    }
    uses
}

/// The Destination's request rate (and burst).
pub fn rate_of(spec: &DestinationSpec) -> Rate {
    let rps = u64::try_from(spec.rate_limit.requests_per_second.max(1)).unwrap_or(1);
    let burst = u64::try_from(spec.rate_limit.effective_burst().max(1)).unwrap_or(1);
    Rate::new(rps, burst)
}

/// The decoder settings of a Datum.
pub fn format_spec(spec: &DatumSpec) -> FormatSpec {
    let format = &spec.format;
    let kind = match format.type_ {
        FormatType::JsonLines => FormatKind::JsonLines,
        FormatType::Csv => FormatKind::Csv,
        FormatType::Tsv => FormatKind::Tsv,
        FormatType::Parquet => FormatKind::Parquet,
        FormatType::Avro => FormatKind::Avro,
    };
    let compression = match format.compression {
        datum::Compression::Auto => Compression::Auto,
        datum::Compression::None => Compression::None,
        datum::Compression::Gzip => Compression::Gzip,
        datum::Compression::Zstd => Compression::Zstd,
    };
    let csv = format.csv.as_ref().map_or_else(CsvOptions::default, |c| CsvOptions {
        header: c.header,
        delimiter: c.delimiter.clone().unwrap_or_else(|| ",".to_owned()),
    });
    let fields = (!format.fields.is_empty()).then(|| format.fields.clone());
    FormatSpec { kind, compression, csv, fields }
}

/// The request settings of a package: the Destination's endpoint with the Datum's templates.
pub fn request_spec(destination: &DestinationSpec, datum: &DatumSpec, namespace: &str, package: &str) -> RequestSpec {
    RequestSpec::from_api(&destination.endpoint, &datum.request, namespace, package)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::send::{AuthConfig, RetryOn};

    fn destination(yaml: &str) -> DestinationSpec {
        serde_yaml::from_str(yaml).expect("valid spec")
    }

    #[test]
    fn bearer_auth_resolves_from_a_secret_and_falls_back_to_the_environment() {
        let spec = destination(
            "endpoint: {url: 'http://127.0.0.1:1/x'}\nrateLimit: {requestsPerSecond: 10}\nauth: {bearer: {secretRef: {name: s, key: token}}}\n",
        );
        let mut secrets = SecretStore::empty();
        let err = send_config(&spec, &secrets).expect_err("nothing given");
        assert!(err.to_string().contains("COURIER_AUTH_TOKEN"), "{err}");
        secrets.set_env(env_names::AUTH_TOKEN, "from-env");
        assert_eq!(send_config(&spec, &secrets).expect("env").auth, AuthConfig::Bearer { token: "from-env".into() });
        secrets.add_secret("s".into(), [("token".to_owned(), b"from-secret".to_vec())].into());
        assert_eq!(
            send_config(&spec, &secrets).expect("secret").auth,
            AuthConfig::Bearer { token: "from-secret".into() }
        );
    }

    #[test]
    fn retry_policy_and_limits_carry_over() {
        let spec = destination(
            "endpoint: {url: 'http://127.0.0.1:1/x', timeoutMillis: 1500}\nrateLimit: {requestsPerSecond: 500, maxInFlight: 32}\nretryPolicy: {maxAttempts: 3, retryOn: ['503', '5xx', 'timeout'], backoff: {initialMillis: 10, maxMillis: 100, multiplier: 3, jitter: None}}\n",
        );
        let config = send_config(&spec, &SecretStore::empty()).expect("valid");
        assert_eq!(config.timeout, Duration::from_millis(1500));
        assert_eq!(config.max_in_flight, 32);
        assert_eq!(config.retry.max_attempts, 3);
        assert_eq!(config.retry.multiplier_percent, 300);
        assert_eq!(config.retry.retry_on, vec![RetryOn::Status(503), RetryOn::Class(5), RetryOn::Timeout]);
        assert_eq!(rate_of(&spec), Rate::new(500, 10));
    }
}
