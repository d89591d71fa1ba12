//! Heartbeat authentication against the real local cluster: TokenReview of projected
//! service-account tokens and the pod-to-Destination check. Ignored by a plain `cargo test`;
//! `make test` runs it against the local cluster (`--include-ignored`).

use courier_e2e::cluster::Cluster;
use http::StatusCode;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};

use super::handle_tests::{dest_spec, hb};
use super::server::{AuthMode, RefusalLabels};
use super::server_tests::TestServer;
use super::*;

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

async fn worker_pod(pods: &Api<Pod>, name: &str, destination: &str) -> Pod {
    let pod: Pod = object(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"courier.dev/destination": destination}},
        // Bound to a node that does not exist: the object is all this test needs.
        "spec": {"serviceAccountName": "worker", "nodeName": "no-such-node",
                 "automountServiceAccountToken": false,
                 "containers": [{"name": "worker", "image": "courier/none"}]}
    }));
    pods.create(&PostParams::default(), &pod).await.expect("pod created")
}

/// The audience worker pods' projected tokens are issued for.
const AUDIENCE: &str = "courier-coordinator";

/// A token of the ServiceAccount `worker`, for `audience` (the apiserver's own when `None`),
/// bound to `bound_to` if given.
async fn token(accounts: &Api<ServiceAccount>, bound_to: Option<&Pod>, audience: Option<&str>) -> String {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_owned()]).unwrap_or_default(),
            expiration_seconds: Some(600),
            bound_object_ref: bound_to.map(|p| BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: p.metadata.name.clone(),
                uid: p.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let issued = accounts.create_token_request("worker", &PostParams::default(), &request).await.expect("token issued");
    issued.status.expect("token status").token
}

#[tokio::test]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn only_a_pod_bound_token_for_the_coordinator_of_one_of_the_destination_workers_may_heartbeat() {
    let cluster = Cluster::from_env();
    let client = cluster.client().await;
    let ns = format!("coord-auth-{}", now_ms() % 1_000_000_000);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &object(serde_json::json!({"metadata": {"name": ns}})))
        .await
        .expect("namespace created");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    accounts
        .create(&PostParams::default(), &object(serde_json::json!({"metadata": {"name": "worker"}})))
        .await
        .expect("service account created");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mine = worker_pod(&pods, "w-1", "d").await;
    let theirs = worker_pod(&pods, "w-other", "other").await;
    let bound = token(&accounts, Some(&mine), Some(AUDIENCE)).await;
    let bound_default_audience = token(&accounts, Some(&mine), None).await;
    let bound_other_audience = token(&accounts, Some(&mine), Some("https://partner.example")).await;
    let bound_other = token(&accounts, Some(&theirs), Some(AUDIENCE)).await;
    let unbound = token(&accounts, None, Some(AUDIENCE)).await;

    let auth = AuthMode::TokenReview { client: client.clone(), audiences: vec![AUDIENCE.to_owned()] };
    let server = TestServer::start(CoordinatorConfig::default(), auth).await;
    server.coordinator.upsert_destination(&ns, "d", &dest_spec(100), 1);
    let beat = |worker: &str| {
        let mut req = hb(worker, 1, 0, 0, 0);
        req.namespace = ns.clone();
        serde_json::to_vec(&req).expect("json")
    };
    let cases: Vec<(&str, Option<&str>, &str, StatusCode)> = vec![
        ("no token", None, "w-1", StatusCode::UNAUTHORIZED),
        ("a forged token", Some("not-a-token"), "w-1", StatusCode::UNAUTHORIZED),
        (
            "the pod's token for the apiserver's audience",
            Some(&bound_default_audience),
            "w-1",
            StatusCode::UNAUTHORIZED,
        ),
        ("the pod's token for another audience", Some(&bound_other_audience), "w-1", StatusCode::UNAUTHORIZED),
        ("the pod's own token", Some(&bound), "w-1", StatusCode::OK),
        ("the same token again (cached)", Some(&bound), "w-1", StatusCode::OK),
        ("a token claiming another pod", Some(&bound), "w-2", StatusCode::FORBIDDEN),
        ("a worker of another destination", Some(&bound_other), "w-other", StatusCode::FORBIDDEN),
        ("a token bound to no pod", Some(&unbound), "w-1", StatusCode::FORBIDDEN),
    ];
    let mut failures = Vec::new();
    for (what, token, worker, expected) in cases {
        let (status, body) = server.post(beat(worker), token).await;
        if status != expected {
            failures.push(format!("{what}: expected {expected}, got {status}: {}", String::from_utf8_lossy(&body)));
        }
    }
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    assert!(failures.is_empty(), "{failures:#?}");
    let refused = |code: &str| server.refusals.get_or_create(&RefusalLabels { code: code.into() }).get();
    assert_eq!((refused("401"), refused("403")), (4, 3), "every refusal is counted by its code");
}
