//! The operator's heartbeat protocol over HTTP(S), authenticated with the pod's projected
//! service-account token (re-read on every heartbeat, so a rotated token is picked up).

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
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::{Coordinator, CoordinatorError};
use crate::protocol::{HEARTBEAT_PATH, HeartbeatRequest, HeartbeatResponse};

/// Where Kubernetes mounts the pod's service-account token.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const SERVICE_ACCOUNT_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_ANSWER: usize = 64 << 20;

/// A client of the operator's coordinator endpoint.
#[derive(Debug, Clone)]
pub struct HttpCoordinator {
    url: String,
    token_path: PathBuf,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpCoordinator {
    /// A client of the coordinator at `base_url` (e.g. `http://10.0.0.1:8443`), reading its
    /// bearer token from `token_path` before every heartbeat (no header when the file is absent).
    pub fn new(base_url: &str, token_path: impl Into<PathBuf>) -> Result<Self, CoordinatorError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Ok(pem) = std::fs::read(SERVICE_ACCOUNT_CA) {
            for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(cert);
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CoordinatorError::Invalid { url: base_url.to_owned(), message: e.to_string() })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { url: format!("{}{HEARTBEAT_PATH}", base_url.trim_end_matches('/')), token_path: token_path.into(), client })
    }

    fn token(&self) -> Option<String> {
        std::fs::read_to_string(&self.token_path).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
    }

    async fn exchange(&self, body: Vec<u8>) -> Result<HeartbeatResponse, CoordinatorError> {
        let unreachable = |message: String| CoordinatorError::Unreachable { url: self.url.clone(), message };
        let mut request = Request::builder().method(Method::POST).uri(&self.url).header(CONTENT_TYPE, "application/json");
        if let Some(token) = self.token() {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| unreachable(e.to_string()))?;
        let response = self.client.request(request).await.map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(CoordinatorError::Status {
                url: self.url.clone(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| CoordinatorError::Invalid { url: self.url.clone(), message: e.to_string() })
    }
}

impl Coordinator for HttpCoordinator {
    async fn heartbeat(&mut self, request: HeartbeatRequest) -> Result<HeartbeatResponse, CoordinatorError> {
        let body = serde_json::to_vec(&request)
            .map_err(|e| CoordinatorError::Invalid { url: self.url.clone(), message: e.to_string() })?;
        match tokio::time::timeout(TIMEOUT, self.exchange(body)).await {
            Ok(result) => result,
            Err(_) => Err(CoordinatorError::Unreachable {
                url: self.url.clone(),
                message: format!("no answer within {}s", TIMEOUT.as_secs()),
            }),
        }
    }
}
