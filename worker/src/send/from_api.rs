//! Conversions from the Destination settings (as the protocol carries them, see
//! `courier_core::destination`) into the send stack's plain config. Secrets are resolved by
//! the caller through a lookup of (Secret name, key) → value.

use std::time::Duration;

use courier_core::destination as api;
use courier_core::secrets::{BASIC_PASSWORD_KEY, BASIC_USERNAME_KEY};

use super::config::{AuthConfig, HttpVersion, OAuth2Config, SendConfig, TlsConfig};
use super::retry::{InvalidRetryOn, Jitter, RetryConfig, RetryOn};

/// Why a Destination cannot be turned into a send config.
#[derive(Debug, thiserror::Error)]
pub enum FromApiError {
    #[error("Secret {name:?} has no key {key:?}")]
    MissingSecret { name: String, key: String },
    #[error("auth sets no method")]
    NoAuthMethod,
    #[error(transparent)]
    RetryOn(#[from] InvalidRetryOn),
}

/// Resolves one Secret key to its value (`None` when the Secret or key is missing).
pub trait SecretLookup {
    fn value(&self, name: &str, key: &str) -> Option<String>;
}

impl<F: Fn(&str, &str) -> Option<String>> SecretLookup for F {
    fn value(&self, name: &str, key: &str) -> Option<String> {
        self(name, key)
    }
}

fn secret(lookup: &impl SecretLookup, name: &str, key: &str) -> Result<String, FromApiError> {
    lookup.value(name, key).ok_or_else(|| FromApiError::MissingSecret { name: name.to_owned(), key: key.to_owned() })
}

/// The auth config of `auth` with its secrets resolved.
pub fn auth_config(auth: Option<&api::AuthSettings>, lookup: &impl SecretLookup) -> Result<AuthConfig, FromApiError> {
    let Some(auth) = auth else { return Ok(AuthConfig::None) };
    if let Some(b) = &auth.bearer {
        return Ok(AuthConfig::Bearer { token: secret(lookup, &b.secret_ref.name, &b.secret_ref.key)? });
    }
    if let Some(b) = &auth.basic {
        return Ok(AuthConfig::Basic {
            username: secret(lookup, &b.secret_ref.name, BASIC_USERNAME_KEY)?,
            password: secret(lookup, &b.secret_ref.name, BASIC_PASSWORD_KEY)?,
        });
    }
    if let Some(h) = &auth.header {
        return Ok(AuthConfig::Header {
            name: h.name.clone(),
            value: secret(lookup, &h.secret_ref.name, &h.secret_ref.key)?,
        });
    }
    if let Some(o) = &auth.oauth2_client_credentials {
        return Ok(AuthConfig::OAuth2(OAuth2Config {
            token_url: o.token_url.clone(),
            client_id: secret(lookup, &o.client_id_ref.name, &o.client_id_ref.key)?,
            client_secret: secret(lookup, &o.client_secret_ref.name, &o.client_secret_ref.key)?,
            scopes: o.scopes.clone(),
        }));
    }
    Err(FromApiError::NoAuthMethod)
}

/// The retry config of a `retryPolicy`.
pub fn retry_config(policy: &api::RetrySettings) -> Result<RetryConfig, FromApiError> {
    let millis = |v: i32| Duration::from_millis(u64::try_from(v).unwrap_or(0));
    Ok(RetryConfig {
        max_attempts: u32::try_from(policy.max_attempts).unwrap_or(1).max(1),
        initial: millis(policy.backoff.initial_millis),
        max: millis(policy.backoff.max_millis),
        multiplier_percent: u32::try_from(policy.backoff.multiplier).unwrap_or(1).max(1) * 100,
        jitter: match policy.backoff.jitter {
            api::Jitter::Full => Jitter::Full,
            api::Jitter::Equal => Jitter::Equal,
            api::Jitter::None => Jitter::None,
        },
        retry_on: policy.retry_on.iter().map(|s| s.parse::<RetryOn>()).collect::<Result<_, _>>()?,
        respect_retry_after: policy.respect_retry_after,
        max_retry: policy.max_retry_seconds.and_then(|s| u64::try_from(s).ok()).map(Duration::from_secs),
        auth_statuses: policy.auth_failure_statuses.iter().filter_map(|s| u16::try_from(*s).ok()).collect(),
        auth_grace: Duration::from_secs(u64::try_from(policy.auth_grace_seconds).unwrap_or(0)),
    })
}

/// The send config of a Destination. `max_in_flight` is the worker's own limit
/// (`workers.maxInFlightPerWorker`, else `rateLimit.maxInFlight`, else 64).
pub fn send_config(
    spec: &api::DestinationSettings,
    lookup: &impl SecretLookup,
    extra_ca_pem: Option<Vec<u8>>,
    max_in_flight: Option<usize>,
) -> Result<SendConfig, FromApiError> {
    let from_rate = spec.rate_limit.max_in_flight.and_then(|n| usize::try_from(n).ok());
    Ok(SendConfig {
        timeout: Duration::from_millis(u64::try_from(spec.endpoint.timeout_millis).unwrap_or(10_000).max(1)),
        max_in_flight: max_in_flight.or(from_rate).unwrap_or(64).max(1),
        http_version: match spec.endpoint.http_version {
            api::HttpVersion::Auto => HttpVersion::Auto,
            api::HttpVersion::Http1 => HttpVersion::Http1,
            api::HttpVersion::Http2 => HttpVersion::Http2,
        },
        tls: TlsConfig {
            extra_ca_pem,
            insecure_skip_verify: spec.endpoint.tls.as_ref().is_some_and(|t| t.insecure_skip_verify),
        },
        auth: auth_config(spec.auth.as_ref(), lookup)?,
        retry: retry_config(&spec.retry_policy)?,
        ..SendConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(yaml: &str) -> api::DestinationSettings {
        let spec: courier_api::destination::DestinationSpec = serde_norway::from_str(yaml).expect("valid spec");
        api::DestinationSettings::from(&spec)
    }

    fn secrets(name: &str, key: &str) -> Option<String> {
        Some(format!("{name}/{key}"))
    }

    #[test]
    fn a_minimal_destination_gets_the_documented_defaults() {
        let spec = destination("endpoint: {url: 'http://127.0.0.1:1/'}\nrateLimit: {requestsPerSecond: 10}\n");
        let config = send_config(&spec, &secrets, None, None).expect("config");
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.max_in_flight, 64);
        assert_eq!(config.auth, AuthConfig::None);
        assert_eq!(config.retry.max_attempts, 5);
        assert_eq!(config.retry.multiplier_percent, 200);
        assert_eq!(config.retry.retry_on, RetryConfig::default().retry_on);
        assert!(config.retry.respect_retry_after);
    }

    #[test]
    fn secrets_are_resolved_per_auth_method() {
        let spec = destination(
            "endpoint: {url: 'http://x/'}\nrateLimit: {requestsPerSecond: 1, maxInFlight: 7}\n\
             auth: {basic: {secretRef: {name: creds}}}\n\
             retryPolicy: {maxAttempts: 2, retryOn: ['409', '5xx'], backoff: {multiplier: 3, jitter: None}}\n",
        );
        let config = send_config(&spec, &secrets, None, None).expect("config");
        assert_eq!(
            config.auth,
            AuthConfig::Basic { username: "creds/username".into(), password: "creds/password".into() }
        );
        assert_eq!(config.max_in_flight, 7);
        assert_eq!(config.retry.retry_on, [RetryOn::Status(409), RetryOn::Class(5)]);
        assert_eq!(config.retry.multiplier_percent, 300);
        assert_eq!(config.retry.jitter, Jitter::None);
    }

    #[test]
    fn a_missing_secret_key_is_named_in_the_error() {
        let spec = destination(
            "endpoint: {url: 'http://x/'}\nrateLimit: {requestsPerSecond: 1}\n\
             auth: {bearer: {secretRef: {name: tok, key: token}}}\n",
        );
        let none = |_: &str, _: &str| None;
        let err = send_config(&spec, &none, None, None).expect_err("missing");
        assert_eq!(err.to_string(), "Secret \"tok\" has no key \"token\"");
    }
}
