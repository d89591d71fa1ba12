//! Service-account tokens through the TokenRequest API, bound to the pod.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

use super::envvars::PodFacts;
use super::error::{Error, Result};

/// Default token lifetime when the pod does not ask for one.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// A token and when to ask for the next one.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// Refresh after this long (80 % of the token's lifetime).
    pub refresh_after: Duration,
}

/// Requests a token for the pod's service account, bound to the pod.
pub async fn request(
    client: &kube::Client,
    facts: PodFacts<'_>,
    audience: Option<&str>,
    expiration_seconds: i64,
) -> Result<IssuedToken> {
    let account =
        facts.pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".to_string());
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), facts.namespace());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
            expiration_seconds: Some(expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(facts.name().to_string()),
                uid: facts.pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .map_err(Error::kube(format!("request a token for serviceaccount {}/{account}", facts.namespace())))?;
    let status =
        issued.status.ok_or_else(|| Error::Config(format!("token request for {account} returned no token")))?;
    let lifetime = status.expiration_timestamp.0.duration_since(jiff::Timestamp::now());
    let seconds = lifetime.as_secs().clamp(1, expiration_seconds.max(1));
    Ok(IssuedToken { token: status.token, refresh_after: refresh_after(seconds) })
}

/// When to refresh a token that lives `lifetime_seconds`: at 80 % of it, at least 1 s.
pub fn refresh_after(lifetime_seconds: i64) -> Duration {
    let seconds = u64::try_from(lifetime_seconds).unwrap_or(1).max(1);
    Duration::from_millis(seconds * 800).max(Duration::from_secs(1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_at_eighty_percent_of_their_life() {
        assert_eq!(refresh_after(3600), Duration::from_secs(2880));
        assert_eq!(refresh_after(0), Duration::from_secs(1));
    }
}
