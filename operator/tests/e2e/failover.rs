//! e2e against the local cluster: two elected operator replicas, the leader SIGKILLed in the
//! middle of a package, the standby takes the Lease over and the package still completes without
//! losing a record. Ignored by a plain `cargo test`; `make test` runs it.

use std::time::{Duration, Instant};

use crate::support::*;
use courier_e2e::sim::SimConfig;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

/// Records per second of the Destination.
const RATE: u32 = 200;
/// Worker pods at most (`destination_yaml` sets `workers.max: 2`).
const WORKERS: u64 = 2;
/// Default `workers.maxInFlightPerWorker`.
const IN_FLIGHT_PER_WORKER: u64 = 256;
/// The coordinator's lease TTL: a worker that cannot reach its coordinator keeps sending this
/// long before it holds new records.
const WORKER_LEASE_TTL_SECS: u64 = 15;
/// Checkpoints reach the package status at most this late (heartbeat 1 s + status interval 1 s).
const CHECKPOINT_LAG_SECS: u64 = 2;

const LEASE_NAME: &str = "courier-operator-leader";

async fn lease_holder(client: &kube::Client, ns: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns).get_opt(LEASE_NAME).await.ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

async fn is_complete(client: &kube::Client, ns: &str, name: &str) -> bool {
    package_condition(client, ns, name, "Complete").await.is_some_and(|(status, _)| status == "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn killing_the_leading_operator_mid_package_hands_over_to_the_standby_without_losing_a_record() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("op-failover");
    let client = cluster.client().await;
    let mut replicas = Operator::start_pair(&cluster, &ns);
    let first_leader = eventually(Duration::from_secs(60), "a leader", || async {
        let holder = lease_holder(&client, &ns).await?;
        replicas.iter().position(|r| r.holds(&holder) && r.health() == "ok (leader)")
    })
    .await;
    let standby = 1 - first_leader;
    eventually(Duration::from_secs(30), "the other replica to stand by", || async {
        (replicas[standby].health() == "ok (standby)").then_some(())
    })
    .await;

    let sim = simulator(SimConfig::default()).await;
    let data = Records::new("op-failover").await;
    let ids = data.write("", 3, 1000, "r").await;
    let pattern = data.pattern("");
    apply_yaml(&client, &ns, &destination_yaml("partner", &sim.url(), RATE, "")).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;
    let started = Instant::now();
    let worker_logs =
        courier_e2e::pods::LogKeeper::start(&cluster, &ns, "courier.dev/destination=partner", "worker").await;

    let sent_before = eventually(Duration::from_secs(90), "progress in status", || async {
        let sent = package(&client, &ns, "p").await.status?.progress.records.sent;
        (sent > 0 && !is_complete(&client, &ns, "p").await).then_some(sent)
    })
    .await;
    assert!(!is_complete(&client, &ns, "p").await, "the package is still under way when the leader dies");
    let accepted_before = sim.stats().accepted;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let template =
        |d: Deployment| serde_json::to_value(d.spec.map(|s| s.template)).expect("serialize the pod template");
    let workers_before = template(deployments.get("courier-worker-partner").await.expect("the worker Deployment"));

    replicas[first_leader].kill();
    let killed = Instant::now();
    eprintln!(
        "killed leader {} with {sent_before} sent in status, {accepted_before} accepted",
        replicas[first_leader].name
    );

    eventually(Duration::from_secs(60), "the standby to take the Lease over", || async {
        let holder = lease_holder(&client, &ns).await?;
        (replicas[standby].holds(&holder) && replicas[standby].health() == "ok (leader)").then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    let accepted_during_takeover = sim.stats().accepted - accepted_before;

    let new_leader = &replicas[standby];
    eventually(Duration::from_secs(120), "the package to complete after the takeover", || async {
        assert_eq!(new_leader.health(), "ok (leader)", "the new leader keeps leading:\n{}", new_leader.log_tail());
        is_complete(&client, &ns, "p").await.then_some(())
    })
    .await;
    let after_kill = killed.elapsed();

    // Counters of the final status write may trail the Complete condition by one interval.
    let records = ids.len() as i64;
    let mut status = package(&client, &ns, "p").await.status.expect("status");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = &status.progress.records;
        if r.read == r.sent + r.dead_lettered && r.sent == records {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "final counters: {:?}, shards {:?}\nnew leader log:\n{}",
            status.progress.records,
            status.shards,
            new_leader.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        status = package(&client, &ns, "p").await.status.expect("status");
    }

    let keys = sim.keys();
    let missing: Vec<&String> = ids.iter().filter(|id| !keys.contains_key(*id)).collect();
    let repeated_keys = keys.values().filter(|n| **n > 1).count();
    let extra_requests: u64 = keys.values().map(|n| u64::from(n.saturating_sub(1))).sum();
    let bound = IN_FLIGHT_PER_WORKER * WORKERS + u64::from(RATE) * (WORKER_LEASE_TTL_SECS + CHECKPOINT_LAG_SECS);
    eprintln!(
        "takeover {:.1} s after the kill ({accepted_during_takeover} accepted meanwhile), Complete {:.1} s after the kill, {:.1} s in all; \
         status records {:?}; simulator accepted {} for {} keys, {repeated_keys} keys repeated, \
         {extra_requests} duplicate requests (bound {bound})",
        takeover.as_secs_f64(),
        after_kill.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        status.progress.records,
        sim.stats().accepted,
        keys.len(),
    );
    if extra_requests > 0 {
        // Evidence for the record: which keys, and what the new leader and the workers said.
        let mut repeated: Vec<&String> = keys.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k).collect();
        repeated.sort();
        eprintln!("repeated keys (first and last): {:?} .. {:?}", repeated.first(), repeated.last());
        eprintln!(
            "new leader log:\n{}",
            courier_e2e::pods::logs(&cluster, &ns, &new_leader.pod, "operator", 400, false)
        );
        eprintln!("worker logs:\n{}", worker_logs.dump());
    }
    assert!(missing.is_empty(), "keys lost: {} (first {:?})", missing.len(), missing.first());
    assert_eq!(status.progress.records.dead_lettered, 0, "nothing dead-lettered");
    assert_eq!(status.progress.records.sent, records, "sent counts every record once: {:?}", status.progress.records);
    assert_eq!(status.progress.records.resent, 0, "a leader change re-sends nothing: {:?}", status.progress.records);
    assert_eq!(extra_requests, 0, "a leader change alone sends no record twice (bound for a worker kill: {bound})");
    assert_eq!(status.progress.percent, 100);
    assert!(accepted_during_takeover > 0, "workers kept sending while no coordinator led");
    let workers_after = template(deployments.get("courier-worker-partner").await.expect("the worker Deployment"));
    assert_eq!(workers_after, workers_before, "the new leader kept the worker pod template (no rolling restart)");
    teardown(&cluster, &ns);
}
