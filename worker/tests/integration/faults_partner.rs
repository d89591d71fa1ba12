//! The fault suite's partner and bad-data rows, in process: the worker's own delivery pipeline
//! (limiter, retries, outage handling, dead letters) against the partner simulator as a strict
//! partner (`LIMIT` requests/s, a bucket of `BURST`, 429 past it), one fault per run on a fresh
//! partner. After each run:
//! - nothing lost: the simulator's key ledger holds every record that was not dead-lettered,
//!   and every dead letter names its reason;
//! - counters exact: `read == records`, `sent + deadLettered == records`, `sent` == the
//!   distinct keys the partner accepted;
//! - never above the limit: 0 requests refused by the strict bucket (where the fault is not
//!   itself a 429 storm), and no sliding second with more than `LIMIT + BURST` requests;
//! - duplicates (keys accepted twice) no more than the attempts that got no answer.
//!
//! No cluster: kills and control-plane faults are the cluster tests' (operator/tests/e2e/).
//! Bounded by default (`make test`); `make faults` (COURIER_FAULTS_LONG=1) runs 40,000 records
//! per fault and a 60 s outage, and COURIER_FAULTS_DOC=1 writes the table to docs/faults.md.

use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::send_support::*;
use bytes::Bytes;
use courier_e2e::sim::{BurstWindow, InjectStatus, Latency, RateLimit, SimConfig, Simulator, busiest_window};
use courier_worker::limiter::Rate;
use courier_worker::record::{Decoded, FileRef, Malformed};
use courier_worker::send::{Jitter, RetryConfig, SendConfig};

const LIMIT: u32 = 1_000;
const BURST: u32 = 20;
const IN_FLIGHT: usize = 64;
const FILE: &str = "file:///data/faults.jsonl";

/// What a run varies: the partner's behaviour, and something done to it mid-run.
struct Fault {
    name: &'static str,
    /// The partner, on top of the strict limit.
    partner: fn(SimConfig) -> SimConfig,
    /// Applied to the running simulator after `at` of the run.
    during: Option<(Duration, During)>,
    /// Every `n`-th record is malformed (bad data), 0 for none.
    malformed_every: u64,
    /// The partner's limit is below the worker's rate on purpose: its bucket refuses some.
    over_limit: bool,
}

#[derive(Clone, Copy)]
enum During {
    /// The next `n` requests answered 429 with `Retry-After: s`.
    Throttle(u64, u64),
    /// Every request answered 503 for this long, from now.
    Down(Duration),
}

fn strict(config: SimConfig) -> SimConfig {
    SimConfig { rate_limit: Some(RateLimit { rate: f64::from(LIMIT), burst: BURST }), seed: Some(16), ..config }
}

fn faults(long: bool) -> Vec<Fault> {
    let down = if long { Duration::from_secs(60) } else { Duration::from_secs(5) };
    // Requests answered 429 with Retry-After: 1 in a row. Each is honoured (a one-second pause
    // of the worker, then one probe), so the storm costs about one second per 429 that
    // arrives while the worker probes.
    let throttled = if long { 300 } else { 60 };
    let plain = |name, partner| Fault { name, partner, during: None, malformed_every: 0, over_limit: false };
    vec![
        plain("none (baseline)", |c| c),
        plain("5xx bursts: 503 for 300 ms every 2 s", |c| SimConfig {
            burst_window: Some(BurstWindow { every_ms: 2_000, duration_ms: 300 }),
            ..c
        }),
        plain("503 on 2 % of requests", |c| SimConfig { error_rate: 0.02, ..c }),
        Fault {
            during: Some((Duration::from_millis(500), During::Throttle(throttled, 1))),
            ..plain(
                if long { "429 storm: 300 in a row, Retry-After: 1" } else { "429 storm: 60 in a row, Retry-After: 1" },
                |c| c,
            )
        },
        plain("429 on 5 % of requests, no Retry-After", |c| SimConfig {
            inject_status: Some(InjectStatus { fraction: 0.05, status: 429, body: "{}".to_owned() }),
            ..c
        }),
        Fault {
            over_limit: true,
            ..plain("RateLimit-* headers: the partner allows 80 % of our rate", |c| SimConfig {
                rate_limit: Some(RateLimit { rate: f64::from(LIMIT) * 0.8, burst: BURST }),
                ..c
            })
        },
        plain("black-hole: 0.5 % accepted, never answered (1 s timeout)", |c| SimConfig { blackhole_rate: 0.005, ..c }),
        plain("connection resets on 1 % of requests", |c| SimConfig { reset_rate: 0.01, ..c }),
        plain("slow answers: log-normal p50 2 ms, p99 1.2 s (1 s timeout)", |c| SimConfig {
            latency: Latency::LogNormal { p50_ms: 2.0, p99_ms: 1_200.0 },
            ..c
        }),
        Fault {
            during: Some((Duration::from_millis(500), During::Down(down))),
            ..plain(if long { "partner down for 60 s" } else { "partner down for 5 s" }, |c| c)
        },
        Fault { malformed_every: 97, ..plain("bad data: every 97th record malformed", |c| c) },
    ]
}

/// `n` records of ~256 bytes, every `malformed_every`-th one malformed.
fn package_records(n: u64, malformed_every: u64) -> Vec<Result<Decoded, Infallible>> {
    let file = FileRef { url: Arc::from(FILE) };
    records(FILE, n)
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let i = i as u64;
            if malformed_every == 0 || i % malformed_every != malformed_every - 1 {
                return r;
            }
            Ok(Err(Malformed {
                file: file.clone(),
                offset: i * 300,
                size: 12,
                raw: Bytes::from_static(b"{\"id\": 12, \"na"),
                reason: "EOF while parsing an object at line 1 column 14".to_owned(),
            }))
        })
        .collect()
}

/// One row of the table.
struct Figures {
    fault: &'static str,
    records: u64,
    sent: u64,
    dead_lettered: u64,
    lost: u64,
    duplicates: u64,
    too_many: u64,
    busiest_second: usize,
    seconds: f64,
}

async fn run(fault: &Fault, n: u64) -> Figures {
    let sim = Simulator::start("127.0.0.1:0", (fault.partner)(strict(SimConfig::default()))).await.expect("simulator");
    let retry = RetryConfig {
        max_attempts: 5,
        initial: Duration::from_millis(50),
        max: Duration::from_secs(2),
        jitter: Jitter::Full,
        ..RetryConfig::default()
    };
    let config =
        SendConfig { max_in_flight: IN_FLIGHT, timeout: Duration::from_secs(1), retry, ..SendConfig::default() };
    let package = "faults";
    let delivery = sender(&sim.url(), package, config, Some(Rate::new(u64::from(LIMIT), 1)), Arc::default());
    let started = Instant::now();
    let injector = fault.during.map(|(at, during)| (at, during, (fault.partner)(strict(SimConfig::default()))));
    let records = package_records(n, fault.malformed_every);
    let lease = delivery.start(records);
    if let Some((at, during, base)) = injector {
        tokio::time::sleep(at).await;
        match during {
            During::Throttle(count, secs) => sim.throttle_next(count, secs),
            During::Down(long) => {
                let window = BurstWindow { every_ms: 24 * 3_600_000, duration_ms: long.as_millis() as u64 };
                sim.set_config(SimConfig { burst_window: Some(window), ..base }).expect("partner down");
            }
        }
    }
    let run = delivery.finish(lease).await;
    let seconds = started.elapsed().as_secs_f64();

    let c = run.counters().clone();
    let stats = sim.stats();
    let ledger = sim.keys();
    assert!(run.progress.done, "{}: the shard completes", fault.name);
    assert_eq!(c.read, n, "{}: every record read", fault.name);
    assert_eq!(c.sent + c.dead_lettered, n, "{}: sent + deadLettered == records", fault.name);
    assert_eq!(run.dead_letters.len() as u64, c.dead_lettered, "{}: one dead letter each", fault.name);
    assert_eq!(c.sent, ledger.len() as u64, "{}: sent == distinct keys the partner accepted", fault.name);
    let dead: HashSet<u64> = run.dead_letters.iter().filter_map(|dl| dl["offset"].as_u64()).collect();
    let lost = expected_keys(package, FILE, n)
        .iter()
        .enumerate()
        .filter(|(i, key)| !dead.contains(&(*i as u64 * 300)) && !ledger.contains_key(*key))
        .count() as u64;
    for dl in &run.dead_letters {
        assert!(!dl["error"].as_str().unwrap_or_default().is_empty(), "{}: a dead letter says why: {dl}", fault.name);
    }
    if let Some(bad) = n.checked_div(fault.malformed_every) {
        assert_eq!(c.dead_lettered, bad, "{}: the malformed records, no more", fault.name);
    } else {
        assert_eq!(c.dead_lettered, 0, "{}: a partner fault dead-letters nothing: {:?}", fault.name, run.dead_letters);
    }
    let duplicates = stats.duplicates;
    let unanswered = stats.rejected.blackholed + stats.rejected.reset + c.retried;
    assert!(duplicates <= unanswered, "{}: {duplicates} duplicates, {unanswered} attempts retried", fault.name);
    let micros: Vec<u64> = sim.arrivals().iter().map(|a| a.at_unix_micros).collect();
    let busiest_second = busiest_window(&micros, Duration::from_secs(1));
    assert!(
        busiest_second <= (LIMIT + BURST) as usize,
        "{}: {busiest_second} requests in one sliding second, limit {LIMIT} + burst {BURST}",
        fault.name
    );
    // 429s the partner answered: its bucket's, the storm's and injected ones (the only status
    // this suite injects is 429).
    let too_many = stats.rejected.rate_limited + stats.rejected.injected_status;
    if !fault.over_limit {
        let storm = match fault.during {
            Some((_, During::Throttle(count, _))) => count,
            _ => 0,
        };
        assert_eq!(stats.rejected.rate_limited, storm, "{}: never refused by the partner's bucket", fault.name);
    }
    assert_eq!(lost, 0, "{}: records lost", fault.name);
    eprintln!(
        "{}: {n} records, sent {}, dead-lettered {}, lost {lost}, duplicates {duplicates}, 429s {}, busiest second \
         {busiest_second}, {seconds:.1} s ({stats:?})",
        fault.name, c.sent, c.dead_lettered, stats.rejected.rate_limited
    );
    sim.shutdown().await;
    Figures {
        fault: fault.name,
        records: n,
        sent: c.sent,
        dead_lettered: c.dead_lettered,
        lost,
        duplicates,
        too_many,
        busiest_second,
        seconds,
    }
}

fn table(rows: &[Figures], long: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| fault | records | sent | dead-lettered | lost | duplicates | 429s | max sliding second (limit {LIMIT} + \
         burst {BURST}) | seconds | ends |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let ends = if r.dead_lettered == 0 { "complete" } else { "complete, bad records dead-lettered" };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {ends} |",
            r.fault, r.records, r.sent, r.dead_lettered, r.lost, r.duplicates, r.too_many, r.busiest_second, r.seconds
        );
    }
    let _ = writeln!(out, "\n({} run: one run per fault)", if long { "long" } else { "bounded" });
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partner_and_bad_data_fault_loses_nothing_keeps_counters_exact_and_stays_under_the_limit() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let long = std::env::var_os("COURIER_FAULTS_LONG").is_some();
    let n = if long { 40_000 } else { 3_000 };
    let mut rows = Vec::new();
    for fault in faults(long) {
        rows.push(run(&fault, n).await);
    }
    let table = table(&rows, long);
    println!("{table}");
    if std::env::var_os("COURIER_FAULTS_DOC").is_some() {
        courier_e2e::metrics_doc::write_table("faults.md", "faults table", &table);
    }
}
