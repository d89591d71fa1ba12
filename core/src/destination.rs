//! The Destination as a worker needs it: endpoint, auth (secret names, never values), rate,
//! retry policy and in-flight bound — the protocol's own type, converted from the API once.
//!
//! Field names and JSON shapes follow the Destination resource's, so a worker of the previous
//! protocol version (which parsed the resource's spec) still reads what the operator sends,
//! and a worker reads what an operator of the previous version sent (the whole spec; the
//! fields it does not need are ignored).

use std::collections::BTreeMap;

use courier_api::destination as api;
use serde::{Deserialize, Serialize};

/// What a worker needs of a Destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSettings {
    pub endpoint: EndpointSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSettings>,
    pub rate_limit: RateSettings,
    pub retry_policy: RetrySettings,
    #[serde(default)]
    pub workers: WorkerSettings,
}

/// The partner's endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSettings {
    pub url: String,
    /// `POST`, `PUT`, `PATCH`, `GET` or `DELETE`.
    pub method: String,
    pub timeout_millis: i32,
    pub http_version: HttpVersion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
    /// Static headers sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Which HTTP version to speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpVersion {
    /// HTTP/2 when TLS ALPN offers it, HTTP/1.1 otherwise.
    #[default]
    Auto,
    Http1,
    Http2,
}

/// A key of a Secret (its value reaches workers as an environment variable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// A whole Secret (basic auth reads its `username` and `password` keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    pub name: String,
}

/// TLS settings of the endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsSettings {
    /// Extra CA certificates (PEM) trusted besides the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// How requests authenticate: at most one method is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<BearerAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_client_credentials: Option<OAuth2ClientCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderAuth>,
}

/// `Authorization: Bearer <token>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BearerAuth {
    pub secret_ref: SecretKeyRef,
}

/// `Authorization: Basic …` from a Secret's `username` and `password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    pub secret_ref: SecretRef,
}

/// OAuth2 client-credentials tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2ClientCredentials {
    pub token_url: String,
    pub client_id_ref: SecretKeyRef,
    pub client_secret_ref: SecretKeyRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// A header carrying a secret value (e.g. `X-Api-Key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderAuth {
    pub name: String,
    pub secret_ref: SecretKeyRef,
}

/// The Destination's rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateSettings {
    pub requests_per_second: i32,
    /// Always set by this version's operator (the burst in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_day: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_reset_time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_window_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<i32>,
}

impl RateSettings {
    /// The time zone of the quota periods (`UTC` unless set).
    pub fn quota_time_zone(&self) -> &str {
        self.quota_reset_time_zone.as_deref().unwrap_or("UTC")
    }

    /// The length of a quota period in seconds (a day unless set).
    pub fn quota_window(&self) -> i64 {
        self.quota_window_seconds.map_or(86_400, i64::from)
    }

    /// The burst in force (the API's rule when an older operator left it out).
    pub fn effective_burst(&self) -> i32 {
        let api = api::RateLimit {
            requests_per_second: self.requests_per_second,
            burst: self.burst,
            bytes_per_second: None,
            requests_per_day: None,
            quota_reset_time_zone: None,
            quota_window_seconds: None,
            max_in_flight: None,
        };
        api.effective_burst()
    }
}

/// Retry policy for failed requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetrySettings {
    pub max_attempts: i32,
    pub backoff: BackoffSettings,
    /// `"503"`, `"5xx"`, `"timeout"`, `"connect"`, ….
    pub retry_on: Vec<String>,
    pub respect_retry_after: bool,
    /// Longest a record is retried, from its first attempt; `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_seconds: Option<i32>,
    /// Statuses that mean refused credentials (`401`, `403`); an older operator sends none.
    #[serde(default = "default_auth_failure_statuses")]
    pub auth_failure_statuses: Vec<i32>,
    /// Longest wait for rotated credentials, seconds; an older operator sends none.
    #[serde(default = "default_auth_grace_seconds")]
    pub auth_grace_seconds: i32,
}

fn default_auth_failure_statuses() -> Vec<i32> {
    api::RetryPolicy::default().auth_failure_statuses
}

fn default_auth_grace_seconds() -> i32 {
    api::RetryPolicy::default().auth_grace_seconds
}

/// Exponential back-off between attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackoffSettings {
    pub initial_millis: i32,
    pub max_millis: i32,
    pub multiplier: i32,
    pub jitter: Jitter,
}

/// Randomization of back-off pauses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Jitter {
    #[default]
    Full,
    Equal,
    None,
}

/// Per-worker settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSettings {
    pub max_in_flight_per_worker: i32,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        let api = api::WorkerPolicy::default();
        WorkerSettings { max_in_flight_per_worker: api.max_in_flight_per_worker }
    }
}

fn key_ref(r: &courier_api::common::SecretKeyRef) -> SecretKeyRef {
    SecretKeyRef { name: r.name.clone(), key: r.key.clone() }
}

impl From<&api::DestinationSpec> for DestinationSettings {
    fn from(spec: &api::DestinationSpec) -> Self {
        let e = &spec.endpoint;
        let endpoint = EndpointSettings {
            url: e.url.clone(),
            method: e.method.as_str().to_owned(),
            timeout_millis: e.timeout_millis,
            http_version: match e.http_version {
                api::HttpVersion::Auto => HttpVersion::Auto,
                api::HttpVersion::Http1 => HttpVersion::Http1,
                api::HttpVersion::Http2 => HttpVersion::Http2,
            },
            tls: e.tls.as_ref().map(|t| TlsSettings {
                ca_secret_ref: t.ca_secret_ref.as_ref().map(key_ref),
                insecure_skip_verify: t.insecure_skip_verify,
            }),
            headers: e.headers.clone(),
        };
        let auth = spec.auth.as_ref().map(|a| AuthSettings {
            bearer: a.bearer.as_ref().map(|b| BearerAuth { secret_ref: key_ref(&b.secret_ref) }),
            basic: a.basic.as_ref().map(|b| BasicAuth { secret_ref: SecretRef { name: b.secret_ref.name.clone() } }),
            oauth2_client_credentials: a.oauth2_client_credentials.as_ref().map(|o| OAuth2ClientCredentials {
                token_url: o.token_url.clone(),
                client_id_ref: key_ref(&o.client_id_ref),
                client_secret_ref: key_ref(&o.client_secret_ref),
                scopes: o.scopes.clone(),
            }),
            header: a.header.as_ref().map(|h| HeaderAuth { name: h.name.clone(), secret_ref: key_ref(&h.secret_ref) }),
        });
        let r = &spec.rate_limit;
        let rate_limit = RateSettings {
            requests_per_second: r.requests_per_second,
            burst: Some(r.effective_burst()),
            bytes_per_second: r.bytes_per_second,
            requests_per_day: r.requests_per_day,
            quota_reset_time_zone: r.quota_reset_time_zone.clone(),
            quota_window_seconds: r.quota_window_seconds,
            max_in_flight: r.max_in_flight,
        };
        let p = &spec.retry_policy;
        let retry_policy = RetrySettings {
            max_attempts: p.max_attempts,
            backoff: BackoffSettings {
                initial_millis: p.backoff.initial_millis,
                max_millis: p.backoff.max_millis,
                multiplier: p.backoff.multiplier,
                jitter: match p.backoff.jitter {
                    api::Jitter::Full => Jitter::Full,
                    api::Jitter::Equal => Jitter::Equal,
                    api::Jitter::None => Jitter::None,
                },
            },
            retry_on: p.retry_on.clone(),
            respect_retry_after: p.respect_retry_after,
            max_retry_seconds: p.max_retry_seconds,
            auth_failure_statuses: p.auth_failure_statuses.clone(),
            auth_grace_seconds: p.auth_grace_seconds,
        };
        let workers = WorkerSettings { max_in_flight_per_worker: spec.workers.max_in_flight_per_worker };
        DestinationSettings { endpoint, auth, rate_limit, retry_policy, workers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> api::DestinationSpec {
        serde_norway::from_str(yaml).expect("valid Destination spec")
    }

    const FULL: &str = "endpoint: {url: 'https://p.example/in', method: PUT, timeoutMillis: 1500, httpVersion: Http2, \
         tls: {caSecretRef: {name: ca, key: ca.pem}}, headers: {X-Source: courier}}\n\
         auth: {oauth2ClientCredentials: {tokenUrl: 'https://p.example/token', clientIdRef: {name: o, key: id}, \
         clientSecretRef: {name: o, key: secret}, scopes: [write]}}\n\
         rateLimit: {requestsPerSecond: 500, bytesPerSecond: 1000000, requestsPerDay: 100000, maxInFlight: 32}\n\
         retryPolicy: {maxAttempts: 3, retryOn: ['503', timeout], backoff: {initialMillis: 10, maxMillis: 100, multiplier: 3, jitter: Equal}}\n\
         workers: {min: 1, max: 4, maxInFlightPerWorker: 16, image: 'x:1'}\nsuspend: true\n";

    #[test]
    fn a_destination_converts_with_the_burst_in_force() {
        let settings = DestinationSettings::from(&spec(FULL));
        assert_eq!(settings.endpoint.method, "PUT");
        assert_eq!(settings.endpoint.http_version, HttpVersion::Http2);
        assert_eq!(settings.rate_limit.burst, Some(10), "1/50 of the rate");
        assert_eq!(settings.rate_limit.effective_burst(), 10);
        assert_eq!(settings.retry_policy.backoff.jitter, Jitter::Equal);
        assert_eq!(settings.workers.max_in_flight_per_worker, 16);
        let oauth = settings.auth.and_then(|a| a.oauth2_client_credentials).expect("oauth2");
        assert_eq!(oauth.client_secret_ref, SecretKeyRef { name: "o".into(), key: "secret".into() });
    }

    #[test]
    fn what_this_operator_sends_still_parses_as_the_spec_a_previous_worker_expects() {
        let api = spec(FULL);
        let json = serde_json::to_value(DestinationSettings::from(&api)).expect("serializes");
        let old: api::DestinationSpec = serde_json::from_value(json).expect("a previous worker parses it");
        assert_eq!(old.endpoint, api.endpoint);
        assert_eq!(old.auth, api.auth);
        assert_eq!(old.retry_policy, api.retry_policy);
        assert_eq!(old.rate_limit.effective_burst(), api.rate_limit.effective_burst());
        assert_eq!(old.workers.max_in_flight_per_worker, 16);
    }

    #[test]
    fn the_spec_a_previous_operator_sent_parses_as_settings() {
        for yaml in [FULL, "endpoint: {url: 'http://127.0.0.1:1/'}\nrateLimit: {requestsPerSecond: 100}\n"] {
            let api = spec(yaml);
            let json = serde_json::to_value(&api).expect("serializes");
            let settings: DestinationSettings = serde_json::from_value(json).expect("parses");
            let mut want = DestinationSettings::from(&api);
            want.rate_limit.burst = api.rate_limit.burst;
            assert_eq!(settings, want);
            assert_eq!(settings.rate_limit.effective_burst(), api.rate_limit.effective_burst());
        }
    }
}
