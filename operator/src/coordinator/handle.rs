//! The [`Coordinator`] handle shared by the controllers and the heartbeat server.

use std::sync::{Arc, Mutex};

use courier_api::DestinationSpec;
use courier_worker::protocol::{HeartbeatRequest, HeartbeatResponse};
use tokio::sync::{broadcast, watch};

use super::types::{Change, DestinationRuntime, ObjectKey, PackagePlan, PackageSnapshot};
use crate::planner::Millis;

/// Tunables of the coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Lease time-to-live (default 10 s).
    pub lease_ttl_ms: u32,
    /// How often workers should heartbeat (default 1 s).
    pub heartbeat_interval_ms: u32,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig { lease_ttl_ms: 10_000, heartbeat_interval_ms: 1_000 }
    }
}

/// Why a heartbeat was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeartbeatError {
    /// The Destination is not known (not created, or deleted).
    #[error("destination {namespace}/{name} is not known to the coordinator")]
    UnknownDestination { namespace: String, name: String },
}

/// Cheap-to-clone handle on the coordinator state.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<()>,
    config: CoordinatorConfig,
    version: watch::Sender<u64>,
    changed: broadcast::Sender<Change>,
}

impl Coordinator {
    /// A coordinator with no Destinations or packages.
    pub fn new(config: CoordinatorConfig) -> Self {
        let (version, _) = watch::channel(0);
        let (changed, _) = broadcast::channel(1024);
        Coordinator { inner: Arc::new(Inner { state: Mutex::new(()), config, version, changed }) }
    }

    /// The configuration in force.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.inner.config
    }

    /// Adds or updates a Destination (its spec and `metadata.generation`).
    pub fn upsert_destination(&self, _namespace: &str, _name: &str, _spec: &DestinationSpec, _generation: i64) {}

    /// Forgets a Destination; its workers' heartbeats are refused from now on.
    pub fn remove_destination(&self, _namespace: &str, _name: &str) {}

    /// Adds a package, or updates its priority/suspension/attempt. A changed uid or attempt
    /// replaces the package (its leases are revoked).
    pub fn upsert_package(&self, _plan: PackagePlan) {}

    /// Forgets a package; its leases are revoked at the next heartbeat of their workers.
    pub fn remove_package(&self, _namespace: &str, _name: &str) {}

    /// Suspends (revokes its leases, grants none) or resumes a package.
    pub fn set_package_suspended(&self, _namespace: &str, _name: &str, _suspended: bool) {}

    /// True when the package is known.
    pub fn has_package(&self, _namespace: &str, _name: &str) -> bool {
        false
    }

    /// The package's progress, at `now`.
    pub fn package_snapshot(&self, _namespace: &str, _name: &str) -> Option<PackageSnapshot> {
        None
    }

    /// The Destination's runtime state (effective rate, workers, backlog, desired replicas).
    pub fn destination_snapshot(&self, _namespace: &str, _name: &str) -> Option<DestinationRuntime> {
        None
    }

    /// A counter bumped on every change; `changed().await` on it to wake up.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// Every change, one message per object (lagging receivers lose old messages: resync).
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changed.subscribe()
    }

    /// Handles one heartbeat at `now`.
    pub fn heartbeat(&self, req: &HeartbeatRequest, _now: Millis) -> Result<HeartbeatResponse, HeartbeatError> {
        let _ = &self.inner.state;
        Err(HeartbeatError::UnknownDestination { namespace: req.namespace.clone(), name: req.destination.clone() })
    }

    /// Expires leases and workers not heard from in time (also done on every heartbeat).
    pub fn tick(&self, _now: Millis) {}

    #[allow(dead_code)]
    fn notify(&self, change: Change) {
        self.inner.version.send_modify(|v| *v += 1);
        let _ = self.inner.changed.send(change);
    }

    #[allow(dead_code)]
    fn key(namespace: &str, name: &str) -> ObjectKey {
        ObjectKey::new(namespace, name)
    }
}
