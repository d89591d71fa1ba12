//! The committed CRD YAML and API reference must be what the types generate.

#[test]
fn committed_crd_yaml_and_api_reference_match_the_types() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = courier_api::generate::generated_files().expect("generation succeeds");
    assert!(files.len() >= 5, "three CRDs, their kustomization and docs/api.md");
    let stale: Vec<&str> = files
        .iter()
        .filter(|f| std::fs::read_to_string(root.join(&f.path)).ok().as_deref() != Some(f.content.as_str()))
        .map(|f| f.path.as_str())
        .collect();
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `cargo run -p courier-api --bin crdgen` and commit the result"
    );
}

#[test]
fn crds_have_status_subresource_short_names_and_the_courier_category() {
    for crd in courier_api::generate::crds() {
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{} has a status subresource",
            crd.spec.names.kind
        );
        assert_eq!(crd.spec.names.categories.as_deref(), Some(&["courier".to_owned()][..]));
        assert_eq!(crd.spec.scope, "Namespaced");
    }
    let short: Vec<Option<Vec<String>>> =
        courier_api::generate::crds().into_iter().map(|c| c.spec.names.short_names).collect();
    assert_eq!(short[0].as_deref(), Some(&["dest".to_owned()][..]));
    assert_eq!(short[2].as_deref(), Some(&["dp".to_owned()][..]));
}

#[test]
fn delivery_package_columns_are_the_ones_users_watch() {
    let crd = courier_api::generate::crds().remove(2);
    let columns: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(columns, ["Destination", "Datum", "Phase", "Progress", "Rate", "ETA", "Failed", "Age"]);
}

#[test]
fn the_api_has_no_floating_point_fields() {
    for file in courier_api::generate::generated_files().expect("generation succeeds") {
        if file.path.ends_with(".yaml") {
            assert!(
                !file.content.contains("format: double") && !file.content.contains("format: float"),
                "{} has a float",
                file.path
            );
            assert!(!file.content.contains("type: number"), "{} has a number type", file.path);
        }
    }
}
