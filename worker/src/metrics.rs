//! The worker's Prometheus metrics (DESIGN §5) and a latency histogram for percentiles.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::send::{AttemptReport, SendObserver, Throttle, ThrottleTracker, TransportError};

type Labels = Vec<(&'static str, String)>;

/// Every metric of a worker, with handles cached so the hot path never hashes labels.
pub struct Metrics {
    registry: Registry,
    requests: [Counter; CLASSES.len()],
    latency: Histogram,
    request_bytes: Counter,
    /// Records read from shards (malformed ones included).
    pub records_read: Counter,
    /// Records accepted by the partner.
    pub records_sent: Counter,
    /// Records given up on.
    pub records_failed: Counter,
    /// Records written to the dead-letter sink.
    pub records_dead_lettered: Counter,
    /// Records the decoder could not read.
    pub records_malformed: Counter,
    /// Records read but left for the next lease because the lease stopped before they went out.
    pub records_abandoned: Counter,
    /// Attempts beyond a record's first.
    pub retries: Counter,
    /// Attempts answered 429 Too Many Requests.
    throttled_requests: Counter,
    /// Attempts whose credentials the partner refused (`retryPolicy.authFailureStatuses`).
    auth_refused: Counter,
    /// Changed credentials taken into use after a refusal or a Secret update.
    credential_reloads: Counter,
    /// 1 while new sends are held waiting for rotated credentials.
    auth_holding: Gauge,
    /// Requests in flight (including waiting for the limiter or a back-off).
    pub in_flight: Gauge,
    limiter_wait: Counter<f64, AtomicU64>,
    /// The rate share enforced now (requests/s; 0 when unlimited).
    pub share: Gauge,
    paused: Counter<f64, AtomicU64>,
    pause_end: Mutex<Option<SystemTime>>,
    /// Bytes of active shards not yet acknowledged.
    pub shard_lag_bytes: Gauge,
    /// Leases being worked on.
    pub active_leases: Gauge,
    /// Latencies for percentiles (summary, heartbeats).
    pub latencies: LatencyHistogram,
    /// 429s and Retry-After instants since the last heartbeat.
    pub throttles: ThrottleTracker,
    /// Whether the partner answers at all (shared by every sender the worker builds).
    pub partner: std::sync::Arc<crate::send::PartnerWatch>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Status classes, then the transport classes in [`TransportError::ALL`]'s order.
const CLASSES: [&str; 10] = ["1xx", "2xx", "3xx", "4xx", "5xx", "connect", "write", "read", "timeout", "protocol"];

impl Metrics {
    /// Metrics of a worker of `destination`.
    pub fn new(destination: &str) -> Self {
        let mut registry = Registry::with_prefix("courier_worker");
        let dest = || -> Labels { vec![("destination", destination.to_owned())] };
        let requests_family = Family::<Labels, Counter>::default();
        let requests = CLASSES.map(|class| {
            let mut labels = dest();
            labels.push(("class", class.to_owned()));
            requests_family.get_or_create(&labels).clone()
        });
        registry.register("requests", "HTTP attempts by status class", requests_family);
        let latency_family =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        let latency = latency_family.get_or_create(&dest()).clone();
        registry.register("request_duration_seconds", "Latency of one attempt", latency_family);
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<Labels, Counter>::default();
            let handle = family.get_or_create(&dest()).clone();
            registry.register(name, help, family);
            handle
        };
        let request_bytes = counter(&mut registry, "request_bytes", "Request body bytes sent, all attempts");
        let records = Family::<Labels, Counter>::default();
        let record = |outcome: &str| {
            let mut labels = dest();
            labels.push(("outcome", outcome.to_owned()));
            records.get_or_create(&labels).clone()
        };
        let (records_read, records_sent, records_failed, records_dead_lettered, records_malformed) =
            (record("read"), record("sent"), record("failed"), record("dead_lettered"), record("malformed"));
        let records_abandoned = record("abandoned");
        registry.register("records", "Records by outcome", records);
        let retries = counter(&mut registry, "retries", "Attempts beyond a record's first");
        let throttled_requests =
            counter(&mut registry, "throttled_requests", "Attempts answered 429 Too Many Requests");
        let auth_refused = counter(
            &mut registry,
            "auth_refused_requests",
            "Attempts whose credentials the partner refused (retryPolicy.authFailureStatuses)",
        );
        let credential_reloads =
            counter(&mut registry, "credential_reloads", "Changed credentials taken into use (a rotated Secret)");
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<Labels, Gauge>::default();
            let handle = family.get_or_create(&dest()).clone();
            registry.register(name, help, family);
            handle
        };
        let in_flight = gauge(&mut registry, "in_flight_requests", "Requests in flight");
        let share = gauge(
            &mut registry,
            "rate_share_requests_per_second",
            "Requests per second this worker may send (0 = unlimited)",
        );
        let shard_lag_bytes = gauge(&mut registry, "shard_lag_bytes", "Bytes of leased shards not yet acknowledged");
        let active_leases = gauge(&mut registry, "active_leases", "Shard leases being delivered");
        let auth_holding = gauge(
            &mut registry,
            "auth_holding",
            "1 while the partner refuses the credentials and new sends wait for the rotated Secret",
        );
        let float_counter = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<Labels, Counter<f64, AtomicU64>>::default();
            let handle = family.get_or_create(&dest()).clone();
            registry.register(name, help, family);
            handle
        };
        let limiter_wait = float_counter(&mut registry, "limiter_wait_seconds", "Time attempts waited for the limiter");
        let paused = float_counter(&mut registry, "paused_seconds", "Time sending was paused by Retry-After");
        Self {
            registry,
            requests,
            latency,
            request_bytes,
            records_read,
            records_sent,
            records_failed,
            records_dead_lettered,
            records_malformed,
            records_abandoned,
            retries,
            throttled_requests,
            auth_refused,
            credential_reloads,
            auth_holding,
            in_flight,
            limiter_wait,
            share,
            paused,
            pause_end: Mutex::new(None),
            shard_lag_bytes,
            active_leases,
            latencies: LatencyHistogram::default(),
            throttles: ThrottleTracker::default(),
            partner: std::sync::Arc::default(),
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Total attempts answered with 2xx.
    pub fn requests_of_class(&self, class: &str) -> u64 {
        CLASSES.iter().position(|c| *c == class).map_or(0, |i| self.requests[i].get())
    }

    /// Seconds attempts waited for the limiter, in total.
    pub fn limiter_wait_seconds(&self) -> f64 {
        self.limiter_wait.get()
    }

    /// Counts the part of a pause until `until` not already counted.
    pub fn add_pause(&self, until: SystemTime) {
        let now = SystemTime::now();
        let mut end = self.pause_end.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let from = end.map_or(now, |e| e.max(now));
        if let Ok(added) = until.duration_since(from) {
            self.paused.inc_by(added.as_secs_f64());
            *end = Some(until);
        }
    }

    /// Seconds paused by Retry-After, in total.
    pub fn paused_seconds(&self) -> f64 {
        self.paused.get()
    }
}

impl crate::send::CredentialEvents for Metrics {
    fn refused(&self, _status: u16) {
        self.auth_refused.inc();
    }

    fn reloaded(&self) {
        self.credential_reloads.inc();
    }

    fn holding(&self, holding: bool) {
        self.auth_holding.set(i64::from(holding));
    }
}

impl SendObserver for Metrics {
    fn attempt(&self, report: &AttemptReport) {
        let class = match (report.status, report.error) {
            (Some(s), _) => usize::from((s / 100).clamp(1, 5)) - 1,
            (None, Some(error)) => 5 + TransportError::ALL.iter().position(|e| *e == error).unwrap_or(0),
            (None, None) => 5,
        };
        self.requests[class].inc();
        if report.status == Some(429) {
            self.throttled_requests.inc();
        }
        self.latency.observe(report.latency.as_secs_f64());
        self.latencies.record(report.latency);
        self.request_bytes.inc_by(report.bytes);
        if !report.limiter_wait.is_zero() {
            self.limiter_wait.inc_by(report.limiter_wait.as_secs_f64());
        }
    }

    fn throttled(&self, throttle: Throttle) {
        self.throttles.throttled(throttle);
        if let Some(until) = throttle.until {
            self.add_pause(until);
        }
    }
}

/// Log-scale latency buckets (about 4% wide) from 1 µs to ~70 s, lock-free.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Vec<AtomicU64>,
    started: Instant,
}

const BUCKETS: usize = 460;
const GROWTH: f64 = 1.04;

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(), started: Instant::now() }
    }
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let micros = latency.as_secs_f64() * 1e6;
        let index = if micros <= 1.0 { 0 } else { (micros.ln() / GROWTH.ln()) as usize + 1 };
        self.buckets[index.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// Latencies recorded so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q` quantile (0..=1), as the upper edge of its bucket; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_secs_f64(GROWTH.powi(i32::try_from(i).unwrap_or(i32::MAX)) / 1e6);
            }
        }
        Duration::ZERO
    }

    /// Time since the histogram was made.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_land_within_a_bucket_of_the_truth() {
        let h = LatencyHistogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).as_secs_f64() * 1000.0;
        let p99 = h.quantile(0.99).as_secs_f64() * 1000.0;
        assert!((48.0..=53.0).contains(&p50), "p50 {p50}");
        assert!((97.0..=104.0).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn attempts_show_up_in_the_exposition_by_status_class() {
        let m = Metrics::new("partner");
        let report = |status| AttemptReport {
            attempt: 1,
            status,
            error: None,
            latency: Duration::from_millis(3),
            limiter_wait: Duration::ZERO,
            bytes: 10,
        };
        m.attempt(&report(Some(200)));
        m.attempt(&report(Some(429)));
        let text = m.encode();
        assert!(text.contains(r#"courier_worker_requests_total{destination="partner",class="2xx"} 1"#), "{text}");
        assert!(text.contains(r#"courier_worker_requests_total{destination="partner",class="4xx"} 1"#), "{text}");
        assert!(text.contains(r#"courier_worker_throttled_requests_total{destination="partner"} 1"#), "{text}");
        assert!(text.contains("courier_worker_request_duration_seconds_bucket"), "{text}");
    }

    #[test]
    fn the_metrics_table_of_docs_metrics_md_is_the_exposition() {
        // Every worker series exists from the start (one Destination per worker).
        courier_e2e::metrics_doc::assert_documented(&Metrics::new("partner").encode(), "courier_worker_");
    }
}
