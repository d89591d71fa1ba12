#![forbid(unsafe_code)]
//! `partner-sim`: the partner simulator as a standalone server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use courier_e2e::sim::{
    Auth, BurstWindow, InjectStatus, Latency, LimitKey, RateLimit, SimConfig, Simulator, SlowBody, TlsIdentity,
};

/// A rate-limited, misbehaving partner API for Courier's tests and benchmarks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Start from this JSON SimConfig; the flags below override its fields.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Token bucket rate in requests per second (needs --burst or defaults burst to 1).
    #[arg(long)]
    rate: Option<f64>,
    /// Token bucket size.
    #[arg(long)]
    burst: Option<u32>,
    /// Rate-limit key: global, path or header:NAME.
    #[arg(long)]
    limit_key: Option<LimitKey>,
    /// Requests accepted per key per UTC day.
    #[arg(long)]
    daily_quota: Option<u64>,
    /// Latency: none, fixed:MS, uniform:MIN..MAX or lognormal:P50,P99.
    #[arg(long)]
    latency: Option<Latency>,
    /// Probability of an injected server error.
    #[arg(long)]
    error_rate: Option<f64>,
    /// Status of injected server errors.
    #[arg(long)]
    error_status: Option<u16>,
    /// Periodic error windows: EVERY_MS:DURATION_MS.
    #[arg(long)]
    burst_window: Option<BurstWindow>,
    /// Answer a fraction of requests with a status: STATUS:FRACTION.
    #[arg(long)]
    inject_status: Option<InjectStatus>,
    /// Probability of never answering.
    #[arg(long)]
    blackhole_rate: Option<f64>,
    /// Probability of closing the connection without an answer.
    #[arg(long)]
    reset_rate: Option<f64>,
    /// Trickle 2xx bodies: CHUNKS:DELAY_MS.
    #[arg(long)]
    slow_body: Option<SlowBody>,
    /// Seed for every random decision.
    #[arg(long)]
    seed: Option<u64>,
    /// Auth: none, bearer:TOKEN, basic:USER:PASSWORD, header:NAME:VALUE or oauth2:ID:SECRET:TTL_SECS.
    #[arg(long)]
    auth: Option<Auth>,
    /// Header recorded in the ledger.
    #[arg(long)]
    idempotency_header: Option<String>,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Instead of serving: send evenly paced requests to this partner's base URL (a control
    /// sender on the same network path as the workers), then exit.
    #[arg(long, requires = "pace_rate")]
    pace_to: Option<String>,
    /// Requests a second of --pace-to.
    #[arg(long, requires = "pace_to", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pace_rate: Option<u32>,
    /// Seconds --pace-to sends for.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pace_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("reading config file {path}: {source}")]
    ReadConfig { path: PathBuf, source: std::io::Error },
    #[error("parsing config file {path}: {source}")]
    ParseConfig { path: PathBuf, source: serde_json::Error },
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Sim(#[from] courier_e2e::sim::SimError),
    #[error("waiting for a stop signal: {0}")]
    Signal(std::io::Error),
    #[error("reading {path}: {source}")]
    ReadTls { path: PathBuf, source: std::io::Error },
}

impl Args {
    fn sim_config(&self) -> Result<SimConfig, Error> {
        let mut config = match &self.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| Error::ReadConfig { path: path.clone(), source })?;
                serde_json::from_str(&text).map_err(|source| Error::ParseConfig { path: path.clone(), source })?
            }
            None => SimConfig::default(),
        };
        if self.rate.is_some() || self.burst.is_some() {
            let current = config.rate_limit;
            config.rate_limit = Some(RateLimit {
                rate: self.rate.or(current.map(|l| l.rate)).unwrap_or(1.0),
                burst: self.burst.or(current.map(|l| l.burst)).unwrap_or(1),
            });
        }
        set(&mut config.limit_key, &self.limit_key);
        set(&mut config.latency, &self.latency);
        set(&mut config.error_rate, &self.error_rate);
        set(&mut config.error_status, &self.error_status);
        set(&mut config.blackhole_rate, &self.blackhole_rate);
        set(&mut config.reset_rate, &self.reset_rate);
        set(&mut config.auth, &self.auth);
        set(&mut config.idempotency_header, &self.idempotency_header);
        config.daily_quota = self.daily_quota.or(config.daily_quota);
        config.burst_window = self.burst_window.or(config.burst_window);
        config.inject_status = self.inject_status.clone().or(config.inject_status);
        config.slow_body = self.slow_body.or(config.slow_body);
        config.seed = self.seed.or(config.seed);
        Ok(config)
    }
}

/// Overrides `target` with the flag's value, if the flag was given.
fn set<T: Clone>(target: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        *target = value.clone();
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let rendered = error.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("partner-sim: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let config = match args.sim_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("partner-sim: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = config.validate() {
        eprintln!("partner-sim: invalid config: {error}");
        return ExitCode::from(2);
    }
    match run(&args, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("partner-sim: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, config: SimConfig) -> Result<(), Error> {
    // One thread: the single-threaded scheduler, which skips work-stealing costs.
    let mut runtime = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(threads.max(1));
            runtime
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime.enable_all().build().map_err(Error::Runtime)?;
    if let (Some(url), Some(rate)) = (&args.pace_to, args.pace_rate) {
        let duration = std::time::Duration::from_secs(args.pace_seconds);
        let sent = runtime.block_on(courier_e2e::paced::send(url, "paced", rate, duration));
        println!("partner-sim paced {sent} requests to {url} at {rate}/s");
        return Ok(());
    }
    runtime.block_on(async {
        let simulator = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                let read = |path: &PathBuf| {
                    std::fs::read_to_string(path).map_err(|source| Error::ReadTls { path: path.clone(), source })
                };
                let identity = TlsIdentity { cert_pem: read(cert)?, key_pem: read(key)? };
                Simulator::start_tls(args.listen, config, &identity).await?
            }
            _ => Simulator::start(args.listen, config).await?,
        };
        let scheme = if args.tls_cert.is_some() { "https" } else { "http" };
        println!("partner-sim listening on {scheme}://{}", simulator.addr());
        stop_signal().await?;
        simulator.shutdown().await;
        Ok(())
    })
}

async fn stop_signal() -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    tokio::select! {
        _ = terminate.recv() => Ok(()),
        result = tokio::signal::ctrl_c() => result.map_err(Error::Signal),
    }
}
