//! Continuous delivery (leader only): every Datum with `landing` has its path listed every
//! `pollIntervalSeconds`; complete files are cut into batches, each batch recorded in the
//! ledger and then created as one DeliveryPackage per Destination (split when large); when a
//! package finishes its outcome goes into the ledger before the package may go.
//!
//! Pure parts: [`rules`] (which files are complete), [`batch`] (cutting, names, the package
//! objects), [`ledger`] (the state the entries add up to), [`outcome`] (what a finished
//! package means per file), [`status`]. I/O: [`store`] (the ledger directory), `packages`
//! (the generated DeliveryPackages) and `poll` (one Datum's turn).

pub mod batch;
pub mod ledger;
pub mod metrics;
pub mod outcome;
mod packages;
mod poll;
pub mod rules;
pub mod status;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use courier_api::{Datum, DeliveryPackage};
use kube::runtime::reflector::Store as Cache;
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use self::batch::{DATUM_ANNOTATION, FINALIZER};
use crate::context::Context;
use crate::coordinator::ObjectKey;

/// How often the loop looks at every Datum (polls happen at each Datum's own interval).
const TICK: Duration = Duration::from_secs(1);

/// Runs the landing loop until `term` is cancelled, reading Datums and packages from the
/// term's shared watch caches.
pub async fn run(
    ctx: Arc<Context>,
    client: Client,
    datums: Cache<Datum>,
    packages: Cache<DeliveryPackage>,
    term: CancellationToken,
) {
    let main = async {
        if datums.wait_until_ready().await.is_err() || packages.wait_until_ready().await.is_err() {
            return;
        }
        let mut states: HashMap<ObjectKey, poll::DatumState> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = term.cancelled() => return,
                _ = tick.tick() => {}
            }
            turn(&ctx, &client, &datums, &packages, &mut states).await;
        }
    };
    tokio::select! {
        () = main => {}
        () = term.cancelled() => {}
    }
}

/// One look at every landing Datum, and at packages whose Datum stopped landing.
async fn turn(
    ctx: &Context,
    client: &Client,
    datums: &Cache<Datum>,
    packages: &Cache<DeliveryPackage>,
    states: &mut HashMap<ObjectKey, poll::DatumState>,
) {
    let landing: Vec<Arc<Datum>> = datums.state().into_iter().filter(|d| d.spec.landing.is_some()).collect();
    let keys: HashSet<ObjectKey> =
        landing.iter().map(|d| ObjectKey::new(d.namespace().unwrap_or_default(), d.name_any())).collect();
    states.retain(|k, _| keys.contains(k));
    let all_packages = packages.state();
    for datum in landing {
        let key = ObjectKey::new(datum.namespace().unwrap_or_default(), datum.name_any());
        let state = states.entry(key).or_default();
        let own: Vec<Arc<DeliveryPackage>> = all_packages
            .iter()
            .filter(|p| p.owner_references().iter().any(|o| Some(&o.uid) == datum.uid().as_ref()))
            .cloned()
            .collect();
        poll::step(ctx, client, &datum, &own, state).await;
    }
    release_orphans(client, &all_packages, &keys).await;
}

/// Packages held by the ledger's finalizer whose Datum is gone or no longer lands: nothing
/// will record their outcome, so they are let go once finished.
async fn release_orphans(client: &Client, packages: &[Arc<DeliveryPackage>], landing: &HashSet<ObjectKey>) {
    for p in packages {
        if !p.finalizers().iter().any(|f| f == FINALIZER) {
            continue;
        }
        let datum = p.annotations().get(DATUM_ANNOTATION).cloned().unwrap_or_default();
        let key = ObjectKey::new(p.namespace().unwrap_or_default(), &datum);
        if landing.contains(&key) || (outcome::end_of(p).is_none()) {
            continue;
        }
        tracing::warn!(package = %p.name_any(), datum = %datum, "releasing a landing package whose Datum no longer lands");
        if let Err(err) = packages::release(client, p).await {
            tracing::warn!(%err, package = %p.name_any(), "failed to release a landing package");
        }
    }
}

#[cfg(test)]
mod exactly_once_tests;
