//! The shares the worker pods enforce, sampled from their metrics endpoints while a run goes
//! on: the workers' own view of the budget (`courier_worker_rate_share_requests_per_second`),
//! summed over the pods that answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

/// Port of the worker's metrics (`WORKER_METRICS_PORT` of the Destination controller).
const METRICS_PORT: u16 = 9090;
const SHARE: &str = "courier_worker_rate_share_requests_per_second{";

/// One sample: seconds since the sampler started, the sum of the shares, and how many pods
/// answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub at_secs: f64,
    pub sum: f64,
    pub pods: usize,
    /// Each pod's share, in the order of their addresses (the first 4).
    pub each: [f64; 4],
}

/// Samples every `every` until dropped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
    pub started: Instant,
}

impl Sampler {
    /// Starts sampling the worker pods of Destination `dest` in `ns`.
    pub fn start(client: kube::Client, ns: &str, dest: &str, every: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let pods: Api<Pod> = Api::namespaced(client, ns);
        let selector = format!("courier.dev/destination={dest}");
        let out = samples.clone();
        let task = tokio::spawn(async move {
            let mut addrs: Vec<SocketAddr> = Vec::new();
            let mut listed = Instant::now() - Duration::from_secs(10);
            loop {
                if listed.elapsed() >= Duration::from_secs(1) {
                    if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
                        addrs = list
                            .items
                            .iter()
                            .filter_map(|p| p.status.as_ref()?.pod_ip.as_deref()?.parse().ok())
                            .map(|ip| SocketAddr::new(ip, METRICS_PORT))
                            .collect();
                        addrs.sort();
                    }
                    listed = Instant::now();
                }
                let at_secs = started.elapsed().as_secs_f64();
                let shares = tokio::task::spawn_blocking({
                    let addrs = addrs.clone();
                    move || addrs.iter().filter_map(share_of).collect::<Vec<f64>>()
                })
                .await
                .unwrap_or_default();
                let mut each = [0.0; 4];
                for (slot, v) in each.iter_mut().zip(&shares) {
                    *slot = *v;
                }
                let sample = Sample { at_secs, sum: shares.iter().sum(), pods: shares.len(), each };
                out.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(sample);
                tokio::time::sleep(every).await;
            }
        });
        Sampler { samples, task, started }
    }

    /// Stops and returns the samples.
    pub fn finish(self) -> Vec<Sample> {
        self.task.abort();
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// The share a worker reports on its metrics endpoint, if it answers within 200 ms.
fn share_of(addr: &SocketAddr) -> Option<f64> {
    let timeout = Duration::from_millis(200);
    let mut stream = TcpStream::connect_timeout(addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: worker\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    parse_share(&text)
}

/// The value of the share gauge in a metrics text (the sum, if several lines carry it).
pub fn parse_share(text: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(SHARE))
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
