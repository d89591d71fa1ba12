use courier_api::package::{FailedShard, PackagePhase};
use courier_api::{DeliveryPackage, DeliveryPackageStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::*;
use crate::controller::landing::ledger::{BatchEntry, Entry, FileRef, PackageFiles};

fn url(name: &str) -> String {
    format!("hdfs://nn/in/{name}")
}

fn ledger(attempts_before: u32) -> Ledger {
    let mut l = Ledger::default();
    let files: Vec<FileRef> =
        ["a", "b", "c"].iter().map(|n| FileRef { url: url(n), size: 1, modified_ms: 1, seen_ms: 1 }).collect();
    for i in 0..=attempts_before {
        l.apply(
            u64::from(i),
            &Entry::Batch(BatchEntry {
                batch: u64::from(i),
                at_ms: 0,
                packages: vec![PackageFiles { destination: "d".into(), name: "p".into(), files: files.clone() }],
                missing: Vec::new(),
            }),
        );
    }
    l
}

fn condition(type_: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: "True".into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: None,
        last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
    }
}

fn package(
    phase: Option<PackagePhase>,
    shards: i32,
    failed: &[(&str, &str)],
    conditions: Vec<Condition>,
) -> DeliveryPackage {
    let mut status = DeliveryPackageStatus { phase, conditions, ..Default::default() };
    status.shards.total = shards;
    status.progress.records.sent = 42;
    status.shards.failed = failed
        .iter()
        .enumerate()
        .map(|(i, (name, msg))| FailedShard {
            id: i as i32,
            attempts: 4,
            message: (*msg).into(),
            file: Some(url(name)),
        })
        .collect();
    let mut pkg: DeliveryPackage = serde_json::from_value(serde_json::json!({
        "apiVersion": "courier.dev/v1alpha1", "kind": "DeliveryPackage",
        "metadata": { "name": "p", "namespace": "ns" },
        "spec": { "destinationRef": { "name": "d" }, "datumRef": { "name": "x" },
                  "source": { "hdfs": { "url": "hdfs://nn", "paths": ["/in/a"] } } }
    }))
    .expect("package");
    pkg.status = Some(status);
    pkg
}

fn names(list: &[Undelivered]) -> Vec<String> {
    list.iter().map(|u| u.url.trim_start_matches("hdfs://nn/in/").to_owned()).collect()
}

#[test]
fn per_file_outcomes_of_finished_packages() {
    let backoff = || vec![condition("Failed", "BackoffLimitExceeded", "shards 0 failed")];
    let not_found = || {
        vec![
            condition("Planned", "SourceNotFound", "path not found: hdfs://nn/in/b"),
            condition("Failed", "SourceNotFound", "path not found"),
        ]
    };
    let policy = || vec![condition("Failed", "TooManyFailedRecords", "5 of 10 records dead-lettered")];
    // (package, end, attempts before, retried, failed)
    type Case<'a> = (DeliveryPackage, PackageEnd, u32, Vec<&'a str>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (package(Some(PackagePhase::Complete), 3, &[], vec![]), PackageEnd::Complete, 0, vec![], vec![]),
        (package(Some(PackagePhase::Failed), 3, &[("b", "gone")], backoff()), PackageEnd::Failed, 0, vec!["b"], vec![]),
        (
            package(Some(PackagePhase::Failed), 4, &[("b", "gone"), ("b", "gone again")], backoff()),
            PackageEnd::Failed,
            0,
            vec!["b"],
            vec![],
        ),
        (package(Some(PackagePhase::Failed), 3, &[("b", "gone")], backoff()), PackageEnd::Failed, 2, vec![], vec!["b"]),
        (package(Some(PackagePhase::Failed), 0, &[], not_found()), PackageEnd::Failed, 0, vec!["a", "b", "c"], vec![]),
        (package(Some(PackagePhase::Failed), 3, &[], policy()), PackageEnd::Failed, 0, vec![], vec!["a", "b", "c"]),
        (package(Some(PackagePhase::Running), 3, &[], vec![]), PackageEnd::Deleted, 0, vec![], vec!["a", "b", "c"]),
    ];
    for (i, (pkg, end, before, retried, failed)) in cases.into_iter().enumerate() {
        let l = ledger(before);
        let o = outcome(&l, &pkg, end, 3, 99).expect("an open package");
        assert_eq!(names(&o.retry), retried, "case {i} retried");
        assert_eq!(names(&o.failed), failed, "case {i} failed");
        assert_eq!((o.records_sent, o.end, o.package.as_str()), (42, end, "p"), "case {i}");
    }
}

#[test]
fn the_reason_of_a_planning_failure_names_the_missing_file() {
    let pkg = package(
        Some(PackagePhase::Failed),
        0,
        &[],
        vec![condition("Planned", "SourceNotFound", "path not found: hdfs://nn/in/b")],
    );
    let o = outcome(&ledger(0), &pkg, PackageEnd::Failed, 3, 0).expect("open");
    assert!(o.retry.iter().all(|u| u.reason.contains("path not found: hdfs://nn/in/b")), "{:?}", o.retry);
}

#[test]
fn only_finished_or_deleted_packages_have_an_end() {
    assert_eq!(end_of(&package(Some(PackagePhase::Running), 1, &[], vec![])), None);
    assert_eq!(end_of(&package(Some(PackagePhase::Complete), 1, &[], vec![])), Some(PackageEnd::Complete));
    let mut deleting = package(Some(PackagePhase::Running), 1, &[], vec![]);
    deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
    assert_eq!(end_of(&deleting), Some(PackageEnd::Deleted));
}
