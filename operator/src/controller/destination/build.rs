//! Build (pure): the worker Deployment and ServiceAccount of one Destination.

use std::collections::BTreeMap;

use courier_api::Destination;
use courier_core::destination::DestinationSettings;
use courier_core::secrets::secret_uses;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSpec, PodTemplateSpec,
    Probe, SecretKeySelector, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

/// Label carrying the Destination name on worker pods and Deployments.
pub const DESTINATION_LABEL: &str = "courier.dev/destination";
/// Name of the worker ServiceAccount (one per namespace).
pub const WORKER_SERVICE_ACCOUNT: &str = "courier-worker";
/// Port of the worker's metrics and probe endpoints.
pub const WORKER_METRICS_PORT: i32 = 9090;

/// Operator-wide settings the Deployment depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerDefaults {
    /// Image used when `spec.workers.image` is unset.
    pub image: String,
    /// Coordinator URL the workers are told to call.
    pub coordinator_url: String,
}

/// Name of the worker Deployment of Destination `name`.
pub fn deployment_name(name: &str) -> String {
    format!("courier-worker-{name}")
}

fn labels(dest: &Destination) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "courier-worker".to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), "courier-operator".to_owned()),
        (DESTINATION_LABEL.to_owned(), dest.name_any()),
    ])
}

fn owner_reference(dest: &Destination) -> Option<OwnerReference> {
    dest.controller_owner_ref(&())
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.to_owned(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Environment of the worker container: pod identity, the Destination name and its secrets.
pub fn worker_env(dest: &Destination) -> Vec<EnvVar> {
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_IP", "status.podIP"),
        EnvVar { name: "COURIER_DESTINATION".to_owned(), value: Some(dest.name_any()), ..Default::default() },
    ];
    for u in secret_uses(&DestinationSettings::from(&dest.spec)) {
        env.push(secret_env(u.env, &u.secret, &u.key));
    }
    env
}

fn probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(WORKER_METRICS_PORT),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

/// The worker Deployment of `dest` with `replicas` pods.
pub fn deployment(dest: &Destination, defaults: &WorkerDefaults, replicas: i32) -> Deployment {
    let labels = labels(dest);
    let selector = BTreeMap::from([(DESTINATION_LABEL.to_owned(), dest.name_any())]);
    let workers = &dest.spec.workers;
    let container = Container {
        name: "worker".to_owned(),
        image: Some(workers.image.clone().unwrap_or_else(|| defaults.image.clone())),
        args: Some(vec!["serve".to_owned(), "--coordinator-url".to_owned(), defaults.coordinator_url.clone()]),
        env: Some(worker_env(dest)),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".to_owned()),
            container_port: WORKER_METRICS_PORT,
            ..Default::default()
        }]),
        readiness_probe: Some(probe("/readyz", 2)),
        liveness_probe: Some(probe("/healthz", 10)),
        resources: workers.resources.clone(),
        ..Default::default()
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(deployment_name(&dest.name_any())),
            namespace: dest.namespace(),
            labels: Some(labels.clone()),
            owner_references: owner_reference(dest).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(selector), ..Default::default() },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(WORKER_SERVICE_ACCOUNT.to_owned()),
                    termination_grace_period_seconds: Some(30),
                    containers: vec![container],
                    node_selector: (!workers.node_selector.is_empty()).then(|| workers.node_selector.clone()),
                    tolerations: (!workers.tolerations.is_empty()).then(|| workers.tolerations.clone()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The namespace's worker ServiceAccount. It needs no RBAC: workers talk only to the
/// coordinator, which authenticates their tokens with TokenReview.
pub fn service_account(namespace: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(WORKER_SERVICE_ACCOUNT.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".to_owned(), "courier-operator".to_owned())])),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Whether the object carries the ownerReference of a Destination's controller.
pub fn is_owned_by(meta: &ObjectMeta, dest: &Destination) -> bool {
    let uid = dest.meta().uid.as_deref();
    meta.owner_references.iter().flatten().any(|o| Some(o.uid.as_str()) == uid && o.controller == Some(true))
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
