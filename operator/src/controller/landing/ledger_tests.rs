use super::*;

fn fref(name: &str) -> FileRef {
    FileRef { url: format!("hdfs://nn/in/{name}"), size: 10, modified_ms: 1, seen_ms: 1 }
}

fn batch(n: u64, packages: &[(&str, &[&str])]) -> Entry {
    Entry::Batch(BatchEntry {
        batch: n,
        at_ms: n * 1000,
        packages: packages
            .iter()
            .map(|(dest, names)| PackageFiles {
                destination: (*dest).into(),
                name: format!("d-{dest}-{n:06}"),
                files: names.iter().map(|n| fref(n)).collect(),
            })
            .collect(),
        missing: Vec::new(),
    })
}

fn outcome(n: u64, dest: &str, end: PackageEnd, sent: u64, retry: &[&str], failed: &[&str]) -> Entry {
    let undelivered = |names: &[&str]| -> Vec<Undelivered> {
        names.iter().map(|n| Undelivered { url: fref(n).url, reason: "unreadable".into() }).collect()
    };
    Entry::Outcome(OutcomeEntry {
        batch: n,
        destination: dest.into(),
        package: format!("d-{dest}-{n:06}"),
        at_ms: n * 1000 + 500,
        end,
        records_sent: sent,
        retry: undelivered(retry),
        failed: undelivered(failed),
    })
}

fn state<'a>(l: &'a Ledger, name: &str, dest: &str) -> Option<&'a DestFile> {
    l.files.get(&fref(name).url).and_then(|f| f.dest(dest))
}

#[test]
fn batches_and_outcomes_move_files_per_destination_and_keep_the_totals() {
    let mut l = Ledger::default();
    l.apply(0, &batch(0, &[("a", &["x", "y"]), ("b", &["x", "y"])]));
    assert_eq!(l.open.len(), 2);
    assert_eq!(l.next_batch, 1);
    assert!(matches!(state(&l, "x", "a"), Some(DestFile::InPackage { attempts: 1, .. })));
    l.apply(1, &outcome(0, "a", PackageEnd::Complete, 20, &[], &[]));
    l.apply(2, &outcome(0, "b", PackageEnd::Failed, 10, &["y"], &[]));
    assert_eq!(state(&l, "x", "a"), Some(&DestFile::Delivered));
    assert_eq!(state(&l, "y", "b"), Some(&DestFile::Retry { attempts: 1, reason: "unreadable".into() }));
    assert_eq!((l.files_delivered, l.files_failed), (1, 0), "x everywhere; y not yet");
    // y goes again to b only, and fails for good.
    l.apply(3, &batch(1, &[("b", &["y"])]));
    assert!(matches!(state(&l, "y", "b"), Some(DestFile::InPackage { attempts: 2, .. })));
    l.apply(4, &outcome(1, "b", PackageEnd::Failed, 0, &[], &["y"]));
    assert!(matches!(state(&l, "y", "b"), Some(DestFile::Failed { attempts: 2, .. })));
    let a = &l.totals["a"];
    let b = &l.totals["b"];
    assert_eq!((a.files_packaged, a.files_delivered, a.files_failed, a.records_delivered), (2, 2, 0, 20));
    assert_eq!((b.files_packaged, b.files_delivered, b.files_failed, b.records_delivered), (2, 1, 1, 10));
    assert_eq!(b.recent_failed.len(), 1);
    assert_eq!((l.files_delivered, l.files_failed), (1, 1));
    assert!(l.open.is_empty());
    assert_eq!(l.next_entry, 5);
}

#[test]
fn replaying_entries_twice_changes_nothing() {
    let entries =
        [batch(0, &[("a", &["x"])]), outcome(0, "a", PackageEnd::Complete, 5, &[], &[]), batch(1, &[("a", &["z"])])];
    let mut once = Ledger::default();
    for (i, e) in entries.iter().enumerate() {
        once.apply(i as u64, e);
    }
    let mut twice = once.clone();
    for (i, e) in entries.iter().enumerate() {
        twice.apply(i as u64, e);
    }
    assert_eq!(once, twice);
}

#[test]
fn an_outcome_for_a_package_the_ledger_does_not_hold_open_is_ignored() {
    let mut l = Ledger::default();
    l.apply(0, &outcome(0, "a", PackageEnd::Complete, 5, &[], &[]));
    assert_eq!(l.totals.get("a").map(|t| t.records_delivered), None);
}

#[test]
fn missing_retries_count_attempts_and_fail_at_the_limit() {
    let mut l = Ledger::default();
    l.apply(0, &batch(0, &[("a", &["gone"])]));
    l.apply(1, &outcome(0, "a", PackageEnd::Failed, 0, &["gone"], &[]));
    let missing = |attempts, failed| MissingFile {
        destination: "a".into(),
        url: fref("gone").url,
        attempts,
        failed,
        reason: "not listed".into(),
    };
    l.apply(
        2,
        &Entry::Batch(BatchEntry { batch: 1, at_ms: 0, packages: Vec::new(), missing: vec![missing(2, false)] }),
    );
    assert_eq!(state(&l, "gone", "a"), Some(&DestFile::Retry { attempts: 2, reason: "not listed".into() }));
    l.apply(3, &Entry::Batch(BatchEntry { batch: 2, at_ms: 0, packages: Vec::new(), missing: vec![missing(3, true)] }));
    assert_eq!(state(&l, "gone", "a"), Some(&DestFile::Failed { attempts: 3, reason: "not listed".into() }));
    assert_eq!(l.files_failed, 1);
    assert_eq!(l.next_batch, 3);
}

#[test]
fn files_final_everywhere_and_no_longer_listed_are_forgotten_and_the_totals_stay() {
    let mut l = Ledger::default();
    l.apply(0, &batch(0, &[("a", &["done", "listed", "open"])]));
    l.apply(1, &outcome(0, "a", PackageEnd::Complete, 3, &[], &[]));
    l.apply(2, &batch(1, &[("a", &["open2"])]));
    let forgotten = l.forget_gone(&|url: &str| url.ends_with("listed"));
    assert_eq!(forgotten, 2, "done and open were delivered; open2 is still in a package");
    assert!(l.files.contains_key(&fref("listed").url));
    assert!(l.files.contains_key(&fref("open2").url));
    assert_eq!(l.totals["a"].files_delivered, 3);
    assert_eq!(l.files_delivered, 3);
}

#[test]
fn the_ledger_survives_a_json_round_trip() {
    let mut l = Ledger::default();
    l.apply(0, &batch(0, &[("a", &["x"]), ("b", &["x"])]));
    l.apply(1, &outcome(0, "a", PackageEnd::Failed, 0, &[], &["x"]));
    let text = serde_json::to_string(&l).expect("serialize");
    let back: Ledger = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, l);
    let entry = batch(3, &[("a", &["q"])]);
    let text = serde_json::to_string(&entry).expect("serialize");
    assert!(text.contains("\"kind\":\"batch\""), "{text}");
    assert_eq!(serde_json::from_str::<Entry>(&text).expect("parse"), entry);
}
