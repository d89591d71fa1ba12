//! The generated packages (I/O): create the ledger's open packages, let finished ones go
//! (finalizer) once their outcome is recorded, and keep only the history the Datum asks for.

use std::collections::BTreeMap;

use courier_api::DeliveryPackage;
use courier_api::datum::Landing;
use courier_api::package::PackagePhase;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use super::batch::{FINALIZER, Owner, package_object};
use super::ledger::PackageFiles;

/// Creates the package unless it exists. Returns whether it was created now.
pub async fn create(
    client: &Client,
    owner: &Owner,
    landing: &Landing,
    batch: u64,
    p: &PackageFiles,
) -> Result<bool, kube::Error> {
    let api: Api<DeliveryPackage> = Api::namespaced(client.clone(), &owner.namespace);
    match api.create(&PostParams::default(), &package_object(owner, landing, batch, p)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the ledger's finalizer (the outcome is recorded, or cannot be any more).
pub async fn release(client: &Client, pkg: &DeliveryPackage) -> Result<(), kube::Error> {
    if !pkg.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let (Some(ns), name) = (pkg.namespace(), pkg.name_any()) else { return Ok(()) };
    let api: Api<DeliveryPackage> = Api::namespaced(client.clone(), &ns);
    let rest: Vec<&String> = pkg.finalizers().iter().filter(|f| *f != FINALIZER).collect();
    let patch = serde_json::json!({
        "metadata": { "finalizers": rest, "resourceVersion": pkg.resource_version() }
    });
    match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Finished packages beyond the history limits, oldest first: per Destination, the newest
/// `successful` Complete ones and `failed` Failed ones are kept.
pub fn beyond_history<'a>(
    finished: &[&'a DeliveryPackage],
    successful: usize,
    failed: usize,
) -> Vec<&'a DeliveryPackage> {
    let mut by_dest: BTreeMap<(String, bool), Vec<&'a DeliveryPackage>> = BTreeMap::new();
    for p in finished {
        let complete = p.status.as_ref().and_then(|s| s.phase) == Some(PackagePhase::Complete);
        by_dest.entry((p.spec.destination_ref.name.clone(), complete)).or_default().push(p);
    }
    let mut out = Vec::new();
    for ((_, complete), mut list) in by_dest {
        // Names end in the zero-padded batch (and part): newest last.
        list.sort_by_key(|p| p.name_any());
        let keep = if complete { successful } else { failed };
        let extra = list.len().saturating_sub(keep);
        out.extend(list.into_iter().take(extra));
    }
    out
}

/// Deletes a package (its finalizer must be gone already for it to disappear).
pub async fn delete(client: &Client, pkg: &DeliveryPackage) -> Result<(), kube::Error> {
    let (Some(ns), name) = (pkg.namespace(), pkg.name_any()) else { return Ok(()) };
    let api: Api<DeliveryPackage> = Api::namespaced(client.clone(), &ns);
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
