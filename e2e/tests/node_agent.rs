//! The node agent against the real local cluster: pods of a Deployment run as local
//! processes on their own loopback addresses, follow scale-down, crashes and
//! namespace deletion, and reach the apiserver with their projected token.
//!
//! Needs `e2e/cluster/cluster.sh up` (which starts `courier-node`): ignored by a plain
//! `cargo test`, run by `make test` (`--include-ignored`), failing if the cluster is unreachable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(90);

fn state_dir() -> PathBuf {
    PathBuf::from(std::env::var("COURIER_STATE").unwrap_or_else(|_| "/tmp/courier-e2e".into()))
}

/// The admin client; the test fails when the cluster is not running.
async fn cluster() -> kube::Client {
    let path = state_dir().join("cluster/admin.kubeconfig");
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("{} is unreadable (start the cluster: make test): {e}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("admin kubeconfig is usable");
    let client = kube::Client::try_from(config).expect("client from admin kubeconfig");
    client
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("the apiserver is not reachable (start the cluster: make test): {e}"));
    client
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Polls `check` every 250 ms until it yields a value; panics naming `what` after `WAIT`.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// GET http://ip:8080/path over a plain TCP connection: (status code, body), or None if nothing answers.
async fn http_get(ip: &str, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((ip, 8080)).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let code = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((code, body))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange).await.ok().flatten()
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({ "metadata": { "name": name } })).expect("namespace");
    namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    wait_for("the default ServiceAccount", || async { accounts.get_opt("default").await.ok().flatten() }).await;
}

async fn delete_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(name, &DeleteParams::default()).await.expect("delete namespace");
    wait_for("the namespace to be gone", || async { matches!(namespaces.get_opt(name).await, Ok(None)).then_some(()) })
        .await;
}

fn testapp_container(extra_env: serde_json::Value) -> serde_json::Value {
    let mut env = vec![
        json!({ "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }),
        json!({ "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } }),
        json!({ "name": "TESTAPP_DRAIN_MS", "value": "1500" }),
    ];
    env.extend(extra_env.as_array().cloned().unwrap_or_default());
    json!({
        "name": "app",
        "image": "courier/e2e-testapp:dev",
        "env": env,
        "ports": [{ "name": "http", "containerPort": 8080 }],
        "readinessProbe": { "httpGet": { "path": "/healthz", "port": "http" }, "periodSeconds": 1 }
    })
}

fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|all| all.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_ip(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

async fn ready_pods(pods: &Api<Pod>, count: usize) -> Vec<Pod> {
    wait_for(&format!("{count} ready pods"), || async {
        let list = pods.list(&ListParams::default()).await.ok()?.items;
        (list.len() == count && list.iter().all(is_ready)).then_some(list)
    })
    .await
}

async fn pid_of(ip: &str) -> u32 {
    let (code, body) = http_get(ip, "/pid").await.expect("the pod answers /pid");
    assert_eq!(code, 200);
    body.trim().parse().expect("a pid")
}

fn process_exists(pid: u32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

async fn allow_reading_pods(client: &kube::Client, namespace: &str) {
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": "pod-reader" },
        "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get"] }]
    }))
    .expect("role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "pod-reader" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader" },
        "subjects": [{ "kind": "ServiceAccount", "name": "default", "namespace": namespace }]
    }))
    .expect("role binding");
    Api::<Role>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await
        .expect("create role");
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create role binding");
}

#[tokio::test]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn a_deployment_runs_as_local_processes_that_follow_scaling_crashes_and_namespace_deletion() {
    let client = cluster().await;
    let ns = unique("node-agent");
    create_namespace(&client, &ns).await;
    allow_reading_pods(&client, &ns).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // 1. Three replicas → three processes with distinct loopback pod IPs, each serving /healthz.
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "testapp" },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": { "app": "testapp" } },
            "template": {
                "metadata": { "labels": { "app": "testapp" } },
                "spec": { "terminationGracePeriodSeconds": 10, "containers": [testapp_container(json!([]))] }
            }
        }
    }))
    .expect("deployment");
    deployments.create(&PostParams::default(), &deployment).await.expect("create deployment");
    let running = ready_pods(&pods, 3).await;
    let ips: BTreeSet<String> = running.iter().map(pod_ip).collect();
    assert_eq!(ips.len(), 3, "pod IPs are distinct: {ips:?}");
    let mut pids = BTreeMap::new();
    for pod in &running {
        let ip = pod_ip(pod);
        let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
        assert!(octets.len() == 4 && octets[..3] == [127, 0, 0] && octets[3] >= 2, "pod IP {ip} is 127.0.0.N, N >= 2");
        let (code, body) = http_get(&ip, "/healthz").await.expect("the pod answers on its IP");
        assert_eq!((code, body), (200, format!("ok {}", name(pod))));
        pids.insert(name(pod), pid_of(&ip).await);
    }
    let distinct_pids: BTreeSet<u32> = pids.values().copied().collect();
    assert_eq!(distinct_pids.len(), 3, "one process per pod: {pids:?}");

    // 2. The projected service-account token works for an in-cluster kube-rs client.
    let ip = pod_ip(&running[0]);
    let (code, body) = http_get(&ip, "/kube").await.expect("the pod answers /kube");
    assert_eq!(code, 200, "in-cluster request failed: {body}");
    let uid = running[0].metadata.uid.clone().unwrap_or_default();
    assert!(body.starts_with("ok version=v1.34") && body.ends_with(&format!("uid={uid}")), "{body}");

    // 3. Scale to one: two pods stop gracefully (SIGTERM, drain, exit) and disappear.
    let scale = json!({ "spec": { "replicas": 1 } });
    deployments.patch("testapp", &PatchParams::default(), &Patch::Merge(&scale)).await.expect("scale to 1");
    let survivor = ready_pods(&pods, 1).await.remove(0);
    for (pod, pid) in pids.iter().filter(|(pod, _)| **pod != name(&survivor)) {
        assert!(!process_exists(*pid), "process {pid} of removed pod {pod} is gone");
        let log = state_dir().join("node/logs").join(format!("{ns}_{pod}_app.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("log {}: {e}", log.display()));
        assert!(text.contains("SIGTERM received: draining for 1500 ms"), "{pod} got SIGTERM:\n{text}");
        assert!(text.contains("drain complete; exiting 0"), "{pod} drained and exited:\n{text}");
    }

    // 4. SIGKILL the survivor's process: it is restarted, restartCount 1, last exit 137.
    let survivor_ip = pod_ip(&survivor);
    let old_pid = pid_of(&survivor_ip).await;
    let killed = std::process::Command::new("kill").args(["-s", "KILL", &old_pid.to_string()]).status().expect("kill");
    assert!(killed.success());
    let restarted = wait_for("the killed container to be restarted and ready", || async {
        let pod = pods.get(&name(&survivor)).await.ok()?;
        let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?.clone();
        (status.restart_count == 1 && is_ready(&pod)).then_some(status)
    })
    .await;
    let last = restarted.last_state.and_then(|s| s.terminated).expect("lastState.terminated");
    assert_eq!(last.exit_code, 137);
    let new_pid = wait_for("the restarted process to answer", || async {
        let (code, body) = http_get(&survivor_ip, "/pid").await?;
        (code == 200).then(|| body.trim().parse::<u32>().ok()).flatten()
    })
    .await;
    assert_ne!(new_pid, old_pid);

    // 5. Deleting the namespace stops every process and frees the address.
    delete_namespace(&client, &ns).await;
    assert!(!process_exists(new_pid), "process {new_pid} is gone after namespace deletion");
    assert_eq!(http_get(&survivor_ip, "/healthz").await, None, "nothing answers on {survivor_ip} any more");
}

#[tokio::test]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn containers_get_env_volumes_token_and_init_container_output_as_the_pod_spec_says() {
    let client = cluster().await;
    let ns = unique("node-agent-env");
    create_namespace(&client, &ns).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "creds" }, "stringData": { "password": "s3cret" }
    }))
    .expect("secret");
    let config_map: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "settings" }, "data": { "mode": "fast", "limits.yaml": "rps: 5\n" }
    }))
    .expect("configmap");
    Api::<Secret>::namespaced(client.clone(), &ns).create(&PostParams::default(), &secret).await.expect("secret");
    Api::<ConfigMap>::namespaced(client.clone(), &ns).create(&PostParams::default(), &config_map).await.expect("cm");
    let mut container = testapp_container(json!([
        { "name": "PASSWORD", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "password" } } },
        { "name": "MODE", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "mode" } } },
        { "name": "GREETING", "value": "hello $(POD_NAME)" }
    ]));
    container["volumeMounts"] = json!([
        { "name": "settings", "mountPath": "/etc/courier-test/settings" },
        { "name": "scratch", "mountPath": "/var/lib/courier-test/scratch" }
    ]);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "envtest" },
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "initContainers": [{
                "name": "init",
                "image": "courier/e2e-testapp:dev",
                "command": ["sh", "-c", "echo init-was-here > /var/lib/courier-test/scratch/marker"],
                "volumeMounts": [{ "name": "scratch", "mountPath": "/var/lib/courier-test/scratch" }]
            }],
            "containers": [container],
            "volumes": [
                { "name": "settings", "configMap": { "name": "settings" } },
                { "name": "scratch", "emptyDir": {} }
            ]
        }
    }))
    .expect("pod");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod).await.expect("create pod");
    let pod = ready_pods(&pods, 1).await.remove(0);
    let ip = pod_ip(&pod);
    let get = |path: &'static str| {
        let ip = ip.clone();
        async move { http_get(&ip, path).await.expect("the pod answers") }
    };
    assert_eq!(get("/env/PASSWORD").await, (200, "s3cret".into()));
    assert_eq!(get("/env/MODE").await, (200, "fast".into()));
    assert_eq!(get("/env/GREETING").await, (200, "hello envtest".into()));
    assert_eq!(get("/env/POD_IP").await, (200, ip.clone()));
    assert_eq!(get("/env/KUBERNETES_SERVICE_HOST").await, (200, "127.0.0.1".into()));
    assert_eq!(get("/env/KUBERNETES_SERVICE_PORT").await, (200, "6443".into()));
    assert_eq!(get("/file/etc/courier-test/settings/limits.yaml").await, (200, "rps: 5\n".into()));
    assert_eq!(get("/file/var/run/secrets/kubernetes.io/serviceaccount/namespace").await, (200, ns.clone()));
    let (code, token) = get("/file/var/run/secrets/kubernetes.io/serviceaccount/token").await;
    assert_eq!((code, token.split('.').count()), (200, 3), "a JWT token is mounted");
    assert!(!std::path::Path::new("/etc/courier-test/settings/limits.yaml").exists(), "mounts stay inside the pod");
    assert_eq!(get("/file/var/lib/courier-test/scratch/marker").await, (200, "init-was-here\n".into()));
    let init = pod.status.as_ref().and_then(|s| s.init_container_statuses.clone()).unwrap_or_default();
    let init_exit = init.first().and_then(|s| s.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code));
    assert_eq!(init_exit, Some(0), "the init container ran to success first: {init:?}");
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn pods_that_end_or_cannot_start_report_why() {
    let client = cluster().await;
    let ns = unique("node-agent-end");
    create_namespace(&client, &ns).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let failing: Pod = serde_json::from_value(json!({
        "metadata": { "name": "fails" },
        "spec": {
            "restartPolicy": "Never",
            "containers": [testapp_container(json!([
                { "name": "TESTAPP_EXIT_AFTER_MS", "value": "300" },
                { "name": "TESTAPP_EXIT_CODE", "value": "3" }
            ]))]
        }
    }))
    .expect("pod");
    let unknown: Pod = serde_json::from_value(json!({
        "metadata": { "name": "unknown-image" },
        "spec": { "containers": [{ "name": "app", "image": "example/not-mapped:1.0" }] }
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &failing).await.expect("create failing pod");
    pods.create(&PostParams::default(), &unknown).await.expect("create unknown-image pod");

    let exit_code = wait_for("the Never pod to fail", || async {
        let pod = pods.get("fails").await.ok()?;
        let status = pod.status?;
        let terminated = status.container_statuses?.first()?.state.clone()?.terminated?;
        (status.phase.as_deref() == Some("Failed")).then_some(terminated.exit_code)
    })
    .await;
    assert_eq!(exit_code, 3);

    let waiting = wait_for("the unknown image to be reported", || async {
        let pod = pods.get("unknown-image").await.ok()?;
        let state = pod.status?.container_statuses?.first()?.state.clone()?;
        state.waiting.filter(|w| w.reason.as_deref() == Some("ErrImagePull"))
    })
    .await;
    assert!(waiting.message.unwrap_or_default().contains("\"example/not-mapped\""));
    delete_namespace(&client, &ns).await;
}
