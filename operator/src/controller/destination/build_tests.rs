use super::*;

fn destination(yaml: &str) -> Destination {
    serde_yaml::from_str(yaml).expect("valid Destination YAML")
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
    WorkerDefaults { image: "courier/worker:dev".into(), coordinator_url: "http://10.0.0.5:8443".into() }
}

fn env_of(d: &Deployment) -> Vec<EnvVar> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default()
}

fn secret_ref_of<'a>(env: &'a [EnvVar], name: &str) -> Option<&'a SecretKeySelector> {
    env.iter().find(|e| e.name == name)?.value_from.as_ref()?.secret_key_ref.as_ref()
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
    let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some("courier-worker"));
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("courier/worker:dev"));
    assert_eq!(
        c.args.as_deref(),
        Some(&["serve".to_owned(), "--coordinator-url".to_owned(), "http://10.0.0.5:8443".to_owned()][..])
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
fn pod_identity_and_secrets_reach_the_worker_as_environment() {
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
    let token = secret_ref_of(&env, "COURIER_AUTH_TOKEN").expect("token env");
    assert_eq!((token.name.as_str(), token.key.as_str()), ("partner-token", "token"));
    let ca = secret_ref_of(&env, "COURIER_TLS_CA_PEM").expect("ca env");
    assert_eq!((ca.name.as_str(), ca.key.as_str()), ("partner-ca", "ca.crt"));
    assert!(secret_ref_of(&env, "COURIER_AUTH_USERNAME").is_none());
}

#[test]
fn basic_oauth2_and_header_auth_map_to_their_variables() {
    let basic = PARTNER
        .replace("bearer: { secretRef: { name: partner-token, key: token } }", "basic: { secretRef: { name: creds } }");
    let env = env_of(&deployment(&destination(&basic), &defaults(), 1));
    assert_eq!(secret_ref_of(&env, "COURIER_AUTH_USERNAME").map(|s| s.key.as_str()), Some("username"));
    assert_eq!(secret_ref_of(&env, "COURIER_AUTH_PASSWORD").map(|s| s.key.as_str()), Some("password"));

    let oauth = PARTNER.replace(
        "bearer: { secretRef: { name: partner-token, key: token } }",
        "oauth2ClientCredentials: { tokenUrl: \"http://127.0.0.1:1/token\", clientIdRef: { name: o, key: id }, clientSecretRef: { name: o, key: secret } }",
    );
    let env = env_of(&deployment(&destination(&oauth), &defaults(), 1));
    assert_eq!(secret_ref_of(&env, "COURIER_OAUTH2_CLIENT_ID").map(|s| s.key.as_str()), Some("id"));
    assert_eq!(secret_ref_of(&env, "COURIER_OAUTH2_CLIENT_SECRET").map(|s| s.key.as_str()), Some("secret"));

    let header = PARTNER.replace(
        "bearer: { secretRef: { name: partner-token, key: token } }",
        "header: { name: X-Api-Key, secretRef: { name: k, key: v } }",
    );
    let env = env_of(&deployment(&destination(&header), &defaults(), 1));
    assert_eq!(secret_ref_of(&env, "COURIER_AUTH_HEADER_VALUE").map(|s| s.name.as_str()), Some("k"));
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
