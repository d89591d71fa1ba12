//! The worker pods of a Destination and what their `/metrics` say (rate share, requests in
//! flight, leases, 429s), read through the API server's pod proxy like `kubectl get --raw`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt as _};
use serde::Serialize;

use crate::error::Error;
use crate::metrics_text;

/// Label carrying the Destination name on worker pods.
pub const DESTINATION_LABEL: &str = "courier.dev/destination";
/// The worker's metrics port.
const METRICS_PORT: u16 = 9090;
/// How long one pod's metrics may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// One worker pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPod {
    pub name: String,
    pub destination: String,
    pub ready: bool,
    pub phase: String,
    pub restarts: i32,
    /// From its `/metrics`; `None` when they could not be read (see `error`).
    pub figures: Option<WorkerFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a worker's `/metrics` say.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerFigures {
    /// Requests per second the coordinator lets this worker send.
    pub share_per_second: f64,
    pub in_flight: f64,
    pub active_leases: f64,
    pub records_sent: f64,
    pub records_dead_lettered: f64,
    /// Attempts answered 429 Too Many Requests since the worker started.
    pub throttled: f64,
}

impl WorkerFigures {
    /// The figures in a `/metrics` text.
    pub fn from_metrics(text: &str) -> WorkerFigures {
        let samples = metrics_text::parse(text);
        let get = |name: &str, with: &[(&str, &str)]| metrics_text::sum(&samples, name, with).unwrap_or(0.0);
        WorkerFigures {
            share_per_second: get("courier_worker_rate_share_requests_per_second", &[]),
            in_flight: get("courier_worker_in_flight_requests", &[]),
            active_leases: get("courier_worker_active_leases", &[]),
            records_sent: get("courier_worker_records_total", &[("outcome", "sent")]),
            records_dead_lettered: get("courier_worker_records_total", &[("outcome", "dead_lettered")]),
            throttled: get("courier_worker_throttled_requests_total", &[]),
        }
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The worker pods of `destination` in `namespace` (all Destinations when `None`), with their
/// metrics when `scrape`.
pub async fn list(
    client: &Client,
    namespace: Option<&str>,
    destination: Option<&str>,
    scrape: bool,
) -> Result<Vec<WorkerPod>, Error> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let selector = match destination {
        Some(d) => format!("{DESTINATION_LABEL}={d}"),
        None => DESTINATION_LABEL.to_owned(),
    };
    let pods = api.list(&ListParams::default().labels(&selector)).await.map_err(Error::api("list worker pods"))?;
    let mut out = Vec::new();
    for pod in pods {
        let running = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        let restarts = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
        let (figures, error) = if scrape && running == "Running" {
            match scrape_pod(client, &pod.namespace().unwrap_or_default(), &pod.name_any()).await {
                Ok(text) => (Some(WorkerFigures::from_metrics(&text)), None),
                Err(e) => (None, Some(e)),
            }
        } else {
            (None, None)
        };
        out.push(WorkerPod {
            name: pod.name_any(),
            destination: pod.labels().get(DESTINATION_LABEL).cloned().unwrap_or_default(),
            ready: is_ready(&pod),
            phase: running,
            restarts,
            figures,
            error,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn scrape_pod(client: &Client, namespace: &str, pod: &str) -> Result<String, String> {
    let path = format!("/api/v1/namespaces/{namespace}/pods/{pod}:{METRICS_PORT}/proxy/metrics");
    let request = http::Request::get(path).body(Vec::new()).map_err(|e| e.to_string())?;
    match tokio::time::timeout(SCRAPE_TIMEOUT, client.request_text(request)).await {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(format!("metrics unavailable: {e}")),
        Err(_) => Err("metrics unavailable: timed out".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_workers_metric_names() {
        let text = "courier_worker_rate_share_requests_per_second{destination=\"p\"} 150\n\
                    courier_worker_in_flight_requests{destination=\"p\"} 12\n\
                    courier_worker_active_leases{destination=\"p\"} 2\n\
                    courier_worker_records_total{destination=\"p\",outcome=\"sent\"} 900\n\
                    courier_worker_records_total{destination=\"p\",outcome=\"dead_lettered\"} 4\n\
                    courier_worker_throttled_requests_total{destination=\"p\"} 7\n";
        let f = WorkerFigures::from_metrics(text);
        assert_eq!(
            f,
            WorkerFigures {
                share_per_second: 150.0,
                in_flight: 12.0,
                active_leases: 2.0,
                records_sent: 900.0,
                records_dead_lettered: 4.0,
                throttled: 7.0
            }
        );
    }
}
