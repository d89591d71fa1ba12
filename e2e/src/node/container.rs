//! One container's supervisor: resolves its image and environment, starts the
//! process, probes it, restarts it by the pod's restart policy with exponential
//! back-off, and stops it with SIGTERM → grace period → SIGKILL.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::process::Child;
use tokio::sync::watch;
use tokio::time::{Instant, Interval};

use super::agent::Shared;
use super::envvars::{self, Lookup, PodFacts};
use super::images::ImageMap;
use super::launch::{self, LaunchSpec, Mount};
use super::probe::{Check, ProbeSettings};

/// Back-off before the first restart; it doubles up to [`BACKOFF_CAP`].
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest back-off between restarts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// How a container process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Exit code; 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// `Completed` for exit code 0, else `Error`.
    pub reason: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Timestamp,
}

/// The current state of a container, as in `ContainerStatus.state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not running: why, and what to do about it.
    Waiting {
        /// e.g. `ContainerCreating`, `ErrImagePull`, `CrashLoopBackOff`.
        reason: String,
        /// Details for the user.
        message: Option<String>,
    },
    /// The process runs since `started_at`.
    Running {
        /// Start time.
        started_at: Timestamp,
    },
    /// The process ended and will not be restarted.
    Terminated(Exit),
}

/// Everything the pod status needs to know about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Container name.
    pub name: String,
    /// Image as written in the spec.
    pub image: String,
    /// Current state.
    pub state: State,
    /// The previous run's end, once it has restarted.
    pub last_exit: Option<Exit>,
    /// How many times it was restarted.
    pub restart_count: i32,
    /// Passing its readiness probe (or running, without one).
    pub ready: bool,
    /// Its process was started at least once.
    pub has_run: bool,
    /// It ended for good: no restart will follow.
    pub done: bool,
}

impl Snapshot {
    /// A container not started yet.
    pub fn creating(container: &Container) -> Self {
        Self {
            name: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            state: State::Waiting { reason: "ContainerCreating".into(), message: None },
            last_exit: None,
            restart_count: 0,
            ready: false,
            has_run: false,
            done: false,
        }
    }
}

/// What a supervisor needs about its container.
pub struct ContainerJob {
    /// Agent-wide context.
    pub shared: Arc<Shared>,
    /// The pod as first seen.
    pub pod: Arc<Pod>,
    /// The pod's address.
    pub ip: std::net::Ipv4Addr,
    /// The container.
    pub container: Container,
    /// Its bind mounts.
    pub mounts: Vec<Mount>,
    /// `Always`, `OnFailure` or `Never` (init containers: `OnFailure` unless the pod says `Never`).
    pub restart_policy: String,
}

enum Outcome {
    /// Stopped on request (pod deletion, agent shutdown).
    Stopped(Exit),
    /// Exited by itself.
    Ended(Exit),
    /// Killed after failing its liveness probe: restarted unless the policy is Never.
    Unhealthy(Exit),
}

/// Runs the container until it ends for good or a stop (with its grace period) is requested.
pub async fn supervise(
    job: ContainerJob,
    status: watch::Sender<Snapshot>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let policy = job.restart_policy.clone();
    let mut backoff = BACKOFF_START;
    loop {
        let attempt = status.borrow().restart_count;
        let spec = match prepare(&job).await {
            Ok(spec) => spec,
            Err((reason, message)) => {
                tracing::warn!(container = %job.container.name, %reason, %message, "container cannot start yet");
                status.send_modify(|s| s.state = State::Waiting { reason: reason.into(), message: Some(message) });
                if sleep_or_stop(next_backoff(&mut backoff), &mut stop).await {
                    return finish(&status);
                }
                continue;
            }
        };
        let header = format!(
            "=== courier-node {}: starting container {} (restart {attempt}): {} {} ===",
            Timestamp::now(),
            job.container.name,
            spec.program,
            spec.args.join(" ")
        );
        let child = match launch::spawn(&spec, &header) {
            Ok(child) => child,
            Err(error) => {
                status.send_modify(|s| {
                    s.state = State::Waiting { reason: "RunContainerError".into(), message: Some(error.to_string()) }
                });
                if sleep_or_stop(next_backoff(&mut backoff), &mut stop).await {
                    return finish(&status);
                }
                continue;
            }
        };
        let started = Instant::now();
        let outcome = run(&job, child, &status, &mut stop).await;
        if started.elapsed() > BACKOFF_CAP * 2 {
            backoff = BACKOFF_START;
        }
        let unhealthy = matches!(outcome, Outcome::Unhealthy(_));
        match outcome {
            Outcome::Stopped(exit) => {
                status.send_modify(|s| {
                    s.state = State::Terminated(exit);
                    s.ready = false;
                    s.done = true;
                });
                return;
            }
            Outcome::Ended(exit) | Outcome::Unhealthy(exit)
                if should_restart(&policy, exit.exit_code) || (unhealthy && policy != "Never") =>
            {
                let delay = next_backoff(&mut backoff);
                tracing::info!(container = %job.container.name, exit_code = exit.exit_code, ?delay, "container ended; restarting");
                status.send_modify(|s| {
                    s.state = State::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some(format!("back-off {}s restarting failed container", delay.as_secs())),
                    };
                    s.last_exit = Some(exit);
                    s.restart_count += 1;
                    s.ready = false;
                });
                if sleep_or_stop(delay, &mut stop).await {
                    return finish(&status);
                }
            }
            Outcome::Ended(exit) | Outcome::Unhealthy(exit) => {
                status.send_modify(|s| {
                    s.state = State::Terminated(exit);
                    s.ready = false;
                    s.done = true;
                });
                return;
            }
        }
    }
}

/// Whether a container that exited with `exit_code` is started again under `policy`.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

fn next_backoff(backoff: &mut Duration) -> Duration {
    let current = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_CAP);
    current
}

fn finish(status: &watch::Sender<Snapshot>) {
    status.send_modify(|s| {
        if let Some(exit) = s.last_exit.clone()
            && !matches!(s.state, State::Terminated(_))
        {
            s.state = State::Terminated(exit);
        }
        s.ready = false;
        s.done = true;
    });
}

/// Sleeps `delay`; true if a stop was requested meanwhile.
async fn sleep_or_stop(delay: Duration, stop: &mut watch::Receiver<Option<Duration>>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = stop_requested(stop) => true,
    }
}

/// Resolves when a stop is requested (or the pod worker is gone), with the grace period.
async fn stop_requested(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    loop {
        if let Some(grace) = *stop.borrow_and_update() {
            return grace;
        }
        if stop.changed().await.is_err() {
            return Duration::ZERO;
        }
    }
}

async fn prepare(job: &ContainerJob) -> Result<LaunchSpec, (&'static str, String)> {
    let shared = &job.shared;
    let image = job.container.image.as_deref().unwrap_or_default();
    let binary = ImageMap::load(&shared.images, &shared.root)
        .map_err(|e| ("ErrImagePull", e.to_string()))?
        .resolve(image)
        .map_err(|message| ("ErrImagePull", message))?;
    let facts = PodFacts { pod: &job.pod, ip: job.ip, node_name: &shared.node_name };
    let mut lookup = Lookup::new(&shared.client, facts.namespace());
    let env = envvars::container_env(&mut lookup, facts, &job.container, &shared.cluster)
        .await
        .map_err(|e| ("CreateContainerConfigError", e.to_string()))?;
    let expand = |items: &Option<Vec<String>>| -> Vec<String> {
        items.iter().flatten().map(|item| envvars::expand(item, &env)).collect()
    };
    let command = expand(&job.container.command);
    let args = expand(&job.container.args);
    let (program, args) = match command.split_first() {
        None => (binary.to_string_lossy().into_owned(), args),
        Some((first, rest)) => {
            let program =
                if same_file_name(first, &binary) { binary.to_string_lossy().into_owned() } else { first.clone() };
            (program, rest.iter().chain(&args).cloned().collect())
        }
    };
    Ok(LaunchSpec {
        program,
        args,
        env: env.into_iter().collect(),
        mounts: job.mounts.clone(),
        working_dir: job.container.working_dir.clone().filter(|d| !d.is_empty()),
        log_file: shared.state.log_file(facts.namespace(), facts.name(), &job.container.name),
    })
}

/// A command naming the image's binary (e.g. `/courier-worker`) runs the mapped binary.
fn same_file_name(command: &str, binary: &Path) -> bool {
    Path::new(command).file_name().is_some_and(|name| Some(name) == binary.file_name())
}

async fn run(
    job: &ContainerJob,
    mut child: Child,
    status: &watch::Sender<Snapshot>,
    stop: &mut watch::Receiver<Option<Duration>>,
) -> Outcome {
    let started_at = Timestamp::now();
    let pid = child.id().unwrap_or_default();
    let uid = job.pod.metadata.uid.as_deref().unwrap_or_default();
    if let Err(error) = job.shared.state.record_process(uid, &job.container.name, pid) {
        tracing::warn!(%error, "could not record the container process");
    }
    let settings = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        probe.as_ref().map(|p| ProbeSettings::from_spec(p, &job.container, job.ip.into()))
    };
    let readiness = settings(&job.container.readiness_probe);
    let liveness = settings(&job.container.liveness_probe);
    for probe in readiness.iter().chain(&liveness) {
        if let Check::Unsupported(what) = &probe.check {
            tracing::warn!(container = %job.container.name, "{what} are not supported; the probe always passes");
        }
    }
    status.send_modify(|s| {
        s.state = State::Running { started_at };
        s.ready = readiness.is_none();
        s.has_run = true;
    });
    tracing::info!(container = %job.container.name, pid, "container started");

    let mut readiness_tick = readiness.as_ref().map(ticker);
    let mut liveness_tick = liveness.as_ref().map(ticker);
    let (mut ready_streak, mut unready_streak, mut dead_streak) = (0u32, 0u32, 0u32);
    let ended = |status: std::io::Result<std::process::ExitStatus>| exit_of(status.ok(), started_at);
    let outcome = loop {
        tokio::select! {
            result = child.wait() => break Outcome::Ended(ended(result)),
            grace = stop_requested(stop) => break Outcome::Stopped(terminate(&mut child, pid, grace, started_at).await),
            _ = tick(&mut readiness_tick) => {
                let Some(probe) = &readiness else { continue };
                if probe.check().await {
                    ready_streak += 1;
                    unready_streak = 0;
                    if ready_streak >= probe.success_threshold { status.send_if_modified(|s| !std::mem::replace(&mut s.ready, true)); }
                } else {
                    unready_streak += 1;
                    ready_streak = 0;
                    if unready_streak >= probe.failure_threshold { status.send_if_modified(|s| std::mem::replace(&mut s.ready, false)); }
                }
            }
            _ = tick(&mut liveness_tick) => {
                let Some(probe) = &liveness else { continue };
                dead_streak = if probe.check().await { 0 } else { dead_streak + 1 };
                if dead_streak >= probe.failure_threshold {
                    tracing::info!(container = %job.container.name, "liveness probe failed; killing the container");
                    break Outcome::Unhealthy(terminate(&mut child, pid, grace_of(&job.pod), started_at).await);
                }
            }
        }
    };
    launch::signal_group(pid, "KILL");
    job.shared.state.forget_process(uid, &job.container.name);
    outcome
}

fn ticker(probe: &ProbeSettings) -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + probe.initial_delay, probe.period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The pod's `terminationGracePeriodSeconds` (30 s by default).
pub fn grace_of(pod: &Pod) -> Duration {
    let seconds = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// SIGTERM to the process group, up to `grace` to exit, then SIGKILL.
async fn terminate(child: &mut Child, pid: u32, grace: Duration, started_at: Timestamp) -> Exit {
    tracing::info!(pid, ?grace, "stopping container: SIGTERM");
    launch::signal_group(pid, "TERM");
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            tracing::info!(pid, "grace period over: SIGKILL");
            launch::signal_group(pid, "KILL");
            child.wait().await.ok()
        }
    };
    exit_of(status, started_at)
}

fn exit_of(status: Option<std::process::ExitStatus>, started_at: Timestamp) -> Exit {
    let signal = status.and_then(|s| s.signal());
    let exit_code = match (status.and_then(|s| s.code()), signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 255,
    };
    Exit {
        exit_code,
        signal,
        reason: if exit_code == 0 { "Completed".into() } else { "Error".into() },
        started_at,
        finished_at: Timestamp::now(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_decide_by_exit_code() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("Always", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 2));
        assert!(!should_restart("Never", 1));
    }

    #[test]
    fn back_off_doubles_from_one_second_up_to_ten() {
        let mut backoff = BACKOFF_START;
        let delays: Vec<u64> = (0..6).map(|_| next_backoff(&mut backoff).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn a_command_naming_the_image_binary_runs_the_mapped_binary() {
        assert!(same_file_name("/courier-worker", Path::new("/repo/target/debug/courier-worker")));
        assert!(!same_file_name("sh", Path::new("/repo/target/debug/courier-worker")));
    }

    #[test]
    fn a_signal_death_reports_128_plus_the_signal() {
        let killed = std::process::ExitStatus::from_raw(9);
        let exit = exit_of(Some(killed), Timestamp::now());
        assert_eq!((exit.exit_code, exit.signal, exit.reason.as_str()), (137, Some(9), "Error"));
        let clean = exit_of(Some(std::process::ExitStatus::from_raw(0)), Timestamp::now());
        assert_eq!((clean.exit_code, clean.reason.as_str()), (0, "Completed"));
    }
}
