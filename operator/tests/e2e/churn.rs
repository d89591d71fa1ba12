//! e2e against the local cluster: the promise under ordinary Kubernetes churn. A strict partner
//! (1,000 requests/s, a bucket of 20, a 503 every ~97th request, 5 ms latency), one package of
//! 40,000 records, a Destination with 2–4 workers of 64 in flight each, two elected operator
//! replicas; during the package six worker pods are force-deleted 4 s apart and the leading
//! operator is killed once. Checked: nothing lost, counters exact, (almost) nothing over the
//! limit, the delivered rate, duplicates per kill, and never two leaders at once.
//! Ignored by a plain `cargo test`; `make test` runs it.
//!
//! Figures of each run are printed in one line (`churn figures:`) for docs/reliability.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::support::*;
use courier_e2e::sim::{Latency, RateLimit, SimConfig, busiest_window};

const LIMIT: u32 = 1_000;
const BURST: u32 = 20;
const RECORDS: (usize, usize) = (8, 5_000);
const IN_FLIGHT: u64 = 64;
const WORKER_KILLS: usize = 6;
const KILL_SPACING: Duration = Duration::from_secs(4);
/// 429s allowed in all: start-up jitter of a few requests.
const STARTUP_JITTER: u64 = 5;
/// The control sender (`paced_pod`) at a quarter of the limit against its own partner, all
/// through the package.
const PACED_RATE: u32 = LIMIT / 4;
const PACED_SECONDS: u32 = 40;

fn strict_partner() -> SimConfig {
    SimConfig {
        rate_limit: Some(RateLimit { rate: f64::from(LIMIT), burst: BURST }),
        latency: Latency::Fixed { ms: 5.0 },
        error_rate: 1.0 / 97.0,
        seed: Some(97),
        ..SimConfig::default()
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn worker_kills_and_a_leader_change_lose_nothing_stay_under_the_limit_and_keep_the_rate() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("op-churn");
    let client = cluster.client().await;
    // Shards of ~256 KiB (about 4,000 records): work for several seconds per lease, as in
    // production, so workers keep sending while no operator leads.
    let extra = ["--shard-target-bytes=262144"];
    let mut replicas = Operator::start_pair_with(&cluster, &ns, &extra);
    let addrs: Vec<String> = replicas.iter().map(Operator::health_addr).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let both = Arc::new(AtomicU64::new(0));
    let watcher = watch_leaders(addrs.clone(), stop.clone(), both.clone());
    let leader = eventually(Duration::from_secs(60), "a leader", || async {
        replicas.iter().position(|r| r.health() == "ok (leader)")
    })
    .await;

    let operator_logs =
        courier_e2e::pods::LogKeeper::start(&cluster, &ns, "app.kubernetes.io/name=courier-operator", "operator").await;
    let worker_logs =
        courier_e2e::pods::LogKeeper::start(&cluster, &ns, "courier.dev/destination=partner", "worker").await;
    let sim = simulator(strict_partner()).await;
    let data = Records::new("op-churn").await;
    let ids = data.write("", RECORDS.0, RECORDS.1, "c").await;
    let pattern = data.pattern("");
    let rate_limit = format!("{{ requestsPerSecond: {LIMIT}, burst: {BURST} }}");
    let workers = format!("{{ min: 2, max: 4, maxInFlightPerWorker: {IN_FLIGHT}, cooldownSeconds: 5 }}");
    apply_yaml(&client, &ns, &destination_yaml_with("partner", &sim.url(), &rate_limit, &workers, "")).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;

    eventually(Duration::from_secs(60), "the first accepted request", || async {
        (sim.stats().accepted > 0).then_some(())
    })
    .await;
    let control = control_beside(&sim, paced_control(strict_partner(), LIMIT, BURST, PACED_RATE));
    apply_yaml(&client, &ns, &paced_pod(&control.url(), PACED_RATE, PACED_SECONDS)).await;
    let timeline = {
        let (client, ns, sim_url) = (client.clone(), ns.clone(), sim.url());
        let _ = sim_url;
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut lines = Vec::new();
            let started = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let d = kube::Api::<courier_api::Destination>::namespaced(client.clone(), &ns).get_opt("partner").await;
                let line = match d {
                    Ok(Some(d)) => {
                        let s = d.status.unwrap_or_default();
                        format!(
                            "{:5.1}s effective {:?} workers {}/{} throttled {:?}",
                            started.elapsed().as_secs_f64(),
                            s.effective_requests_per_second,
                            s.workers.ready,
                            s.workers.desired,
                            courier_api::conditions::find_condition(&s.conditions, "Throttled")
                                .map(|c| c.reason.clone())
                        )
                    }
                    _ => String::from("?"),
                };
                lines.push(line);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            lines
        })
    };
    let mut kills = Vec::new();
    let mut events: Vec<(String, u64)> = Vec::new();
    for k in 0..WORKER_KILLS {
        tokio::time::sleep(KILL_SPACING).await;
        if k == 2 {
            let name = replicas[leader].name.clone();
            replicas[leader].force_delete();
            events.push((format!("leader {name}"), now_micros()));
            eprintln!("force-deleted the leading operator {name} (SIGTERM, SIGKILL 2 s later)");
        }
        let pods = worker_pods(&cluster, &ns, "partner");
        let Some(victim) = pods.first() else { continue };
        cluster.kubectl_ok(&["-n", &ns, "delete", victim, "--force", "--grace-period=0", "--wait=false"], None);
        kills.push(victim.clone());
        events.push((victim.clone(), now_micros()));
        eprintln!("force-deleted {victim}");
    }

    let standby = 1 - leader;
    wait_condition(&cluster, &client, &ns, "p", "Complete", &replicas[standby]).await;
    stop.store(true, Ordering::Relaxed);
    let polls = watcher.join().expect("the leader watcher");
    for line in timeline.await.unwrap_or_default() {
        eprintln!("destination {line}");
    }

    // The final counters may trail the Complete condition by one status write.
    let expected = ids.len() as i64;
    let mut status = package(&client, &ns, "p").await.status.expect("status");
    for _ in 0..40 {
        let r = &status.progress.records;
        if r.sent + r.dead_lettered == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        status = package(&client, &ns, "p").await.status.expect("status");
    }
    let r = status.progress.records.clone();

    let keys = sim.keys();
    let missing = ids.iter().filter(|id| !keys.contains_key(*id)).count();
    let duplicates: u64 = keys.values().map(|n| u64::from(n.saturating_sub(1))).sum();
    let arrivals = sim.arrivals();
    let stats = sim.stats();
    let accepted: Vec<u64> = arrivals.iter().filter(|a| a.accepted).map(|a| a.at_unix_micros).collect();
    let all: Vec<u64> = arrivals.iter().map(|a| a.at_unix_micros).collect();
    let first = accepted.first().copied().unwrap_or(0);
    let last = accepted.last().copied().unwrap_or(0);
    let span = Duration::from_micros(last.saturating_sub(first)).as_secs_f64().max(1e-3);
    let rate = accepted.len() as f64 / span;
    let busiest = busiest_window(&all, Duration::from_secs(1));
    let base = all.first().copied().unwrap_or(0);
    let per_second = courier_e2e::sim::bins(&accepted, base, Duration::from_secs(1));
    let limited: Vec<u64> = arrivals.iter().filter(|a| a.rate_limited).map(|a| a.at_unix_micros).collect();
    let limited_per_second = courier_e2e::sim::bins(&limited, base, Duration::from_secs(1));
    eprintln!("accepted per second: {per_second:?}");
    eprintln!("429 per second: {limited_per_second:?}");
    let at = |micros: u64| micros.saturating_sub(base) as f64 / 1e6;
    for (what, t) in &events {
        eprintln!("event {:7.3}s {what}", at(*t));
    }
    // What the operators and workers logged around each 429 run and the leader change.
    let mut windows = rejection_runs(&arrivals, base);
    windows.extend(events.iter().filter(|(w, _)| w.starts_with("leader")).map(|(_, t)| (t - 200_000, t + 4_000_000)));
    let logs = format!("{}{}", operator_logs.dump(), worker_logs.dump());
    for line in log_excerpt(&logs, &windows, base) {
        eprintln!("{line}");
    }
    let per_kill_bound = IN_FLIGHT + u64::from(LIMIT);
    let control_stats = control.stats();
    let paced_429 = control_stats.rejected.rate_limited;
    let paced = control_stats.accepted + paced_429;
    eprintln!(
        "paced control (a pod at a quarter of the rate, at the same time): {paced_429} of {paced} requests answered 429"
    );
    eprintln!(
        "churn figures: records {expected}, lost {missing}, 429 {} (paced control at a quarter of the rate: {paced_429}), busiest second {busiest} requests (limit {LIMIT} + burst {BURST}), \
         delivered {rate:.0}/s = {:.1} % of the limit over {span:.1} s, duplicates {duplicates} for {} worker kills and 1 leader kill \
         (resent {}), status read {} sent {} deadLettered {}, two leaders in {} of {polls} polls",
        stats.rejected.rate_limited,
        100.0 * rate / f64::from(LIMIT),
        kills.len(),
        r.resent,
        r.read,
        r.sent,
        r.dead_lettered,
        both.load(Ordering::Relaxed),
    );

    assert_eq!(missing, 0, "every record reached the partner");
    assert_eq!(r.read, r.sent + r.dead_lettered, "read == sent + deadLettered: {r:?}");
    assert_eq!(r.sent + r.dead_lettered, expected, "each record counted exactly once: {r:?}");
    assert_eq!(both.load(Ordering::Relaxed), 0, "two replicas led at once");
    // The evenly paced sender's 429s on this machine at the same time, scaled to the limit,
    // are jitter of the machine (a stalled process sends a late clump), not of Courier.
    let machine_jitter = paced_429 * u64::from(LIMIT / PACED_RATE);
    assert!(
        stats.rejected.rate_limited <= STARTUP_JITTER + machine_jitter,
        "{} requests over the limit (429); the paced control drew {paced_429} at a quarter of the rate",
        stats.rejected.rate_limited
    );
    assert!(rate >= 0.9 * f64::from(LIMIT), "delivered {rate:.0}/s, below 90 % of {LIMIT}/s");
    assert!(
        duplicates <= per_kill_bound * kills.len() as u64,
        "{duplicates} duplicates for {} kills (bound {per_kill_bound} per kill)",
        kills.len()
    );
}
