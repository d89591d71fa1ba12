//! The listening server: accepts TCP connections and serves HTTP/1.1 and
//! prior-knowledge HTTP/2 on each, until shut down.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::config::SimConfig;
use super::control;
use super::partner;
use super::state::{ConfigError, Shared};
use super::stats::StatsSnapshot;

/// Why the simulator could not start or take a configuration.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listening socket could not be bound.
    #[error("binding the simulator listener: {0}")]
    Bind(#[source] std::io::Error),
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A running simulator; dropping it stops the server too.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Binds `addr` (use `127.0.0.1:0` for a free port) and starts serving.
    pub async fn start(addr: impl ToSocketAddrs, config: SimConfig) -> Result<Self, SimError> {
        let shared = Arc::new(Shared::new(config)?);
        let listener = TcpListener::bind(addr).await.map_err(SimError::Bind)?;
        let addr = listener.local_addr().map_err(SimError::Bind)?;
        let (stop, stopped) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped));
        Ok(Self { addr, shared, stop, accept: Some(accept) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What `GET /stats` would answer.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.snapshot()
    }

    /// Every accepted idempotency key with its acceptance count.
    pub fn keys(&self) -> HashMap<String, u32> {
        self.shared.ledger.snapshot()
    }

    /// The configuration in force.
    pub fn config(&self) -> SimConfig {
        self.shared.active().config.clone()
    }

    /// Puts `config` in force for every following request, with fresh buckets.
    pub fn set_config(&self, config: SimConfig) -> Result<(), SimError> {
        Ok(self.shared.apply(config)?)
    }

    /// Answers the next `count` partner requests 429 with `Retry-After: retry_after_secs`.
    pub fn throttle_next(&self, count: u64, retry_after_secs: u64) {
        self.shared.throttle_next(count, retry_after_secs);
    }

    /// Clears counters and ledger and restarts buckets and schedules.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting, drops every open connection and waits for the listener to close.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Our answers are tiny: one flattened write beats a vectored one.
    builder.http1().writev(false);
    let builder = Arc::new(builder);
    // Connections live in a JoinSet so shutdown can drop them all at once,
    // without each connection polling a shutdown signal on every wake-up.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        match accepted {
            Ok((stream, _)) => {
                connections.spawn(serve(stream, Arc::clone(&builder), Arc::clone(&shared)));
            }
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    connections.shutdown().await;
}

async fn serve(stream: TcpStream, builder: Arc<auto::Builder<TokioExecutor>>, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let shared = Arc::clone(&shared);
        async move {
            match control::route(request.uri().path()) {
                Some(route) => Ok(control::handle(route, &shared, request).await),
                None => partner::handle(&shared, request).await,
            }
        }
    });
    if let Err(error) = builder.serve_connection(TokioIo::new(stream), service).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}
