//! The operator's heartbeat protocol over HTTP(S), authenticated with the pod's projected
//! service-account token (re-read on every heartbeat, so a rotated token is picked up).
//!
//! The worker may be given several coordinator URLs (every operator replica, or a Service):
//! only the leader answers, so a heartbeat that finds one unreachable or answering 503 (a
//! standby) tries the next, and sticks to the one that answered. The worker Deployment then
//! names the same URLs whichever replica leads, so a leader change does not roll the workers.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{Cause, Coordinator, CoordinatorError};
use crate::protocol::{COORDINATOR_CA_ENV, HEARTBEAT_PATH, HeartbeatRequest, HeartbeatResponse};
use crate::send::{TlsConfig, client_config};

/// Where Kubernetes mounts the pod's service-account token.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const SERVICE_ACCOUNT_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
const TIMEOUT: Duration = Duration::from_secs(5);
/// A coordinator URL that does not even accept a connection this fast (a replica that is gone,
/// whose Service has no endpoint) is skipped for the next one: a heartbeat must not wait out
/// the whole answer timeout on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_ANSWER: usize = 64 << 20;

/// A client of the operator's coordinator endpoint.
#[derive(Debug, Clone)]
pub struct HttpCoordinator {
    /// Heartbeat URLs, tried from `current` on.
    urls: Vec<String>,
    current: usize,
    token_path: PathBuf,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpCoordinator {
    /// A client of the coordinator at `base_urls` (e.g. `http://10.0.0.1:8443`, or several
    /// separated by commas), reading its bearer token from `token_path` before every heartbeat
    /// (no header when the file is absent).
    pub fn new(base_urls: &str, token_path: impl Into<PathBuf>) -> Result<Self, CoordinatorError> {
        let urls: Vec<String> = base_urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| format!("{}{HEARTBEAT_PATH}", u.trim_end_matches('/')))
            .collect();
        if urls.is_empty() {
            return Err(CoordinatorError::NoUrl { given: base_urls.to_owned() });
        }
        // The same TLS set-up as towards partners, trusting the coordinator's CA (the operator
        // sets it in the pod's environment) and the cluster's besides the system's.
        let mut extra_ca_pem = std::env::var(COORDINATOR_CA_ENV).unwrap_or_default().into_bytes();
        if let Ok(cluster_ca) = std::fs::read(SERVICE_ACCOUNT_CA) {
            extra_ca_pem.push(b'\n');
            extra_ca_pem.extend(cluster_ca);
        }
        let extra_ca_pem = extra_ca_pem.iter().any(|b| !b.is_ascii_whitespace()).then_some(extra_ca_pem);
        let settings = TlsConfig { extra_ca_pem, insecure_skip_verify: false };
        let tls = client_config(&settings)
            .map_err(|e| CoordinatorError::Setup { urls: base_urls.to_owned(), source: e.into() })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector =
            HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { urls, current: 0, token_path: token_path.into(), client })
    }

    fn token(&self) -> Option<String> {
        std::fs::read_to_string(&self.token_path).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
    }

    async fn exchange(&self, url: &str, body: Bytes) -> Result<HeartbeatResponse, CoordinatorError> {
        let unreachable = |source: Cause| CoordinatorError::Unreachable { url: url.to_owned(), source };
        let mut request = Request::builder().method(Method::POST).uri(url).header(CONTENT_TYPE, "application/json");
        if let Some(token) = self.token() {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Full::new(body)).map_err(|e| unreachable(e.into()))?;
        let response = self.client.request(request).await.map_err(|e| unreachable(e.into()))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(unreachable)?
            .to_bytes();
        if !status.is_success() {
            return Err(CoordinatorError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| CoordinatorError::Invalid { url: url.to_owned(), source: e.into() })
    }

    async fn exchange_within(&self, url: &str, body: Bytes) -> Result<HeartbeatResponse, CoordinatorError> {
        match tokio::time::timeout(TIMEOUT, self.exchange(url, body)).await {
            Ok(result) => result,
            Err(_) => Err(CoordinatorError::NoAnswer { url: url.to_owned(), seconds: TIMEOUT.as_secs() }),
        }
    }
}

/// Whether another coordinator URL may answer where this one did not: it was unreachable, or
/// it is a standby replica (503).
fn try_next(error: &CoordinatorError) -> bool {
    match error {
        CoordinatorError::Unreachable { .. } | CoordinatorError::NoAnswer { .. } => true,
        CoordinatorError::Status { status, .. } => *status == 503,
        _ => false,
    }
}

impl Coordinator for HttpCoordinator {
    async fn heartbeat(&mut self, request: HeartbeatRequest) -> Result<HeartbeatResponse, CoordinatorError> {
        let body = Bytes::from(
            serde_json::to_vec(&request)
                .map_err(|e| CoordinatorError::Invalid { url: self.urls[self.current].clone(), source: e.into() })?,
        );
        let mut last = None;
        for step in 0..self.urls.len() {
            let index = (self.current + step) % self.urls.len();
            match self.exchange_within(&self.urls[index], body.clone()).await {
                Ok(answer) => {
                    if index != self.current {
                        tracing::info!(coordinator = %self.urls[index], "heartbeats go to another coordinator replica now");
                        self.current = index;
                    }
                    return Ok(answer);
                }
                Err(e) if try_next(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| CoordinatorError::NoUrl { given: String::new() }))
    }
}
