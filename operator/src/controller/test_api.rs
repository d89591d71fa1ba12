//! Test support: a mock API server (tower-test) that answers like the real one for the objects
//! a test names and remembers every request, and an operator context around it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;

use super::destination::build::{CoordinatorToken, WorkerDefaults};
use crate::context::{self, Context, LookupWriters, Settings};
use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::metrics::Metrics;
use crate::status_writer::StatusWriter;

/// One request as a test reads it: `METHOD path` (no query), and its JSON body.
pub type Seen = (String, serde_json::Value);

/// How the mock answers one request: (method, path, body) → (status, JSON).
pub type Answer = fn(&str, &str, &serde_json::Value) -> (StatusCode, serde_json::Value);

/// A mock API server and a client of it.
pub struct MockApi {
    pub client: Client,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl MockApi {
    /// Serves every request with `answer` until the client is dropped.
    pub fn start(answer: Answer) -> Self {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let method = request.method().to_string();
                let path = request.uri().path().to_owned();
                let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
                let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let (status, answer) = answer(&method, &path, &body);
                log.lock().unwrap_or_else(PoisonError::into_inner).push((format!("{method} {path}"), body));
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).unwrap_or_default()));
                match response {
                    Ok(r) => respond.send_response(r),
                    Err(_) => return,
                }
            }
        });
        MockApi { client: Client::new(service, "default"), seen }
    }

    /// The requests since the last call, without Events (how many there are depends on what
    /// changed in status, which the controllers' own tests check).
    pub fn take(&self) -> Vec<Seen> {
        let mut all = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *all).into_iter().filter(|(r, _)| !r.contains("/events")).collect()
    }
}

/// `METHOD path` of each request.
pub fn requests(seen: &[Seen]) -> Vec<&str> {
    seen.iter().map(|(r, _)| r.as_str()).collect()
}

/// A 404 in the API server's words.
pub fn not_found() -> (StatusCode, serde_json::Value) {
    (StatusCode::NOT_FOUND, serde_json::json!({ "kind": "Status", "code": 404, "reason": "NotFound" }))
}

/// An operator context over `client` as the leader would have it (a fresh coordinator and status
/// writer in term 1, lookups the test fills).
pub fn context(client: Client) -> (Arc<Context>, LookupWriters) {
    let settings = Settings {
        worker: WorkerDefaults {
            image: "courier/worker:dev".into(),
            coordinator_url: "https://courier-coordinator.courier-system.svc:8443".into(),
            coordinator_ca_pem: None,
            token: CoordinatorToken::default(),
            ..WorkerDefaults::default()
        },
        shard_target_bytes: 64 << 20,
    };
    let (lookups, writers) = context::lookups();
    // This replica leads (term 1): the coordinator and the status writer take everything in.
    let coordinator = Coordinator::new(CoordinatorConfig::default());
    coordinator.begin_term(1, crate::coordinator::now_ms());
    let status = StatusWriter::new(Duration::from_secs(1));
    status.begin_term(1);
    let ctx = Context::new(client, coordinator, status, Arc::new(Metrics::new()), settings, lookups);
    (Arc::new(ctx), writers)
}
