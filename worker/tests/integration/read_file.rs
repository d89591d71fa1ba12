//! The read side over `file://`: listing, shard boundaries, every format, errors.

use std::path::Path;

use crate::read_support::{Outcome, check_fixture_file, range, read_one, whole};
use courier_e2e::fixtures::set::FixtureSet;
use courier_worker::decode::{Compression, FormatKind, FormatSpec};
use courier_worker::record::Payload;
use courier_worker::shard::{ShardError, ShardKind, ShardSpec, read_shard_from};
use courier_worker::source::{FileInfo, Source, SourceError};
use futures::StreamExt;
use proptest::prelude::*;

fn url_of(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    url_of(&path)
}

fn lines_of(out: &Outcome) -> Vec<(u64, String)> {
    out.records
        .iter()
        .map(|r| match &r.payload {
            Payload::JsonLine(b) => (r.offset, String::from_utf8_lossy(b).into_owned()),
            Payload::Object(m) => (r.offset, serde_json::Value::Object(m.clone()).to_string()),
        })
        .collect()
}

#[tokio::test]
async fn every_two_way_split_of_a_file_yields_each_record_exactly_once() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    // Empty lines, CRLF, whitespace-only line and no trailing newline.
    let content = b"{\"a\":1}\n\n{\"b\":22}\r\n   \n{\"c\":333}\n{\"d\":4}";
    let url = write(dir.path(), "edges.jsonl", content);
    let source = Source::for_url(&url).expect("file source");
    let spec = FormatSpec::new(FormatKind::JsonLines);
    let len = content.len() as u64;
    let entire = read_one(&source, whole(&url), &spec).await;
    assert_eq!(
        lines_of(&entire),
        vec![
            (0, r#"{"a":1}"#.to_owned()),
            (9, r#"{"b":22}"#.to_owned()),
            (23, r#"{"c":333}"#.to_owned()),
            (33, r#"{"d":4}"#.to_owned()),
        ]
    );
    for cut in 0..=len {
        let mut got = lines_of(&read_one(&source, range(&url, 0, cut), &spec).await);
        got.extend(lines_of(&read_one(&source, range(&url, cut, len), &spec).await));
        assert_eq!(got, lines_of(&entire), "cut at {cut}");
    }
}

#[tokio::test]
async fn a_record_starting_exactly_at_the_range_end_belongs_to_the_next_shard() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let url = write(dir.path(), "x.jsonl", b"{\"a\":1}\n{\"b\":2}\n");
    let source = Source::for_url(&url).expect("file source");
    let spec = FormatSpec::new(FormatKind::JsonLines);
    let first = read_one(&source, range(&url, 0, 8), &spec).await;
    assert_eq!(lines_of(&first), vec![(0, r#"{"a":1}"#.to_owned())]);
    let second = read_one(&source, range(&url, 8, 16), &spec).await;
    assert_eq!(lines_of(&second), vec![(8, r#"{"b":2}"#.to_owned())]);
    // A range starting one byte into a record skips it; the range before reads past its end.
    assert!(lines_of(&read_one(&source, range(&url, 9, 16), &spec).await).is_empty());
    assert_eq!(lines_of(&read_one(&source, range(&url, 0, 1), &spec).await).len(), 1);
}

#[tokio::test]
async fn csv_shards_after_the_first_take_column_names_from_the_header_line() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let content = b"id,name\n1,Ada\n2,\"Lovelace, A\"\n3\n";
    let url = write(dir.path(), "p.csv", content);
    let source = Source::for_url(&url).expect("file source");
    let spec = FormatSpec::new(FormatKind::Csv);
    let first = read_one(&source, range(&url, 0, 10), &spec).await;
    assert_eq!(lines_of(&first), vec![(8, r#"{"id":"1","name":"Ada"}"#.to_owned())]);
    let second = read_one(&source, range(&url, 10, content.len() as u64), &spec).await;
    assert_eq!(lines_of(&second), vec![(14, r#"{"id":"2","name":"Lovelace, A"}"#.to_owned())]);
    assert_eq!(second.malformed.len(), 1);
    assert_eq!(second.malformed[0].offset, 30);
    assert_eq!(second.malformed[0].reason, "expected 2 fields, found 1");
}

#[tokio::test]
async fn malformed_json_lines_are_reported_and_reading_goes_on() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let url = write(dir.path(), "m.jsonl", b"{\"ok\":1}\n{\"broken\":\n[1]\n{\"ok\":2}\n");
    let source = Source::for_url(&url).expect("file source");
    let out = read_one(&source, whole(&url), &FormatSpec::new(FormatKind::JsonLines)).await;
    assert!(out.error.is_none());
    assert_eq!(out.records.len(), 2);
    let reasons: Vec<(u64, &str)> = out.malformed.iter().map(|m| (m.offset, m.reason.as_str())).collect();
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[0].0, 9);
    assert!(reasons[0].1.starts_with("invalid JSON: EOF while parsing"), "{}", reasons[0].1);
    assert_eq!(reasons[1], (20, "not a JSON object: line starts with '['"));
    assert_eq!(&out.malformed[1].raw[..], b"[1]");
}

#[tokio::test]
async fn reading_resumes_from_a_checkpoint_offset() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let url = write(dir.path(), "r.jsonl", b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
    let source = Source::for_url(&url).expect("file source");
    let spec = FormatSpec::new(FormatKind::JsonLines);
    for (resume, want) in [(0, vec![0, 8, 16]), (8, vec![8, 16]), (9, vec![16]), (24, vec![])] {
        let mut stream = read_shard_from(source.clone(), range(&url, 0, 24), spec.clone(), resume);
        let mut offsets = Vec::new();
        while let Some(item) = stream.next().await {
            offsets.push(item.expect("readable").expect("valid").offset);
        }
        assert_eq!(offsets, want, "resume from {resume}");
    }
}

#[tokio::test]
async fn every_fixture_format_reads_back_through_several_shards() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let set = FixtureSet::standard(500).expect("fixtures");
    let paths = set.write_local(dir.path()).expect("write fixtures");
    let source = Source::for_url(&url_of(dir.path())).expect("file source");
    for (path, file) in paths.iter().zip(&set.files) {
        check_fixture_file(&source, &url_of(path), file, 4).await;
    }
}

#[tokio::test]
async fn a_truncated_gzip_file_fails_its_shard_with_a_clear_message() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let set = FixtureSet::standard(300).expect("fixtures");
    let gz = set.file("users.jsonl.gz").expect("gzip fixture");
    let url = write(dir.path(), "cut.jsonl.gz", &gz.bytes[..gz.bytes.len() / 2]);
    let source = Source::for_url(&url).expect("file source");
    let out = read_one(&source, whole(&url), &FormatSpec::new(FormatKind::JsonLines)).await;
    let err = out.error.expect("truncated gzip must fail");
    assert!(matches!(err, ShardError::Unreadable { .. }), "{err:?}");
    assert!(err.to_string().contains("cut.jsonl.gz") && err.to_string().contains("Gzip"), "{err}");
    assert!(!out.records.is_empty(), "records before the cut are still delivered");
}

#[tokio::test]
async fn a_corrupt_parquet_footer_fails_its_shard() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let set = FixtureSet::standard(300).expect("fixtures");
    let mut bytes = set.file("users.parquet").expect("parquet fixture").bytes.clone();
    let n = bytes.len();
    bytes[n - 6] ^= 0x7f; // metadata length
    let url = write(dir.path(), "bad.parquet", &bytes);
    let source = Source::for_url(&url).expect("file source");
    let out = read_one(&source, whole(&url), &FormatSpec::new(FormatKind::Parquet)).await;
    let err = out.error.expect("corrupt footer must fail");
    assert!(err.to_string().contains("Parquet footer"), "{err}");
    let url = write(dir.path(), "plain.parquet", b"this is not parquet at all");
    let out = read_one(&source, whole(&url), &FormatSpec::new(FormatKind::Parquet)).await;
    assert!(out.error.expect("not parquet").to_string().contains("PAR1"));
}

#[tokio::test]
async fn every_byte_range_split_of_a_parquet_file_yields_each_row_exactly_once() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let set = FixtureSet::standard(450).expect("fixtures");
    let bytes = set.file("users.parquet").expect("parquet fixture").bytes.clone();
    let url = write(dir.path(), "users.parquet", &bytes);
    let source = Source::for_url(&url).expect("file source");
    let spec = FormatSpec::new(FormatKind::Parquet);
    let entire = lines_of(&read_one(&source, whole(&url), &spec).await);
    assert_eq!(entire.len(), 450);
    let groups = |out: &[(u64, String)]| out.iter().map(|(o, _)| o >> 32).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(groups(&entire).len(), 5, "the fixture has several row groups");
    let row_groups = |start, end| ShardSpec { url: url.clone(), kind: ShardKind::RowGroupRange { start, end } };
    let len = bytes.len() as u64;
    let mut cuts: Vec<u64> = (0..=len).step_by((len / 211).max(1) as usize).collect();
    cuts.push(len);
    for cut in cuts {
        let mut got = lines_of(&read_one(&source, row_groups(0, cut), &spec).await);
        got.extend(lines_of(&read_one(&source, row_groups(cut, len), &spec).await));
        assert_eq!(got, entire, "cut at {cut}");
    }
    let plan = courier_worker::shard::plan_shards(&[FileInfo { url: url.clone(), size: len }], &spec, len.div_ceil(7));
    assert_eq!(plan.len(), 7);
    let mut got = Vec::new();
    for shard in plan {
        got.extend(lines_of(&read_one(&source, shard, &spec).await));
    }
    assert_eq!(got, entire, "a planned file is read exactly once");
}

#[tokio::test]
async fn a_byte_range_of_a_compressed_file_is_refused() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let url = write(dir.path(), "a.csv.zst", b"whatever");
    let source = Source::for_url(&url).expect("file source");
    let out =
        read_one(&source, range(&url, 0, 4), &FormatSpec::new(FormatKind::Csv).with_compression(Compression::Auto))
            .await;
    assert!(matches!(out.error, Some(ShardError::Mismatch { .. })), "{:?}", out.error);
}

#[tokio::test]
async fn a_missing_file_is_not_found_with_its_path() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let url = url_of(&dir.path().join("nope.jsonl"));
    let source = Source::for_url(&url).expect("file source");
    let out = read_one(&source, whole(&url), &FormatSpec::new(FormatKind::JsonLines)).await;
    match out.error {
        Some(ShardError::Source(SourceError::NotFound { path })) => assert_eq!(path, url),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn globs_list_matching_files_with_sizes_and_skip_hidden_ones() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for (name, size) in [
        ("2026-11-24/a.jsonl.gz", 3),
        ("2026-11-25/b.jsonl.gz", 5),
        ("2026-11-25/c.csv", 7),
        ("2026-11-25/_SUCCESS", 0),
        ("2026-11-25/sub/d.jsonl.gz", 11),
        ("2026-11-26/e.jsonl.gz", 13),
    ] {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, vec![b'x'; size]).expect("write");
    }
    let source = Source::for_url(&url_of(root)).expect("file source");
    let base = url_of(root);
    let list = |pattern: &str| {
        let source = source.clone();
        let pattern = format!("{base}/{pattern}");
        async move { source.list(&pattern).await }
    };
    let names = |files: Vec<FileInfo>| -> Vec<(String, u64)> {
        files.into_iter().map(|f| (f.url.trim_start_matches(&base).to_owned(), f.size)).collect()
    };
    assert_eq!(
        names(list("2026-11-2[45]/*.jsonl.gz").await.expect("matches")),
        vec![("/2026-11-24/a.jsonl.gz".into(), 3), ("/2026-11-25/b.jsonl.gz".into(), 5)]
    );
    assert_eq!(
        names(list("2026-11-25").await.expect("a directory")),
        vec![
            ("/2026-11-25/b.jsonl.gz".into(), 5),
            ("/2026-11-25/c.csv".into(), 7),
            ("/2026-11-25/sub/d.jsonl.gz".into(), 11),
        ]
    );
    assert_eq!(
        names(list("{2026-11-24,2026-11-26}/*").await.expect("matches")),
        vec![("/2026-11-24/a.jsonl.gz".into(), 3), ("/2026-11-26/e.jsonl.gz".into(), 13)]
    );
    assert_eq!(names(list("*/c.csv").await.expect("matches")), vec![("/2026-11-25/c.csv".into(), 7)]);
    match list("2027-*/*.gz").await {
        Err(SourceError::NotFound { path }) => assert!(path.ends_with("2027-*/*.gz"), "{path}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Lines of random JSON objects / CSV rows, sometimes empty, sometimes CRLF-terminated.
fn text_file() -> impl Strategy<Value = (Vec<u8>, bool)> {
    let line = prop_oneof![
        3 => "[a-z]{0,12}".prop_map(|s| format!("{{\"k\":\"{s}\"}}")),
        1 => Just(String::new()),
        1 => "[a-z]{1,5}".prop_map(|s| format!("{{\"crlf\":\"{s}\"}}\r")),
    ];
    (prop::collection::vec(line, 0..40), any::<bool>()).prop_map(|(lines, trailing)| {
        let mut text = lines.join("\n");
        if trailing && !text.is_empty() {
            text.push('\n');
        }
        (text.into_bytes(), trailing)
    })
}

fn csv_file() -> impl Strategy<Value = Vec<u8>> {
    let row = prop_oneof![
        4 => ("[a-z0-9]{0,6}", "[a-z ,]{0,6}").prop_map(|(a, b)| format!("{a},\"{b}\"")),
        1 => Just(String::new()),
        1 => "[a-z]{1,4}".prop_map(|a| a.to_string()), // wrong column count
    ];
    prop::collection::vec(row, 0..30).prop_map(|rows| {
        let mut text = String::from("left,right\n");
        text.push_str(&rows.join("\n"));
        text.into_bytes()
    })
}

/// Reads the file whole and as shards cut at `cuts`; both must give the same items, once each.
fn assert_shards_partition(content: Vec<u8>, mut cuts: Vec<u64>, spec: FormatSpec, name: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = write(dir.path(), name, &content);
        let source = Source::for_url(&url).expect("file source");
        let len = content.len() as u64;
        let entire = read_one(&source, whole(&url), &spec).await;
        let key = |o: &Outcome| {
            let mut items = lines_of(o);
            items.extend(o.malformed.iter().map(|m| (m.offset, format!("malformed {}", m.reason))));
            items.sort();
            items
        };
        cuts.iter_mut().for_each(|c| *c %= len + 1);
        cuts.push(0);
        cuts.push(len);
        cuts.sort_unstable();
        cuts.dedup();
        let mut parts = Outcome::default();
        for pair in cuts.windows(2) {
            let out = read_one(&source, range(&url, pair[0], pair[1]), &spec).await;
            assert!(out.error.is_none(), "{:?}", out.error);
            parts.records.extend(out.records);
            parts.malformed.extend(out.malformed);
        }
        assert_eq!(key(&parts), key(&entire), "cuts {cuts:?}");
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn json_lines_shards_partition_the_records((content, _) in text_file(), cuts in prop::collection::vec(any::<u64>(), 0..6)) {
    let _turn = courier_e2e::testkit::turn(module_path!());
        assert_shards_partition(content, cuts, FormatSpec::new(FormatKind::JsonLines), "p.jsonl");
    }

    #[test]
    fn csv_shards_partition_the_records(content in csv_file(), cuts in prop::collection::vec(any::<u64>(), 0..6)) {
    let _turn = courier_e2e::testkit::turn(module_path!());
        assert_shards_partition(content, cuts, FormatSpec::new(FormatKind::Csv), "p.csv");
    }
}

#[tokio::test]
async fn every_format_resumes_at_a_record_offset_with_the_records_from_there_on() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let set = FixtureSet::standard(300).expect("fixtures");
    let paths = set.write_local(dir.path()).expect("write fixtures");
    let source = Source::for_url(&url_of(dir.path())).expect("file source");
    for (path, file) in paths.iter().zip(&set.files) {
        let url = url_of(path);
        let spec = crate::read_support::spec_for(file);
        let shard = whole(&url);
        let all = read_one(&source, shard.clone(), &spec).await;
        let middle = all.records.len() / 2 + 7;
        let checkpoint = all.records[middle].offset;
        let mut stream = read_shard_from(source.clone(), shard, spec, checkpoint);
        let mut offsets = Vec::new();
        while let Some(item) = stream.next().await {
            if let Ok(record) = item.expect("readable") {
                offsets.push(record.offset);
            }
        }
        let want: Vec<u64> = all.records[middle..].iter().map(|r| r.offset).collect();
        assert_eq!(offsets, want, "{}", file.name);
    }
}
