//! The runs of the scale benchmark on one ground (one namespace, one operator pod, one
//! simulator): each row reconfigures the simulator and the Destination, waits for its worker
//! pods, writes its records and applies its package, and measures what the partner saw.

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use courier_e2e::cpu::{Snapshot, Usage};
use courier_e2e::rates::RateFigures;
use courier_e2e::sim::{Arrival, Latency, RateLimit, SimConfig, bins, busiest_window};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use crate::shares::{Sample, Sampler};
use crate::support::{
    Ground, Operator, Records, apply_yaml, datum_yaml, destination_yaml_with, missing_and_repeated, package,
    package_yaml, setup, simulator, teardown, wait_condition,
};

/// Files per package by default: divisible by 1, 2, 3 and 4, so the shards split evenly among
/// workers.
pub const FILES: usize = 12;
/// The operator's default shard size (64 MiB).
const SHARD_TARGET: &str = "--shard-target-bytes=67108864";
const SKIP_START: Duration = Duration::from_secs(3);
const SKIP_END: Duration = Duration::from_secs(2);

/// One row: what ran and what the partner saw.
#[derive(Debug, Clone)]
pub struct RowFigures {
    pub workers: u32,
    pub limit: Option<u32>,
    pub records: usize,
    pub seen: Option<RateFigures>,
    pub lost: usize,
    pub duplicates: u64,
    pub counters_exact: bool,
    /// Where the machine's CPU went from the package's apply to Complete.
    pub cpu: Usage,
}

/// The churn run: one line per phase, and what the shares did.
#[derive(Debug, Clone)]
pub struct ChurnFigures {
    pub phases: Vec<Phase>,
    pub rate_limited: usize,
    pub lost: usize,
    pub duplicates: u64,
    pub counters_exact: bool,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub what: String,
    pub limit: u32,
    pub burst: u32,
    pub accepted_rate: f64,
    pub busiest_second: usize,
    pub max_share_sum: f64,
    pub samples: usize,
    pub samples_over: usize,
}

pub struct Bench {
    ground: Ground,
    /// Files (one shard each) per package.
    files: usize,
}

impl Bench {
    /// The operator pod in a fresh namespace, the simulator, Datum `users`; no workers yet.
    pub async fn start(files: usize) -> Bench {
        let (cluster, ns) = setup("scale");
        let client = cluster.client().await;
        // Shards as a user's operator plans them (the tests' operator plans 8 KiB ones, to have
        // many): each file of a row is one shard.
        let operator = Operator::start_with(&cluster, &ns, &[SHARD_TARGET]);
        let sim = simulator(SimConfig::default()).await;
        let data = Records::new("scale").await;
        let destination =
            destination_yaml_with("partner", &sim.url(), "{ requestsPerSecond: 1000 }", "{ min: 0, max: 1 }", "");
        apply_yaml(&client, &ns, &destination).await;
        apply_yaml(&client, &ns, &datum_yaml("users")).await;
        Bench { ground: Ground { cluster, ns, client, operator, sim, data, ids: Vec::new() }, files }
    }

    /// Deletes the namespace.
    pub fn finish(self) {
        teardown(&self.ground.cluster, &self.ground.ns);
    }

    /// A partner answering after 20 ms without a limit, `workers` workers of 32 in flight.
    pub async fn latency_bound(&self, workers: u32, records: usize) -> RowFigures {
        let sim = SimConfig { latency: Latency::Fixed { ms: 20.0 }, ..SimConfig::default() };
        let rate = "{ requestsPerSecond: 1000000 }";
        let name = format!("latency-{workers}");
        eprintln!("== {name}: {workers} workers, {records} records, partner 20 ms");
        self.run(&name, sim, rate, workers, 32, records).await
    }

    /// A strict partner allowing `limit`/s with a bucket of `limit/100`; the Destination's limit
    /// the same, its own bucket half that; `workers` workers; `seconds` of steady sending.
    pub async fn at_limit(&self, limit: u32, workers: u32, seconds: usize) -> RowFigures {
        let sim = strict(limit);
        let rate = rate_limit(limit);
        let records = limit as usize * (seconds + 5);
        let name = format!("limit-{limit}-{workers}");
        eprintln!("== {name}: {workers} workers, {records} records at {limit}/s");
        let mut row = self.run(&name, sim, &rate, workers, 256, records).await;
        row.limit = Some(limit);
        row
    }

    async fn run(&self, name: &str, sim: SimConfig, rate: &str, workers: u32, in_flight: u32, n: usize) -> RowFigures {
        let g = &self.ground;
        g.sim.set_config(sim).expect("a valid simulator configuration");
        self.destination(rate, workers, in_flight).await;
        self.wait_workers(workers).await;
        let ids = g.data.write(name, self.files, n.div_ceil(self.files), name).await;
        g.sim.reset();
        let before = Snapshot::take();
        apply_yaml(&g.client, &g.ns, &package_yaml(name, "partner", "users", &g.data.pattern(name), "")).await;
        wait_condition(&g.cluster, &g.client, &g.ns, name, "Complete", &g.operator).await;
        let cpu = before.until(&Snapshot::take(), 5);
        if std::env::var_os("COURIER_BENCH_SERIES").is_some() {
            print_series(&g.sim.arrivals());
        }
        let (lost, duplicates) = self.exactly_once(&ids);
        RowFigures {
            workers,
            limit: None,
            records: ids.len(),
            seen: RateFigures::of(&g.sim.arrivals(), SKIP_START, SKIP_END),
            lost,
            duplicates,
            counters_exact: self.counters_exact(name, ids.len()).await,
            cpu,
        }
    }

    /// 10k/s, two workers; after `phase` seconds a third is added, after two phases the limit
    /// is lowered to 7k, after three one worker is removed.
    pub async fn churn(&self, phase: u64) -> ChurnFigures {
        let g = &self.ground;
        let (high, low) = (10_000u32, 7_000u32);
        let name = "churn";
        let records = (34_000 * phase + 44_000) as usize;
        eprintln!("== churn: {records} records, phases of {phase} s");
        g.sim.set_config(strict(high)).expect("a valid simulator configuration");
        self.destination(&rate_limit(high), 2, 256).await;
        self.wait_workers(2).await;
        let ids = g.data.write(name, self.files, records.div_ceil(self.files), name).await;
        g.sim.reset();
        let sampler = Sampler::start(g.client.clone(), &g.ns, "partner", Duration::from_millis(100));
        apply_yaml(&g.client, &g.ns, &package_yaml(name, "partner", "users", &g.data.pattern(name), "")).await;
        let first = Instant::now() + Duration::from_secs(60);
        while g.sim.stats().accepted == 0 && Instant::now() < first {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The instants of the changes: Unix µs (arrivals) and seconds since the sampler began.
        let mut marks = vec![(unix_micros(), sampler.started.elapsed().as_secs_f64())];
        let step = Duration::from_secs(phase);
        tokio::time::sleep(step).await;
        marks.push((unix_micros(), sampler.started.elapsed().as_secs_f64()));
        self.destination(&rate_limit(high), 3, 256).await;
        tokio::time::sleep(step).await;
        marks.push((unix_micros(), sampler.started.elapsed().as_secs_f64()));
        self.destination(&rate_limit(low), 3, 256).await;
        tokio::time::sleep(step).await;
        marks.push((unix_micros(), sampler.started.elapsed().as_secs_f64()));
        self.destination(&rate_limit(low), 2, 256).await;
        wait_condition(&g.cluster, &g.client, &g.ns, name, "Complete", &g.operator).await;
        marks.push((unix_micros(), sampler.started.elapsed().as_secs_f64()));
        let samples = sampler.finish();
        for s in samples.iter().step_by(5) {
            eprintln!("  t={:5.1}s Σ={:6.0} pods={} each={:?}", s.at_secs, s.sum, s.pods, s.each);
        }
        for (i, m) in marks.iter().enumerate() {
            eprintln!("  mark {i} at t={:.1}s", m.1);
        }
        let arrivals = g.sim.arrivals();
        let (lost, duplicates) = self.exactly_once(&ids);
        let what = ["two workers", "a third added", "limit lowered to 7k", "one removed"];
        let limits = [high, high, low, low];
        let phases = (0..4)
            .map(|i| {
                // A lowered limit is in force once the workers have heard it: a heartbeat round
                // (1 s) after the change, with a second of margin.
                let grace = if i == 2 { 2.0 } else { 0.0 };
                phase_figures(what[i], limits[i], &arrivals, &samples, marks[i], marks[i + 1], grace)
            })
            .collect();
        ChurnFigures {
            phases,
            rate_limited: arrivals.iter().filter(|a| a.rate_limited).count(),
            lost,
            duplicates,
            counters_exact: self.counters_exact(name, ids.len()).await,
        }
    }

    /// Applies Destination `partner` with `rate` and exactly `workers` workers.
    async fn destination(&self, rate: &str, workers: u32, in_flight: u32) {
        let g = &self.ground;
        let spec =
            format!("{{ min: {workers}, max: {workers}, maxInFlightPerWorker: {in_flight}, cooldownSeconds: 600 }}");
        apply_yaml(&g.client, &g.ns, &destination_yaml_with("partner", &g.sim.url(), rate, &spec, "")).await;
    }

    /// Waits until exactly `n` worker pods run, all Ready and none terminating.
    async fn wait_workers(&self, n: u32) {
        let pods: Api<Pod> = Api::namespaced(self.ground.client.clone(), &self.ground.ns);
        let params = ListParams::default().labels("courier.dev/destination=partner");
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let list = pods.list(&params).await.map(|l| l.items).unwrap_or_default();
            let ready = list.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p)).count();
            if list.len() == n as usize && ready == n as usize {
                return;
            }
            assert!(Instant::now() < deadline, "{n} worker pods not ready after 180 s ({ready} of {})", list.len());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Records the partner never accepted, and extra acceptances.
    fn exactly_once(&self, ids: &[String]) -> (usize, u64) {
        let (missing, repeated) = missing_and_repeated(&self.ground.sim, ids);
        (missing.len(), repeated.values().map(|n| u64::from(n.saturating_sub(1))).sum())
    }

    /// Whether the package's status counts every record read and sent, none dead-lettered
    /// (the counters may trail Complete by one status write: read for up to 20 s).
    async fn counters_exact(&self, name: &str, records: usize) -> bool {
        let records = records as i64;
        for _ in 0..40 {
            let status = package(&self.ground.client, &self.ground.ns, name).await.status.unwrap_or_default();
            let r = status.progress.records;
            if r.read == records && r.sent == records && r.dead_lettered == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }
}

/// Accepted requests of each sender in 250 ms bins, to stderr (`COURIER_BENCH_SERIES`): where
/// a row's rate goes when a worker runs dry or takes a lease.
fn print_series(arrivals: &[Arrival]) {
    let Some(first) = arrivals.iter().find(|a| a.accepted).map(|a| a.at_unix_micros) else { return };
    let mut peers: Vec<Option<std::net::IpAddr>> = arrivals.iter().map(|a| a.peer).collect();
    peers.sort_unstable();
    peers.dedup();
    let columns: Vec<Vec<u64>> = peers
        .iter()
        .map(|p| {
            let times: Vec<u64> =
                arrivals.iter().filter(|a| a.accepted && a.peer == *p).map(|a| a.at_unix_micros).collect();
            bins(&times, first, Duration::from_millis(250))
        })
        .collect();
    eprintln!("  series (accepted per 250 ms; senders {peers:?})");
    for bin in 0..columns.iter().map(Vec::len).max().unwrap_or(0) {
        let counts: Vec<u64> = columns.iter().map(|c| c.get(bin).copied().unwrap_or(0)).collect();
        eprintln!("  t={:6.2}s {:?} Σ={}", bin as f64 / 4.0, counts, counts.iter().sum::<u64>());
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A partner allowing exactly `limit`/s, its bucket holding a hundredth of a second's worth.
fn strict(limit: u32) -> SimConfig {
    SimConfig { rate_limit: Some(RateLimit { rate: f64::from(limit), burst: burst(limit) }), ..SimConfig::default() }
}

fn burst(limit: u32) -> u32 {
    (limit / 100).max(1)
}

/// The Destination's limit: the partner's, with half its bucket.
fn rate_limit(limit: u32) -> String {
    format!("{{ requestsPerSecond: {limit}, burst: {} }}", (limit / 200).max(1))
}

fn unix_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// One phase of the churn run, from mark `from` to mark `to` (each Unix µs, sampler seconds);
/// the limit counts from `grace` seconds after the phase began.
fn phase_figures(
    what: &str,
    limit: u32,
    arrivals: &[Arrival],
    samples: &[Sample],
    from: (u64, f64),
    to: (u64, f64),
    grace: f64,
) -> Phase {
    let start = from.0 + (grace * 1e6) as u64;
    let times: Vec<u64> = arrivals.iter().map(|a| a.at_unix_micros).filter(|t| (start..to.0).contains(t)).collect();
    let accepted = arrivals.iter().filter(|a| a.accepted && (from.0..to.0).contains(&a.at_unix_micros)).count() as f64;
    let secs = (to.0.saturating_sub(from.0) as f64 / 1e6).max(1e-3);
    let in_phase: Vec<&Sample> =
        samples.iter().filter(|s| s.at_secs >= from.1 + grace && s.at_secs < to.1 && s.pods > 0).collect();
    Phase {
        what: what.to_owned(),
        limit,
        burst: burst(limit),
        accepted_rate: accepted / secs,
        busiest_second: busiest_window(&times, Duration::from_secs(1)),
        max_share_sum: in_phase.iter().map(|s| s.sum).fold(0.0, f64::max),
        samples: in_phase.len(),
        samples_over: in_phase.iter().filter(|s| s.sum > f64::from(limit) + 0.5).count(),
    }
}

fn exact(r: &RowFigures) -> String {
    format!("{} / {} / {}", r.lost, r.duplicates, if r.counters_exact { "yes" } else { "**no**" })
}

/// Item 1: throughput against N · throughput(1).
pub fn scaling_table(rows: &[RowFigures]) -> String {
    let mut out = String::from(
        "## Throughput scales with workers (partner latency 20 ms, no limit, 32 in flight per worker)\n\n\
         Goal: throughput(N) ≥ 0.95 · N · throughput(1). Steady rate: accepted requests from 3 s \
         after the first to 2 s before the last, in whole seconds.\n\n\
         | workers | records | steady rate (req/s) | of N · rate(1) | per-second CV | busiest worker vs mean | lost / duplicates / counters exact | CPU, apply to Complete (% of one core) |\n\
         |---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    let one = rows.first().and_then(|r| r.seen.as_ref()).map_or(0.0, |s| s.rate);
    for r in rows {
        let Some(s) = &r.seen else {
            let _ = writeln!(
                out,
                "| {} | {} | (too short to measure) | | | | {} | {} |",
                r.workers,
                r.records,
                exact(r),
                r.cpu.cell()
            );
            continue;
        };
        let ideal = one * f64::from(r.workers);
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.1} % | {:.2} % | {:+.1} % | {} | {} |",
            r.workers,
            r.records,
            s.rate,
            100.0 * s.rate / ideal.max(1e-9),
            100.0 * s.per_second_cv,
            100.0 * s.unfairness(),
            exact(r),
            r.cpu.cell()
        );
    }
    out
}

/// Item 2: one exact limit across workers.
pub fn limit_table(rows: &[RowFigures]) -> String {
    let mut out = String::from(
        "## One exact limit across workers (strict partner: bucket of limit/100)\n\n\
         Goals: steady rate within ±1 % of the limit; busiest sliding second ≤ limit + the partner's \
         bucket; busiest 100 ms bin ≤ 1.2 × limit/10; 0 × 429; per-second CV < 5 %; each worker's \
         share within 5 % of the mean while all have work (equal demand). Workers' spread: the \
         busiest and the idlest worker's requests against their mean, over the steady window \
         (12 shards over 2 workers end on one of them) and while every worker was sending.\n\n\
         | limit | workers | records | steady rate | of limit | busiest second | busiest 100 ms (of limit/10) | 429s | per-second CV | workers' spread: window / while all sent | lost / duplicates / counters exact | CPU, apply to Complete (% of one core) |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    for r in rows {
        let limit = r.limit.unwrap_or(0);
        let Some(s) = &r.seen else {
            let _ =
                writeln!(out, "| {limit} | {} | {} | (too short) | | | | | | | {} | |", r.workers, r.records, exact(r));
            continue;
        };
        let _ = writeln!(
            out,
            "| {limit} | {} | {} | {:.0} | {:.2} % | {} | {} ({:.2}×) | {} | {:.2} % | {:.1} % / {:.1} % | {} | {} |",
            r.workers,
            r.records,
            s.rate,
            100.0 * s.rate / f64::from(limit),
            s.busiest_second,
            s.busiest_tenth,
            s.busiest_tenth as f64 / (f64::from(limit) / 10.0),
            s.rate_limited,
            100.0 * s.per_second_cv,
            100.0 * s.unfairness(),
            100.0 * s.unfairness_together(),
            exact(r),
            r.cpu.cell()
        );
    }
    out
}

/// Item 2's churn: the shares the workers enforce against the limit in force.
pub fn churn_table(c: &ChurnFigures) -> String {
    let mut out = String::from(
        "## Churn at one limit: a worker added, the limit lowered, a worker removed\n\n\
         Σ shares: the sum of `courier_worker_rate_share_requests_per_second` over the worker pods \
         that answered, sampled every 100 ms; after the limit is lowered it counts from 2 s later \
         (the workers hear it at their next heartbeat, ≤ 1 s).\n\n\
         | phase | limit | accepted rate | busiest second (limit + bucket) | max Σ shares | samples | samples over the limit |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in &c.phases {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} ({}) | {:.0} | {} | {} |",
            p.what,
            p.limit,
            p.accepted_rate,
            p.busiest_second,
            p.limit + p.burst,
            p.max_share_sum,
            p.samples,
            p.samples_over
        );
    }
    let _ = writeln!(
        out,
        "\n429s over the whole run: {}; lost {}, duplicates {}, counters exact: {}.",
        c.rate_limited,
        c.lost,
        c.duplicates,
        if c.counters_exact { "yes" } else { "no" }
    );
    out
}
