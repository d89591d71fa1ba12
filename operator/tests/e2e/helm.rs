//! e2e against the local cluster: Courier installed with its Helm chart (helm v4, built by
//! e2e/helm/build.sh), a package delivered, `helm upgrade` with a changed value while the
//! package runs (nothing lost, it completes), then `helm uninstall` (the operator gone, the
//! CRDs and the user's objects kept). Ignored by a plain `cargo test`; `make test` runs it.

use std::time::Duration;

use crate::support::*;
use courier_e2e::cluster::{Cluster, repo_root};
use courier_e2e::helm::helm;
use courier_e2e::sim::SimConfig;

fn operator_log(cluster: &Cluster, ns: &str, deployment: &str) -> String {
    let out = cluster.kubectl(&["-n", ns, "logs", &format!("deploy/{deployment}"), "--tail=40"], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn helm_install_delivers_an_upgrade_mid_package_loses_nothing_and_uninstall_keeps_crds_and_objects() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("helm-it");
    let client = cluster.client().await;
    let release = "it";
    let deployment = "it-courier-operator";
    let chart = repo_root().join("charts/courier");
    let chart = chart.to_string_lossy();
    let watch = format!("watchNamespace={ns}");
    helm(
        &cluster,
        &["install", release, &chart, "-n", &ns, "--set", &watch, "--set", "logLevel=info", "--wait", "--timeout=3m"],
    );

    let sim = simulator(SimConfig::default()).await;
    let data = Records::new("helm-it").await;
    let ids = data.write("", 4, 500, "r").await;
    let pattern = data.pattern("");
    apply_yaml(&client, &ns, &destination_yaml("partner", &sim.url(), 100, "")).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    apply_yaml(&client, &ns, &package_yaml("p", "partner", "users", &pattern, "")).await;

    eventually(Duration::from_secs(90), "delivery under way", || async { (sim.stats().accepted >= 200).then_some(()) })
        .await;
    // A changed value rolls the operator Deployment while the package runs.
    helm(
        &cluster,
        &["upgrade", release, &chart, "-n", &ns, "--reuse-values", "--set", "logLevel=debug", "--wait", "--timeout=3m"],
    );
    let env = cluster.kubectl_ok(
        &["-n", &ns, "get", "deploy", deployment, "-o", "jsonpath={.spec.template.spec.containers[0].env[0].value}"],
        None,
    );
    assert!(env.starts_with("debug,"), "the upgrade changed RUST_LOG: {env}");
    eprintln!("accepted when the upgrade finished: {}", sim.stats().accepted);

    let out = cluster.kubectl(&["-n", &ns, "wait", "--for=condition=Complete", "--timeout=180s", "dp/p"], None);
    assert!(
        out.status.success(),
        "the package did not complete: {}\nstatus: {:?}\noperator log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        package(&client, &ns, "p").await.status,
        operator_log(&cluster, &ns, deployment)
    );
    assert_exactly_once(&sim, &ids);
    let status = package(&client, &ns, "p").await.status.expect("status");
    assert_eq!(status.progress.records.dead_lettered, 0);

    helm(&cluster, &["uninstall", release, "-n", &ns, "--wait", "--timeout=2m"]);
    let gone = cluster.kubectl(&["-n", &ns, "get", "deploy", deployment], None);
    assert!(!gone.status.success(), "the operator Deployment is gone");
    eventually(Duration::from_secs(60), "operator pods gone", || async {
        let pods =
            cluster.kubectl_ok(&["-n", &ns, "get", "pods", "-l", "app.kubernetes.io/instance=it", "-o", "name"], None);
        pods.trim().is_empty().then_some(())
    })
    .await;
    for crd in ["destinations.courier.dev", "datums.courier.dev", "deliverypackages.courier.dev"] {
        cluster.kubectl_ok(&["get", "crd", crd], None);
    }
    for object in ["destination/partner", "datum/users", "deliverypackage/p"] {
        cluster.kubectl_ok(&["-n", &ns, "get", object], None);
    }
    teardown(&cluster, &ns);
}
