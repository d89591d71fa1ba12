//! Apply: server-side apply of the worker ServiceAccount and Deployment.

use courier_api::FIELD_MANAGER;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::controller::{Error, Result};

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
