//! Streams that turn the coordinator's change notices into reconciles of the changed objects.

use courier_api::{DeliveryPackage, Destination};
use futures::Stream;
use kube::runtime::reflector::ObjectRef;
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
