use super::*;

fn files(n: usize, len: usize) -> Vec<FileRef> {
    (0..n)
        .map(|i| FileRef {
            url: format!("hdfs://nn/{i:0>width$}", width = len.saturating_sub(10)),
            size: 1,
            modified_ms: 1,
            seen_ms: 1,
        })
        .collect()
}

#[test]
fn a_batch_is_cut_after_one_window_or_when_a_package_is_full() {
    let cases = [
        (None, 0, 0, false),
        (Some(0), 1, 9_999, false),
        (Some(0), 1, 10_000, true),
        (Some(5_000), 3, 10_000, false),
        (Some(5_000), 500, 5_000, true),
    ];
    for (oldest, waiting, now, cut) in cases {
        assert_eq!(should_cut(oldest, waiting, 500, 10_000, now), cut, "{oldest:?} {waiting} {now}");
    }
}

#[test]
fn large_batches_split_by_file_count_and_by_path_bytes() {
    assert_eq!(split(&files(0, 20), 10).len(), 0);
    let parts = split(&files(25, 20), 10);
    assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);
    // 1000 paths of 4 KiB would be 4 MiB in one object: split by bytes far below etcd's limit.
    let long = split(&files(1000, 4096), 1000);
    assert!(long.len() >= 16, "{}", long.len());
    for p in &long {
        assert!(p.iter().map(|f| f.url.len()).sum::<usize>() <= MAX_PATH_BYTES);
    }
    assert_eq!(long.iter().map(Vec::len).sum::<usize>(), 1000, "no file lost or doubled");
}

#[test]
fn package_names_are_deterministic_unique_and_valid() {
    assert_eq!(package_name("users", "partner-a", 42, 0), "users-partner-a-000042");
    assert_eq!(package_name("users", "partner-a", 42, 2), "users-partner-a-000042-2");
    assert_eq!(package_name("users", "partner-a", 1_234_567, 0), "users-partner-a-1234567");
    let long = "d".repeat(200);
    let a = package_name(&long, &"x".repeat(200), 7, 0);
    let b = package_name(&long, &"y".repeat(200), 7, 0);
    assert!(a.len() <= 253 && b.len() <= 253, "{} {}", a.len(), b.len());
    assert_ne!(a, b);
    assert_eq!(a, package_name(&long, &"x".repeat(200), 7, 0));
    assert!(a.ends_with("-000007"));
    assert_eq!(datum_label("users"), "users");
    assert!(datum_label(&long).len() <= 63);
}

#[test]
fn a_cut_sends_new_files_everywhere_and_retries_only_where_they_failed() {
    let ready = files(3, 20);
    let again = FileRef { url: "hdfs://nn/retry".into(), size: 1, modified_ms: 1, seen_ms: 1 };
    let retry: BTreeMap<String, Vec<FileRef>> = [("b".to_owned(), vec![again.clone()])].into();
    let missing = vec![missing_file("a", "hdfs://nn/gone", 2, "not found", 3)];
    let dests = vec!["a".to_owned(), "b".to_owned()];
    let entry = cut(&CutInput {
        datum: "d",
        destinations: &dests,
        batch: 9,
        ready: &ready,
        retry: &retry,
        missing: &missing,
        max_files: 2,
        now_ms: 77,
    });
    let layout: Vec<(String, String, usize)> =
        entry.packages.iter().map(|p| (p.destination.clone(), p.name.clone(), p.files.len())).collect();
    assert_eq!(
        layout,
        vec![
            ("a".into(), "d-a-000009".into(), 2),
            ("a".into(), "d-a-000009-1".into(), 1),
            ("b".into(), "d-b-000009".into(), 2),
            ("b".into(), "d-b-000009-1".into(), 2),
        ]
    );
    assert!(entry.packages.iter().filter(|p| p.destination == "b").any(|p| p.files.contains(&again)));
    assert!(entry.packages.iter().filter(|p| p.destination == "a").all(|p| !p.files.contains(&again)));
    assert_eq!(entry.missing.len(), 1);
    assert!(entry.missing[0].failed, "the third attempt of three");
    assert_eq!((entry.batch, entry.at_ms), (9, 77));
}

#[test]
fn missing_retries_count_attempts_up_to_the_limit() {
    let m = missing_file("a", "u", 0, "gone", 3);
    assert_eq!((m.attempts, m.failed), (1, false));
    let m = missing_file("a", "u", 2, "gone", 3);
    assert_eq!((m.attempts, m.failed), (3, true));
    assert!(m.reason.contains("gone"));
}

#[test]
fn paths_are_escaped_so_a_package_reads_exactly_its_files() {
    assert_eq!(escape_glob("/in/a[1]*{x,y}?.jsonl"), "/in/a\\[1\\]\\*\\{x,y\\}\\?.jsonl");
    let owner = Owner { namespace: "ns".into(), name: "users".into(), uid: "u-1".into() };
    let landing: courier_api::datum::Landing = serde_json::from_value(serde_json::json!({
        "path": "hdfs://nn:9000/in/*.jsonl",
        "destinations": [{ "name": "a" }],
        "priority": 7,
        "ttlSecondsAfterFinished": 60,
        "failurePolicy": { "maxFailedRecords": 3 }
    }))
    .expect("landing");
    let p = PackageFiles {
        destination: "a".into(),
        name: "users-a-000001".into(),
        files: vec![FileRef { url: "hdfs://nn:9000/in/x[1].jsonl".into(), size: 1, modified_ms: 1, seen_ms: 1 }],
    };
    let pkg = package_object(&owner, &landing, 1, &p);
    let hdfs = pkg.spec.source.hdfs.as_ref().expect("hdfs source");
    assert_eq!(hdfs.url, "hdfs://nn:9000");
    assert_eq!(hdfs.paths, vec!["/in/x\\[1\\].jsonl".to_owned()]);
    assert_eq!(pkg.spec.priority, 7);
    assert_eq!(pkg.spec.ttl_seconds_after_finished, Some(60));
    assert_eq!(pkg.spec.failure_policy.as_ref().and_then(|f| f.max_failed_records), Some(3));
    assert_eq!(pkg.metadata.finalizers, Some(vec![FINALIZER.to_owned()]));
    let owner_ref = &pkg.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!((owner_ref.kind.as_str(), owner_ref.uid.as_str(), owner_ref.controller), ("Datum", "u-1", Some(true)));
    let file_landing = courier_api::datum::Landing { path: "file:///data/in/*.csv".into(), ..landing };
    let p = PackageFiles {
        files: vec![FileRef { url: "file:///data/in/a.csv".into(), size: 1, modified_ms: 1, seen_ms: 1 }],
        ..p
    };
    let pkg = package_object(&owner, &file_landing, 1, &p);
    assert_eq!(pkg.spec.source.file.as_ref().map(|f| f.paths.clone()), Some(vec!["/data/in/a.csv".to_owned()]));
}
