//! The whole pipeline over every fixture format, from local files and from MiniDFS, into the
//! partner simulator: every record's key accepted exactly once, every malformed record
//! dead-lettered with its reason, and sent + dead-lettered equal to records read.

use crate::run_support::*;
use courier_e2e::fixtures::{FixtureFile, FixtureSet};
use courier_e2e::minidfs::MiniDfs;
use courier_e2e::sim::{SimConfig, Simulator};

const RECORDS: usize = 600;

async fn check_file(sim: &Simulator, url: &str, file: &FixtureFile) {
    sim.reset();
    let dead = tempfile::tempdir().expect("tempdir");
    let dead_url = format!("file://{}", dead.path().display());
    let package = file.name.replace('.', "-");
    let summary = deliver_locally(
        url,
        &datum_yaml(file.format),
        &destination_yaml(&sim.url(), 20_000, 64, ""),
        &package,
        &dead_url,
        8_000,
    )
    .await;
    let c = &summary.counters;
    let name = &file.name;
    assert!(summary.shard_errors.is_empty(), "{name}: {:?}", summary.shard_errors);
    assert_eq!(c.read, (file.records.len() + file.malformed_lines.len()) as u64, "{name}: records read");
    assert_eq!(c.sent, file.records.len() as u64, "{name}: sent");
    assert_eq!(c.malformed, file.malformed_lines.len() as u64, "{name}: malformed");
    assert_eq!(c.sent + c.dead_lettered, c.read, "{name}: every record accounted for");
    let stats = sim.stats();
    assert_eq!(stats.unique_keys, file.records.len() as u64, "{name}: distinct keys accepted");
    assert_eq!(stats.duplicates, 0, "{name}: no key twice");
    let letters = dead_letters(dead.path());
    assert_eq!(letters.len(), file.malformed_lines.len(), "{name}: dead letters");
    for letter in &letters {
        let reason = letter["error"].as_str().unwrap_or_default();
        assert!(reason.starts_with("malformed record: ") && reason.len() > 20, "{name}: reason {reason:?}");
    }
    if let Some(url) = url.strip_prefix("file://")
        && file.name == "users.jsonl"
    {
        let keys = jsonl_keys(&package, &format!("file://{url}"), file);
        let accepted = sim.keys();
        assert!(keys.iter().all(|k| accepted.get(k) == Some(&1)), "{name}: the exact keys");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_from_local_files_is_delivered_exactly_once() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator starts");
    let set = FixtureSet::standard(RECORDS).expect("fixtures render");
    let dir = tempfile::tempdir().expect("tempdir");
    set.write_local(dir.path()).expect("fixtures written");
    for file in &set.files {
        let url = format!("file://{}/{}", dir.path().display(), file.name);
        check_file(&sim, &url, file).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_from_minidfs_is_delivered_exactly_once() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dfs = MiniDfs::ensure_running().await.expect("MiniDFS runs");
    let client = dfs.client().expect("client");
    let dir = dfs.unique_dir(&client, "worker-pipeline").await.expect("unique dir");
    let set = FixtureSet::standard(RECORDS).expect("fixtures render");
    let options = hdfs_native::WriteOptions::default().block_size(64 * 1024);
    set.write_hdfs_with(&client, &dir, options).await.expect("fixtures written");
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator starts");
    for file in &set.files {
        let url = format!("{}{dir}/{}", dfs.namenode_url().trim_end_matches('/'), file.name);
        check_file(&sim, &url, file).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_gzip_file_delivers_what_precedes_the_cut_and_dead_letters_the_rest_once() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator starts");
    let set = FixtureSet::standard(RECORDS).expect("fixtures render");
    let gz = set.file("users.jsonl.gz").expect("gzip fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cut.jsonl.gz");
    std::fs::write(&path, &gz.bytes[..gz.bytes.len() / 2]).expect("write the cut file");
    let dead = tempfile::tempdir().expect("tempdir");
    let dead_url = format!("file://{}", dead.path().display());
    let summary = deliver_locally(
        &format!("file://{}", path.display()),
        &datum_yaml(gz.format),
        &destination_yaml(&sim.url(), 20_000, 64, ""),
        "cut-gz",
        &dead_url,
        8_000,
    )
    .await;
    let c = &summary.counters;
    assert!(summary.shard_errors.is_empty(), "the shard does not fail: {:?}", summary.shard_errors);
    assert!(c.sent > 0 && c.sent < RECORDS as u64, "the records before the cut are delivered: {c:?}");
    assert_eq!(sim.stats().unique_keys, c.sent, "sent == distinct keys accepted");
    assert_eq!(sim.stats().duplicates, 0);
    // The fixture's own malformed lines before the cut, and one dead letter for the rest.
    let letters = dead_letters(dead.path());
    let reason = |l: &serde_json::Value| l["error"].as_str().unwrap_or_default().to_owned();
    let rest: Vec<_> = letters.iter().filter(|l| reason(l).starts_with("unreadable rest of the file: ")).collect();
    assert_eq!(rest.len(), 1, "one dead letter for the rest of the file: {letters:?}");
    assert!(reason(rest[0]).contains("Gzip"), "{}", reason(rest[0]));
    assert!(letters.iter().all(|l| reason(l).starts_with("malformed record: ") || reason(l).starts_with("unreadable")));
    assert_eq!(letters.len() as u64, c.dead_lettered, "one line per dead-lettered record");
    assert_eq!(c.sent + c.dead_lettered, c.read, "every record accounted for: {c:?}");
}
