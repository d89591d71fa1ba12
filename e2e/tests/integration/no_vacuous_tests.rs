//! A test that needs the cluster either runs or is reported as not run: every test function
//! that reaches the cluster (each of `operator/tests/e2e/`, and any calling `Cluster::`)
//! carries
//! `#[ignore = "needs the local cluster…"]`, so a plain `cargo test` lists it as ignored and
//! `make test` runs it with `--include-ignored`; and no test skips itself by returning early
//! when an environment variable is unset (it would be reported "ok" without running). MiniDFS
//! tests start MiniDFS when nothing answers and fail without it; they never skip.

use std::path::Path;

use courier_e2e::cluster::repo_root;

/// The test files and in-crate test modules that may reach the cluster.
fn test_sources() -> Vec<std::path::PathBuf> {
    let root = repo_root();
    let mut files = vec![root.join("operator/src/coordinator/auth_tests.rs")];
    for dir in INTEGRATION_BINARIES {
        let entries = std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        files.extend(entries.map(|e| e.expect("entry").path()).filter(|p| p.extension().is_some_and(|x| x == "rs")));
    }
    files
}

/// The one integration-test binary of each crate that has tests beside its code.
const INTEGRATION_BINARIES: [&str; 4] =
    ["operator/tests/e2e", "e2e/tests/integration", "worker/tests/integration", "crds/tests/integration"];

/// Each test function's attributes and body: the text from one `#[tokio::test` or `#[test]` to
/// the next.
fn tests_of(text: &str) -> Vec<&str> {
    let starts: Vec<usize> =
        text.match_indices("#[tokio::test").chain(text.match_indices("#[test]")).map(|(i, _)| i).collect();
    let mut starts = starts;
    starts.sort_unstable();
    starts.iter().enumerate().map(|(k, &s)| &text[s..starts.get(k + 1).copied().unwrap_or(text.len())]).collect()
}

#[test]
fn every_test_that_reaches_the_cluster_is_ignored_with_the_reason_and_none_skips_itself() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let this = Path::new(file!()).file_name().expect("name").to_owned();
    let mut checked = 0;
    for path in test_sources() {
        if path.file_name() == Some(this.as_os_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // operator/tests/e2e/ runs operators and workers on the cluster, every test of it.
        let e2e_file = path.starts_with(repo_root().join("operator/tests/e2e"));
        for test in tests_of(&text) {
            let name = test.lines().find(|l| l.contains("fn ")).unwrap_or_default().trim();
            if e2e_file || test.contains("Cluster::") {
                checked += 1;
                assert!(
                    test.contains("#[ignore = \"needs the local cluster"),
                    "{}: `{name}` reaches the cluster without #[ignore = \"needs the local cluster…\"]",
                    path.display()
                );
            }
            assert!(
                !test.contains("env::var_os(\"COURIER_E2E\")") && !test.contains("env::var(\"COURIER_E2E\")"),
                "{}: `{name}` decides on COURIER_E2E whether to run",
                path.display()
            );
        }
    }
    assert!(checked >= 20, "the scan found the cluster tests ({checked})");
}

/// Every crate's integration tests are one binary, and every test in it takes its module's turn
/// first, so that two modules never run side by side (`courier_e2e::testkit`).
#[test]
fn each_crate_has_one_integration_test_binary_and_every_test_takes_its_turn() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let root = repo_root();
    for krate in ["operator", "worker", "e2e", "crds", "core", "kubectl-courier"] {
        let binaries: Vec<_> = std::fs::read_dir(root.join(krate).join("tests"))
            .unwrap_or_else(|e| panic!("{krate}/tests: {e}"))
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs") || p.join("main.rs").exists())
            .collect();
        assert_eq!(binaries.len(), 1, "{krate}/tests holds {binaries:?}: one binary, its files as modules");
    }
    let this = Path::new(file!()).file_name().expect("name").to_owned();
    let mut checked = 0;
    for path in test_sources() {
        // (The API's two modules share nothing and take no turns.)
        let in_binary = INTEGRATION_BINARIES[..3].iter().any(|dir| path.starts_with(root.join(dir)));
        if !in_binary || path.file_name() == Some(this.as_os_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for test in tests_of(&text) {
            let name = test.lines().find(|l| l.contains("fn ")).unwrap_or_default().trim();
            let body = test.split_once('{').map_or("", |(_, b)| b);
            let first = body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
            assert_eq!(
                first,
                "let _turn = courier_e2e::testkit::turn(module_path!());",
                "{}: `{name}` does not take its module's turn first",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 150, "the scan found the tests ({checked})");
}
