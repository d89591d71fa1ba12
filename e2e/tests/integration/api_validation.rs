//! The Courier API against a real kube-apiserver: the CRDs install, every invalid sample under
//! config/samples/invalid/ is refused at `kubectl apply --dry-run=server` with the message its
//! `# expect:` line names, and the valid samples are accepted.

use std::path::PathBuf;

use courier_e2e::cluster::{Cluster, repo_root};

fn invalid_samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("config/samples/invalid"))
        .expect("invalid samples exist")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
fn every_invalid_sample_is_refused_by_the_apiserver_with_its_message() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let cluster = Cluster::from_env();
    cluster.install_crds();
    let ns = cluster.unique_namespace("api-invalid");
    let mut failures = Vec::new();
    let files = invalid_samples();
    assert!(files.len() >= 20, "at least 20 invalid samples");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let expect = text.lines().find_map(|l| l.strip_prefix("# expect: ")).expect("an # expect: line");
        let docs: Vec<&str> = text.split("\n---\n").collect();
        let refused = match docs.as_slice() {
            [one] => cluster.kubectl(&["-n", &ns, "apply", "--dry-run=server", "-f", "-"], Some(one)),
            [original, update] => {
                cluster.kubectl_ok(&["-n", &ns, "apply", "-f", "-"], Some(original));
                cluster.kubectl(&["-n", &ns, "apply", "--dry-run=server", "-f", "-"], Some(update))
            }
            _ => panic!("{}: one or two documents", file.display()),
        };
        let stderr = String::from_utf8_lossy(&refused.stderr);
        if refused.status.success() {
            failures.push(format!("{}: accepted, expected {expect:?}", file.display()));
        } else if !stderr.contains(expect) {
            failures.push(format!("{}: refused with {stderr:?}, expected {expect:?}", file.display()));
        }
    }
    cluster.kubectl(&["delete", "namespace", &ns, "--wait=false"], None);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
fn the_valid_samples_are_accepted_and_listed_under_the_courier_category() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let cluster = Cluster::from_env();
    cluster.install_crds();
    let ns = cluster.unique_namespace("api-valid");
    let samples = repo_root().join("config/samples");
    cluster.kubectl_ok(
        &["-n", &ns, "apply", "--server-side", "--field-manager=courier-e2e", "-k", &samples.to_string_lossy()],
        None,
    );
    let listed = cluster.kubectl_ok(&["-n", &ns, "get", "courier", "-o", "name"], None);
    for name in
        ["destination.courier.dev/partner-a", "datum.courier.dev/users", "deliverypackage.courier.dev/users-2026-11-25"]
    {
        assert!(listed.contains(name), "`kubectl get courier` lists {name}: {listed}");
    }
    let columns = cluster.kubectl_ok(&["-n", &ns, "get", "dp"], None);
    for column in ["DESTINATION", "DATUM", "PHASE", "PROGRESS", "RATE", "ETA", "FAILED", "AGE"] {
        assert!(columns.contains(column), "dp column {column} in {columns}");
    }
    let explained = cluster.kubectl_ok(&["explain", "destination.spec.rateLimit.requestsPerSecond"], None);
    assert!(explained.contains("Requests per second across all workers"), "{explained}");
    cluster.kubectl(&["delete", "namespace", &ns, "--wait=false"], None);
}
