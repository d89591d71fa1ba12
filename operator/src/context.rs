//! What every reconcile shares: the client, the coordinator, the status writer, metrics and the
//! operator's settings.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use courier_api::{Datum, Destination};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};

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

/// Watch caches of the objects packages refer to, so a package reconcile reads its
/// Destination and Datum from memory instead of two GETs.
#[derive(Clone)]
pub struct Lookups {
    destinations: Store<Destination>,
    datums: Store<Datum>,
    /// Serializes waiting for readiness: a store's readiness future keeps only the waker of
    /// its latest poll, so of several reconciles waiting at once all but one would never wake.
    waiting: Arc<tokio::sync::Mutex<bool>>,
}

/// The writing halves of [`Lookups`] made by [`lookups`], for tests that fill them by hand.
#[cfg(test)]
pub struct LookupWriters {
    pub destinations: kube::runtime::reflector::store::Writer<Destination>,
    pub datums: kube::runtime::reflector::store::Writer<Datum>,
}

/// Empty lookups and the writers that fill them.
#[cfg(test)]
pub fn lookups() -> (Lookups, LookupWriters) {
    let (destinations, dest_writer) = kube::runtime::reflector::store();
    let (datums, datum_writer) = kube::runtime::reflector::store();
    let waiting = Arc::new(tokio::sync::Mutex::new(false));
    (Lookups { destinations, datums, waiting }, LookupWriters { destinations: dest_writer, datums: datum_writer })
}

impl Lookups {
    /// Lookups over the term's shared watch caches.
    pub fn new(destinations: Store<Destination>, datums: Store<Datum>) -> Self {
        Self { destinations, datums, waiting: Arc::new(tokio::sync::Mutex::new(false)) }
    }

    /// Waits until both caches hold a complete listing (`false` when a writer is gone).
    pub async fn ready(&self) -> bool {
        let mut ready = self.waiting.lock().await;
        if !*ready {
            *ready = self.destinations.wait_until_ready().await.is_ok() && self.datums.wait_until_ready().await.is_ok();
        }
        *ready
    }

    /// The Destination `name` in `namespace`, if it exists.
    pub fn destination(&self, namespace: &str, name: &str) -> Option<Arc<Destination>> {
        self.destinations.get(&ObjectRef::new(name).within(namespace))
    }

    /// The Datum `name` in `namespace`, if it exists.
    pub fn datum(&self, namespace: &str, name: &str) -> Option<Arc<Datum>> {
        self.datums.get(&ObjectRef::new(name).within(namespace))
    }
}

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub coordinator: Coordinator,
    pub status: StatusWriter,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub recorder: Recorder,
    pub lookups: Lookups,
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
        lookups: Lookups,
    ) -> Self {
        let reporter = Reporter { controller: "courier-operator".into(), instance: std::env::var("POD_NAME").ok() };
        let recorder = Recorder::new(client.clone(), reporter);
        Self {
            client,
            coordinator,
            status,
            metrics,
            settings,
            recorder,
            lookups,
            registered: Mutex::default(),
            destinations: Mutex::default(),
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube::runtime::watcher;

    use super::*;

    #[tokio::test]
    async fn every_reconcile_waiting_for_the_caches_wakes_when_they_are_filled() {
        let (lookups, mut writers) = lookups();
        let waiters: Vec<_> = (0..16)
            .map(|_| {
                tokio::spawn({
                    let l = lookups.clone();
                    async move { l.ready().await }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        writers.destinations.apply_watcher_event(&watcher::Event::Init);
        writers.destinations.apply_watcher_event(&watcher::Event::InitDone);
        writers.datums.apply_watcher_event(&watcher::Event::Init);
        writers.datums.apply_watcher_event(&watcher::Event::InitDone);
        for waiter in waiters {
            let woke = tokio::time::timeout(Duration::from_secs(5), waiter).await;
            assert!(matches!(woke, Ok(Ok(true))), "a waiter was left hanging: {woke:?}");
        }
        assert!(lookups.destination("ns", "d").is_none());
    }
}
