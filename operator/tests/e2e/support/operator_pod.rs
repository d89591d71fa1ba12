//! The operator under test as pods on the local node: the `courier/operator:dev` image with a
//! ServiceAccount bound to a ClusterRole with the chart's rules, watching only the test's namespace.
//! The coordinator speaks HTTPS with a certificate the operator generates into a Secret, and
//! workers reach it through one Service that selects the leading replica's pod only.

use std::time::Duration;

use courier_e2e::cluster::{Cluster, repo_root};
use courier_e2e::pods::{self, Node};

use super::teardown;

/// The operator image the local node has (e2e/images/build.sh).
pub const OPERATOR_IMAGE: &str = "courier/operator:dev";
/// The worker image the operator gives worker pods.
pub const WORKER_IMAGE: &str = "courier/worker:dev";
/// Coordinator and metrics ports of the operator container.
const COORDINATOR_PORT: u16 = 8443;
const METRICS_PORT: u16 = 8080;
/// The Service in front of the leading replica, and the coordinator's TLS Secret.
const COORDINATOR_SERVICE: &str = "courier-coordinator";
const COORDINATOR_TLS_SECRET: &str = "courier-coordinator-tls";
/// How long an operator pod may take to be Ready.
const READY: Duration = Duration::from_secs(90);

/// One operator pod; the namespace goes with the first replica dropped.
pub struct Operator {
    cluster: Cluster,
    namespace: String,
    /// The pod's name; an elected replica's Lease identity is this plus `_` and a random suffix.
    pub pod: String,
    /// The same as `pod` (the name main's tests use).
    pub name: String,
    /// The pod's IP.
    pub ip: String,
    /// The one coordinator URL workers are told (the leader Service, HTTPS).
    pub coordinator_url: String,
    pub metrics_url: String,
    owns_namespace: bool,
}

/// ServiceAccount, its ClusterRoleBinding to `courier-operator` (owned by the namespace, so the
/// garbage collector removes it with the namespace) and the chart's Role in its own
/// namespace (leader Lease, the leader label on its pod, its TLS Secret).
fn rbac_yaml(namespace: &str, namespace_uid: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{ name: courier-operator, namespace: {namespace} }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: courier-e2e-{namespace}
  ownerReferences: [{{ apiVersion: v1, kind: Namespace, name: {namespace}, uid: {namespace_uid} }}]
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: courier-operator }}
subjects: [{{ kind: ServiceAccount, name: courier-operator, namespace: {namespace} }}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: courier-operator-leader-election, namespace: {namespace} }}
rules:
  - {{ apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, list, watch, create, update, patch, delete] }}
  - {{ apiGroups: [""], resources: [pods], verbs: [patch] }}
  - {{ apiGroups: [""], resources: [secrets], verbs: [create] }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: courier-operator-leader-election, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: courier-operator-leader-election }}
subjects: [{{ kind: ServiceAccount, name: courier-operator, namespace: {namespace} }}]
"#
    )
}

/// The operator pod under the `restricted` profile (non-root 65532, read-only root filesystem,
/// no capabilities, RuntimeDefault seccomp), the probes of the chart's Deployment, its
/// coordinator on HTTPS behind the leader Service.
fn pod_yaml(namespace: &str, name: &str, election: bool, restart: &str, extra: &[&str]) -> String {
    let election_args = if election {
        format!("--leader-election=on\", \"--lease-namespace={namespace}")
    } else {
        "--leader-election=off".to_owned()
    };
    // Extra flags come last: they override the defaults above (the last of a flag wins).
    let extra_args: String = extra.iter().map(|flag| format!(", \"{flag}\"")).collect();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{ app.kubernetes.io/name: courier-operator, courier.dev/replica: {name} }}
spec:
  serviceAccountName: courier-operator
  restartPolicy: {restart}
  terminationGracePeriodSeconds: 10
  securityContext: {{ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {{ type: RuntimeDefault }} }}
  containers:
    - name: operator
      image: {OPERATOR_IMAGE}
      imagePullPolicy: IfNotPresent
      args: ["--namespace={namespace}", "--worker-image={WORKER_IMAGE}", "--log-format=json", "{election_args}",
             "--coordinator-tls-secret={COORDINATOR_TLS_SECRET}", "--coordinator-service={COORDINATOR_SERVICE}",
             "--shard-target-bytes=8192", "--status-interval-ms=1000"{extra_args}]
      env:
        - {{ name: RUST_LOG, value: "info,courier_operator=debug,kube_runtime=warn" }}
        - {{ name: POD_IP, valueFrom: {{ fieldRef: {{ fieldPath: status.podIP }} }} }}
        - {{ name: POD_NAME, valueFrom: {{ fieldRef: {{ fieldPath: metadata.name }} }} }}
        - {{ name: POD_NAMESPACE, valueFrom: {{ fieldRef: {{ fieldPath: metadata.namespace }} }} }}
      ports:
        - {{ name: coordinator, containerPort: {COORDINATOR_PORT} }}
        - {{ name: metrics, containerPort: {METRICS_PORT} }}
      resources: {{ requests: {{ cpu: 100m, memory: 64Mi }}, limits: {{ memory: 512Mi }} }}
      readinessProbe: {{ httpGet: {{ path: /readyz, port: {METRICS_PORT} }}, periodSeconds: 2 }}
      livenessProbe: {{ httpGet: {{ path: /healthz, port: {METRICS_PORT} }}, periodSeconds: 10, failureThreshold: 3 }}
      securityContext:
        runAsNonRoot: true
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {{ drop: [ALL] }}
"#
    )
}

/// The coordinator Service: the operator pod that leads (it labels itself), only.
fn service_yaml(namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{ name: {COORDINATOR_SERVICE}, namespace: {namespace} }}\nspec:\n  selector: {{ app.kubernetes.io/name: courier-operator, courier.dev/coordinator-leader: \"true\" }}\n  ports: [{{ name: coordinator, port: {COORDINATOR_PORT} }}]\n"
    )
}

fn apply(cluster: &Cluster, yaml: &str) {
    cluster.kubectl_ok(&["apply", "--server-side", "--field-manager=courier-e2e", "-f", "-"], Some(yaml));
}

fn install_rbac(cluster: &Cluster, namespace: &str) {
    // The ClusterRole `courier-operator` with the chart's rules (charts/courier/files), the one
    // source of what the operator may do.
    let rules_path = repo_root().join("charts/courier/files/cluster_role_rules.yaml");
    let rules = std::fs::read_to_string(&rules_path).unwrap_or_else(|e| panic!("{}: {e}", rules_path.display()));
    let rules: String = rules.lines().map(|l| format!("  {l}\n")).collect();
    let role = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{ name: courier-operator }}\nrules:\n{rules}"
    );
    cluster.kubectl_ok(
        &["apply", "--server-side", "--force-conflicts", "--field-manager=courier-e2e", "-f", "-"],
        Some(&role),
    );
    let uid = cluster.kubectl_ok(&["get", "namespace", namespace, "-o", "jsonpath={.metadata.uid}"], None);
    apply(cluster, &rbac_yaml(namespace, uid.trim()));
}

impl Operator {
    /// One operator pod `courier-operator` watching `namespace`, without leader election (it
    /// tells workers its own pod IP); returns once the kubelet reports it Ready.
    pub fn start(cluster: &Cluster, namespace: &str) -> Operator {
        Operator::start_with(cluster, namespace, &[])
    }

    /// [`Operator::start`] with `extra` flags (`--flag=value`, overriding the tests' defaults).
    pub fn start_with(cluster: &Cluster, namespace: &str, extra: &[&str]) -> Operator {
        install_rbac(cluster, namespace);
        apply(cluster, &service_yaml(namespace));
        apply(cluster, &pod_yaml(namespace, "courier-operator", false, "Always", extra));
        Operator::ready(cluster, namespace, "courier-operator", true)
    }

    /// Two elected replicas, pods `operator-a` and `operator-b` (never restarted: a killed one
    /// stays dead); workers are told the one coordinator Service, which selects the leader, so
    /// the worker Deployment is the same whichever replica leads.
    pub fn start_pair(cluster: &Cluster, namespace: &str) -> [Operator; 2] {
        Operator::start_pair_with(cluster, namespace, &[])
    }

    /// [`Operator::start_pair`] with `extra` flags (`--flag=value`) for both replicas.
    pub fn start_pair_with(cluster: &Cluster, namespace: &str, extra: &[&str]) -> [Operator; 2] {
        Operator::pair(cluster, namespace, extra, "Never")
    }

    /// [`Operator::start_pair_with`], but the kubelet restarts a replica's container when its
    /// process ends (`restartPolicy: Always`): the same pod, IP and Service come back as a
    /// standby, so the leader can be killed again and again.
    pub fn start_restarting_pair_with(cluster: &Cluster, namespace: &str, extra: &[&str]) -> [Operator; 2] {
        Operator::pair(cluster, namespace, extra, "Always")
    }

    fn pair(cluster: &Cluster, namespace: &str, extra: &[&str], restart: &str) -> [Operator; 2] {
        install_rbac(cluster, namespace);
        apply(cluster, &service_yaml(namespace));
        for name in ["operator-a", "operator-b"] {
            apply(cluster, &pod_yaml(namespace, name, true, restart, extra));
        }
        [
            Operator::ready(cluster, namespace, "operator-a", true),
            Operator::ready(cluster, namespace, "operator-b", false),
        ]
    }

    fn ready(cluster: &Cluster, namespace: &str, pod: &str, owns_namespace: bool) -> Operator {
        let ip = pods::wait_ready(cluster, namespace, pod, READY);
        Operator {
            cluster: cluster.clone(),
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            name: pod.to_owned(),
            coordinator_url: format!("https://{COORDINATOR_SERVICE}.{namespace}.svc:{COORDINATOR_PORT}"),
            metrics_url: format!("http://{ip}:{METRICS_PORT}/metrics"),
            ip,
            owns_namespace,
        }
    }

    /// Whether `holder` (a Lease's holder identity) is this replica.
    pub fn holds(&self, holder: &str) -> bool {
        holder.strip_prefix(self.pod.as_str()).is_some_and(|rest| rest.starts_with('_'))
    }

    /// `IP:port` of the coordinator (HTTPS).
    pub fn coordinator_addr(&self) -> String {
        format!("{}:{COORDINATOR_PORT}", self.ip)
    }

    /// `IP:port` of the plain-HTTP `/metrics` and `/healthz` (which says leader or standby).
    pub fn health_addr(&self) -> String {
        format!("{}:{METRICS_PORT}", self.ip)
    }

    /// Hands the test's namespace over: dropping this replica no longer deletes it (the
    /// replicas that replace it own it now).
    pub fn hand_namespace_over(&mut self) {
        self.owns_namespace = false;
    }

    /// `kubectl delete pod --force --grace-period=0`: the kubelet sends SIGTERM, then SIGKILL
    /// after its minimum grace period.
    pub fn force_delete(&mut self) {
        self.cluster.kubectl_ok(
            &["-n", &self.namespace, "delete", "pod", &self.pod, "--force", "--grace-period=0", "--wait=false"],
            None,
        );
    }

    /// `kubectl delete pod` (SIGTERM from the kubelet and the pod's grace period; the operator
    /// releases the Lease if it holds it), waited for.
    pub fn terminate(&mut self) {
        self.cluster.kubectl_ok(&["-n", &self.namespace, "delete", "pod", &self.pod, "--wait=true"], None);
    }

    /// SIGTERM to the operator's container, SIGKILL `grace_secs` later (`crictl stop`): the
    /// operator releases the Lease if it holds it.
    pub fn stop(&mut self, grace_secs: u32) {
        Node::new().stop_container(&self.namespace, &self.pod, "operator", grace_secs);
        eprintln!("stopped operator {} (SIGTERM)", self.pod);
    }

    /// SIGKILL of the operator's process in its container (no Lease release, no drain).
    pub fn kill(&mut self) {
        let pid = Node::new().kill_container(&self.namespace, &self.pod, "operator");
        eprintln!("killed operator {} (pid {pid})", self.pod);
    }

    /// The operator's `/healthz` body (`ok (leader)` or `ok (standby)`), empty when unreachable.
    pub fn health(&self) -> String {
        operator_health(&self.health_addr())
    }

    /// The operator's `/metrics` text.
    pub fn metrics(&self) -> String {
        http_get(&format!("{}:{METRICS_PORT}", self.ip), "/metrics")
    }

    /// Whether the operator container runs and was never restarted.
    pub fn is_running(&mut self) -> bool {
        Node::new().running_container(&self.namespace, &self.pod, "operator").is_some()
            && pods::restart_count(&self.cluster, &self.namespace, &self.pod, "operator") == 0
    }

    /// The operator's log so far (`kubectl logs`, for assertion messages).
    pub fn log_tail(&self) -> String {
        pods::logs(&self.cluster, &self.namespace, &self.pod, "operator", 40, false)
    }
}

/// The body of `/healthz` at `addr` (an operator's plain-HTTP health address, `IP:port`):
/// `ok (leader)`, `ok (standby)`, or empty when unreachable.
pub fn operator_health(addr: &str) -> String {
    let reply = http_get(addr, "/healthz");
    reply.split_once("\r\n\r\n").map(|(_, body)| body.trim().to_owned()).unwrap_or_default()
}

/// Polls the operators' health addresses `addrs` every 50 ms until `stop`; counts in `both` the polls where
/// more than one said it leads. Returns the number of polls.
pub fn watch_leaders(
    addrs: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    both: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> std::thread::JoinHandle<u64> {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let mut polls = 0;
        while !stop.load(Ordering::Relaxed) {
            let leading = addrs.iter().filter(|addr| operator_health(addr) == "ok (leader)").count();
            if leading > 1 {
                both.fetch_add(1, Ordering::Relaxed);
            }
            polls += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        polls
    })
}

/// The whole reply (head and body) of a plain HTTP/1.0 GET over TCP; empty when unreachable.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else { return String::new() };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: operator\r\n\r\n").as_bytes());
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

impl Drop for Operator {
    fn drop(&mut self) {
        // The test's namespace goes with its operator, passed or failed, so no pod outlives the
        // test.
        if self.owns_namespace {
            teardown(&self.cluster, &self.namespace);
        }
    }
}
