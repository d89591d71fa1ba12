//! The common start of a delivery test: the operator pod for a fresh namespace, a partner
//! simulator on the node IP, JSON-lines records in MiniDFS, Destination `partner` and Datum
//! `users` applied.

use courier_e2e::cluster::Cluster;
use courier_e2e::sim::{SimConfig, Simulator};

use super::{Operator, Records, apply_yaml, datum_yaml, package_yaml, setup, simulator};

/// Everything a delivery test works with; no package applied yet.
pub struct Ground {
    pub cluster: Cluster,
    pub ns: String,
    pub client: kube::Client,
    pub operator: Operator,
    pub sim: Simulator,
    /// Holds `files` files of records `r-<file>-<n>`.
    pub data: Records,
    /// Every record's id (its idempotency key at the partner).
    pub ids: Vec<String>,
}

/// Starts the operator and a simulator with `sim_config`, writes `files` × `per_file` records,
/// and applies the Destination `destination(simulator URL)` and Datum `users`.
pub async fn start_ground(
    prefix: &str,
    sim_config: SimConfig,
    destination: impl FnOnce(&str) -> String,
    (files, per_file): (usize, usize),
) -> Ground {
    let (cluster, ns) = setup(prefix);
    let client = cluster.client().await;
    let operator = Operator::start(&cluster, &ns);
    let sim = simulator(sim_config).await;
    let data = Records::new(prefix).await;
    let ids = data.write("", files, per_file, "r").await;
    apply_yaml(&client, &ns, &destination(&sim.url())).await;
    apply_yaml(&client, &ns, &datum_yaml("users")).await;
    Ground { cluster, ns, client, operator, sim, data, ids }
}

impl Ground {
    /// SIGKILLs the operator's process; the kubelet restarts its container.
    pub fn kill_operator(&self) {
        let pid = courier_e2e::pods::Node::new().kill_container(&self.ns, &self.operator.pod, "operator");
        eprintln!("killed operator {} (pid {pid})", self.operator.pod);
    }

    /// Applies package `name` of every record, for `partner` and `users`, with `extra` spec lines.
    pub async fn apply_package(&self, name: &str, extra: &str) {
        let pattern = self.data.pattern("");
        apply_yaml(&self.client, &self.ns, &package_yaml(name, "partner", "users", &pattern, extra)).await;
    }
}
