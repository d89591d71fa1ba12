//! The `courier-worker` command line: `run` (one package locally, no cluster) and `serve`
//! (in-cluster worker of one Destination, driven by the operator's coordinator).

mod progress;
mod run;
mod serve;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use summary::Summary;

/// Exit code when records failed beyond the failure policy (or the run failed).
pub const EXIT_FAILED: u8 = 1;
/// Exit code for bad flags or manifests.
pub const EXIT_USAGE: u8 = 2;

/// courier-worker: reads records from HDFS or local files and sends one HTTP request per record.
#[derive(Debug, Parser)]
#[command(name = "courier-worker", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format: text, or json (default json in serve mode off a terminal).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter (`info`, `debug`, `courier_worker=debug,warn`) [default: $RUST_LOG]; while
    /// running, `PUT /log-level` on the metrics port changes it.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Threads sending and reading (0: one per CPU this process may use, after affinity and
    /// cgroup quota). With one, everything runs on a single-threaded runtime, which is the
    /// fastest way to use one core.
    #[arg(long, global = true, env = "COURIER_THREADS", default_value_t = 0)]
    pub threads: usize,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// When to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A live line on a terminal, periodic log lines otherwise.
    Auto,
    /// Periodic progress even when not on a terminal.
    Always,
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deliver one package locally: a source, a Destination and a Datum manifest.
    Run(RunArgs),
    /// Run as an in-cluster worker driven by the operator's coordinator.
    Serve(ServeArgs),
}

/// `courier-worker run` flags.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Destination manifest (YAML, courier.dev/v1alpha1).
    #[arg(long)]
    pub destination: String,
    /// Datum manifest (YAML, courier.dev/v1alpha1).
    #[arg(long)]
    pub datum: String,
    /// Files to send: hdfs://host:port/glob or file:///glob.
    #[arg(long)]
    pub source: String,
    /// v1 Secret manifests resolving the Destination's secretRefs (repeatable).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Directory URL for dead letters (file:// or hdfs://); default ./courier-dead-letters.
    #[arg(long)]
    pub dead_letter: Option<String>,
    /// Package name (part of every idempotency key).
    #[arg(long, default_value = "local")]
    pub package: String,
    /// Namespace (part of every idempotency key).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Exit 1 when more than this percentage of records failed.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub max_failed_percent: Option<u8>,
    /// Exit 1 when more than this many records failed.
    #[arg(long)]
    pub max_failed_records: Option<u64>,
    /// Requests per second instead of the Destination's rateLimit.
    #[arg(long)]
    pub rate_override: Option<u32>,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Print the final summary as one JSON object on stdout.
    #[arg(long)]
    pub json_summary: bool,
    /// Progress file: read at start to resume, written on every checkpoint.
    #[arg(long, alias = "resume-from")]
    pub checkpoint_file: Option<PathBuf>,
    /// Target shard size in bytes (plain text and Avro are split into ranges of about this size).
    #[arg(long, default_value_t = 16 << 20)]
    pub shard_bytes: u64,
    /// Shards delivered at once.
    #[arg(long, default_value_t = 4)]
    pub max_leases: u32,
    /// Requests in flight at most (default: the Destination's maxInFlightPerWorker).
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Serve /metrics, /healthz, /readyz on this address while running.
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Seconds in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, default_value_t = 20)]
    pub drain_seconds: u64,
}

/// `courier-worker serve` flags.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Base URL of the operator's coordinator endpoint; several, separated by commas, are tried
    /// in turn (only the leading replica answers).
    #[arg(long, env = "COURIER_COORDINATOR_URL")]
    pub coordinator_url: String,
    /// Address of /metrics, /healthz, /readyz (default $POD_IP:9090, else 0.0.0.0:9090).
    #[arg(long, env = "COURIER_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// This worker's name (the pod name).
    #[arg(long, env = "POD_NAME", default_value = "courier-worker")]
    pub worker_name: String,
    /// Namespace of the Destination.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// The Destination this worker serves.
    #[arg(long, env = "COURIER_DESTINATION")]
    pub destination: String,
    /// The bearer token presented to the coordinator, re-read on every heartbeat.
    #[arg(long, default_value = crate::coordinator::SERVICE_ACCOUNT_TOKEN)]
    pub token_path: PathBuf,
    /// Shards delivered at once.
    #[arg(long, env = "COURIER_MAX_LEASES", default_value_t = 4)]
    pub max_leases: u32,
    /// Seconds in-flight requests may take to finish after SIGTERM.
    #[arg(long, default_value_t = 20)]
    pub drain_seconds: u64,
}

/// Parses the command line and runs it; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(level) = &cli.log_level
        && let Err(e) = courier_core::telemetry::check_directive(level)
    {
        return fail(EXIT_USAGE, e);
    }
    let available = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut builder = match runtime_threads(cli.threads, available) {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("courier-worker: error: failed to start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let logs = Logs { format: cli.log_format, level: cli.log_level };
    match cli.command {
        Command::Run(args) => runtime.block_on(run::run(args, logs)),
        Command::Serve(args) => runtime.block_on(serve::serve(args, logs)),
    }
}

/// Runtime threads for `--threads requested` with `available` CPUs: as asked, or one per CPU.
fn runtime_threads(requested: usize, available: usize) -> usize {
    if requested > 0 { requested } else { available.max(1) }
}

/// The logging flags.
#[derive(Debug, Clone, Default)]
pub(crate) struct Logs {
    pub format: Option<LogFormat>,
    pub level: Option<String>,
}

/// Installs the tracing subscriber (courier_core::telemetry): `--log-level`, else RUST_LOG,
/// else `default_level`; the level can be changed later through `/log-level`.
pub(crate) fn init_logs(format: LogFormat, level: Option<&str>, default_level: &str) {
    use courier_core::telemetry;
    let rust_log = std::env::var("RUST_LOG").ok();
    let mut directive = telemetry::initial_directive(level, rust_log.as_deref(), default_level);
    if telemetry::check_directive(&directive).is_err() {
        // A bad RUST_LOG (the flag was checked already) falls back to the default.
        directive = default_level.to_owned();
    }
    let format = match format {
        LogFormat::Json => telemetry::LogFormat::Json,
        LogFormat::Text => telemetry::LogFormat::Text,
    };
    let _ = telemetry::init(format, &directive);
}

/// Prints a one-line error and returns `code`.
pub(crate) fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("courier-worker: error: {message}");
    ExitCode::from(code)
}

/// Completes on SIGTERM or SIGINT.
pub(crate) async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_threads_are_as_asked_or_one_per_available_cpu() {
        let cases = [((0, 1), 1), ((0, 4), 4), ((0, 0), 1), ((1, 8), 1), ((3, 1), 3)];
        for ((requested, available), want) in cases {
            assert_eq!(runtime_threads(requested, available), want, "requested {requested}, available {available}");
        }
    }

    #[test]
    fn a_bad_threads_value_is_a_usage_error() {
        let args =
            ["courier-worker", "run", "--destination", "d", "--datum", "x", "--source", "file:///s", "--threads"];
        let ok = Cli::try_parse_from(args.iter().chain(&["2"])).expect("a number of threads");
        assert_eq!(ok.threads, 2);
        let err = Cli::try_parse_from(args.iter().chain(&["many"])).expect_err("refused");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
