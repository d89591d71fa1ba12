//! The operator process: flags, logging, leader election, and one term of controllers per
//! leadership.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use courier_api::{Datum, DeliveryPackage, Destination};
use courier_core::telemetry::{self, LogLevelError};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use tokio_util::sync::CancellationToken;

use crate::context::{Context, Lookups, Settings};
use crate::controller::destination::build::{CoordinatorToken, WorkerDefaults, WorkerPodDefaults};
use crate::controller::watches::{SharedWatch, touched};
use crate::controller::{api, datum, destination, landing, package, triggers};
use crate::coordinator::server::{self, AuthMode};
use crate::coordinator::tls;
use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::metrics::Metrics;
use crate::status_writer::StatusWriter;
use crate::{leader, metrics};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON unless stderr is a terminal.
    Auto,
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
    /// URL workers are told to call [default: https://<coordinator-service>.$POD_NAMESPACE.svc:<port>
    /// with --coordinator-tls-secret, else http://$POD_IP:<port>, else http://127.0.0.1:<port>].
    #[arg(long)]
    pub coordinator_url: Option<String>,
    /// Serve the coordinator over HTTPS with the certificate in this Secret of the operator's
    /// namespace (`tls.crt`, `tls.key`, `ca.crt`, as cert-manager writes them); a self-signed CA
    /// and serving certificate are generated into it when it does not exist. Plain HTTP when
    /// unset.
    #[arg(long)]
    pub coordinator_tls_secret: Option<String>,
    /// The Service in front of the leading replica (pods labelled
    /// `courier.dev/coordinator-leader=true`): the names of a generated certificate and of the
    /// default coordinator URL.
    #[arg(long, default_value = "courier-coordinator")]
    pub coordinator_service: String,
    /// Label this replica's pod `courier.dev/coordinator-leader=true` while it leads (needs
    /// $POD_NAME and $POD_NAMESPACE), so the coordinator Service selects the leader only.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub leader_label: String,
    /// Audience of the projected token worker pods present; the coordinator's TokenReview asks
    /// for it and refuses tokens for any other audience.
    #[arg(long, default_value = "courier-coordinator")]
    pub worker_token_audience: String,
    /// Scheduling and resource defaults of worker pods, as YAML (`nodeSelector`, `tolerations`,
    /// `affinity`, `resources`, `imagePullPolicy`); a Destination's own settings win.
    #[arg(long, value_parser = parse_worker_pod_defaults)]
    pub worker_pod_defaults: Option<WorkerPodDefaults>,
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
    /// Log format: JSON in the cluster, text on a terminal.
    #[arg(long, value_enum, default_value = "auto")]
    pub log_format: LogFormat,
    /// Log filter (`info`, `debug`, `info,courier_operator=debug`) [default: $RUST_LOG, else
    /// info]; changeable while running with `PUT /log-level` on the metrics port.
    #[arg(long)]
    pub log_level: Option<String>,
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
    #[error(transparent)]
    TlsSecret(#[from] tls::SecretError),
    #[error("the coordinator's TLS configuration is unusable: {0}")]
    Tls(#[source] rustls::Error),
    #[error("the coordinator's certificate is unusable: {0}")]
    TlsMaterial(#[from] tls::MaterialError),
}

fn parse_worker_pod_defaults(yaml: &str) -> Result<WorkerPodDefaults, String> {
    serde_norway::from_str(yaml).map_err(|e| format!("invalid worker pod defaults: {e}"))
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
        if self.coordinator_tls_secret.is_some() {
            return format!("https://{}.{}.svc:{}", self.coordinator_service, self.own_namespace(), addr.port());
        }
        let ip =
            if addr.ip().is_unspecified() { pod_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)) } else { addr.ip() };
        format!("http://{}", SocketAddr::new(ip, addr.port()))
    }

    /// The operator's own namespace: the Lease's, the TLS Secret's and the Service's.
    pub fn own_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| "default".to_owned())
    }

    /// Names a generated certificate is issued for: the Service's, and the host of an explicit
    /// coordinator URL.
    fn certificate_names(&self) -> Vec<String> {
        let mut names = tls::service_dns_names(&self.coordinator_service, &self.own_namespace());
        let host = self
            .coordinator_url
            .as_deref()
            .and_then(|u| u.parse::<http::Uri>().ok())
            .and_then(|u| u.host().map(str::to_owned));
        if let Some(host) = host.filter(|h| h.parse::<IpAddr>().is_err() && !names.contains(h)) {
            names.push(host);
        }
        names
    }
}

/// Sets up logging (`courier_core::telemetry`): the `--log-level` filter, else `RUST_LOG`.
pub fn init_tracing(format: LogFormat, level: Option<&str>) -> Result<(), LogLevelError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let directive = telemetry::initial_directive(level, rust_log.as_deref(), "info,kube_runtime=warn,hyper=warn");
    let format = match format {
        LogFormat::Auto => telemetry::LogFormat::Auto,
        LogFormat::Text => telemetry::LogFormat::Text,
        LogFormat::Json => telemetry::LogFormat::Json,
    };
    telemetry::init(format, &directive)
}

/// Runs the operator until SIGINT/SIGTERM.
pub async fn run(args: Args) -> Result<(), AppError> {
    let client = Client::try_default().await.map_err(AppError::Client)?;
    let metrics = Arc::new(Metrics::new());
    let metrics_addr = args
        .metrics_addr
        .unwrap_or_else(|| SocketAddr::new(pod_ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), 8080));

    let lease_ns = args.own_namespace();
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

    let m = metrics.clone();
    let l = leadership.clone();
    tokio::spawn(async move {
        if let Err(err) = metrics::serve(metrics_addr, m, l).await {
            tracing::error!(%err, "metrics server failed");
        }
    });

    let coordinator = Coordinator::new(CoordinatorConfig::default());
    let listener = server::bind(args.coordinator_addr()).await?;
    tracing::info!(addr = %args.coordinator_addr(), url = %args.coordinator_url(), "coordinator listening");
    let auth = if args.insecure_skip_worker_auth {
        AuthMode::InsecureSkipAuth
    } else {
        AuthMode::TokenReview { client: client.clone(), audiences: vec![args.worker_token_audience.clone()] }
    };
    let (tls, coordinator_ca_pem) = match &args.coordinator_tls_secret {
        None => (None, None),
        Some(name) => {
            let secret = tls::TlsSecret::new(client.clone(), &lease_ns, name, args.certificate_names());
            let serving = tls::ServingCert::new(secret.load_or_generate().await?)?;
            let acceptor = serving.acceptor().map_err(AppError::Tls)?;
            tokio::spawn(secret.keep_current(serving.clone(), stop.clone()));
            (Some(acceptor), serving.ca_pem())
        }
    };
    let options = server::ServeOptions { auth, tls, refusals: metrics.heartbeat_refusals.clone() };
    let server_stop = stop.clone();
    let server =
        tokio::spawn(server::serve_with(listener, coordinator.clone(), leadership.clone(), options, async move {
            server_stop.cancelled().await
        }));
    if args.leader_label == "on" {
        match std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()) {
            Some(pod) => {
                tokio::spawn(leader::label::run(
                    client.clone(),
                    lease_ns.clone(),
                    pod,
                    leadership.clone(),
                    stop.clone(),
                ));
            }
            None => tracing::warn!("no $POD_NAME: the coordinator Service cannot select this replica when it leads"),
        }
    }
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
        worker: WorkerDefaults {
            image: args.worker_image.clone(),
            coordinator_url: args.coordinator_url(),
            coordinator_ca_pem,
            token: CoordinatorToken { audience: args.worker_token_audience.clone(), ..CoordinatorToken::default() },
            pod: args.worker_pod_defaults.clone().unwrap_or_default(),
        },
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
        status.begin_term(term_number);
        metrics.is_leader.set(1);
        let term = stop.child_token();
        let lost = term.clone();
        let mut watch_lost = leadership.clone();
        let (fence_coordinator, fence_status) = (coordinator.clone(), status.clone());
        let watcher = tokio::spawn(async move {
            watch_lost.wait_for(false).await;
            // Fenced at once, not when the controllers have stopped (that can take seconds
            // with the apiserver away): the term's state answers no worker and its statuses
            // are not written, even if this replica leads again before they have stopped.
            fence_coordinator.reset();
            fence_status.end_term();
            lost.cancel();
        });
        let watches = Watches::new(&client, args.namespace.as_deref());
        let lookups = Lookups::new(watches.destinations.clone(), watches.datums.clone());
        let ctx = Arc::new(Context::new(
            client.clone(),
            coordinator.clone(),
            status.clone(),
            metrics.clone(),
            settings.clone(),
            lookups,
        ));
        run_term(ctx, client.clone(), args.namespace.as_deref(), &coordinator, watches, term.clone()).await;
        watcher.abort();
        term.cancel();
        metrics.is_leader.set(0);
        metrics.clear_leader_series();
        coordinator.reset();
        status.end_term();
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

/// The term's shared watches, one per kind the controllers read (see `controller::watches`).
struct Watches {
    destinations: Store<Destination>,
    datums: Store<Datum>,
    packages: Store<DeliveryPackage>,
    destination_watch: SharedWatch<Destination>,
    datum_watch: SharedWatch<Datum>,
    package_watch: SharedWatch<DeliveryPackage>,
}

impl Watches {
    fn new(client: &Client, namespace: Option<&str>) -> Self {
        let (destinations, destination_watch) = SharedWatch::new(api::<Destination>(client, namespace));
        let (datums, datum_watch) = SharedWatch::new(api::<Datum>(client, namespace));
        let (packages, package_watch) = SharedWatch::new(api::<DeliveryPackage>(client, namespace));
        Self { destinations, datums, packages, destination_watch, datum_watch, package_watch }
    }
}

/// One leadership term: the controllers and garbage collection over the term's shared
/// watches, until `term` ends.
async fn run_term(
    ctx: Arc<Context>,
    client: Client,
    namespace: Option<&str>,
    coordinator: &Coordinator,
    watches: Watches,
    term: CancellationToken,
) {
    let shutdown = |t: &CancellationToken| t.clone().cancelled_owned();
    let Watches { destinations, datums, packages, mut destination_watch, mut datum_watch, package_watch } = watches;
    // Nothing may wait for a store to be ready while something else does: kube's readiness
    // future wakes only the waiter that polled it last, and the controllers' appliers, the
    // package lookups and the landing loop all wait on these stores. So the term waits for the
    // three itself, one after the other, and only then starts what reads them.
    let ready = {
        let (destinations, datums, packages) = (destinations.clone(), datums.clone(), packages.clone());
        async move {
            destinations.wait_until_ready().await.is_ok()
                && datums.wait_until_ready().await.is_ok()
                && packages.wait_until_ready().await.is_ok()
        }
    };
    let memory = destination::Memory::default();
    let dest = destination::controller(
        ctx.clone(),
        (destinations.clone(), destination_watch.subscribe()),
        (api::<Deployment>(&client, namespace), api::<PartialObjectMeta<Secret>>(&client, namespace)),
        triggers::destination_changes(coordinator),
        memory.clone(),
        shutdown(&term),
    );
    let dat = datum::run(ctx.clone(), (datums.clone(), datum_watch.subscribe()), shutdown(&term));
    let pkg = package::controller(
        ctx.clone(),
        (packages.clone(), package_watch.subscribe()),
        touched(destination_watch.subscribe(), destination_watch.deletions()),
        touched(datum_watch.subscribe(), datum_watch.deletions()),
        triggers::package_changes(coordinator),
        shutdown(&term),
    );
    let land = landing::run(ctx.clone(), client.clone(), datums, packages.clone(), term.clone());
    // The watches run until the term ends; the controllers subscribed to them end with it too.
    let watch_term = term.clone();
    let watch = async move {
        tokio::select! {
            () = watch_term.cancelled() => {}
            _ = futures::future::join3(destination_watch.run(), datum_watch.run(), package_watch.run()) => {}
        }
    };
    let gc_ctx = ctx.clone();
    let gc_term = term.clone();
    let gc = async move {
        loop {
            tokio::select! {
                _ = gc_term.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            package::record_phases(&gc_ctx, &packages);
            package::collect_garbage(&gc_ctx, &packages);
            destination::collect_garbage(&gc_ctx, &destinations, &memory);
        }
    };
    let work_term = term.clone();
    let work = async move {
        tokio::select! {
            () = work_term.cancelled() => {}
            true = ready => {
                let _: ((), (), (), (), ()) = tokio::join!(dest, dat, pkg, land, gc);
            }
            else => {}
        }
    };
    let _: ((), ()) = tokio::join!(watch, work);
}
