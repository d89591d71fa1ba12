//! e2e against the local cluster: what the operator reports when something a package or
//! Destination needs is missing. Ignored by a plain `cargo test`; `make test` runs it against the
//! local cluster (`--include-ignored`), and it fails when the cluster is unreachable.

use std::time::Duration;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_package_waits_for_a_missing_destination_and_proceeds_when_it_appears() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("op-wait");
    let client = cluster.client().await;
    let operator = Operator::start(&cluster, &ns);
    let data = Records::new("op-wait").await;
    data.write("", 1, 10, "w").await;
    let pattern = data.pattern("");

    // First the Destination exists but is suspended: the package waits for it.
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &destination_yaml("partner", "http://127.0.0.1:9/", 10, "  suspend: true\n")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;
    let waiting = eventually(WAIT, "Waiting=True", || async {
        package_condition(&client, &ns, "p", "Waiting").await.filter(|(s, _)| s == "True")
    })
    .await;
    assert_ne!(waiting.1, "DestinationNotFound", "the Destination exists");
    // Deleted, the package hears of it at once (the shared watch hands deletions to the package
    // controller; without them it would only look again after 5 min).
    cluster.kubectl_ok(&["-n", &ns, "delete", "destination", "partner", "--wait=true"], None);
    let waiting = eventually(WAIT, "Waiting=True DestinationNotFound", || async {
        package_condition(&client, &ns, "p", "Waiting").await.filter(|(s, r)| s == "True" && r == "DestinationNotFound")
    })
    .await;
    assert_eq!(waiting.1, "DestinationNotFound");
    assert!(package_condition(&client, &ns, "p", "Failed").await.is_none(), "waiting is not failing");

    // The partner URL is never called in this test: the destination just has to exist.
    apply_yaml(&client, &ns, &destination_yaml("partner", "http://127.0.0.1:9/", 10, "")).await;
    let planned = eventually(WAIT, "Waiting=False and Planned=True", || async {
        let waiting = package_condition(&client, &ns, "p", "Waiting").await?;
        let planned = package_condition(&client, &ns, "p", "Planned").await?;
        (waiting.0 == "False" && planned.0 == "True").then_some(planned)
    })
    .await;
    assert_eq!(planned.1, "Planned");

    let metrics = operator.metrics();
    assert!(metrics.contains("courier_operator_reconciles_total{controller=\"package\",result=\"ok\"}"), "{metrics}");
    assert!(metrics.contains("courier_operator_leader 1"), "{metrics}");
    teardown(&cluster, &ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_destination_naming_a_missing_secret_is_not_ready_with_secret_not_found() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("op-secret");
    let client = cluster.client().await;
    let operator = Operator::start(&cluster, &ns);
    let auth = "  auth: { bearer: { secretRef: { name: partner-token, key: token } } }\n";
    apply_yaml(&client, &ns, &destination_yaml("partner", "http://127.0.0.1:9/", 10, auth)).await;
    let ready = eventually(WAIT, "Ready=False", || async {
        destination_condition(&client, &ns, "partner", "Ready").await.filter(|(s, _)| s == "False")
    })
    .await;
    assert_eq!(ready.1, "SecretNotFound");
    let deployments = cluster.kubectl_ok(&["-n", &ns, "get", "deployments", "-o", "name"], None);
    assert!(deployments.trim().is_empty(), "no Deployment while a Secret is missing: {deployments}");

    // A Secret without the key: SecretKeyMissing; with it: Ready.
    apply_yaml(
        &client,
        &ns,
        "apiVersion: v1\nkind: Secret\nmetadata: { name: partner-token }\nstringData: { other: x }\n",
    )
    .await;
    eventually(WAIT, "SecretKeyMissing", || async {
        destination_condition(&client, &ns, "partner", "Ready").await.filter(|(_, r)| r == "SecretKeyMissing")
    })
    .await;
    apply_yaml(
        &client,
        &ns,
        "apiVersion: v1\nkind: Secret\nmetadata: { name: partner-token }\nstringData: { token: abc }\n",
    )
    .await;
    eventually(WAIT, "Ready=True", || async {
        destination_condition(&client, &ns, "partner", "Ready").await.filter(|(s, _)| s == "True")
    })
    .await;
    let deployments = cluster.kubectl_ok(&["-n", &ns, "get", "deployments", "-o", "name"], None);
    assert_eq!(deployments.trim(), "deployment.apps/courier-worker-partner");

    // Reconciled every 3 s, the Destination's objects are applied only when they change: none
    // for 10 s while nothing changes, and an edit by someone else is put back at once.
    let before = (operator_counter(&operator, APPLIES), operator_counter(&operator, RECONCILES));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = (operator_counter(&operator, APPLIES), operator_counter(&operator, RECONCILES));
    assert!(after.1 >= before.1 + 2, "reconciled meanwhile: {before:?} then {after:?}");
    assert_eq!(after.0, before.0, "nothing applied while nothing changed");
    let replicas = || {
        cluster
            .kubectl_ok(&["-n", &ns, "get", "deploy/courier-worker-partner", "-o", "jsonpath={.spec.replicas}"], None)
    };
    assert_eq!(replicas().trim(), "0", "no package, minimum 0 workers");
    cluster.kubectl_ok(&["-n", &ns, "scale", "deploy/courier-worker-partner", "--replicas=1"], None);
    eventually(WAIT, "the Deployment scaled back to 0", || async { (replicas().trim() == "0").then_some(()) }).await;
    let drifted = operator_counter(&operator, "courier_operator_applies_total{kind=\"Deployment\",reason=\"drifted\"}");
    assert!(drifted >= 1, "applied again because it drifted");

    // The Secret deleted under the Ready Destination: the Secrets' metadata watch shows it, and
    // the Destination says so within seconds (the Secret found complete is trusted only while
    // its resource version stays; it was trusted for 30 s before).
    let deleted = std::time::Instant::now();
    cluster.kubectl_ok(&["-n", &ns, "delete", "secret", "partner-token"], None);
    eventually(WAIT, "Ready=False SecretNotFound after the delete", || async {
        destination_condition(&client, &ns, "partner", "Ready").await.filter(|(_, r)| r == "SecretNotFound")
    })
    .await;
    let took = deleted.elapsed();
    eprintln!("SecretNotFound {:.1} s after the Secret was deleted", took.as_secs_f64());
    assert!(took <= Duration::from_secs(10), "seen within seconds, not at a recheck: {took:?}");
    teardown(&cluster, &ns);
}

/// Applies of worker Deployments, whatever the reason.
const APPLIES: &str = "courier_operator_applies_total{kind=\"Deployment\"";
/// Successful Destination reconciles.
const RECONCILES: &str = "courier_operator_reconciles_total{controller=\"destination\",result=\"ok\"}";

/// The sum of the operator's counters whose line starts with `prefix`.
fn operator_counter(operator: &Operator, prefix: &str) -> u64 {
    operator
        .metrics()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_glob_matching_nothing_fails_the_package_with_source_not_found() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("op-empty");
    let client = cluster.client().await;
    let _operator = Operator::start(&cluster, &ns);
    let data = Records::new("op-empty").await;
    let pattern = format!("{}/nothing-*.jsonl", data.dir);
    apply_yaml(&client, &ns, &destination_yaml("partner", "http://127.0.0.1:9/", 10, "")).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;
    let failed = eventually(WAIT, "Failed=True", || async {
        package_condition(&client, &ns, "p", "Failed").await.filter(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(failed.1, "SourceNotFound");
    let out = cluster.kubectl_ok(&["-n", &ns, "wait", "--for=condition=Failed", "--timeout=5s", "dp/p"], None);
    assert!(out.contains("condition met"), "{out}");
    teardown(&cluster, &ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_datum_whose_template_does_not_compile_is_not_ready_with_template_invalid() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("op-datum");
    let client = cluster.client().await;
    let _operator = Operator::start(&cluster, &ns);
    let yaml = "apiVersion: courier.dev/v1alpha1\nkind: Datum\nmetadata: { name: broken }\nspec:\n  format: { type: JsonLines }\n  request: { pathTemplate: \"/x/{{ id\" }\n";
    apply_yaml(&client, &ns, yaml).await;
    let out = eventually(WAIT, "Datum Ready=False", || async {
        let d = kube::Api::<courier_api::Datum>::namespaced(client.clone(), &ns).get_opt("broken").await.ok()??;
        let c = courier_api::conditions::find_condition(&d.status?.conditions, "Ready")?.clone();
        (c.status == "False").then_some(c)
    })
    .await;
    assert_eq!(out.reason, "TemplateInvalid");
    assert!(!out.message.is_empty());
    teardown(&cluster, &ns);
}
