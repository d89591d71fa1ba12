//! The Destination and Datum as the coordinator sends them (or as `courier-worker run` reads
//! them from manifests, converted by `courier-core`) → the worker's plain settings.

use courier_core::datum::DatumSettings;
use courier_core::destination::DestinationSettings;
use courier_core::secrets::secret_uses;

use super::ConfigError;
use super::secrets::{SecretStore, env_names};
use crate::decode::FormatSpec;
use crate::limiter::Rate;
use crate::request::RequestSpec;
use crate::send::{FromApiError, SendConfig};

/// The send settings of a Destination, secrets resolved from `secrets`: Secret manifests first,
/// then the environment variable the operator sets for that use (e.g. `COURIER_AUTH_TOKEN`).
pub fn send_config(spec: &DestinationSettings, secrets: &SecretStore) -> Result<SendConfig, ConfigError> {
    let uses = secret_uses(spec);
    let lookup = |name: &str, key: &str| {
        let env = uses.iter().find(|u| u.secret == name && u.key == key).map_or("", |u| u.env);
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
            let env = uses.iter().find(|u| u.secret == name && u.key == key).map_or("", |u| u.env);
            ConfigError::MissingSecret { name, key, env: env.to_owned() }
        }
        other => ConfigError::Invalid(other.to_string()),
    })
}

/// The Destination's request rate (and burst).
pub fn rate_of(spec: &DestinationSettings) -> Rate {
    let rps = u64::try_from(spec.rate_limit.requests_per_second.max(1)).unwrap_or(1);
    let burst = u64::try_from(spec.rate_limit.effective_burst().max(1)).unwrap_or(1);
    Rate::new(rps, burst)
}

/// The decoder settings of a Datum.
pub fn format_spec(spec: &DatumSettings) -> FormatSpec {
    spec.format.clone()
}

/// The request settings of a package: the Destination's endpoint with the Datum's templates.
pub fn request_spec(
    destination: &DestinationSettings,
    datum: &DatumSettings,
    namespace: &str,
    package: &str,
) -> RequestSpec {
    RequestSpec::for_endpoint(&destination.endpoint, &datum.request, namespace, package)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::send::{AuthConfig, RetryOn};

    fn destination(yaml: &str) -> DestinationSettings {
        let api: courier_api::destination::DestinationSpec = serde_norway::from_str(yaml).expect("valid spec");
        DestinationSettings::from(&api)
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
