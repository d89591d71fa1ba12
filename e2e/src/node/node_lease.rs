//! Registers the Node, heartbeats its Lease in `kube-node-lease` and refreshes node status.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::watch;

use super::error::{Error, Result};

const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_SECONDS: i32 = 40;
const LEASE_PERIOD: Duration = Duration::from_secs(10);
const STATUS_PERIOD: Duration = Duration::from_secs(30);

/// The node's identity and size.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// Node name.
    pub name: String,
    /// `pods` capacity.
    pub max_pods: u32,
}

/// Creates the Node if it is missing and writes its status (Ready, capacity, addresses).
pub async fn register(client: &kube::Client, node: &NodeIdentity) -> Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let existing = match nodes.get_opt(&node.name).await {
        Ok(existing) => existing,
        Err(source) => return Err(Error::Kube { action: format!("get node {}", node.name), source }),
    };
    let created = match existing {
        Some(existing) => existing,
        None => nodes
            .create(&PostParams::default(), &new_node(node))
            .await
            .map_err(Error::kube(format!("create node {}", node.name)))?,
    };
    update_status(client, node).await?;
    Ok(created)
}

/// Heartbeats the Lease every 10 s and the node status every 30 s until `shutdown` turns true.
pub async fn heartbeat(client: kube::Client, node: NodeIdentity, owner: Node, mut shutdown: watch::Receiver<bool>) {
    let mut lease_tick = tokio::time::interval(LEASE_PERIOD);
    let mut status_tick = tokio::time::interval(STATUS_PERIOD);
    status_tick.tick().await;
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                if let Err(error) = renew_lease(&client, &node.name, &owner).await {
                    tracing::warn!(%error, "lease heartbeat failed");
                }
            }
            _ = status_tick.tick() => {
                if let Err(error) = update_status(&client, &node).await {
                    tracing::warn!(%error, "node status update failed");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn renew_lease(client: &kube::Client, name: &str, owner: &Node) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(jiff::Timestamp::now());
    let action = || format!("renew lease {LEASE_NAMESPACE}/{name}");
    match leases.get_opt(name).await.map_err(Error::kube(action()))? {
        Some(_) => {
            let patch =
                json!({ "spec": { "holderIdentity": name, "renewTime": now, "leaseDurationSeconds": LEASE_SECONDS } });
            leases.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(Error::kube(action()))?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(LEASE_NAMESPACE.to_string()),
                    owner_references: owner_reference(owner).map(|o| vec![o]),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.to_string()),
                    lease_duration_seconds: Some(LEASE_SECONDS),
                    renew_time: Some(now),
                    ..LeaseSpec::default()
                }),
            };
            leases.create(&PostParams::default(), &lease).await.map_err(Error::kube(action()))?;
        }
    }
    Ok(())
}

fn owner_reference(node: &Node) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.metadata.name.clone()?,
        uid: node.metadata.uid.clone()?,
        ..OwnerReference::default()
    })
}

async fn update_status(client: &kube::Client, node: &NodeIdentity) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({ "status": node_status(node) });
    nodes
        .patch_status(&node.name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map_err(Error::kube(format!("update status of node {}", node.name)))?;
    Ok(())
}

fn new_node(node: &NodeIdentity) -> Node {
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), node.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), go_arch().to_string()),
    ]);
    Node {
        metadata: ObjectMeta { name: Some(node.name.clone()), labels: Some(labels), ..ObjectMeta::default() },
        spec: Some(NodeSpec::default()),
        status: None,
    }
}

/// The status the agent reports: always Ready, the machine's CPUs and memory.
pub fn node_status(node: &NodeIdentity) -> NodeStatus {
    let now = Time(jiff::Timestamp::now());
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu_count().to_string())),
        ("memory".to_string(), Quantity(format!("{}Ki", memory_kib()))),
        ("pods".to_string(), Quantity(node.max_pods.to_string())),
        ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
    ]);
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: None,
    };
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: "127.0.0.1".into() },
            NodeAddress { type_: "Hostname".into(), address: node.name.clone() },
        ]),
        conditions: Some(vec![
            condition("Ready", "True", "KubeletReady", "courier-node is posting ready status"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "no PID pressure"),
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints::default()),
        node_info: Some(NodeSystemInfo {
            architecture: go_arch().into(),
            operating_system: "linux".into(),
            kubelet_version: "v1.34.4".into(),
            kube_proxy_version: String::new(),
            container_runtime_version: "courier-node://0.1.0".into(),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            os_image: "courier local processes".into(),
            machine_id: read_trimmed("/etc/machine-id"),
            system_uuid: read_trimmed("/etc/machine-id"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(4 * 1024 * 1024)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}
