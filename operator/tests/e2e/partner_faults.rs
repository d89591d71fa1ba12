//! e2e against the local cluster: a partner that answers 429 to everything. The package reports
//! the stall (`Progressing=False`, `PartnerThrottling`) after its `progressDeadlineSeconds`,
//! keeps its place, and completes with exact counters once the partner lets records through;
//! with `retryPolicy.maxRetrySeconds` the throttled records are dead-lettered instead.
//! Ignored by a plain `cargo test`; `make test` runs it with `--include-ignored`.

use std::time::Duration;

use crate::support::*;
use courier_e2e::sim::{InjectStatus, SimConfig};

const WAIT: Duration = Duration::from_secs(120);
const RECORDS: usize = 200;

fn always_429() -> SimConfig {
    SimConfig {
        inject_status: Some(InjectStatus { fraction: 1.0, status: 429, body: r#"{"error":"slow down"}"#.to_owned() }),
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_partner_answering_429_forever_is_reported_as_partner_throttling_and_the_package_resumes_after() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("op-throttling");
    let client = cluster.client().await;
    let _operator = Operator::start(&cluster, &ns);
    let sim = simulator(always_429()).await;
    let data = Records::new("op-throttling").await;
    data.write("", 1, RECORDS, "t").await;
    let pattern = data.pattern("");
    apply_yaml(&client, &ns, &destination_yaml("partner", &sim.url(), 50, "")).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "  progressDeadlineSeconds: 10\n")).await;

    let stalled = eventually(WAIT, "Progressing=False", || async {
        package_condition(&client, &ns, "p", "Progressing").await.filter(|(s, _)| s == "False")
    })
    .await;
    assert_eq!(stalled.1, "PartnerThrottling");
    assert!(sim.stats().rejected.injected_status > 0, "the partner was asked");
    assert!(package_condition(&client, &ns, "p", "Failed").await.is_none(), "a stall does not fail the package");
    let events =
        cluster.kubectl_ok(&["-n", &ns, "get", "events", "--field-selector", "reason=PartnerThrottling"], None);
    assert!(events.contains("PartnerThrottling"), "a warning Event: {events}");

    sim.set_config(SimConfig::default()).expect("the partner recovers");
    eventually(WAIT, "Complete=True", || async {
        package_condition(&client, &ns, "p", "Complete").await.filter(|(s, _)| s == "True")
    })
    .await;
    let records = package(&client, &ns, "p").await.status.unwrap_or_default().progress.records;
    let stats = sim.stats();
    assert_eq!(stats.unique_keys, RECORDS as u64, "nothing lost: {stats:?}");
    assert_eq!((records.read, records.sent, records.dead_lettered), (RECORDS as i64, RECORDS as i64, 0));
    teardown(&cluster, &ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn max_retry_seconds_dead_letters_records_a_partner_keeps_throttling() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("op-maxretry");
    let client = cluster.client().await;
    let _operator = Operator::start(&cluster, &ns);
    let sim = simulator(always_429()).await;
    let data = Records::new("op-maxretry").await;
    data.write("", 1, 20, "m").await;
    let pattern = data.pattern("");
    let retry = "  retryPolicy: { maxRetrySeconds: 3 }\n";
    apply_yaml(&client, &ns, &destination_yaml("partner", &sim.url(), 50, retry)).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;

    let done = eventually(WAIT, "Complete or Failed", || async {
        for type_ in ["Complete", "Failed"] {
            if let Some((s, reason)) = package_condition(&client, &ns, "p", type_).await
                && s == "True"
            {
                return Some((type_, reason));
            }
        }
        None
    })
    .await;
    let status = package(&client, &ns, "p").await.status.unwrap_or_default();
    let records = &status.progress.records;
    assert_eq!((records.read, records.sent, records.dead_lettered), (20, 0, 20), "ended {done:?}");
    let reasons: Vec<&str> = status.failure_reasons.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(reasons, ["429"], "{:?}", status.failure_reasons);
    teardown(&cluster, &ns);
}
