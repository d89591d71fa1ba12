//! Leader election with kube-lease-manager: only the replica holding the Lease runs the
//! controllers, writes status and serves the coordinator.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;

/// Name of the Lease.
pub const LEASE_NAME: &str = "courier-operator-leader";

/// Leadership could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("failed to set up leader election: {0}")]
pub struct LeaderError(#[from] LeaseManagerError);

/// A channel that is `true` while this replica leads. With election off it is always `true`.
pub async fn leadership(
    client: Client,
    namespace: &str,
    identity: &str,
    enabled: bool,
) -> Result<watch::Receiver<bool>, LeaderError> {
    if !enabled {
        let (tx, rx) = watch::channel(true);
        // The sender lives as long as the process, so receivers never see a close.
        tokio::spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        return Ok(rx);
    }
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(15)
        .with_grace(5)
        .with_field_manager(courier_api::FIELD_MANAGER)
        .build()
        .await?;
    let (rx, task) = manager.watch().await;
    tokio::spawn(async move {
        match task.await {
            Ok(Ok(_)) => tracing::warn!("leader election task ended"),
            Ok(Err(err)) => tracing::error!(%err, "leader election failed"),
            Err(err) => tracing::error!(%err, "leader election task panicked"),
        }
    });
    Ok(rx)
}

/// Waits until `rx` says `want` (or its sender is gone).
pub async fn wait_for(rx: &mut watch::Receiver<bool>, want: bool) {
    loop {
        if *rx.borrow_and_update() == want {
            return;
        }
        if rx.changed().await.is_err() {
            // The election task ended: treat as lost leadership, check again slowly.
            if !want {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Gives up the Lease if this replica holds it, so another replica takes over at once instead
/// of after the Lease expires (called on shutdown).
pub async fn release_if_held(client: Client, namespace: &str, identity: &str) {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let held = match api.get_opt(LEASE_NAME).await {
        Ok(Some(lease)) => lease.spec.and_then(|s| s.holder_identity).as_deref() == Some(identity),
        Ok(None) => false,
        Err(err) => {
            tracing::warn!(%err, "could not read the leader Lease on shutdown");
            false
        }
    };
    if !held {
        return;
    }
    let patch = serde_json::json!({ "spec": { "holderIdentity": null, "acquireTime": null, "renewTime": null } });
    match api.patch(LEASE_NAME, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => tracing::info!("released the leader Lease"),
        Err(err) => tracing::warn!(%err, "could not release the leader Lease"),
    }
}
