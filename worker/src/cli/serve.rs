//! `courier-worker serve`: the in-cluster worker of one Destination.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::{EXIT_FAILED, EXIT_USAGE, LogFormat, Logs, ServeArgs, fail, init_logs, terminated};
use crate::config::SecretStore;
use crate::coordinator::{Driver, DriverConfig, HttpCoordinator};
use crate::health::{self, HealthState};
use crate::limiter::Rate;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::send::SendConfig;

fn metrics_addr(args: &ServeArgs) -> SocketAddr {
    if let Some(addr) = args.metrics_addr {
        return addr;
    }
    let ip = std::env::var("POD_IP").ok().and_then(|ip| ip.parse().ok());
    SocketAddr::new(ip.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])), 9090)
}

/// Runs `courier-worker serve` until SIGTERM, then drains and exits 0.
pub(crate) async fn serve(args: ServeArgs, logs: Logs) -> ExitCode {
    let format = logs.format.unwrap_or(if std::io::stderr().is_terminal() { LogFormat::Text } else { LogFormat::Json });
    init_logs(format, logs.level.as_deref(), "courier_worker=info,warn");
    let coordinator = match HttpCoordinator::new(&args.coordinator_url, &args.token_path) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let metrics = Arc::new(Metrics::new(&args.destination));
    // Nothing is sent until the coordinator grants a share.
    let pipeline = match Pipeline::new(
        args.worker_name.clone(),
        &SendConfig::default(),
        Some(Rate::new(0, 1)),
        metrics.clone(),
        Duration::from_secs(1),
    ) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_FAILED, e),
    };
    let ready = Arc::new(AtomicBool::new(false));
    let servers = CancellationToken::new();
    let addr = metrics_addr(&args);
    match health::serve(addr, HealthState { metrics, ready: ready.clone() }, servers.clone()).await {
        Ok(bound) => tracing::info!(%bound, "serving /metrics, /healthz, /readyz"),
        Err(e) => return fail(EXIT_FAILED, format!("cannot listen on {addr}: {e}")),
    }
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            terminated().await;
            tracing::info!("SIGTERM: stop leasing, drain in-flight requests");
            shutdown.cancel();
        });
    }
    let config = DriverConfig {
        worker: args.worker_name.clone(),
        namespace: args.namespace.clone(),
        destination: args.destination.clone(),
        destination_spec: None,
        secrets: SecretStore::from_env().with_mounts(crate::config::MOUNT_ROOT),
        max_leases: args.max_leases.max(1),
        drain: Duration::from_secs(args.drain_seconds),
    };
    tracing::info!(coordinator = %args.coordinator_url, destination = %args.destination, "worker starting");
    let mut driver = Driver::new(coordinator, pipeline, config, ready);
    // Every line of this worker carries its Destination; lease tasks add namespace, package
    // and shard (pipeline::Pipeline::start).
    let span = tracing::info_span!("worker", destination = %args.destination, worker = %args.worker_name);
    let end = driver.run(shutdown).instrument(span).await;
    servers.cancel();
    match end {
        Ok(end) => {
            tracing::info!(?end, "worker stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, e),
    }
}
