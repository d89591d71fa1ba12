//! A test that needs the cluster either runs or is reported as not run: every test function
//! that reaches the cluster (each of `operator/tests/e2e_*.rs`, and any calling `Cluster::`)
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
    for dir in ["operator/tests", "e2e/tests", "worker/tests"] {
        let entries = std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        files.extend(entries.map(|e| e.expect("entry").path()).filter(|p| p.extension().is_some_and(|x| x == "rs")));
    }
    files
}

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
    let this = Path::new(file!()).file_name().expect("name").to_owned();
    let mut checked = 0;
    for path in test_sources() {
        if path.file_name() == Some(this.as_os_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // operator/tests/e2e_*.rs run operators and workers on the cluster, every test of them.
        let e2e_file = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("e2e_"));
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
