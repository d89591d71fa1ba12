use courier_core::shard::ShardSpec;

use super::*;

fn package(source: &str, extra: &str) -> DeliveryPackage {
    serde_norway::from_str(&format!(
        "apiVersion: courier.dev/v1alpha1\nkind: DeliveryPackage\nmetadata: {{ name: p, namespace: ns }}\nspec:\n  destinationRef: {{ name: d }}\n  datumRef: {{ name: u }}\n  source: {source}\n{extra}"
    ))
    .expect("valid package")
}

fn shard(url: &str, kind: ShardKind, bytes: u64) -> PlannedShard {
    PlannedShard { spec: ShardSpec { url: url.into(), kind }, bytes, only_offsets: Vec::new() }
}

#[test]
fn hdfs_patterns_are_joined_to_the_namenode_url() {
    let pkg = package("{ hdfs: { url: \"hdfs://127.0.0.1:9000/\", paths: [\"/data/a/*.jsonl\", \"/data/b\"] } }", "");
    let (base, patterns) = source_patterns(&pkg);
    assert_eq!(base, "hdfs://127.0.0.1:9000");
    assert_eq!(patterns, vec!["hdfs://127.0.0.1:9000/data/a/*.jsonl", "hdfs://127.0.0.1:9000/data/b"]);
}

#[test]
fn the_default_dead_letter_path_is_under_the_namenode_per_attempt() {
    let pkg = package("{ hdfs: { url: \"hdfs://127.0.0.1:9000\", paths: [\"/data/a\"] } }", "");
    assert_eq!(dead_letter_path(&pkg, 2), "hdfs://127.0.0.1:9000/_courier/dead-letter/ns/p/attempt-2");
}

#[test]
fn the_default_dead_letter_path_of_files_is_beside_the_first_pattern() {
    let pkg = package("{ file: { paths: [\"/tmp/x/in/*.jsonl\"] } }", "");
    assert_eq!(dead_letter_path(&pkg, 1), "file:///tmp/x/in/_courier/dead-letter/ns/p/attempt-1");
}

#[test]
fn an_explicit_dead_letter_path_wins() {
    let pkg = package("{ file: { paths: [\"/a/b\"] } }", "  deadLetter: { path: \"file:///dlq/\" }\n");
    assert_eq!(dead_letter_path(&pkg, 3), "file:///dlq/attempt-3");
}

#[test]
fn a_status_restores_completed_shards_checkpoints_and_counters() {
    let status: DeliveryPackageStatus = serde_norway::from_str(
        r#"
attempt: 1
progress: { files: 1, bytesTotal: 100, bytesDone: 40, records: { read: 10, sent: 8, failed: 2, malformed: 0, deadLettered: 2, retried: 0 }, percent: 40, ratePerSecond: 0 }
shards:
  total: 6
  completed: "0-2,4"
  active: [{ id: 3, worker: w-1, checkpoint: 4096, attempt: 2 }]
failureReasons: [{ code: "400", count: 2, sample: bad }]
"#,
    )
    .expect("valid status");
    let r = restored_from(&status);
    assert_eq!(r.completed, vec![0, 1, 2, 4]);
    assert_eq!(r.active.len(), 1);
    assert_eq!((r.active[0].id, r.active[0].checkpoint, r.active[0].attempt), (3, 4096, 2));
    assert_eq!((r.counters.sent, r.counters.dead_lettered, r.counters.bytes), (8, 2, 40));
    assert_eq!(r.failure_reasons[0].code, "400");
}

#[test]
fn a_failed_records_retry_keeps_only_shards_with_dead_letters_and_their_offsets() {
    let plan = vec![
        shard("file:///a", ShardKind::ByteRange { start: 0, end: 100 }, 100),
        shard("file:///a", ShardKind::ByteRange { start: 100, end: 200 }, 100),
        shard("file:///b", ShardKind::Whole, 50),
        shard("file:///c", ShardKind::Whole, 50),
    ];
    let dead = DeadLetterOffsets::from([
        ("file:///a".to_owned(), BTreeSet::from([5, 150, 160])),
        ("file:///b".to_owned(), BTreeSet::from([7])),
    ]);
    let retry = failed_record_shards(&plan, &dead);
    let summary: Vec<_> = retry.iter().map(|(s, o)| (s.spec.url.as_str(), o.clone())).collect();
    assert_eq!(summary, vec![("file:///a", vec![5]), ("file:///a", vec![150, 160]), ("file:///b", vec![7])]);
}

fn datum_at(generation: i64, path: &str) -> Datum {
    serde_norway::from_str(&format!(
        "apiVersion: courier.dev/v1alpha1\nkind: Datum\nmetadata: {{ name: u, namespace: ns, generation: {generation} }}\nspec:\n  format: {{ type: JsonLines }}\n  request: {{ pathTemplate: \"{path}\" }}\n"
    ))
    .expect("valid datum")
}

fn pinned_status(attempt: i32, generation: i64, path: &str) -> DeliveryPackageStatus {
    let d = datum_at(generation, path);
    DeliveryPackageStatus {
        attempt,
        datum: Some(PinnedDatum { generation, format: d.spec.format, request: d.spec.request }),
        ..DeliveryPackageStatus::default()
    }
}

/// (prior status, attempt being reconciled, started now, current Datum) → (generation, path).
type PinCase<'a> = (DeliveryPackageStatus, u32, bool, Option<&'a Datum>, Option<(i64, &'a str)>);

#[test]
fn an_attempt_keeps_the_datum_it_pinned_and_the_next_attempt_takes_the_current_one() {
    let changed = datum_at(3, "/v2/{{ id }}");
    let cases: [PinCase; 6] = [
        // Nothing pinned yet (first reconcile of attempt 1): the Datum as it is now.
        (DeliveryPackageStatus::default(), 1, true, Some(&changed), Some((3, "/v2/{{ id }}"))),
        // Same attempt, the Datum changed since: the pinned one.
        (pinned_status(1, 2, "/v1/{{ id }}"), 1, false, Some(&changed), Some((2, "/v1/{{ id }}"))),
        // Same attempt, the Datum deleted since: the pinned one still.
        (pinned_status(1, 2, "/v1/{{ id }}"), 1, false, None, Some((2, "/v1/{{ id }}"))),
        // A retry (new attempt) takes the Datum as it is now.
        (pinned_status(1, 2, "/v1/{{ id }}"), 2, true, Some(&changed), Some((3, "/v2/{{ id }}"))),
        // A status of an older attempt pins nothing for this one.
        (pinned_status(1, 2, "/v1/{{ id }}"), 2, false, Some(&changed), Some((3, "/v2/{{ id }}"))),
        // Nothing pinned and no Datum: nothing to deliver with.
        (DeliveryPackageStatus::default(), 1, true, None, None),
    ];
    for (i, (prior, attempt, started_now, current, want)) in cases.into_iter().enumerate() {
        // As the reconcile does: the pinned one, or the Datum as it is now.
        let got = pinned_by_attempt(&prior, attempt, started_now).or_else(|| current.map(pin));
        let got = got.as_ref().map(|p| (p.generation, p.request.path_template.as_str()));
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn a_new_retry_nonce_starts_an_attempt_only_once_the_current_one_finished() {
    let at = |attempt: i32, nonce: Option<&str>| DeliveryPackageStatus {
        attempt,
        observed_retry_nonce: nonce.map(str::to_owned),
        ..DeliveryPackageStatus::default()
    };
    // (prior status, finished, spec nonce) → (attempt, nonce answered, starts now)
    let cases = [
        (at(0, None), false, None, (1, None, false)),
        (at(0, None), false, Some("a"), (1, Some("a"), false)),
        (at(1, None), false, None, (1, None, false)),
        // Changed while attempt 1 runs: it waits, the status keeps answering the old nonce.
        (at(1, None), false, Some("a"), (1, None, false)),
        (at(1, Some("a")), false, Some("b"), (1, Some("a"), false)),
        // Changed and attempt 1 finished: attempt 2 starts.
        (at(1, None), true, Some("a"), (2, Some("a"), true)),
        (at(2, Some("a")), true, Some("b"), (3, Some("b"), true)),
        // Finished, unchanged: nothing new.
        (at(2, Some("a")), true, Some("a"), (2, Some("a"), false)),
        // Removing the nonce is a change too.
        (at(2, Some("a")), true, None, (3, None, true)),
    ];
    for (i, (prior, finished, spec, (n, nonce, starts))) in cases.into_iter().enumerate() {
        assert_eq!(attempt_for(&prior, finished, spec), (n, nonce.map(str::to_owned), starts), "case {i}");
    }
}

#[test]
fn a_plan_error_keeps_the_source_error_and_says_what_it_said() {
    let missing = PlanError::from(SourceError::NotFound { path: "file:///x".into() });
    assert!(matches!(&missing, PlanError::NotFound(SourceError::NotFound { .. })), "{missing:?}");
    assert_eq!(missing.to_string(), "path not found: file:///x");
    let cause: Box<dyn std::error::Error + Send + Sync> = "connection refused".into();
    let down = PlanError::from(SourceError::Unreachable { address: "nn:9000".into(), source: cause });
    assert!(matches!(&down, PlanError::Unavailable(SourceError::Unreachable { .. })), "{down:?}");
    assert_eq!(down.to_string(), "cannot reach nn:9000: connection refused");
    let err =
        crate::controller::Error::Source { package: "ns/p".into(), source: SourceError::NotFound { path: "f".into() } };
    assert!(std::error::Error::source(&err).is_some(), "the reconcile error keeps its cause");
}
