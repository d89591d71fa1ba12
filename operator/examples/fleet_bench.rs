//! A fleet of simulated workers against the real coordinator (issue 18, item 6): the
//! operator's heartbeat server (`coordinator::server`, plain HTTP on loopback, no token review)
//! runs on a runtime of its own with **one thread**; `WORKERS` simulated workers spread over
//! `DESTINATIONS` Destinations heartbeat it over their own keep-alive connections, each with the
//! JSON a real worker sends (its leases' cumulative counters, demand, applied share, clock),
//! at the interval the answer asks for. During the run there is churn: workers killed without a
//! goodbye (their share and leases lapse after the TTL) and replaced by new pods, and limits
//! changed. Measured: heartbeat round trip p50/p99/max (client side, so it includes the
//! loopback and the client's own scheduling), the coordinator thread's CPU, the process's
//! RSS, and the invariant — at every check (every 100 ms) the shares the live workers enforce
//! add up, per Destination, to no more than the largest limit in force within the last TTL
//! (the bound `churn_tests.rs` proves over random churn).
//!
//! `cargo run --release -p courier-operator --example fleet_bench -- [--workers N]
//! [--destinations D] [--seconds S] [--out F]`; prints a Markdown table and, with `--out`,
//! writes it there (docs/benchmarks-fleet.md).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier_api::DestinationSpec;
use courier_core::protocol::{
    HEARTBEAT_PATH, HeartbeatRequest, HeartbeatResponse, LeaseCounters, LeaseReport, PROTOCOL_VERSION, ShardLease,
    ThrottleReport, WorkerStats,
};
use courier_core::shard::{ShardKind, ShardSpec};
use courier_operator::coordinator::server::{self, AuthMode};
use courier_operator::coordinator::{
    Coordinator, CoordinatorConfig, ObjectKey, PackagePlan, PlannedShard, RestoredProgress, now_ms,
};
use courier_operator::leader::Leadership;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rand::Rng;
use support::{arg, memory_mib};

const NS: &str = "fleet";
const TTL_MS: u64 = 15_000;
const SHARDS_PER_PACKAGE: u32 = 8;
const SLOTS_PER_WORKER: u32 = 2;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn number(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match arg(args, name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("{name} wants a whole number, not {v:?}")),
    }
}

fn destination_spec(rps: u32) -> DestinationSpec {
    let value = serde_json::json!({
        "endpoint": {"url": "http://127.0.0.1:1/"},
        "rateLimit": {"requestsPerSecond": rps, "burst": (rps / 50).max(1)},
        "workers": {"min": 0, "max": 8, "cooldownSeconds": 0, "maxInFlightPerWorker": 64}
    });
    match serde_json::from_value(value) {
        Ok(spec) => spec,
        Err(err) => panic!("the bench's Destination does not parse: {err}"),
    }
}

fn plan(dest: &str) -> PackagePlan {
    let datum = match serde_json::from_value(serde_json::json!({"format": {"type": "JsonLines"}})) {
        Ok(d) => d,
        Err(err) => panic!("the bench's Datum does not parse: {err}"),
    };
    PackagePlan {
        key: ObjectKey::new(NS, format!("{dest}-pkg")),
        uid: format!("uid-{dest}"),
        destination: dest.to_owned(),
        attempt: 1,
        priority: 0,
        created_unix_ms: 0,
        suspended: false,
        backoff_limit: 2,
        datum,
        dead_letter_path: "file:///tmp/dl".into(),
        shards: (0..SHARDS_PER_PACKAGE)
            .map(|i| PlannedShard {
                only_offsets: Vec::new(),
                spec: ShardSpec {
                    url: format!("hdfs://nn/data/{dest}.jsonl"),
                    kind: ShardKind::ByteRange { start: u64::from(i) << 30, end: u64::from(i + 1) << 30 },
                },
                bytes: 1 << 30,
            })
            .collect(),
        restored: RestoredProgress::default(),
    }
}

/// What the simulation shares: per Destination, the limits set (with when) and the share each
/// live worker enforces (until when).
#[derive(Default)]
struct World {
    limits: Vec<Vec<(u64, u32)>>,
    enforced: Vec<BTreeMap<String, (u32, u64)>>,
}

#[derive(Default)]
struct Figures {
    latencies_us: Mutex<Vec<u64>>,
    heartbeats: AtomicU64,
    errors: AtomicU64,
    checks: AtomicU64,
    violations: AtomicU64,
    worst_excess: AtomicU64,
}

struct Worker {
    name: String,
    dest: usize,
    born: Instant,
    leases: Vec<(ShardLease, u64)>,
    applied: u32,
    generation: i64,
}

impl Worker {
    fn request(&self, limit: u32) -> HeartbeatRequest {
        let leases = self
            .leases
            .iter()
            .map(|(lease, sent)| LeaseReport {
                key: lease.key.clone(),
                checkpoint: lease.checkpoint + sent * 100,
                frontier: 0,
                pending: vec![],
                counters: LeaseCounters { read: *sent, sent: *sent, bytes: sent * 100, ..Default::default() },
                base: lease.counters.clone(),
                failures: vec![],
                done: false,
                error: None,
                released: false,
            })
            .collect();
        HeartbeatRequest {
            protocol_version: PROTOCOL_VERSION,
            worker: self.name.clone(),
            incarnation: 1,
            namespace: NS.into(),
            destination: format!("dest-{:03}", self.dest),
            destination_generation: self.generation,
            applied_share: self.applied,
            demand: limit,
            free_slots: SLOTS_PER_WORKER.saturating_sub(self.leases.len() as u32),
            draining: false,
            leases,
            throttle: ThrottleReport::default(),
            stats: WorkerStats::default(),
            quota: None,
            clock_ms: Some(self.born.elapsed().as_millis() as u64),
        }
    }

    fn take(&mut self, answer: HeartbeatResponse, elapsed: Duration) {
        self.applied = answer.share.requests_per_second;
        if let Some(d) = &answer.destination {
            self.generation = d.generation;
        }
        self.leases.retain(|(l, _)| !answer.revoked.contains(&l.key));
        self.leases.extend(answer.granted.into_iter().map(|l| (l, 0)));
        let per_lease = u64::from(self.applied) * elapsed.as_millis() as u64 / 1_000 / self.leases.len().max(1) as u64;
        for (_, sent) in &mut self.leases {
            *sent += per_lease;
        }
    }
}

async fn run_worker(mut worker: Worker, addr: SocketAddr, world: Arc<Mutex<World>>, figures: Arc<Figures>) {
    let mut sender = None;
    let mut last = Instant::now();
    loop {
        if sender.is_none() {
            match connect(addr).await {
                Ok(s) => sender = Some(s),
                Err(_) => {
                    figures.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let limit = world.lock().map(|w| w.limits[worker.dest].last().map_or(0, |l| l.1)).unwrap_or(0);
        let request = worker.request(limit);
        let sent_at = now_ms();
        let started = Instant::now();
        let answer = match beat(s, &request).await {
            Ok(a) => a,
            Err(_) => {
                figures.errors.fetch_add(1, Ordering::Relaxed);
                sender = None;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let took = started.elapsed();
        figures.heartbeats.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = figures.latencies_us.lock() {
            l.push(took.as_micros() as u64);
        }
        let interval = Duration::from_millis(u64::from(answer.heartbeat_interval_ms.max(10)));
        if let Ok(mut w) = world.lock() {
            // The worker's rule: the share holds until the TTL after the heartbeat was sent.
            w.enforced[worker.dest].insert(worker.name.clone(), (answer.share.requests_per_second, sent_at + TTL_MS));
        }
        worker.take(answer, last.elapsed());
        last = Instant::now();
        tokio::time::sleep(interval).await;
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, Error> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn beat(sender: &mut Sender, request: &HeartbeatRequest) -> Result<HeartbeatResponse, Error> {
    let body = serde_json::to_vec(request)?;
    let req = http::Request::post(HEARTBEAT_PATH)
        .header(http::header::HOST, "coordinator")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Σ enforced shares of live workers against the largest limit in force within the last TTL.
fn check(world: &World, figures: &Figures, now: u64) {
    for (limits, enforced) in world.limits.iter().zip(&world.enforced) {
        let bound = limits
            .iter()
            .enumerate()
            .filter(|(i, (_, _))| limits.get(i + 1).is_none_or(|next| next.0 + TTL_MS + 1_000 > now))
            .map(|(_, (_, rps))| *rps)
            .max()
            .unwrap_or(0);
        let sum: u64 = enforced.values().filter(|(_, until)| *until > now).map(|(s, _)| u64::from(*s)).sum();
        figures.checks.fetch_add(1, Ordering::Relaxed);
        if sum > u64::from(bound) {
            figures.violations.fetch_add(1, Ordering::Relaxed);
            figures.worst_excess.fetch_max(sum - u64::from(bound), Ordering::Relaxed);
        }
    }
}

/// utime + stime of the thread named `name`, in seconds.
fn thread_cpu_seconds(name: &str) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        return (utime + stime) / ticks;
    }
    0.0
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (|| -> Result<(u64, u64, u64), String> {
        Ok((number(&args, "--workers", 1_000)?, number(&args, "--destinations", 500)?, number(&args, "--seconds", 60)?))
    })();
    let (workers, destinations, seconds) = match parsed {
        Ok(v) if v.0 > 0 && v.1 > 0 && v.2 > 0 => v,
        Ok(_) => {
            eprintln!("fleet_bench: --workers, --destinations and --seconds must be positive");
            std::process::exit(2);
        }
        Err(err) => {
            eprintln!("fleet_bench: {err}");
            std::process::exit(2);
        }
    };
    if let Err(err) = run(workers as usize, destinations as usize, seconds, arg(&args, "--out")) {
        eprintln!("fleet_bench: {err}");
        std::process::exit(1);
    }
}

fn run(workers: usize, destinations: usize, seconds: u64, out: Option<String>) -> Result<(), Error> {
    let coordinator = Coordinator::new(CoordinatorConfig::default());
    // A term begun long enough ago that its warm-up is over.
    coordinator.begin_term(1, now_ms().saturating_sub(60_000));
    let mut rng = rand::rng();
    let mut world = World::default();
    for d in 0..destinations {
        let name = format!("dest-{d:03}");
        let rps = rng.random_range(100..=15_000u32);
        coordinator.upsert_destination(NS, &name, &destination_spec(rps), 1);
        coordinator.upsert_package(plan(&name));
        world.limits.push(vec![(now_ms(), rps)]);
        world.enforced.push(BTreeMap::new());
    }
    let world = Arc::new(Mutex::new(world));
    let figures = Arc::new(Figures::default());

    // The coordinator: one thread.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = coordinator.clone();
    let server = std::thread::Builder::new().name("coordinator".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async move {
            let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            addr_tx.send(listener.local_addr()?)?;
            let (_tx, leader) = Leadership::manual(true);
            server::serve(listener, served, leader, AuthMode::InsecureSkipAuth, async {
                let _ = stop_rx.await;
            })
            .await?;
            Ok::<(), Error>(())
        })
    })?;
    let addr = addr_rx.recv_timeout(Duration::from_secs(10))?;

    // The workers and the churn: the other core.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let cpu_before = thread_cpu_seconds("coordinator");
    let started = Instant::now();
    let (killed, limit_changes) = rt.block_on(async {
        let mut tasks = BTreeMap::new();
        let mut next_id = 0usize;
        let spawn = |i: usize, tasks: &mut BTreeMap<usize, (usize, tokio::task::JoinHandle<()>)>| {
            let dest = i % destinations;
            let worker = Worker {
                name: format!("dest-{dest:03}-w{i}"),
                dest,
                born: Instant::now(),
                leases: Vec::new(),
                applied: 0,
                generation: 0,
            };
            tasks.insert(i, (dest, tokio::spawn(run_worker(worker, addr, world.clone(), figures.clone()))));
        };
        for _ in 0..workers {
            spawn(next_id, &mut tasks);
            next_id += 1;
            // Spread the first heartbeats over a second.
            tokio::time::sleep(Duration::from_micros(1_000_000 / workers as u64)).await;
        }
        let mut killed = 0u64;
        let mut changes = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let end = Instant::now() + Duration::from_secs(seconds);
        let mut n = 0u64;
        while Instant::now() < end {
            tick.tick().await;
            n += 1;
            let now = now_ms();
            if let Ok(w) = world.lock() {
                check(&w, &figures, now);
            }
            let mut rng = rand::rng();
            // About 1 % of the workers killed per 10 s, each replaced by a new pod.
            if rng.random_bool((workers as f64 / 100.0 / 100.0).min(1.0)) {
                let victims: Vec<usize> = tasks.keys().copied().collect();
                let victim = victims[rng.random_range(0..victims.len())];
                if let Some((dest, handle)) = tasks.remove(&victim) {
                    handle.abort();
                    // A killed process enforces nothing any more (it sends nothing).
                    if let Ok(mut w) = world.lock() {
                        w.enforced[dest].retain(|name, _| !name.ends_with(&format!("-w{victim}")));
                    }
                    killed += 1;
                }
                spawn(next_id, &mut tasks);
                next_id += 1;
            }
            // A limit changed every second.
            if n.is_multiple_of(10) {
                let d = rng.random_range(0..destinations);
                let rps = rng.random_range(100..=15_000u32);
                if let Ok(mut w) = world.lock() {
                    let generation = w.limits[d].len() as i64 + 1;
                    w.limits[d].push((now, rps));
                    coordinator.upsert_destination(NS, &format!("dest-{d:03}"), &destination_spec(rps), generation);
                }
                changes += 1;
            }
        }
        for (_, (_, handle)) in tasks {
            handle.abort();
        }
        (killed, changes)
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds("coordinator") - cpu_before;
    let _ = stop_tx.send(());
    let _ = server.join();
    let (rss, hwm) = memory_mib();

    let mut lat = figures.latencies_us.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let heartbeats = figures.heartbeats.load(Ordering::Relaxed);
    let checks = figures.checks.load(Ordering::Relaxed);
    let violations = figures.violations.load(Ordering::Relaxed);
    let p99 = quantile(&lat, 0.99);
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    let when = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let table = format!(
        "# Fleet benchmark: {workers} workers, {destinations} Destinations, one coordinator thread\n\n\
         `operator/examples/fleet_bench.rs` (issue 18, item 6). Last run: {when}, {cores} cores, {build} build.\n\
         The operator's heartbeat server on a runtime of one thread (plain HTTP on loopback, no token\n\
         review); the simulated workers on the other core, one keep-alive connection each, at the\n\
         interval each answer asks for (1 s settled, 500 ms while a worker could use more than its\n\
         share beside others — every worker here, two per Destination, each wanting the whole\n\
         limit — and 100 ms while a share is in transition). Each worker holds up to two shards of\n\
         its Destination's package and reports their cumulative counters in every heartbeat.\n\n\
         | measure | value | goal | verdict |\n|---|---|---|---|\n\
         | run | {elapsed:.0} s, {heartbeats} heartbeats ({hps:.0}/s), {errors} failed | | |\n\
         | churn | {killed} workers killed without a goodbye and replaced, {limit_changes} limit changes | | |\n\
         | heartbeat round trip p50 / p99 / max | {p50:.2} / {p99:.2} / {max:.2} ms | p99 < 10 ms | {v_p99} |\n\
         | coordinator thread CPU | {cpu:.1} s of {elapsed:.0} s ({cpu_pct:.0} % of one core, {us_per:.0} µs per heartbeat) | ≤ 1 core | {v_cpu} |\n\
         | process RSS now / peak (with the simulated workers) | {rss:.0} / {hwm:.0} MiB | | |\n\
         | Σ live workers' shares ≤ the largest limit in force within the TTL | {violations} violations in {checks} checks (worst excess {worst} req/s) | 0 | {v_inv} |\n\n\
         Reproduce: `cargo run --release -p courier-operator --example fleet_bench -- --workers {workers} --destinations {destinations} --seconds {seconds} --out docs/benchmarks-fleet.md`\n",
        hps = heartbeats as f64 / elapsed,
        build = if cfg!(debug_assertions) { "debug" } else { "release" },
        errors = figures.errors.load(Ordering::Relaxed),
        p50 = quantile(&lat, 0.5),
        max = quantile(&lat, 1.0),
        v_p99 = verdict(p99 < 10.0),
        cpu_pct = cpu / elapsed * 100.0,
        us_per = cpu * 1e6 / heartbeats.max(1) as f64,
        v_cpu = verdict(cpu < elapsed),
        worst = figures.worst_excess.load(Ordering::Relaxed),
        v_inv = verdict(violations == 0),
    );
    println!("{table}");
    if let Some(path) = out {
        std::fs::write(&path, &table)?;
    }
    Ok(())
}
