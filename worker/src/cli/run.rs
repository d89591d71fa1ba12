//! `courier-worker run`: one package, delivered locally.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use courier_api::package::FailurePolicy;
use courier_core::datum::DatumSettings;
use courier_core::destination::DestinationSettings;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    EXIT_FAILED, EXIT_USAGE, LogFormat, Logs, ProgressMode, RunArgs, Summary, fail, init_logs, progress, terminated,
};
use crate::config::{self, SecretStore};
use crate::coordinator::{Driver, DriverConfig, DriverEnd, LocalCoordinator, LocalPlan, LocalQuota};
use crate::health::{self, HealthState};
use crate::limiter::Rate;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::protocol::RateShare;
use crate::shard::plan_shards;
use crate::source::Source;

/// Everything read from flags and manifests before anything runs.
struct Prepared {
    destination_name: String,
    destination: DestinationSettings,
    datum: DatumSettings,
    secrets: SecretStore,
    send: crate::send::SendConfig,
    rate: Rate,
}

fn prepare(args: &RunArgs) -> Result<Prepared, config::ConfigError> {
    let destination = config::load_destination(&args.destination)?;
    let datum = config::load_datum(&args.datum)?;
    let mut secrets = SecretStore::from_env();
    for path in &args.secrets {
        let (name, values) = config::load_secret(path)?;
        secrets.add_secret(name, values);
    }
    let destination_settings = DestinationSettings::from(&destination.spec);
    let datum_settings = DatumSettings::from(&datum.spec);
    let mut send = config::send_config(&destination_settings, &secrets)?;
    if let Some(max) = args.max_in_flight {
        send.max_in_flight = max.max(1);
    }
    let mut rate = config::rate_of(&destination_settings);
    if let Some(rps) = args.rate_override {
        rate = Rate::new(u64::from(rps.max(1)), u64::from((rps / 50).max(1)));
    }
    let format = config::format_spec(&datum_settings);
    format.validate().map_err(|e| config::ConfigError::Invalid(format!("Datum format: {e}")))?;
    let request = config::request_spec(&destination_settings, &datum_settings, &args.namespace, &args.package);
    crate::request::RequestBuilder::new(&request)
        .map_err(|e| config::ConfigError::Invalid(format!("Datum request: {e}")))?;
    Ok(Prepared {
        destination_name: destination.name,
        destination: destination_settings,
        datum: datum_settings,
        secrets,
        send,
        rate,
    })
}

fn default_dead_letter_dir(package: &str) -> String {
    let cwd = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("/tmp"));
    format!("file://{}/courier-dead-letters/{package}", cwd.display())
}

/// Runs `courier-worker run`.
pub(crate) async fn run(args: RunArgs, logs: Logs) -> ExitCode {
    init_logs(logs.format.unwrap_or(LogFormat::Text), logs.level.as_deref(), "courier_worker=info,warn");
    let prepared = match prepare(&args) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let started = Instant::now();
    let shards = match plan(&args, &prepared).await {
        Ok(s) => s,
        Err(message) => return fail(EXIT_FAILED, message),
    };
    let dead_letter_dir = args.dead_letter.clone().unwrap_or_else(|| default_dead_letter_dir(&args.package));
    let metrics = Arc::new(Metrics::new(&prepared.destination_name));
    let pipeline = match Pipeline::new(
        "local",
        &prepared.send,
        Some(prepared.rate),
        metrics.clone(),
        Duration::from_millis(250),
    ) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let rl = &prepared.destination.rate_limit;
    let quota = match rl.requests_per_day.and_then(|r| u64::try_from(r).ok()) {
        None => None,
        Some(requests) => match courier_core::quota::time_zone(rl.quota_time_zone()) {
            Ok(time_zone) => Some(LocalQuota { requests, window_seconds: rl.quota_window(), time_zone }),
            Err(e) => return fail(EXIT_USAGE, e),
        },
    };
    let share = RateShare {
        requests_per_second: u32::try_from(prepared.rate.per_second).unwrap_or(u32::MAX),
        burst: u32::try_from(prepared.rate.burst).unwrap_or(u32::MAX),
        bytes_per_second: rl.bytes_per_second.and_then(|b| u64::try_from(b).ok()),
        requests_today: None,
        quota: None,
        max_in_flight: u32::try_from(prepared.send.max_in_flight).unwrap_or(u32::MAX),
    };
    let shard_count = shards.len();
    let local = LocalPlan {
        source: args.source.clone(),
        shards,
        datum: prepared.datum.clone(),
        namespace: args.namespace.clone(),
        package: args.package.clone(),
        dead_letter_dir: dead_letter_dir.clone(),
        share,
        checkpoint_file: args.checkpoint_file.clone(),
        heartbeat_interval_ms: 250,
        quota,
    };
    let coordinator = match LocalCoordinator::new(local) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let ready = Arc::new(AtomicBool::new(true));
    let shutdown = CancellationToken::new();
    let servers = CancellationToken::new();
    if let Some(addr) = args.metrics_addr {
        let state = HealthState { metrics: metrics.clone(), ready: ready.clone() };
        match health::serve(addr, state, servers.clone()).await {
            Ok(bound) => tracing::info!(%bound, "serving /metrics, /healthz, /readyz"),
            Err(e) => return fail(EXIT_USAGE, format!("cannot listen on {addr}: {e}")),
        }
    }
    let terminal = std::io::stderr().is_terminal();
    let show = match args.progress {
        ProgressMode::Never => false,
        ProgressMode::Always => true,
        ProgressMode::Auto => true,
    };
    if show {
        tokio::spawn(progress::show(metrics.clone(), terminal, servers.clone()));
    }
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            terminated().await;
            tracing::info!("stop requested: draining");
            shutdown.cancel();
        });
    }
    tracing::info!(shards = shard_count, source = %args.source, rate = prepared.rate.per_second, "delivering");
    let driver_config = DriverConfig {
        worker: "local".to_owned(),
        namespace: args.namespace.clone(),
        destination: prepared.destination_name.clone(),
        destination_spec: Some((1, prepared.destination.clone())),
        secrets: prepared.secrets.clone(),
        max_leases: args.max_leases.max(1),
        drain: Duration::from_secs(args.drain_seconds),
    };
    let mut driver = Driver::new(coordinator, pipeline, driver_config, ready);
    let end = driver.run(shutdown.clone()).await;
    servers.cancel();
    let end = match end {
        Ok(end) => end,
        Err(e) => return fail(EXIT_FAILED, e),
    };
    let interrupted = matches!(end, DriverEnd::Drained { .. });
    let local = driver.coordinator().summary();
    let c = &local.counters;
    let elapsed = started.elapsed().as_secs_f64();
    let policy = FailurePolicy {
        max_failed_records: args.max_failed_records.and_then(|n| i64::try_from(n).ok()),
        max_failed_percent: args.max_failed_percent.map(i32::from),
    };
    let exceeded =
        policy.is_exceeded(i64::try_from(c.failed).unwrap_or(i64::MAX), i64::try_from(c.read).unwrap_or(i64::MAX));
    let summary = Summary {
        records_read: c.read,
        records_sent: c.sent,
        records_failed: c.failed,
        records_malformed: c.malformed,
        records_dead_lettered: c.dead_lettered,
        retries: c.retried,
        rate_per_second: (metrics.records_sent.get() as f64 / elapsed.max(1e-3) * 10.0).round() / 10.0,
        elapsed_seconds: (elapsed * 1000.0).round() / 1000.0,
        paused_seconds: (metrics.paused_seconds() * 1000.0).round() / 1000.0,
        shards: local.shards,
        shards_done: local.shards_done,
        dead_letter_path: dead_letter_dir,
        interrupted,
        failure_policy_exceeded: exceeded,
        failures: local.failures.clone(),
        shard_errors: local.shard_errors.clone(),
        checkpoint_file: args.checkpoint_file.as_ref().map(|p| p.display().to_string()),
        ..Summary::default()
    }
    .with_latency(metrics.latencies.quantile(0.5), metrics.latencies.quantile(0.99));
    if args.json_summary {
        match serde_json::to_string(&summary) {
            Ok(json) => println!("{json}"),
            Err(e) => return fail(EXIT_FAILED, e),
        }
    } else {
        eprint!("{}", summary.to_text());
    }
    if interrupted {
        ExitCode::SUCCESS
    } else if exceeded || !local.shard_errors.is_empty() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

async fn plan(args: &RunArgs, prepared: &Prepared) -> Result<Vec<crate::shard::ShardSpec>, String> {
    let source = Source::for_url(&args.source).map_err(|e| e.to_string())?;
    let files = source.list(&args.source).await.map_err(|e| e.to_string())?;
    let format = config::format_spec(&prepared.datum);
    Ok(plan_shards(&files, &format, args.shard_bytes))
}
