//! The Helm chart, rendered and checked with the real `helm` v4 (built from its Go module by
//! e2e/helm/build.sh; `make test` builds it) and, where a test says so, applied with
//! `kubectl apply --dry-run=server` to the local cluster's apiserver.

use std::collections::BTreeSet;

use courier_e2e::cluster::{Cluster, repo_root};
use courier_e2e::helm;
use serde::Deserialize;
use serde_json::Value;

/// Values far from the defaults: one watched namespace, other images, debug logs, no leader
/// election, a ServiceMonitor, no PodDisruptionBudget, labels and scheduling everywhere.
const NON_DEFAULT_VALUES: &str = r#"
image:
  operator: { repository: registry.example/courier/operator, tag: "1.2.3" }
  worker: { repository: registry.example/courier/worker, tag: "1.2.3" }
  pullPolicy: Always
replicas: 3
leaderElection: { enabled: false, leaseDurationSeconds: 20 }
watchNamespace: team-a
logLevel: debug
logFormat: text
coordinator: { port: 9443, tlsSecretName: my-cert, tokenAudience: my-audience }
resources: { requests: { cpu: 200m, memory: 256Mi }, limits: { memory: 1Gi } }
nodeSelector: { pool: system }
tolerations: [{ key: dedicated, operator: Exists, effect: NoSchedule }]
workers:
  nodeSelector: { pool: workers }
  resources: { requests: { cpu: 500m } }
podDisruptionBudget: { enabled: false }
serviceMonitor: { enabled: true, interval: 15s, labels: { release: prom } }
extraLabels: { team: data }
podAnnotations: { example.com/scrape: "yes" }
extraArgs: ["--shard-target-bytes=1048576"]
"#;

fn chart() -> String {
    repo_root().join("charts/courier").to_string_lossy().into_owned()
}

fn values_file(yaml: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), yaml).expect("values written");
    file
}

/// `helm template` of release `release` in `namespace`, with `values` when given; the text.
fn template_text(release: &str, namespace: &str, values: Option<&str>, extra: &[&str]) -> String {
    let file = values.map(values_file);
    let path = file.as_ref().map(|f| f.path().to_string_lossy().into_owned());
    let chart = chart();
    let mut args = vec!["template", release, chart.as_str(), "--namespace", namespace];
    if let Some(p) = &path {
        args.extend(["--values", p.as_str()]);
    }
    args.extend(extra);
    helm::run(&args)
}

/// The objects of a multi-document YAML stream.
fn objects(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .filter_map(|doc| Value::deserialize(doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
#[ignore = "needs helm v4 (make test builds it: e2e/helm/build.sh)"]
fn helm_lint_passes_with_the_default_and_non_default_values() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    helm::run(&["lint", "--strict", &chart()]);
    let values = values_file(NON_DEFAULT_VALUES);
    helm::run(&["lint", "--strict", &chart(), "--values", &values.path().to_string_lossy()]);
}

#[test]
#[ignore = "needs helm v4 (make test builds it: e2e/helm/build.sh)"]
fn non_default_values_render_into_the_manifests() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let objs = objects(&template_text("acme", "courier-acme", Some(NON_DEFAULT_VALUES), &[]));
    let deployment = find(&objs, "Deployment");
    assert_eq!(deployment.len(), 1);
    let d = deployment[0];
    assert_eq!(d["metadata"]["name"], "acme-courier-operator");
    assert_eq!(d["metadata"]["labels"]["team"], "data");
    assert_eq!(d["spec"]["replicas"], 3);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(d["spec"]["template"]["metadata"]["annotations"]["example.com/scrape"], "yes");
    assert_eq!(pod["nodeSelector"]["pool"], "system");
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example/courier/operator:1.2.3");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
    let args: Vec<&str> = c["args"].as_array().expect("args").iter().filter_map(Value::as_str).collect();
    for expected in [
        "--worker-image=registry.example/courier/worker:1.2.3",
        "--log-format=text",
        "--leader-election=off",
        "--lease-duration-seconds=20",
        "--namespace=team-a",
        "--coordinator-addr=0.0.0.0:9443",
        "--coordinator-service=acme-courier-coordinator",
        "--coordinator-tls-secret=my-cert",
        "--coordinator-url=https://acme-courier-coordinator.courier-acme.svc:9443",
        "--worker-token-audience=my-audience",
        "--shard-target-bytes=1048576",
    ] {
        assert!(args.contains(&expected), "{expected} in {args:?}");
    }
    let pod_defaults = args.iter().find_map(|a| a.strip_prefix("--worker-pod-defaults=")).expect("worker defaults");
    let pod_defaults: Value = serde_json::from_str(pod_defaults).expect("JSON");
    assert_eq!(pod_defaults["nodeSelector"]["pool"], "workers");
    assert_eq!(pod_defaults["resources"]["requests"]["cpu"], "500m");
    let env = c["env"].as_array().expect("env");
    let rust_log = env.iter().find(|e| e["name"] == "RUST_LOG").expect("RUST_LOG");
    assert!(rust_log["value"].as_str().is_some_and(|v| v.starts_with("debug,")), "{rust_log}");

    // One watched namespace: a Role there, and only TokenReview cluster-wide.
    let roles = find(&objs, "Role");
    assert!(roles.iter().any(|r| r["metadata"]["namespace"] == "team-a"), "a Role in team-a");
    for cr in find(&objs, "ClusterRole") {
        assert_eq!(cr["rules"].as_array().map(Vec::len), Some(1), "{cr}");
        assert_eq!(cr["rules"][0]["resources"][0], "tokenreviews", "{cr}");
    }
    assert!(find(&objs, "PodDisruptionBudget").is_empty(), "PodDisruptionBudget disabled");
    let monitors = find(&objs, "ServiceMonitor");
    assert_eq!(monitors.len(), 1);
    assert_eq!(monitors[0]["metadata"]["labels"]["release"], "prom");
    let service = find(&objs, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "acme-courier-coordinator")
        .expect("coordinator Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 9443);
    assert_eq!(service["spec"]["selector"]["courier.dev/coordinator-leader"], "true");
}

#[test]
#[ignore = "needs helm v4 (make test builds it: e2e/helm/build.sh)"]
fn the_operator_pod_is_restricted_with_the_default_values() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let objs = objects(&template_text("courier", "courier-system", None, &[]));
    let d = find(&objs, "Deployment")[0];
    assert_eq!(d["metadata"]["name"], "courier-operator", "release `courier` is not prefixed twice");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0]["securityContext"];
    assert_eq!(c["allowPrivilegeEscalation"], false);
    assert_eq!(c["readOnlyRootFilesystem"], true);
    assert_eq!(c["capabilities"]["drop"], serde_json::json!(["ALL"]));
    // Every namespace watched: one ClusterRole, and it only reads Secrets (get, and list/watch
    // for the metadata-only watch); it never writes one.
    let cluster_roles = find(&objs, "ClusterRole");
    assert_eq!(cluster_roles.len(), 1);
    for rule in cluster_roles[0]["rules"].as_array().expect("rules") {
        if rule["resources"].as_array().is_some_and(|r| r.iter().any(|x| x == "secrets")) {
            assert_eq!(rule["verbs"], serde_json::json!(["get", "list", "watch"]), "{rule}");
        }
    }
    assert_eq!(find(&objs, "PodDisruptionBudget").len(), 1);
    assert!(find(&objs, "ServiceMonitor").is_empty(), "ServiceMonitor off by default");
}

/// (kind, namespace, name) of every object.
fn keys(objs: &[Value]) -> BTreeSet<(String, String, String)> {
    objs.iter()
        .map(|o| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (s(&o["kind"]), s(&o["metadata"]["namespace"]), s(&o["metadata"]["name"]))
        })
        .collect()
}

fn two_releases() -> [(String, Vec<Value>); 2] {
    ["a", "b"].map(|r| {
        let ns = format!("team-{r}");
        let values = format!("watchNamespace: {ns}\n");
        let text = template_text(&format!("rel-{r}"), &ns, Some(&values), &[]);
        (text.clone(), objects(&text))
    })
}

#[test]
#[ignore = "needs helm v4 (make test builds it: e2e/helm/build.sh)"]
fn two_releases_in_two_namespaces_share_no_object() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let [(_, a), (_, b)] = two_releases();
    let (ka, kb) = (keys(&a), keys(&b));
    assert!(ka.len() > 5 && kb.len() > 5, "{ka:?}");
    let shared: Vec<_> = ka.intersection(&kb).collect();
    assert!(shared.is_empty(), "objects both releases would own: {shared:?}");
    // Each watches its own namespace only.
    for (objs, ns) in [(&a, "team-a"), (&b, "team-b")] {
        let d = find(objs, "Deployment")[0];
        let args = d["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains(&format!("--namespace={ns}")), "{args}");
    }
}

#[test]
#[ignore = "needs the local cluster (make test)"]
fn the_rendered_manifests_are_accepted_by_the_real_apiserver() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let cluster = Cluster::from_env();
    // Two releases in two fresh namespaces (Pod Security restricted enforced), each watching
    // its own, plus the non-default values (ServiceMonitor off: its CRD is not installed here).
    let ns: Vec<String> = ["helm-a", "helm-b"].iter().map(|p| cluster.unique_namespace(p)).collect();
    let mut rendered = Vec::new();
    for (i, n) in ns.iter().enumerate() {
        let values = format!("watchNamespace: {n}\n");
        rendered.push(template_text(&format!("dry-{i}"), n, Some(&values), &["--include-crds"]));
    }
    let non_default = NON_DEFAULT_VALUES
        .replace("team-a", &ns[0])
        .replace("serviceMonitor: { enabled: true", "serviceMonitor: { enabled: false");
    rendered.push(template_text("dry-nd", &ns[1], Some(&non_default), &[]));
    let mut failures = Vec::new();
    for text in &rendered {
        let out = cluster.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(text));
        if !out.status.success() {
            failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    for n in &ns {
        let _ = cluster.kubectl(&["delete", "namespace", n, "--wait=false"], None);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
