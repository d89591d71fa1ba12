//! e2e against the local cluster: suspend/resume, retries of failed records (also asked for
//! while an attempt runs), a worker killed mid-package, priorities and scale to zero. Ignored by a plain `cargo test`; `make test` runs it.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;
use courier_api::DeliveryPackage;
use courier_e2e::cluster::Cluster;
use courier_e2e::sim::{InjectStatus, SimConfig, Simulator};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

async fn start(
    prefix: &str,
    rps: u32,
    files: usize,
    per_file: usize,
    sim_config: SimConfig,
) -> (Cluster, String, kube::Client, Operator, Simulator, Records, Vec<String>) {
    let destination = |url: &str| destination_yaml("partner", url, rps, "");
    let g = start_ground(prefix, sim_config, destination, (files, per_file)).await;
    (g.cluster, g.ns, g.client, g.operator, g.sim, g.data, g.ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_suspended_package_stops_sending_and_completes_after_resume_without_losing_a_key() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns, client, operator, sim, data, ids) = start("op-suspend", 100, 2, 1000, SimConfig::default()).await;
    let pattern = data.pattern("");
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;
    eventually(Duration::from_secs(60), "delivery under way", || async { (sim.stats().accepted >= 300).then_some(()) })
        .await;

    patch_package(&client, &ns, "p", serde_json::json!({ "suspend": true })).await;
    wait_condition(&cluster, &client, &ns, "p", "Suspended", &operator).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let paused_at = sim.stats().accepted;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let paused_after = sim.stats().accepted;
    eprintln!("accepted while suspended: {paused_at} -> {paused_after}");
    assert_eq!(paused_after, paused_at, "nothing sent while suspended");
    assert!(paused_at < 2000, "suspended before the end: {paused_at}");
    let phase = package(&client, &ns, "p").await.status.and_then(|s| s.phase);
    assert_eq!(phase, Some(courier_api::package::PackagePhase::Suspended));

    patch_package(&client, &ns, "p", serde_json::json!({ "suspend": false })).await;
    wait_condition(&cluster, &client, &ns, "p", "Complete", &operator).await;
    let (missing, repeated) = missing_and_repeated(&sim, &ids);
    eprintln!("duplicates after suspend/resume: {}", repeated.len());
    assert!(missing.is_empty(), "keys lost: {missing:?}");
    assert!(repeated.len() <= 300, "duplicates bounded by one checkpoint interval: {}", repeated.len());
    teardown(&cluster, &ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_new_retry_nonce_with_failed_records_scope_resends_exactly_the_dead_lettered_records() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let inject = InjectStatus { fraction: 0.05, status: 400, body: "{\"error\":\"bad record\"}".into() };
    let config = SimConfig { inject_status: Some(inject), seed: Some(11), ..SimConfig::default() };
    let (cluster, ns, client, operator, sim, data, ids) = start("op-retry", 500, 2, 300, config).await;
    let pattern = data.pattern("");
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;
    wait_condition(&cluster, &client, &ns, "p", "Complete", &operator).await;
    let first = eventually(Duration::from_secs(20), "final counters", || async {
        let s = package(&client, &ns, "p").await.status?;
        (s.progress.records.sent + s.progress.records.dead_lettered == 600).then_some(s)
    })
    .await;
    let dead = first.progress.records.dead_lettered;
    assert!(dead > 0, "the simulator refused some records");
    let accepted_first: BTreeSet<String> = sim.keys().into_keys().collect();
    assert_eq!(i64::try_from(accepted_first.len()).expect("fits"), first.progress.records.sent);

    // The partner fixed its side: retry only what was refused.
    sim.set_config(SimConfig::default()).expect("reconfigure the simulator");
    let requests_before = sim.stats().accepted;
    patch_package(&client, &ns, "p", serde_json::json!({ "retryNonce": "fix-1", "retryScope": "FailedRecords" })).await;
    eventually(Duration::from_secs(60), "attempt 2 complete", || async {
        let s = package(&client, &ns, "p").await.status?;
        (s.attempt == 2 && s.phase == Some(courier_api::package::PackagePhase::Complete)).then_some(())
    })
    .await;
    let resent = sim.stats().accepted - requests_before;
    let (missing, repeated) = missing_and_repeated(&sim, &ids);
    eprintln!("dead-lettered {dead}, re-sent {resent}, duplicates {}", repeated.len());
    assert!(missing.is_empty(), "every record accepted after the retry: {} missing", missing.len());
    assert_eq!(i64::try_from(resent).expect("fits"), dead, "exactly the dead-lettered records re-sent");
    assert!(repeated.is_empty(), "no record sent twice: {}", repeated.len());
    let status = package(&client, &ns, "p").await.status.expect("status");
    assert_eq!(status.observed_retry_nonce.as_deref(), Some("fix-1"));
    teardown(&cluster, &ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_new_retry_nonce_while_the_attempt_runs_waits_for_it_to_finish_and_loses_nothing() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns, client, _operator, sim, data, ids) = start("op-nonce", 200, 2, 1000, SimConfig::default()).await;
    let pattern = data.pattern("");
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;
    eventually(Duration::from_secs(60), "delivery under way", || async { (sim.stats().accepted >= 300).then_some(()) })
        .await;
    // A retry of the failed records asked for halfway: started at once it would re-send what
    // attempt 1 dead-lettered so far (nothing) and never the records attempt 1 had not reached.
    patch_package(&client, &ns, "p", serde_json::json!({ "retryNonce": "early", "retryScope": "FailedRecords" })).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let running = package(&client, &ns, "p").await.status.expect("status");
    assert_eq!((running.attempt, running.observed_retry_nonce.as_deref()), (1, None), "attempt 1 goes on");
    // Attempt 1 completes with every record, then attempt 2 re-sends what it dead-lettered: none.
    let done = eventually(Duration::from_secs(90), "attempt 2 complete", || async {
        let s = package(&client, &ns, "p").await.status?;
        (s.attempt == 2 && s.phase == Some(courier_api::package::PackagePhase::Complete)).then_some(s)
    })
    .await;
    assert_eq!(done.observed_retry_nonce.as_deref(), Some("early"));
    let (missing, repeated) = missing_and_repeated(&sim, &ids);
    eprintln!("retry asked mid-attempt: {} missing, {} duplicates", missing.len(), repeated.len());
    assert!(missing.is_empty(), "keys lost: {} (first {:?})", missing.len(), missing.first());
    assert!(repeated.is_empty(), "no record sent twice: {}", repeated.len());
    teardown(&cluster, &ns);
}

/// Worker in-flight requests at most (`workers.maxInFlightPerWorker` default).
const IN_FLIGHT_PER_WORKER: u32 = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_worker_container_killed_mid_package_is_restarted_by_the_kubelet_and_loses_no_record() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns, client, operator, sim, data, ids) = start("op-kill", 200, 2, 1000, SimConfig::default()).await;
    let pattern = data.pattern("");
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;
    eventually(Duration::from_secs(60), "delivery under way", || async { (sim.stats().accepted >= 400).then_some(()) })
        .await;
    let pods = cluster.kubectl_ok(
        &[
            "-n",
            &ns,
            "get",
            "pods",
            "-l",
            "courier.dev/destination=partner",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
        None,
    );
    let pod = pods.split_whitespace().next().expect("a worker pod").to_owned();
    let pid = courier_e2e::pods::Node::new().kill_container(&ns, &pod, "worker");
    eprintln!("killed worker {pod} (pid {pid}) after {} accepted", sim.stats().accepted);

    // The kubelet restarts the container in the same pod (restartPolicy Always): the worker
    // comes back under the same name and resumes its shards from their checkpoints.
    eventually(Duration::from_secs(60), "the kubelet to restart the worker container", || async {
        let restarts = courier_e2e::pods::restart_count(&cluster, &ns, &pod, "worker");
        let ready =
            courier_e2e::pods::pod_field(&cluster, &ns, &pod, "{.status.conditions[?(@.type==\"Ready\")].status}");
        (restarts >= 1 && ready == "True").then_some(())
    })
    .await;
    let last = courier_e2e::pods::pod_field(
        &cluster,
        &ns,
        &pod,
        "{.status.containerStatuses[0].lastState.terminated.exitCode}",
    );
    assert_eq!(last, "137", "the previous container ended by SIGKILL");

    wait_condition(&cluster, &client, &ns, "p", "Complete", &operator).await;
    let (missing, repeated) = missing_and_repeated(&sim, &ids);
    let extra: u32 = repeated.values().map(|n| n - 1).sum();
    eprintln!("duplicate requests after the kill: {extra} ({} keys)", repeated.len());
    assert!(missing.is_empty(), "keys lost: {} (first {:?})", missing.len(), missing.first());
    assert!(
        extra <= IN_FLIGHT_PER_WORKER + 200 * 12,
        "re-sent at most the in-flight window and the acknowledgements not yet reported: {extra}"
    );
    teardown(&cluster, &ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_higher_priority_package_finishes_first_and_workers_scale_to_zero_after_cooldown() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns, client, operator, sim, data, ids) = start("op-prio", 200, 2, 600, SimConfig::default()).await;
    // Same files, two packages: keys would collide, so give the second package its own data.
    let high_ids = data.write("high", 2, 600, "h").await;
    let low = data.pattern("");
    let high = data.pattern("high");
    apply_yaml(&client, &ns, &package_yaml("low", "partner", "users", &low, "  priority: 1\n")).await;
    apply_yaml(&client, &ns, &package_yaml("high", "partner", "users", &high, "  priority: 10\n")).await;
    wait_condition(&cluster, &client, &ns, "high", "Complete", &operator).await;
    wait_condition(&cluster, &client, &ns, "low", "Complete", &operator).await;
    let done = |p: DeliveryPackage| p.status.and_then(|s| s.completion_time).expect("completionTime").0;
    let (high_done, low_done) = (done(package(&client, &ns, "high").await), done(package(&client, &ns, "low").await));
    eprintln!("high finished {high_done}, low finished {low_done}");
    assert!(high_done <= low_done, "priority 10 finished before priority 1");
    let all: Vec<String> = ids.iter().chain(high_ids.iter()).cloned().collect();
    let (missing, _) = missing_and_repeated(&sim, &all);
    assert!(missing.is_empty(), "keys lost: {}", missing.len());

    // No backlog: after cooldownSeconds (5) the worker Deployment goes to zero.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    eventually(Duration::from_secs(60), "replicas 0", || async {
        let d = deployments.get_opt("courier-worker-partner").await.ok()??;
        (d.spec?.replicas == Some(0)).then_some(())
    })
    .await;
    eventually(Duration::from_secs(60), "worker pods gone", || async {
        let out = cluster
            .kubectl_ok(&["-n", &ns, "get", "pods", "-l", "courier.dev/destination=partner", "-o", "name"], None);
        out.trim().is_empty().then_some(())
    })
    .await;
    teardown(&cluster, &ns);
}
