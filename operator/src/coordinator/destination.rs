//! A Destination's coordinator state: its adaptive limit, its workers and their shares.

use std::collections::BTreeMap;

use courier_api::DestinationSpec;
use courier_core::protocol::{HeartbeatRequest, QUOTA_VERSION, RateShare, WorkerStats};
use courier_core::quota::Period;

use super::leases::{LeaseTable, ShardState};
use super::quota::QuotaLedger;
use super::types::{DestinationRuntime, ObjectKey, WorkerRuntime};
use crate::planner::Millis;
use crate::planner::autoscale::{self, AutoscaleInput};
use crate::planner::rollup::WorkerClock;
use crate::planner::shares::{self, WorkerShare};
use courier_core::aimd::{AimdConfig, AimdState};

/// A worker as last heard.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct WorkerEntry {
    pub demand: u32,
    pub granted: u32,
    pub applied: u32,
    pub last_seen: Millis,
    pub draining: bool,
    /// Capacity this worker gave up lately, still counted until `released_until`
    /// (see [`RELEASE_SETTLE_MS`]).
    pub released: u32,
    pub released_until: Millis,
    /// The worker process's random incarnation (0: unknown).
    pub incarnation: u64,
    /// Holds at least one live lease (weighs in even before it reports a demand).
    pub holds_leases: bool,
    pub stats: WorkerStats,
    /// The protocol version it speaks (quota allowances need [`QUOTA_VERSION`]).
    pub protocol_version: u32,
    /// Its clock against the leader's, to stamp its reports when they were taken.
    pub clock: WorkerClock,
    /// When it is expected to have sent the last record of its leases (see
    /// [`super::handover`]), as estimated at its last heartbeat.
    pub drains_at: Option<Millis>,
}

/// How long capacity a worker gave up (a smaller share applied, or draining) stays counted
/// against the limit before another worker may take it. The requests it sent just before may
/// still be on their way or queued at the partner, which counts arrivals: handing the capacity
/// over at once lets the two overlap by a network's or a stalled process's worth of requests,
/// more than a strict partner's small burst absorbs. A tenth of a second costs at most a tenth
/// of a second of the released share, and only at a handover.
pub const RELEASE_SETTLE_MS: Millis = 100;

impl WorkerEntry {
    /// What the planner counts as applied at `now`: the share it reports enforcing, or what it
    /// gave up within [`RELEASE_SETTLE_MS`].
    fn applied_at(&self, now: Millis) -> u32 {
        if now < self.released_until { self.applied.max(self.released) } else { self.applied }
    }
}

/// What a heartbeat told about its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Observed {
    /// First heard of.
    pub new: bool,
    /// A new process under a name already known: the previous one has ended.
    pub restarted: bool,
    /// When the worker took the counters it reports, on the leader's clock (≤ now).
    pub counted_at: Millis,
}

/// What a new leader does not know yet about a Destination: which shares and leases an earlier
/// leader granted. See [`DestinationState::begin_warm_up`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct WarmUp {
    /// When every earlier grant has lapsed for sure.
    pub until: Millis,
    /// Workers that reported in this term (their shares and leases are known).
    pub reported: std::collections::BTreeSet<String>,
    /// The worker pods that existed when the term began (and still do), once the Destination
    /// controller said: when all of them have reported, nothing is unknown any more.
    pub prior: Option<std::collections::BTreeSet<String>>,
}

impl WarmUp {
    fn over(&self, now: Millis) -> bool {
        now >= self.until || self.prior.as_ref().is_some_and(|p| p.is_subset(&self.reported))
    }
}

/// One Destination.
#[derive(Debug, Clone)]
pub(super) struct DestinationState {
    pub key: ObjectKey,
    pub spec: DestinationSpec,
    pub generation: i64,
    pub aimd: AimdState,
    pub workers: BTreeMap<String, WorkerEntry>,
    pub idle_since: Option<Millis>,
    /// The workers' median latency when last measured: kept when they scale to zero, so the
    /// next backlog starts at the count it needs.
    pub last_latency_micros: Option<u64>,
    pub last_desired: i32,
    /// Whether `last_desired` has been set from the worker Deployment as this term found it.
    pub replicas_seen: bool,
    pub warm_up: Option<WarmUp>,
    /// The quota's ledger, when the spec has `requestsPerDay`.
    pub quota: Option<QuotaLedger>,
    /// The worker pods that existed when the controller last named them (in this term).
    pub worker_pods: Option<std::collections::BTreeSet<String>>,
}

impl DestinationState {
    pub fn new(key: ObjectKey, spec: DestinationSpec, generation: i64, now: Millis) -> Self {
        let aimd = AimdState::new(spec_rps(&spec), now);
        DestinationState {
            key,
            spec,
            generation,
            aimd,
            workers: BTreeMap::new(),
            idle_since: None,
            last_latency_micros: None,
            last_desired: 0,
            replicas_seen: false,
            warm_up: None,
            quota: None,
            worker_pods: None,
        }
    }

    /// The quota period holding `now`, when the spec has a quota. An unknown time zone counts
    /// as UTC here (the controller reports it and runs no workers for such a Destination).
    pub fn quota_period(&self, now: Millis) -> Option<(u64, Period)> {
        let rl = &self.spec.rate_limit;
        let limit = u64::try_from(rl.requests_per_day?).ok()?;
        let tz = courier_core::quota::time_zone(rl.quota_time_zone()).unwrap_or(jiff::tz::TimeZone::UTC);
        let period = courier_core::quota::period_at(now, rl.quota_window(), &tz).ok()?;
        Some((limit, period))
    }

    /// Brings the quota's ledger to `now`: created, rolled to a new period, or dropped.
    pub fn advance_quota(&mut self, now: Millis) -> Option<&mut QuotaLedger> {
        match (self.quota_period(now), &mut self.quota) {
            (None, q) => *q = None,
            (Some((limit, period)), Some(q)) => q.roll(limit, period),
            (Some((limit, period)), q @ None) => *q = Some(QuotaLedger::new(limit, period)),
        }
        self.quota.as_mut()
    }

    /// Takes `status.quota` as read: (period start, reserved, used).
    pub fn observe_quota_status(&mut self, status: Option<(u64, u64, u64)>, now: Millis) {
        if let Some(q) = self.advance_quota(now) {
            q.observe_persisted(status);
        }
    }

    /// Whether the quota's ledger has not been restored from status yet.
    pub fn needs_quota_restore(&mut self, now: Millis) -> bool {
        self.advance_quota(now).is_some_and(|q| q.base.is_none())
    }

    /// A new leader does not know which shares and leases the last one granted: they stay in
    /// force at the workers until their time-to-live runs out (`until`). Until then, or until
    /// every worker pod that existed has reported, no share grows: a worker keeps what it
    /// reports enforcing (or less, if its target is smaller) and a new one gets nothing — so
    /// the sum of shares in force never exceeds the limit across the leader change, even if
    /// the limit was lowered meanwhile, while workers that report go on sending — and no lease
    /// is granted, since a shard that looks pending may still be leased to a worker that has
    /// not reported yet.
    pub fn begin_warm_up(&mut self, until: Millis) {
        self.warm_up = Some(WarmUp { until, ..WarmUp::default() });
    }

    /// The worker pods that exist now (names). The first call names the pods of the earlier
    /// leader's time (they may hold its grants); later calls only drop those that are gone —
    /// a pod created since cannot hold an earlier grant. The warm-up waits for the rest.
    pub fn prior_workers(&mut self, pods: impl IntoIterator<Item = String>) {
        if let Some(w) = &mut self.warm_up {
            let now: std::collections::BTreeSet<String> = pods.into_iter().collect();
            w.prior = Some(match w.prior.take() {
                None => now,
                Some(prior) => prior.intersection(&now).cloned().collect(),
            });
        }
    }

    /// True while an earlier leader's grants may be unknown.
    pub fn warming_up(&mut self, now: Millis) -> bool {
        match &self.warm_up {
            Some(w) if !w.over(now) => true,
            Some(w) => {
                let unreported: Vec<&String> = w.prior.iter().flatten().filter(|p| !w.reported.contains(*p)).collect();
                if now >= w.until {
                    tracing::info!(
                        namespace = %self.key.namespace, destination = %self.key.name, ?unreported,
                        "warm-up over: every grant of an earlier leader has lapsed"
                    );
                } else {
                    tracing::info!(
                        namespace = %self.key.namespace, destination = %self.key.name, workers = w.reported.len(),
                        "warm-up over: every worker pod reported"
                    );
                }
                self.warm_up = None;
                false
            }
            None => false,
        }
    }

    /// The worker Deployment's replicas as first found in this term: the autoscaler starts
    /// from them. A new leader knows no backlog and no latency yet (packages register and
    /// workers report in the seconds after), so starting from zero would stop workers that
    /// are delivering; from here it keeps them through the cooldown, or until it has measured.
    /// Later calls change nothing: from then on the count is the autoscaler's own.
    pub fn observe_replicas(&mut self, replicas: i32) {
        if !self.replicas_seen {
            self.replicas_seen = true;
            self.last_desired = replicas.max(0);
        }
    }

    /// What is held back at `now` for grants not known yet: everything while warming up.
    pub fn reserved(&mut self, now: Millis) -> u32 {
        if self.warming_up(now) { self.aimd.effective() } else { 0 }
    }

    /// Takes a new spec; the limit re-bases at once.
    pub fn update(&mut self, spec: DestinationSpec, generation: i64, now: Millis) {
        self.aimd.set_spec(spec_rps(&spec), now);
        self.spec = spec;
        self.generation = generation;
    }

    /// How many workers the open shards are spread over: those the autoscaler last asked
    /// for, or those that may take leases now (not draining, of a protocol version that is
    /// granted leases) when more; at least one.
    pub fn expected_workers(&self) -> usize {
        let desired = usize::try_from(self.last_desired).unwrap_or(0);
        let delivering = self
            .workers
            .values()
            .filter(|w| !w.draining && w.protocol_version >= courier_core::protocol::OLDEST_LEASED_VERSION)
            .count();
        desired.max(delivering).max(1)
    }

    /// Forgets workers not heard from within `ttl`: their shares lapse with their leases.
    pub fn expire_workers(&mut self, now: Millis, ttl: Millis) -> bool {
        let before = self.workers.len();
        let mut gone = Vec::new();
        self.workers.retain(|name, w| {
            let alive = w.last_seen + ttl > now;
            if !alive {
                gone.push((name.clone(), w.incarnation));
            }
            alive
        });
        if let Some(q) = self.quota.as_mut() {
            // What they held stays counted for the rest of the period.
            for (name, incarnation) in gone {
                q.gone(&name, incarnation);
            }
        }
        before != self.workers.len()
    }

    /// Records what the worker said about itself: whether it is new, and whether it is a new
    /// process under a known name (the one before has ended: its share is void).
    pub fn observe_worker(&mut self, req: &HeartbeatRequest, now: Millis) -> Observed {
        if let Some(r) = &mut self.warm_up {
            // Its share and leases, granted by an earlier leader, are known now.
            r.reported.insert(req.worker.clone());
        }
        let previous = self.workers.get(&req.worker);
        let restarted = previous.is_some_and(|p| p.incarnation != 0 && p.incarnation != req.incarnation);
        let before = previous.map(|p| p.incarnation).filter(|_| restarted);
        if let Some(q) = self.advance_quota(now) {
            if let Some(old) = before {
                q.gone(&req.worker, old);
            }
            q.observe(&req.worker, req.incarnation, req.quota);
        }
        let previous = self.workers.get(&req.worker);
        let granted = if restarted { 0 } else { previous.map_or(0, |w| w.granted) };
        let mut clock = if restarted { WorkerClock::default() } else { previous.map(|w| w.clock).unwrap_or_default() };
        let counted_at = clock.stamp(req.clock_ms, now);
        // Capacity it gives up now (or gave up lately) stays counted for a moment.
        let (released, released_until) = match previous {
            Some(p) if !restarted => {
                let held = p.applied_at(now).max(p.granted);
                if req.applied_share < held { (held, now + RELEASE_SETTLE_MS) } else { (p.released, p.released_until) }
            }
            _ => (0, 0),
        };
        let entry = WorkerEntry {
            demand: if req.draining { 0 } else { req.demand },
            granted,
            applied: req.applied_share,
            released,
            released_until,
            last_seen: now,
            draining: req.draining,
            incarnation: req.incarnation,
            holds_leases: false,
            stats: req.stats.clone(),
            protocol_version: req.protocol_version,
            clock,
            drains_at: None,
        };
        let new = self.workers.insert(req.worker.clone(), entry).is_none();
        Observed { new, restarted, counted_at }
    }

    /// Records whether `worker` holds leases now.
    pub fn set_holds_leases(&mut self, worker: &str, holds: bool) {
        if let Some(w) = self.workers.get_mut(worker) {
            w.holds_leases = holds;
        }
    }

    /// `worker` has nothing in flight and nothing to send (see [`super::handover::idle`]):
    /// whatever share it enforces is void now, with no settling pause — no request of it is
    /// on its way.
    pub fn set_idle(&mut self, worker: &str) {
        if let Some(w) = self.workers.get_mut(worker) {
            w.applied = 0;
            w.released = 0;
            w.released_until = 0;
        }
    }

    /// Records when `worker` is expected to have sent the last record of its leases.
    pub fn set_drains_at(&mut self, worker: &str, at: Option<Millis>) {
        if let Some(w) = self.workers.get_mut(worker) {
            w.drains_at = at;
        }
    }

    /// The soonest moment another worker than `worker` is expected to finish its leases and
    /// give its share up (only workers that hold leases and a share).
    pub fn soonest_release(&self, worker: &str) -> Option<Millis> {
        self.workers
            .iter()
            .filter(|(name, w)| *name != worker && w.holds_leases && !w.draining && w.granted.max(w.applied) > 0)
            .filter_map(|(_, w)| w.drains_at)
            .min()
    }

    /// Decides `worker`'s share (to be sent to it now) and records it as sent. The flag says
    /// whether its share is in transition: it differs from what the worker enforces, or the
    /// worker waits for others to give capacity up — then a quick next heartbeat hands
    /// capacity over sooner.
    pub fn share_of(&mut self, worker: &str, now: Millis) -> (RateShare, bool) {
        let names: Vec<String> = self.workers.keys().cloned().collect();
        let ws: Vec<WorkerShare> = self
            .workers
            .values()
            .zip(weights(&self.workers))
            .map(|(w, demand)| WorkerShare { demand, granted: w.granted, applied: w.applied_at(now) })
            .collect();
        let effective = self.aimd.effective();
        let Some(i) = names.iter().position(|n| n == worker) else { return (RateShare::default(), false) };
        // While grants of an earlier leader may be unknown (warm-up), no share grows.
        let reserved = self.reserved(now);
        let draining = self.workers.get(worker).is_some_and(|w| w.draining);
        // A draining worker starts no new attempt: it gets nothing, and what it had is free as
        // soon as it reports enforcing nothing (it stops at once).
        let grant = if draining { 0 } else { shares::grant_for(effective, &ws, i, reserved) };
        let target = if draining { 0 } else { shares::targets(effective, &ws)[i] };
        let applied = self.workers.get(worker).map_or(0, |w| w.applied);
        let transition = grant != applied || grant < target;
        if let Some(w) = self.workers.get_mut(worker) {
            w.granted = grant;
        }
        let demands: Vec<u32> = ws.iter().map(|w| w.demand).collect();
        let rl = &self.spec.rate_limit;
        let spec = u64::from(spec_rps(&self.spec));
        let scaled = |v: u64| (u128::from(v) * u128::from(effective) / u128::from(spec.max(1))) as u64;
        // The burst follows the share actually granted, so the bursts of all workers add up to
        // (about) half the Destination's burst whatever the workers' shares are in transition:
        // the other half is left for the network, which delivers evenly paced requests in
        // clumps now and then (a partner counts arrivals, not departures).
        let own_burst = own_burst(rl.effective_burst());
        let burst = (u128::from(scaled(own_burst)) * u128::from(grant) / u128::from(effective.max(1))).max(1) as u64;
        let per_worker = self.spec.workers.max_in_flight_per_worker.max(1) as u64;
        let max_in_flight = match rl.max_in_flight {
            Some(total) => shares::split_with_floor(total.max(1) as u64, &demands, 1)[i].min(per_worker),
            None => per_worker,
        };
        let bytes_per_second =
            rl.bytes_per_second.map(|b| shares::split_with_floor(scaled(b.max(1) as u64), &demands, 1)[i]);
        let working = !draining && ws[i].demand > 0;
        let (version, incarnation) = self.workers.get(worker).map_or((0, 0), |w| (w.protocol_version, w.incarnation));
        let (requests_today, quota) = match self.advance_quota(now) {
            None => (None, None),
            // A worker that cannot take allowances starts nothing (a used-up daily quota to it).
            Some(_) if version < QUOTA_VERSION => (Some(0), None),
            Some(q) => (None, Some(q.allowance(worker, incarnation, grant, working))),
        };
        let share = RateShare {
            requests_per_second: grant,
            burst: burst.min(u64::from(u32::MAX)) as u32,
            bytes_per_second,
            requests_today,
            quota,
            max_in_flight: max_in_flight.min(u64::from(u32::MAX)) as u32,
        };
        (share, transition)
    }

    /// The runtime view, with the autoscaling decision (updates the cooldown clock).
    pub fn runtime(&mut self, table: &LeaseTable, config: &AimdConfig, now: Millis) -> DestinationRuntime {
        self.aimd.advance(config, now);
        let mut backlog_bytes = 0u64;
        let mut backlog_packages = 0u32;
        let mut leasable = 0u32;
        let (mut acked_records, mut acked_bytes) = (0u64, 0u64);
        for p in table.packages_of(&self.key.namespace, &self.key.name) {
            if p.finished() {
                continue;
            }
            let c = p.counters();
            acked_records += c.sent + c.dead_lettered;
            acked_bytes += p.bytes_done();
            backlog_bytes += p.bytes_total().saturating_sub(p.bytes_done());
            if !p.suspended {
                backlog_packages += 1;
                leasable +=
                    p.shards.iter().filter(|s| matches!(s.state, ShardState::Pending | ShardState::Leased(_))).count()
                        as u32;
            }
        }
        let backlog_records_estimate = if acked_bytes > 0 {
            (u128::from(backlog_bytes) * u128::from(acked_records) / u128::from(acked_bytes)) as u64
        } else {
            0
        };
        let has_backlog = backlog_packages > 0;
        if has_backlog {
            self.idle_since = None;
        } else if self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
        let (latency, cpu_bound) = measured(&self.workers);
        let latency = latency.or(self.last_latency_micros);
        self.last_latency_micros = latency;
        let per_worker = self.spec.workers.max_in_flight_per_worker.max(1) as u32;
        let input = AutoscaleInput {
            min: self.spec.workers.min,
            max: self.spec.workers.max,
            cooldown_seconds: self.spec.workers.cooldown_seconds,
            effective_rps: self.aimd.effective(),
            max_in_flight_per_worker: per_worker,
            latency_p50_micros: latency,
            cpu_bound_rps: cpu_bound,
            leasable_shards: leasable,
            has_backlog,
            idle_since: self.idle_since,
            now,
            current_replicas: self.last_desired,
            suspended: self.spec.suspend,
        };
        let decision = autoscale::desired_replicas(&input);
        self.last_desired = decision.replicas;
        let throttled_reason = self.aimd.throttled_reason(config, now);
        let rps = self.aimd.effective();
        let quota = self.advance_quota(now).map(|q| q.figures(rps));
        let workers = self
            .workers
            .iter()
            .map(|(name, w)| WorkerRuntime {
                name: name.clone(),
                last_seen_unix_ms: w.last_seen,
                demand: w.demand,
                granted_share: w.granted,
                applied_share: w.applied,
                leases: table.leases_of(name),
                draining: w.draining,
                stats: w.stats.clone(),
            })
            .collect();
        DestinationRuntime {
            key: self.key.clone(),
            generation: self.generation,
            effective_rps: self.aimd.effective(),
            paused_until_unix_ms: self.aimd.paused_until(now),
            throttled: throttled_reason.is_some(),
            throttled_reason,
            workers,
            capacity_per_worker_rps: autoscale::capacity_per_worker(per_worker, latency, cpu_bound),
            backlog_records_estimate,
            backlog_bytes,
            backlog_packages,
            leasable_shards: leasable,
            desired_replicas: decision.replicas,
            desired_reason: decision.reason,
            quota,
        }
    }
}

/// Share weights. Only workers holding leases have work to do: a worker without one, or one
/// draining, weighs nothing (whatever demand it reports) unless nobody weighs anything, when all
/// split evenly. A
/// worker holding leases that reports no demand yet (it just got them, or is draining its
/// in-flight records) weighs as much as the average demanding worker.
fn weights(workers: &BTreeMap<String, WorkerEntry>) -> Vec<u32> {
    let demanding: Vec<u64> =
        workers.values().filter(|w| w.holds_leases && w.demand > 0).map(|w| u64::from(w.demand)).collect();
    let average =
        if demanding.is_empty() { 1 } else { (demanding.iter().sum::<u64>() / demanding.len() as u64).max(1) as u32 };
    workers
        .values()
        .map(|w| match (w.draining, w.holds_leases, w.demand) {
            // Draining: it starts no new attempt, so it gives its share back at once.
            (true, _, _) | (false, false, _) => 0,
            (false, true, 0) => average,
            (false, true, d) => d,
        })
        .collect()
}

/// The spec limit as a positive integer.
fn spec_rps(spec: &DestinationSpec) -> u32 {
    spec.rate_limit.requests_per_second.max(1) as u32
}

/// Median p50 latency of workers that measured one, and the best throughput of a CPU-bound
/// worker (busy ≥ 80 % and hardly waiting for the limiter).
fn measured(workers: &BTreeMap<String, WorkerEntry>) -> (Option<u64>, Option<u64>) {
    let mut lat: Vec<u64> = workers.values().map(|w| w.stats.latency_p50_micros).filter(|&l| l > 0).collect();
    lat.sort_unstable();
    let latency = lat.get(lat.len() / 2).copied();
    let cpu = workers
        .values()
        .filter(|w| {
            w.stats.cpu_permille >= 800 && w.stats.limiter_wait_permille < 100 && w.stats.requests_per_second > 0
        })
        .map(|w| w.stats.requests_per_second)
        .max();
    (latency, cpu)
}

/// The part of a Destination's `burst` its workers use together: half, at least one request.
pub(crate) fn own_burst(burst: i32) -> u64 {
    u64::try_from(burst).unwrap_or(1).max(1).div_ceil(2)
}
