//! Operator metrics (prometheus-client) and the small HTTP server for `/metrics` and `/healthz`.

mod packages;

use self::packages::PackageSeries;
pub use self::packages::{PHASES, PackageFigures, PackageLabels};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::leader::Leadership;

/// Labels of reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub controller: String,
    pub result: String,
}

/// Labels of error counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: String,
    pub error: String,
}

/// Labels of the applies counter: the kind applied and why (see `destination::reapply::Why`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    pub kind: String,
    pub reason: String,
}

/// Label of per-controller series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

/// Label of per-phase series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

/// Labels of per-Destination series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabels {
    pub namespace: String,
    pub destination: String,
}

/// Every operator metric.
pub struct Metrics {
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub reconcile_seconds: Family<ControllerLabel, Histogram>,
    pub packages_by_phase: Family<PhaseLabel, Gauge>,
    pub backlog_records: Family<DestinationLabels, Gauge>,
    pub workers_desired: Family<DestinationLabels, Gauge>,
    pub workers_ready: Family<DestinationLabels, Gauge>,
    pub effective_limit: Family<DestinationLabels, Gauge>,
    /// `spec.rateLimit.requestsPerSecond` per Destination.
    pub limit: Family<DestinationLabels, Gauge>,
    /// 1 while a Destination's `Throttled` condition is True.
    pub throttled: Family<DestinationLabels, Gauge>,
    pub status_writes: Family<ControllerLabel, Counter>,
    pub applies: Family<ApplyLabels, Counter>,
    pub is_leader: Gauge,
    /// Heartbeats the coordinator refused by authentication (401) or authorization (403).
    pub heartbeat_refusals: Family<crate::coordinator::server::RefusalLabels, Counter>,
    /// The per-package series, encoded from the last figures at each scrape.
    packages: Arc<PackageSeries>,
    /// Continuous delivery (`courier_operator_landing_…`).
    pub landing: crate::controller::landing::metrics::LandingMetrics,
    registry: Registry,
    /// The length of the last exposition (the next one's first capacity).
    exposition_len: std::sync::atomic::AtomicUsize,
}

impl Metrics {
    /// Registers every metric under the `courier_operator` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("courier_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_seconds = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0])
        });
        let packages_by_phase = Family::<PhaseLabel, Gauge>::default();
        let backlog_records = Family::<DestinationLabels, Gauge>::default();
        let workers_desired = Family::<DestinationLabels, Gauge>::default();
        let workers_ready = Family::<DestinationLabels, Gauge>::default();
        let effective_limit = Family::<DestinationLabels, Gauge>::default();
        let limit = Family::<DestinationLabels, Gauge>::default();
        let throttled = Family::<DestinationLabels, Gauge>::default();
        let status_writes = Family::<ControllerLabel, Counter>::default();
        let applies = Family::<ApplyLabels, Counter>::default();
        let is_leader = Gauge::default();
        let heartbeat_refusals = Family::<crate::coordinator::server::RefusalLabels, Counter>::default();
        let packages = Arc::new(PackageSeries::default());
        registry.register("reconciles", "Reconciles by controller and result", reconciles.clone());
        registry.register("reconcile_errors", "Reconcile errors by controller and kind", errors.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration", reconcile_seconds.clone());
        registry.register("packages", "DeliveryPackages by phase", packages_by_phase.clone());
        registry.register("backlog_records", "Records not yet delivered per Destination", backlog_records.clone());
        registry.register("workers_desired", "Worker replicas wanted per Destination", workers_desired.clone());
        registry.register("workers_ready", "Ready worker pods per Destination", workers_ready.clone());
        registry.register(
            "effective_requests_per_second",
            "Effective rate limit per Destination",
            effective_limit.clone(),
        );
        registry.register(
            "limit_requests_per_second",
            "Rate limit of the Destination's spec (rateLimit.requestsPerSecond)",
            limit.clone(),
        );
        registry.register("throttled", "1 while the Destination's Throttled condition is True", throttled.clone());
        registry.register("status_writes", "Status writes by kind", status_writes.clone());
        registry.register(
            "applies",
            "Server-side applies of worker objects by kind and reason (first, changed, drifted, resync)",
            applies.clone(),
        );
        registry.register("leader", "1 while this replica holds the lease", is_leader.clone());
        registry.register(
            "heartbeat_refusals",
            "Worker heartbeats refused by the coordinator, by HTTP status (401 token, 403 pod)",
            heartbeat_refusals.clone(),
        );
        registry.register_collector(Box::new(packages.clone()));
        let landing = crate::controller::landing::metrics::LandingMetrics::register(&mut registry);
        Metrics {
            reconciles,
            errors,
            reconcile_seconds,
            packages_by_phase,
            backlog_records,
            workers_desired,
            workers_ready,
            effective_limit,
            limit,
            throttled,
            status_writes,
            applies,
            is_leader,
            heartbeat_refusals,
            packages,
            landing,
            registry,
            exposition_len: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Sets the per-package series to those of `packages` (every package this replica
    /// watches): a package not among them has none from now on.
    pub fn record_packages(&self, packages: Vec<PackageFigures>) {
        self.packages.record(packages);
    }

    /// Every per-Destination family: what a deleted Destination and a lost leadership drop.
    fn destination_families(&self) -> [&Family<DestinationLabels, Gauge>; 6] {
        [
            &self.backlog_records,
            &self.workers_desired,
            &self.workers_ready,
            &self.effective_limit,
            &self.limit,
            &self.throttled,
        ]
    }

    /// Removes a deleted Destination's series.
    pub fn forget_destination(&self, namespace: &str, destination: &str) {
        let labels = DestinationLabels { namespace: namespace.to_owned(), destination: destination.to_owned() };
        for family in self.destination_families() {
            family.remove(&labels);
        }
    }

    /// Drops every series only the leader keeps up to date (Destinations, packages), when this
    /// replica stops leading: a standby must not report what it no longer knows.
    pub fn clear_leader_series(&self) {
        for family in self.destination_families() {
            family.clear();
        }
        self.packages_by_phase.clear();
        self.packages.record(Vec::new());
    }

    /// Counts one reconcile and its duration.
    pub fn reconciled(&self, controller: &str, result: &str, elapsed: Duration) {
        self.reconciles.get_or_create(&ReconcileLabels { controller: controller.into(), result: result.into() }).inc();
        self.reconcile_seconds
            .get_or_create(&ControllerLabel { controller: controller.into() })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one server-side apply of a `kind` object, and why it was sent.
    pub fn applied(&self, kind: &str, reason: &str) {
        self.applies.get_or_create(&ApplyLabels { kind: kind.into(), reason: reason.into() }).inc();
    }

    /// Counts one reconcile error.
    pub fn failed(&self, controller: &str, error: &str) {
        self.errors.get_or_create(&ErrorLabels { controller: controller.into(), error: error.into() }).inc();
    }

    /// The text exposition of every metric. With thousands of packages it runs to megabytes
    /// (16 series a package): the buffer starts at the last exposition's size, so it is not
    /// grown by doubling (twice the text held at once while it is copied).
    pub fn encode(&self) -> String {
        use std::sync::atomic::Ordering;
        let last = self.exposition_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity(last + last / 8);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        self.exposition_len.store(out.len(), Ordering::Relaxed);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The `/metrics` and `/healthz` server failed to start.
#[derive(Debug, thiserror::Error)]
#[error("failed to bind the metrics server to {addr}: {source}")]
pub struct BindError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Binds `addr` and serves `/metrics` and `/healthz` until the process ends. `/healthz` says
/// whether this replica leads (`ok (leader)`, `ok (standby)`): the coordinator's own port may
/// speak TLS only, this one is plain HTTP for probes and tests.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, leader: Leadership) -> Result<(), BindError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| BindError { addr, source })?;
    tracing::info!(%addr, "metrics server listening");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(%err, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let leader = leader.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                let leading = leader.is_leading();
                async move {
                    if req.uri().path() == "/log-level" {
                        return Ok::<_, Infallible>(log_level(req).await);
                    }
                    Ok::<_, Infallible>(respond(&req, &metrics, leading))
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(err) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%err, "metrics connection ended");
            }
        });
    }
}

/// `GET`/`PUT /log-level` (courier_core::telemetry), bodies of at most 4 KiB.
async fn log_level(req: Request<Incoming>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt as _;
    let method = req.method().clone();
    let (status, text) = match http_body_util::Limited::new(req.into_body(), 4096).collect().await {
        Ok(body) => courier_core::telemetry::log_level_endpoint(&method, &body.to_bytes()),
        Err(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n".to_owned()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    resp
}

fn respond(req: &Request<Incoming>, metrics: &Metrics, leading: bool) -> Response<Full<Bytes>> {
    let role = if leading { "leader" } else { "standby" };
    let (status, body, content_type) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, metrics.encode(), "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "/healthz" | "/readyz" => (StatusCode::OK, format!("ok ({role})\n"), "text/plain"),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned(), "text/plain"),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_and_errors_appear_in_the_exposition() {
        let m = Metrics::new();
        m.reconciled("package", "ok", Duration::from_millis(3));
        m.failed("package", "source");
        let text = m.encode();
        assert!(text.contains("courier_operator_reconciles_total{controller=\"package\",result=\"ok\"} 1"), "{text}");
        assert!(
            text.contains("courier_operator_reconcile_errors_total{controller=\"package\",error=\"source\"} 1"),
            "{text}"
        );
        assert!(text.contains("courier_operator_reconcile_duration_seconds_count{controller=\"package\"} 1"), "{text}");
    }

    fn package(name: &str, status: &str) -> courier_api::DeliveryPackage {
        serde_norway::from_str(&format!(
            "apiVersion: courier.dev/v1alpha1\nkind: DeliveryPackage\nmetadata: {{ name: {name}, namespace: ns }}\nspec:\n  destinationRef: {{ name: partner }}\n  datumRef: {{ name: users }}\n  source: {{ file: {{ paths: [\"/x\"] }} }}\n{status}"
        ))
        .expect("package")
    }

    #[test]
    fn package_series_follow_the_status_and_leave_with_the_package() {
        let m = Metrics::new();
        let running = package(
            "p",
            "status:\n  phase: Running\n  progress: { files: 1, bytesTotal: 1000, bytesDone: 250, percent: 25, ratePerSecond: 5, etaSeconds: 30, records: { read: 10, sent: 8, failed: 1, malformed: 1, deadLettered: 2, retried: 3 } }\n",
        );
        let figures = PackageFigures::of(&running);
        assert_eq!((figures.progress, figures.remaining_bytes, figures.eta_seconds), (0.25, 750, Some(30)));
        let stalled = PackageFigures { eta_seconds: None, ..PackageFigures::of(&package("q", "")) };
        m.record_packages(vec![figures, stalled]);
        let text = m.encode();
        let l = r#"namespace="ns",package="p",destination="partner""#;
        for line in [
            format!("courier_operator_package_progress_ratio{{{l}}} 0.25"),
            format!("courier_operator_package_remaining_bytes{{{l}}} 750"),
            format!("courier_operator_package_eta_seconds{{{l}}} 30"),
            format!("courier_operator_package_records{{{l},outcome=\"dead_lettered\"}} 2"),
            format!("courier_operator_package_phase{{{l},phase=\"Running\"}} 1"),
            format!("courier_operator_package_phase{{{l},phase=\"Complete\"}} 0"),
        ] {
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(!text.contains(r#"courier_operator_package_eta_seconds{namespace="ns",package="q""#), "{text}");
        m.record_packages(Vec::new());
        assert!(!m.encode().contains("package=\"p\""), "a deleted package's series are gone");
    }

    #[test]
    fn a_standby_drops_what_only_the_leader_knows() {
        let m = Metrics::new();
        let labels = DestinationLabels { namespace: "ns".into(), destination: "d".into() };
        m.limit.get_or_create(&labels).set(100);
        m.record_packages(vec![PackageFigures::of(&package("p", ""))]);
        m.clear_leader_series();
        let text = m.encode();
        assert!(!text.contains("destination=\"d\"") && !text.contains("package=\"p\""), "{text}");
    }

    #[test]
    fn the_metrics_table_of_docs_metrics_md_is_the_exposition() {
        let m = Metrics::new();
        m.reconciled("package", "ok", Duration::from_millis(3));
        m.failed("package", "source");
        m.packages_by_phase.get_or_create(&PhaseLabel { phase: "Running".into() }).set(1);
        let labels = DestinationLabels { namespace: "ns".into(), destination: "d".into() };
        for family in
            [&m.backlog_records, &m.workers_desired, &m.workers_ready, &m.effective_limit, &m.limit, &m.throttled]
        {
            family.get_or_create(&labels).set(1);
        }
        m.status_writes.get_or_create(&ControllerLabel { controller: "package".into() }).inc();
        m.applied("Deployment", "first");
        m.is_leader.set(1);
        let running = package(
            "p",
            "status:\n  phase: Running\n  progress: { files: 1, bytesTotal: 10, bytesDone: 5, percent: 50, ratePerSecond: 1, etaSeconds: 3, records: { read: 1, sent: 1, failed: 0, malformed: 0, deadLettered: 0, retried: 0 } }\n",
        );
        m.record_packages(vec![PackageFigures::of(&running)]);
        courier_e2e::metrics_doc::assert_documented(&m.encode(), "courier_operator_");
    }
}
