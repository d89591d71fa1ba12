//! Who is calling: the worker's projected service-account token, checked with a TokenReview
//! for the coordinator's audience (`courier-coordinator`: a token meant for the apiserver or
//! anyone else is refused), and the pod it is bound to, which must be a worker of the
//! Destination it claims.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use crate::controller::destination::build::DESTINATION_LABEL;

/// TokenReview extra field holding the name of the pod a token is bound to.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";

const TOKEN_TTL: Duration = Duration::from_secs(60);
const POD_TTL: Duration = Duration::from_secs(10);
/// How long a pod checked as a worker of a Destination is remembered as one after it is gone
/// from the API (force-deleted pods keep running for their grace period).
const WORKER_MEMORY: Duration = Duration::from_secs(600);
const MAX_CACHE: usize = 10_000;

/// What an authorized caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A worker pod of the Destination.
    Worker,
    /// It was a worker pod of the Destination, and its pod is gone from the API (force-deleted:
    /// the process runs on until the kubelet kills it). Its reports still count — progress,
    /// completions, leases given back — but it is drained: it gets no share and no lease, and
    /// its leases are revoked.
    Gone,
    /// Its pod is not in the API and this replica never checked it (it may lead since after
    /// the pod was deleted): [`Standing::Gone`] if the coordinator has leases of the
    /// Destination for it (an earlier leader checked it), refused otherwise.
    Missing,
}

/// What the API says of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PodLook {
    /// No such pod.
    Missing,
    /// The pod, with its worker label if any.
    Labelled(Option<String>),
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `system:serviceaccount:<namespace>:<name>` for service accounts.
    pub username: String,
    /// The service account's namespace.
    pub namespace: Option<String>,
    /// The pod the token is bound to.
    pub pod: Option<String>,
}

impl Identity {
    /// The caller a review vouches for, if it authenticated the token for one of `audiences`
    /// (any audience when empty). The apiserver answers with the audiences the token is valid
    /// for among those asked; an authenticator that ignores audiences answers none, and is not
    /// trusted for them.
    fn from_review(review: &TokenReview, audiences: &[String]) -> Option<Identity> {
        let status = review.status.as_ref()?;
        if status.authenticated != Some(true) {
            return None;
        }
        if !audiences.is_empty() && !status.audiences.iter().flatten().any(|a| audiences.contains(a)) {
            return None;
        }
        let user = status.user.as_ref()?;
        let username = user.username.clone()?;
        let namespace =
            username.strip_prefix("system:serviceaccount:").and_then(|rest| rest.split(':').next()).map(str::to_owned);
        let pod = user.extra.as_ref().and_then(|e| e.get(POD_NAME_EXTRA)).and_then(|v| v.first()).cloned();
        Some(Identity { username, namespace, pod })
    }
}

/// Why a caller was turned away.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No or malformed `Authorization: Bearer` header, or the token is not valid.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Valid token, but not a worker of that Destination.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The apiserver could not be asked.
    #[error("failed to check the caller with the apiserver: {0}")]
    Unavailable(#[source] kube::Error),
}

/// Checks tokens with TokenReview and pods by label, caching both briefly.
pub struct TokenAuthenticator {
    client: kube::Client,
    audiences: Vec<String>,
    tokens: Mutex<HashMap<String, (Instant, Option<Identity>)>>,
    pods: Mutex<HashMap<PodKey, (Instant, PodLook)>>,
    /// Pods seen labelled as workers, with their Destination, kept for [`WORKER_MEMORY`] after
    /// the last time the API showed them (see [`Standing::Gone`]).
    workers: Mutex<HashMap<PodKey, (Instant, String)>>,
}

/// Namespace and name of a pod.
type PodKey = (String, String);

impl TokenAuthenticator {
    /// Reviews tokens with `client` for `audiences`; empty accepts the apiserver's default
    /// audience (tests only).
    pub fn new(client: kube::Client, audiences: Vec<String>) -> Self {
        TokenAuthenticator {
            client,
            audiences,
            tokens: Mutex::new(HashMap::new()),
            pods: Mutex::new(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
        }
    }

    /// Who holds `token` (cached ~60 s, failures included).
    pub async fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        if let Some(cached) = cached(&self.tokens, &token.to_owned(), TOKEN_TTL) {
            return cached.ok_or_else(|| AuthError::Unauthenticated("token not valid".into()));
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await.map_err(AuthError::Unavailable)?;
        let identity = Identity::from_review(&answer, &self.audiences);
        store(&self.tokens, token.to_owned(), identity.clone());
        identity.ok_or_else(|| AuthError::Unauthenticated("token not valid".into()))
    }

    /// Checks that `identity` is the pod `worker` in `namespace`, labelled as a worker of
    /// `destination` — or was one, and is gone from the API since ([`Standing::Gone`]).
    pub async fn authorize(
        &self,
        identity: &Identity,
        namespace: &str,
        destination: &str,
        worker: &str,
    ) -> Result<Standing, AuthError> {
        if identity.namespace.as_deref() != Some(namespace) {
            return Err(AuthError::Forbidden(format!(
                "{} is not a service account of namespace {namespace}",
                identity.username
            )));
        }
        let Some(pod) = identity.pod.as_deref() else {
            return Err(AuthError::Forbidden(format!("the token of {} is not bound to a pod", identity.username)));
        };
        if pod != worker {
            return Err(AuthError::Forbidden(format!("the token is bound to pod {pod}, not {worker}")));
        }
        let key = (namespace.to_owned(), pod.to_owned());
        let label = match cached(&self.pods, &key, POD_TTL) {
            Some(label) => label,
            None => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
                let found = api.get_opt(pod).await.map_err(AuthError::Unavailable)?;
                let label = found.map_or(PodLook::Missing, |p| {
                    PodLook::Labelled(p.metadata.labels.and_then(|mut l| l.remove(DESTINATION_LABEL)))
                });
                // Remembered past the pod (as fetched, not per heartbeat): a worker's last
                // reports still count once it is force-deleted.
                if let PodLook::Labelled(Some(worker_of)) = &label {
                    store(&self.workers, key.clone(), worker_of.clone());
                }
                store(&self.pods, key.clone(), label.clone());
                label
            }
        };
        // Only a pod gone from the API is judged by what it was.
        let known = if label == PodLook::Missing { cached(&self.workers, &key, WORKER_MEMORY) } else { None };
        standing(&label, known.as_deref(), destination)
            .map_err(|why| AuthError::Forbidden(format!("pod {namespace}/{pod} {why}")))
    }
}

/// The standing of a pod as the API shows it (`look`), known as a worker of `known` earlier,
/// calling as a worker of `destination`; or why it is refused.
fn standing(look: &PodLook, known: Option<&str>, destination: &str) -> Result<Standing, String> {
    match (look, known) {
        (PodLook::Labelled(Some(l)), _) if l == destination => Ok(Standing::Worker),
        (PodLook::Labelled(Some(l)), _) => Err(format!("is a worker of {l}, not {destination}")),
        (PodLook::Labelled(None), _) => Err(format!("is not a worker of {destination}")),
        (PodLook::Missing, Some(k)) if k == destination => Ok(Standing::Gone),
        (PodLook::Missing, Some(k)) => Err(format!("was a worker of {k}, not {destination}")),
        (PodLook::Missing, None) => Ok(Standing::Missing),
    }
}

fn cached<K: std::hash::Hash + Eq, V: Clone>(
    map: &Mutex<HashMap<K, (Instant, V)>>,
    key: &K,
    ttl: Duration,
) -> Option<V> {
    let map = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    map.get(key).filter(|(at, _)| at.elapsed() < ttl).map(|(_, v)| v.clone())
}

fn store<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, (Instant, V)>>, key: K, value: V) {
    let mut map = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if map.len() >= MAX_CACHE {
        map.retain(|_, (at, _)| at.elapsed() < TOKEN_TTL);
        if map.len() >= MAX_CACHE {
            map.clear();
        }
    }
    map.insert(key, (Instant::now(), value));
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_gone_from_the_api_keeps_the_standing_it_had_and_nothing_more() {
        let labelled = |l: Option<&str>| PodLook::Labelled(l.map(str::to_owned));
        // (the pod now, known as a worker of, calling for) → standing
        let cases = [
            (labelled(Some("d")), None, "d", Ok(Standing::Worker)),
            (labelled(Some("d")), Some("d"), "d", Ok(Standing::Worker)),
            (labelled(Some("e")), Some("d"), "d", Err("is a worker of e, not d")),
            (labelled(None), Some("d"), "d", Err("is not a worker of d")),
            (PodLook::Missing, Some("d"), "d", Ok(Standing::Gone)),
            (PodLook::Missing, Some("e"), "d", Err("was a worker of e, not d")),
            (PodLook::Missing, None, "d", Ok(Standing::Missing)),
        ];
        for (look, known, destination, want) in cases {
            let got = standing(&look, known, destination);
            assert_eq!(got, want.map_err(str::to_owned), "{look:?} {known:?} {destination}");
        }
    }

    #[test]
    fn bearer_tokens_are_taken_from_the_authorization_header() {
        let cases = [
            (Some("Bearer abc.def"), Some("abc.def")),
            (Some("bearer  abc "), Some("abc")),
            (Some("Basic abc"), None),
            (Some("Bearer "), None),
            (Some("Bearer"), None),
            (None, None),
        ];
        for (header, expected) in cases {
            assert_eq!(bearer_token(header), expected, "{header:?}");
        }
    }

    #[test]
    fn a_review_yields_the_service_account_namespace_and_bound_pod() {
        let review: TokenReview = serde_json::from_value(serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {},
            "status": {"authenticated": true, "user": {
                "username": "system:serviceaccount:team-a:courier-worker",
                "extra": {"authentication.kubernetes.io/pod-name": ["w-1"]}}}
        }))
        .expect("review");
        assert_eq!(
            Identity::from_review(&review, &[]),
            Some(Identity {
                username: "system:serviceaccount:team-a:courier-worker".into(),
                namespace: Some("team-a".into()),
                pod: Some("w-1".into())
            })
        );
        let refused: TokenReview = serde_json::from_value(serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {},
            "status": {"authenticated": false, "error": "invalid bearer token"}
        }))
        .expect("review");
        assert_eq!(Identity::from_review(&refused, &[]), None);
    }

    #[test]
    fn a_review_counts_only_for_the_audiences_asked_for() {
        let review = |audiences: serde_json::Value| -> TokenReview {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {},
                "status": {"authenticated": true, "audiences": audiences, "user": {
                    "username": "system:serviceaccount:team-a:courier-worker"}}
            }))
            .expect("review")
        };
        let ours = vec!["courier-coordinator".to_owned()];
        let cases = [
            (serde_json::json!(["courier-coordinator"]), true),
            (serde_json::json!(["https://kubernetes.default.svc.cluster.local"]), false),
            (serde_json::json!([]), false),
            (serde_json::Value::Null, false),
        ];
        for (audiences, accepted) in cases {
            let label = audiences.to_string();
            assert_eq!(Identity::from_review(&review(audiences), &ours).is_some(), accepted, "{label}");
        }
        assert!(Identity::from_review(&review(serde_json::Value::Null), &[]).is_some(), "no audience asked for");
    }
}
