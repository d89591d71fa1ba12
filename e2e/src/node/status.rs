//! The pod status, computed from the container snapshots (pure).

use std::net::Ipv4Addr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP,
    Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::container::{Exit, Snapshot, State};

/// Inputs of the status besides the containers.
#[derive(Debug, Clone, Copy)]
pub struct PodView<'a> {
    /// The pod as last seen (its conditions keep their transition times).
    pub pod: &'a Pod,
    /// Its address, once allocated.
    pub ip: Option<Ipv4Addr>,
    /// When the agent accepted it.
    pub start_time: Timestamp,
    /// Its volumes are prepared.
    pub sandbox_ready: bool,
}

/// The pod phase: Pending until every container ran once, Running while any
/// runs or will restart, then Succeeded (all exited 0) or Failed.
pub fn phase(containers: &[Snapshot]) -> &'static str {
    if !containers.is_empty() && containers.iter().all(|c| c.done) {
        let succeeded = containers.iter().all(|c| matches!(&c.state, State::Terminated(e) if e.exit_code == 0));
        return if succeeded { "Succeeded" } else { "Failed" };
    }
    if containers.is_empty() || containers.iter().any(|c| !c.has_run) {
        return "Pending";
    }
    "Running"
}

/// True when the container ended for good with exit code 0.
fn succeeded(container: &Snapshot) -> bool {
    container.done && matches!(&container.state, State::Terminated(e) if e.exit_code == 0)
}

/// The phase with init containers: Failed if one ended for good unsuccessfully,
/// Pending until all succeeded, then as [`phase`] says.
pub fn pod_phase(init: &[Snapshot], containers: &[Snapshot]) -> &'static str {
    if init.iter().any(|c| c.done && !succeeded(c)) {
        "Failed"
    } else if !init.iter().all(succeeded) {
        "Pending"
    } else {
        phase(containers)
    }
}

/// The full status to write to `pods/status`.
pub fn pod_status(view: PodView<'_>, init: &[Snapshot], containers: &[Snapshot]) -> PodStatus {
    let phase = pod_phase(init, containers);
    let initialized = init.iter().all(succeeded);
    let all_ready =
        !containers.is_empty() && containers.iter().all(|c| c.ready && matches!(c.state, State::Running { .. }));
    let previous = view.pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    let condition = |type_: &str, ok: bool| {
        let status = if ok { "True" } else { "False" };
        let kept = previous
            .and_then(|all| all.iter().find(|c| c.type_ == type_ && c.status == status))
            .and_then(|c| c.last_transition_time.clone());
        PodCondition {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: Some(kept.unwrap_or_else(|| Time(Timestamp::now()))),
            reason: (!ok && matches!(type_, "Ready" | "ContainersReady")).then(|| "ContainersNotReady".into()),
            ..PodCondition::default()
        }
    };
    PodStatus {
        phase: Some(phase.into()),
        host_ip: Some("127.0.0.1".into()),
        host_ips: Some(vec![HostIP { ip: "127.0.0.1".into() }]),
        pod_ip: view.ip.map(|ip| ip.to_string()),
        pod_ips: view.ip.map(|ip| vec![PodIP { ip: ip.to_string() }]),
        start_time: Some(Time(view.start_time)),
        conditions: Some(vec![
            condition("PodReadyToStartContainers", view.sandbox_ready),
            condition("Initialized", initialized),
            condition("ContainersReady", all_ready),
            condition("Ready", all_ready),
            condition("PodScheduled", true),
        ]),
        container_statuses: Some(containers.iter().map(container_status).collect()),
        init_container_statuses: (!init.is_empty()).then(|| init.iter().map(container_status).collect()),
        qos_class: view.pod.status.as_ref().and_then(|s| s.qos_class.clone()),
        ..PodStatus::default()
    }
}

fn container_status(snapshot: &Snapshot) -> ContainerStatus {
    ContainerStatus {
        name: snapshot.name.clone(),
        image: snapshot.image.clone(),
        image_id: format!("courier-node://{}", snapshot.image),
        ready: snapshot.ready,
        restart_count: snapshot.restart_count,
        started: Some(matches!(snapshot.state, State::Running { .. })),
        state: Some(state(&snapshot.state)),
        last_state: Some(snapshot.last_exit.as_ref().map(terminated).unwrap_or_default()),
        ..ContainerStatus::default()
    }
}

fn state(state: &State) -> ContainerState {
    match state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
            ..ContainerState::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning { started_at: Some(Time(*started_at)) }),
            ..ContainerState::default()
        },
        State::Terminated(exit) => terminated(exit),
    }
}

fn terminated(exit: &Exit) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: exit.exit_code,
            signal: exit.signal,
            reason: Some(exit.reason.clone()),
            started_at: Some(Time(exit.started_at)),
            finished_at: Some(Time(exit.finished_at)),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            name: "app".into(),
            image: "courier/e2e-testapp".into(),
            state: State::Waiting { reason: "ContainerCreating".into(), message: None },
            last_exit: None,
            restart_count: 0,
            ready: false,
            has_run: false,
            done: false,
        }
    }

    fn exit(code: i32) -> Exit {
        Exit {
            exit_code: code,
            signal: None,
            reason: "x".into(),
            started_at: Timestamp::now(),
            finished_at: Timestamp::now(),
        }
    }

    fn running(ready: bool) -> Snapshot {
        Snapshot { state: State::Running { started_at: Timestamp::now() }, has_run: true, ready, ..snapshot() }
    }

    fn ended(code: i32) -> Snapshot {
        Snapshot { state: State::Terminated(exit(code)), has_run: true, done: true, ..snapshot() }
    }

    #[test]
    fn a_pod_is_pending_until_every_container_has_run() {
        assert_eq!(phase(&[snapshot()]), "Pending");
        assert_eq!(phase(&[running(true), snapshot()]), "Pending");
        assert_eq!(phase(&[running(false)]), "Running");
    }

    #[test]
    fn a_crashed_container_waiting_to_restart_keeps_the_pod_running() {
        let crashed = Snapshot {
            state: State::Waiting { reason: "CrashLoopBackOff".into(), message: None },
            last_exit: Some(exit(137)),
            restart_count: 1,
            ..running(false)
        };
        assert_eq!(phase(&[crashed]), "Running");
    }

    #[test]
    fn finished_pods_succeed_only_if_every_container_exited_zero() {
        assert_eq!(phase(&[ended(0), ended(0)]), "Succeeded");
        assert_eq!(phase(&[ended(0), ended(3)]), "Failed");
    }

    #[test]
    fn the_ready_condition_follows_the_containers_and_status_carries_the_pod_ip() {
        let pod = Pod::default();
        let view = PodView {
            pod: &pod,
            ip: Some(Ipv4Addr::new(127, 0, 0, 4)),
            start_time: Timestamp::now(),
            sandbox_ready: true,
        };
        let ready = |containers: &[Snapshot]| {
            let status = pod_status(view, &[], containers);
            let conditions = status.conditions.unwrap_or_default();
            conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.clone())
        };
        assert_eq!(ready(&[running(true)]).as_deref(), Some("True"));
        assert_eq!(ready(&[running(true), running(false)]).as_deref(), Some("False"));
        let status = pod_status(view, &[], &[running(true)]);
        assert_eq!(status.pod_ip.as_deref(), Some("127.0.0.4"));
        assert!(status.container_statuses.unwrap()[0].state.as_ref().unwrap().running.is_some());
    }

    #[test]
    fn init_containers_hold_the_pod_pending_until_they_succeed_and_fail_it_when_they_fail() {
        assert_eq!(pod_phase(&[running(false)], &[snapshot()]), "Pending");
        assert_eq!(pod_phase(&[ended(0)], &[running(true)]), "Running");
        assert_eq!(pod_phase(&[ended(2)], &[snapshot()]), "Failed");
    }

    #[test]
    fn a_restarted_container_reports_its_last_exit_code() {
        let restarted = Snapshot { last_exit: Some(exit(137)), restart_count: 1, ..running(true) };
        let status = container_status(&restarted);
        assert_eq!(status.restart_count, 1);
        assert_eq!(status.last_state.unwrap().terminated.unwrap().exit_code, 137);
    }
}
