//! The heartbeat server: `POST /v1/heartbeat` (protocol types as JSON) and `GET /healthz`, over
//! HTTPS when a serving certificate is given (the chart's default), else plain HTTP.
//!
//! Only the leader coordinates: while the leadership flag is false, heartbeats get
//! `503 Service Unavailable` with `Connection: close`, so a worker that reached a standby
//! through the leader Service (whose selector may briefly match a replica that led before)
//! connects anew and lands on the leader. While serving, the coordinator is ticked once a
//! second so leases and workers expire without heartbeats.

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
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::auth::{self, AuthError, Standing, TokenAuthenticator};
use super::{Coordinator, HeartbeatError, now_ms};
use crate::leader::Leadership;

/// Largest heartbeat body accepted.
const MAX_BODY: usize = 4 << 20;
/// A TLS handshake that takes longer is given up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How callers are authenticated.
#[derive(Clone)]
pub enum AuthMode {
    /// No check at all: for unit tests only.
    InsecureSkipAuth,
    /// TokenReview of the bearer token for `audiences` (cached ~60 s; a token issued for any
    /// other audience is refused, 401), then the pod the token is bound to must be a worker of
    /// the Destination (cached ~10 s; 403 otherwise). No audience accepts the apiserver's own.
    TokenReview { client: kube::Client, audiences: Vec<String> },
}

/// The status code of a refused heartbeat, the label of the refusals counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RefusalLabels {
    pub code: String,
}

/// Everything besides the coordinator and the leadership flag.
#[derive(Clone)]
pub struct ServeOptions {
    pub auth: AuthMode,
    /// HTTPS when set.
    pub tls: Option<TlsAcceptor>,
    /// Heartbeats refused by authentication (401) or authorization (403), by code.
    pub refusals: Family<RefusalLabels, Counter>,
}

impl ServeOptions {
    /// Plain HTTP with `auth`, refusals counted in a family of its own.
    pub fn plain(auth: AuthMode) -> Self {
        ServeOptions { auth, tls: None, refusals: Family::default() }
    }
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
    refusals: Family<RefusalLabels, Counter>,
}

/// Serves heartbeats over plain HTTP on `listener` until `shutdown` completes (see
/// [`serve_with`]).
pub async fn serve(
    listener: TcpListener,
    coordinator: Coordinator,
    leader: Leadership,
    auth: AuthMode,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    serve_with(listener, coordinator, leader, ServeOptions::plain(auth), shutdown).await
}

/// Serves heartbeats on `listener` until `shutdown` completes. Answers 503 while `leader` is
/// false; ticks the coordinator every second while it is true.
pub async fn serve_with(
    listener: TcpListener,
    coordinator: Coordinator,
    leader: Leadership,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let auth = match options.auth {
        AuthMode::InsecureSkipAuth => Checker::None,
        AuthMode::TokenReview { client, audiences } => {
            Checker::Token(Arc::new(TokenAuthenticator::new(client, audiences)))
        }
    };
    let tls = options.tls;
    let shared = Shared { coordinator, leader, auth, refusals: options.refusals };
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
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let served = match tls {
                        None => http1::Builder::new().serve_connection(TokioIo::new(stream), service).await,
                        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => http1::Builder::new().serve_connection(TokioIo::new(stream), service).await,
                            Ok(Err(err)) => {
                                tracing::debug!(error = %err, "TLS handshake of a heartbeat connection failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake of a heartbeat connection timed out");
                                return;
                            }
                        },
                    };
                    if let Err(err) = served {
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
    // A new connection may reach another replica (the leader) through the Service.
    resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    resp
}

fn refused(shared: &Shared, status: StatusCode, err: &AuthError) -> Response<Full<Bytes>> {
    shared.refusals.get_or_create(&RefusalLabels { code: status.as_u16().to_string() }).inc();
    tracing::debug!(code = status.as_u16(), error = %err, "heartbeat refused");
    text(status, format!("{err}\n"))
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
    let mut standing = Standing::Worker;
    if let Checker::Token(authn) = &shared.auth {
        let Some(token) = auth::bearer_token(authorization.as_deref()) else {
            let err = AuthError::Unauthenticated("missing Authorization: Bearer <service-account token>".into());
            return refused(shared, StatusCode::UNAUTHORIZED, &err);
        };
        let checked = match authn.authenticate(token).await {
            Ok(identity) => authn.authorize(&identity, &hb.namespace, &hb.destination, &hb.worker).await,
            Err(err) => Err(err),
        };
        match checked {
            Ok(s) => standing = s,
            Err(err @ AuthError::Unauthenticated(_)) => return refused(shared, StatusCode::UNAUTHORIZED, &err),
            Err(err @ AuthError::Forbidden(_)) => return refused(shared, StatusCode::FORBIDDEN, &err),
            Err(err @ AuthError::Unavailable(_)) => {
                tracing::warn!(error = %err, "heartbeat authentication unavailable");
                return text(StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n"));
            }
        }
    }
    // Fencing: checked again right before the answer is decided, since authentication may
    // have taken a while; a replica not sure it still holds the Lease grants nothing.
    let Some(term) = shared.leader.term() else { return not_the_leader() };
    let answered = match standing {
        Standing::Worker => shared.coordinator.heartbeat_in_term(&hb, now_ms(), term),
        Standing::Gone => shared.coordinator.farewell_in_term(&hb, now_ms(), term),
        // Checked by an earlier leader, which leased it shards of this Destination.
        Standing::Missing if shared.coordinator.holds_leases(&hb.worker, &hb.namespace, &hb.destination) => {
            shared.coordinator.farewell_in_term(&hb, now_ms(), term)
        }
        Standing::Missing => {
            let err = AuthError::Forbidden(format!(
                "pod {}/{} is not a worker of {}: no such pod",
                hb.namespace, hb.worker, hb.destination
            ));
            return refused(shared, StatusCode::FORBIDDEN, &err);
        }
    };
    match answered {
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
