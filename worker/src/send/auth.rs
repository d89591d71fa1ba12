//! Request authentication: a fixed header (bearer, basic, API key) prepared once, or OAuth2
//! client-credentials tokens fetched from the token URL, cached, refreshed at 80% of their
//! lifetime, and refreshed at once after a 401.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use tokio::time::Instant;

use super::client::{HttpClient, Outgoing};
use super::config::{AuthConfig, OAuth2Config};

/// Share of a token's lifetime after which it is refreshed.
const REFRESH_AT_PERCENT: u32 = 80;
/// Timeout of one token request.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no credentials could be attached.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("auth {0} cannot be sent as an HTTP header")]
    Header(&'static str),
    #[error("failed to fetch an OAuth2 token from {url}: {reason}")]
    Token { url: String, reason: String },
}

/// Credentials of one Destination.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// A header fixed for the Destination's lifetime.
    Static(HeaderName, HeaderValue),
    OAuth2(Arc<TokenSource>),
}

impl Auth {
    /// Prepares `config`; OAuth2 tokens are fetched with `client` on first use.
    pub fn new(config: &AuthConfig, client: HttpClient) -> Result<Self, AuthError> {
        let sensitive = |what, value: String| {
            let mut v = HeaderValue::try_from(value).map_err(|_| AuthError::Header(what))?;
            v.set_sensitive(true);
            Ok(v)
        };
        Ok(match config {
            AuthConfig::None => Self::None,
            AuthConfig::Bearer { token } => {
                Self::Static(AUTHORIZATION, sensitive("bearer token", format!("Bearer {token}"))?)
            }
            AuthConfig::Basic { username, password } => {
                let encoded = STANDARD.encode(format!("{username}:{password}"));
                Self::Static(AUTHORIZATION, sensitive("basic credentials", format!("Basic {encoded}"))?)
            }
            AuthConfig::Header { name, value } => {
                let name = HeaderName::try_from(name.as_str()).map_err(|_| AuthError::Header("header name"))?;
                Self::Static(name, sensitive("header value", value.clone())?)
            }
            AuthConfig::OAuth2(oauth) => Self::OAuth2(Arc::new(TokenSource::new(oauth.clone(), client))),
        })
    }

    /// The header to attach to the next attempt, if any.
    pub async fn header(&self) -> Result<Option<(HeaderName, HeaderValue)>, AuthError> {
        match self {
            Self::None => Ok(None),
            Self::Static(name, value) => Ok(Some((name.clone(), value.clone()))),
            Self::OAuth2(source) => Ok(Some((AUTHORIZATION, source.token().await?))),
        }
    }

    /// Called on a 401 to an attempt that carried `used`; true when fresh credentials may help
    /// (the cached token is dropped so the next attempt fetches a new one).
    pub fn unauthorized(&self, used: Option<&HeaderValue>) -> bool {
        match (self, used) {
            (Self::OAuth2(source), Some(used)) => {
                source.invalidate(used);
                true
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    value: HeaderValue,
    refresh_at: Instant,
    expires_at: Option<Instant>,
}

/// A cached OAuth2 client-credentials token; one fetch at a time.
#[derive(Debug)]
pub struct TokenSource {
    config: OAuth2Config,
    client: HttpClient,
    cached: Mutex<Option<Token>>,
    fetching: tokio::sync::Mutex<()>,
}

impl TokenSource {
    fn new(config: OAuth2Config, client: HttpClient) -> Self {
        Self { config, client, cached: Mutex::new(None), fetching: tokio::sync::Mutex::new(()) }
    }

    fn current(&self, now: Instant) -> Option<Token> {
        let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        cached.as_ref().filter(|t| now < t.refresh_at).cloned()
    }

    /// A valid `Bearer` header value, fetching a token when none is cached or it is due.
    pub async fn token(&self) -> Result<HeaderValue, AuthError> {
        if let Some(t) = self.current(Instant::now()) {
            return Ok(t.value);
        }
        // Boxed: the refresh is rare, and inline it would make every request's future as
        // large as a whole token exchange.
        Box::pin(self.refresh()).await
    }

    /// Fetches a token (one fetch at a time), keeping the old one if that fails while it is valid.
    async fn refresh(&self) -> Result<HeaderValue, AuthError> {
        let _one_fetch = self.fetching.lock().await;
        if let Some(t) = self.current(Instant::now()) {
            return Ok(t.value);
        }
        match self.fetch().await {
            Ok(token) => {
                let value = token.value.clone();
                *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = Some(token);
                Ok(value)
            }
            Err(e) => {
                // A refresh that fails early keeps the old token while it is still valid.
                let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner).clone();
                match cached {
                    Some(t) if t.expires_at.is_none_or(|at| Instant::now() < at) => {
                        tracing::warn!(error = %e, "OAuth2 refresh failed; using the current token until it expires");
                        Ok(t.value)
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// Drops the cached token if it is the one that was refused.
    fn invalidate(&self, used: &HeaderValue) {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.as_ref().is_some_and(|t| t.value == *used) {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<Token, AuthError> {
        let fail = |reason: String| AuthError::Token { url: self.config.token_url.clone(), reason };
        // The serializer is not Send: finish it before any await.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !self.config.scopes.is_empty() {
                form.append_pair("scope", &self.config.scopes.join(" "));
            }
            form.finish()
        };
        let basic = STANDARD.encode(format!("{}:{}", self.config.client_id, self.config.client_secret));
        let uri: Uri = self.config.token_url.parse().map_err(|e: http::uri::InvalidUri| fail(e.to_string()))?;
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let mut basic = HeaderValue::try_from(format!("Basic {basic}"))
            .map_err(|_| fail("client id or secret is not usable in a header".to_owned()))?;
        basic.set_sensitive(true);
        let body = Bytes::from(form);
        let request = Outgoing {
            method: &Method::POST,
            uri: &uri,
            headers: &headers,
            extra: [Some((&AUTHORIZATION, &basic)), None],
            body: &body,
        };
        let started = Instant::now();
        let response = self.client.execute(request, TOKEN_TIMEOUT).await.map_err(|e| fail(e.message))?;
        if !response.status.is_success() {
            let body = String::from_utf8_lossy(&response.body);
            return Err(fail(format!("status {}: {body}", response.status)));
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&response.body).map_err(|e| fail(format!("invalid token response: {e}")))?;
        let mut value = HeaderValue::try_from(format!("Bearer {}", parsed.access_token))
            .map_err(|_| fail("access_token is not a valid header value".to_owned()))?;
        value.set_sensitive(true);
        let (refresh_at, expires_at) = match parsed.expires_in {
            Some(secs) => {
                let lifetime = Duration::from_secs(secs);
                (started + lifetime * REFRESH_AT_PERCENT / 100, Some(started + lifetime))
            }
            // No lifetime given: keep the token until the partner refuses it.
            None => (started + Duration::from_secs(365 * 86_400), None),
        };
        Ok(Token { value, refresh_at, expires_at })
    }
}

#[derive(Debug, serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}
