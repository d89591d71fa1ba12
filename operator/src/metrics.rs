//! Operator metrics (prometheus-client) and the small HTTP server for `/metrics` and `/healthz`.

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
    pub status_writes: Family<ControllerLabel, Counter>,
    pub is_leader: Gauge,
    /// Continuous delivery (`courier_operator_landing_…`).
    pub landing: crate::controller::landing::metrics::LandingMetrics,
    registry: Registry,
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
        let status_writes = Family::<ControllerLabel, Counter>::default();
        let is_leader = Gauge::default();
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
        registry.register("status_writes", "Status writes by kind", status_writes.clone());
        registry.register("leader", "1 while this replica holds the lease", is_leader.clone());
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
            status_writes,
            is_leader,
            landing,
            registry,
        }
    }

    /// Counts one reconcile and its duration.
    pub fn reconciled(&self, controller: &str, result: &str, elapsed: Duration) {
        self.reconciles.get_or_create(&ReconcileLabels { controller: controller.into(), result: result.into() }).inc();
        self.reconcile_seconds
            .get_or_create(&ControllerLabel { controller: controller.into() })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one reconcile error.
    pub fn failed(&self, controller: &str, error: &str) {
        self.errors.get_or_create(&ErrorLabels { controller: controller.into(), error: error.into() }).inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
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

/// Binds `addr` and serves `/metrics` and `/healthz` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<(), BindError> {
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
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(respond(&req, &metrics)) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(err) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%err, "metrics connection ended");
            }
        });
    }
}

fn respond(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, body, content_type) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, metrics.encode(), "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "/healthz" | "/readyz" => (StatusCode::OK, "ok\n".to_owned(), "text/plain"),
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
}
