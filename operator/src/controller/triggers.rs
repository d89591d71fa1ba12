//! Streams that turn changes into reconciles: the coordinator's change notices, and the
//! relevant changes of objects other controllers' objects refer to.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};

use courier_api::conditions::{DestinationConditionType, find_condition};
use courier_api::{Datum, DeliveryPackage, Destination};
use futures::{Stream, StreamExt as _};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, reflector};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast::error::RecvError;

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

/// Watches `api` into `writer`'s store and yields an object only when `fingerprint` of it
/// changed (or it was deleted), so status-only updates that do not matter to the watcher's
/// owner (a Destination's backlog and worker counts, written every few seconds) do not requeue
/// every package that refers to it.
pub fn relevant_changes<K>(
    writer: Writer<K>,
    api: Api<K>,
    fingerprint: fn(&K) -> u64,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let mut seen: HashMap<ObjectRef<K>, u64> = HashMap::new();
    reflector(writer, lean_watcher(api)).filter_map(move |event| {
        let out = match event {
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                let print = fingerprint(&obj);
                (seen.insert(ObjectRef::from_obj(&obj), print) != Some(print)).then_some(Ok(obj))
            }
            Ok(watcher::Event::Delete(obj)) => {
                seen.remove(&ObjectRef::from_obj(&obj));
                Some(Ok(obj))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
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
