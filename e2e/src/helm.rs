//! Helm and RBAC helpers of the e2e tests against the local cluster: `helm` (v4, built by
//! e2e/helm/build.sh into the cache) with the cluster's kubeconfig, and what a user may do as
//! `kubectl auth can-i --list` reports it, in a form that can be compared with a committed list.

use std::process::Command;

use crate::cluster::{Cluster, cache_dir};

/// Runs `helm <args>` against the cluster; panics with its output when it fails.
pub fn helm(cluster: &Cluster, args: &[&str]) -> String {
    let kubeconfig = cluster.kubeconfig.to_string_lossy().into_owned();
    let mut all = vec!["--kubeconfig", kubeconfig.as_str()];
    all.extend(args);
    run(&all)
}

/// Runs `helm <args>` (no cluster needed: `lint`, `template`); panics with its output when it
/// fails; returns stdout.
pub fn run(args: &[&str]) -> String {
    let bin = cache_dir().join("helm-v4.3.2/bin/helm");
    assert!(bin.is_file(), "{} is missing: run e2e/helm/build.sh build (make test does)", bin.display());
    let out = Command::new(&bin).args(args).output().unwrap_or_else(|e| panic!("helm {args:?}: {e}"));
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `user` may do in namespace `ns` (its Roles there and every ClusterRole), one rule a
/// line as `resources | non-resource URLs | resource names | verbs`, sorted; `ns` in a
/// resource name is written `<ns>`.
pub fn can_i_list(cluster: &Cluster, ns: &str, user: &str) -> Vec<String> {
    let out = cluster.kubectl_ok(&["auth", "can-i", "--list", "-n", ns, &format!("--as={user}")], None);
    let mut rules = parse_can_i_list(&out);
    for rule in &mut rules {
        *rule = rule.replace(ns, "<ns>");
    }
    rules.sort();
    rules
}

/// Parses the table `kubectl auth can-i --list` prints (columns aligned under a header;
/// a column may be empty, so rows are cut at the header's column starts).
pub fn parse_can_i_list(table: &str) -> Vec<String> {
    let mut lines = table.lines();
    let Some(header) = lines.next() else { return Vec::new() };
    let titles = ["Resources", "Non-Resource URLs", "Resource Names", "Verbs"];
    let starts: Vec<usize> = titles.iter().filter_map(|t| header.find(t)).collect();
    assert_eq!(starts.len(), titles.len(), "unexpected can-i header: {header:?}");
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cell = |i: usize| {
                let from = starts[i].min(line.len());
                let to = starts.get(i + 1).map_or(line.len(), |&s| s.min(line.len()));
                line.get(from..to).unwrap_or("").trim().to_owned()
            };
            (0..titles.len()).map(cell).collect::<Vec<_>>().join(" | ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_with_empty_columns_are_cut_at_the_header() {
        let table = "\
Resources                                       Non-Resource URLs   Resource Names   Verbs
secrets                                         []                  []               [get]
                                                [/healthz]          []               [get]
leases.coordination.k8s.io                      []                  [lock]           [get update]
";
        assert_eq!(
            parse_can_i_list(table),
            [
                "secrets | [] | [] | [get]",
                " | [/healthz] | [] | [get]",
                "leases.coordination.k8s.io | [] | [lock] | [get update]",
            ]
        );
    }
}
