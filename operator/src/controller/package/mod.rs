//! The DeliveryPackage controller: waits for the Destination and Datum, plans the shards,
//! registers the package with the coordinator and rolls its progress into the status.

pub mod dereference;
pub mod plan;
pub mod progress;
pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use courier_api::conditions::{
    ConditionStatus, DestinationConditionType, DestinationReason, PackageConditionType, PackageReason, find_condition,
};
use courier_api::package::RetryScope;
use courier_api::{Datum, DeliveryPackage, DeliveryPackageStatus, Destination};
use courier_core::format::FormatSpec;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::DeleteParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use self::plan::PlanError;
use self::status::{AttemptInfo, Verdict};
use super::triggers::{datum_fingerprint, destination_fingerprint, relevant_changes};
use super::watches::Touched;
use super::{Error, EventPolicy, Result, publish_condition_changes};
use crate::context::Context;
use crate::coordinator::{ObjectKey, PackagePlan, PlannedShard, RestoredProgress};
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
        let planned = match plan_attempt(pkg, &prior, &attempt, &format, ctx.settings.shard_target_bytes).await {
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
        let plan = PackagePlan {
            key: key.clone(),
            uid: uid.clone(),
            destination: pkg.spec.destination_ref.name.clone(),
            attempt: attempt_no,
            priority: pkg.spec.priority,
            created_unix_ms: pkg
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| u64::try_from(t.0.as_millisecond()).unwrap_or(0)),
            suspended: pkg.spec.suspend,
            backoff_limit: u32::try_from(pkg.spec.backoff_limit).unwrap_or(0),
            datum: plan::pinned_spec(&pinned),
            dead_letter_path: attempt.dead_letter_path.clone(),
            shards: planned.shards,
            restored: planned.restored,
        };
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

/// The shards of this attempt and what is already done of them.
struct Planned {
    shards: Vec<PlannedShard>,
    restored: RestoredProgress,
    files: i32,
}

async fn plan_attempt(
    pkg: &DeliveryPackage,
    prior: &DeliveryPackageStatus,
    attempt: &AttemptInfo,
    format: &FormatSpec,
    target: u64,
) -> Result<Planned, PlanError> {
    let all = plan::list_and_plan(pkg, format, target).await?;
    let files = i32::try_from(all.iter().map(|s| &s.spec.url).collect::<std::collections::BTreeSet<_>>().len())
        .unwrap_or(i32::MAX);
    if attempt.started_now && pkg.spec.retry_scope == RetryScope::FailedRecords {
        let previous = plan::dead_letter_path(pkg, attempt.attempt.saturating_sub(1));
        let dead = dereference::read_dead_letters(&previous).await.map_err(PlanError::Unavailable)?;
        let shards = plan::failed_record_shards(&all, &dead)
            .into_iter()
            .map(|(s, offsets)| with_only_offsets(s, offsets))
            .collect();
        return Ok(Planned { shards, restored: RestoredProgress::default(), files });
    }
    let restored = if attempt.started_now { RestoredProgress::default() } else { plan::restored_from(prior) };
    Ok(Planned { shards: all, restored, files })
}

/// A planned shard restricted to some record offsets.
fn with_only_offsets(shard: PlannedShard, only_offsets: Vec<u64>) -> PlannedShard {
    PlannedShard { only_offsets, ..shard }
}

fn is_true(c: &Condition) -> bool {
    c.status == ConditionStatus::True.as_str()
}

/// A `Progressing=False` past the progress deadline (not the end of a finished package, nor a
/// pause the user asked for).
fn is_stall(c: &Condition) -> bool {
    use courier_api::conditions::PackageReason as R;
    !is_true(c)
        && [
            R::PartnerThrottling,
            R::PartnerFailing,
            R::PartnerUnreachable,
            R::ProgressDeadlineExceeded,
            R::DestinationSuspended,
            R::DestinationNotFound,
            R::DestinationNotReady,
            R::DatumNotFound,
            R::DatumNotReady,
        ]
        .iter()
        .any(|r| r.as_str() == c.reason)
}

/// Events of a package: failures and planning trouble are warnings; a condition the package did
/// not have is announced once it is True.
const EVENTS: EventPolicy = EventPolicy {
    message_matters: false,
    warning: |c| {
        c.type_ == PackageConditionType::Failed.as_str()
            || (c.type_ == PackageConditionType::Planned.as_str() && !is_true(c))
            || (c.type_ == PackageConditionType::Progressing.as_str() && is_stall(c))
    },
    announce_new: is_true,
};

/// Queues the status; urgent (and with Events) when the phase or a condition changed.
async fn write_status(ctx: &Context, pkg: &DeliveryPackage, prior: &DeliveryPackageStatus, new: DeliveryPackageStatus) {
    let (Some(ns), name) = (pkg.namespace(), pkg.name_any()) else { return };
    let urgent = status::significant_change(prior, &new);
    if urgent {
        publish_condition_changes(&ctx.recorder, pkg, &prior.conditions, &new.conditions, &EVENTS).await;
    }
    if let Some(on_object) = &pkg.status {
        ctx.status.observed_status::<DeliveryPackage>(&ns, &name, on_object);
    }
    ctx.status.submit_status::<DeliveryPackage>(&ns, &name, &new, urgent);
}

fn forget(ctx: &Context, key: &ObjectKey) {
    if ctx.registered().remove(key).is_some() {
        ctx.coordinator.remove_package(&key.namespace, &key.name);
    }
}

/// A finished package: delete it once `ttlSecondsAfterFinished` has passed.
async fn finished(pkg: &DeliveryPackage, ctx: &Context, status: &DeliveryPackageStatus) -> Result<Action> {
    let (Some(ttl), Some(done)) = (pkg.spec.ttl_seconds_after_finished, status.completion_time.as_ref()) else {
        return Ok(Action::await_change());
    };
    let left = done.0.as_second() + i64::from(ttl) - jiff::Timestamp::now().as_second();
    if left > 0 {
        return Ok(Action::requeue(Duration::from_secs(left.unsigned_abs())));
    }
    let ns = pkg.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = pkg.name_any();
    Api::<DeliveryPackage>::namespaced(ctx.client.clone(), &ns)
        .delete(&name, &DeleteParams::background())
        .await
        .map_err(|source| Error::Delete { what: format!("DeliveryPackage {ns}/{name}"), source })?;
    ctx.status.forget_status::<DeliveryPackage>(&ns, &name);
    tracing::info!("deleted after ttlSecondsAfterFinished");
    Ok(Action::await_change())
}

/// Sets the packages-by-phase gauge and the per-package series from the watch cache.
pub fn record_phases(ctx: &Context, store: &Store<DeliveryPackage>) {
    let figures: Vec<_> = store.state().iter().map(|p| crate::metrics::PackageFigures::of(p)).collect();
    ctx.metrics.record_packages(&figures);
    let mut counts: std::collections::BTreeMap<String, i64> =
        ["Pending", "Waiting", "Running", "Suspended", "Complete", "Failed"]
            .into_iter()
            .map(|p| (p.to_owned(), 0))
            .collect();
    for pkg in store.state() {
        let phase =
            pkg.status.as_ref().and_then(|s| s.phase).map_or_else(|| "Pending".to_owned(), |p| format!("{p:?}"));
        *counts.entry(phase).or_default() += 1;
    }
    for (phase, n) in counts {
        ctx.metrics.packages_by_phase.get_or_create(&crate::metrics::PhaseLabel { phase }).set(n);
    }
}

/// Removes packages that no longer exist from the coordinator and the status writer.
pub fn collect_garbage(ctx: &Context, store: &Store<DeliveryPackage>) {
    let gone: Vec<ObjectKey> = ctx
        .registered()
        .keys()
        .filter(|k| store.get(&ObjectRef::new(&k.name).within(&k.namespace)).is_none())
        .cloned()
        .collect();
    for key in gone {
        tracing::info!(namespace = %key.namespace, name = %key.name, "package deleted");
        forget(ctx, &key);
        ctx.status.forget_status::<DeliveryPackage>(&key.namespace, &key.name);
    }
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod reconcile_tests;
