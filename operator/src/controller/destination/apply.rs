//! Apply: server-side apply of the worker ServiceAccount and Deployment, when what was built is
//! not what the API server has already ([`reapply`]).

use std::sync::Arc;
use std::time::Instant;

use courier_api::FIELD_MANAGER;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use super::reapply::{self, Applied, AppliedObjects, Observed};
use crate::controller::{Error, Result};
use crate::metrics::Metrics;

pub(crate) const SERVICE_ACCOUNT: &str = "ServiceAccount";
pub(crate) const DEPLOYMENT: &str = "Deployment";

fn params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Applies the namespace's worker ServiceAccount.
pub async fn service_account(client: &Client, sa: &ServiceAccount) -> Result<()> {
    let ns = sa.metadata.namespace.as_deref().ok_or(Error::MissingField("namespace"))?;
    let name = sa.metadata.name.as_deref().ok_or(Error::MissingField("name"))?;
    let mut body = serde_json::to_value(sa).map_err(|_| Error::MissingField("serializable ServiceAccount"))?;
    body["apiVersion"] = "v1".into();
    body["kind"] = "ServiceAccount".into();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .patch(name, &params(), &Patch::Apply(&body))
        .await
        .map_err(|source| Error::Apply { what: format!("ServiceAccount {ns}/{name}"), source })?;
    Ok(())
}

/// Applies the worker Deployment and returns it as the apiserver has it (with status).
pub async fn deployment(client: &Client, deployment: &Deployment) -> Result<Deployment> {
    let ns = deployment.metadata.namespace.as_deref().ok_or(Error::MissingField("namespace"))?;
    let name = deployment.metadata.name.as_deref().ok_or(Error::MissingField("name"))?;
    let mut body = serde_json::to_value(deployment).map_err(|_| Error::MissingField("serializable Deployment"))?;
    body["apiVersion"] = "apps/v1".into();
    body["kind"] = "Deployment".into();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(name, &params(), &Patch::Apply(&body))
        .await
        .map_err(|source| Error::Apply { what: format!("Deployment {ns}/{name}"), source })
}

/// Applies the namespace's worker ServiceAccount unless the last apply sent the same one (and
/// not longer ago than [`reapply::RESYNC`]).
pub async fn service_account_on_change(
    client: &Client,
    applied: &AppliedObjects,
    metrics: &Metrics,
    sa: &ServiceAccount,
) -> Result<()> {
    let ns = sa.metadata.namespace.as_deref().ok_or(Error::MissingField("namespace"))?;
    let name = sa.metadata.name.as_deref().ok_or(Error::MissingField("name"))?;
    let print = reapply::fingerprint(sa);
    let now = Instant::now();
    let last = applied.get(SERVICE_ACCOUNT, ns, name);
    let Some(why) = reapply::needs_apply(last.as_ref(), print, Observed::Unwatched, now) else { return Ok(()) };
    service_account(client, sa).await?;
    metrics.applied(SERVICE_ACCOUNT, why.as_str());
    applied.insert(SERVICE_ACCOUNT, ns, name, Applied { fingerprint: print, generation: None, at: now });
    Ok(())
}

/// Applies the worker Deployment unless the API server has what was built already (`watched`
/// is the Deployment as the watch last saw it). Returns the Deployment as applied, or as
/// watched when nothing was sent.
pub async fn deployment_on_change(
    client: &Client,
    applied: &AppliedObjects,
    metrics: &Metrics,
    built: &Deployment,
    watched: Option<Arc<Deployment>>,
) -> Result<Deployment> {
    let ns = built.metadata.namespace.as_deref().ok_or(Error::MissingField("namespace"))?;
    let name = built.metadata.name.as_deref().ok_or(Error::MissingField("name"))?;
    let print = reapply::fingerprint(built);
    let now = Instant::now();
    let observed = Observed::Watched(watched.as_ref().map(|d| d.metadata.generation.unwrap_or_default()));
    let last = applied.get(DEPLOYMENT, ns, name);
    match (reapply::needs_apply(last.as_ref(), print, observed, now), watched) {
        (None, Some(current)) => Ok(Arc::unwrap_or_clone(current)),
        (why, _) => {
            let result = deployment(client, built).await?;
            // (No verdict only with a watched Deployment: gone from the watch is drift.)
            metrics.applied(DEPLOYMENT, why.unwrap_or(reapply::Why::Drifted).as_str());
            let generation = Some(result.metadata.generation.unwrap_or_default());
            applied.insert(DEPLOYMENT, ns, name, Applied { fingerprint: print, generation, at: now });
            Ok(result)
        }
    }
}
