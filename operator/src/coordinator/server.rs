//! The heartbeat HTTP server: `POST /v1/heartbeat` (protocol types as JSON) and `GET /healthz`.
//!
//! Only the leader coordinates: while the leadership flag is false, heartbeats get
//! `503 Service Unavailable` so workers retry (against whichever replica leads next). While
//! serving, the coordinator is ticked once a second so leases and workers expire without
//! heartbeats.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courier_core::protocol::{HEARTBEAT_PATH, HeartbeatRequest};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::auth::{self, AuthError, TokenAuthenticator};
use super::{Coordinator, HeartbeatError, now_ms};
use crate::leader::Leadership;

/// Largest heartbeat body accepted.
const MAX_BODY: usize = 4 << 20;

/// How callers are authenticated.
#[derive(Clone)]
pub enum AuthMode {
    /// No check at all: for unit tests only.
    InsecureSkipAuth,
    /// TokenReview of the bearer token (default audience, cached ~60 s), then the pod the
    /// token is bound to must be a worker of the Destination (cached ~10 s).
    TokenReview(kube::Client),
}

/// The checker in force.
#[derive(Clone)]
enum Checker {
    None,
    Token(Arc<TokenAuthenticator>),
}

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("failed to bind the heartbeat server to {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Binds the listening socket.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })
}

#[derive(Clone)]
struct Shared {
    coordinator: Coordinator,
    leader: Leadership,
    auth: Checker,
}

/// Serves heartbeats on `listener` until `shutdown` completes. Answers 503 while `leader` is
/// false; ticks the coordinator every second while it is true.
pub async fn serve(
    listener: TcpListener,
    coordinator: Coordinator,
    leader: Leadership,
    auth: AuthMode,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let auth = match auth {
        AuthMode::InsecureSkipAuth => Checker::None,
        AuthMode::TokenReview(client) => Checker::Token(Arc::new(TokenAuthenticator::new(client, Vec::new()))),
    };
    let shared = Shared { coordinator, leader, auth };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tick.tick() => {
                if shared.leader.is_leading() {
                    shared.coordinator.tick(now_ms());
                }
            }
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        tracing::warn!(error = %err, "failed to accept a heartbeat connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    if let Err(err) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                        tracing::debug!(error = %err, "heartbeat connection ended with an error");
                    }
                });
            }
        }
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.into())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => {
            let role = if shared.leader.is_leading() { "leader" } else { "standby" };
            text(StatusCode::OK, format!("ok ({role})\n"))
        }
        (&Method::POST, HEARTBEAT_PATH) => heartbeat(shared, req).await,
        (_, HEARTBEAT_PATH) => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn not_the_leader() -> Response<Full<Bytes>> {
    let mut resp = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "not the leader: this operator replica does not coordinate workers now; retry\n",
    );
    resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    resp
}

async fn heartbeat(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if !shared.leader.is_leading() {
        return not_the_leader();
    }
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return text(StatusCode::BAD_REQUEST, format!("cannot read the heartbeat body: {err}\n")),
    };
    let hb: HeartbeatRequest = match serde_json::from_slice(&body) {
        Ok(hb) => hb,
        Err(err) => return text(StatusCode::BAD_REQUEST, format!("invalid heartbeat: {err}\n")),
    };
    if let Checker::Token(authn) = &shared.auth {
        let Some(token) = auth::bearer_token(authorization.as_deref()) else {
            return text(StatusCode::UNAUTHORIZED, "missing Authorization: Bearer <service-account token>\n");
        };
        let checked = match authn.authenticate(token).await {
            Ok(identity) => authn.authorize(&identity, &hb.namespace, &hb.destination, &hb.worker).await,
            Err(err) => Err(err),
        };
        match checked {
            Ok(()) => {}
            Err(err @ AuthError::Unauthenticated(_)) => return text(StatusCode::UNAUTHORIZED, format!("{err}\n")),
            Err(err @ AuthError::Forbidden(_)) => return text(StatusCode::FORBIDDEN, format!("{err}\n")),
            Err(err @ AuthError::Unavailable(_)) => {
                tracing::warn!(error = %err, "heartbeat authentication unavailable");
                return text(StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n"));
            }
        }
    }
    // Fencing: checked again right before the answer is decided, since authentication may
    // have taken a while; a replica not sure it still holds the Lease grants nothing.
    let Some(term) = shared.leader.term() else { return not_the_leader() };
    match shared.coordinator.heartbeat_in_term(&hb, now_ms(), term) {
        Ok(answer) => match serde_json::to_vec(&answer) {
            Ok(json) => {
                let mut resp = Response::new(Full::new(Bytes::from(json)));
                resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
                resp
            }
            Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the answer: {err}\n")),
        },
        Err(err @ HeartbeatError::UnknownDestination { .. }) => text(StatusCode::NOT_FOUND, format!("{err}\n")),
        Err(err @ HeartbeatError::NotReady) => {
            let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n"));
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            resp
        }
    }
}
