//! Shared pieces of the operator's e2e tests: the operator as a local process against the
//! local cluster, small resource builders and bounded waits.

#![allow(dead_code)]

mod ground;
mod observe;

#[allow(unused_imports)]
pub use ground::*;
#[allow(unused_imports)]
pub use observe::*;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use courier_api::{Datum, DeliveryPackage, Destination};
use courier_e2e::cluster::{Cluster, repo_root, state_dir};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// The operator binary running out of cluster for one namespace; killed on drop.
pub struct Operator {
    child: Child,
    cluster: Cluster,
    namespace: String,
    /// Its `POD_NAME`: an elected replica's Lease identity is this plus `_` and a random suffix.
    pub name: String,
    pub coordinator_url: String,
    pub metrics_url: String,
    pub log: PathBuf,
}

impl Operator {
    /// Starts `courier-operator` watching `namespace` (no leader election, small shards).
    pub fn start(cluster: &Cluster, namespace: &str) -> Operator {
        Operator::spawn(cluster, namespace, None)
    }

    /// Starts two elected replicas `a` and `b` of `courier-operator` watching `namespace`: leader
    /// election on with the Lease in `namespace` itself, each on its own coordinator port, and
    /// workers told both coordinator URLs (so the worker Deployment is the same whichever
    /// replica leads). See [`Operator::holds`] for a replica's Lease identity.
    pub fn start_pair(cluster: &Cluster, namespace: &str) -> [Operator; 2] {
        let ports = [free_port(), free_port()];
        let urls = ports.map(|p| format!("http://127.0.0.1:{p}")).join(",");
        [
            Operator::spawn_on(cluster, namespace, Some("a"), ports[0], &urls, &[]),
            Operator::spawn_on(cluster, namespace, Some("b"), ports[1], &urls, &[]),
        ]
    }

    /// Starts elected replica `replica` on coordinator port `port`, workers told `worker_urls`,
    /// with `extra` flags (e.g. shorter election timings).
    pub fn start_replica(
        cluster: &Cluster,
        namespace: &str,
        replica: &str,
        port: u16,
        worker_urls: &str,
        extra: &[&str],
    ) -> Operator {
        Operator::spawn_on(cluster, namespace, Some(replica), port, worker_urls, extra)
    }

    fn spawn(cluster: &Cluster, namespace: &str, replica: Option<&str>) -> Operator {
        let port = free_port();
        Operator::spawn_on(cluster, namespace, replica, port, &format!("http://127.0.0.1:{port}"), &[])
    }

    fn spawn_on(
        cluster: &Cluster,
        namespace: &str,
        replica: Option<&str>,
        port: u16,
        worker_urls: &str,
        extra: &[&str],
    ) -> Operator {
        let worker = repo_root().join("target/debug/courier-worker");
        assert!(worker.is_file(), "{} is missing: run `cargo build -p courier-worker` first", worker.display());
        let metrics = free_port();
        let logs = state_dir().join("logs");
        std::fs::create_dir_all(&logs).expect("create the log directory");
        let log = match replica {
            None => logs.join(format!("operator-{namespace}.log")),
            Some(r) => logs.join(format!("operator-{namespace}-{r}.log")),
        };
        let out = std::fs::File::create(&log).expect("create the operator log");
        let err = out.try_clone().expect("clone the log handle");
        let coordinator_url = format!("http://127.0.0.1:{port}");
        let name = format!("courier-operator-{}", replica.unwrap_or("solo"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_courier-operator"));
        command
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("RUST_LOG", "info,courier_operator=debug,kube_runtime=warn")
            .env_remove("POD_IP")
            .env("POD_NAME", &name)
            .env_remove("POD_NAMESPACE")
            .args(["--namespace", namespace]);
        match replica {
            None => command.args(["--leader-election", "off"]),
            Some(_) => command.args(["--leader-election", "on", "--lease-namespace", namespace]),
        };
        let child = command
            .args(["--coordinator-addr", &format!("127.0.0.1:{port}"), "--coordinator-url", worker_urls])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(["--shard-target-bytes", "8192", "--status-interval-ms", "1000"])
            .args(extra)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start courier-operator");
        Operator {
            child,
            cluster: cluster.clone(),
            namespace: namespace.to_owned(),
            name,
            coordinator_url,
            metrics_url: format!("http://127.0.0.1:{metrics}/metrics"),
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether `holder` (a Lease's holder identity) is this replica.
    pub fn holds(&self, holder: &str) -> bool {
        holder.strip_prefix(self.name.as_str()).is_some_and(|rest| rest.starts_with('_'))
    }

    /// Stops the process with SIGTERM (it releases the Lease if it holds it) and reaps it.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    /// What a kubelet does to a force-deleted pod: SIGTERM, then SIGKILL after its minimum
    /// grace period of 2 s.
    pub fn force_delete(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// Kills the process with SIGKILL (no Lease release, no drain) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The coordinator's `/healthz` body (`ok (leader)` or `ok (standby)`), empty when unreachable.
    pub fn health(&self) -> String {
        let addr = self.coordinator_url.trim_start_matches("http://");
        let reply = http_get(addr, "/healthz");
        reply.split_once("\r\n\r\n").map(|(_, body)| body.trim().to_owned()).unwrap_or_default()
    }

    /// The operator's `/metrics` text (plain HTTP/1.0 GET over TCP).
    pub fn metrics(&self) -> String {
        let addr = self.metrics_url.trim_start_matches("http://").trim_end_matches("/metrics").to_owned();
        http_get(&addr, "/metrics")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The operator's log so far (for assertion messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// The whole reply (head and body) of a plain HTTP/1.0 GET over TCP; empty when unreachable.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return String::new() };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: operator\r\n\r\n").as_bytes());
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The test's namespace goes with its operator, passed or failed, so no worker pods
        // outlive the test.
        teardown(&self.cluster, &self.namespace);
    }
}

/// Server-side applies a YAML document (any Courier kind or a Secret) as the test's manager.
pub async fn apply_yaml(client: &Client, namespace: &str, yaml: &str) {
    let value: serde_json::Value = serde_yaml::from_str(yaml).expect("valid YAML");
    let name = value["metadata"]["name"].as_str().expect("metadata.name").to_owned();
    let params = PatchParams::apply("courier-e2e").force();
    match value["kind"].as_str() {
        Some("Destination") => Api::<Destination>::namespaced(client.clone(), namespace)
            .patch(&name, &params, &Patch::Apply(&value))
            .await
            .map(|_| ()),
        Some("Datum") => Api::<Datum>::namespaced(client.clone(), namespace)
            .patch(&name, &params, &Patch::Apply(&value))
            .await
            .map(|_| ()),
        Some("DeliveryPackage") => Api::<DeliveryPackage>::namespaced(client.clone(), namespace)
            .patch(&name, &params, &Patch::Apply(&value))
            .await
            .map(|_| ()),
        Some("Secret") => Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
            .patch(&name, &params, &Patch::Apply(&value))
            .await
            .map(|_| ()),
        other => panic!("apply_yaml: unsupported kind {other:?}"),
    }
    .unwrap_or_else(|e| panic!("failed to apply {name}: {e}"));
}

/// A Destination pointing at `url` with `rps` requests per second and 0 to 2 workers.
pub fn destination_yaml(name: &str, url: &str, rps: u32, extra: &str) -> String {
    let rate_limit = format!("{{ requestsPerSecond: {rps} }}");
    destination_yaml_with(name, url, &rate_limit, "{ min: 0, max: 2, cooldownSeconds: 5 }", extra)
}

/// A Destination pointing at `url` with the given `rateLimit` and `workers` (YAML flow maps).
pub fn destination_yaml_with(name: &str, url: &str, rate_limit: &str, workers: &str, extra: &str) -> String {
    format!(
        "apiVersion: courier.dev/v1alpha1\nkind: Destination\nmetadata: {{ name: {name} }}\nspec:\n  endpoint: {{ url: \"{url}\" }}\n  rateLimit: {rate_limit}\n  workers: {workers}\n{extra}"
    )
}

/// A JSON-lines Datum whose idempotency key is the record's `id` field.
pub fn datum_yaml(name: &str) -> String {
    format!(
        "apiVersion: courier.dev/v1alpha1\nkind: Datum\nmetadata: {{ name: {name} }}\nspec:\n  format: {{ type: JsonLines }}\n  request:\n    pathTemplate: /records\n    idempotencyKey: {{ header: Idempotency-Key, field: id }}\n"
    )
}

/// A package of the files matching `pattern` (an absolute path glob).
pub fn package_yaml(name: &str, dest: &str, datum: &str, pattern: &str, extra: &str) -> String {
    format!(
        "apiVersion: courier.dev/v1alpha1\nkind: DeliveryPackage\nmetadata: {{ name: {name} }}\nspec:\n  destinationRef: {{ name: {dest} }}\n  datumRef: {{ name: {datum} }}\n  source: {{ file: {{ paths: [\"{pattern}\"] }} }}\n{extra}"
    )
}

/// Writes `files` JSON-lines files of `per_file` records with ids `prefix-<n>` under `dir`;
/// returns every id.
pub fn write_records(dir: &Path, files: usize, per_file: usize, prefix: &str) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("create the data directory");
    let mut ids = Vec::new();
    for f in 0..files {
        let mut text = String::new();
        for r in 0..per_file {
            let id = format!("{prefix}-{f}-{r}");
            text.push_str(&format!("{{\"id\":\"{id}\",\"payload\":\"{}\"}}\n", "x".repeat(40)));
            ids.push(id);
        }
        std::fs::write(dir.join(format!("part-{f}.jsonl")), text).expect("write a data file");
    }
    ids
}

/// Polls `check` every 250 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The condition `type_` of a package as (status, reason), if set.
pub async fn package_condition(client: &Client, ns: &str, name: &str, type_: &str) -> Option<(String, String)> {
    let pkg = Api::<DeliveryPackage>::namespaced(client.clone(), ns).get_opt(name).await.ok()??;
    let c = courier_api::conditions::find_condition(&pkg.status?.conditions, type_)?.clone();
    Some((c.status, c.reason))
}

/// The condition `type_` of a Destination as (status, reason), if set.
pub async fn destination_condition(client: &Client, ns: &str, name: &str, type_: &str) -> Option<(String, String)> {
    let d = Api::<Destination>::namespaced(client.clone(), ns).get_opt(name).await.ok()??;
    let c = courier_api::conditions::find_condition(&d.status?.conditions, type_)?.clone();
    Some((c.status, c.reason))
}

/// The cluster (or `None` to skip), with CRDs installed and a fresh namespace.
pub fn setup(prefix: &str) -> (Cluster, String) {
    let cluster = Cluster::from_env();
    cluster.install_crds();
    let ns = cluster.unique_namespace(prefix);
    (cluster, ns)
}

/// Deletes the namespace (best effort, not waited for), unless COURIER_E2E_KEEP is set.
pub fn teardown(cluster: &Cluster, ns: &str) {
    if std::env::var_os("COURIER_E2E_KEEP").is_some() {
        eprintln!("kept namespace {ns} (COURIER_E2E_KEEP)");
        return;
    }
    let _ = cluster.kubectl(&["delete", "namespace", ns, "--wait=false"], None);
}
