//! Shared pieces of the operator's e2e tests: the operator as a pod (from the
//! `courier/operator:dev` image) on the local node, records in MiniDFS, small resource
//! builders and bounded waits.

#![allow(dead_code)]

mod figures;
mod ground;
mod observe;
mod operator_pod;

#[allow(unused_imports)]
pub use figures::*;
#[allow(unused_imports)]
pub use ground::*;
#[allow(unused_imports)]
pub use observe::*;
#[allow(unused_imports)]
pub use operator_pod::*;

use std::time::{Duration, Instant};

use courier_api::{Datum, DeliveryPackage, Destination};
use courier_e2e::cluster::Cluster;
use courier_e2e::minidfs::{Client as HdfsClient, MiniDfs, WriteOptions};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

/// Server-side applies a YAML document (any Courier kind or a Secret) as the test's manager.
pub async fn apply_yaml(client: &Client, namespace: &str, yaml: &str) {
    let value: serde_json::Value = serde_norway::from_str(yaml).expect("valid YAML");
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
        Some("Pod") => Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), namespace)
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

/// CPU each test worker pod requests.
pub const WORKER_CPU_REQUEST: &str = "250m";

/// A Destination pointing at `url` with the given `rateLimit` and `workers` (YAML flow maps).
///
/// Worker pods request a quarter CPU (unless `workers` sets `resources`): without a request they
/// are BestEffort, whose CPU weight is 2 against 1024 for any host process, and on a busy
/// machine they starve.
pub fn destination_yaml_with(name: &str, url: &str, rate_limit: &str, workers: &str, extra: &str) -> String {
    let workers = match workers.trim().strip_suffix('}') {
        Some(open) if !workers.contains("resources") => {
            format!("{open}, resources: {{ requests: {{ cpu: {WORKER_CPU_REQUEST}, memory: 64Mi }} }} }}")
        }
        _ => workers.to_owned(),
    };
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

/// A package of the MiniDFS files matching `pattern` (an absolute HDFS path glob).
pub fn package_yaml(name: &str, dest: &str, datum: &str, pattern: &str, extra: &str) -> String {
    package_yaml_at(&MiniDfs::url(), name, dest, datum, pattern, extra)
}

/// [`package_yaml`] of the files on the HDFS at `url` (a test's own MiniDFS).
pub fn package_yaml_at(url: &str, name: &str, dest: &str, datum: &str, pattern: &str, extra: &str) -> String {
    format!(
        "apiVersion: courier.dev/v1alpha1\nkind: DeliveryPackage\nmetadata: {{ name: {name} }}\nspec:\n  destinationRef: {{ name: {dest} }}\n  datumRef: {{ name: {datum} }}\n  source: {{ hdfs: {{ url: \"{url}\", paths: [\"{pattern}\"] }} }}\n{extra}"
    )
}

/// A fresh MiniDFS directory for a test's records. Pods cannot see the host's files, so
/// every package reads from MiniDFS, which listens on the node IP.
pub struct Records {
    client: HdfsClient,
    /// The directory (an absolute HDFS path).
    pub dir: String,
    /// How each file is written (block size, replication).
    options: WriteOptions,
}

impl Records {
    /// A new directory `/courier-e2e/<prefix>-…` in the running MiniDFS.
    pub async fn new(prefix: &str) -> Records {
        let dfs = MiniDfs::ensure_running().await.expect("MiniDFS");
        let client = dfs.client().expect("an HDFS client");
        let dir = dfs.unique_dir(&client, prefix).await.expect("a test directory");
        Records { client, dir, options: WriteOptions::default() }
    }

    /// A new directory `/courier-e2e/<prefix>` through `client` (a test's own MiniDFS, whose
    /// namespace is the test's alone), its files written with `options`.
    pub async fn in_hdfs(client: HdfsClient, prefix: &str, options: WriteOptions) -> Records {
        let dir = format!("{}/{prefix}", courier_e2e::minidfs::TEST_ROOT);
        client.mkdirs(&dir, 0o755, true).await.unwrap_or_else(|e| panic!("mkdir {dir}: {e}"));
        Records { client, dir, options }
    }

    /// The glob of the JSON-lines files directly in `dir` (`sub` empty) or in `dir/sub`.
    pub fn pattern(&self, sub: &str) -> String {
        if sub.is_empty() { format!("{}/*.jsonl", self.dir) } else { format!("{}/{sub}/*.jsonl", self.dir) }
    }

    /// Writes `files` JSON-lines files of `per_file` records with ids `prefix-<f>-<n>` into
    /// `dir` or `dir/sub`; returns every id.
    pub async fn write(&self, sub: &str, files: usize, per_file: usize, prefix: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for f in 0..files {
            let mut text = String::new();
            for r in 0..per_file {
                let id = format!("{prefix}-{f}-{r}");
                text.push_str(&format!("{{\"id\":\"{id}\",\"payload\":\"{}\"}}\n", "x".repeat(40)));
                ids.push(id);
            }
            let path = if sub.is_empty() {
                format!("{}/part-{f}.jsonl", self.dir)
            } else {
                format!("{}/{sub}/part-{f}.jsonl", self.dir)
            };
            let options = self.options.clone().create_parent(true);
            courier_e2e::fixtures::write_hdfs_file(&self.client, &path, text.as_bytes(), options)
                .await
                .unwrap_or_else(|e| panic!("write {path}: {e}"));
        }
        ids
    }
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

/// The cluster, with CRDs installed and a fresh namespace; panics when the cluster is not up.
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
