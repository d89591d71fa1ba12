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

/// What `Debug` prints in place of a secret value.
pub const REDACTED: &str = "<redacted>";

/// OAuth2 client-credentials settings, secrets resolved. `Debug` leaves the client secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuth2Config {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for OAuth2Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2Config")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// How requests authenticate, secrets resolved. `Debug` names the method and leaves every
/// secret value out.
#[derive(Clone, Default, PartialEq, Eq)]
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

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bearer { .. } => f.debug_struct("Bearer").field("token", &REDACTED).finish(),
            Self::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &REDACTED).finish()
            }
            Self::Header { name, .. } => {
                f.debug_struct("Header").field("name", name).field("value", &REDACTED).finish()
            }
            Self::OAuth2(config) => f.debug_tuple("OAuth2").field(config).finish(),
        }
    }
}

/// Everything the send stack needs besides the request builder. `Debug` redacts the auth
/// secrets (through [`AuthConfig`]'s).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_of_every_auth_method_names_it_but_never_shows_a_secret() {
        let secret = "s3cr3t-VALUE";
        let configs = [
            AuthConfig::Bearer { token: secret.into() },
            AuthConfig::Basic { username: "user".into(), password: secret.into() },
            AuthConfig::Header { name: "X-Api-Key".into(), value: secret.into() },
            AuthConfig::OAuth2(OAuth2Config {
                token_url: "https://idp.invalid/token".into(),
                client_id: "client".into(),
                client_secret: secret.into(),
                scopes: vec!["send".into()],
            }),
        ];
        for auth in configs {
            let send = SendConfig { auth: auth.clone(), ..SendConfig::default() };
            for text in [format!("{auth:?}"), format!("{auth:#?}"), format!("{send:?}")] {
                assert!(!text.contains(secret), "secret printed: {text}");
                assert!(text.contains(REDACTED), "no redaction marker: {text}");
            }
        }
        assert_eq!(format!("{:?}", AuthConfig::None), "None");
    }
}
