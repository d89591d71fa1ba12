//! Build (pure): the worker Deployment and ServiceAccount of one Destination.
//!
//! Worker pods run under the `restricted` Pod Security profile ([`pod`]): non-root 65532,
//! read-only root filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp.
//! They get no Kubernetes API credentials at all: the only token they carry is a projected
//! service-account token for the coordinator's audience, and the Secrets their Destination
//! references are mounted as read-only volumes (never environment variables), so a rotated
//! Secret reaches running workers when the kubelet refreshes the volume.

mod pod;

use std::collections::BTreeMap;

use courier_api::Destination;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, ServiceAccount, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

pub use pod::{COORDINATOR_TOKEN_DIR, COORDINATOR_TOKEN_PATH, container_security, pod_security};

/// Label carrying the Destination name on worker pods and Deployments.
pub const DESTINATION_LABEL: &str = "courier.dev/destination";
/// Name of the worker ServiceAccount (one per namespace).
pub const WORKER_SERVICE_ACCOUNT: &str = "courier-worker";
/// Port of the worker's metrics and probe endpoints.
pub const WORKER_METRICS_PORT: i32 = 9090;
/// Environment variable carrying the coordinator's CA certificate (PEM; public, not a secret).
pub use courier_core::protocol::COORDINATOR_CA_ENV;

/// The token worker pods present to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorToken {
    /// Audience the token is issued for; the coordinator's TokenReview asks for exactly this.
    pub audience: String,
    /// Requested lifetime; the kubelet refreshes the file at 80 % of it.
    pub expiration_seconds: i64,
}

impl Default for CoordinatorToken {
    fn default() -> Self {
        CoordinatorToken { audience: "courier-coordinator".to_owned(), expiration_seconds: 600 }
    }
}

/// Operator-wide defaults of worker pods (`--worker-pod-defaults`, the chart's `workers:`
/// values). A Destination's own `spec.workers` settings win over them.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerPodDefaults {
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    #[serde(default)]
    pub affinity: Option<Affinity>,
    #[serde(default)]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub image_pull_policy: Option<String>,
}

/// Operator-wide settings the Deployment depends on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerDefaults {
    /// Image used when `spec.workers.image` is unset.
    pub image: String,
    /// Coordinator URL the workers are told to call (one stable URL: the leader Service).
    pub coordinator_url: String,
    /// The CA the coordinator's serving certificate chains to, for workers to verify it.
    pub coordinator_ca_pem: Option<String>,
    /// The projected token workers authenticate with.
    pub token: CoordinatorToken,
    /// Scheduling and resource defaults.
    pub pod: WorkerPodDefaults,
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

/// Environment of the worker container: pod identity, the Destination name and the
/// coordinator's CA. Secret values are never in the environment (see [`pod::secret_volumes`]).
pub fn worker_env(dest: &Destination, defaults: &WorkerDefaults) -> Vec<EnvVar> {
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_IP", "status.podIP"),
        EnvVar { name: "COURIER_DESTINATION".to_owned(), value: Some(dest.name_any()), ..Default::default() },
    ];
    if let Some(ca) = &defaults.coordinator_ca_pem {
        env.push(EnvVar { name: COORDINATOR_CA_ENV.to_owned(), value: Some(ca.clone()), ..Default::default() });
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
    let (volumes, mounts) = pod::volumes(dest, &defaults.token);
    let container = Container {
        name: "worker".to_owned(),
        image: Some(workers.image.clone().unwrap_or_else(|| defaults.image.clone())),
        image_pull_policy: defaults.pod.image_pull_policy.clone(),
        args: Some(vec![
            "serve".to_owned(),
            "--coordinator-url".to_owned(),
            defaults.coordinator_url.clone(),
            "--token-path".to_owned(),
            COORDINATOR_TOKEN_PATH.to_owned(),
        ]),
        env: Some(worker_env(dest, defaults)),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".to_owned()),
            container_port: WORKER_METRICS_PORT,
            ..Default::default()
        }]),
        readiness_probe: Some(probe("/readyz", 2)),
        liveness_probe: Some(probe("/healthz", 10)),
        resources: workers.resources.clone().or_else(|| defaults.pod.resources.clone()),
        security_context: Some(container_security()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let node_selector =
        if workers.node_selector.is_empty() { &defaults.pod.node_selector } else { &workers.node_selector };
    let tolerations = if workers.tolerations.is_empty() { &defaults.pod.tolerations } else { &workers.tolerations };
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
                    // No API token: workers never call the apiserver.
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(30),
                    security_context: Some(pod_security()),
                    containers: vec![container],
                    volumes: Some(volumes),
                    node_selector: (!node_selector.is_empty()).then(|| node_selector.clone()),
                    tolerations: (!tolerations.is_empty()).then(|| tolerations.clone()),
                    affinity: defaults.pod.affinity.clone(),
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
        automount_service_account_token: Some(false),
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
