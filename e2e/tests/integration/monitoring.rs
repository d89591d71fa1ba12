//! The monitoring Courier ships (charts/courier/monitoring): the rules pass `promtool check
//! rules` and their unit tests (`promtool test rules`), and the Grafana dashboard is a
//! well-formed dashboard whose every query parses as PromQL (promtool) and reads only metrics
//! of docs/metrics.md or series the rules record. Needs the promtool that
//! `e2e/prometheus/build.sh build` builds from Prometheus' Go module (make test runs it; the
//! same version as the local ground's Prometheus): without it these tests fail, they never pass
//! unchecked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use courier_e2e::cluster::repo_root;
use courier_e2e::metrics_doc;
use serde_json::Value;

const RULES: &str = "charts/courier/monitoring/rules.yaml";
const RULE_TESTS: &str = "e2e/prometheus/rules_test.yaml";
const DASHBOARD: &str = "charts/courier/monitoring/dashboard.json";

/// The promtool of e2e/prometheus/build.sh (its cache directory, whatever its version).
fn promtool_path() -> PathBuf {
    let build = repo_root().join("e2e/prometheus/build.sh");
    let out = Command::new(&build).arg("bin").output().unwrap_or_else(|e| panic!("{}: {e}", build.display()));
    assert!(out.status.success(), "{} bin: {}", build.display(), String::from_utf8_lossy(&out.stderr));
    Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("promtool")
}

fn promtool(args: &[&str]) -> String {
    let tool = promtool_path();
    let out = Command::new(&tool)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{} {args:?}: {e} (build it: e2e/prometheus/build.sh build)", tool.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_rules_pass_promtool_check_and_their_unit_tests() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let checked = promtool(&["check", "rules", RULES]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", RULE_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo_root().join(DASHBOARD)).expect("dashboard.json");
    serde_json::from_str(&text).expect("dashboard.json is JSON")
}

/// Every (panel title, refId, expr) of the dashboard.
fn queries(d: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for panel in d["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default().to_owned();
            out.push((title.clone(), target["refId"].as_str().unwrap_or_default().to_owned(), expr));
        }
    }
    out
}

/// The dashboard's variables replaced the way Grafana would with "All" selected.
fn as_grafana_sends_it(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m").replace("$namespace", ".*").replace("$destination", ".*")
}

#[test]
fn the_dashboard_is_well_formed() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let d = dashboard();
    for key in ["uid", "title"] {
        assert!(d[key].as_str().is_some_and(|s| !s.is_empty()), "dashboard {key}");
    }
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion");
    let mut ids = BTreeSet::new();
    let panels = d["panels"].as_array().expect("panels");
    for panel in panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(ids.insert(panel["id"].as_u64().expect("panel id")), "duplicate id of panel {title}");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().expect("gridPos.x"), grid["w"].as_u64().expect("gridPos.w"));
        assert!(x + w <= 24 && w > 0 && grid["h"].as_u64().is_some_and(|h| h > 0), "gridPos of {title}");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {title} reads the chosen data source");
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty()).expect("every panel has queries");
        let refs: BTreeSet<_> = targets.iter().map(|t| t["refId"].as_str().expect("refId")).collect();
        assert_eq!(refs.len(), targets.len(), "refIds of {title} are distinct");
        for t in targets {
            assert!(t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "empty query in {title}");
        }
    }
    let vars: Vec<_> =
        d["templating"]["list"].as_array().expect("variables").iter().map(|v| v["name"].clone()).collect();
    for name in ["datasource", "namespace", "destination"] {
        assert!(vars.contains(&Value::from(name)), "variable {name}");
    }
}

#[test]
fn every_dashboard_query_parses_as_promql() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // promtool has no "parse this expression": each query becomes a recording rule of a
    // scratch rules file, which `promtool check rules` parses.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let d = dashboard();
    let all = queries(&d);
    assert!(all.len() >= 10, "{} queries", all.len());
    for (i, (_, _, expr)) in all.iter().enumerate() {
        let expr = serde_json::to_string(&as_grafana_sends_it(expr)).expect("quoted");
        rules.push_str(&format!("      - record: dashboard:query_{i}\n        expr: {expr}\n"));
    }
    let file = dir.path().join("dashboard-rules.yaml");
    std::fs::write(&file, rules).expect("write");
    let checked = promtool(&["check", "rules", file.to_str().expect("utf-8 path")]);
    assert!(checked.contains(&format!("SUCCESS: {} rules found", all.len())), "{checked}");
}

/// The `courier_…` metric names an expression reads (suffixes of histograms removed), and the
/// recorded series (`level:metric:operation`) it reads.
fn names_read(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        let w = std::mem::take(&mut word);
        if w.starts_with("courier_") || (w.contains(':') && w.contains("courier_")) {
            let base = w.strip_suffix("_bucket").unwrap_or(&w).to_owned();
            names.insert(base);
        }
    }
    names
}

fn recorded(rules: &Value) -> BTreeSet<String> {
    rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["record"].as_str().map(str::to_owned))
        .collect()
}

fn rules() -> Value {
    let text = std::fs::read_to_string(repo_root().join(RULES)).expect("rules.yaml");
    serde_norway::from_str(&text).expect("rules.yaml is YAML")
}

#[test]
fn the_dashboard_and_the_rules_read_only_documented_metrics() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let mut known: BTreeSet<String> = metrics_doc::documented("courier_").into_keys().collect();
    let rules = rules();
    known.extend(recorded(&rules));
    let mut read = Vec::new();
    for (title, ref_id, expr) in queries(&dashboard()) {
        read.extend(names_read(&expr).into_iter().map(|n| (format!("dashboard panel {title} {ref_id}"), n)));
    }
    for v in dashboard()["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["definition"].as_str() {
            read.extend(names_read(q).into_iter().map(|n| ("dashboard variable".to_owned(), n)));
        }
    }
    for rule in
        rules["groups"].as_array().into_iter().flatten().flat_map(|g| g["rules"].as_array().into_iter().flatten())
    {
        let what = rule["alert"].as_str().or(rule["record"].as_str()).unwrap_or_default().to_owned();
        read.extend(names_read(rule["expr"].as_str().unwrap_or_default()).into_iter().map(|n| (what.clone(), n)));
    }
    assert!(read.len() > 20, "{read:?}");
    for (who, name) in read {
        assert!(known.contains(&name), "{who} reads {name}, which is neither in docs/metrics.md nor recorded");
    }
}

#[test]
fn the_dashboard_covers_what_users_watch() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // The series the dashboard must show (issue 19): rates against the limit, 429s and
    // retries, latency, workers, backlog and ETA, dead letters.
    let read: BTreeSet<String> = queries(&dashboard()).iter().flat_map(|(_, _, e)| names_read(e)).collect();
    for needed in [
        "courier_operator_limit_requests_per_second",
        "courier_operator_effective_requests_per_second",
        "courier_worker_requests_total",
        "courier_worker_throttled_requests_total",
        "courier_worker_retries_total",
        "courier_worker_request_duration_seconds",
        "courier_operator_workers_desired",
        "courier_operator_workers_ready",
        "courier_operator_backlog_records",
        "courier_operator_package_eta_seconds",
        "courier_operator_package_progress_ratio",
        "courier_worker_records_total",
    ] {
        assert!(read.contains(needed), "no panel reads {needed}");
    }
}

#[test]
fn the_chart_ships_the_same_rules_and_dashboard() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // The chart's templates read the files Prometheus and the tests use, not copies.
    let root = repo_root();
    let template = |name: &str| std::fs::read_to_string(root.join("charts/courier/templates").join(name)).expect(name);
    assert!(template("monitoring-prometheusrule.yaml").contains(".Files.Get \"monitoring/rules.yaml\""));
    assert!(template("monitoring-dashboard.yaml").contains(".Files.Get \"monitoring/dashboard.json\""));
    assert!(Path::new(&root.join(RULES)).is_file() && Path::new(&root.join(DASHBOARD)).is_file());
}
