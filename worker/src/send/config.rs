//! The Destination's endpoint, auth and send settings as plain values, with secrets already
//! resolved by the caller (the CRD types convert into these).

use std::time::Duration;

use super::retry::RetryConfig;

/// Which HTTP versions to speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1, or HTTP/2 when TLS ALPN offers it.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (prior knowledge on plain http).
    Http2,
}

/// TLS settings of the endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Extra CA certificates (PEM) trusted besides the system's roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Accept any server certificate. For tests against self-signed partners only.
    pub insecure_skip_verify: bool,
}

/// OAuth2 client-credentials settings, secrets resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Config {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
}

/// How requests authenticate, secrets resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuthConfig {
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: String },
    /// A header carrying a secret value, e.g. `X-Api-Key`.
    Header { name: String, value: String },
    /// Client-credentials tokens from `token_url`, cached and refreshed before expiry.
    OAuth2(OAuth2Config),
}

/// Everything the send stack needs besides the request builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendConfig {
    /// Timeout of one attempt, from sending the request to the end of the response body.
    pub timeout: Duration,
    /// Requests in flight at most (including those waiting for the limiter or a back-off).
    pub max_in_flight: usize,
    pub http_version: HttpVersion,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub retry: RetryConfig,
    /// Idle keep-alive connections are closed after this long.
    pub pool_idle_timeout: Duration,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_in_flight: 64,
            http_version: HttpVersion::Auto,
            tls: TlsConfig::default(),
            auth: AuthConfig::None,
            retry: RetryConfig::default(),
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}
