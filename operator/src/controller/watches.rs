//! One watch per kind for a leadership term, shared by everything that reads the kind.
//!
//! | kind | read by |
//! |---|---|
//! | Destination | its controller (trigger), the package controller (trigger), package lookups |
//! | Datum | its controller (trigger), the package controller (trigger), package lookups, landing |
//! | DeliveryPackage | its controller (trigger, cache), landing (cache) |
//!
//! Read by one controller only, and watched by it: the worker Deployments and the Secrets'
//! metadata (the Destination controller).
//!
//! Each kind is one `reflector::store_shared` fed by one lean watcher (managed fields dropped);
//! controllers subscribe to it ([`SharedWatch::subscribe`]) and read its store. kube's
//! subscriptions carry applied objects only, so deletions are handed out separately
//! ([`SharedWatch::deletions`]): a package must hear that its Destination or Datum is gone.

use std::fmt::Debug;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::{Stream, StreamExt as _};
use kube::Api;
use kube::Resource;
use kube::runtime::reflector::{self, ReflectHandle, Store, reflector};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;

use super::triggers::lean_watcher;

/// Objects a subscriber may lag behind before the watch waits for it (kube's backpressure:
/// every subscriber sees every change).
const BUFFER: usize = 1024;

/// One kind's watch for the term, not yet running: take subscriptions, then [`Self::run`].
pub struct SharedWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    deletions: Vec<mpsc::UnboundedSender<Arc<K>>>,
}

impl<K> SharedWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// The watch of `api` and the store it fills.
    pub fn new(api: Api<K>) -> (Store<K>, Self) {
        let (store, writer) = reflector::store_shared(BUFFER);
        (store, Self { api, writer, deletions: Vec::new() })
    }

    /// Every object applied (and every object at each full listing), as the store holds it.
    pub fn subscribe(&self) -> ReflectHandle<K> {
        self.writer.subscribe().expect("a store made by store_shared always has a dispatcher")
    }

    /// Every object deleted, as it last was.
    pub fn deletions(&mut self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        self.deletions.push(tx);
        rx
    }

    /// Watches until dropped (the term's end), filling the store and feeding subscribers.
    pub async fn run(self) {
        let Self { api, writer, deletions } = self;
        reflector(writer, lean_watcher(api))
            .for_each(|event| {
                if let Ok(watcher::Event::Delete(obj)) = event {
                    let obj = Arc::new(obj);
                    for tx in &deletions {
                        let _ = tx.unbounded_send(Arc::clone(&obj));
                    }
                }
                futures::future::ready(())
            })
            .await;
    }
}

/// A change a trigger passes on: the object as applied, or as it was when deleted.
#[derive(Debug, Clone)]
pub enum Touched<K> {
    /// Created or changed (or listed again).
    Applied(Arc<K>),
    /// Gone.
    Deleted(Arc<K>),
}

/// Applies and deletions of one kind, in one stream.
pub fn touched<K>(
    applied: impl Stream<Item = Arc<K>> + Send + 'static,
    deleted: impl Stream<Item = Arc<K>> + Send + 'static,
) -> impl Stream<Item = Touched<K>> + Send + 'static
where
    K: Send + Sync + 'static,
{
    futures::stream::select(applied.map(Touched::Applied), deleted.map(Touched::Deleted))
}

/// The keys among `keys` whose object `store` no longer holds: what a controller remembers of
/// objects that were deleted.
pub fn gone_from<'a, K>(
    store: &Store<K>,
    keys: impl IntoIterator<Item = &'a crate::coordinator::ObjectKey>,
) -> Vec<crate::coordinator::ObjectKey>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    keys.into_iter()
        .filter(|k| store.get(&reflector::ObjectRef::new(&k.name).within(&k.namespace)).is_none())
        .cloned()
        .collect()
}
