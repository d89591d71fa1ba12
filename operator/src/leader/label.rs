//! The leader's mark on its own pod: while this replica leads, its pod carries
//! [`LEADER_LABEL`]` = "true"`, the selector of the coordinator Service, so workers call one
//! stable URL and reach whichever replica leads; a leader change changes the Service's
//! endpoints, never the worker Deployment.
//!
//! On taking the lead the replica also clears the label from any other pod of its install (same
//! namespace and `app.kubernetes.io/instance`) that still carries it (a replica that lost the Lease while cut off from the apiserver); such
//! a replica answers heartbeats with 503 and `Connection: close` meanwhile, so a worker that
//! reached it connects anew.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use tokio_util::sync::CancellationToken;

use super::Leadership;

/// Label of the leading replica's pod (the coordinator Service selects it).
pub const LEADER_LABEL: &str = "courier.dev/coordinator-leader";
/// Two installs in one namespace tell their pods apart by this label.
const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
const FIELD_MANAGER: &str = "courier-operator-leader-label";
/// Pause after a failed patch before the next try.
const RETRY: Duration = Duration::from_secs(1);

/// The merge patch setting (`true`) or removing (`false`) the label.
pub fn label_patch(leading: bool) -> serde_json::Value {
    let value = if leading { serde_json::Value::from("true") } else { serde_json::Value::Null };
    serde_json::json!({ "metadata": { "labels": { LEADER_LABEL: value } } })
}

/// Pods of `pods` carrying the label, other than `own`.
fn stale(pods: &[Pod], own: &str) -> Vec<String> {
    pods.iter().filter_map(|p| p.metadata.name.clone()).filter(|name| name != own).collect()
}

async fn mark(api: &Api<Pod>, pod: &str, leading: bool) -> Result<(), kube::Error> {
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
    api.patch(pod, &params, &Patch::Merge(label_patch(leading))).await.map(|_| ())
}

/// The selector of marked pods of the same install as `own` (its `app.kubernetes.io/instance`).
fn marked_selector(own: &Pod) -> String {
    match own.metadata.labels.as_ref().and_then(|l| l.get(INSTANCE_LABEL)) {
        Some(instance) => format!("{LEADER_LABEL}=true,{INSTANCE_LABEL}={instance}"),
        None => format!("{LEADER_LABEL}=true,!{INSTANCE_LABEL}"),
    }
}

async fn take_over(api: &Api<Pod>, own: &str) -> Result<(), kube::Error> {
    mark(api, own, true).await?;
    let pod = api.get(own).await?;
    let marked = api.list(&ListParams::default().labels(&marked_selector(&pod))).await?;
    for other in stale(&marked.items, own) {
        tracing::info!(pod = %other, "clearing the leader label of a replica that no longer leads");
        match mark(api, &other, false).await {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Keeps the label of pod `own` in `namespace` in step with `leadership` until `stop`; clears it
/// on the way out.
pub async fn run(
    client: kube::Client,
    namespace: String,
    own: String,
    mut leadership: Leadership,
    stop: CancellationToken,
) {
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    loop {
        let leading = leadership.is_leading();
        let result = if leading { take_over(&api, &own).await } else { mark(&api, &own, false).await };
        match result {
            Ok(()) => tracing::info!(pod = %own, leading, "coordinator leader label set"),
            Err(err) => {
                tracing::warn!(%err, pod = %own, leading, "cannot update the coordinator leader label; retrying");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(RETRY) => continue,
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = leadership.wait_for(!leading) => {}
        }
    }
    if let Err(err) = mark(&api, &own, false).await {
        tracing::debug!(%err, pod = %own, "cannot clear the coordinator leader label on the way out");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_sets_or_removes_only_the_label() {
        assert_eq!(
            label_patch(true),
            serde_json::json!({"metadata": {"labels": {"courier.dev/coordinator-leader": "true"}}})
        );
        assert_eq!(
            label_patch(false),
            serde_json::json!({"metadata": {"labels": {"courier.dev/coordinator-leader": null}}})
        );
    }

    #[test]
    fn only_other_marked_pods_are_stale() {
        let pod = |name: &str| Pod {
            metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
            ..Default::default()
        };
        assert_eq!(stale(&[pod("a"), pod("b"), pod("c")], "b"), ["a", "c"]);
        assert!(stale(&[pod("b")], "b").is_empty());
    }

    #[test]
    fn only_pods_of_the_same_install_are_looked_at() {
        let mut own = Pod::default();
        assert_eq!(marked_selector(&own), "courier.dev/coordinator-leader=true,!app.kubernetes.io/instance");
        own.metadata.labels = Some([("app.kubernetes.io/instance".to_owned(), "rel".to_owned())].into());
        assert_eq!(marked_selector(&own), "courier.dev/coordinator-leader=true,app.kubernetes.io/instance=rel");
    }
}
