//! Pods on the local node as tests see them: addresses and readiness through the API, and
//! their containers through the node's containerd (`crictl`), e.g. to kill one.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, cache_dir, state_dir};

/// Version of cri-tools whose `crictl` e2e/node/build.sh builds.
pub const CRI_TOOLS_VERSION: &str = "v1.34.0";

/// `crictl` against the node's containerd.
#[derive(Debug, Clone)]
pub struct Node {
    crictl: PathBuf,
    endpoint: String,
}

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

impl Node {
    /// The node of the running local cluster (`$COURIER_STATE/node/containerd`).
    pub fn new() -> Node {
        let socket = state_dir().join("node/containerd/containerd.sock");
        Node {
            crictl: cache_dir().join(format!("cri-tools-{CRI_TOOLS_VERSION}/bin/crictl")),
            endpoint: format!("unix://{}", socket.display()),
        }
    }

    /// Runs crictl and returns its output (whatever the exit code).
    ///
    /// # Panics
    /// When crictl cannot be started.
    pub fn crictl(&self, args: &[&str]) -> Output {
        Command::new(&self.crictl)
            .args(["--runtime-endpoint", &self.endpoint, "--image-endpoint", &self.endpoint, "--timeout", "10s"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("failed to run {}: {e}", self.crictl.display()))
    }

    fn crictl_ok(&self, args: &[&str]) -> String {
        let out = self.crictl(args);
        assert!(out.status.success(), "crictl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The id of the running container `container` of pod `namespace/pod`, if any.
    pub fn running_container(&self, namespace: &str, pod: &str, container: &str) -> Option<String> {
        let ns_label = format!("io.kubernetes.pod.namespace={namespace}");
        let pod_label = format!("io.kubernetes.pod.name={pod}");
        let name = format!("^{container}$");
        let out = self.crictl_ok(&[
            "ps", "-q", "--state", "Running", "--label", &ns_label, "--label", &pod_label, "--name", &name,
        ]);
        out.lines().next().map(str::to_owned)
    }

    /// The host pid of a container's main process.
    pub fn container_pid(&self, id: &str) -> Option<u32> {
        self.crictl_ok(&["inspect", "--output", "go-template", "--template", "{{.info.pid}}", id]).parse().ok()
    }

    /// Sends SIGKILL to the main process of container `container` of `namespace/pod`; returns its
    /// host pid.
    ///
    /// # Panics
    /// When the container is not running or the signal cannot be sent.
    pub fn kill_container(&self, namespace: &str, pod: &str, container: &str) -> u32 {
        let id = self
            .running_container(namespace, pod, container)
            .unwrap_or_else(|| panic!("no running container {container} in pod {namespace}/{pod}"));
        let pid = self.container_pid(&id).unwrap_or_else(|| panic!("no pid for container {id}"));
        let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -KILL {pid}");
        pid
    }

    /// `crictl stop --timeout SECS` of container `container` of `namespace/pod` (SIGTERM, then
    /// SIGKILL after the timeout); returns the container id.
    pub fn stop_container(&self, namespace: &str, pod: &str, container: &str, timeout_secs: u32) -> String {
        let id = self
            .running_container(namespace, pod, container)
            .unwrap_or_else(|| panic!("no running container {container} in pod {namespace}/{pod}"));
        self.crictl_ok(&["stop", "--timeout", &timeout_secs.to_string(), &id]);
        id
    }
}

/// A jsonpath of pod `namespace/pod`, empty when the pod or the field does not exist.
pub fn pod_field(cluster: &Cluster, namespace: &str, pod: &str, jsonpath: &str) -> String {
    let out = cluster.kubectl(&["-n", namespace, "get", "pod", pod, "-o", &format!("jsonpath={jsonpath}")], None);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The pod's IP once it has one.
pub fn pod_ip(cluster: &Cluster, namespace: &str, pod: &str) -> Option<String> {
    Some(pod_field(cluster, namespace, pod, "{.status.podIP}")).filter(|ip| !ip.is_empty())
}

/// The restart count of container `container` of the pod (0 when unknown).
pub fn restart_count(cluster: &Cluster, namespace: &str, pod: &str, container: &str) -> u32 {
    pod_field(
        cluster,
        namespace,
        pod,
        &format!("{{.status.containerStatuses[?(@.name==\"{container}\")].restartCount}}"),
    )
    .parse()
    .unwrap_or(0)
}

/// Waits until the pod's Ready condition is True; returns its IP.
///
/// # Panics
/// After `timeout`, with the pod's status and events.
pub fn wait_ready(cluster: &Cluster, namespace: &str, pod: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let ready = pod_field(cluster, namespace, pod, "{.status.conditions[?(@.type==\"Ready\")].status}");
        if ready == "True"
            && let Some(ip) = pod_ip(cluster, namespace, pod)
        {
            return ip;
        }
        if Instant::now() > deadline {
            let status = pod_field(cluster, namespace, pod, "{.status}");
            let events = cluster.kubectl(
                &["-n", namespace, "get", "events", "--field-selector", &format!("involvedObject.name={pod}")],
                None,
            );
            panic!(
                "pod {namespace}/{pod} not Ready after {timeout:?}: {status}\n{}",
                String::from_utf8_lossy(&events.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Events of kind `reason` (e.g. `Unhealthy`, `Killing`) about pod `namespace/pod`: their messages.
pub fn events(cluster: &Cluster, namespace: &str, pod: &str, reason: &str) -> Vec<String> {
    let out = cluster.kubectl(
        &[
            "-n",
            namespace,
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod},reason={reason}"),
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ],
        None,
    );
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// `kubectl logs` of container `container` of the pod (the last `tail` lines; `previous` for
/// the container instance before the last restart).
pub fn logs(cluster: &Cluster, namespace: &str, pod: &str, container: &str, tail: u32, previous: bool) -> String {
    let tail = format!("--tail={tail}");
    let mut args = vec!["-n", namespace, "logs", pod, "-c", container, &tail];
    if previous {
        args.push("--previous");
    }
    let out = cluster.kubectl(&args, None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Keeps the logs of every pod matching a label selector, including pods deleted before the
/// test looks (a scaled-down worker's log is gone with its pod): a task reads them through the
/// API every 2 s until dropped (in-process, so it costs the machine little beside a run).
pub struct LogKeeper {
    logs: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LogKeeper {
    /// Starts keeping the logs of container `container` of the pods matching `selector`.
    pub async fn start(cluster: &Cluster, namespace: &str, selector: &str, container: &str) -> LogKeeper {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{ListParams, LogParams};
        let logs = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
        let api: kube::Api<Pod> = kube::Api::namespaced(cluster.client().await, namespace);
        let (selector, container, kept) = (selector.to_owned(), container.to_owned(), std::sync::Arc::clone(&logs));
        let task = tokio::spawn(async move {
            loop {
                if let Ok(pods) = api.list(&ListParams::default().labels(&selector)).await {
                    for pod in pods.items {
                        let Some(name) = pod.metadata.name else { continue };
                        let params = LogParams { container: Some(container.clone()), ..LogParams::default() };
                        if let Ok(text) = api.logs(&name, &params).await {
                            kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name, text);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        LogKeeper { logs, task }
    }

    /// Every pod's log as last read, pod by pod, each line prefixed with the pod's name.
    pub fn dump(&self) -> String {
        let logs = self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        for (pod, text) in logs.iter() {
            for line in text.lines() {
                out.push_str(&format!("[{pod}] {line}\n"));
            }
        }
        out
    }
}

impl Drop for LogKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
