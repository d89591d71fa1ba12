//! Streams that turn changes into reconciles: the coordinator's change notices, and the
//! relevant changes of objects other controllers' objects refer to.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use courier_api::conditions::{DestinationConditionType, find_condition};
use courier_api::{Datum, DeliveryPackage, Destination};
use futures::{Stream, StreamExt as _};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast::error::RecvError;

use super::watches::Touched;
use crate::coordinator::{Change, Coordinator, ObjectKey};

fn changes<K, F>(coordinator: &Coordinator, pick: F) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + 'static,
    F: Fn(Change) -> Option<ObjectKey> + Send + Sync + Copy + 'static,
{
    futures::stream::unfold(coordinator.subscribe(), move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(change) => {
                    if let Some(key) = pick(change) {
                        return Some((ObjectRef::new(&key.name).within(&key.namespace), rx));
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// Packages whose progress changed.
pub fn package_changes(coordinator: &Coordinator) -> impl Stream<Item = ObjectRef<DeliveryPackage>> + Send + 'static {
    changes(coordinator, |c| match c {
        Change::Package(k) => Some(k),
        Change::Destination(_) => None,
    })
}

/// Destinations whose runtime state (desired workers, throttling) changed.
pub fn destination_changes(coordinator: &Coordinator) -> impl Stream<Item = ObjectRef<Destination>> + Send + 'static {
    changes(coordinator, |c| match c {
        Change::Destination(k) => Some(k),
        Change::Package(_) => None,
    })
}

/// Watches `api` with back-off, dropping `managedFields` before anything caches the objects
/// (at 10,000 packages they were a large part of the operator's memory; nothing reads them).
pub fn lean_watcher<K>(api: Api<K>) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, watcher::Config::default()).default_backoff().modify(|o| o.managed_fields_mut().clear())
}

/// The objects of `touched` whose `fingerprint` changed, or that were deleted, so status-only
/// updates that do not matter to the watcher's owner (a Destination's backlog and worker
/// counts, written every few seconds) do not requeue every package that refers to it.
pub fn relevant_changes<K>(
    touched: impl Stream<Item = Touched<K>> + Send + 'static,
    fingerprint: fn(&K) -> u64,
) -> impl Stream<Item = Arc<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    let mut seen: HashMap<ObjectRef<K>, u64> = HashMap::new();
    touched.filter_map(move |change| {
        let out = match change {
            Touched::Applied(obj) => {
                let print = fingerprint(&obj);
                (seen.insert(ObjectRef::from_obj(obj.as_ref()), print) != Some(print)).then_some(obj)
            }
            Touched::Deleted(obj) => {
                seen.remove(&ObjectRef::from_obj(obj.as_ref()));
                Some(obj)
            }
        };
        futures::future::ready(out)
    })
}

fn hash_of(parts: impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

/// What a package depends on in an object it refers to: the spec (by generation) and whether
/// the object is `Ready`.
fn readiness_fingerprint(generation: Option<i64>, conditions: Option<&[Condition]>) -> u64 {
    // Destinations and Datums both call their readiness condition `Ready`.
    let ready = conditions.and_then(|c| find_condition(c, DestinationConditionType::Ready)).map(|c| c.status.as_str());
    hash_of((generation, ready))
}

/// What a package depends on in its Destination.
pub fn destination_fingerprint(dest: &Destination) -> u64 {
    readiness_fingerprint(dest.metadata.generation, dest.status.as_ref().map(|s| s.conditions.as_slice()))
}

/// What a package depends on in its Datum.
pub fn datum_fingerprint(datum: &Datum) -> u64 {
    readiness_fingerprint(datum.metadata.generation, datum.status.as_ref().map(|s| s.conditions.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datum(generation: i64, conditions: &str) -> Datum {
        let yaml = format!(
            "apiVersion: courier.dev/v1alpha1\nkind: Datum\nmetadata: {{ name: d, namespace: ns, generation: {generation} }}\n\
             spec: {{ format: {{ type: JsonLines }} }}\nstatus: {{ conditions: [{conditions}] }}\n"
        );
        serde_norway::from_str(&yaml).expect("valid Datum YAML")
    }

    const READY: &str = "{ type: Ready, status: \"True\", reason: Compiled, message: ok, lastTransitionTime: \"2026-11-25T00:00:00Z\" }";
    const NOT_READY: &str = "{ type: Ready, status: \"False\", reason: TemplateInvalid, message: bad, lastTransitionTime: \"2026-11-25T00:00:00Z\" }";

    #[tokio::test]
    async fn a_package_trigger_passes_on_what_packages_depend_on_and_every_deletion() {
        use crate::controller::watches::touched;
        let ready = Arc::new(datum(1, READY));
        let restated = Arc::new(datum(1, &READY.replace("message: ok", "message: still ok")));
        let not_ready = Arc::new(datum(1, NOT_READY));
        let applied = futures::stream::iter([ready.clone(), restated, not_ready.clone(), ready.clone()]);
        // The deletion comes after every apply (the select takes the applies first when both
        // are ready: a delayed deletion stands for a later one).
        let gone = ready.clone();
        let deleted = futures::stream::once(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            gone
        });
        let passed: Vec<Arc<Datum>> = relevant_changes(touched(applied, deleted), datum_fingerprint).collect().await;
        let readiness: Vec<Option<String>> = passed
            .iter()
            .map(|d| d.status.as_ref().and_then(|s| s.conditions.first()).map(|c| c.status.clone()))
            .collect();
        // Ready, (restated: same fingerprint, dropped), not ready, ready again, deleted.
        assert_eq!(readiness, [Some("True"), Some("False"), Some("True"), Some("True")].map(|s| s.map(String::from)));
        assert_eq!(passed.len(), 4);
    }

    #[tokio::test]
    async fn an_object_listed_again_after_its_deletion_is_passed_on_again() {
        use crate::controller::watches::touched;
        let ready = Arc::new(datum(1, READY));
        let first = futures::stream::iter([ready.clone()]);
        let (deleted_tx, deleted_rx) = futures::channel::mpsc::unbounded();
        let (applied_tx, applied_rx) = futures::channel::mpsc::unbounded();
        let mut passed = Box::pin(relevant_changes(touched(first.chain(applied_rx), deleted_rx), datum_fingerprint));
        assert!(passed.next().await.is_some(), "first seen");
        deleted_tx.unbounded_send(ready.clone()).expect("send");
        assert!(passed.next().await.is_some(), "deleted");
        applied_tx.unbounded_send(ready.clone()).expect("send");
        assert!(passed.next().await.is_some(), "created again with the same spec: not filtered");
    }

    #[test]
    fn only_the_generation_and_readiness_change_the_fingerprint() {
        let base = datum_fingerprint(&datum(1, READY));
        let other_message = READY.replace("message: ok", "message: still ok");
        assert_eq!(datum_fingerprint(&datum(1, &other_message)), base, "a status-only detail");
        assert_ne!(datum_fingerprint(&datum(2, READY)), base, "a new generation");
        assert_ne!(datum_fingerprint(&datum(1, NOT_READY)), base, "readiness flipped");
        assert_ne!(datum_fingerprint(&datum(1, "")), base, "no Ready condition yet");
    }
}
