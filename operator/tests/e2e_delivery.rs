//! e2e against the local cluster: whole deliveries through worker pods run by the node agent,
//! to the partner simulator on 127.0.0.1. Skipped without COURIER_E2E.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use courier_api::DeliveryPackage;
use courier_e2e::sim::{SimConfig, Simulator};
use kube::Api;
use support::*;

const DELIVERY: Duration = Duration::from_secs(180);

async fn simulator(config: SimConfig) -> Simulator {
    Simulator::start("127.0.0.1:0", config).await.expect("start the partner simulator")
}

async fn package(client: &kube::Client, ns: &str, name: &str) -> DeliveryPackage {
    Api::<DeliveryPackage>::namespaced(client.clone(), ns).get(name).await.expect("get the package")
}

fn worker_pods(cluster: &courier_e2e::cluster::Cluster, ns: &str, dest: &str) -> Vec<String> {
    let out = cluster
        .kubectl_ok(&["-n", ns, "get", "pods", "-l", &format!("courier.dev/destination={dest}"), "-o", "name"], None);
    out.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_is_delivered_by_worker_pods_exactly_once_and_reaches_complete() {
    let Some((cluster, ns)) = setup("op-deliver") else { return };
    let client = cluster.client().await;
    let mut operator = Operator::start(&cluster, &ns);
    let sim = simulator(SimConfig::default()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let ids = write_records(data.path(), 3, 200, "r");
    let pattern = format!("{}/*.jsonl", data.path().display());

    apply_yaml(&client, &ns, &destination_yaml("partner", &sim.url(), 300, "")).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;

    eventually(Duration::from_secs(60), "worker pods", || async {
        let pods = worker_pods(&cluster, &ns, "partner");
        (!pods.is_empty()).then_some(pods)
    })
    .await;
    wait_complete(&cluster, &client, &ns, "p", &operator).await;
    assert!(operator.is_running());
    assert_exactly_once(&sim, &ids);

    // The final status write may trail the Complete condition by one debounce interval.
    let mut status = package(&client, &ns, "p").await.status.expect("status");
    for _ in 0..40 {
        if status.progress.records.sent == 600 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        status = package(&client, &ns, "p").await.status.expect("status");
    }
    let stats = sim.stats();
    eprintln!(
        "status records {:?}, simulator accepted {} duplicates {}",
        status.progress.records, stats.accepted, stats.duplicates
    );
    assert_eq!(
        status.progress.records.sent,
        i64::try_from(stats.accepted).expect("fits"),
        "status counters equal the simulator's"
    );
    assert_eq!(status.progress.records.dead_lettered, 0);
    assert_eq!(status.progress.percent, 100);
    assert_eq!(status.shards.completed, format!("0-{}", status.shards.total - 1));
    teardown(&cluster, &ns);
}

/// `kubectl wait --for=condition=Complete` on the package, with diagnostics when it fails.
async fn wait_complete(
    cluster: &courier_e2e::cluster::Cluster,
    client: &kube::Client,
    ns: &str,
    name: &str,
    operator: &Operator,
) {
    let timeout = format!("--timeout={}s", DELIVERY.as_secs());
    let out = cluster.kubectl(&["-n", ns, "wait", "--for=condition=Complete", &timeout, &format!("dp/{name}")], None);
    assert!(
        out.status.success(),
        "kubectl wait failed: {}\nstatus: {:?}\noperator log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        package(client, ns, name).await.status,
        operator.log_tail()
    );
}

/// Every id in `ids` was accepted by the simulator exactly once, and nothing else was.
fn assert_exactly_once(sim: &Simulator, ids: &[String]) {
    let keys = sim.keys();
    let accepted: BTreeSet<String> = keys.keys().cloned().collect();
    let expected: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(accepted.len(), expected.len(), "every record's key accepted");
    assert_eq!(accepted, expected, "exactly the records' keys");
    let repeated: Vec<_> = keys.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "keys accepted more than once: {repeated:?}");
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Accepted requests in each whole second from `from` (inclusive) to `to` (exclusive).
fn accepted_between(sim: &Simulator, from: u64, to: u64) -> Vec<u64> {
    let series = sim.stats().series;
    (from..to)
        .filter_map(|sec| {
            let i = usize::try_from(sec.checked_sub(series.start_unix_secs)?).ok()?;
            series.accepted.get(i).copied()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_change_mid_delivery_shows_in_the_partners_per_second_series_within_two_seconds() {
    let Some((cluster, ns)) = setup("op-rate") else { return };
    let client = cluster.client().await;
    let operator = Operator::start(&cluster, &ns);
    let sim = simulator(SimConfig::default()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let ids = write_records(data.path(), 4, 1000, "r");
    let pattern = format!("{}/*.jsonl", data.path().display());
    apply_yaml(&client, &ns, &destination_yaml("partner", &sim.url(), 100, "")).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;

    // Deliver at 100/s for a while, then raise the limit to 400/s.
    eventually(Duration::from_secs(60), "delivery under way", || async { (sim.stats().accepted >= 300).then_some(()) })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let changed_at = now_secs();
    apply_yaml(&client, &ns, &destination_yaml("partner", &sim.url(), 400, "")).await;
    tokio::time::sleep(Duration::from_secs(6)).await;

    let before = accepted_between(&sim, changed_at - 3, changed_at);
    // Whole seconds starting at least 2 s after the change.
    let after = accepted_between(&sim, changed_at + 3, changed_at + 6);
    eprintln!("per-second accepted before the change {before:?}, after {after:?}");
    assert!(before.iter().all(|n| *n <= 115), "never above the old limit (100/s + burst): {before:?}");
    assert!(before.iter().all(|n| *n >= 60), "delivering near the old limit: {before:?}");
    assert!(!after.is_empty() && after.iter().all(|n| *n >= 250), "the new limit in force within 2 s: {after:?}");
    assert!(after.iter().all(|n| *n <= 420), "never above the new limit: {after:?}");

    wait_complete(&cluster, &client, &ns, "p", &operator).await;
    assert_exactly_once(&sim, &ids);
    teardown(&cluster, &ns);
}
