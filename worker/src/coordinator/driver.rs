//! Runs a worker against a [`Coordinator`]: heartbeats, applies shares, pauses, Destination
//! changes and lease decisions to the [`Pipeline`], and drains on shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use courier_core::destination::DestinationSettings;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Coordinator, CoordinatorError};
use crate::config::{self, SecretStore};
use crate::limiter::Rate;
use crate::pipeline::{LeaseHandle, LeaseWork, Pipeline};
use crate::protocol::{
    CredentialsRefused, HeartbeatRequest, HeartbeatResponse, LeaseKey, LeaseReport, PROTOCOL_VERSION, SETTLED_VERSION,
    ShardLease, ThrottleReport, WorkerStats,
};
use crate::request::RequestBuilder;

/// How long a completion is reported again at most while no coordinator settles it.
const SETTLING_MAX: Duration = Duration::from_secs(600);

/// The shortest spacing between a heartbeat and one sent early to report a Retry-After.
const PAUSE_REPORT_SPACING: Duration = Duration::from_millis(200);

/// Settings of a driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub worker: String,
    pub namespace: String,
    pub destination: String,
    /// The Destination spec when known up front (`run`); in cluster it arrives by heartbeat.
    pub destination_spec: Option<(i64, DestinationSettings)>,
    pub secrets: SecretStore,
    /// Leases worked on at once.
    pub max_leases: u32,
    /// How long in-flight records may take to finish after shutdown.
    pub drain: Duration,
}

/// The driver stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
}

/// How the driver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverEnd {
    /// The coordinator has no more work.
    Finished,
    /// Shutdown was asked for; leases were drained (or abandoned at the deadline).
    Drained { abandoned: bool },
}

/// Runs one worker.
pub struct Driver<C> {
    coordinator: C,
    pipeline: Pipeline,
    config: DriverConfig,
    leases: BTreeMap<LeaseKey, LeaseHandle>,
    /// Leases stopped by the coordinator: their end is not an error.
    revoked: BTreeSet<LeaseKey>,
    /// Leases that could not even start, reported once.
    failed: Vec<LeaseReport>,
    /// Completions answered but not yet settled (recorded in the package's status): reported
    /// again in every heartbeat until the coordinator names them settled, so a leader that
    /// dies between answering and writing its status does not lose them.
    settling: BTreeMap<LeaseKey, (LeaseReport, Instant)>,
    interval: Duration,
    ttl: Duration,
    last_ok: Instant,
    ready: Arc<AtomicBool>,
    sent_at_last: u64,
    wait_at_last: f64,
    last_beat: Instant,
    /// Random for this process: tells the coordinator a restarted worker from the one before.
    incarnation: u64,
    /// The last leadership term that answered.
    term: u64,
    /// The share in force (requests/s, burst), to log its changes.
    share: (u64, u64),
    /// Since when heartbeats fail (none answered since).
    failing_since: Option<Instant>,
    /// The origin of the clock heartbeats carry (`clock_ms`).
    born: Instant,
}

impl<C: Coordinator> Driver<C> {
    /// A driver of `pipeline` against `coordinator`; `ready` turns true on the first answer.
    pub fn new(coordinator: C, pipeline: Pipeline, config: DriverConfig, ready: Arc<AtomicBool>) -> Self {
        watch_credentials(&pipeline, &config);
        Self {
            coordinator,
            pipeline,
            config,
            leases: BTreeMap::new(),
            revoked: BTreeSet::new(),
            failed: Vec::new(),
            settling: BTreeMap::new(),
            interval: Duration::from_secs(1),
            ttl: Duration::from_secs(10),
            last_ok: Instant::now(),
            ready,
            sent_at_last: 0,
            wait_at_last: 0.0,
            last_beat: Instant::now(),
            incarnation: rand::random::<u64>().max(1),
            term: 0,
            share: (0, 0),
            failing_since: None,
            born: Instant::now(),
        }
    }

    /// The coordinator (for a local run's summary after [`Driver::run`]).
    pub fn coordinator(&self) -> &C {
        &self.coordinator
    }

    /// Heartbeats until the coordinator has no more work or `shutdown` is cancelled and the
    /// leases are drained (final checkpoints reported).
    pub async fn run(&mut self, shutdown: CancellationToken) -> Result<DriverEnd, DriverError> {
        let mut drain_deadline: Option<Instant> = None;
        let mut abandoned = false;
        loop {
            let draining = shutdown.is_cancelled();
            if draining && drain_deadline.is_none() {
                tracing::info!(leases = self.leases.len(), "draining: no new records, finishing those in flight");
                for lease in self.leases.values() {
                    lease.stop();
                }
                // No new attempt starts from now on, so the share goes back at once: the next
                // heartbeat (right away) reports enforcing nothing.
                self.pipeline.set_rate(Some(Rate::new(0, 1)));
                drain_deadline = Some(Instant::now() + self.config.drain);
            }
            if let Some(deadline) = drain_deadline
                && Instant::now() >= deadline
                && !self.leases.values().all(LeaseHandle::is_finished)
            {
                tracing::warn!("drain deadline passed: abandoning requests still in flight");
                for lease in self.leases.values() {
                    lease.abort();
                }
                abandoned = true;
            }
            let all_finished = self.leases.values().all(LeaseHandle::is_finished);
            let (request, reported, completed) = self.request(draining);
            let sent_at = Instant::now();
            // A shutdown does not wait for a heartbeat under way (a coordinator that is gone may
            // take its whole timeout): the heartbeat is dropped and draining starts at once.
            // Leases granted in a dropped answer are never started and never reported, so the
            // coordinator frees them at the next heartbeat.
            let answer = tokio::select! {
                biased;
                () = shutdown.cancelled(), if !draining => continue,
                answer = self.coordinator.heartbeat(request) => answer,
            };
            match answer {
                Ok(response) if response.term > 0 && response.term < self.term => {
                    // A replica that led before the one that answered last: nothing it says
                    // counts (its shares and grants may overlap the newer leader's).
                    tracing::error!(
                        term = response.term,
                        latest = self.term,
                        "an answer from an older coordinator term"
                    );
                }
                Ok(response) => {
                    for key in reported {
                        let done = completed.iter().any(|r| r.key == key);
                        tracing::info!(package = %key.package, shard = key.shard, epoch = key.lease_epoch, done, "lease ended and reported");
                        self.leases.remove(&key);
                        self.revoked.remove(&key);
                    }
                    self.settle(&response, completed);
                    self.failed.clear();
                    self.apply(response, draining, sent_at);
                }
                Err(e @ CoordinatorError::Checkpoint { .. }) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed");
                    self.failing_since.get_or_insert_with(Instant::now);
                    if self.last_ok.elapsed() > self.ttl && self.pipeline.accepting() {
                        tracing::warn!("coordinator unreachable for the lease TTL: holding new records");
                        self.pipeline.set_accepting(false);
                    }
                    if draining && all_finished && (abandoned || drain_deadline.is_some_and(|d| Instant::now() >= d)) {
                        return Ok(DriverEnd::Drained { abandoned });
                    }
                }
            }
            // A draining worker also waits (until the drain deadline) for its completions to
            // be settled: once it is gone nobody could report them to a next leader.
            let settled_or_late = self.settling.is_empty() || drain_deadline.is_some_and(|d| Instant::now() >= d);
            if draining && all_finished && self.leases.is_empty() && settled_or_late {
                return Ok(DriverEnd::Drained { abandoned });
            }
            if !draining && self.coordinator.finished() && self.leases.is_empty() {
                return Ok(DriverEnd::Finished);
            }
            let wake = self.pipeline.lease_ended();
            let wait = if draining {
                self.interval.min(Duration::from_millis(100))
            } else {
                retry_wait(self.interval, self.ttl, self.failing_since.map(|t| t.elapsed()))
            };
            let metrics = Arc::clone(self.pipeline.metrics());
            // A partner's Retry-After is reported at once (the coordinator pauses every worker
            // of the Destination), but never more often than every PAUSE_REPORT_SPACING.
            let earliest = self.last_beat + PAUSE_REPORT_SPACING;
            let pause = async move {
                metrics.throttles.pause_signalled().await;
                tokio::time::sleep_until(earliest).await;
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = wake => {}
                () = pause, if !draining => {}
                () = shutdown.cancelled(), if !draining => {}
            }
        }
    }

    /// Keeps the completions just answered until they are settled; forgets those the answer
    /// settles, those it revokes (the package or its attempt is gone) and, as a bound, those
    /// unsettled for [`SETTLING_MAX`].
    fn settle(&mut self, response: &HeartbeatResponse, completed: Vec<LeaseReport>) {
        if response.protocol_version >= SETTLED_VERSION {
            let now = Instant::now();
            for report in completed {
                self.settling.entry(report.key.clone()).or_insert((report, now));
            }
        }
        for key in response.settled.iter().chain(&response.revoked) {
            self.settling.remove(key);
        }
        self.settling.retain(|key, (_, since)| {
            let keep = since.elapsed() < SETTLING_MAX;
            if !keep {
                tracing::warn!(package = %key.package, shard = key.shard, "a completion was never settled: forgotten");
            }
            keep
        });
    }

    /// The heartbeat to send, the leases it reports for the last time, and the completions
    /// among them.
    fn request(&mut self, draining: bool) -> (HeartbeatRequest, Vec<LeaseKey>, Vec<LeaseReport>) {
        let mut leases = self.failed.clone();
        let mut reported = Vec::new();
        let mut completed = Vec::new();
        let mut lag = 0u64;
        for (key, handle) in &self.leases {
            let p = handle.progress();
            let finished = handle.is_finished();
            let expected_end = draining || self.revoked.contains(key);
            lag += p.lag_bytes;
            leases.push(LeaseReport {
                key: key.clone(),
                checkpoint: p.checkpoint,
                frontier: p.frontier,
                pending: p.pending,
                counters: p.counters,
                base: handle.base.clone(),
                failures: p.failures,
                done: p.done,
                released: finished && !p.done && p.error.is_none() && expected_end,
                error: p
                    .error
                    .or_else(|| (finished && !p.done && !expected_end).then(|| "lease task ended".to_owned())),
            });
            if finished {
                reported.push(key.clone());
                if p.done
                    && let Some(report) = leases.last()
                {
                    completed.push(report.clone());
                }
            }
        }
        leases
            .extend(self.settling.values().filter(|(r, _)| !self.leases.contains_key(&r.key)).map(|(r, _)| r.clone()));
        let metrics = self.pipeline.metrics();
        metrics.shard_lag_bytes.set(i64::try_from(lag).unwrap_or(i64::MAX));
        let throttle = metrics.throttles.take();
        let snapshot = self.pipeline.limiter().snapshot();
        let applied = snapshot.requests.map_or(0, |r| u32::try_from(r.per_second).unwrap_or(u32::MAX));
        let active = u32::try_from(self.leases.len()).unwrap_or(u32::MAX);
        let free_slots = if draining || !self.pipeline.accepting() || self.destination_missing() {
            0
        } else {
            self.config.max_leases.saturating_sub(active)
        };
        let elapsed = self.last_beat.elapsed().as_secs_f64().max(1e-3);
        self.last_beat = Instant::now();
        let sent = metrics.records_sent.get();
        let rps = (sent.saturating_sub(self.sent_at_last) as f64 / elapsed) as u64;
        self.sent_at_last = sent;
        let wait = metrics.limiter_wait_seconds();
        let max_in_flight = u32::try_from(self.pipeline.max_in_flight()).unwrap_or(u32::MAX);
        let wait_share = (wait - self.wait_at_last) / elapsed / f64::from(max_in_flight.max(1));
        self.wait_at_last = wait;
        let p50 = metrics.latencies.quantile(0.5);
        let capacity = if p50.is_zero() { 0 } else { (f64::from(max_in_flight) / p50.as_secs_f64()) as u64 };
        let wanted =
            self.config.destination_spec.as_ref().map_or(0, |(_, d)| d.rate_limit.requests_per_second.max(0) as u64);
        let demand = if active == 0 && free_slots == 0 {
            0
        } else if capacity == 0 {
            wanted
        } else {
            wanted.min(capacity)
        };
        let request = HeartbeatRequest {
            protocol_version: PROTOCOL_VERSION,
            worker: self.config.worker.clone(),
            incarnation: self.incarnation,
            namespace: self.config.namespace.clone(),
            destination: self.config.destination.clone(),
            destination_generation: self.config.destination_spec.as_ref().map_or(0, |(g, _)| *g),
            applied_share: applied,
            demand: u32::try_from(demand).unwrap_or(u32::MAX),
            free_slots,
            draining,
            leases,
            throttle: ThrottleReport {
                too_many_requests: throttle.count,
                retry_after_until_unix_ms: throttle.until.map(unix_ms),
                spread_ms: throttle.spread_ms,
            },
            stats: WorkerStats {
                requests_per_second: rps,
                latency_p50_micros: u64::try_from(p50.as_micros()).unwrap_or(u64::MAX),
                latency_p99_micros: u64::try_from(metrics.latencies.quantile(0.99).as_micros()).unwrap_or(u64::MAX),
                in_flight: u32::try_from(metrics.in_flight.get().max(0)).unwrap_or(0),
                max_in_flight,
                limiter_wait_permille: (wait_share.clamp(0.0, 1.0) * 1000.0) as u32,
                cpu_permille: 0,
                partner: metrics.partner.view(),
                credentials_refused: self.pipeline.credentials().refusal().map(|r| CredentialsRefused {
                    status: r.status,
                    for_seconds: r.since.elapsed().as_secs(),
                    holding: self.pipeline.credentials().holding(),
                }),
            },
            quota: self.pipeline.limiter().quota_report(),
            clock_ms: Some(u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)),
        };
        (request, reported, completed)
    }

    /// Re-reads the Destination's Secrets (the mounted files the kubelet updates when a Secret
    /// changes) once a heartbeat and uses changed credentials at once: attempts from now on
    /// carry them, attempts already running finish with the old ones. A Secret unreadable for
    /// a moment keeps the credentials in use.
    fn refresh_credentials(&self) {
        let Some((_, spec)) = &self.config.destination_spec else { return };
        let Ok(fresh) = config::send_config(spec, &self.config.secrets) else { return };
        let current = self.pipeline.send_config();
        if fresh.auth == current.auth && fresh.tls == current.tls {
            return;
        }
        let next = crate::send::SendConfig { auth: fresh.auth, tls: fresh.tls, ..current };
        match self.pipeline.set_send_config(&next) {
            Ok(()) => tracing::info!("a Secret of the Destination changed: its new credentials are in use"),
            Err(e) => tracing::error!(error = %e, "cannot use the changed Secret of the Destination"),
        }
    }

    fn destination_missing(&self) -> bool {
        self.config.destination_spec.is_none()
    }

    /// Applies an answer to the heartbeat sent at `sent_at`. Its share and leases are valid
    /// for the lease TTL counted from `sent_at` — before the coordinator answered, so the
    /// worker stops no later than the coordinator stops counting them.
    fn apply(&mut self, response: HeartbeatResponse, draining: bool, sent_at: Instant) {
        self.last_ok = sent_at;
        self.failing_since = None;
        self.ready.store(true, Ordering::Relaxed);
        if !self.pipeline.accepting() {
            tracing::info!("coordinator reachable again: taking new records");
            self.pipeline.set_accepting(true);
        }
        if response.term > self.term {
            tracing::info!(term = response.term, previous = self.term, "a new coordinator term answers");
            self.term = response.term;
        }
        self.interval = Duration::from_millis(u64::from(response.heartbeat_interval_ms.max(10)));
        self.ttl = Duration::from_millis(u64::from(response.lease_ttl_ms.max(100)));
        if let Some(dest) = response.destination {
            match config::send_config(&dest.spec, &self.config.secrets) {
                Ok(send) => match self.pipeline.set_send_config(&send) {
                    Ok(()) => {
                        tracing::info!(generation = dest.generation, "applied Destination configuration");
                        self.config.destination_spec = Some((dest.generation, dest.spec));
                        watch_credentials(&self.pipeline, &self.config);
                    }
                    Err(e) => tracing::error!(error = %e, "cannot apply the Destination configuration"),
                },
                Err(e) => tracing::error!(error = %e, "cannot apply the Destination configuration"),
            }
        } else {
            self.refresh_credentials();
        }
        let share = response.share;
        let rate = if draining { 0 } else { u64::from(share.requests_per_second) };
        if (rate, u64::from(share.burst)) != self.share {
            tracing::info!(rps = rate, burst = share.burst, term = response.term, "share");
            self.share = (rate, u64::from(share.burst));
        }
        self.pipeline.set_rate(Some(Rate::new(rate, u64::from(share.burst))));
        self.pipeline.limiter().set_valid_until(Some(sent_at + self.ttl));
        self.pipeline.limiter().set_bytes_rate(share.bytes_per_second.map(|b| Rate::new(b, b.div_ceil(10).max(1))));
        self.pipeline.limiter().set_allowance(share.quota);
        if share.max_in_flight > 0 && share.max_in_flight as usize != self.pipeline.max_in_flight() {
            self.pipeline.set_max_in_flight(share.max_in_flight as usize);
        }
        if let Some(until) = response.pause_until_unix_ms {
            let ahead = Duration::from_millis(until.saturating_sub(unix_ms(SystemTime::now())));
            if !ahead.is_zero() {
                self.pipeline.limiter().pause_until(Instant::now() + ahead);
                self.pipeline.metrics().add_pause(SystemTime::now() + ahead);
            }
        }
        for key in &response.revoked {
            if let Some(lease) = self.leases.get(key) {
                tracing::info!(shard = key.shard, package = %key.package, "lease revoked");
                lease.stop();
                self.revoked.insert(key.clone());
            }
        }
        for lease in response.granted {
            if draining {
                break;
            }
            self.start(lease);
        }
    }

    fn start(&mut self, lease: ShardLease) {
        let Some((_, destination)) = &self.config.destination_spec else { return };
        let spec = config::request_spec(destination, &lease.datum, &lease.key.namespace, &lease.key.package);
        let builder = match RequestBuilder::new(&spec) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                self.failed.push(LeaseReport {
                    key: lease.key,
                    checkpoint: lease.checkpoint,
                    frontier: lease.frontier,
                    pending: lease.pending,
                    base: lease.counters.clone(),
                    counters: lease.counters,
                    failures: Vec::new(),
                    done: false,
                    released: false,
                    error: Some(format!("the Datum's request templates are invalid: {e}")),
                });
                return;
            }
        };
        tracing::info!(package = %lease.key.package, shard = lease.key.shard, epoch = lease.key.lease_epoch, checkpoint = lease.checkpoint, "lease granted");
        let work = LeaseWork {
            key: lease.key.clone(),
            shard: lease.shard,
            checkpoint: lease.checkpoint,
            frontier: lease.frontier,
            pending: lease.pending,
            base: lease.counters,
            format: config::format_spec(&lease.datum),
            builder,
            dead_letter_dir: lease.dead_letter_path,
            only_offsets: lease.only_offsets,
        };
        let handle = self.pipeline.start(work);
        self.leases.insert(lease.key, handle);
    }
}

/// On a refusal of the credentials the send stack re-reads them from the mounted Secrets of
/// the Destination (see `send::credentials`); a store without mounts has nothing new to read.
fn watch_credentials(pipeline: &Pipeline, config: &DriverConfig) {
    let source = match &config.destination_spec {
        Some((_, spec)) if config.secrets.reads_mounts() => {
            let (spec, secrets) = (spec.clone(), config.secrets.clone());
            let read = move || config::send_config(&spec, &secrets).map(|c| c.auth).map_err(|e| e.to_string());
            Some(Arc::new(read) as Arc<dyn crate::send::CredentialSource>)
        }
        _ => None,
    };
    pipeline.credentials().set_source(source);
}

fn unix_ms(at: SystemTime) -> u64 {
    u64::try_from(at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

/// How soon to heartbeat again after an answer (`failing` is None) or after failures for that
/// long. For the lease TTL after the first failure a worker asks every [`FAILING_RETRY`] (a
/// leader change completes within it, and the sooner the new leader hears from every worker the
/// sooner its warm-up ends and the shares are whole again); after that, every `interval`.
fn retry_wait(interval: Duration, ttl: Duration, failing: Option<Duration>) -> Duration {
    match failing {
        Some(for_) if for_ < ttl => interval.min(FAILING_RETRY),
        _ => interval,
    }
}

/// The heartbeat interval while a coordinator is being looked for.
const FAILING_RETRY: Duration = Duration::from_millis(250);

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn a_failing_worker_asks_often_for_a_lease_ttl_then_at_its_interval() {
        let (interval, ttl) = (Duration::from_secs(1), Duration::from_secs(15));
        let ms = Duration::from_millis;
        for (failing, expected) in [
            (None, ms(1000)),
            (Some(ms(0)), ms(250)),
            (Some(ms(14_999)), ms(250)),
            (Some(ms(15_000)), ms(1000)),
            (Some(ms(60_000)), ms(1000)),
        ] {
            assert_eq!(retry_wait(interval, ttl, failing), expected, "failing for {failing:?}");
        }
        assert_eq!(retry_wait(ms(100), ttl, Some(ms(10))), ms(100), "never slower than the interval");
    }
}
