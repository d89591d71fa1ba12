//! The read side against a real MiniDFS: listing with globs, every format and compression read
//! through several shards per file (files span several HDFS blocks), and source errors.
//!
//! Uses the shared instance at $COURIER_MINIDFS_URL (default hdfs://127.0.0.1:9000), starting
//! it with `e2e/minidfs/minidfs.sh start` when nothing answers. If MiniDFS cannot be started
//! the tests fail; they never skip.

use crate::read_support::{check_fixture_file, range, read_one, spec_for, user_of, whole};
use courier_e2e::fixtures::set::FixtureSet;
use courier_e2e::fixtures::set::{Compression as FixtureCompression, Format};
use courier_e2e::minidfs::MiniDfs;
use courier_worker::decode::{FormatKind, FormatSpec};
use courier_worker::shard::ShardError;
use courier_worker::source::{Source, SourceError};
use hdfs_native::WriteOptions;

const RECORDS: usize = 500;
/// Small HDFS blocks so that every shard boundary case also crosses block boundaries.
const BLOCK_SIZE: u64 = 16 * 1024;

/// A running MiniDFS, a fresh directory in it and a Source for it.
async fn setup(test: &str) -> (MiniDfs, String, Source) {
    let dfs = MiniDfs::ensure_running().await.expect("MiniDFS must be running (e2e/minidfs/minidfs.sh start)");
    let client = dfs.client().expect("hdfs client");
    let dir = dfs.unique_dir(&client, test).await.expect("test directory");
    let source = Source::for_url(dfs.namenode_url()).expect("hdfs source");
    (dfs, dir, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_and_compression_reads_back_from_hdfs_through_several_shards() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (dfs, dir, source) = setup("read-formats").await;
    let client = dfs.client().expect("hdfs client");
    let set = FixtureSet::standard(RECORDS).expect("fixtures");
    set.write_hdfs_with(&client, &dir, WriteOptions::default().block_size(BLOCK_SIZE)).await.expect("write fixtures");
    let base = dfs.namenode_url().trim_end_matches('/').to_owned();

    let listed = source.list(&format!("{base}{dir}/users*")).await.expect("glob matches");
    assert_eq!(listed.len(), set.files.len());
    for file in &set.files {
        let url = format!("{base}{dir}/{}", file.name);
        let info = listed.iter().find(|f| f.url == url).unwrap_or_else(|| panic!("{url} not listed"));
        assert_eq!(info.size, file.bytes.len() as u64, "{url} size");
        check_fixture_file(&source, &url, file, 4).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdfs_globs_expand_across_directories() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (dfs, dir, source) = setup("read-globs").await;
    let client = dfs.client().expect("hdfs client");
    let set = FixtureSet::standard(20).expect("fixtures");
    for day in ["2026-11-24", "2026-11-25", "2026-11-26"] {
        set.write_hdfs(&client, &format!("{dir}/{day}")).await.expect("write fixtures");
    }
    let base = dfs.namenode_url().trim_end_matches('/').to_owned();
    let listed = source.list(&format!("{base}{dir}/2026-11-2[45]/*.jsonl.gz")).await.expect("glob matches");
    let urls: Vec<String> = listed.into_iter().map(|f| f.url).collect();
    assert_eq!(
        urls,
        vec![format!("{base}{dir}/2026-11-24/users.jsonl.gz"), format!("{base}{dir}/2026-11-25/users.jsonl.gz"),]
    );
    let everything = source.list(&format!("{base}{dir}")).await.expect("directory");
    assert_eq!(everything.len(), 3 * set.files.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_hdfs_paths_are_not_found_with_the_path() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (dfs, dir, source) = setup("read-missing").await;
    let base = dfs.namenode_url().trim_end_matches('/').to_owned();
    let pattern = format!("{base}{dir}/nothing-*.csv");
    match source.list(&pattern).await {
        Err(SourceError::NotFound { path }) => assert_eq!(path, pattern),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let url = format!("{base}{dir}/gone.jsonl");
    let out = read_one(&source, whole(&url), &FormatSpec::new(FormatKind::JsonLines)).await;
    match out.error {
        Some(ShardError::Source(SourceError::NotFound { path })) => assert_eq!(path, url),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_namenode_is_reported_with_its_address() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // Port 1 on loopback: nothing listens there. Fewer retries than the default keep it short.
    let config = [
        ("dfs.client.failover.max.attempts".to_owned(), "1".to_owned()),
        ("dfs.client.failover.sleep.base.millis".to_owned(), "10".to_owned()),
    ];
    let source = Source::for_url_with_config("hdfs://127.0.0.1:1/", &config).expect("client builds lazily");
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), source.list("hdfs://127.0.0.1:1/data/*.jsonl"))
        .await
        .expect("fails within a minute")
        .expect_err("nothing listens on port 1");
    match err {
        SourceError::Unreachable { address, .. } => assert_eq!(address, "127.0.0.1:1"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

/// Random shard boundaries over the plain-text fixtures in HDFS (several blocks each): the
/// shards together give every record and every malformed line exactly once, as the whole file
/// does. A property test: each case cuts every file at up to five random offsets.
#[test]
fn random_byte_range_shards_over_hdfs_files_deliver_each_record_exactly_once() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (source, files) = runtime.block_on(async {
        let (dfs, dir, source) = setup("read-random-cuts").await;
        let client = dfs.client().expect("hdfs client");
        let set = FixtureSet::standard(RECORDS).expect("fixtures");
        set.write_hdfs_with(&client, &dir, WriteOptions::default().block_size(BLOCK_SIZE))
            .await
            .expect("write fixtures");
        let base = dfs.namenode_url().trim_end_matches('/').to_owned();
        let mut files = Vec::new();
        for file in set.files {
            let splittable = matches!(file.format, Format::JsonLines | Format::Csv | Format::Tsv);
            if file.compression != FixtureCompression::None || !splittable {
                continue;
            }
            let url = format!("{base}{dir}/{}", file.name);
            let entire = read_one(&source, whole(&url), &spec_for(&file)).await;
            assert_eq!(entire.records.len(), file.records.len(), "{url}: the whole file gives the fixture's records");
            let expected = items(&entire);
            files.push((url, file, expected));
        }
        (source, files)
    });
    assert_eq!(files.len(), 3, "JSON lines, CSV and TSV fixtures");
    let mut runner = TestRunner::new(Config { cases: 12, ..Config::default() });
    let cuts = prop::collection::vec(any::<u64>(), 0..6);
    runner
        .run(&cuts, |cuts| {
            runtime.block_on(async {
                for (url, file, expected) in &files {
                    let len = file.bytes.len() as u64;
                    let mut bounds: Vec<u64> = cuts.iter().map(|c| c % (len + 1)).chain([0, len]).collect();
                    bounds.sort_unstable();
                    bounds.dedup();
                    let mut got = Vec::new();
                    for pair in bounds.windows(2) {
                        let out = read_one(&source, range(url, pair[0], pair[1]), &spec_for(file)).await;
                        assert!(out.error.is_none(), "{url} {pair:?}: {:?}", out.error);
                        got.extend(items(&out));
                    }
                    got.sort();
                    prop_assert_eq!(&got, expected, "{} cut at {:?}", url, bounds);
                }
                Ok(())
            })
        })
        .expect("every cut partitions the records");
}

/// Each record (as its user) and each malformed line of a read, by offset, sorted.
fn items(out: &crate::read_support::Outcome) -> Vec<(u64, String)> {
    let mut items: Vec<(u64, String)> = out.records.iter().map(|r| (r.offset, format!("{:?}", user_of(r)))).collect();
    items.extend(out.malformed.iter().map(|m| (m.offset, format!("malformed: {}", m.reason))));
    items.sort();
    items
}
