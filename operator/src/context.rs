//! What every reconcile shares: the client, the coordinator, the status writer, metrics and the
//! operator's settings.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::controller::destination::build::WorkerDefaults;
use crate::coordinator::{Coordinator, ObjectKey};
use crate::metrics::Metrics;
use crate::status_writer::StatusWriter;

/// Operator settings the controllers use.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Worker image and coordinator URL for worker Deployments.
    pub worker: WorkerDefaults,
    /// Target shard size in bytes.
    pub shard_target_bytes: u64,
}

/// What the package controller registered with the coordinator: uid and attempt per package.
pub type Registered = HashMap<ObjectKey, (String, u32)>;

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub coordinator: Coordinator,
    pub status: StatusWriter,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub recorder: Recorder,
    registered: Mutex<Registered>,
    destinations: Mutex<HashSet<ObjectKey>>,
}

impl Context {
    /// A context for one leadership term.
    pub fn new(
        client: Client,
        coordinator: Coordinator,
        status: StatusWriter,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        let reporter = Reporter { controller: "courier-operator".into(), instance: std::env::var("POD_NAME").ok() };
        let recorder = Recorder::new(client.clone(), reporter);
        Self { client, coordinator, status, metrics, settings, recorder, registered: Mutex::default(), destinations: Mutex::default() }
    }

    /// Packages registered with the coordinator in this term.
    pub fn registered(&self) -> MutexGuard<'_, Registered> {
        self.registered.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Destinations fed to the coordinator in this term.
    pub fn destinations(&self) -> MutexGuard<'_, HashSet<ObjectKey>> {
        self.destinations.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
