//! Watches the pods bound to this node and keeps one [`pod_worker`](super::pod_worker) per pod.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::agent::Shared;
use super::pod_worker;

/// How long the agent waits for its pods to stop when it shuts down.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(8);

/// The running pod workers.
#[derive(Default)]
struct Workers {
    running: HashMap<String, watch::Sender<Pod>>,
    finished: HashSet<String>,
    tasks: JoinSet<String>,
}

impl Workers {
    fn dispatch(&mut self, shared: &Arc<Shared>, shutdown: &watch::Receiver<bool>, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else { return };
        if let Some(sender) = self.running.get(&uid) {
            sender.send_replace(pod);
        } else if !self.finished.contains(&uid) {
            let (sender, receiver) = watch::channel(pod);
            self.running.insert(uid, sender);
            self.tasks.spawn(pod_worker::run(shared.clone(), receiver, shutdown.clone()));
        }
    }

    fn forget(&mut self, uid: &str) {
        self.running.remove(uid);
        self.finished.remove(uid);
    }
}

/// Runs pods bound to the node until `shutdown` turns true, then waits for them to stop.
pub async fn run(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let mut stop = shutdown.clone();
    let api: Api<Pod> = Api::all(shared.client.clone());
    let selector = format!("spec.nodeName={}", shared.node_name);
    let mut events = watcher(api, watcher::Config::default().fields(&selector)).default_backoff().boxed();
    let mut workers = Workers::default();
    let mut listed: Option<HashSet<String>> = None;
    let mut first_listing = true;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(watcher::Event::Init)) => listed = Some(HashSet::new()),
                Some(Ok(watcher::Event::InitApply(pod))) => {
                    if let (Some(listed), Some(uid)) = (listed.as_mut(), pod.metadata.uid.clone()) {
                        listed.insert(uid);
                    }
                    workers.dispatch(&shared, &shutdown, pod);
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    let listed = listed.take().unwrap_or_default();
                    let vanished: Vec<String> = workers.running.keys().filter(|uid| !listed.contains(*uid)).cloned().collect();
                    for uid in vanished {
                        workers.forget(&uid);
                    }
                    if std::mem::take(&mut first_listing) {
                        for uid in shared.state.pod_uids().into_iter().filter(|uid| !listed.contains(uid)) {
                            shared.state.remove_pod(&uid);
                        }
                    }
                    tracing::info!(pods = listed.len(), "pods bound to this node listed");
                }
                Some(Ok(watcher::Event::Apply(pod))) => workers.dispatch(&shared, &shutdown, pod),
                Some(Ok(watcher::Event::Delete(pod))) => {
                    if let Some(uid) = pod.metadata.uid.as_deref() {
                        workers.forget(uid);
                    }
                }
                Some(Err(error)) => tracing::warn!(%error, "pod watch failed; retrying"),
                None => break,
            },
            Some(done) = workers.tasks.join_next() => {
                if let Ok(uid) = done {
                    workers.running.remove(&uid);
                    workers.finished.insert(uid);
                }
            }
            _ = stop.wait_for(|down| *down) => break,
        }
    }
    tracing::info!(pods = workers.tasks.len(), "waiting for pods to stop");
    let drain = async { while workers.tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_WAIT, drain).await.is_err() {
        tracing::warn!("some pods did not stop in time");
    }
}
