//! e2e against the local cluster: least privilege, proven on the installed chart. For each
//! install mode (one watched namespace, every namespace) `kubectl auth can-i --list` as the
//! operator's ServiceAccount, and as the worker pods' ServiceAccount, must equal the lists
//! committed under charts/courier/tests/rbac/ (each rule a line; docs/install.md explains
//! them). In particular the operator may only read Secrets where it watches (`get`, and
//! `list`/`watch` for its metadata-only watch; it creates only its own TLS Secret), and workers
//! may do nothing beyond what every authenticated user may. A changed
//! chart fails here until the list is updated on purpose: `COURIER_E2E_BLESS=1` writes the
//! lists the cluster reports. Ignored by a plain `cargo test`; `make test` runs it.

use crate::support::*;
use courier_e2e::cluster::{Cluster, repo_root};
use courier_e2e::helm::{can_i_list, helm};

const RELEASE: &str = "rbac";
const OPERATOR_SA: &str = "rbac-courier-operator";
const WORKER_SA: &str = "courier-worker";

/// Compares `actual` with the committed list `file` (or writes it when blessing).
fn check(file: &str, actual: &[String]) -> Result<(), String> {
    let path = repo_root().join("charts/courier/tests/rbac").join(file);
    let text = actual.iter().map(|l| format!("{l}\n")).collect::<String>();
    if std::env::var_os("COURIER_E2E_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // A resource granted by several rules lists their verbs in the order kubectl met the
    // bindings, which varies between runs: lines are compared with their verbs sorted.
    let expected: Vec<String> = expected.lines().filter(|l| !l.trim().is_empty()).map(normalized).collect();
    let actual: Vec<String> = actual.iter().map(|l| normalized(l)).collect();
    let missing: Vec<&String> = expected.iter().filter(|l| !actual.contains(l)).collect();
    let extra: Vec<&String> = actual.iter().filter(|a| !expected.contains(a)).collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    Err(format!("{file}: granted but not in the list: {extra:#?}\nin the list but not granted: {missing:#?}"))
}

/// A `kubectl auth can-i --list` line with the verbs of its last bracket sorted.
fn normalized(rule: &str) -> String {
    match rule.rsplit_once('|') {
        Some((head, _)) => format!("{head}| [{}]", verbs(rule).join(" ")),
        None => rule.to_owned(),
    }
}

fn secrets_rules(rules: &[String]) -> Vec<&String> {
    rules.iter().filter(|r| r.starts_with("secrets |")).collect()
}

/// The verbs of one `kubectl auth can-i --list` line (its last bracket), sorted.
fn verbs(rule: &str) -> Vec<&str> {
    let last = rule.rsplit('|').next().unwrap_or_default().trim().trim_start_matches('[').trim_end_matches(']');
    let mut verbs: Vec<&str> = last.split_whitespace().collect();
    verbs.sort_unstable();
    verbs
}

/// What the install's two ServiceAccounts may do: the operator in its own namespace and in
/// `default` (a namespace it does not watch in the namespaced mode), the worker in `ns`.
struct Rights {
    operator: Vec<String>,
    operator_elsewhere: Vec<String>,
    worker: Vec<String>,
}

/// Installs the chart with `values`, lists what both ServiceAccounts may do, uninstalls.
fn rules_of_install(cluster: &Cluster, ns: &str, values: &[&str]) -> Rights {
    let chart = repo_root().join("charts/courier");
    let chart = chart.to_string_lossy();
    let mut args = vec!["install", RELEASE, &chart, "-n", ns];
    for v in values {
        args.extend(["--set", v]);
    }
    helm(cluster, &args);
    let operator_sa = format!("system:serviceaccount:{ns}:{OPERATOR_SA}");
    let operator = can_i_list(cluster, ns, &operator_sa);
    let operator_elsewhere = can_i_list(cluster, "default", &operator_sa);
    let worker = can_i_list(cluster, ns, &format!("system:serviceaccount:{ns}:{WORKER_SA}"));
    helm(cluster, &["uninstall", RELEASE, "-n", ns, "--wait", "--timeout=2m"]);
    Rights { operator, operator_elsewhere, worker }
}

#[test]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
fn the_installed_chart_grants_exactly_the_committed_rules_and_secrets_are_only_read() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("rbac-it");
    let watch = format!("watchNamespace={ns}");
    // No operator pod is needed to list the rules (replicas 0): an operator watching every
    // namespace would act on the other tests' objects.
    let namespaced = rules_of_install(&cluster, &ns, &[&watch, "replicas=0"]);
    let cluster_wide = rules_of_install(&cluster, &ns, &["replicas=0"]);
    teardown(&cluster, &ns);

    for (mode, rights) in [("namespaced", &namespaced), ("cluster-wide", &cluster_wide)] {
        eprintln!("operator, {mode}, its namespace:\n  {}", rights.operator.join("\n  "));
        eprintln!("operator, {mode}, namespace default:\n  {}", rights.operator_elsewhere.join("\n  "));
        // Secrets: `get` where it watches; in its own namespace also `create` (the
        // coordinator's TLS Secret when none is given). Never update, patch or delete.
        for rule in secrets_rules(&rights.operator) {
            assert_eq!(verbs(rule), ["create", "get", "list", "watch"], "{mode}: {rule}");
        }
    }
    // Elsewhere: nothing on Secrets when it watches one namespace; reading alone when it
    // watches all.
    assert!(secrets_rules(&namespaced.operator_elsewhere).is_empty(), "{:?}", namespaced.operator_elsewhere);
    let secrets = secrets_rules(&cluster_wide.operator_elsewhere);
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert_eq!(verbs(secrets[0]), ["get", "list", "watch"], "cluster-wide Secrets rights: {}", secrets[0]);
    eprintln!("worker:\n  {}", namespaced.worker.join("\n  "));
    assert_eq!(namespaced.worker, cluster_wide.worker, "the worker's rights do not depend on the mode");
    assert!(secrets_rules(&namespaced.worker).is_empty(), "workers read Secrets from their volumes only");
    let results = [
        check("operator-namespaced.txt", &namespaced.operator),
        check("operator-namespaced-elsewhere.txt", &namespaced.operator_elsewhere),
        check("operator-cluster-wide.txt", &cluster_wide.operator),
        check("operator-cluster-wide-elsewhere.txt", &cluster_wide.operator_elsewhere),
        check("worker.txt", &namespaced.worker),
    ];
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
