//! The local cluster as tests see it: where its kubeconfig and kubectl are, and whether tests
//! should run against it.
//!
//! Tests that need the cluster are `#[ignore = "needs the local cluster…"]` and call
//! [`Cluster::from_env`], which fails the test when the cluster is missing: a plain `cargo test`
//! reports them as ignored, never as passed; `make test` starts the cluster and runs them with
//! `--include-ignored`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Output};

/// Version of the Kubernetes binaries the cluster is built from.
pub const KUBERNETES_VERSION: &str = "v1.34.4";

/// Namespace label making the apiserver enforce a Pod Security level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// The node IP of the local cluster (e2e/scripts/node-ip.sh): the apiserver, the kubelet,
/// MiniDFS and the servers tests start on the host listen on it, and pods route to it.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 87, 0, 1);

/// The node IP (`COURIER_NODE_IP` overrides [`NODE_IP`]).
pub fn node_ip() -> IpAddr {
    std::env::var("COURIER_NODE_IP").ok().and_then(|ip| ip.parse().ok()).unwrap_or(IpAddr::V4(NODE_IP))
}

/// Whether the node IP is an address of this network namespace. When it is not, a connection
/// to it would leave through the default route, off this machine: check before connecting.
pub fn node_ip_is_local() -> bool {
    std::net::TcpListener::bind((node_ip(), 0)).is_ok()
}

/// The running local cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The kubectl built with the cluster.
    pub kubectl: PathBuf,
}

/// Root of runtime state (`COURIER_STATE`, default `/tmp/courier-e2e`).
pub fn state_dir() -> PathBuf {
    std::env::var_os("COURIER_STATE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp/courier-e2e"))
}

/// Root of cached build outputs (`COURIER_CACHE`, default `~/.cache/courier`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("COURIER_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/courier")
}

/// The workspace root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Cluster {
    /// The running cluster. Tests that need it are `#[ignore]`d with a reason, so a plain
    /// `cargo test` reports them as not run; `make test` starts the cluster and runs them with
    /// `--include-ignored`.
    ///
    /// # Panics
    /// When the kubeconfig or kubectl is missing, or the node IP is not an address of this
    /// machine (the cluster is not up; the apiserver listens on it): a test that needs the
    /// cluster fails without it.
    pub fn from_env() -> Cluster {
        assert!(
            node_ip_is_local(),
            "the node IP {} is not an address here: start the local cluster (e2e/cluster/cluster.sh up, or make test)",
            node_ip()
        );
        let cluster = Cluster {
            kubeconfig: std::env::var_os("KUBECONFIG")
                .map(PathBuf::from)
                .unwrap_or_else(|| state_dir().join("cluster/admin.kubeconfig")),
            kubectl: cache_dir().join(format!("k8s-{KUBERNETES_VERSION}/bin/kubectl")),
        };
        assert!(
            cluster.kubeconfig.is_file(),
            "{} is missing: start the local cluster (e2e/cluster/cluster.sh up, or make test)",
            cluster.kubeconfig.display()
        );
        assert!(cluster.kubectl.is_file(), "{} is missing: build the local cluster first", cluster.kubectl.display());
        cluster
    }

    /// Runs kubectl with the admin kubeconfig and returns its output (whatever the exit code).
    ///
    /// # Panics
    /// When kubectl cannot be started.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() });
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("failed to run {}: {e}", self.kubectl.display()));
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).unwrap_or_else(|e| panic!("failed to write kubectl stdin: {e}"));
        }
        child.wait_with_output().unwrap_or_else(|e| panic!("kubectl did not finish: {e}"))
    }

    /// Runs kubectl and panics with its stderr unless it succeeds; returns stdout.
    ///
    /// # Panics
    /// When kubectl fails.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A kube client with the admin kubeconfig.
    ///
    /// # Panics
    /// When the kubeconfig is unreadable.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("failed to read {}: {e}", self.kubeconfig.display()));
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("invalid kubeconfig {}: {e}", self.kubeconfig.display()));
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("failed to build a kube client: {e}"))
    }

    /// Installs (server-side applies) Courier's CRDs and waits until they are established.
    ///
    /// # Panics
    /// When the apiserver refuses them.
    pub fn install_crds(&self) {
        let dir = repo_root().join("crds/generated");
        let dir = dir.to_string_lossy();
        self.kubectl_ok(
            &["apply", "--server-side", "--force-conflicts", "--field-manager=courier-e2e", "-k", &dir],
            None,
        );
        for crd in ["destinations.courier.dev", "datums.courier.dev", "deliverypackages.courier.dev"] {
            self.kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{crd}")], None);
        }
    }

    /// Creates a namespace with a unique name starting with `prefix`, enforcing Pod Security
    /// `restricted`.
    ///
    /// # Panics
    /// When the apiserver refuses it.
    pub fn unique_namespace(&self, prefix: &str) -> String {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let name = format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000);
        // Pod Security `restricted` is enforced: the apiserver refuses any pod of the test (the
        // operator's, the workers') that regresses from the restricted profile.
        let manifest = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{ {ENFORCE_LABEL}: restricted }}\n"
        );
        self.kubectl_ok(&["create", "-f", "-"], Some(&manifest));
        name
    }
}
