//! The DeliveryPackage controller: waits for the Destination and Datum, plans the shards,
//! registers the package with the coordinator and rolls its progress into the status.

pub mod build;
pub mod dereference;
pub mod lifecycle;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use courier_api::conditions::{DestinationConditionType, DestinationReason, PackageReason, find_condition};
use courier_api::{Datum, DeliveryPackage, DeliveryPackageStatus, Destination};
use courier_core::format::FormatSpec;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};

pub use self::lifecycle::{collect_garbage, record_phases};
use self::lifecycle::{finished, forget};
use self::plan::PlanError;
use self::publish::write_status;
use self::status::{AttemptInfo, Verdict};
use super::triggers::{datum_fingerprint, destination_fingerprint, relevant_changes};
use super::watches::Touched;
use super::{Error, Result};
use crate::context::Context;
use crate::coordinator::ObjectKey;
use crate::planner::rollup::decode_ranges;

const CONTROLLER: &str = "package";
/// How often a running package is looked at without any change (deadline, status refresh).
const RUNNING_RESYNC: Duration = Duration::from_secs(2);
/// How often a waiting package is looked at again without a change of its Destination or Datum
/// (those trigger a reconcile at once; this is only a safety net).
const WAITING_RESYNC: Duration = Duration::from_secs(300);
/// Packages reconciled at once. Reconciles read their Destination and Datum from watch caches;
/// the bound keeps the apiserver calls some of them make (planning, Events) from opening one
/// connection each (10,000 packages once held 600+ MiB, see docs/benchmarks-operator.md).
const CONCURRENCY: u16 = 16;

/// The controller over the term's shared package watch (`packages`, the store with its
/// subscription), requeueing packages when their Destination or Datum changes in a way they
/// depend on (`destinations`, `datums`) or the coordinator reports progress (`trigger`). Run
/// the future until `shutdown` completes.
pub fn controller(
    ctx: Arc<Context>,
    packages: (Store<DeliveryPackage>, impl futures::Stream<Item = Arc<DeliveryPackage>> + Send + 'static),
    destinations: impl futures::Stream<Item = Touched<Destination>> + Send + 'static,
    datums: impl futures::Stream<Item = Touched<Datum>> + Send + 'static,
    trigger: impl futures::Stream<Item = ObjectRef<DeliveryPackage>> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl std::future::Future<Output = ()> {
    let (store, subscription) = packages;
    let controller = Controller::for_shared_stream(subscription, store.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(CONCURRENCY));
    let by_dest = store.clone();
    let by_datum = store;
    controller
        .watches_shared_stream(relevant_changes(destinations, destination_fingerprint), move |dest| {
            referencing(&by_dest, &dest.namespace().unwrap_or_default(), |p| {
                p.spec.destination_ref.name == dest.name_any()
            })
        })
        .watches_shared_stream(relevant_changes(datums, datum_fingerprint), move |datum| {
            referencing(&by_datum, &datum.namespace().unwrap_or_default(), |p| {
                p.spec.datum_ref.name == datum.name_any()
            })
        })
        .reconcile_on(trigger)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
}

fn referencing(
    store: &Store<DeliveryPackage>,
    namespace: &str,
    refers: impl Fn(&DeliveryPackage) -> bool,
) -> Vec<ObjectRef<DeliveryPackage>> {
    store
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace) && refers(p))
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

fn error_policy(_pkg: Arc<DeliveryPackage>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(%err, "package reconcile failed");
    ctx.metrics.failed(CONTROLLER, err.label());
    Action::requeue(err.retry_after())
}

/// Reconciles one DeliveryPackage.
#[tracing::instrument(skip_all, fields(namespace = pkg.namespace(), package = pkg.name_any(), destination = %pkg.spec.destination_ref.name))]
pub async fn reconcile(pkg: Arc<DeliveryPackage>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_inner(&pkg, &ctx).await;
    ctx.metrics.reconciled(CONTROLLER, if result.is_ok() { "ok" } else { "error" }, started.elapsed());
    result
}

/// The freshest status known: queued by this replica, or else the object's.
fn prior_status(ctx: &Context, pkg: &DeliveryPackage, ns: &str, name: &str) -> DeliveryPackageStatus {
    let from_object = pkg.status.clone().unwrap_or_default();
    match ctx.status.latest_status::<DeliveryPackage>(ns, name) {
        // A status queued here is newer unless the object moved to a later attempt meanwhile.
        Some(queued) if queued.attempt >= from_object.attempt => queued,
        _ => from_object,
    }
}

async fn reconcile_inner(pkg: &DeliveryPackage, ctx: &Context) -> Result<Action> {
    let ns = pkg.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = pkg.name_any();
    let uid = pkg.uid().ok_or(Error::MissingField("uid"))?;
    let key = ObjectKey::new(&ns, &name);
    let prior = prior_status(ctx, pkg, &ns, &name);
    let now = Time(jiff::Timestamp::now());

    let is_finished = status::is_finished(&prior);
    let (attempt_no, nonce, retry_requested) = plan::attempt_for(&prior, is_finished, pkg.spec.retry_nonce.as_deref());
    if is_finished && !retry_requested {
        forget(ctx, &key);
        return finished(pkg, ctx, &prior).await;
    }
    let prior_attempt = u32::try_from(prior.attempt).unwrap_or(0);
    if nonce.as_deref() != pkg.spec.retry_nonce.as_deref() {
        tracing::debug!(attempt = attempt_no, "a new retryNonce waits until this attempt finishes");
    }
    let attempt = AttemptInfo {
        attempt: attempt_no,
        nonce,
        dead_letter_path: plan::dead_letter_path(pkg, attempt_no),
        started_now: retry_requested,
    };

    // dereference + validate. An attempt delivers with the Datum it pinned when it was planned:
    // a Datum changed, not Ready or deleted since does not hold it up or change it.
    let (dest, datum) = dereference::referenced(&ctx.lookups, pkg).await?;
    let kept = plan::pinned_by_attempt(&prior, attempt_no, attempt.started_now);
    let waiting = validate::waiting_for_destination(pkg, dest.as_deref())
        .or_else(|| if kept.is_some() { None } else { validate::waiting_for_datum(pkg, datum.as_deref()) });
    if let Some(waiting) = waiting {
        let new = status::build_status(pkg, &prior, Verdict::Waiting(&waiting), &attempt, &now);
        write_status(ctx, pkg, &prior, new).await;
        return Ok(Action::requeue(WAITING_RESYNC));
    }
    let Some(pinned) = kept.or_else(|| datum.as_deref().map(plan::pin)) else {
        return Ok(Action::requeue(WAITING_RESYNC));
    };

    let is_registered = {
        let registered = ctx.registered();
        registered.get(&key) == Some(&(uid.clone(), attempt_no)) && ctx.coordinator.has_package(&ns, &name)
    };
    let mut files = None;
    if !is_registered {
        if pkg.spec.suspend && prior_attempt == 0 {
            let new = status::build_status(pkg, &prior, Verdict::SuspendedUnplanned, &attempt, &now);
            write_status(ctx, pkg, &prior, new).await;
            return Ok(Action::await_change());
        }
        if let Some(current) = datum.as_deref().and_then(|d| d.metadata.generation)
            && current != pinned.generation
        {
            tracing::info!(
                pinned = pinned.generation,
                current,
                "the Datum changed since this attempt was planned: it keeps the Datum it pinned; the next attempt takes the new one"
            );
        }
        let format = FormatSpec::from(&pinned.format);
        let planned = match build::plan_attempt(pkg, &prior, &attempt, &format, ctx.settings.shard_target_bytes).await {
            Ok(planned) => planned,
            Err(PlanError::NotFound(err)) => {
                let message = err.to_string();
                let new = status::build_status(pkg, &prior, Verdict::SourceNotFound(&message), &attempt, &now);
                write_status(ctx, pkg, &prior, new).await;
                return Ok(Action::await_change());
            }
            Err(PlanError::Unavailable(source)) => {
                let message = source.to_string();
                let new = status::build_status(pkg, &prior, Verdict::SourceUnreachable(&message), &attempt, &now);
                write_status(ctx, pkg, &prior, new).await;
                return Err(Error::Source { package: format!("{ns}/{name}"), source });
            }
        };
        files = Some(planned.files);
        let plan = build::package_plan(pkg, &key, &uid, &attempt, &pinned, planned);
        tracing::info!(shards = plan.shards.len(), attempt = attempt_no, "package planned");
        ctx.coordinator.upsert_package(plan);
        ctx.registered().insert(key.clone(), (uid.clone(), attempt_no));
    } else {
        ctx.coordinator.set_package_suspended(&ns, &name, pkg.spec.suspend);
    }

    // Completions the object's status records (what the API holds, not a write still queued
    // here) are durable: their workers may forget them.
    if let Some(status) = pkg.status.as_ref().filter(|s| u32::try_from(s.attempt).ok() == Some(attempt_no)) {
        let completed = decode_ranges(&status.shards.completed).unwrap_or_default();
        ctx.coordinator.persist_completions(&ns, &name, &uid, attempt_no, &completed);
    }

    let Some(snapshot) = ctx.coordinator.package_snapshot(&ns, &name) else {
        // Not known after all (another term started meanwhile): plan again soon.
        ctx.registered().remove(&key);
        return Ok(Action::requeue(RUNNING_RESYNC));
    };
    let partner = ctx.coordinator.partner_views(&ns, &pkg.spec.destination_ref.name);
    // A used-up quota holds the records until it resets: the package waits, it does not fail.
    let quota_exhausted = dest.as_deref().and_then(|d| d.status.as_ref()).is_some_and(|s| {
        find_condition(&s.conditions, DestinationConditionType::Throttled)
            .is_some_and(|c| c.status == "True" && c.reason == DestinationReason::QuotaExhausted.as_str())
    });
    let waiting = quota_exhausted.then_some(PackageReason::QuotaExhausted);
    let verdict = Verdict::Running { snapshot: &snapshot, files, partner: &partner, waiting };
    let mut new = status::build_status(pkg, &prior, verdict, &attempt, &now);
    new.datum = Some(pinned);
    let done = status::is_finished(&new);
    write_status(ctx, pkg, &prior, new).await;
    if done {
        forget(ctx, &key);
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(Action::requeue(RUNNING_RESYNC))
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod reconcile_tests;
