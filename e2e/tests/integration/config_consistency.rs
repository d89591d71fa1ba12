//! The Helm chart (the one source of Courier's manifests) agrees with the code: it only lets
//! the operator read Secrets where it watches, installs the generated CRDs byte for byte, and
//! names images that are built.

use courier_e2e::cluster::repo_root;
use serde_json::Value;

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

#[test]
fn the_chart_only_reads_secrets_where_the_operator_watches() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let rules = yaml("charts/courier/files/cluster_role_rules.yaml");
    let rules = rules.as_array().expect("a list of rules");
    assert!(!rules.is_empty(), "the chart has rules");
    let on_secrets: Vec<&Value> = rules
        .iter()
        .filter(|r| r["resources"].as_array().is_some_and(|res| res.iter().any(|x| x == "secrets" || x == "*")))
        .collect();
    assert_eq!(on_secrets.len(), 1, "{on_secrets:?}");
    // get one by name; list and watch for the metadata-only watch. Never a write.
    assert_eq!(on_secrets[0]["verbs"], serde_json::json!(["get", "list", "watch"]));
}

#[test]
fn the_chart_installs_the_same_crds_as_the_kustomize_base() {
    let _turn = courier_e2e::testkit::turn(module_path!());
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
    let _turn = courier_e2e::testkit::turn(module_path!());
    let built = built_images();
    assert!(built.len() >= 2, "images listed: {built:?}");
    let values = yaml("charts/courier/values.yaml");
    let image = |which: &str| {
        let i = &values["image"][which];
        format!("{}:{}", i["repository"].as_str().expect("repository"), i["tag"].as_str().expect("tag"))
    };
    for image in [image("operator"), image("worker")] {
        assert!(built.iter().any(|(i, _, _)| *i == image), "e2e/images/build.sh builds {image}: {built:?}");
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
