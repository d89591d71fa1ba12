//! The listening server: accepts TCP connections and serves HTTP/1.1 and
//! prior-knowledge HTTP/2 on each, or, behind TLS, whichever of the two ALPN
//! chose, until shut down.

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
use tokio_rustls::TlsAcceptor;

use super::config::SimConfig;
use super::control;
use super::partner;
use super::stamped::StampedStream;
use super::state::{ConfigError, Shared};
use super::stats::StatsSnapshot;
use super::tls::{TlsError, TlsIdentity};

/// Why the simulator could not start or take a configuration.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listening socket could not be bound.
    #[error("binding the simulator listener: {0}")]
    Bind(#[source] std::io::Error),
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS identity could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A runtime of its own could not be started.
    #[error("starting the simulator's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// A running simulator; dropping it stops the server too.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
    tls: bool,
    /// The runtime it serves on, when it has one of its own ([`Simulator::start_dedicated`]),
    /// shared with the simulators started beside it ([`Simulator::start_beside`]).
    runtime: Option<Arc<tokio::runtime::Runtime>>,
}

impl Simulator {
    /// Binds `addr` (use `127.0.0.1:0` for a free port) and starts serving.
    pub async fn start(addr: impl ToSocketAddrs, config: SimConfig) -> Result<Self, SimError> {
        Self::start_with(addr, config, None).await
    }

    /// Like [`Simulator::start`], behind TLS with `identity` (ALPN offers h2 and http/1.1).
    pub async fn start_tls(
        addr: impl ToSocketAddrs,
        config: SimConfig,
        identity: &TlsIdentity,
    ) -> Result<Self, SimError> {
        Self::start_with(addr, config, Some(identity.acceptor()?)).await
    }

    /// Like [`Simulator::start`], on a runtime of its own (one thread), which it stops when
    /// dropped. In a test that also runs kubectl, streams pod logs and polls the API, those
    /// tasks cannot delay its reading of requests: a delay would bunch the arrivals it times
    /// and its bucket would refuse requests that were sent evenly. Callable from inside
    /// another runtime (it starts on a thread of its own).
    pub fn start_dedicated(addr: SocketAddr, config: SimConfig) -> Result<Self, SimError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("partner-sim")
            .enable_all()
            .build()
            .map_err(SimError::Runtime)?;
        Self::start_on(Arc::new(runtime), addr, config)
    }

    /// Like [`Simulator::start_dedicated`], on the same runtime thread as `self` when it has
    /// one of its own (else on a new one). A control partner started beside the partner under
    /// test shares its stalls: when that thread is late reading requests, the arrivals of both
    /// bunch alike, so the control's refusals measure what the machine did to the partner's.
    pub fn start_beside(&self, addr: SocketAddr, config: SimConfig) -> Result<Self, SimError> {
        match &self.runtime {
            Some(runtime) => Self::start_on(Arc::clone(runtime), addr, config),
            None => Self::start_dedicated(addr, config),
        }
    }

    fn start_on(runtime: Arc<tokio::runtime::Runtime>, addr: SocketAddr, config: SimConfig) -> Result<Self, SimError> {
        let handle = runtime.handle().clone();
        let started = std::thread::spawn(move || handle.block_on(Self::start_with(addr, config, None)))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let mut sim = started?;
        sim.runtime = Some(runtime);
        Ok(sim)
    }

    async fn start_with(
        addr: impl ToSocketAddrs,
        config: SimConfig,
        tls: Option<TlsAcceptor>,
    ) -> Result<Self, SimError> {
        let shared = Arc::new(Shared::new(config)?);
        let listener = TcpListener::bind(addr).await.map_err(SimError::Bind)?;
        let addr = listener.local_addr().map_err(SimError::Bind)?;
        let (stop, stopped) = watch::channel(false);
        let secure = tls.is_some();
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped, tls));
        Ok(Self { addr, shared, stop, accept: Some(accept), tls: secure, runtime: None })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, or `https://localhost:<port>` behind TLS (the name its certificate has).
    pub fn url(&self) -> String {
        if self.tls { format!("https://localhost:{}", self.addr.port()) } else { format!("http://{}", self.addr) }
    }

    /// What `GET /stats` would answer.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.snapshot()
    }

    /// Every partner request's arrival, in arrival order (see [`super::arrivals`]).
    pub fn arrivals(&self) -> Vec<super::arrivals::Arrival> {
        self.shared.arrivals.snapshot()
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
        // The last simulator on a runtime of its own stops it. Dropping a runtime may block,
        // which is not allowed inside another one.
        if let Some(runtime) = self.runtime.take().and_then(|r| Arc::try_unwrap(r).ok()) {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
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
                connections.spawn(serve(stream, Arc::clone(&builder), Arc::clone(&shared), tls.clone()));
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

async fn serve(
    stream: TcpStream,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().map(|a| a.ip()).ok();
    shared.stats.connection();
    // Requests are timed by when they reached this host (see `stamped`).
    let (stream, clock) = StampedStream::new(stream);
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let shared = Arc::clone(&shared);
        let arrived = clock.arrival();
        async move {
            match control::route(request.uri().path()) {
                Some(route) => Ok(control::handle(route, &shared, request).await),
                None => partner::handle(&shared, request, peer, arrived).await,
            }
        }
    });
    let served = match tls {
        None => builder.serve_connection(TokioIo::new(stream), service).await,
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(stream) => builder.serve_connection(TokioIo::new(stream), service).await,
            Err(error) => {
                tracing::debug!(%error, "TLS handshake failed");
                return;
            }
        },
    };
    if let Err(error) = served {
        tracing::debug!(%error, "connection ended with an error");
    }
}

#[cfg(test)]
mod dedicated_tests {
    use super::*;

    #[tokio::test]
    async fn a_simulator_on_a_runtime_of_its_own_serves_from_inside_another_and_stops_when_dropped() {
        let sim = Simulator::start_dedicated(([127, 0, 0, 1], 0).into(), SimConfig::default()).expect("start");
        let addr = sim.addr();
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /stats HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        drop(sim);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "stopped with its runtime");
    }

    async fn answer_status(stream: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut answer = Vec::new();
        let mut buf = [0u8; 512];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = stream.read(&mut buf).await.expect("read");
            assert!(read > 0, "closed before answering");
            answer.extend_from_slice(&buf[..read]);
        }
        String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn requests_sent_evenly_but_read_in_one_bunch_are_judged_as_they_arrived() {
        use tokio::io::AsyncWriteExt;
        // 10/s with a bucket of one: two requests 150 ms apart are within it, two at once are not.
        let config =
            SimConfig { rate_limit: Some(crate::sim::RateLimit { rate: 10.0, burst: 1 }), ..SimConfig::default() };
        let sim = Simulator::start_dedicated(([127, 0, 0, 1], 0).into(), config).expect("start");
        let mut first = tokio::net::TcpStream::connect(sim.addr()).await.expect("connect");
        let mut second = tokio::net::TcpStream::connect(sim.addr()).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The simulator's one thread stalls, as a busy machine stalls it, while both arrive.
        let runtime = sim.runtime.clone().expect("a runtime of its own");
        runtime.spawn(async { std::thread::sleep(Duration::from_millis(500)) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let request = b"POST /v1/users HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n";
        first.write_all(request).await.expect("write");
        tokio::time::sleep(Duration::from_millis(150)).await;
        second.write_all(request).await.expect("write");
        assert_eq!(answer_status(&mut first).await, "HTTP/1.1 200 OK");
        assert_eq!(answer_status(&mut second).await, "HTTP/1.1 200 OK", "read together, arrived 150 ms apart");
        let arrivals = sim.arrivals();
        assert_eq!(arrivals.len(), 2);
        let apart = arrivals[1].at_unix_micros - arrivals[0].at_unix_micros;
        assert!((120_000..200_000).contains(&apart), "logged {apart} µs apart");
    }
}
