//! The operator process: flags, logging, leader election, and one term of controllers per
//! leadership.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use courier_api::{Datum, Destination};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::context::{self, Context, LookupWriters, Settings};
use crate::controller::destination::build::WorkerDefaults;
use crate::controller::{api, datum, destination, landing, package, triggers};
use crate::coordinator::server::{self, AuthMode};
use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::metrics::Metrics;
use crate::status_writer::StatusWriter;
use crate::{leader, metrics};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Command-line flags of `courier-operator`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "courier-operator",
    version,
    about = "Courier operator: delivers batch data to partner APIs",
    args_override_self = true
)]
pub struct Args {
    /// Image of worker pods when a Destination does not name one.
    #[arg(long, default_value = "courier/worker:dev")]
    pub worker_image: String,
    /// Address the coordinator listens on [default: $POD_IP:8443, else 0.0.0.0:8443].
    #[arg(long)]
    pub coordinator_addr: Option<SocketAddr>,
    /// URL workers are told to call [default: http://$POD_IP:<port>, else http://127.0.0.1:<port>].
    #[arg(long)]
    pub coordinator_url: Option<String>,
    /// Address of /metrics and /healthz [default: $POD_IP:8080, else 0.0.0.0:8080].
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Watch only this namespace (default: all).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Namespace of the leader Lease [default: $POD_NAMESPACE, else default].
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// Leader election (on for more than one replica).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub leader_election: String,
    /// Seconds the leader Lease must stand unrenewed before another replica takes it over.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub lease_duration_seconds: u64,
    /// Milliseconds after the start of its last successful renewal during which the leader
    /// still leads; must be below the lease duration.
    #[arg(long, default_value_t = 7000, value_parser = clap::value_parser!(u64).range(1..=299_000))]
    pub renew_deadline_ms: u64,
    /// Milliseconds between two renewals (leader) or two looks at the Lease (others).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub leader_retry_period_ms: u64,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Target shard size in bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub shard_target_bytes: u64,
    /// Minimum milliseconds between two non-urgent status writes of one object (5 s keeps an
    /// active package at no more than 12 writes a minute).
    #[arg(long, default_value_t = 5000)]
    pub status_interval_ms: u64,
    /// Skip TokenReview of worker tokens (tests only).
    #[arg(long, hide = true)]
    pub insecure_skip_worker_auth: bool,
}

/// The process failed to start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("failed to create a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    #[error(transparent)]
    Coordinator(#[from] server::ServerError),
}

fn pod_ip() -> Option<IpAddr> {
    std::env::var("POD_IP").ok().and_then(|ip| ip.parse().ok())
}

impl Args {
    /// Where the coordinator listens.
    pub fn coordinator_addr(&self) -> SocketAddr {
        self.coordinator_addr
            .unwrap_or_else(|| SocketAddr::new(pod_ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), 8443))
    }

    /// What workers are told.
    pub fn coordinator_url(&self) -> String {
        if let Some(url) = &self.coordinator_url {
            return url.clone();
        }
        let addr = self.coordinator_addr();
        let ip =
            if addr.ip().is_unspecified() { pod_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)) } else { addr.ip() };
        format!("http://{}", SocketAddr::new(ip, addr.port()))
    }
}

/// Sets up logging.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_runtime=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs the operator until SIGINT/SIGTERM.
pub async fn run(args: Args) -> Result<(), AppError> {
    let client = Client::try_default().await.map_err(AppError::Client)?;
    let metrics = Arc::new(Metrics::new());
    let metrics_addr = args
        .metrics_addr
        .unwrap_or_else(|| SocketAddr::new(pod_ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), 8080));
    let m = metrics.clone();
    tokio::spawn(async move {
        if let Err(err) = metrics::serve(metrics_addr, m).await {
            tracing::error!(%err, "metrics server failed");
        }
    });

    let lease_ns = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".to_owned());
    let identity = leader::identity();
    let stop = CancellationToken::new();
    spawn_signal_handler(stop.clone());
    // The election outlives the controllers' shutdown by a little: it ends (and releases the
    // Lease) only after the server and the controllers stopped.
    let election_stop = CancellationToken::new();
    let (leadership, election) = if args.leader_election == "on" {
        let config = leader::ElectionConfig {
            lease_duration: Duration::from_secs(args.lease_duration_seconds),
            renew_deadline: Duration::from_millis(args.renew_deadline_ms),
            retry_period: Duration::from_millis(args.leader_retry_period_ms),
        };
        let (l, task) = leader::start(client.clone(), &lease_ns, &identity, config, election_stop.clone())?;
        (l, Some(task))
    } else {
        (leader::Leadership::always(), None)
    };

    let coordinator = Coordinator::new(CoordinatorConfig::default());
    let listener = server::bind(args.coordinator_addr()).await?;
    tracing::info!(addr = %args.coordinator_addr(), url = %args.coordinator_url(), "coordinator listening");
    let auth =
        if args.insecure_skip_worker_auth { AuthMode::InsecureSkipAuth } else { AuthMode::TokenReview(client.clone()) };
    let server_stop = stop.clone();
    let server = tokio::spawn(server::serve(listener, coordinator.clone(), leadership.clone(), auth, async move {
        server_stop.cancelled().await
    }));
    let ticker = coordinator.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            ticker.tick(now_ms());
        }
    });

    let status = StatusWriter::new(Duration::from_millis(args.status_interval_ms));
    tokio::spawn(status.clone().run(client.clone(), leadership.clone(), metrics.clone()));

    let settings = Settings {
        worker: WorkerDefaults { image: args.worker_image.clone(), coordinator_url: args.coordinator_url() },
        shard_target_bytes: args.shard_target_bytes,
    };
    let mut leader_rx = leadership.clone();
    while !stop.is_cancelled() {
        tokio::select! {
            () = leader_rx.wait_for(true) => {}
            () = stop.cancelled() => break,
        }
        let term_number = leadership.term().unwrap_or_default();
        tracing::info!(%identity, term = term_number, "leading: starting controllers");
        coordinator.begin_term(term_number, now_ms());
        metrics.is_leader.set(1);
        let term = stop.child_token();
        let lost = term.clone();
        let mut watch_lost = leadership.clone();
        let watcher = tokio::spawn(async move {
            watch_lost.wait_for(false).await;
            lost.cancel();
        });
        let (lookups, writers) = context::lookups();
        let ctx = Arc::new(Context::new(
            client.clone(),
            coordinator.clone(),
            status.clone(),
            metrics.clone(),
            settings.clone(),
            lookups,
        ));
        run_term(ctx, client.clone(), args.namespace.as_deref(), &coordinator, writers, term.clone()).await;
        watcher.abort();
        term.cancel();
        metrics.is_leader.set(0);
        status.clear();
        tracing::info!("controllers stopped");
    }
    stop.cancel();
    let _ = server.await;
    election_stop.cancel();
    if let Some(task) = election {
        let _ = task.await;
    }
    Ok(())
}

fn now_ms() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

fn spawn_signal_handler(stop: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            } else {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
}

/// One leadership term: the three controllers and garbage collection, until `term` ends.
async fn run_term(
    ctx: Arc<Context>,
    client: Client,
    namespace: Option<&str>,
    coordinator: &Coordinator,
    lookups: LookupWriters,
    term: CancellationToken,
) {
    let shutdown = |t: &CancellationToken| t.clone().cancelled_owned();
    let (dest_store, dest) = destination::controller(
        ctx.clone(),
        api::<Destination>(&client, namespace),
        api::<Deployment>(&client, namespace),
        triggers::destination_changes(coordinator),
        shutdown(&term),
    );
    let dat = datum::run(ctx.clone(), api::<Datum>(&client, namespace), shutdown(&term));
    let (store, pkg) = package::controller(
        ctx.clone(),
        client.clone(),
        namespace,
        lookups,
        triggers::package_changes(coordinator),
        shutdown(&term),
    );
    let land = landing::run(ctx.clone(), client.clone(), namespace, term.clone());
    let gc_ctx = ctx.clone();
    let gc_term = term.clone();
    let gc = async move {
        loop {
            tokio::select! {
                _ = gc_term.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            package::record_phases(&gc_ctx, &store);
            package::collect_garbage(&gc_ctx, &store);
            destination::collect_garbage(&gc_ctx, &dest_store);
        }
    };
    let _: ((), (), (), (), ()) = tokio::join!(dest, dat, pkg, land, gc);
}
