//! The shipped manifests agree with each other: the Helm chart grants the operator exactly the
//! rules of config/rbac, and the chart installs the same CRDs as the kustomize base.

use courier_e2e::cluster::repo_root;
use serde_json::Value;

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

#[test]
fn the_chart_grants_the_operator_exactly_the_kustomize_rbac_rules() {
    let kustomize = yaml("config/rbac/cluster_role.yaml");
    let chart = yaml("charts/courier/files/cluster_role_rules.yaml");
    assert!(chart.as_array().is_some_and(|r| !r.is_empty()), "the chart has rules");
    assert_eq!(kustomize["rules"], chart);
}

#[test]
fn the_chart_installs_the_same_crds_as_the_kustomize_base() {
    for crd in ["destinations.courier.dev", "datums.courier.dev", "deliverypackages.courier.dev"] {
        let base = std::fs::read(repo_root().join(format!("crds/generated/{crd}.yaml"))).expect("base CRD");
        let chart = std::fs::read(repo_root().join(format!("charts/courier/crds/{crd}.yaml"))).expect("chart CRD");
        assert_eq!(base, chart, "{crd}");
    }
}

#[test]
fn the_node_agent_can_run_every_image_the_manifests_name() {
    let images = yaml("e2e/images.yaml");
    let deployment = yaml("config/operator/deployment.yaml");
    let operator_image = deployment["spec"]["template"]["spec"]["containers"][0]["image"].as_str().expect("image");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    let worker_image = args.split("--worker-image=").nth(1).and_then(|s| s.split('"').next()).expect("--worker-image");
    for image in [operator_image, worker_image] {
        let repo = image.split(':').next().unwrap_or(image);
        assert!(images.get(repo).is_some(), "e2e/images.yaml maps {repo}");
    }
}
