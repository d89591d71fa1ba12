//! e2e against the local cluster: the partner's token is rotated mid-package. The Secret the
//! Destination's bearer auth names is changed and, at the same moment, the partner simulator
//! accepts only the new token. Workers read the token from the mounted Secret, which the
//! kubelet updates only after its sync period: meanwhile the partner answers 401. Those
//! refusals are no record failures: the workers hold new sends, re-read the mount, and go on
//! with the new token once it appears. The package completes with every record accepted
//! exactly once and none dead-lettered. Ignored by a plain `cargo test`; `make test` runs it.

use std::time::{Duration, Instant};

use crate::support::*;
use courier_e2e::sim::{Auth, SimConfig};

const RECORDS_PER_FILE: usize = 300;
const FILES: usize = 4;
const RPS: u32 = 20;

fn secret_yaml(token: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{ name: partner-token }}\nstringData: {{ token: {token} }}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_token_rotated_mid_package_loses_no_record_and_dead_letters_none() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("rotate");
    let client = cluster.client().await;
    let _operator = Operator::start(&cluster, &ns);
    let bearer = |token: &str| SimConfig { auth: Auth::Bearer { token: token.into() }, ..SimConfig::default() };
    let sim = simulator(bearer("token-before")).await;
    let data = Records::new("rotate").await;
    let ids = data.write("", FILES, RECORDS_PER_FILE, "r").await;
    let pattern = data.pattern("");
    apply_yaml(&client, &ns, &secret_yaml("token-before")).await;
    // One worker: the test is about one worker's wait, and a fixed grace well beyond the
    // kubelet's sync period.
    let extra = "  auth: { bearer: { secretRef: { name: partner-token, key: token } } }\n  \
                 retryPolicy: { authGraceSeconds: 300 }\n";
    let dest = destination_yaml_with(
        "partner",
        &sim.url(),
        &format!("{{ requestsPerSecond: {RPS} }}"),
        "{ min: 1, max: 1, cooldownSeconds: 5 }",
        extra,
    );
    apply_yaml(&client, &ns, &dest).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;

    eventually(Duration::from_secs(180), "delivery under way with the first token", || async {
        (sim.stats().accepted >= 150).then_some(())
    })
    .await;
    // The rotation: the Secret changes and the partner accepts only the new token from now on.
    apply_yaml(&client, &ns, &secret_yaml("token-after")).await;
    sim.set_config(bearer("token-after")).expect("switch the simulator's token");
    let switched = Instant::now();
    let accepted_at_switch = sim.stats().accepted;
    eprintln!("rotated after {accepted_at_switch} accepted");

    // While the partner refuses the old token the Destination says why (unless the kubelet
    // was quicker than the status write).
    let mut seen_condition = None;
    let deadline = switched + Duration::from_secs(300);
    let resumed = loop {
        if seen_condition.is_none()
            && let Some((status, reason)) = destination_condition(&client, &ns, "partner", "CredentialsRefused").await
            && status == "True"
        {
            seen_condition = Some(reason);
        }
        if sim.stats().accepted > accepted_at_switch + 20 {
            break switched.elapsed();
        }
        assert!(Instant::now() < deadline, "delivery did not resume with the new token within 300s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let refused = sim.stats().rejected.unauthorized;
    eprintln!(
        "resumed {:.0}s after the switch; {refused} requests refused; condition seen: {seen_condition:?}",
        resumed.as_secs_f64()
    );

    let out = cluster.kubectl(&["-n", &ns, "wait", "--for=condition=Complete", "--timeout=300s", "dp/p"], None);
    assert!(
        out.status.success(),
        "the package did not complete: {}\nstatus: {:?}",
        String::from_utf8_lossy(&out.stderr),
        package(&client, &ns, "p").await.status
    );
    assert_exactly_once(&sim, &ids);
    let status = package(&client, &ns, "p").await.status.expect("status");
    let records = &status.progress.records;
    eprintln!("package records: {records:?}");
    assert_eq!(records.dead_lettered, 0, "no record dead-lettered for 401");
    assert_eq!(records.failed, 0);
    assert_eq!(records.sent, i64::try_from(ids.len()).expect("count"));
    let stats = sim.stats();
    assert_eq!(stats.accepted, u64::try_from(ids.len()).expect("count"), "each record accepted once: {stats:?}");
    // The wait held sends: refusals are the attempts in flight at the switch plus a probe
    // now and then, not the rate limit times the kubelet's delay.
    assert!(refused >= 1, "the rotation was seen on the wire as 401s");
    let unheld = (resumed.as_secs_f64() * f64::from(RPS)) as u64;
    assert!(
        refused < 60 && refused < unheld.max(60),
        "{refused} refusals in {:.0}s: sends were not held",
        resumed.as_secs_f64()
    );
    if resumed > Duration::from_secs(20) {
        assert_eq!(seen_condition.as_deref(), Some("WaitingForRotatedSecret"), "the Destination said why it waited");
    }
    teardown(&cluster, &ns);
}
