//! Streams that turn changes into reconciles: the coordinator's change notices, and the
//! relevant changes of objects other controllers' objects refer to.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};

use courier_api::conditions::find_condition;
use courier_api::{Datum, DeliveryPackage, Destination};
use futures::{Stream, StreamExt as _};
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
    let events = watcher(api, watcher::Config::default()).default_backoff().modify(|o| o.managed_fields_mut().clear());
    reflector(writer, events).filter_map(move |event| {
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

/// What a package depends on in its Destination: the spec (by generation) and readiness.
pub fn destination_fingerprint(dest: &Destination) -> u64 {
    let ready = dest.status.as_ref().and_then(|s| find_condition(&s.conditions, "Ready")).map(|c| c.status.clone());
    hash_of((dest.metadata.generation, ready))
}

/// What a package depends on in its Datum: the spec (by generation) and readiness.
pub fn datum_fingerprint(datum: &Datum) -> u64 {
    let ready = datum.status.as_ref().and_then(|s| find_condition(&s.conditions, "Ready")).map(|c| c.status.clone());
    hash_of((datum.metadata.generation, ready))
}
