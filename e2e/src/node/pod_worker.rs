//! One pod's life on this node: address, volumes, container supervisors, status,
//! graceful deletion.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::agent::Shared;
use super::container::{self, ContainerJob, Snapshot, State};
use super::envvars::PodFacts;
use super::error::Result;
use super::status::{self, PodView};
use super::volumes::PreparedVolumes;

/// The shortest time a container gets between SIGTERM and SIGKILL (the kubelet's minimum).
const MINIMUM_GRACE: Duration = Duration::from_secs(2);

/// Pause between a container change and the status write, to batch changes.
const STATUS_DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest a pod's containers may take to stop when the agent itself shuts down.
const SHUTDOWN_GRACE_CAP: Duration = Duration::from_secs(5);

/// Why the pod's main loop ended.
enum Ending {
    /// The pod has a deletionTimestamp: stop within its grace period, then delete it.
    Deleted(Duration),
    /// The pod object is gone already (force-deleted): stop at once.
    Gone,
    /// The agent shuts down: stop, but leave the pod object alone.
    AgentShutdown,
}

/// Where one pod stands.
struct PodRun {
    shared: Arc<Shared>,
    api: Api<Pod>,
    pod: Arc<Pod>,
    ip: Option<Ipv4Addr>,
    start_time: Timestamp,
    sandbox_ready: bool,
    init: Vec<watch::Receiver<Snapshot>>,
    containers: Vec<watch::Receiver<Snapshot>>,
    written: Option<serde_json::Value>,
}

/// Runs the pod whose latest version `updates` carries until it is deleted (or the agent
/// shuts down); returns its uid.
pub async fn run(
    shared: Arc<Shared>,
    mut updates: watch::Receiver<Pod>,
    mut shutdown: watch::Receiver<bool>,
) -> String {
    let pod = Arc::new(updates.borrow_and_update().clone());
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    let mut run = PodRun::new(shared, api, pod);

    let terminal = matches!(run.phase_seen(), Some("Succeeded" | "Failed"));
    let ending = if run.pod.metadata.deletion_timestamp.is_some() {
        Ending::Deleted(Duration::ZERO)
    } else if terminal {
        wait_for_end(&mut updates, &mut shutdown).await
    } else {
        run.live(&mut updates, &mut shutdown).await
    };
    run.end(ending).await;
    uid
}

impl PodRun {
    fn new(shared: Arc<Shared>, api: Api<Pod>, pod: Arc<Pod>) -> Self {
        let start_time = pod.status.as_ref().and_then(|s| s.start_time.clone()).map_or_else(Timestamp::now, |t| t.0);
        let spec = pod.spec.clone().unwrap_or_default();
        let waiting = if spec.init_containers.as_ref().is_some_and(|i| !i.is_empty()) {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let snapshots = |containers: &[Container], reason: &str| -> Vec<watch::Receiver<Snapshot>> {
            containers
                .iter()
                .map(|c| {
                    let mut snapshot = Snapshot::creating(c);
                    snapshot.state = State::Waiting { reason: reason.into(), message: None };
                    snapshot.restart_count = previous_restart_count(&pod, &c.name);
                    watch::channel(snapshot).1
                })
                .collect()
        };
        let init = snapshots(spec.init_containers.as_deref().unwrap_or_default(), "PodInitializing");
        let containers = snapshots(&spec.containers, waiting);
        Self { shared, api, pod, ip: None, start_time, sandbox_ready: false, init, containers, written: None }
    }

    fn phase_seen(&self) -> Option<&str> {
        self.pod.status.as_ref().and_then(|s| s.phase.as_deref())
    }

    fn name(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or(""),
            self.pod.metadata.name.as_deref().unwrap_or("")
        )
    }

    /// Allocates the address, prepares volumes, starts the containers and keeps status current.
    async fn live(&mut self, updates: &mut watch::Receiver<Pod>, shutdown: &mut watch::Receiver<bool>) -> Ending {
        let preferred = self.pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse().ok());
        self.ip = self.shared.allocate_ip(preferred);
        let Some(ip) = self.ip else {
            self.set_waiting("ContainerCreating", "no free loopback pod IP on this node");
            self.write_status().await;
            return wait_for_end(updates, shutdown).await;
        };
        tracing::info!(pod = %self.name(), %ip, "starting pod");
        self.write_status().await;

        let mut volumes = loop {
            let facts = PodFacts { pod: &self.pod, ip, node_name: &self.shared.node_name };
            match PreparedVolumes::prepare(&self.shared.client, &self.shared.state, facts, &self.shared.cluster).await {
                Ok(volumes) => break volumes,
                Err(error) => {
                    tracing::warn!(pod = %self.name(), %error, "volumes not ready");
                    self.set_waiting("ContainerCreating", &format!("volumes: {error}"));
                    self.write_status().await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        ending = wait_for_end(updates, shutdown) => return ending,
                    }
                }
            }
        };
        self.sandbox_ready = true;

        let spec = self.pod.spec.clone().unwrap_or_default();
        let pod_policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
        let launcher = Launcher { shared: self.shared.clone(), pod: self.pod.clone(), ip };
        // Init containers run one after the other, each to a successful end.
        let init_policy = if pod_policy == "Never" { "Never" } else { "OnFailure" };
        for (index, container) in spec.init_containers.unwrap_or_default().into_iter().enumerate() {
            let mut supervisors = JoinSet::new();
            let stop = launcher.start(container, &mut self.init[index], &volumes, init_policy, &mut supervisors);
            let mut alive = [true];
            let interrupted = loop {
                tokio::select! {
                    ending = next_ending(updates, shutdown) => match ending {
                        Some(ending) => break Some(ending),
                        None => self.pod = Arc::new(updates.borrow().clone()),
                    },
                    () = any_changed(std::slice::from_mut(&mut self.init[index]), &mut alive) => {
                        tokio::time::sleep(STATUS_DEBOUNCE).await;
                        self.write_status().await;
                        if !alive[0] {
                            break None;
                        }
                    }
                }
            };
            if let Some(ending) = interrupted {
                stop.send_replace(Some(self.grace_for(&ending)));
                while supervisors.join_next().await.is_some() {}
                return ending;
            }
            let succeeded = matches!(&self.init[index].borrow().state, State::Terminated(exit) if exit.exit_code == 0);
            if !succeeded {
                tracing::info!(pod = %self.name(), "an init container did not succeed; the pod stays as it is");
                return wait_for_end(updates, shutdown).await;
            }
        }

        let mut stops = Vec::new();
        let mut supervisors = JoinSet::new();
        for (container, slot) in spec.containers.into_iter().zip(self.containers.iter_mut()) {
            stops.push(launcher.start(container, slot, &volumes, &pod_policy, &mut supervisors));
        }
        let mut alive: Vec<bool> = vec![true; self.containers.len()];
        let ending = loop {
            let refresh = volumes.next_refresh();
            tokio::select! {
                ending = next_ending(updates, shutdown) => match ending {
                    Some(ending) => break ending,
                    None => self.pod = Arc::new(updates.borrow().clone()),
                },
                () = any_changed(&mut self.containers, &mut alive) => {
                    tokio::time::sleep(STATUS_DEBOUNCE).await;
                    self.write_status().await;
                }
                () = sleep_until(refresh) => {
                    let facts = PodFacts { pod: &self.pod, ip, node_name: &self.shared.node_name };
                    if let Err(error) = volumes.refresh_due_tokens(&self.shared.client, facts).await {
                        tracing::warn!(pod = %self.name(), %error, "token refresh failed; retrying in 10 s");
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                }
            }
        };
        let grace = self.grace_for(&ending);
        tracing::info!(pod = %self.name(), ?grace, "stopping pod");
        for stop in &stops {
            stop.send_replace(Some(grace));
        }
        while supervisors.join_next().await.is_some() {}
        ending
    }

    fn grace_for(&self, ending: &Ending) -> Duration {
        // As the kubelet does (kuberuntime's minimumGracePeriodInSeconds), a container always
        // gets at least 2 s between SIGTERM and SIGKILL, even for a force deletion.
        let grace = match ending {
            Ending::Deleted(grace) => *grace,
            Ending::Gone => Duration::ZERO,
            Ending::AgentShutdown => container::grace_of(&self.pod).min(SHUTDOWN_GRACE_CAP),
        };
        grace.max(MINIMUM_GRACE)
    }

    async fn end(&mut self, ending: Ending) {
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        match ending {
            Ending::Deleted(_) => {
                if self.sandbox_ready {
                    self.write_status().await;
                }
                if let Err(error) = self.delete(&uid).await {
                    tracing::warn!(pod = %self.name(), %error, "could not delete the pod object");
                }
                self.shared.state.remove_pod(&uid);
            }
            Ending::Gone => self.shared.state.remove_pod(&uid),
            Ending::AgentShutdown => {}
        }
        if let Some(ip) = self.ip {
            self.shared.release_ip(ip);
        }
        tracing::info!(pod = %self.name(), "pod finished on this node");
    }

    async fn delete(&self, uid: &str) -> Result<()> {
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
            ..DeleteParams::default()
        };
        match self.api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
            Err(source) => Err(super::Error::Kube { action: format!("delete pod {}", self.name()), source }),
        }
    }

    fn set_waiting(&mut self, reason: &str, message: &str) {
        for receiver in self.init.iter_mut().chain(&mut self.containers) {
            let mut snapshot = receiver.borrow().clone();
            snapshot.state = State::Waiting { reason: reason.into(), message: Some(message.into()) };
            *receiver = watch::channel(snapshot).1;
        }
    }

    /// Writes the status if it changed since the last write.
    async fn write_status(&mut self) {
        let init: Vec<Snapshot> = self.init.iter().map(|r| r.borrow().clone()).collect();
        let snapshots: Vec<Snapshot> = self.containers.iter().map(|r| r.borrow().clone()).collect();
        let mut basis = (*self.pod).clone();
        if let Some(written) = &self.written {
            basis.status = serde_json::from_value::<PodStatus>(written.clone()).ok();
        }
        let view = PodView { pod: &basis, ip: self.ip, start_time: self.start_time, sandbox_ready: self.sandbox_ready };
        let status = status::pod_status(view, &init, &snapshots);
        let Ok(value) = serde_json::to_value(&status) else { return };
        if self.written.as_ref() == Some(&value) {
            return;
        }
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let patch = json!({ "status": value });
        match self.api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
            Ok(_) => {
                tracing::debug!(pod = %self.name(), phase = ?status.phase, "status written");
                self.written = Some(value);
            }
            Err(error) => tracing::warn!(pod = %self.name(), %error, "could not write pod status"),
        }
    }
}

/// Starts container supervisors of one pod.
struct Launcher {
    shared: Arc<Shared>,
    pod: Arc<Pod>,
    ip: Ipv4Addr,
}

impl Launcher {
    /// Starts a supervisor publishing into `slot`; returns the sender that stops it.
    fn start(
        &self,
        container: Container,
        slot: &mut watch::Receiver<Snapshot>,
        volumes: &PreparedVolumes,
        restart_policy: &str,
        supervisors: &mut JoinSet<()>,
    ) -> watch::Sender<Option<Duration>> {
        let sender = watch::Sender::new(slot.borrow().clone());
        *slot = sender.subscribe();
        let (stop, stop_rx) = watch::channel(None);
        match volumes.mounts_for(&container) {
            Ok(mounts) => {
                let job = ContainerJob {
                    shared: self.shared.clone(),
                    pod: self.pod.clone(),
                    ip: self.ip,
                    container,
                    mounts,
                    restart_policy: restart_policy.to_string(),
                };
                supervisors.spawn(container::supervise(job, sender, stop_rx));
            }
            Err(error) => {
                let message = error.to_string();
                sender.send_modify(|s| {
                    s.state = State::Waiting { reason: "CreateContainerConfigError".into(), message: Some(message) }
                });
                slot.mark_changed();
            }
        }
        stop
    }
}

fn previous_restart_count(pod: &Pod, container: &str) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == container))
        .map_or(0, |c| c.restart_count)
}

/// Some(ending) when the pod is being deleted, gone, or the agent shuts down; None on a plain update.
async fn next_ending(updates: &mut watch::Receiver<Pod>, shutdown: &mut watch::Receiver<bool>) -> Option<Ending> {
    tokio::select! {
        changed = updates.changed() => {
            if changed.is_err() {
                return Some(Ending::Gone);
            }
            let pod = updates.borrow();
            pod.metadata.deletion_timestamp.as_ref()?;
            let seconds = pod.metadata.deletion_grace_period_seconds.unwrap_or(30);
            Some(Ending::Deleted(Duration::from_secs(u64::try_from(seconds).unwrap_or(0))))
        }
        _ = shutdown.wait_for(|down| *down) => Some(Ending::AgentShutdown),
    }
}

async fn wait_for_end(updates: &mut watch::Receiver<Pod>, shutdown: &mut watch::Receiver<bool>) -> Ending {
    loop {
        if let Some(ending) = next_ending(updates, shutdown).await {
            return ending;
        }
    }
}

/// Resolves when a still-running supervisor published a change or finished
/// (its last snapshot still needs writing); finished ones are not waited on again.
async fn any_changed(receivers: &mut [watch::Receiver<Snapshot>], alive: &mut [bool]) {
    let waiting: Vec<_> = receivers
        .iter_mut()
        .zip(alive.iter())
        .enumerate()
        .filter(|(_, (_, alive))| **alive)
        .map(|(i, (r, _))| async move { (i, r.changed().await.is_ok()) }.boxed())
        .collect();
    if waiting.is_empty() {
        return std::future::pending().await;
    }
    let ((index, still_running), _, _) = futures::future::select_all(waiting).await;
    if !still_running {
        alive[index] = false;
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
