//! Credential checks for partner traffic, and the OAuth2 client-credentials
//! token endpoint that issues expiring bearer tokens.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::config::Auth;
use super::random::Random;

/// The configured [`Auth`], prepared for cheap per-request checks.
#[derive(Debug)]
pub enum AuthCheck {
    /// Everyone is welcome.
    Open,
    /// One header must carry exactly this value.
    Exact(HeaderName, HeaderValue),
    /// A bearer token issued by the token endpoint and not yet expired.
    Oauth2 {
        /// Accepted client id.
        client_id: String,
        /// Accepted client secret.
        client_secret: String,
        /// Lifetime of new tokens.
        ttl: Duration,
    },
}

/// Why an [`Auth`] could not be prepared.
#[derive(Debug, thiserror::Error)]
#[error("auth credentials cannot be sent as HTTP header {0:?}")]
pub struct BadCredentials(String);

impl AuthCheck {
    /// Prepares the expected header once, so a check is a byte comparison.
    pub fn new(auth: &Auth) -> Result<Self, BadCredentials> {
        let exact = |name: HeaderName, value: String| {
            HeaderValue::try_from(value.as_str()).map(|v| Self::Exact(name, v)).map_err(|_| BadCredentials(value))
        };
        match auth {
            Auth::None => Ok(Self::Open),
            Auth::Bearer { token } => exact(AUTHORIZATION, format!("Bearer {token}")),
            Auth::Basic { user, password } => {
                exact(AUTHORIZATION, format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))))
            }
            Auth::Header { name, value } => {
                let name = HeaderName::try_from(name.as_str()).map_err(|_| BadCredentials(name.clone()))?;
                exact(name, value.clone())
            }
            Auth::Oauth2 { client_id, client_secret, token_ttl_secs } => Ok(Self::Oauth2 {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                ttl: Duration::from_secs(*token_ttl_secs),
            }),
        }
    }

    /// Whether a partner request with these headers may pass.
    pub fn allows(&self, headers: &HeaderMap, tokens: &TokenStore) -> bool {
        match self {
            Self::Open => true,
            Self::Exact(name, value) => headers.get(name) == Some(value),
            Self::Oauth2 { .. } => headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|token| tokens.is_valid(token)),
        }
    }
}

/// Tokens issued by the token endpoint, with their expiry.
#[derive(Debug, Default)]
pub struct TokenStore {
    tokens: Mutex<HashMap<String, Instant>>,
}

impl TokenStore {
    fn is_valid(&self, token: &str) -> bool {
        let tokens = self.tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tokens.get(token).is_some_and(|expiry| Instant::now() < *expiry)
    }

    fn issue(&self, random: &Random, ttl: Duration) -> String {
        let token = format!("sim-{:016x}{:016x}", random.next_u64(), random.next_u64());
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tokens.retain(|_, expiry| *expiry > now);
        tokens.insert(token.clone(), now + ttl);
        token
    }
}

/// Answers `POST /oauth/token`: status and JSON body.
pub fn token_endpoint(
    check: &AuthCheck,
    tokens: &TokenStore,
    random: &Random,
    headers: &HeaderMap,
    form: &[u8],
) -> (StatusCode, String) {
    let AuthCheck::Oauth2 { client_id, client_secret, ttl } = check else {
        return oauth_error(StatusCode::NOT_FOUND, "oauth2_not_configured");
    };
    let fields: HashMap<String, String> = form_urlencoded::parse(form).into_owned().collect();
    if fields.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let credentials = basic_credentials(headers)
        .or_else(|| Some((fields.get("client_id")?.clone(), fields.get("client_secret")?.clone())));
    match credentials {
        Some((id, secret)) if id == *client_id && secret == *client_secret => {
            let token = tokens.issue(random, *ttl);
            let body = serde_json::json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": ttl.as_secs(),
            });
            (StatusCode::OK, body.to_string())
        }
        _ => oauth_error(StatusCode::UNAUTHORIZED, "invalid_client"),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers.get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn oauth_error(status: StatusCode, error: &str) -> (StatusCode, String) {
    (status, serde_json::json!({ "error": error }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::try_from(value).expect("valid header"));
        headers
    }

    #[test]
    fn basic_auth_accepts_the_right_pair_only() {
        let check = AuthCheck::new(&Auth::Basic { user: "u".into(), password: "p".into() }).expect("prepares");
        let store = TokenStore::default();
        assert!(check.allows(&headers(AUTHORIZATION, &format!("Basic {}", STANDARD.encode("u:p"))), &store));
        assert!(!check.allows(&headers(AUTHORIZATION, &format!("Basic {}", STANDARD.encode("u:x"))), &store));
        assert!(!check.allows(&HeaderMap::new(), &store));
    }

    #[test]
    fn token_endpoint_issues_a_token_that_then_opens_the_door() {
        let auth = Auth::Oauth2 { client_id: "id".into(), client_secret: "s".into(), token_ttl_secs: 60 };
        let check = AuthCheck::new(&auth).expect("prepares");
        let (store, random) = (TokenStore::default(), Random::new(Some(3)));
        let form = b"grant_type=client_credentials&client_id=id&client_secret=s";
        let (status, body) = token_endpoint(&check, &store, &random, &HeaderMap::new(), form);
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        let token = json["access_token"].as_str().expect("token");
        assert!(check.allows(&headers(AUTHORIZATION, &format!("Bearer {token}")), &store));
        assert!(!check.allows(&headers(AUTHORIZATION, "Bearer forged"), &store));
    }

    #[test]
    fn token_endpoint_refuses_a_wrong_secret() {
        let auth = Auth::Oauth2 { client_id: "id".into(), client_secret: "s".into(), token_ttl_secs: 60 };
        let check = AuthCheck::new(&auth).expect("prepares");
        let form = b"grant_type=client_credentials&client_id=id&client_secret=wrong";
        let (status, _) = token_endpoint(&check, &TokenStore::default(), &Random::new(None), &HeaderMap::new(), form);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
