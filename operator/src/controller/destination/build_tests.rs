use super::*;

fn destination(yaml: &str) -> Destination {
    serde_norway::from_str(yaml).expect("valid Destination YAML")
}

const PARTNER: &str = r#"
apiVersion: courier.dev/v1alpha1
kind: Destination
metadata: { name: partner, namespace: team-a, uid: "1234", generation: 2 }
spec:
  rateLimit: { requestsPerSecond: 100 }
  auth:
    bearer: { secretRef: { name: partner-token, key: token } }
  endpoint:
    url: "http://127.0.0.1:8080/records"
    tls: { caSecretRef: { name: partner-ca, key: ca.crt } }
  workers:
    max: 3
    nodeSelector: { disk: ssd }
    tolerations: [{ key: dedicated, operator: Equal, value: courier, effect: NoSchedule }]
    resources: { limits: { cpu: "1" } }
"#;

fn defaults() -> WorkerDefaults {
    WorkerDefaults {
        image: "courier/worker:dev".into(),
        coordinator_url: "https://courier-coordinator.courier-system.svc:8443".into(),
        coordinator_ca_pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        ..WorkerDefaults::default()
    }
}

fn pod_of(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec")
}

fn env_of(d: &Deployment) -> Vec<EnvVar> {
    pod_of(d).containers[0].env.clone().unwrap_or_default()
}

/// (Secret name, mounted keys, mount path) of each Secret volume.
fn secret_mounts(d: &Deployment) -> Vec<(String, Vec<String>, String)> {
    let pod = pod_of(d);
    let mounts = pod.containers[0].volume_mounts.clone().unwrap_or_default();
    pod.volumes
        .iter()
        .flatten()
        .filter_map(|v| {
            let s = v.secret.as_ref()?;
            let keys = s.items.iter().flatten().map(|i| i.key.clone()).collect();
            let path = mounts.iter().find(|m| m.name == v.name)?.mount_path.clone();
            Some((s.secret_name.clone()?, keys, path))
        })
        .collect()
}

#[test]
fn the_deployment_is_named_labelled_and_owned_by_its_destination() {
    let dest = destination(PARTNER);
    let d = deployment(&dest, &defaults(), 2);
    assert_eq!(d.metadata.name.as_deref(), Some("courier-worker-partner"));
    assert_eq!(d.metadata.namespace.as_deref(), Some("team-a"));
    let owner = &d.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("Destination", "partner", "1234"));
    assert_eq!(owner.controller, Some(true));
    assert!(is_owned_by(&d.metadata, &dest));
    let spec = d.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let sel = spec.selector.match_labels.as_ref().expect("selector");
    assert_eq!(sel.get(DESTINATION_LABEL).map(String::as_str), Some("partner"));
    let pod_labels = spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref()).expect("labels");
    assert_eq!(pod_labels.get(DESTINATION_LABEL).map(String::as_str), Some("partner"));
}

#[test]
fn the_worker_container_serves_the_coordinator_url_with_probes_on_the_metrics_port() {
    let d = deployment(&destination(PARTNER), &defaults(), 1);
    let pod = pod_of(&d);
    assert_eq!(pod.service_account_name.as_deref(), Some("courier-worker"));
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("courier/worker:dev"));
    let args: Vec<&str> = c.args.iter().flatten().map(String::as_str).collect();
    assert_eq!(
        args,
        [
            "serve",
            "--coordinator-url",
            "https://courier-coordinator.courier-system.svc:8443",
            "--token-path",
            "/var/run/secrets/courier.dev/coordinator/token"
        ]
    );
    let ready = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("readiness");
    assert_eq!((ready.path.as_deref(), &ready.port), (Some("/readyz"), &IntOrString::Int(9090)));
    let live = c.liveness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("liveness");
    assert_eq!(live.path.as_deref(), Some("/healthz"));
}

#[test]
fn pod_settings_come_from_spec_workers() {
    let d = deployment(&destination(PARTNER), &defaults(), 1);
    let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec");
    assert_eq!(pod.node_selector.as_ref().and_then(|n| n.get("disk")).map(String::as_str), Some("ssd"));
    assert_eq!(pod.tolerations.as_ref().map(Vec::len), Some(1));
    let limits = pod.containers[0].resources.as_ref().and_then(|r| r.limits.as_ref()).expect("limits");
    assert!(limits.contains_key("cpu"));
}

#[test]
fn an_image_in_the_spec_overrides_the_operator_default() {
    let yaml = PARTNER.replace("max: 3", "max: 3\n    image: registry.example/worker:1.2");
    let d = deployment(&destination(&yaml), &defaults(), 1);
    let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec");
    assert_eq!(pod.containers[0].image.as_deref(), Some("registry.example/worker:1.2"));
}

#[test]
fn pod_identity_and_the_coordinator_ca_reach_the_worker_as_environment_and_secrets_never_do() {
    let env = env_of(&deployment(&destination(PARTNER), &defaults(), 1));
    let field = |n: &str| {
        env.iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(field("POD_NAME").as_deref(), Some("metadata.name"));
    assert_eq!(field("POD_NAMESPACE").as_deref(), Some("metadata.namespace"));
    assert_eq!(field("POD_IP").as_deref(), Some("status.podIP"));
    assert_eq!(env.iter().find(|e| e.name == "COURIER_DESTINATION").and_then(|e| e.value.as_deref()), Some("partner"));
    let ca = env.iter().find(|e| e.name == COORDINATOR_CA_ENV).and_then(|e| e.value.as_deref());
    assert!(ca.is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----")), "{ca:?}");
    assert!(
        env.iter().all(|e| e.value_from.as_ref().is_none_or(|v| v.secret_key_ref.is_none())),
        "no Secret value in the environment: {env:?}"
    );
}

#[test]
fn each_referenced_secret_is_mounted_read_only_with_only_the_keys_the_destination_uses() {
    let d = deployment(&destination(PARTNER), &defaults(), 1);
    assert_eq!(
        secret_mounts(&d),
        vec![
            (
                "partner-ca".to_owned(),
                vec!["ca.crt".to_owned()],
                "/var/run/secrets/courier.dev/secrets/partner-ca".to_owned()
            ),
            (
                "partner-token".to_owned(),
                vec!["token".to_owned()],
                "/var/run/secrets/courier.dev/secrets/partner-token".to_owned()
            ),
        ]
    );
    let mounts = pod_of(&d).containers[0].volume_mounts.clone().unwrap_or_default();
    for m in mounts.iter().filter(|m| m.name.starts_with("secret-")) {
        assert_eq!(m.read_only, Some(true), "{m:?}");
    }
}

#[test]
fn basic_oauth2_and_header_auth_mount_their_keys() {
    let cases = [
        ("basic: { secretRef: { name: creds } }", vec![("creds", vec!["password", "username"])]),
        (
            "oauth2ClientCredentials: { tokenUrl: \"http://127.0.0.1:1/token\", clientIdRef: { name: o, key: id }, clientSecretRef: { name: o, key: secret } }",
            vec![("o", vec!["id", "secret"])],
        ),
        ("header: { name: X-Api-Key, secretRef: { name: k, key: v } }", vec![("k", vec!["v"])]),
    ];
    for (auth, want) in cases {
        let yaml = PARTNER.replace("bearer: { secretRef: { name: partner-token, key: token } }", auth);
        let got: Vec<(String, Vec<String>)> = secret_mounts(&deployment(&destination(&yaml), &defaults(), 1))
            .into_iter()
            .map(|(s, k, _)| (s, k))
            .filter(|(s, _)| s != "partner-ca")
            .collect();
        let want: Vec<(String, Vec<String>)> =
            want.into_iter().map(|(s, k)| (s.to_owned(), k.into_iter().map(str::to_owned).collect())).collect();
        assert_eq!(got, want, "{auth}");
    }
}

#[test]
fn worker_pods_meet_the_restricted_pod_security_profile() {
    let d = deployment(&destination(PARTNER), &defaults(), 1);
    let pod = pod_of(&d);
    let sc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!((sc.run_as_user, sc.run_as_group, sc.fs_group), (Some(65532), Some(65532), Some(65532)));
    assert_eq!(sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()), Some("RuntimeDefault"));
    let c = pod.containers[0].security_context.as_ref().expect("container securityContext");
    assert_eq!(c.allow_privilege_escalation, Some(false));
    assert_eq!(c.read_only_root_filesystem, Some(true));
    assert_eq!(c.capabilities.as_ref().and_then(|c| c.drop.clone()), Some(vec!["ALL".to_owned()]));
    let tmp = pod.volumes.iter().flatten().find(|v| v.name == "tmp").expect("a /tmp volume");
    assert!(tmp.empty_dir.is_some());
}

#[test]
fn workers_carry_only_a_short_lived_token_for_the_coordinator_audience() {
    let d = deployment(&destination(PARTNER), &defaults(), 1);
    let pod = pod_of(&d);
    assert_eq!(pod.automount_service_account_token, Some(false), "no API token");
    let projected = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.projected.as_ref())
        .and_then(|p| p.sources.as_ref())
        .and_then(|s| s[0].service_account_token.as_ref())
        .expect("a projected service-account token");
    assert_eq!(projected.audience.as_deref(), Some("courier-coordinator"));
    assert_eq!(projected.expiration_seconds, Some(600));
    let mounts = pod.containers[0].volume_mounts.clone().unwrap_or_default();
    let dir = mounts.iter().find(|m| m.name == "coordinator-token").map(|m| m.mount_path.as_str());
    assert_eq!(dir, Some(COORDINATOR_TOKEN_DIR));
    assert!(COORDINATOR_TOKEN_PATH.starts_with(COORDINATOR_TOKEN_DIR));
}

#[test]
fn operator_defaults_place_worker_pods_unless_the_destination_says_otherwise() {
    let mut with_defaults = defaults();
    with_defaults.pod = serde_norway::from_str(
        "nodeSelector: { pool: batch }\ntolerations: [{ key: batch, operator: Exists }]\naffinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: zone, operator: In, values: [a] }] }] } } }\nresources: { requests: { cpu: 100m } }\nimagePullPolicy: Always\n",
    )
    .expect("valid defaults");
    let plain = PARTNER
        .replace("    nodeSelector: { disk: ssd }\n", "")
        .replace("    tolerations: [{ key: dedicated, operator: Equal, value: courier, effect: NoSchedule }]\n", "")
        .replace("    resources: { limits: { cpu: \"1\" } }\n", "");
    let d = deployment(&destination(&plain), &with_defaults, 1);
    let pod = pod_of(&d);
    assert_eq!(pod.node_selector.as_ref().and_then(|n| n.get("pool")).map(String::as_str), Some("batch"));
    assert_eq!(pod.tolerations.as_ref().map(|t| t[0].key.clone()), Some(Some("batch".to_owned())));
    assert!(pod.affinity.as_ref().and_then(|a| a.node_affinity.as_ref()).is_some());
    assert_eq!(pod.containers[0].image_pull_policy.as_deref(), Some("Always"));
    assert!(pod.containers[0].resources.as_ref().and_then(|r| r.requests.as_ref()).is_some());

    // The Destination's own settings win.
    let d = deployment(&destination(PARTNER), &with_defaults, 1);
    let pod = pod_of(&d);
    assert_eq!(pod.node_selector.as_ref().and_then(|n| n.get("disk")).map(String::as_str), Some("ssd"));
    assert!(pod.node_selector.as_ref().is_some_and(|n| !n.contains_key("pool")));
    assert_eq!(pod.tolerations.as_ref().map(|t| t[0].key.clone()), Some(Some("dedicated".to_owned())));
    assert!(pod.containers[0].resources.as_ref().and_then(|r| r.limits.as_ref()).is_some());
}

#[test]
fn unknown_keys_in_the_worker_pod_defaults_are_refused() {
    let err = serde_norway::from_str::<WorkerPodDefaults>("nodeSelectr: {}\n").expect_err("a typo");
    assert!(err.to_string().contains("nodeSelectr"), "{err}");
}

#[test]
fn the_worker_service_account_lives_in_the_destination_namespace() {
    let sa = service_account("team-a");
    assert_eq!(sa.metadata.name.as_deref(), Some("courier-worker"));
    assert_eq!(sa.metadata.namespace.as_deref(), Some("team-a"));
}

#[test]
fn needed_keys_cover_every_secret_reference() {
    let keys = super::super::dereference::needed_keys(&destination(PARTNER));
    let names: Vec<_> = keys.iter().map(|k| (k.secret.as_str(), k.key.as_str())).collect();
    assert_eq!(names, vec![("partner-token", "token"), ("partner-ca", "ca.crt")]);
}
