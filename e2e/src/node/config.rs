//! The agent's settings: command-line flags and what it learns from its kubeconfig.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::error::{Error, Result};

/// Settings of one agent run, as given on the command line.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "courier-node", about = "Runs the pods bound to one Node as local processes")]
pub struct AgentConfig {
    /// Kubeconfig of the node's identity (user system:node:<name>).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Name of the Node to register and serve.
    #[arg(long)]
    pub node_name: String,
    /// YAML map of image repository (tag ignored) to binary path relative to the repository root.
    #[arg(long)]
    pub images: PathBuf,
    /// Directory for pod volumes, tokens, process records and container logs.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Repository root that image binary paths are relative to
    /// (default: the parent of the images file's directory).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Pods this node accepts (the Node's `pods` capacity).
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
}

impl AgentConfig {
    /// The repository root that image binary paths are relative to.
    pub fn repo_root(&self) -> PathBuf {
        if let Some(root) = &self.root {
            return root.clone();
        }
        let images = std::fs::canonicalize(&self.images).unwrap_or_else(|_| self.images.clone());
        images.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
    }
}

/// What pods need to know about the cluster they run in.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    /// Host of the apiserver, for `KUBERNETES_SERVICE_HOST`.
    pub host: String,
    /// Port of the apiserver, for `KUBERNETES_SERVICE_PORT`.
    pub port: u16,
    /// The cluster CA certificate (PEM), written as `ca.crt` next to service-account tokens.
    pub ca_pem: Vec<u8>,
}

/// Reads the kubeconfig: a client for the node identity and the cluster facts pods need.
pub async fn load_kubeconfig(path: &Path) -> Result<(kube::Client, ClusterInfo)> {
    let bad = |message: String| Error::Kubeconfig { path: path.to_path_buf(), message };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    let cluster = current_cluster(&kubeconfig).ok_or_else(|| bad("no current cluster".into()))?;
    let ca_pem = match (&cluster.certificate_authority_data, &cluster.certificate_authority) {
        (Some(data), _) => base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| bad(format!("certificate-authority-data is not base64: {e}")))?,
        (None, Some(file)) => {
            let file = resolve_relative(path, file);
            std::fs::read(&file).map_err(|e| bad(format!("cannot read CA {}: {e}", file.display())))?
        }
        (None, None) => return Err(bad("the cluster has no certificate authority".into())),
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    let host = config.cluster_url.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']).to_string();
    let port = config.cluster_url.port_u16().unwrap_or(443);
    let client = kube::Client::try_from(config).map_err(|e| bad(e.to_string()))?;
    Ok((client, ClusterInfo { host, port, ca_pem }))
}

fn current_cluster(kubeconfig: &Kubeconfig) -> Option<&kube::config::Cluster> {
    let context_name = kubeconfig.current_context.as_deref()?;
    let context = kubeconfig.contexts.iter().find(|c| c.name == context_name)?.context.as_ref()?;
    let named = kubeconfig.clusters.iter().find(|c| c.name == context.cluster)?;
    named.cluster.as_ref()
}

fn resolve_relative(kubeconfig: &Path, file: &str) -> PathBuf {
    let file = PathBuf::from(file);
    match kubeconfig.parent() {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The agent's flags with images at /repo/e2e/images.yaml, plus `extra`.
    fn parse(extra: &[&str]) -> AgentConfig {
        let base = [
            "courier-node",
            "--kubeconfig",
            "k",
            "--node-name",
            "n",
            "--images",
            "/repo/e2e/images.yaml",
            "--state-dir",
            "/s",
        ];
        AgentConfig::parse_from(base.iter().chain(extra))
    }

    #[test]
    fn repo_root_defaults_to_the_parent_of_the_images_directory() {
        let config = parse(&[]);
        assert_eq!(config.repo_root(), PathBuf::from("/repo"));
    }

    #[test]
    fn an_explicit_root_wins() {
        let config = parse(&["--root", "/elsewhere"]);
        assert_eq!(config.repo_root(), PathBuf::from("/elsewhere"));
    }
}
