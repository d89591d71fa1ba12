//! e2e on the real node: what a kubelet brings to Courier's pods — SIGTERM and the grace period
//! when the operator scales workers down, the liveness and readiness probes of both binaries,
//! and `kubectl logs` showing their JSON logs. (A worker container killed and restarted by the
//! kubelet: e2e_lifecycle.) Ignored by a plain `cargo test`; `make test` runs them.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use courier_e2e::cluster::Cluster;
use courier_e2e::pods;
use courier_e2e::sim::SimConfig;

/// Default `workers.maxInFlightPerWorker`: at most this many requests are in flight per worker.
const IN_FLIGHT_PER_WORKER: u32 = 256;

/// `kubectl logs -f` of a pod's container into a file, until the container ends.
struct Follow {
    child: Child,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Follow {
    fn start(cluster: &Cluster, ns: &str, pod: &str, container: &str) -> Follow {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("{pod}.log"));
        let out = std::fs::File::create(&path).expect("log file");
        let child = Command::new(&cluster.kubectl)
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .args(["-n", ns, "logs", "-f", pod, "-c", container])
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .spawn()
            .expect("run kubectl logs -f");
        Follow { child, path, _dir: dir }
    }

    fn ended(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every non-empty line is a JSON object with a level, a timestamp and fields: the JSON logs of
/// Courier's binaries as `kubectl logs` shows them.
fn assert_json_lines(what: &str, text: &str) -> Vec<serde_json::Value> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "{what}: kubectl logs shows nothing");
    lines
        .iter()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: not a JSON line ({e}): {line}"));
            assert!(v["level"].is_string() && v["timestamp"].is_string(), "{what}: no level/timestamp: {line}");
            assert!(v["fields"].is_object(), "{what}: no fields: {line}");
            v
        })
        .collect()
}

fn message(v: &serde_json::Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or_default()
}

/// The kubelet's probe counters (`/metrics/probes` through the apiserver's node proxy):
/// (container, probe type, result) → count, for pods of `ns`.
fn probe_counts(cluster: &Cluster, ns: &str) -> BTreeMap<(String, String, String), f64> {
    let text = cluster.kubectl_ok(&["get", "--raw", "/api/v1/nodes/courier-node-1/proxy/metrics/probes"], None);
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("prober_probe_total{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else { continue };
        let label = |name: &str| {
            labels.split(&format!("{name}=\"")).nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_owned()
        };
        if label("namespace") != ns {
            continue;
        }
        let key = (label("container"), label("probe_type"), label("result"));
        *counts.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    counts
}

fn successful(counts: &BTreeMap<(String, String, String), f64>, container: &str, probe: &str) -> f64 {
    counts.get(&(container.to_owned(), probe.to_owned(), "successful".to_owned())).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_worker_scaled_down_gets_sigterm_drains_and_reports_its_final_checkpoint() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let destination =
        |url: &str| destination_yaml_with("partner", url, "{ requestsPerSecond: 200 }", "{ min: 2, max: 2 }", "");
    let g = start_ground("op-sigterm", SimConfig::default(), destination, (4, 1000)).await;
    let Ground { cluster, ns, client, operator, sim, ids, .. } = &g;
    g.apply_package("p", "").await;
    let workers = eventually(Duration::from_secs(90), "two worker pods delivering", || async {
        let names: Vec<String> = worker_pods(cluster, ns, "partner")
            .into_iter()
            .map(|p| p.trim_start_matches("pod/").to_owned())
            .filter(|p| pods::restart_count(cluster, ns, p, "worker") == 0 && pods::pod_ip(cluster, ns, p).is_some())
            .collect();
        (names.len() == 2 && sim.stats().accepted >= 600).then_some(names)
    })
    .await;
    let mut follows: Vec<(String, Follow)> =
        workers.iter().map(|p| (p.clone(), Follow::start(cluster, ns, p, "worker"))).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Fewer workers: the operator scales the Deployment down and the kubelet sends SIGTERM to
    // one pod, then waits its grace period (30 s) before SIGKILL.
    apply_yaml(
        client,
        ns,
        &destination_yaml_with("partner", &sim.url(), "{ requestsPerSecond: 200 }", "{ min: 1, max: 1 }", ""),
    )
    .await;
    let accepted_at_scale_down = sim.stats().accepted;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let gone = loop {
        if let Some(i) = follows.iter_mut().position(|(_, f)| f.ended()) {
            break i;
        }
        assert!(std::time::Instant::now() < deadline, "no worker pod ended within 60 s of the scale-down");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (pod, follow) = follows.swap_remove(gone);
    let lines = assert_json_lines(&format!("worker {pod}"), &follow.text());
    let messages: Vec<&str> = lines.iter().map(message).collect();
    let sigterm = messages
        .iter()
        .position(|m| m.starts_with("SIGTERM"))
        .unwrap_or_else(|| panic!("worker {pod} logged no SIGTERM:\n{}", messages.join("\n")));
    let after: Vec<&str> = messages[sigterm..].to_vec();
    eprintln!(
        "worker {pod} after SIGTERM ({accepted_at_scale_down} accepted at the scale-down):\n{}",
        after.join("\n")
    );
    assert!(after.iter().any(|m| m.starts_with("draining")), "the worker drained: {after:?}");
    assert!(
        !after.iter().any(|m| m.contains("heartbeat failed")),
        "every heartbeat of the drain reached the coordinator"
    );
    let stopped = lines[sigterm..]
        .iter()
        .find(|v| message(v) == "worker stopped")
        .unwrap_or_else(|| panic!("worker {pod} did not stop cleanly: {after:?}"));
    let end = stopped["fields"]["end"].as_str().unwrap_or_default();
    assert!(end.contains("Drained") && end.contains("abandoned: false"), "drained, nothing abandoned: {end}");
    let exit = pods::pod_field(cluster, ns, &pod, "{.status.containerStatuses[0].state.terminated.exitCode}");
    assert!(exit.is_empty() || exit == "0", "the drained worker exited 0, not by SIGKILL: {exit}");

    wait_condition(cluster, client, ns, "p", "Complete", operator).await;
    let (missing, repeated) = missing_and_repeated(sim, ids);
    let extra: u32 = repeated.values().map(|n| n - 1).sum();
    eprintln!("after the scale-down: {} keys missing, {extra} duplicate requests", missing.len());
    assert!(missing.is_empty(), "keys lost: {} (first {:?})", missing.len(), missing.first());
    assert!(extra <= IN_FLIGHT_PER_WORKER, "re-sent at most one in-flight window: {extra}");
}

/// A worker pod of the test's namespace whose coordinator does not answer (nothing listens on
/// that port of the node IP), with the worker's own probes, and optionally a liveness probe on
/// `/readyz`, which fails while the coordinator is unreachable.
fn stranded_worker_yaml(name: &str, liveness_path: &str) -> String {
    let coordinator = format!("http://{}:9", courier_e2e::cluster::node_ip());
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{ name: {name} }}
spec:
  terminationGracePeriodSeconds: 2
  securityContext: {{ runAsNonRoot: true, seccompProfile: {{ type: RuntimeDefault }} }}
  containers:
    - name: worker
      image: {WORKER_IMAGE}
      imagePullPolicy: IfNotPresent
      args: ["serve", "--coordinator-url", "{coordinator}"]
      env:
        - {{ name: POD_NAME, valueFrom: {{ fieldRef: {{ fieldPath: metadata.name }} }} }}
        - {{ name: POD_NAMESPACE, valueFrom: {{ fieldRef: {{ fieldPath: metadata.namespace }} }} }}
        - {{ name: POD_IP, valueFrom: {{ fieldRef: {{ fieldPath: status.podIP }} }} }}
        - {{ name: COURIER_DESTINATION, value: partner }}
      readinessProbe: {{ httpGet: {{ path: /readyz, port: 9090 }}, periodSeconds: 1 }}
      livenessProbe: {{ httpGet: {{ path: {liveness_path}, port: 9090 }}, periodSeconds: 2, failureThreshold: 2 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {{ drop: [ALL] }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn the_kubelet_probes_both_binaries_and_kubectl_logs_shows_their_json_logs() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // One worker that stays after the package (min 1): the kubelet drops the probe counters of
    // a deleted pod.
    let destination =
        |url: &str| destination_yaml_with("partner", url, "{ requestsPerSecond: 100 }", "{ min: 1, max: 1 }", "");
    let g = start_ground("op-probes", SimConfig::default(), destination, (1, 300)).await;
    let Ground { cluster, ns, client, operator, .. } = &g;
    g.apply_package("p", "").await;
    let worker = eventually(Duration::from_secs(90), "a Ready worker pod", || async {
        let pod = worker_pods(cluster, ns, "partner").first()?.trim_start_matches("pod/").to_owned();
        let ready = pods::pod_field(cluster, ns, &pod, "{.status.conditions[?(@.type==\"Ready\")].status}");
        (ready == "True").then_some(pod)
    })
    .await;
    wait_condition(cluster, client, ns, "p", "Complete", operator).await;

    // Both binaries answered the kubelet's probes, and neither was restarted.
    let counts = eventually(Duration::from_secs(40), "liveness probes of both containers", || async {
        let counts = probe_counts(cluster, ns);
        (successful(&counts, "operator", "Liveness") >= 1.0 && successful(&counts, "worker", "Liveness") >= 1.0)
            .then_some(counts)
    })
    .await;
    eprintln!("kubelet probe counters in {ns}: {counts:?}");
    for container in ["operator", "worker"] {
        assert!(successful(&counts, container, "Readiness") >= 1.0, "{container}: readiness probed: {counts:?}");
        let failed = counts.iter().filter(|((c, p, r), _)| c == container && p == "Liveness" && r != "successful");
        assert_eq!(failed.count(), 0, "{container}: no failed liveness probe: {counts:?}");
    }
    assert_eq!(pods::restart_count(cluster, ns, &operator.pod, "operator"), 0);
    assert_eq!(pods::restart_count(cluster, ns, &worker, "worker"), 0);

    // kubectl logs (through the kubelet's API) shows both binaries' JSON logs.
    let operator_log = pods::logs(cluster, ns, &operator.pod, "operator", 200, false);
    let lines = assert_json_lines("operator", &operator_log);
    assert!(lines.iter().any(|v| message(v).contains("coordinator listening")), "operator log: {operator_log}");
    let worker_log = pods::logs(cluster, ns, &worker, "worker", 200, false);
    let lines = assert_json_lines("worker", &worker_log);
    assert!(lines.iter().any(|v| message(v) == "worker starting"), "worker log: {worker_log}");

    // A worker whose coordinator never answers is never Ready: the kubelet reports the 503
    // of its /readyz. Its /healthz keeps it alive.
    cluster.kubectl_ok(&["-n", ns, "apply", "-f", "-"], Some(&stranded_worker_yaml("stranded", "/healthz")));
    // A liveness probe that fails (here /readyz) makes the kubelet restart the container.
    cluster.kubectl_ok(&["-n", ns, "apply", "-f", "-"], Some(&stranded_worker_yaml("unlive", "/readyz")));
    let unhealthy = eventually(Duration::from_secs(60), "a failed readiness probe of the stranded worker", || async {
        let events = pods::events(cluster, ns, "stranded", "Unhealthy");
        events.into_iter().find(|m| m.starts_with("Readiness probe failed"))
    })
    .await;
    assert!(unhealthy.contains("503"), "the kubelet saw /readyz answer 503: {unhealthy}");
    eventually(Duration::from_secs(60), "the kubelet to restart the container failing its liveness probe", || async {
        (pods::restart_count(cluster, ns, "unlive", "worker") >= 1).then_some(())
    })
    .await;
    let killing = pods::events(cluster, ns, "unlive", "Killing");
    assert!(killing.iter().any(|m| m.contains("failed liveness probe")), "Killing events: {killing:?}");
    let ready = pods::pod_field(cluster, ns, "stranded", "{.status.conditions[?(@.type==\"Ready\")].status}");
    assert_eq!(ready, "False", "the stranded worker is not Ready");
    assert_eq!(pods::restart_count(cluster, ns, "stranded", "worker"), 0, "a live /healthz keeps it running");
}
