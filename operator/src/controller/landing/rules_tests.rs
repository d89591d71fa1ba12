use super::*;
use crate::controller::landing::ledger::{BatchEntry, Entry, PackageFiles};

const PREFIX: &str = "hdfs://nn:9000/landing/users/";

fn rules() -> Rules {
    Rules {
        settle_ms: 10_000,
        open_timeout_ms: 3_600_000,
        marker: None,
        max_file_attempts: 3,
        literal_prefix: PREFIX.to_owned(),
    }
}

fn status(name: &str, size: u64, modified_ms: u64, write: WriteState) -> FileStatus {
    FileStatus { url: format!("{PREFIX}{name}"), size, modified_ms, write }
}

fn fref(name: &str, size: u64, modified_ms: u64) -> FileRef {
    FileRef { url: format!("{PREFIX}{name}"), size, modified_ms, seen_ms: 0 }
}

#[test]
fn temporary_names_are_never_taken_as_hadoop_tools_do() {
    let cases = [
        ("part-0.jsonl", false),
        ("_SUCCESS", true),
        ("_temporary/0/part-0.jsonl", true),
        (".part-0.jsonl.crc", true),
        ("part-0.jsonl._COPYING_", true),
        ("2026-12-03/part-0.jsonl", false),
        ("2026-12-03/.hidden/part-0.jsonl", true),
        ("part_0.jsonl", false),
        ("x._COPYING_.jsonl", false),
    ];
    for (name, temporary) in cases {
        assert_eq!(is_temporary(&format!("{PREFIX}{name}"), PREFIX), temporary, "{name}");
    }
    // Above the pattern's literal prefix, a leading underscore is the user's choice.
    assert!(!is_temporary("hdfs://nn:9000/_data/in/a.jsonl", "hdfs://nn:9000/_data/in/"));
}

#[test]
fn the_literal_prefix_ends_before_the_first_wildcard_directory() {
    let cases = [
        ("hdfs://nn:9000/landing/users/*/*.jsonl", "hdfs://nn:9000/landing/users/"),
        ("/landing/users/*.jsonl", "/landing/users/"),
        ("/landing/users/2026-1?/x", "/landing/users/"),
        ("/landing/users/a.jsonl", "/landing/users/"),
        ("/landing/{a,b}/x", "/landing/"),
    ];
    for (pattern, prefix) in cases {
        assert_eq!(literal_prefix(pattern), prefix, "{pattern}");
    }
}

#[test]
fn settle_open_for_write_and_marker_rules() {
    let obs = |stable_since_ms| Observation { size: 10, modified_ms: 1_000, stable_since_ms, first_seen_ms: 0 };
    let with_marker = Rules { marker: Some("_SUCCESS".into()), ..rules() };
    let now = 100_000;
    // (write state, stable since, rules, marker present, expected)
    let cases = [
        (WriteState::Closed, 95_000, rules(), false, Readiness::Settling),
        (WriteState::Closed, 90_000, rules(), false, Readiness::Ready),
        (WriteState::Unknown, 90_000, rules(), false, Readiness::Ready),
        (WriteState::Unknown, 90_001, rules(), false, Readiness::Settling),
        (WriteState::NeverClosed, 0, rules(), false, Readiness::Open),
        (WriteState::NeverClosed, 0, Rules { open_timeout_ms: 50_000, ..rules() }, false, Readiness::Ready),
        (WriteState::Closed, 0, with_marker.clone(), false, Readiness::AwaitingMarker),
        (WriteState::Closed, 0, with_marker.clone(), true, Readiness::Ready),
        (WriteState::Closed, 95_000, with_marker, true, Readiness::Settling),
        (WriteState::Closed, 100_000, Rules { settle_ms: 0, ..rules() }, false, Readiness::Ready),
    ];
    for (i, (write, since, r, marker, expected)) in cases.into_iter().enumerate() {
        let f = status("a", 10, 1_000, write);
        assert_eq!(readiness(&f, &obs(since), &r, marker, now), expected, "case {i}");
    }
}

#[test]
fn a_file_that_grows_or_is_touched_starts_its_settle_time_again_and_gone_files_are_forgotten() {
    let mut obs = Observations::new();
    assert_eq!(
        observe(&mut obs, &[status("a", 1, 1, WriteState::Closed), status("b", 1, 1, WriteState::Closed)], 0),
        2
    );
    assert_eq!(
        observe(&mut obs, &[status("a", 2, 1, WriteState::Closed), status("b", 1, 1, WriteState::Closed)], 5),
        0
    );
    assert_eq!(obs[&format!("{PREFIX}a")].stable_since_ms, 5, "grew");
    assert_eq!(obs[&format!("{PREFIX}b")].stable_since_ms, 0, "unchanged");
    observe(&mut obs, &[status("a", 2, 7, WriteState::Closed)], 9);
    assert_eq!(obs[&format!("{PREFIX}a")].stable_since_ms, 9, "touched");
    assert_eq!(obs[&format!("{PREFIX}a")].first_seen_ms, 0);
    assert!(!obs.contains_key(&format!("{PREFIX}b")), "gone");
}

fn ledger_with(files: &[(&str, &str)]) -> Ledger {
    let mut ledger = Ledger::default();
    let packages = files
        .iter()
        .map(|(dest, name)| PackageFiles {
            destination: (*dest).into(),
            name: format!("p-{dest}-{name}"),
            files: vec![fref(name, 10, 1_000)],
        })
        .collect();
    ledger.apply(0, &Entry::Batch(BatchEntry { batch: 0, at_ms: 0, packages, missing: Vec::new() }));
    ledger
}

#[test]
fn a_listing_yields_only_files_the_ledger_has_not_packaged_plus_retries_missing_and_changed() {
    let mut ledger = ledger_with(&[
        ("a", "old.jsonl"),
        ("b", "old.jsonl"),
        ("a", "retry.jsonl"),
        ("a", "gone.jsonl"),
        ("a", "grown.jsonl"),
    ]);
    // retry.jsonl and gone.jsonl could not be read for a.
    for name in ["retry.jsonl", "gone.jsonl"] {
        if let Some(f) = ledger.files.get_mut(&format!("{PREFIX}{name}")) {
            f.dests[0].1 = DestFile::Retry { attempts: 1, reason: "unreadable".into() };
        }
    }
    let listing = vec![
        status("old.jsonl", 10, 1_000, WriteState::Closed),
        status("retry.jsonl", 10, 1_000, WriteState::Closed),
        status("grown.jsonl", 20, 2_000, WriteState::Closed),
        status("new.jsonl", 5, 50_000, WriteState::Closed),
        status("late.jsonl", 5, 10, WriteState::Closed),
        status("settling.jsonl", 5, 95_000, WriteState::Closed),
        status("open.jsonl", 0, 60_000, WriteState::NeverClosed),
        status("_SUCCESS", 0, 60_000, WriteState::Closed),
        status("copy.jsonl._COPYING_", 3, 60_000, WriteState::Closed),
    ];
    let mut obs = Observations::new();
    observe(&mut obs, &listing, 50_000);
    // settling.jsonl changed just now.
    if let Some(o) = obs.get_mut(&format!("{PREFIX}settling.jsonl")) {
        o.stable_since_ms = 95_000;
    }
    let a = assess(&ledger, &listing, &obs, &HashSet::new(), &rules(), 100_000);
    let names =
        |files: &[FileRef]| files.iter().map(|f| f.url.trim_start_matches(PREFIX).to_owned()).collect::<Vec<_>>();
    assert_eq!(names(&a.ready), vec!["late.jsonl", "new.jsonl"], "a late file with an old mtime is new all the same");
    assert_eq!(names(&a.retry["a"]), vec!["retry.jsonl"]);
    assert!(!a.retry.contains_key("b"));
    assert_eq!(a.missing, vec![("a".into(), format!("{PREFIX}gone.jsonl"), 1, "unreadable".into())]);
    assert_eq!(a.changed.len(), 1);
    assert_eq!(a.changed[0].0.size, 10);
    assert_eq!(a.changed[0].1.size, 20);
    assert_eq!((a.seen, a.settling, a.open, a.awaiting_marker), (7, 1, 1, 0));
    // Reported once: the ledger's `changed` flag silences it.
    if let Some(f) = ledger.files.get_mut(&format!("{PREFIX}grown.jsonl")) {
        f.changed = true;
    }
    assert!(assess(&ledger, &listing, &obs, &HashSet::new(), &rules(), 100_000).changed.is_empty());
}

#[test]
fn a_marker_is_looked_for_in_the_files_own_directory() {
    let listing = vec![status("d1/a.jsonl", 1, 0, WriteState::Closed), status("d2/b.jsonl", 1, 0, WriteState::Closed)];
    let mut obs = Observations::new();
    observe(&mut obs, &listing, 0);
    let markers: HashSet<String> = [format!("{PREFIX}d1")].into();
    let r = Rules { marker: Some("_SUCCESS".into()), ..rules() };
    let a = assess(&Ledger::default(), &listing, &obs, &markers, &r, 60_000);
    assert_eq!(a.ready.len(), 1);
    assert!(a.ready[0].url.ends_with("d1/a.jsonl"));
    assert_eq!(a.awaiting_marker, 1);
}
