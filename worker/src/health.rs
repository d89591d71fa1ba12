//! The worker's small HTTP server: `/metrics` (Prometheus text), `/healthz` (alive) and
//! `/readyz` (the coordinator answered, or the local run started), and `/log-level` (GET the
//! log filter, PUT a new one).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What the endpoints report.
#[derive(Debug, Clone)]
pub struct HealthState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
}

/// Binds `addr` (port 0 picks one) and serves until `shutdown`; returns the bound address.
pub async fn serve(addr: SocketAddr, state: HealthState, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else { continue };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    async move {
                        if req.uri().path() == "/log-level" {
                            return Ok::<_, Infallible>(log_level(req).await);
                        }
                        Ok::<_, Infallible>(answer(&state, &req))
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(bound)
}

/// `GET`/`PUT /log-level` (courier_core::telemetry), bodies of at most 4 KiB.
async fn log_level(req: Request<Incoming>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt as _;
    let method = req.method().clone();
    let (status, text) = match http_body_util::Limited::new(req.into_body(), 4096).collect().await {
        Ok(body) => courier_core::telemetry::log_level_endpoint(&method, &body.to_bytes()),
        Err(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    response
}

fn answer(state: &HealthState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
        response
    };
    match req.uri().path() {
        "/metrics" => {
            reply(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", state.metrics.encode())
        }
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if state.ready.load(Ordering::Relaxed) => reply(StatusCode::OK, "text/plain", "ready\n".to_owned()),
        "/readyz" => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "waiting for the coordinator\n".to_owned()),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned()),
    }
}
