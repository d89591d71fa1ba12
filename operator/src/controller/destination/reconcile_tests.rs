//! The exact requests a Destination reconcile sends, against a mock API server (tower-test):
//! what it reads and applies the first time, nothing at all while nothing changed, and
//! one apply when the Deployment changed under it or the built one changed.

use std::sync::Arc;

use courier_api::Destination;
use http::StatusCode;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;

use super::Memory;
use super::{DestinationContext, reconcile};
use crate::controller::test_api::{self, MockApi, requests};

const PARTNER: &str = r#"
apiVersion: courier.dev/v1alpha1
kind: Destination
metadata: { name: partner, namespace: team-a, uid: "1234", generation: 1 }
spec:
  rateLimit: { requestsPerSecond: 100 }
  auth:
    bearer: { secretRef: { name: partner-token, key: token } }
  endpoint: { url: "http://127.0.0.1:8080/records" }
  workers: { min: 1, max: 3 }
"#;

fn answer(method: &str, path: &str, body: &serde_json::Value) -> (StatusCode, serde_json::Value) {
    match method {
        "GET" if path.ends_with("/secrets/partner-token") => (
            StatusCode::OK,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": { "name": "partner-token", "namespace": "team-a", "resourceVersion": "7" },
                "data": { "token": "c2VjcmV0" }
            }),
        ),
        "GET" if path.ends_with("/pods") => {
            (StatusCode::OK, serde_json::json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [] }))
        }
        // A server-side apply returns the object; this Deployment is at generation 1.
        "PATCH" => {
            let mut object = body.clone();
            object["metadata"]["generation"] = 1.into();
            (StatusCode::OK, object)
        }
        "POST" => (StatusCode::CREATED, body.clone()),
        _ => test_api::not_found(),
    }
}

fn destination(yaml: &str) -> Arc<Destination> {
    Arc::new(serde_norway::from_str(yaml).expect("valid Destination YAML"))
}

/// The context of a reconcile, with the writers of its Deployment and Secret-metadata watches.
fn context(client: Client) -> (Arc<DestinationContext>, Writer<Deployment>, Writer<PartialObjectMeta<Secret>>) {
    let (ctx, _) = test_api::context(client);
    let (deployments, writer) = reflector::store();
    let (secrets_seen, seen) = reflector::store();
    let Memory { applied, secrets, naming } = Memory::default();
    (Arc::new(DestinationContext { ctx, deployments, applied, secrets, naming, secrets_seen }), writer, seen)
}

/// The Secret `partner-token` as its metadata watch shows it, at `version`.
fn seen_token(version: &str) -> watcher::Event<PartialObjectMeta<Secret>> {
    let mut meta = PartialObjectMeta::<Secret>::default();
    meta.metadata.name = Some("partner-token".into());
    meta.metadata.namespace = Some("team-a".into());
    meta.metadata.resource_version = Some(version.into());
    watcher::Event::Apply(meta)
}

const NOTHING: [&str; 0] = [];
const GET_SECRET: &str = "GET /api/v1/namespaces/team-a/secrets/partner-token";
const APPLY_SA: &str = "PATCH /api/v1/namespaces/team-a/serviceaccounts/courier-worker";
const LIST_PODS: &str = "GET /api/v1/namespaces/team-a/pods";
const APPLY_DEPLOYMENT: &str = "PATCH /apis/apps/v1/namespaces/team-a/deployments/courier-worker-partner";

#[tokio::test]
async fn a_destination_is_applied_once_then_left_alone_until_something_changes() {
    let api = MockApi::start(answer);
    let (dctx, mut watch, mut secrets) = context(api.client.clone());
    let dest = destination(PARTNER);
    secrets.apply_watcher_event(&seen_token("7"));

    // First: the Secret is checked, the ServiceAccount and the Deployment applied, and (a new
    // leader) the worker pods listed: those that may hold shares of an earlier leader.
    reconcile(dest.clone(), dctx.clone()).await.expect("first reconcile");
    let first = api.take();
    assert_eq!(requests(&first), [GET_SECRET, APPLY_SA, APPLY_DEPLOYMENT, LIST_PODS]);
    let applied: Deployment = serde_json::from_value(first[2].1.clone()).expect("a Deployment was applied");
    assert_eq!(applied.spec.as_ref().and_then(|s| s.replicas), Some(1), "min workers without backlog");

    // The watch sees the Deployment as the apply left it: nothing to apply.
    let mut on_server = applied.clone();
    on_server.metadata.generation = Some(1);
    watch.apply_watcher_event(&watcher::Event::Apply(on_server.clone()));
    for _ in 0..3 {
        reconcile(dest.clone(), dctx.clone()).await.expect("a reconcile with nothing changed");
        assert_eq!(requests(&api.take()), NOTHING, "the Secret found complete is trusted while unchanged");
    }

    // The Secret changes (its watch shows a new version): read again, once.
    secrets.apply_watcher_event(&seen_token("8"));
    reconcile(dest.clone(), dctx.clone()).await.expect("a reconcile after the Secret changed");
    assert_eq!(requests(&api.take()), [GET_SECRET], "read again");
    // The mock answers version 7 still: read at every reconcile until the read and the watch
    // agree.
    reconcile(dest.clone(), dctx.clone()).await.expect("a reconcile with the versions apart");
    assert_eq!(requests(&api.take()), [GET_SECRET]);
    secrets.apply_watcher_event(&seen_token("7"));
    reconcile(dest.clone(), dctx.clone()).await.expect("settled");
    assert_eq!(requests(&api.take()), NOTHING);

    // Someone scales it by hand (a new generation): applied back.
    let mut edited = on_server.clone();
    edited.metadata.generation = Some(2);
    watch.apply_watcher_event(&watcher::Event::Apply(edited));
    reconcile(dest.clone(), dctx.clone()).await.expect("a reconcile after an edit");
    assert_eq!(requests(&api.take()), [APPLY_DEPLOYMENT], "the edit is put back");
    // (The mock answers generation 1 again; the watch then shows it.)
    watch.apply_watcher_event(&watcher::Event::Apply(on_server.clone()));
    reconcile(dest.clone(), dctx.clone()).await.expect("settled");
    assert_eq!(requests(&api.take()), NOTHING);

    // Deleted by someone: applied again.
    watch.apply_watcher_event(&watcher::Event::Delete(on_server.clone()));
    reconcile(dest.clone(), dctx.clone()).await.expect("a reconcile after a delete");
    assert_eq!(requests(&api.take()), [APPLY_DEPLOYMENT], "the Deployment is made again");
    watch.apply_watcher_event(&watcher::Event::Apply(on_server));

    // A new spec that changes the pods (more CPU): its Secrets are read again (it may name
    // others) and the Deployment is applied; the ServiceAccount (the same for every Destination
    // of the namespace) is not.
    let changed = PARTNER
        .replace("generation: 1", "generation: 2")
        .replace("workers: { min: 1, max: 3 }", "workers: { min: 1, max: 3, resources: { requests: { cpu: 500m } } }");
    let changed = destination(&changed);
    reconcile(changed, dctx.clone()).await.expect("a reconcile of a new spec");
    let after = api.take();
    assert_eq!(requests(&after), [GET_SECRET, APPLY_DEPLOYMENT]);
    assert!(after[1].1.to_string().contains("500m"), "the new resources are applied");

    let metrics = dctx.ctx.metrics.encode();
    for (reason, count) in [("first", 1), ("drifted", 2), ("changed", 1)] {
        let line = format!("courier_operator_applies_total{{kind=\"Deployment\",reason=\"{reason}\"}} {count}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    assert!(metrics.contains("courier_operator_applies_total{kind=\"ServiceAccount\",reason=\"first\"} 1"));
}

#[tokio::test]
async fn what_was_remembered_of_a_deleted_destination_is_forgotten() {
    let api = MockApi::start(answer);
    let (ctx, _) = test_api::context(api.client.clone());
    let (deployments, _watch) = reflector::store();
    let memory = Memory::default();
    let (secrets_seen, _seen) = reflector::store();
    let dctx = Arc::new(DestinationContext {
        ctx,
        deployments,
        applied: memory.applied.clone(),
        secrets: memory.secrets.clone(),
        naming: memory.naming.clone(),
        secrets_seen,
    });
    let dest = destination(PARTNER);
    reconcile(dest.clone(), dctx).await.expect("first reconcile");
    // The ServiceAccount, the Deployment and the Secrets found complete.
    assert_eq!((memory.applied.len(), memory.secrets.len()), (2, 1));
    assert_eq!(memory.naming.naming("team-a", "partner-token").len(), 1, "the reconcile indexed its Secret");

    let (store, mut writer) = reflector::store::<Destination>();
    writer.apply_watcher_event(&watcher::Event::Apply((*dest).clone()));
    let other =
        destination(&PARTNER.replace("name: partner,", "name: other,").replace("uid: \"1234\"", "uid: \"5678\""));
    writer.apply_watcher_event(&watcher::Event::Apply((*other).clone()));
    assert_eq!(memory.forget_deleted(&store), 0, "nothing is forgotten while the Destination lives");

    // Deleted; another Destination of the namespace still needs the ServiceAccount.
    writer.apply_watcher_event(&watcher::Event::Delete((*dest).clone()));
    assert_eq!(memory.forget_deleted(&store), 3, "its Deployment, its Secrets and its index entry");
    assert!(memory.naming.naming("team-a", "partner-token").is_empty());
    assert_eq!((memory.applied.len(), memory.secrets.len()), (1, 0));

    // The namespace's last Destination gone: its ServiceAccount too.
    writer.apply_watcher_event(&watcher::Event::Delete((*other).clone()));
    assert_eq!(memory.forget_deleted(&store), 1);
    assert_eq!((memory.applied.len(), memory.secrets.len()), (0, 0));
}

#[tokio::test]
async fn a_new_leader_applies_the_workers_it_finds_running_not_the_minimum() {
    // An earlier leader scaled the Destination to three workers; they are delivering. The new
    // leader has heard of no package and no latency yet: stopping two of them would cut their
    // deliveries short (the helm upgrade test saw keys accepted twice when it did).
    let api = MockApi::start(answer);
    let (dctx, mut watch, _) = context(api.client.clone());
    let running: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "courier-worker-partner", "namespace": "team-a", "generation": 7 },
        "spec": { "replicas": 3, "selector": {}, "template": {} }
    }))
    .expect("a Deployment");
    watch.apply_watcher_event(&watcher::Event::Apply(running));

    reconcile(destination(PARTNER), dctx.clone()).await.expect("first reconcile of the term");
    let sent = api.take();
    let (_, body) = sent.iter().find(|(line, _)| line == APPLY_DEPLOYMENT).expect("the Deployment is applied");
    let applied: Deployment = serde_json::from_value(body.clone()).expect("a Deployment");
    assert_eq!(applied.spec.and_then(|s| s.replicas), Some(3), "the three running are kept");
}
