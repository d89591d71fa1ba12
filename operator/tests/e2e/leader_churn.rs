//! e2e against the local cluster: the leader is taken away again and again during one package —
//! twice SIGKILLed (the Lease must run out), twice stopped with SIGTERM (it releases the Lease)
//! — and the kubelet brings each killed replica back as a standby. Checked: never two leaders,
//! seen from outside (both replicas' `/healthz` polled every 50 ms) and from the workers (the
//! terms they see only grow, and none answers from an older term); nothing lost; counters exact;
//! and no record is sent twice, since a leader change re-sends nothing by itself.
//! Ignored by a plain `cargo test`; `make test` runs it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::support::*;
use courier_e2e::sim::{RateLimit, SimConfig};

const LIMIT: u32 = 500;
const RECORDS: (usize, usize) = (8, 4_000);
const LEADER_CHANGES: usize = 4;
/// Time a new leader is left to lead before it is taken away.
const TENURE: Duration = Duration::from_secs(4);

/// The terms a worker's log says it saw, in order, and how many answers came from an older term.
fn terms_seen(log: &str) -> (Vec<u64>, usize) {
    let mut terms = Vec::new();
    let mut older = 0;
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let fields = v.get("fields").unwrap_or(&v);
        let message = fields.get("message").and_then(|m| m.as_str()).unwrap_or_default();
        if message == "a new coordinator term answers" {
            terms.extend(fields.get("term").and_then(serde_json::Value::as_u64));
        } else if message == "an answer from an older coordinator term" {
            older += 1;
        }
    }
    (terms, older)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn the_leader_taken_away_four_times_never_leaves_two_leaders_and_resends_nothing() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("op-leaders");
    let client = cluster.client().await;
    let mut replicas = Operator::start_restarting_pair_with(&cluster, &ns, &["--shard-target-bytes=262144"]);
    let addrs: Vec<String> = replicas.iter().map(Operator::health_addr).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let both = Arc::new(AtomicU64::new(0));
    let watcher = watch_leaders(addrs, stop.clone(), both.clone());

    let sim = simulator(SimConfig {
        rate_limit: Some(RateLimit { rate: f64::from(LIMIT), burst: 50 }),
        ..SimConfig::default()
    })
    .await;
    let data = Records::new("op-leaders").await;
    let ids = data.write("", RECORDS.0, RECORDS.1, "l").await;
    let pattern = data.pattern("");
    let rate_limit = format!("{{ requestsPerSecond: {LIMIT}, burst: 50 }}");
    let workers = "{ min: 2, max: 2, maxInFlightPerWorker: 32, cooldownSeconds: 5 }";
    apply_yaml(&client, &ns, &destination_yaml_with("partner", &sim.url(), &rate_limit, workers, "")).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;
    eventually(Duration::from_secs(60), "the first accepted request", || async {
        (sim.stats().accepted > 0).then_some(())
    })
    .await;

    let mut taken = Vec::new();
    for change in 0..LEADER_CHANGES {
        let leader = eventually(Duration::from_secs(60), "a leader", || async {
            replicas.iter().position(|r| r.health() == "ok (leader)")
        })
        .await;
        tokio::time::sleep(TENURE).await;
        if package_condition(&client, &ns, "p", "Complete").await.is_some_and(|(s, _)| s == "True") {
            break;
        }
        if change % 2 == 0 {
            replicas[leader].kill();
        } else {
            replicas[leader].stop(5);
        }
        taken.push(replicas[leader].pod.clone());
    }

    let wait_on = eventually(Duration::from_secs(60), "a leader", || async {
        replicas.iter().position(|r| r.health() == "ok (leader)")
    })
    .await;
    wait_condition(&cluster, &client, &ns, "p", "Complete", &replicas[wait_on]).await;
    stop.store(true, Ordering::Relaxed);
    let polls = watcher.join().expect("the leader watcher");

    let expected = ids.len() as i64;
    let mut status = package(&client, &ns, "p").await.status.expect("status");
    for _ in 0..40 {
        if status.progress.records.sent + status.progress.records.dead_lettered == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        status = package(&client, &ns, "p").await.status.expect("status");
    }
    let r = status.progress.records.clone();
    let (missing, repeated) = missing_and_repeated(&sim, &ids);
    let duplicates: u32 = repeated.values().map(|n| n - 1).sum();

    let mut worker_terms = Vec::new();
    let mut older_answers = 0;
    for pod in worker_pods(&cluster, &ns, "partner") {
        let (terms, older) = terms_seen(&courier_e2e::pods::logs(&cluster, &ns, &pod, "worker", 100_000, false));
        assert!(terms.windows(2).all(|w| w[0] < w[1]), "{pod} saw terms out of order: {terms:?}");
        worker_terms.push((pod, terms));
        older_answers += older;
    }
    eprintln!(
        "leader churn: {} leaders taken away ({taken:?}), two leaders in {} of {polls} polls, workers' terms {worker_terms:?}, \
         answers from an older term {older_answers}, records {expected}, lost {}, duplicates {duplicates}, \
         status read {} sent {} resent {} deadLettered {}, 429 {}",
        taken.len(),
        both.load(Ordering::Relaxed),
        missing.len(),
        r.read,
        r.sent,
        r.resent,
        r.dead_lettered,
        sim.stats().rejected.rate_limited,
    );
    assert!(taken.len() >= 3, "the package outlived at least three leaders: {taken:?}");
    assert_eq!(both.load(Ordering::Relaxed), 0, "two replicas said they lead at the same instant");
    assert_eq!(older_answers, 0, "a worker got an answer from an older term after a newer one");
    assert!(
        worker_terms.iter().any(|(_, t)| t.len() > taken.len()),
        "a worker saw every term (first one included): {worker_terms:?}"
    );
    assert!(missing.is_empty(), "lost {} records, e.g. {:?}", missing.len(), missing.first());
    assert_eq!(r.read, r.sent + r.dead_lettered, "read == sent + deadLettered: {r:?}");
    assert_eq!(r.sent + r.dead_lettered, expected, "each record counted exactly once: {r:?}");
    assert_eq!(duplicates, 0, "a leader change re-sent records: {repeated:?}");
    assert_eq!(r.resent, 0, "nothing counted as re-sent: {r:?}");
}
