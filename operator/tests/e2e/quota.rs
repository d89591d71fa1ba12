//! e2e against the local cluster: `rateLimit.requestsPerDay` shared by three worker pods.
//! With 30-second quota periods (`quotaWindowSeconds: 30`), 250 requests a period and 600
//! records, the partner receives exactly the quota in a period the records outlast, never more
//! in any period, and the rest waits for the next period (`Throttled`, `QuotaExhausted`).
//! Ignored by a plain `cargo test`; `make test` runs it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::*;
use courier_api::Destination;
use courier_e2e::sim::SimConfig;
use kube::Api;

const QUOTA: u64 = 250;
const WINDOW: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster (make test)"]
async fn three_workers_send_exactly_the_quota_per_period_and_the_rest_waits_for_the_next() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let rate_limit = format!(
        "{{ requestsPerSecond: 40, requestsPerDay: {QUOTA}, quotaWindowSeconds: {WINDOW}, quotaResetTimeZone: UTC }}"
    );
    let workers = "{ min: 3, max: 3, cooldownSeconds: 5 }";
    let destination = |url: &str| destination_yaml_with("partner", url, &rate_limit, workers, "");
    let ground = start_ground("op-quota", SimConfig::default(), destination, (6, 100)).await;
    let Ground { cluster, ns, client, operator, sim, ids, .. } = &ground;
    let destinations: Api<Destination> = Api::namespaced(client.clone(), ns);

    // Before any record: the API server kept the quota (a stale CRD would prune it) and the
    // operator shows the period with nothing used.
    let stored = destinations.get("partner").await.expect("the Destination");
    assert_eq!(
        stored.spec.rate_limit.requests_per_day,
        Some(QUOTA as i64),
        "the API server kept rateLimit.requestsPerDay"
    );
    let shown = eventually(Duration::from_secs(60), "status.quota before the package", || async {
        destinations.get_opt("partner").await.ok().flatten()?.status?.quota
    })
    .await;
    assert!(shown.limit == QUOTA as i64 && shown.used == 0, "nothing used before the package: {shown:?}");

    ground.apply_package("p", "").await;
    let started = now_secs();

    // While the quota is used up, the Destination says so and when it resets.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (message, quota) = loop {
        let status = destinations.get_opt("partner").await.ok().flatten().and_then(|d| d.status);
        let throttled = status
            .as_ref()
            .and_then(|s| courier_api::conditions::find_condition(&s.conditions, "Throttled"))
            .filter(|c| c.status == "True" && c.reason == "QuotaExhausted");
        if let (Some(c), Some(s)) = (throttled, status.as_ref()) {
            break (c.message.clone(), s.quota.clone());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Throttled=True QuotaExhausted within 120 s; accepted {}; Destination status {status:#?}\noperator log:\n{}",
            sim.stats().accepted,
            operator.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("Throttled: {message}; status.quota {quota:?}");
    let quota = quota.expect("status.quota while exhausted");
    assert_eq!((quota.limit, quota.remaining), (QUOTA as i64, 0));

    // The period's usage survives the operator: killed while the quota is used up, the
    // restarted one reads the period back from status and grants nothing more in it (the
    // per-period count below shows it).
    ground.kill_operator();
    eventually(Duration::from_secs(60), "the operator restarted and leading", || async {
        (courier_e2e::pods::restart_count(cluster, ns, &operator.pod, "operator") == 1
            && operator.health() == "ok (leader)")
            .then_some(())
    })
    .await;

    wait_condition(cluster, client, ns, "p", "Complete", operator).await;
    let finished = now_secs() + 1;
    let (missing, repeated) = missing_and_repeated(sim, ids);
    assert!(missing.is_empty() && repeated.is_empty(), "missing {}, repeated {}", missing.len(), repeated.len());

    // Accepted requests per quota period (periods are whole multiples of 30 s since midnight UTC).
    let first = started / WINDOW * WINDOW;
    let seconds = accepted_between(sim, first, finished);
    let mut periods: BTreeMap<u64, u64> = BTreeMap::new();
    for (i, n) in seconds.iter().enumerate() {
        *periods.entry((first + i as u64) / WINDOW * WINDOW).or_default() += n;
    }
    let stats = sim.stats();
    eprintln!("accepted per period {periods:?}; total {}, 429s {}", stats.accepted, stats.rejected.rate_limited);
    eprintln!("accepted per second from {first}: {seconds:?}");
    assert_eq!(periods.values().sum::<u64>(), ids.len() as u64, "every request is in the series");
    assert!(periods.values().all(|&n| n <= QUOTA), "never more than the quota in a period: {periods:?}");
    let full: Vec<u64> = periods.iter().filter(|(_, n)| **n == QUOTA).map(|(p, _)| *p).collect();
    assert!(!full.is_empty(), "a period the records outlast gets exactly the quota: {periods:?}");
    // The rest waited: a period used up its quota early and its last seconds saw nothing (the
    // first period may be used up only at its very end, when the delivery began late in it),
    // and the next period went on with the records left.
    let waited = full.iter().any(|p| accepted_between(sim, p + WINDOW - 5, p + WINDOW).iter().all(|&n| n == 0));
    assert!(waited, "in some period the records waited for the reset: {seconds:?}");
    assert!(periods.len() >= 3, "600 records at 250 a period take three periods: {periods:?}");
}
