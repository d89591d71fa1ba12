//! e2e against the local cluster: a real Prometheus (e2e/prometheus/prometheus.sh, 3.16 built
//! from its Go module by e2e/prometheus/build.sh) discovers the operator and worker pods
//! through kubernetes_sd_configs against the local apiserver, as a user's would, and during a
//! delivery every query of the Grafana dashboard (charts/courier/monitoring/dashboard.json)
//! returns data with the labels it groups by — so the dashboard cannot silently rot. Ignored by
//! a plain `cargo test`; `make test` runs it.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;
use courier_e2e::cluster::{repo_root, state_dir};
use courier_e2e::sim::SimConfig;
use serde_json::Value;

fn prometheus_script(arg: &str) -> String {
    let out = Command::new(repo_root().join("e2e/prometheus/prometheus.sh"))
        .arg(arg)
        .env("COURIER_STATE", state_dir())
        .output()
        .unwrap_or_else(|e| panic!("prometheus.sh {arg}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "prometheus.sh {arg}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text.trim().to_owned()
}

/// Stops the Prometheus the test started when the test ends, passed or failed: nothing of the
/// test keeps running after `make test`.
struct StopsPrometheus;

impl Drop for StopsPrometheus {
    fn drop(&mut self) {
        let stopped = Command::new(repo_root().join("e2e/prometheus/prometheus.sh"))
            .arg("stop")
            .env("COURIER_STATE", state_dir())
            .status();
        if !stopped.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("prometheus.sh stop: {stopped:?}");
        }
    }
}

/// The answer of Prometheus' instant query API to `expr`.
fn query(base: &str, expr: &str) -> Value {
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "5", "--get", "--data-urlencode"])
        .arg(format!("query={expr}"))
        .arg(format!("{base}/api/v1/query"))
        .output()
        .expect("curl");
    assert!(out.status.success(), "query {expr}: {}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert_eq!(answer["status"], "success", "{expr}: {answer}");
    answer
}

/// Label names an expression groups by (`by (a, b)`), `le` left out.
fn grouped_by(expr: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for (i, _) in expr.match_indices("by (") {
        let rest = &expr[i + 4..];
        let inside = rest.split(')').next().unwrap_or_default();
        labels.extend(inside.split(',').map(str::trim).filter(|l| !l.is_empty() && *l != "le").map(str::to_owned));
    }
    labels
}

/// What is wrong with the answer to one panel's query, if anything.
fn problem(answer: &Value, expr: &str, ns: &str) -> Option<String> {
    let series = answer["data"]["result"].as_array()?;
    if series.is_empty() {
        return Some("no data".to_owned());
    }
    let wanted = [("namespace", ns), ("destination", "partner"), ("package", "p")];
    for labels in grouped_by(expr) {
        let ours = series.iter().filter(|s| s["metric"][&labels].is_string()).count();
        if ours == 0 {
            return Some(format!("no series with label {labels}: {series:?}"));
        }
    }
    for s in series {
        for (label, value) in wanted {
            if let Some(v) = s["metric"][label].as_str()
                && v != value
            {
                return Some(format!("{label}={v}, expected {value}"));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn every_dashboard_query_returns_data_with_its_labels_from_a_real_prometheus_during_a_delivery() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let destination =
        |url: &str| destination_yaml_with("partner", url, "{ requestsPerSecond: 200 }", "{ min: 1, max: 1 }", "");
    let ground = start_ground("op-prom", SimConfig::default(), destination, (8, 1_500)).await;
    let Ground { cluster, ns, client, operator, sim, .. } = &ground;
    prometheus_script("start");
    let _stops = StopsPrometheus;
    let base = prometheus_script("url");
    ground.apply_package("p", "").await;
    eventually(Duration::from_secs(90), "delivery under way", || async { (sim.stats().accepted >= 400).then_some(()) })
        .await;

    let text =
        std::fs::read_to_string(repo_root().join("charts/courier/monitoring/dashboard.json")).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            // As Grafana sends it with this namespace and Destination selected.
            let expr =
                expr.replace("$__rate_interval", "30s").replace("$namespace", ns).replace("$destination", "partner");
            queries.push((format!("{} {}", panel["title"], target["refId"]), expr));
        }
    }
    assert!(queries.len() >= 10, "{} queries", queries.len());

    // Scrapes every 5 s: rates need two samples in their window; give it a minute at most.
    let deadline = Instant::now() + Duration::from_secs(60);
    let failing = loop {
        let failing: Vec<String> = queries
            .iter()
            .filter_map(|(panel, expr)| {
                problem(&query(&base, expr), expr, ns).map(|p| format!("{panel}: {p}\n  {expr}"))
            })
            .collect();
        if failing.is_empty() || Instant::now() > deadline {
            break failing;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    assert!(failing.is_empty(), "panels without their data:\n{}", failing.join("\n"));
    eprintln!("{} dashboard queries answered by Prometheus with the expected labels", queries.len());

    // The package's figures reach Prometheus as they are in its status.
    let done = query(&base, &format!("courier_operator_package_progress_ratio{{namespace=\"{ns}\",package=\"p\"}}"));
    eprintln!("progress in Prometheus: {}", done["data"]["result"]);
    wait_condition(cluster, client, ns, "p", "Complete", operator).await;
}
