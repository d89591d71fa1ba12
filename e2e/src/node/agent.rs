//! Wiring: load the kubeconfig, clean up after a previous run, register the Node,
//! heartbeat, run pods, stop them on SIGTERM/SIGINT.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::config::{self, AgentConfig, ClusterInfo};
use super::error::{Error, Result};
use super::images::ImageMap;
use super::ipam::IpPool;
use super::launch;
use super::node_lease::{self, NodeIdentity};
use super::pods;
use super::state::StateDir;

/// How long to wait for killed leftovers to release their addresses.
const STALE_KILL_WAIT: Duration = Duration::from_secs(3);

/// What every pod worker and container supervisor shares.
pub struct Shared {
    /// Client with the node's identity.
    pub client: kube::Client,
    /// Apiserver address and CA, for pods.
    pub cluster: ClusterInfo,
    /// The state directory.
    pub state: StateDir,
    /// The images map file (re-read at each container start).
    pub images: PathBuf,
    /// Repository root for image binaries.
    pub root: PathBuf,
    /// This node's name.
    pub node_name: String,
    ipam: Mutex<IpPool>,
}

impl Shared {
    /// A loopback address for a new pod (see [`IpPool::allocate`]).
    pub fn allocate_ip(&self, preferred: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        self.ipam.lock().map(|mut pool| pool.allocate(preferred)).unwrap_or(None)
    }

    /// Returns a pod's address to the pool.
    pub fn release_ip(&self, ip: Ipv4Addr) {
        if let Ok(mut pool) = self.ipam.lock() {
            pool.release(ip);
        }
    }
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(config: AgentConfig) -> Result<()> {
    let root = config.repo_root();
    ImageMap::load(&config.images, &root)?;
    let state = StateDir::create(&config.state_dir)?;
    let killed = state.kill_stale_processes();
    if !killed.is_empty() {
        launch::wait_gone(&killed, STALE_KILL_WAIT).await;
        tracing::info!(killed = killed.len(), "killed processes left by a previous run");
    }
    let (client, cluster) = config::load_kubeconfig(&config.kubeconfig).await?;
    let shared = Arc::new(Shared {
        client: client.clone(),
        cluster,
        state,
        images: config.images.clone(),
        root,
        node_name: config.node_name.clone(),
        ipam: Mutex::new(IpPool::default()),
    });

    let (shutdown_tx, shutdown) = watch::channel(false);
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::io("listen for", "SIGTERM"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::io("listen for", "SIGINT"))?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping pods and exiting"),
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping pods and exiting"),
        }
        shutdown_tx.send_replace(true);
    });

    let identity = NodeIdentity { name: config.node_name.clone(), max_pods: config.max_pods };
    let node = loop {
        match node_lease::register(&client, &identity).await {
            Ok(node) => break node,
            Err(error) => {
                tracing::warn!(%error, "node registration failed; retrying in 2 s");
                let mut shutdown = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.wait_for(|down| *down) => return Ok(()),
                }
            }
        }
    };
    tracing::info!(node = %identity.name, "node registered");
    tokio::spawn(node_lease::heartbeat(client, identity, node, shutdown.clone()));
    pods::run(shared, shutdown).await;
    Ok(())
}
