//! The exact requests a package reconcile sends, against a mock API server (tower-test): a
//! package is planned and runs, or waits, with no request at all (its status goes through the
//! status writer, its Destination and Datum come from the watch caches); a finished one is
//! deleted with one DELETE once `ttlSecondsAfterFinished` has passed.

use std::sync::Arc;

use courier_api::conditions::find_condition;
use courier_api::{Datum, DeliveryPackage, Destination};
use http::StatusCode;
use kube::runtime::watcher;

use super::reconcile;
use crate::controller::test_api::{self, MockApi, requests};

const READY: &str =
    r#"{ type: Ready, status: "True", reason: Available, message: ok, lastTransitionTime: "2026-12-01T00:00:00Z" }"#;

fn destination() -> Destination {
    let yaml = format!(
        "apiVersion: courier.dev/v1alpha1\nkind: Destination\nmetadata: {{ name: partner, namespace: team-a, generation: 1 }}\n\
         spec: {{ endpoint: {{ url: \"http://127.0.0.1:9/\" }}, rateLimit: {{ requestsPerSecond: 100 }} }}\n\
         status: {{ conditions: [{READY}] }}\n"
    );
    serde_norway::from_str(&yaml).expect("valid Destination YAML")
}

fn datum() -> Datum {
    let yaml = format!(
        "apiVersion: courier.dev/v1alpha1\nkind: Datum\nmetadata: {{ name: users, namespace: team-a, generation: 1 }}\n\
         spec: {{ format: {{ type: JsonLines }} }}\nstatus: {{ conditions: [{READY}] }}\n"
    );
    serde_norway::from_str(&yaml).expect("valid Datum YAML")
}

fn package(dir: &str, extra: &str) -> Arc<DeliveryPackage> {
    let yaml = format!(
        "apiVersion: courier.dev/v1alpha1\nkind: DeliveryPackage\nmetadata: {{ name: p, namespace: team-a, uid: u-1, generation: 1 }}\n\
         spec:\n  destinationRef: {{ name: partner }}\n  datumRef: {{ name: users }}\n  \
         source: {{ hdfs: {{ url: \"file://{dir}\", paths: [\"/*.jsonl\"] }} }}\n{extra}"
    );
    Arc::new(serde_norway::from_str(&yaml).expect("valid DeliveryPackage YAML"))
}

fn answer(method: &str, path: &str, body: &serde_json::Value) -> (StatusCode, serde_json::Value) {
    match method {
        "DELETE" if path.ends_with("/deliverypackages/p") => {
            (StatusCode::OK, serde_json::json!({ "kind": "Status", "status": "Success" }))
        }
        "POST" => (StatusCode::CREATED, body.clone()),
        _ => test_api::not_found(),
    }
}

/// Fills the lookups as a watch's first listing would.
fn listed(writers: &mut crate::context::LookupWriters, dest: Option<Destination>, datum: Option<Datum>) {
    writers.destinations.apply_watcher_event(&watcher::Event::Init);
    if let Some(d) = dest {
        writers.destinations.apply_watcher_event(&watcher::Event::InitApply(d));
    }
    writers.destinations.apply_watcher_event(&watcher::Event::InitDone);
    writers.datums.apply_watcher_event(&watcher::Event::Init);
    if let Some(d) = datum {
        writers.datums.apply_watcher_event(&watcher::Event::InitApply(d));
    }
    writers.datums.apply_watcher_event(&watcher::Event::InitDone);
}

fn files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["a", "b"] {
        let lines: String = (0..10).map(|i| format!("{{\"id\":\"{f}{i}\"}}\n")).collect();
        std::fs::write(dir.path().join(format!("{f}.jsonl")), lines).expect("write a file");
    }
    dir
}

#[tokio::test]
async fn a_package_is_planned_and_runs_without_a_request_of_its_own() {
    let api = MockApi::start(answer);
    let (ctx, mut writers) = test_api::context(api.client.clone());
    listed(&mut writers, Some(destination()), Some(datum()));
    let dir = files();
    let pkg = package(&dir.path().display().to_string(), "");

    reconcile(pkg.clone(), ctx.clone()).await.expect("planned");
    assert_eq!(requests(&api.take()), Vec::<&str>::new(), "status goes through the status writer");
    assert!(ctx.coordinator.has_package("team-a", "p"), "the coordinator leases its shards");
    let status = ctx.status.latest_status::<DeliveryPackage>("team-a", "p").expect("a status is queued");
    assert_eq!(status.progress.files, 2);
    assert!(find_condition(&status.conditions, "Planned").is_some_and(|c| c.status == "True"), "{status:?}");

    reconcile(pkg, ctx.clone()).await.expect("running");
    assert_eq!(requests(&api.take()), Vec::<&str>::new());
}

#[tokio::test]
async fn a_package_waiting_for_its_destination_sends_nothing() {
    let api = MockApi::start(answer);
    let (ctx, mut writers) = test_api::context(api.client.clone());
    listed(&mut writers, None, Some(datum()));
    let dir = files();

    reconcile(package(&dir.path().display().to_string(), ""), ctx.clone()).await.expect("waiting");
    assert_eq!(requests(&api.take()), Vec::<&str>::new());
    assert!(!ctx.coordinator.has_package("team-a", "p"), "nothing is planned while it waits");
    let status = ctx.status.latest_status::<DeliveryPackage>("team-a", "p").expect("a status is queued");
    let waiting = find_condition(&status.conditions, "Waiting").expect("Waiting");
    assert_eq!((waiting.status.as_str(), waiting.reason.as_str()), ("True", "DestinationNotFound"));
}

#[tokio::test]
async fn a_finished_package_is_deleted_once_its_ttl_has_passed() {
    let api = MockApi::start(answer);
    let (ctx, mut writers) = test_api::context(api.client.clone());
    listed(&mut writers, Some(destination()), Some(datum()));
    let done = "status: { phase: Complete, attempt: 1, completionTime: \"2026-01-01T00:00:00Z\" }\n";

    let kept = package("/nowhere", &format!("  ttlSecondsAfterFinished: 999999999\n{done}"));
    reconcile(kept, ctx.clone()).await.expect("kept until its TTL");
    assert_eq!(requests(&api.take()), Vec::<&str>::new());

    let due = package("/nowhere", &format!("  ttlSecondsAfterFinished: 60\n{done}"));
    reconcile(due, ctx.clone()).await.expect("deleted");
    assert_eq!(requests(&api.take()), ["DELETE /apis/courier.dev/v1alpha1/namespaces/team-a/deliverypackages/p"]);
}
