//! Looking at a delivery from outside: the package and its conditions through the API and
//! `kubectl`, the partner simulator's ledger and per-second series.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use courier_api::DeliveryPackage;
use courier_e2e::cluster::Cluster;
use courier_e2e::sim::{RateLimit, SimConfig, Simulator};
use kube::Api;
use kube::api::{Patch, PatchParams};

use super::Operator;

/// How long a whole test delivery may take.
pub const DELIVERY: Duration = Duration::from_secs(180);

/// The partner simulator on a free port of the node IP, where worker pods reach it.
/// The paced control's partner ([`paced_control`]) on the same runtime thread as `partner`:
/// when that thread reads late, both see their arrivals bunched alike.
pub fn control_beside(partner: &Simulator, config: SimConfig) -> Simulator {
    let ip = courier_e2e::cluster::node_ip();
    partner.start_beside(std::net::SocketAddr::new(ip, 0), config).expect("start the control partner")
}

pub async fn simulator(config: SimConfig) -> Simulator {
    let ip = courier_e2e::cluster::node_ip();
    // On a runtime of its own: the test's kubectl calls, log streams and polls must not bunch
    // the arrivals the partner times.
    Simulator::start_dedicated(std::net::SocketAddr::new(ip, 0), config).expect("start the partner simulator")
}

/// The package as the API server has it.
pub async fn package(client: &kube::Client, ns: &str, name: &str) -> DeliveryPackage {
    Api::<DeliveryPackage>::namespaced(client.clone(), ns).get(name).await.expect("get the package")
}

/// Merge-patches the package's spec.
pub async fn patch_package(client: &kube::Client, ns: &str, name: &str, spec: serde_json::Value) {
    Api::<DeliveryPackage>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "spec": spec })))
        .await
        .expect("patch the package");
}

/// `kubectl wait --for=condition=<condition>` on the package, with diagnostics when it fails.
pub async fn wait_condition(
    cluster: &Cluster,
    client: &kube::Client,
    ns: &str,
    name: &str,
    condition: &str,
    operator: &Operator,
) {
    let timeout = format!("--timeout={}s", DELIVERY.as_secs());
    let out = cluster
        .kubectl(&["-n", ns, "wait", &format!("--for=condition={condition}"), &timeout, &format!("dp/{name}")], None);
    assert!(
        out.status.success(),
        "kubectl wait {condition} failed: {}\nstatus: {:?}\noperator log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        package(client, ns, name).await.status,
        operator.log_tail()
    );
}

/// The names of the worker pods of Destination `dest`.
pub fn worker_pods(cluster: &Cluster, ns: &str, dest: &str) -> Vec<String> {
    let out = cluster
        .kubectl_ok(&["-n", ns, "get", "pods", "-l", &format!("courier.dev/destination={dest}"), "-o", "name"], None);
    out.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
}

/// Ids never accepted, and ids accepted more than once (with counts).
pub fn missing_and_repeated(sim: &Simulator, ids: &[String]) -> (Vec<String>, BTreeMap<String, u32>) {
    let keys = sim.keys();
    let missing = ids.iter().filter(|id| !keys.contains_key(*id)).cloned().collect();
    let repeated = keys.into_iter().filter(|(_, n)| *n > 1).collect();
    (missing, repeated)
}

/// Every id in `ids` was accepted by the simulator exactly once, and nothing else was.
pub fn assert_exactly_once(sim: &Simulator, ids: &[String]) {
    let keys = sim.keys();
    let accepted: BTreeSet<String> = keys.keys().cloned().collect();
    let expected: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(accepted.len(), expected.len(), "every record's key accepted");
    assert_eq!(accepted, expected, "exactly the records' keys");
    let repeated: Vec<_> = keys.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "keys accepted more than once: {repeated:?}");
}

/// The Unix time in whole seconds.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Accepted requests in each whole second from `from` (inclusive) to `to` (exclusive).
pub fn accepted_between(sim: &Simulator, from: u64, to: u64) -> Vec<u64> {
    let stats = sim.stats();
    per_second(&stats.series.accepted, stats.series.start_unix_secs, from, to)
}

/// Requests answered 429 in each whole second from `from` (inclusive) to `to` (exclusive).
pub fn limited_between(sim: &Simulator, from: u64, to: u64) -> Vec<u64> {
    let stats = sim.stats();
    per_second(&stats.series.too_many_requests, stats.series.start_unix_secs, from, to)
}

fn per_second(series: &[u64], start: u64, from: u64, to: u64) -> Vec<u64> {
    (from..to)
        .filter_map(|sec| {
            let i = usize::try_from(sec.checked_sub(start)?).ok()?;
            series.get(i).copied()
        })
        .collect()
}

/// The JSON log lines (operator or worker, as `LogKeeper::dump` gives them) whose timestamp
/// falls in one of `windows` (Unix µs), in time order, each with its time in seconds after
/// `base`.
pub fn log_excerpt(logs: &str, windows: &[(u64, u64)], base: u64) -> Vec<String> {
    let mut excerpt: Vec<(u64, &str)> = logs
        .lines()
        .filter_map(|line| {
            let stamp = line.split("\"timestamp\":\"").nth(1)?.split('"').next()?;
            let micros = u64::try_from(stamp.parse::<jiff::Timestamp>().ok()?.as_microsecond()).ok()?;
            windows.iter().any(|(a, b)| (*a..=*b).contains(&micros)).then_some((micros, line))
        })
        .collect();
    excerpt.sort();
    excerpt
        .into_iter()
        .map(|(micros, line)| {
            let at = micros.saturating_sub(base) as f64 / 1e6;
            format!("log {at:7.3}s {}", line.chars().take(400).collect::<String>())
        })
        .collect()
}

/// Prints each run of 429s in `arrivals` (times in seconds after `base`, with the requests of
/// each sender from 100 ms before it) and returns a window around each (1.5 s before it to
/// 0.2 s after, Unix µs) for [`log_excerpt`].
pub fn rejection_runs(arrivals: &[courier_e2e::sim::Arrival], base: u64) -> Vec<(u64, u64)> {
    let at = |micros: u64| micros.saturating_sub(base) as f64 / 1e6;
    courier_e2e::sim::rejection_clusters(arrivals, Duration::from_millis(200), Duration::from_millis(100))
        .iter()
        .map(|c| {
            eprintln!(
                "429 run {:7.3}s..{:7.3}s: {} refused; requests by sender from 100 ms before: {:?}",
                at(c.first_micros),
                at(c.last_micros),
                c.rejected,
                c.senders
            );
            (c.first_micros.saturating_sub(1_500_000), c.last_micros + 200_000)
        })
        .collect()
}

/// A pod on the node, on the same network path as the workers, that sends `rate` evenly paced
/// requests a second for `seconds` to the partner at `url` (`partner-sim --pace-to`): the
/// control for 429s. What it draws from a partner whose bucket gives it the slack the workers
/// have ([`paced_burst`]) is the jitter of the node and the path, not of a sender.
pub fn paced_pod(url: &str, rate: u32, seconds: u32) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{ name: paced-control }}
spec:
  restartPolicy: Never
  securityContext: {{ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {{ type: RuntimeDefault }} }}
  containers:
    - name: paced
      image: courier/partner-sim:dev
      imagePullPolicy: IfNotPresent
      args: ["--pace-to", "{url}", "--pace-rate", "{rate}", "--pace-seconds", "{seconds}"]
      resources: {{ requests: {{ cpu: 50m, memory: 16Mi }} }}
      securityContext: {{ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {{ drop: [ALL] }} }}
"#
    )
}

/// The bucket for the control's partner at `rate` that leaves it the time slack the workers
/// have at a partner of `limit` with bucket `burst`: the workers together may use half the
/// bucket, so `burst / 2` tokens are left for jitter, `burst / 2 / limit` seconds; the control
/// never bursts (it uses one token). Rounded up (a little more slack than the workers have).
pub fn paced_burst(limit: u32, burst: u32, rate: u32) -> u32 {
    (u64::from(burst / 2) * u64::from(rate)).div_ceil(u64::from(limit.max(1))) as u32 + 1
}

/// The control partner beside a strict partner (`strict`, at `limit` with `burst`): the same
/// partner, limited to the control pod's `rate` with the bucket [`paced_burst`] gives it.
pub fn paced_control(strict: SimConfig, limit: u32, burst: u32, rate: u32) -> SimConfig {
    SimConfig {
        rate_limit: Some(RateLimit { rate: f64::from(rate), burst: paced_burst(limit, burst, rate) }),
        ..strict
    }
}
