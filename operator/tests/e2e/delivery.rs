//! e2e against the local cluster: whole deliveries through worker pods on the real node,
//! to the partner simulator on the node IP. Ignored by a plain `cargo test`; `make test` runs it.

use std::time::Duration;

use crate::support::*;
use courier_e2e::sim::SimConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_package_is_delivered_by_worker_pods_exactly_once_and_reaches_complete() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("op-deliver");
    let client = cluster.client().await;
    let mut operator = Operator::start(&cluster, &ns);
    let sim = simulator(SimConfig::default()).await;
    let data = Records::new("op-deliver").await;
    let ids = data.write("", 3, 200, "r").await;
    let pattern = data.pattern("");

    apply_yaml(&client, &ns, &destination_yaml("partner", &sim.url(), 300, "")).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;

    eventually(Duration::from_secs(60), "worker pods", || async {
        let pods = worker_pods(&cluster, &ns, "partner");
        (!pods.is_empty()).then_some(pods)
    })
    .await;
    wait_condition(&cluster, &client, &ns, "p", "Complete", &operator).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_rate_limit_change_mid_delivery_shows_in_the_partners_per_second_series_within_two_seconds() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let destination = |url: &str| destination_yaml("partner", url, 100, "");
    let g = start_ground("op-rate", SimConfig::default(), destination, (4, 1000)).await;
    let Ground { cluster, ns, client, operator, sim, ids, .. } = &g;
    g.apply_package("p", "").await;
    // Deliver at 100/s for a while, then raise the limit to 400/s.
    eventually(Duration::from_secs(60), "delivery under way", || async { (sim.stats().accepted >= 300).then_some(()) })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let changed_at = now_secs();
    apply_yaml(client, ns, &destination_yaml("partner", &sim.url(), 400, "")).await;
    tokio::time::sleep(Duration::from_secs(6)).await;

    let before = accepted_between(sim, changed_at - 3, changed_at);
    // Whole seconds starting at least 2 s after the change.
    let after = accepted_between(sim, changed_at + 3, changed_at + 6);
    eprintln!("per-second accepted before the change {before:?}, after {after:?}");
    assert!(before.iter().all(|n| *n <= 115), "never above the old limit (100/s + burst): {before:?}");
    assert!(before.iter().all(|n| *n >= 60), "delivering near the old limit: {before:?}");
    assert!(!after.is_empty() && after.iter().all(|n| *n >= 250), "the new limit in force within 2 s: {after:?}");
    assert!(after.iter().all(|n| *n <= 420), "never above the new limit: {after:?}");

    wait_condition(cluster, client, ns, "p", "Complete", operator).await;
    assert_exactly_once(sim, ids);
    teardown(cluster, ns);
}
