//! The Destination controller: one worker Deployment per Destination, scaled by the
//! coordinator's autoscaler, and the Destination's status.

pub mod apply;
pub mod build;
pub mod dereference;
pub mod reapply;
pub mod secret_index;
pub mod status;
pub mod validate;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use courier_api::conditions::{ConditionStatus, DestinationConditionType, DestinationReason, find_condition};
use courier_api::destination::Backlog;
use courier_api::{Destination, DestinationStatus};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt};

use self::dereference::{CheckedSecrets, SecretsSeen};
use self::reapply::AppliedObjects;
use self::secret_index::SecretIndex;
use self::status::{DestinationFigures, RefusedCredentials, Throttle};
use super::watches::gone_from;
use super::{Error, EventPolicy, Result, publish, publish_condition_changes};
use crate::context::Context;
use crate::coordinator::{DestinationRuntime, ObjectKey};
use crate::metrics::DestinationLabels;

const CONTROLLER: &str = "destination";
/// How often a Destination is looked at even without events (autoscaling, status figures). Its
/// ServiceAccount and Deployment are applied only when they change ([`reapply`]).
const RESYNC: Duration = Duration::from_secs(3);

/// What the Destination controller's reconciles share besides the operator's context.
pub struct DestinationContext {
    pub ctx: Arc<Context>,
    /// The worker Deployments, as watched (what the API server has).
    pub deployments: Store<Deployment>,
    /// What was applied last, so an unchanged object is not applied again.
    pub applied: Arc<AppliedObjects>,
    /// Secrets found complete, so they are not read again while unchanged.
    pub secrets: Arc<CheckedSecrets>,
    /// Which Destinations name which Secrets; each reconcile records its own.
    pub naming: Arc<SecretIndex>,
    /// The watched Secrets' metadata (resource versions), to tell whether they changed.
    pub secrets_seen: SecretsSeen,
}

/// What the Destination controller remembers for a term (the last applies, the Secrets found
/// complete), shared with the garbage collection that forgets deleted Destinations.
#[derive(Debug, Default, Clone)]
pub struct Memory {
    pub applied: Arc<AppliedObjects>,
    pub secrets: Arc<CheckedSecrets>,
    /// Which Destinations name which Secrets (what a Secret change reconciles).
    pub naming: Arc<SecretIndex>,
}

impl Memory {
    /// Forgets what belongs to Destinations no longer in `store`: their Secrets and Deployment,
    /// and a namespace's worker ServiceAccount once no Destination is left there. Returns how
    /// many entries were forgotten.
    pub fn forget_deleted(&self, store: &Store<Destination>) -> usize {
        let live = store.state();
        let uids: HashSet<String> = live.iter().filter_map(|d| d.uid()).collect();
        let namespaces: HashSet<String> = live.iter().filter_map(|d| d.namespace()).collect();
        let deployments: HashSet<(String, String)> =
            live.iter().filter_map(|d| Some((d.namespace()?, build::deployment_name(&d.name_any())))).collect();
        let objects = self.applied.retain(|kind, namespace, name| match kind {
            apply::DEPLOYMENT => deployments.contains(&(namespace.to_owned(), name.to_owned())),
            apply::SERVICE_ACCOUNT => namespaces.contains(namespace),
            _ => true,
        });
        let named: HashSet<(String, String)> =
            live.iter().filter_map(|d| Some((d.namespace()?, d.name_any()))).collect();
        let dropped = self.naming.retain(|ns, name| named.contains(&(ns.to_owned(), name.to_owned())));
        objects + self.secrets.retain(&uids) + dropped
    }
}

/// The controller over the term's shared Destination watch (`destinations`, the store with
/// its subscription), its own watch of worker Deployments and its watch of Secrets' metadata
/// (a change reconciles the Destinations that name the Secret); run the future until
/// `shutdown` completes.
pub fn controller(
    ctx: Arc<Context>,
    destinations: (Store<Destination>, impl futures::Stream<Item = Arc<Destination>> + Send + 'static),
    (deployments, secrets): (Api<Deployment>, Api<PartialObjectMeta<Secret>>),
    trigger: impl futures::Stream<Item = ObjectRef<Destination>> + Send + 'static,
    memory: Memory,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> impl std::future::Future<Output = ()> {
    let (store, subscription) = destinations;
    let (reader, writer) = reflector::store();
    let watched = reflector(
        writer,
        watcher(deployments, watcher::Config::default().labels(build::DESTINATION_LABEL))
            .default_backoff()
            .modify(|d| d.managed_fields_mut().clear()),
    )
    .touched_objects();
    // Metadata only (an `Api` of `PartialObjectMeta`): the API server never sends the operator
    // a Secret's data through this watch. A watch that is not allowed (an older chart's RBAC)
    // backs off and retries; the reconciles then read every Secret they need.
    let (secrets_seen, secrets_writer) = reflector::store();
    let secret_changes = reflector(
        secrets_writer,
        watcher(secrets, watcher::Config::default()).default_backoff().modify(|s| s.managed_fields_mut().clear()),
    )
    .touched_objects();
    let naming = memory.naming.clone();
    let controller = Controller::for_shared_stream(subscription, store);
    let dctx = Arc::new(DestinationContext {
        ctx,
        deployments: reader,
        applied: memory.applied,
        secrets: memory.secrets,
        naming: memory.naming,
        secrets_seen,
    });
    controller
        .owns_stream(watched)
        .watches_stream(secret_changes, move |secret| {
            naming.naming(&secret.namespace().unwrap_or_default(), &secret.name_any())
        })
        .reconcile_on(trigger)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, dctx)
        .for_each(|_| futures::future::ready(()))
}

/// Tells the coordinator about Destinations that no longer exist, and forgets what the
/// controller remembered of them.
pub fn collect_garbage(ctx: &Context, store: &Store<Destination>, memory: &Memory) {
    let gone = gone_from(store, ctx.destinations().iter());
    for key in gone {
        tracing::info!(namespace = %key.namespace, name = %key.name, "destination deleted");
        ctx.coordinator.remove_destination(&key.namespace, &key.name);
        ctx.destinations().remove(&key);
        ctx.status.forget_status::<Destination>(&key.namespace, &key.name);
        ctx.metrics.forget_destination(&key.namespace, &key.name);
    }
    let forgotten = memory.forget_deleted(store);
    if forgotten > 0 {
        tracing::debug!(forgotten, "forgot the applies and Secrets of deleted Destinations");
    }
}

fn error_policy(_dest: Arc<Destination>, err: &Error, dctx: Arc<DestinationContext>) -> Action {
    tracing::warn!(%err, "destination reconcile failed");
    dctx.ctx.metrics.failed(CONTROLLER, err.label());
    Action::requeue(err.retry_after())
}

/// Reason of the Event telling a change of the worker count and why.
pub const SCALED: &str = "Scaled";

/// The note of a [`SCALED`] Event when the worker count changes from what status last showed
/// to `replicas`: the two counts and the coordinator's reason (rate, capacity per worker by
/// Little's law, leasable shards, bounds; or the backlog and cooldown).
pub fn scaled_note(dest: &Destination, runtime: Option<&DestinationRuntime>, replicas: i32) -> Option<String> {
    let before = dest.status.as_ref().map_or(0, |s| s.workers.desired);
    let reason = &runtime?.desired_reason;
    (before != replicas && !reason.is_empty()).then(|| format!("workers {before} → {replicas}: {reason}"))
}

/// Reconciles one Destination.
#[tracing::instrument(skip_all, fields(namespace = dest.namespace(), name = dest.name_any()))]
pub async fn reconcile(dest: Arc<Destination>, dctx: Arc<DestinationContext>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_inner(&dest, &dctx).await;
    let label = if result.is_ok() { "ok" } else { "error" };
    dctx.ctx.metrics.reconciled(CONTROLLER, label, started.elapsed());
    result
}

async fn reconcile_inner(dest: &Destination, dctx: &DestinationContext) -> Result<Action> {
    let ctx = &dctx.ctx;
    let ns = dest.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = dest.name_any();
    let generation = dest.metadata.generation.unwrap_or_default();

    // dereference + validate
    let needed = dereference::needed_keys(dest);
    // Recorded before the Secrets are read: a change after the read reconciles this again.
    dctx.naming.set(&ns, &name, needed.iter().map(|n| n.secret.as_str()));
    let uid = dest.uid().unwrap_or_default();
    let cached =
        dctx.secrets.fresh(&uid, generation, |secret| dereference::seen_version(&dctx.secrets_seen, &ns, secret));
    let secrets = match cached {
        Some(found) => validate::check_secrets(&needed, &found),
        None => {
            let (found, versions) = dereference::fetch_secret_keys(&ctx.client, &ns, &needed)
                .await
                .map_err(|source| Error::Dereference { what: format!("Secrets of Destination {ns}/{name}"), source })?;
            let checked = validate::check_secrets(&needed, &found);
            if checked.is_ok() {
                dctx.secrets.remember(&uid, generation, versions, found);
            } else {
                dctx.secrets.forget(&uid);
            }
            checked
        }
    };
    let invalid = secrets.err().or_else(|| validate::check_time_zone(dest).err());

    // The coordinator always knows the spec (shares, pause, suspension).
    ctx.coordinator.upsert_destination(&ns, &name, &dest.spec, generation);
    ctx.destinations().insert(ObjectKey::new(&ns, &name));
    let watched = dctx.deployments.get(&ObjectRef::new(&build::deployment_name(&name)).within(&ns));
    if let Some(replicas) = watched.as_ref().and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas) {
        // A new leader starts from the workers running, not from none (they may be delivering).
        ctx.coordinator.observe_worker_replicas(&ns, &name, replicas);
    }
    let runtime = ctx.coordinator.destination_snapshot(&ns, &name);

    // build + apply (not while a Secret is missing: the pods could not start)
    let deployment = match &invalid {
        Some(_) => watched.map(Arc::unwrap_or_clone),
        None => {
            let replicas = desired_replicas(dest, runtime.as_ref());
            let sa = build::service_account(&ns);
            apply::service_account_on_change(&ctx.client, &dctx.applied, &ctx.metrics, &sa).await?;
            let built = build::deployment(dest, &ctx.settings.worker, replicas);
            let applied =
                apply::deployment_on_change(&ctx.client, &dctx.applied, &ctx.metrics, &built, watched).await?;
            if let Some(note) = scaled_note(dest, runtime.as_ref(), replicas) {
                publish(&ctx.recorder, dest, false, SCALED, note).await;
            }
            Some(applied)
        }
    };

    // A new leader waits for the worker pods of an earlier one to report their shares and
    // leases before granting anything; it learns here which pods those are.
    if ctx.coordinator.needs_prior_workers(&ns, &name) {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        let selector = format!("{}={}", build::DESTINATION_LABEL, name);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| Error::Dereference { what: format!("worker pods of {ns}/{name}"), source })?;
        let prior =
            list.items.iter().filter(|p| may_have_heard_an_earlier_leader(p)).filter_map(|p| p.metadata.name.clone());
        ctx.coordinator.set_prior_workers(&ns, &name, prior.collect());
    }

    // The quota: a leader restores the period from status read fresh from the API server (the
    // earlier leader granted within what it had read back from there); afterwards every
    // reconcile hands it what status holds, which is how its own reservations come back.
    let quota_status = if ctx.coordinator.needs_quota_restore(&ns, &name) {
        let api: Api<Destination> = Api::namespaced(ctx.client.clone(), &ns);
        let fresh = api
            .get_status(&name)
            .await
            .map_err(|source| Error::Dereference { what: format!("status of Destination {ns}/{name}"), source })?;
        fresh.status.and_then(|s| s.quota)
    } else {
        dest.status.as_ref().and_then(|s| s.quota.clone())
    };
    ctx.coordinator.observe_quota_status(&ns, &name, quota_status.as_ref().and_then(status::quota_reading));
    let runtime = if quota_status.is_some() || dest.spec.rate_limit.requests_per_day.is_some() {
        ctx.coordinator.destination_snapshot(&ns, &name)
    } else {
        runtime
    };

    // status
    let figures = figures(dest, runtime.as_ref(), deployment.as_ref());
    record_metrics(ctx, &ns, &name, dest.spec.rate_limit.requests_per_second, &figures);
    let now = Time(jiff::Timestamp::now());
    let new_status = status::build_status(dest, invalid.as_ref(), &figures, &now);
    let old_status = dest.status.clone().unwrap_or_default();
    let urgent = conditions_changed(&old_status, &new_status);
    if urgent {
        publish_condition_changes(&ctx.recorder, dest, &old_status.conditions, &new_status.conditions, &EVENTS).await;
    }
    ctx.status.submit_status::<Destination>(&ns, &name, &new_status, urgent);
    Ok(Action::requeue(RESYNC))
}

/// Whether a worker pod, listed by a leader whose term has begun, may hold a share or lease
/// granted by an earlier leader. A pod without an IP address has never sent a heartbeat, and
/// the earlier leader grants nothing any more: it cannot (so a replacement pod still starting
/// does not hold the warm-up up). A pod that is terminating may still be sending.
pub fn may_have_heard_an_earlier_leader(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).is_some_and(|ip| !ip.is_empty())
}

/// Replicas to run: none while suspended, otherwise what the autoscaler wants within bounds.
pub fn desired_replicas(dest: &Destination, runtime: Option<&DestinationRuntime>) -> i32 {
    if dest.spec.suspend {
        return 0;
    }
    let workers = &dest.spec.workers;
    let wanted = runtime.map_or(workers.min, |r| r.desired_replicas);
    wanted.clamp(workers.min.max(0), workers.max.max(workers.min.max(0)))
}

fn figures(
    dest: &Destination,
    runtime: Option<&DestinationRuntime>,
    deployment: Option<&Deployment>,
) -> DestinationFigures {
    let ready = deployment.and_then(|d| d.status.as_ref()).and_then(|s| s.ready_replicas).unwrap_or(0);
    let desired = deployment.and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas).unwrap_or(0);
    let Some(r) = runtime else {
        return DestinationFigures { desired, ready, ..Default::default() };
    };
    let throttle = match (r.throttled, r.throttled_reason) {
        (false, _) => None,
        (true, Some(reason)) if reason == DestinationReason::RetryAfter.as_str() => Some(Throttle::RetryAfter),
        (true, _) => Some(Throttle::RateLimited),
    };
    let paused_until = r
        .paused_until_unix_ms
        .and_then(|ms| jiff::Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok())
        .filter(|t| *t > jiff::Timestamp::now())
        .map(Time);
    let _ = dest;
    let refused: Vec<_> = r.workers.iter().filter_map(|w| w.stats.credentials_refused.as_ref()).collect();
    let credentials = refused.first().map(|first| RefusedCredentials {
        status: first.status,
        workers: refused.len(),
        holding: refused.iter().filter(|c| c.holding).count(),
    });
    DestinationFigures {
        desired,
        ready,
        effective_requests_per_second: Some(i32::try_from(r.effective_rps).unwrap_or(i32::MAX)),
        paused_until,
        backlog: Backlog {
            packages: i32::try_from(r.backlog_packages).unwrap_or(i32::MAX),
            records: i64::try_from(r.backlog_records_estimate).unwrap_or(i64::MAX),
            bytes: i64::try_from(r.backlog_bytes).unwrap_or(i64::MAX),
        },
        active_packages: i32::try_from(r.backlog_packages).unwrap_or(i32::MAX),
        throttle,
        quota: r.quota,
        credentials,
    }
}

fn record_metrics(ctx: &Context, ns: &str, name: &str, limit: i32, f: &DestinationFigures) {
    let labels = DestinationLabels { namespace: ns.to_owned(), destination: name.to_owned() };
    ctx.metrics.workers_desired.get_or_create(&labels).set(i64::from(f.desired));
    ctx.metrics.workers_ready.get_or_create(&labels).set(i64::from(f.ready));
    ctx.metrics.backlog_records.get_or_create(&labels).set(f.backlog.records);
    ctx.metrics
        .effective_limit
        .get_or_create(&labels)
        .set(i64::from(f.effective_requests_per_second.unwrap_or_default()));
    ctx.metrics.limit.get_or_create(&labels).set(i64::from(limit));
    ctx.metrics.throttled.get_or_create(&labels).set(i64::from(f.throttle.is_some()));
}

/// Whether any condition's status or reason changed (an urgent status write).
fn conditions_changed(old: &DestinationStatus, new: &DestinationStatus) -> bool {
    new.conditions
        .iter()
        .any(|c| find_condition(&old.conditions, &c.type_).is_none_or(|o| o.status != c.status || o.reason != c.reason))
        || old.observed_generation != new.observed_generation
        || old.workers != new.workers
        || old.quota.as_ref().map(|q| (q.reserved, &q.period_start))
            != new.quota.as_ref().map(|q| (q.reserved, &q.period_start))
}

fn is_true(c: &Condition) -> bool {
    c.status == ConditionStatus::True.as_str()
}

fn is_ready_type(c: &Condition) -> bool {
    c.type_ == DestinationConditionType::Ready.as_str()
}

/// A Destination's condition is a warning when it is Ready=False, or Degraded, Throttled or
/// CredentialsRefused True.
fn is_warning(c: &Condition) -> bool {
    if is_ready_type(c) {
        !is_true(c)
    } else {
        (c.type_ == DestinationConditionType::Degraded.as_str()
            || c.type_ == DestinationConditionType::Throttled.as_str()
            || c.type_ == DestinationConditionType::CredentialsRefused.as_str())
            && is_true(c)
    }
}

/// Events of a Destination. A new object starts with several False conditions nobody needs an
/// Event for: of those only Ready and warnings are announced.
const EVENTS: EventPolicy =
    EventPolicy { message_matters: false, warning: is_warning, announce_new: |c| is_warning(c) || is_ready_type(c) };

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(suspend: bool) -> Destination {
        serde_norway::from_str(&format!(
            "apiVersion: courier.dev/v1alpha1\nkind: Destination\nmetadata: {{ name: d, namespace: ns }}\nspec:\n  endpoint: {{ url: \"http://127.0.0.1:1/\" }}\n  rateLimit: {{ requestsPerSecond: 10 }}\n  workers: {{ min: 1, max: 3 }}\n  suspend: {suspend}\n"
        ))
        .expect("valid Destination")
    }

    fn runtime(desired: i32) -> DestinationRuntime {
        DestinationRuntime {
            key: ObjectKey::new("ns", "d"),
            generation: 1,
            effective_rps: 10,
            paused_until_unix_ms: None,
            throttled: false,
            throttled_reason: None,
            workers: Vec::new(),
            capacity_per_worker_rps: 100,
            backlog_records_estimate: 0,
            backlog_bytes: 0,
            backlog_packages: 0,
            leasable_shards: 0,
            desired_replicas: desired,
            desired_reason: String::new(),
            quota: None,
        }
    }

    #[test]
    fn a_suspended_destination_runs_no_workers() {
        assert_eq!(desired_replicas(&dest(true), Some(&runtime(3))), 0);
    }

    #[test]
    fn the_autoscaler_decision_is_kept_within_min_and_max() {
        assert_eq!(desired_replicas(&dest(false), Some(&runtime(0))), 1);
        assert_eq!(desired_replicas(&dest(false), Some(&runtime(2))), 2);
        assert_eq!(desired_replicas(&dest(false), Some(&runtime(9))), 3);
        assert_eq!(desired_replicas(&dest(false), None), 1, "min until the coordinator knows better");
    }

    #[test]
    fn a_change_of_the_worker_count_is_told_with_the_coordinators_reason() {
        let reason = "3000 rps at 800 rps per worker needs 4; 12 leasable shards; bounds 0..8";
        let with =
            |desired: i32, reason: &str| DestinationRuntime { desired_reason: reason.into(), ..runtime(desired) };
        let mut shown = dest(false);
        shown.status = Some(DestinationStatus {
            workers: courier_api::destination::WorkerCounts { desired: 4, ready: 4 },
            ..Default::default()
        });
        // (destination, runtime, replicas now, note)
        let cases = [
            (dest(false), Some(with(4, reason)), 4, Some(format!("workers 0 → 4: {reason}"))),
            (shown.clone(), Some(with(4, reason)), 4, None),
            (
                shown.clone(),
                Some(with(0, "no backlog: scaled to min 0")),
                0,
                Some("workers 4 → 0: no backlog: scaled to min 0".to_owned()),
            ),
            (dest(false), None, 1, None),
            (dest(false), Some(with(1, "")), 1, None),
        ];
        for (i, (d, r, replicas, note)) in cases.into_iter().enumerate() {
            assert_eq!(scaled_note(&d, r.as_ref(), replicas), note, "case {i}");
        }
    }

    #[test]
    fn only_pods_with_an_address_may_hold_an_earlier_leaders_grants() {
        use k8s_openapi::api::core::v1::PodStatus;
        let pod = |ip: Option<&str>, terminating: bool| Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("w".into()),
                deletion_timestamp: terminating.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            status: ip.map(|ip| PodStatus { pod_ip: Some(ip.into()), ..Default::default() }),
            ..Default::default()
        };
        for (ip, terminating, may) in [
            (Some("10.88.0.7"), false, true),
            (Some("10.88.0.7"), true, true),
            (Some(""), false, false),
            (None, false, false),
            (None, true, false),
        ] {
            assert_eq!(
                may_have_heard_an_earlier_leader(&pod(ip, terminating)),
                may,
                "{ip:?} terminating {terminating}"
            );
        }
    }
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod reconcile_tests;
