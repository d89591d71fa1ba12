//! e2e against the local cluster: twenty worker pods killed during one package. A strict partner
//! (500 requests/s, a bucket of 20, answering 429 past it), 24,000 records from MiniDFS, a
//! Destination of two workers (32 in flight each) under two elected operators. Worker pods are
//! force-deleted at random moments (seeded, 1–3 s apart), three times two at once, while the
//! Destination is scaled up to four workers and back down to two — so kills land on pods
//! starting and on pods draining too.
//!
//! Checked: nothing lost (the simulator's key ledger), counters exact (`read == sent +
//! deadLettered == records`), nothing over the limit beyond a few 429s of start-up jitter plus
//! twice what a paced control pod on the same path draws at half the rate, duplicates at most
//! what each killed worker had in flight plus one second of the limit (its acknowledgements
//! since its last heartbeat), the package Complete. Prints a figures table;
//! COURIER_FAULTS_DOC=1 writes it into docs/faults.md. Ignored by a plain `cargo test`;
//! `make test` runs it.

use std::time::{Duration, Instant};

use crate::support::*;
use courier_e2e::sim::{Latency, RateLimit, SimConfig};

use crate::support::suite::{BURST, IN_FLIGHT, LIMIT, PACED_RATE, STARTUP_JITTER};

const RECORDS: (usize, usize) = (6, 4_000);
/// Pods to kill in all.
const KILLS: usize = 20;
/// Kill events at which two pods go at once.
const DOUBLE_AT: [usize; 3] = [3, 9, 14];
/// Kill events after which the Destination is scaled up to four workers, and back down to two.
const SCALE_UP_AT: usize = 5;
const SCALE_DOWN_AT: usize = 11;
const PACED_SECONDS: u32 = 100;

fn strict_partner() -> SimConfig {
    SimConfig {
        rate_limit: Some(RateLimit { rate: f64::from(LIMIT), burst: BURST }),
        latency: Latency::Fixed { ms: 5.0 },
        seed: Some(20),
        ..SimConfig::default()
    }
}

fn destination(url: &str, workers: (u32, u32)) -> String {
    let rate_limit = format!("{{ requestsPerSecond: {LIMIT}, burst: {BURST} }}");
    let workers =
        format!("{{ min: {}, max: {}, maxInFlightPerWorker: {IN_FLIGHT}, cooldownSeconds: 5 }}", workers.0, workers.1);
    destination_yaml_with("partner", url, &rate_limit, &workers, "")
}

/// A small deterministic generator (xorshift), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn twenty_worker_kills_two_at_once_and_during_scaling_lose_nothing_and_stay_under_the_limit() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("wk-kills");
    let client = cluster.client().await;
    let replicas = Operator::start_pair_with(&cluster, &ns, &["--shard-target-bytes=262144"]);
    let worker_logs =
        courier_e2e::pods::LogKeeper::start(&cluster, &ns, "courier.dev/destination=partner", "worker").await;
    let sim = simulator(strict_partner()).await;
    let control = control_beside(&sim, paced_control(strict_partner(), LIMIT, BURST, PACED_RATE));
    let data = Records::new("wk-kills").await;
    let ids = data.write("", RECORDS.0, RECORDS.1, "k").await;
    apply_yaml(&client, &ns, &destination(&sim.url(), (2, 2))).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &data.pattern(""), "")).await;
    apply_yaml(&client, &ns, &paced_pod(&control.url(), PACED_RATE, PACED_SECONDS)).await;
    let started = Instant::now();
    eventually(Duration::from_secs(90), "the first accepted request", || async {
        (sim.stats().accepted > 0).then_some(())
    })
    .await;

    let seed = std::env::var("COURIER_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_c0de_u64);
    let mut rng = Rng(seed);
    let mut killed: Vec<String> = Vec::new();
    let mut event = 0;
    while killed.len() < KILLS {
        tokio::time::sleep(Duration::from_millis(1_000 + rng.below(2_000))).await;
        let mut pods = worker_pods(&cluster, &ns, "partner");
        pods.retain(|p| !killed.contains(p));
        let at_once = if DOUBLE_AT.contains(&event) { 2 } else { 1 };
        let mut victims = Vec::new();
        for _ in 0..at_once.min(pods.len()).min(KILLS - killed.len()) {
            victims.push(pods.remove(rng.below(pods.len() as u64) as usize));
        }
        if !victims.is_empty() {
            let mut args = vec!["-n", ns.as_str(), "delete", "--force", "--grace-period=0", "--wait=false"];
            args.extend(victims.iter().map(String::as_str));
            cluster.kubectl_ok(&args, None);
            eprintln!(
                "{:5.1}s event {event}: force-deleted {} ({} accepted)",
                started.elapsed().as_secs_f64(),
                victims.join(", "),
                sim.stats().accepted
            );
            killed.extend(victims);
        }
        if event == SCALE_UP_AT {
            apply_yaml(&client, &ns, &destination(&sim.url(), (4, 4))).await;
            eprintln!("{:5.1}s scaled up to 4 workers", started.elapsed().as_secs_f64());
        }
        if event == SCALE_DOWN_AT {
            apply_yaml(&client, &ns, &destination(&sim.url(), (2, 2))).await;
            eprintln!("{:5.1}s scaled down to 2 workers", started.elapsed().as_secs_f64());
        }
        event += 1;
        assert!(event < 200, "no worker pods to kill for too long");
    }
    let accepted_at_last_kill = sim.stats().accepted;
    let leader = eventually(Duration::from_secs(30), "a leader", || async {
        replicas.iter().position(|r| r.health() == "ok (leader)")
    })
    .await;
    wait_condition(&cluster, &client, &ns, "p", "Complete", &replicas[leader]).await;
    let seconds = started.elapsed().as_secs_f64();

    let what =
        format!("{KILLS} worker pods force-deleted 1–3 s apart, three times two at once, while scaling 2 → 4 → 2");
    let figures = Figures::measure(&what, &client, &ns, "p", &ids, &sim, &control, seconds).await;
    let arrivals = sim.arrivals();
    let base = arrivals.first().map_or(0, |a| a.at_unix_micros);
    for line in log_excerpt(&worker_logs.dump(), &rejection_runs(&arrivals, base), base) {
        eprintln!("{line}");
    }
    let table = figures_table(std::slice::from_ref(&figures), LIMIT, BURST, "half the rate");
    println!("{table}");
    eprintln!(
        "worker kills figures: seed {seed:#x}, {} kills, {accepted_at_last_kill} accepted at the last kill, resent {}",
        killed.len(),
        package(&client, &ns, "p").await.status.map_or(0, |s| s.progress.records.resent)
    );
    if std::env::var_os("COURIER_FAULTS_DOC").is_some() {
        courier_e2e::metrics_doc::write_table("faults.md", "worker kills table", &table);
    }

    // Each killed worker may re-send what it had in flight and the acknowledgements since its
    // last heartbeat (at most one second of the limit).
    figures.check(STARTUP_JITTER, 2, (IN_FLIGHT + u64::from(LIMIT)) * killed.len() as u64);
    teardown(&cluster, &ns);
}
