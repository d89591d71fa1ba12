//! The crate boundaries of docs/architecture.md, checked on the real dependency graph
//! (`cargo tree`, host platform, offline): the operator never links the worker nor the worker's
//! data-plane libraries, the worker never links the operator, and the shared crates link
//! neither binary crate.

use std::process::Command;

/// Package names in the dependency tree of `package` over the given edge kinds.
fn dependencies(package: &str, edges: &str) -> Vec<String> {
    let out = cargo_tree(&["-p", package, "-e", edges, "--prefix", "none", "--format", "{p}"]);
    let mut names: Vec<String> = out.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect();
    names.sort();
    names.dedup();
    names
}

fn cargo_tree(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(cargo)
        .current_dir(workspace)
        .args(["tree", "--offline", "--locked"])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails naming the path by which `package` reaches each of `forbidden`.
fn assert_never_links(package: &str, edges: &str, forbidden: &[&str]) {
    let deps = dependencies(package, edges);
    let found: Vec<&str> = forbidden.iter().copied().filter(|f| deps.iter().any(|d| d == f)).collect();
    let paths: Vec<String> =
        found.iter().map(|f| cargo_tree(&["-p", package, "-e", edges, "-i", f, "--depth", "12"])).collect();
    assert!(found.is_empty(), "{package} depends on {found:?}; by way of:\n{}", paths.join("\n"));
}

#[test]
fn the_operator_links_neither_the_worker_nor_its_data_plane_libraries() {
    assert_never_links("courier-operator", "normal,build,dev", &["courier-worker"]);
    // Its tests write Parquet and Avro fixtures (courier-e2e): only the binary is checked.
    assert_never_links("courier-operator", "normal,build", &["parquet", "apache-avro", "mimalloc"]);
}

#[test]
fn the_worker_never_links_the_operator() {
    assert_never_links("courier-worker", "normal,build,dev", &["courier-operator"]);
}

#[test]
fn the_shared_crates_link_neither_binary_crate() {
    for shared in ["courier-api", "courier-core", "courier-source", "courier-e2e"] {
        assert_never_links(shared, "normal,build", &["courier-operator", "courier-worker"]);
    }
}

#[test]
fn the_core_crate_reads_no_files_itself() {
    assert_never_links("courier-core", "normal,build", &["courier-source", "hdfs-native", "parquet", "apache-avro"]);
}

#[test]
fn the_kubectl_plugin_links_neither_binary_crate() {
    // It reads the API objects and the dead-letter files; it never runs operator or worker code.
    assert_never_links(
        "kubectl-courier",
        "normal,build",
        &["courier-operator", "courier-worker", "parquet", "apache-avro"],
    );
}
