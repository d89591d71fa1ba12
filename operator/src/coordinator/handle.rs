//! The [`Coordinator`] handle shared by the controllers and the heartbeat server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use courier_api::DestinationSpec;
use courier_core::protocol::{
    DestinationConfig, HeartbeatRequest, HeartbeatResponse, LeaseReport, OLDEST_LEASED_VERSION, PROTOCOL_VERSION,
};
use tokio::sync::{broadcast, watch};

use super::destination::DestinationState;
use super::handover;
use super::leases::{LeaseTable, ReportOutcome};
use super::types::{Change, DestinationRuntime, ObjectKey, PackagePlan, PackageSnapshot};
use crate::planner::Millis;

mod gone;
mod term;
use courier_core::aimd::AimdConfig;
use gone::take_reports_of_a_gone_destination;

/// Whether a heartbeat is the farewell of a worker whose pod is gone: its leases are revoked
/// before it is answered (so its reports are their final ones), under the same lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Farewell {
    No,
    Yes,
}

/// Tunables of the coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Lease and share time-to-live (default 15 s): a worker sends a lease's records and at its
    /// share only until this long after it *sent* the heartbeat whose answer renewed them, and
    /// the coordinator counts both as held until this long (plus [`CLOCK_MARGIN_MS`]) after it
    /// answered. It outlasts a leader change (election lease 10 s plus the retry period), so
    /// delivery goes on while no replica leads.
    pub lease_ttl_ms: u32,
    /// How often workers should heartbeat (default 1 s).
    pub heartbeat_interval_ms: u32,
    /// The adaptive limit's tunables.
    pub aimd: AimdConfig,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig { lease_ttl_ms: 15_000, heartbeat_interval_ms: 1_000, aimd: AimdConfig::default() }
    }
}

/// Heartbeat interval asked of a worker whose share is in transition.
pub const TRANSITION_HEARTBEAT_MS: u32 = 100;

/// Heartbeat interval asked of a worker that could use more than its share while others share
/// the Destination: capacity another gives up (a worker killed, drained or idle) reaches it at
/// its next heartbeat, and half a second sooner is half a second more of that capacity used.
pub const HUNGRY_HEARTBEAT_MS: u32 = 500;

/// Slack added to every time-to-live the coordinator counts, for the difference in rate
/// between its clock and a worker's (both monotonic in practice) and for scheduling delays.
pub const CLOCK_MARGIN_MS: Millis = 1_000;

/// Why a heartbeat was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeartbeatError {
    /// The Destination is not known (not created, or deleted).
    #[error("destination {namespace}/{name} is not known to the coordinator")]
    UnknownDestination { namespace: String, name: String },
    /// This replica's coordinator state is not (yet) that of the current leadership term.
    #[error("the coordinator is starting a new leadership term; retry")]
    NotReady,
}

/// Cheap-to-clone handle on the coordinator state. Every method takes the state lock briefly;
/// none does I/O.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    config: CoordinatorConfig,
    version: watch::Sender<u64>,
    changed: broadcast::Sender<Change>,
}

struct State {
    destinations: BTreeMap<ObjectKey, DestinationState>,
    leases: LeaseTable,
    /// Last runtime of each Destination, to notify only real changes on ticks.
    last_runtime: BTreeMap<ObjectKey, RuntimeSignature>,
    /// The leadership term this state belongs to, and when it began (its first
    /// `lease_ttl_ms`, plus margin, is the warm-up: grants of an earlier leader may still be
    /// in force, and leases of packages not loaded yet are not revoked).
    term: Option<(u64, Millis)>,
    /// Reports of leases of packages not loaded yet (during the warm-up), by package: taken
    /// in as soon as the package is, so its shards are not granted to someone else meanwhile.
    orphans: BTreeMap<ObjectKey, Vec<(String, LeaseReport)>>,
}

/// The parts of a Destination's runtime whose change is announced: effective limit, pause,
/// throttled, desired replicas, backlog packages, workers.
type RuntimeSignature = (u32, Option<Millis>, bool, i32, u32, usize, Option<(u64, u64, bool)>);

/// The current time in Unix milliseconds.
pub fn now_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

impl Coordinator {
    /// A coordinator with no Destinations or packages.
    pub fn new(config: CoordinatorConfig) -> Self {
        let (version, _) = watch::channel(0);
        let (changed, _) = broadcast::channel(1024);
        let state = State {
            destinations: BTreeMap::new(),
            leases: LeaseTable::new(u64::from(config.lease_ttl_ms) + CLOCK_MARGIN_MS),
            last_runtime: BTreeMap::new(),
            term: None,
            orphans: BTreeMap::new(),
        };
        Coordinator { inner: Arc::new(Inner { state: Mutex::new(state), config, version, changed }) }
    }

    /// The configuration in force.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state: keep serving.
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The end of the current term's warm-up, if a term began.
    fn warm_up_end(&self, state: &State) -> Option<Millis> {
        state.term.map(|(_, started)| started + u64::from(self.inner.config.lease_ttl_ms) + CLOCK_MARGIN_MS)
    }

    /// Adds or updates a Destination (its spec and `metadata.generation`). A changed limit
    /// takes effect at the workers' next heartbeat. A Destination first seen during a term's
    /// warm-up starts warming up itself (see `DestinationState::begin_warm_up`): until the
    /// worker pods [`Self::set_prior_workers`] names have all reported, or the warm-up ends, its
    /// limit is held back for shares an earlier leader may have granted and no lease is granted.
    pub fn upsert_destination(&self, namespace: &str, name: &str, spec: &DestinationSpec, generation: i64) {
        self.upsert_destination_at(namespace, name, spec, generation, now_ms());
    }

    /// [`Self::upsert_destination`] at a given instant.
    pub fn upsert_destination_at(
        &self,
        namespace: &str,
        name: &str,
        spec: &DestinationSpec,
        generation: i64,
        now: Millis,
    ) {
        let key = ObjectKey::new(namespace, name);
        {
            let mut guard = self.lock();
            let warm_up = self.warm_up_end(&guard).filter(|&end| now < end);
            let state = &mut *guard;
            match state.destinations.get_mut(&key) {
                Some(d) if d.generation == generation && &d.spec == spec => return,
                Some(d) => d.update(spec.clone(), generation, now),
                None => {
                    let mut d = DestinationState::new(key.clone(), spec.clone(), generation, now);
                    if let Some(until) = warm_up {
                        tracing::info!(%namespace, destination = %name, "warm-up: waiting for the workers of an earlier leader to report");
                        d.begin_warm_up(until);
                    }
                    state.destinations.insert(key.clone(), d);
                }
            }
        }
        self.notify([Change::Destination(key)]);
    }

    /// Takes the Destination's `status.quota` as read — (period start, reserved, used) in Unix
    /// ms and requests. The first reading of a term must be fresh from the API server (see
    /// [`Self::needs_quota_restore`]): the ledger restores the period from it.
    pub fn observe_quota_status(&self, namespace: &str, name: &str, status: Option<(u64, u64, u64)>) {
        let now = now_ms();
        if let Some(d) = self.lock().destinations.get_mut(&ObjectKey::new(namespace, name)) {
            d.observe_quota_status(status, now);
        }
    }

    /// Whether the Destination's quota has not been restored from status yet in this term.
    pub fn needs_quota_restore(&self, namespace: &str, name: &str) -> bool {
        self.lock()
            .destinations
            .get_mut(&ObjectKey::new(namespace, name))
            .is_some_and(|d| d.needs_quota_restore(now_ms()))
    }

    /// Forgets a Destination; its workers' heartbeats are refused from now on.
    pub fn remove_destination(&self, namespace: &str, name: &str) {
        let key = ObjectKey::new(namespace, name);
        let removed = {
            let mut state = self.lock();
            state.last_runtime.remove(&key);
            state.destinations.remove(&key).is_some()
        };
        if removed {
            self.notify([Change::Destination(key)]);
        }
    }

    /// Adds a package, or updates its priority/suspension/settings. A changed uid or attempt
    /// replaces the package (the old leases are revoked at their next report). Progress in
    /// `plan.restored` is used only when the package is new to the coordinator.
    pub fn upsert_package(&self, plan: PackagePlan) {
        self.upsert_package_at(plan, now_ms());
    }

    /// [`Self::upsert_package`] at a given instant.
    pub fn upsert_package_at(&self, plan: PackagePlan, now: Millis) {
        let pkey = plan.key.clone();
        let dkey = ObjectKey::new(&plan.key.namespace, &plan.destination);
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            let dest = plan.destination.clone();
            state.leases.upsert_package(plan, now);
            // The worker pods already named: restored leases of those gone end within a TTL.
            if let Some(pods) = state.destinations.get(&dkey).and_then(|d| d.worker_pods.as_ref()) {
                state.leases.hold_restored_for(&pkey.namespace, &dest, pods, now);
            }
            if let Some(orphans) = state.orphans.remove(&pkey) {
                for (worker, report) in orphans {
                    let outcome = state.leases.report(&worker, &report, now);
                    tracing::info!(%worker, package = %report.key.package, shard = report.key.shard, epoch = report.key.lease_epoch, done = report.done, ?outcome, "a lease of an earlier leader reported before its package was loaded");
                }
            }
        }
        self.notify([Change::Package(pkey), Change::Destination(dkey)]);
    }

    /// Forgets a package; its leases are revoked at the next heartbeat of their workers.
    pub fn remove_package(&self, namespace: &str, name: &str) {
        let key = ObjectKey::new(namespace, name);
        let dest = {
            let mut state = self.lock();
            let dest = state.leases.package(&key).map(|p| p.destination.clone());
            state.leases.remove_package(&key);
            dest
        };
        if let Some(dest) = dest {
            self.notify([Change::Package(key), Change::Destination(ObjectKey::new(namespace, dest))]);
        }
    }

    /// Suspends (revokes its leases, grants none) or resumes a package.
    pub fn set_package_suspended(&self, namespace: &str, name: &str, suspended: bool) {
        let key = ObjectKey::new(namespace, name);
        if self.lock().leases.set_suspended(&key, suspended) {
            self.notify([Change::Package(key)]);
        }
    }

    /// [`Self::heartbeat`], answered only when this state belongs to leadership term `term`
    /// (the server passes the term the Lease says this replica holds right now).
    pub fn heartbeat_in_term(
        &self,
        req: &HeartbeatRequest,
        now: Millis,
        term: u64,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        self.answer(req, now, Some(term), Farewell::No)
    }

    /// The package's status as the API holds it lists `completed` shards (of attempt
    /// `attempt` of `uid`): workers that reported those completions are told they are settled.
    pub fn persist_completions(&self, namespace: &str, name: &str, uid: &str, attempt: u32, completed: &[u32]) {
        self.lock().leases.persist_completions(&ObjectKey::new(namespace, name), uid, attempt, completed);
    }

    /// True when the package is known.
    pub fn has_package(&self, namespace: &str, name: &str) -> bool {
        self.lock().leases.package(&ObjectKey::new(namespace, name)).is_some()
    }

    /// The package's progress now.
    pub fn package_snapshot(&self, namespace: &str, name: &str) -> Option<PackageSnapshot> {
        let mut state = self.lock();
        let p = state.leases.package_mut(&ObjectKey::new(namespace, name))?;
        p.sample_rate_clock(now_ms());
        Some(p.snapshot())
    }

    /// The Destination's runtime state now (effective rate, workers, backlog, desired replicas).
    pub fn destination_snapshot(&self, namespace: &str, name: &str) -> Option<DestinationRuntime> {
        self.destination_snapshot_at(namespace, name, now_ms())
    }

    /// [`Self::destination_snapshot`] at a given instant.
    pub fn destination_snapshot_at(&self, namespace: &str, name: &str, now: Millis) -> Option<DestinationRuntime> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let d = state.destinations.get_mut(&ObjectKey::new(namespace, name))?;
        Some(d.runtime(&state.leases, &self.inner.config.aimd, now))
    }

    /// How the partner answers each worker of Destination `namespace/name` (for a stalled
    /// package's reason); empty when the Destination has no worker known.
    pub fn partner_views(&self, namespace: &str, name: &str) -> Vec<courier_core::protocol::PartnerView> {
        let state = self.lock();
        state
            .destinations
            .get(&ObjectKey::new(namespace, name))
            .map(|d| d.workers.values().map(|w| w.stats.partner.clone()).collect())
            .unwrap_or_default()
    }

    /// A counter bumped on every change; `changed().await` on it to wake up.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// Every change, one message per object (a lagging receiver loses old messages and should
    /// resync everything).
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changed.subscribe()
    }

    /// Handles one heartbeat at `now`: renews and takes in its leases, re-shares the limit,
    /// grants new leases and pre-empts for higher priorities.
    pub fn heartbeat(&self, req: &HeartbeatRequest, now: Millis) -> Result<HeartbeatResponse, HeartbeatError> {
        self.answer(req, now, None, Farewell::No)
    }

    fn answer(
        &self,
        req: &HeartbeatRequest,
        now: Millis,
        term: Option<u64>,
        farewell: Farewell,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        let config = &self.inner.config;
        let ttl = u64::from(config.lease_ttl_ms) + CLOCK_MARGIN_MS;
        let dkey = ObjectKey::new(&req.namespace, &req.destination);
        let mut changes = BTreeSet::new();
        let response = {
            let mut guard = self.lock();
            if term.is_some() && guard.term.map(|(t, _)| t) != term {
                return Err(HeartbeatError::NotReady);
            }
            if farewell == Farewell::Yes {
                // In the same hold of the lock as the answer: what it reports now is the final
                // report of each lease.
                let revoked = guard.leases.revoke_worker(&req.worker, &req.namespace, &req.destination);
                if !revoked.is_empty() {
                    tracing::info!(worker = %req.worker, leases = revoked.len(), "a worker whose pod is gone reported: drained, its leases revoked");
                }
            }
            let warming_up = self.warm_up_end(&guard).is_some_and(|end| now < end);
            let state = &mut *guard;
            if !state.destinations.contains_key(&dkey) {
                // The Destination was deleted (its workers are being stopped with it): their
                // last reports still count — checkpoints, completions, leases given back — so
                // the packages resume exactly where they were if it comes back.
                let taken = take_reports_of_a_gone_destination(state, req, now);
                drop(guard);
                self.notify(taken.into_iter().map(Change::Package));
                return Err(HeartbeatError::UnknownDestination {
                    namespace: req.namespace.clone(),
                    name: req.destination.clone(),
                });
            }
            expire(state, now, ttl, &mut changes);
            let Some(dest) = state.destinations.get_mut(&dkey) else {
                return Err(HeartbeatError::UnknownDestination {
                    namespace: req.namespace.clone(),
                    name: req.destination.clone(),
                });
            };
            let observed = dest.observe_worker(req, now);
            if observed.new || observed.restarted {
                changes.insert(Change::Destination(dkey.clone()));
            }
            if observed.restarted {
                // Its container was restarted: the process before is gone, and with it every
                // record it had in flight. Its leases are free now, from their last report.
                let ended = state.leases.release_worker(&req.worker);
                tracing::info!(worker = %req.worker, leases = ended.len(), "worker restarted: its leases are free");
                for key in ended {
                    changes.insert(Change::Package(ObjectKey::new(&key.namespace, &key.package)));
                }
            }
            let before = (dest.aimd.effective(), dest.aimd.paused_until(now));
            dest.aimd.observe(&config.aimd, &req.throttle, now);
            if before != (dest.aimd.effective(), dest.aimd.paused_until(now)) {
                changes.insert(Change::Destination(dkey.clone()));
            }
            let mut revoked = Vec::new();
            let mut settled = Vec::new();
            for report in &req.leases {
                let pkey = ObjectKey::new(&report.key.namespace, &report.key.package);
                if warming_up && report.key.namespace == req.namespace && state.leases.package(&pkey).is_none() {
                    // A new leader may not have loaded this package yet: the worker keeps its
                    // lease, and the report is taken in as soon as the package is.
                    let orphans = state.orphans.entry(pkey).or_default();
                    orphans.retain(|(w, r)| !(w == &req.worker && r.key == report.key));
                    orphans.push((req.worker.clone(), report.clone()));
                    continue;
                }
                let foreign = report.key.namespace != req.namespace
                    || state.leases.package(&pkey).is_some_and(|p| p.destination != req.destination);
                if foreign {
                    // Not a package of this worker's Destination: never taken in.
                    revoked.push(report.key.clone());
                    continue;
                }
                let outcome = state.leases.report_counted_at(&req.worker, report, now, observed.counted_at);
                if state.leases.package(&pkey).is_some() {
                    changes.insert(Change::Package(pkey));
                }
                if report.done && state.leases.completion_persisted(&report.key) {
                    settled.push(report.key.clone());
                }
                match outcome {
                    ReportOutcome::Revoke => {
                        tracing::debug!(worker = %req.worker, package = %report.key.package, shard = report.key.shard, epoch = report.key.lease_epoch, done = report.done, "lease report refused: revoked");
                        revoked.push(report.key.clone());
                    }
                    ReportOutcome::Completed | ReportOutcome::ShardFailed { .. } | ReportOutcome::Released => {
                        changes.insert(Change::Destination(dkey.clone()));
                    }
                    ReportOutcome::Renewed | ReportOutcome::AlreadyCompleted => {}
                }
            }
            // Whatever lease of this worker it did not report, it does not hold.
            let reported: Vec<_> = req.leases.iter().map(|r| r.key.clone()).collect();
            for key in state.leases.release_unreported(&req.worker, &req.namespace, &req.destination, &reported) {
                tracing::debug!(worker = %req.worker, namespace = %key.namespace, package = %key.package, destination = %req.destination, shard = key.shard, "lease not reported: released");
                changes.insert(Change::Package(ObjectKey::new(&key.namespace, &key.package)));
            }
            let revoking = if dest.spec.suspend {
                state.leases.revoke_worker(&req.worker, &req.namespace, &req.destination)
            } else {
                state.leases.revoking_of(&req.worker, &req.namespace, &req.destination)
            };
            for key in revoking {
                if !revoked.contains(&key) {
                    revoked.push(key);
                }
            }
            // While the Destination warms up, a shard that looks pending may still be leased to
            // a worker that has not reported yet: nothing is granted or pre-empted. A worker of an
            // older protocol version may not read every shard kind.
            let grantable = !req.draining
                && !dest.spec.suspend
                && !dest.warming_up(now)
                && req.protocol_version >= OLDEST_LEASED_VERSION;
            // No more than its even share of the work left, so workers joining a moment later
            // find work too.
            let work = state.leases.work(&req.worker, &req.namespace, &req.destination);
            let room = work.room(dest.expected_workers());
            let slots = req.free_slots.min(room);
            let granted = if grantable && slots > 0 {
                state.leases.grant(&req.worker, &req.namespace, &req.destination, slots, now)
            } else {
                Vec::new()
            };
            if grantable
                && req.free_slots == 0
                && let Some(key) = state.leases.preempt(&req.worker, &req.namespace, &req.destination)
            {
                revoked.push(key);
            }
            for g in &granted {
                tracing::debug!(worker = %req.worker, package = %g.key.package, shard = g.key.shard, epoch = g.key.lease_epoch, checkpoint = g.checkpoint, "lease granted");
                changes.insert(Change::Package(ObjectKey::new(&g.key.namespace, &g.key.package)));
            }
            let holds_leases = state.leases.leases_of(&req.worker) > 0;
            let Some(dest) = state.destinations.get_mut(&dkey) else {
                return Err(HeartbeatError::UnknownDestination {
                    namespace: req.namespace.clone(),
                    name: req.destination.clone(),
                });
            };
            dest.set_holds_leases(&req.worker, holds_leases);
            if handover::idle(req.leases.iter().map(|r| r.done), req.draining, granted.len()) {
                dest.set_idle(&req.worker);
            }
            let (share, transition) = dest.share_of(&req.worker, now);
            // When it is likely to finish, for the others to come back then (if any could use it).
            let left = (holds_leases && dest.workers.len() > 1)
                .then(|| state.leases.records_left(&req.worker, &req.namespace, &req.destination))
                .flatten();
            let drains_at = handover::drains_at(now, left, req.stats.requests_per_second, share.requests_per_second);
            dest.set_drains_at(&req.worker, drains_at);
            let hungry = share.requests_per_second < req.demand && dest.workers.len() > 1;
            let still_pending = work.pending.saturating_sub(granted.len());
            let destination = (req.destination_generation != dest.generation)
                .then(|| DestinationConfig { generation: dest.generation, spec: (&dest.spec).into() });
            HeartbeatResponse {
                protocol_version: PROTOCOL_VERSION,
                share,
                pause_until_unix_ms: dest.aimd.paused_until(now),
                destination,
                revoked,
                settled,
                granted,
                // A share in transition is settled sooner: the worker reports what it enforces
                // (or asks for the capacity others gave up) after a short interval.
                heartbeat_interval_ms: if transition {
                    config.heartbeat_interval_ms.min(TRANSITION_HEARTBEAT_MS)
                } else if hungry {
                    // Only a worker with work can use what another gives up; and while a shard is
                    // pending (after this answer's grants), a worker that finishes takes it:
                    // nothing is released.
                    let soonest = dest.soonest_release(&req.worker).filter(|_| holds_leases && still_pending == 0);
                    handover::hungry_interval(
                        now,
                        soonest,
                        config.heartbeat_interval_ms.min(HUNGRY_HEARTBEAT_MS),
                        TRANSITION_HEARTBEAT_MS,
                    )
                } else {
                    config.heartbeat_interval_ms
                },
                lease_ttl_ms: config.lease_ttl_ms,
                term: term.unwrap_or(0),
            }
        };
        self.notify(changes);
        Ok(response)
    }

    /// Expires leases and workers not heard from in time, and notifies Destinations whose
    /// runtime (limit, pause, throttling, desired replicas, backlog) changed. Call about once a
    /// second; heartbeats also expire.
    pub fn tick(&self, now: Millis) {
        let ttl = u64::from(self.inner.config.lease_ttl_ms) + CLOCK_MARGIN_MS;
        let mut changes = BTreeSet::new();
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            expire(state, now, ttl, &mut changes);
            for (key, d) in state.destinations.iter_mut() {
                let r = d.runtime(&state.leases, &self.inner.config.aimd, now);
                let sig = (
                    r.effective_rps,
                    r.paused_until_unix_ms,
                    r.throttled,
                    r.desired_replicas,
                    r.backlog_packages,
                    r.workers.len(),
                    r.quota.map(|q| (q.period.start_unix_ms, q.reserved, q.exhausted)),
                );
                if state.last_runtime.get(key) != Some(&sig) {
                    state.last_runtime.insert(key.clone(), sig);
                    changes.insert(Change::Destination(key.clone()));
                }
            }
        }
        self.notify(changes);
    }

    fn notify(&self, changes: impl IntoIterator<Item = Change>) {
        let mut any = false;
        for change in changes {
            any = true;
            let _ = self.inner.changed.send(change);
        }
        if any {
            self.inner.version.send_modify(|v| *v += 1);
        }
    }
}

/// Expires leases and workers, recording what changed.
fn expire(state: &mut State, now: Millis, ttl: Millis, changes: &mut BTreeSet<Change>) {
    for (_, key) in state.leases.expire(now) {
        let pkey = ObjectKey::new(&key.namespace, &key.package);
        if let Some(p) = state.leases.package(&pkey) {
            changes.insert(Change::Destination(ObjectKey::new(&key.namespace, &p.destination)));
        }
        changes.insert(Change::Package(pkey));
    }
    for (key, d) in state.destinations.iter_mut() {
        if d.expire_workers(now, ttl) {
            changes.insert(Change::Destination(key.clone()));
        }
    }
}
