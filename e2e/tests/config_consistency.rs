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

/// `name|Dockerfile|target|binaries` lines of e2e/images/build.sh's IMAGES list.
fn built_images() -> Vec<(String, String, String)> {
    let script = std::fs::read_to_string(repo_root().join("e2e/images/build.sh")).expect("e2e/images/build.sh");
    let list = script.split("IMAGES=(").nth(1).and_then(|s| s.split("\n)").next()).expect("an IMAGES=( … ) list");
    list.lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.strip_suffix('"').map(str::to_owned))
        .map(|l| {
            let mut f = l.split('|');
            let name = f.next().unwrap_or_default().to_owned();
            let file = f.next().unwrap_or_default().to_owned();
            let target = f.next().unwrap_or_default().to_owned();
            (format!("courier/{name}:dev"), file, target)
        })
        .collect()
}

#[test]
fn every_image_the_manifests_name_is_built_for_the_local_node_from_a_dockerfile_target() {
    let built = built_images();
    assert!(built.len() >= 2, "images listed: {built:?}");
    let deployment = yaml("config/operator/deployment.yaml");
    let operator_image = deployment["spec"]["template"]["spec"]["containers"][0]["image"].as_str().expect("image");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    let worker_image = args.split("--worker-image=").nth(1).and_then(|s| s.split('"').next()).expect("--worker-image");
    for image in [operator_image, worker_image] {
        assert!(built.iter().any(|(i, _, _)| i == image), "e2e/images/build.sh builds {image}: {built:?}");
    }
    for (image, file, target) in &built {
        let dockerfile = std::fs::read_to_string(repo_root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let stage = dockerfile
            .lines()
            .find(|l| l.starts_with("FROM ") && l.ends_with(&format!(" AS {target}")))
            .unwrap_or_else(|| panic!("{file} has no stage {target} for {image}"));
        assert!(stage.starts_with("FROM ${BASE_IMAGE} "), "{image}: the runtime stage starts from the base: {stage}");
        let after = dockerfile.split(stage).nth(1).expect("the stage's lines");
        let body: Vec<&str> = after.lines().take_while(|l| !l.starts_with("FROM ")).collect();
        assert!(body.iter().any(|l| l.trim() == "USER 65532:65532"), "{image} runs as 65532");
        assert!(
            body.iter().any(|l| l.starts_with("ENTRYPOINT [\"/usr/local/bin/")),
            "{image}: the binary is the entrypoint"
        );
        assert!(body.iter().any(|l| l.contains("org.opencontainers.image.licenses")), "{image} has OCI labels");
    }
}
