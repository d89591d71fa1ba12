//! The read side through faults of HDFS itself, each on a MiniDFS of its own (loopback, its own
//! ports and data directory, `courier_e2e::own_minidfs`): the shared instance is never
//! restarted.
//!
//! - The namenode restarted (down 10 s, longer than the client's own retries of about 8 s)
//!   while one shard is being read and another is opened.
//! - A datanode lost for good, with replication 2, while shards are read and opened: the
//!   namenode still hands its replicas out (it has not missed enough heartbeats).
//!
//! Every record comes out once, in file order, and no shard fails.

use std::time::Duration;

use courier_e2e::own_minidfs::{OwnMiniDfs, OwnMiniDfsConfig};
use courier_worker::decode::{FormatKind, FormatSpec};
use courier_worker::record::Payload;
use courier_worker::shard::{ShardKind, ShardSpec, read_shard};
use courier_worker::source::Source;
use futures::StreamExt;
use hdfs_native::WriteOptions;

/// Small blocks: a file is many blocks, so reads open new datanode connections all along.
const BLOCK: u64 = 16 * 1024;
const RECORDS: usize = 3_000;

async fn start(port: u16, datanodes: u32, replication: u32) -> OwnMiniDfs {
    let config = OwnMiniDfsConfig {
        host: "127.0.0.1".parse().expect("an IP"),
        port,
        http_port: port + 70,
        datanodes,
        conf: vec![("dfs.replication".into(), replication.to_string())],
        ..OwnMiniDfsConfig::default()
    };
    OwnMiniDfs::start(config).await.expect("a MiniDFS of the test's own")
}

/// Writes `RECORDS` JSON lines with ids `<name>-<n>` to `/faults/<name>.jsonl`; returns its URL
/// and the ids in file order.
async fn write(dfs: &OwnMiniDfs, name: &str, replication: u32) -> (String, Vec<String>) {
    let client = dfs.client().expect("an HDFS client");
    let ids: Vec<String> = (0..RECORDS).map(|n| format!("{name}-{n}")).collect();
    let text: String =
        ids.iter().map(|id| format!("{{\"id\":\"{id}\",\"payload\":\"{}\"}}\n", "x".repeat(40))).collect();
    let path = format!("/faults/{name}.jsonl");
    let options = WriteOptions::default().create_parent(true).block_size(BLOCK).replication(replication);
    courier_e2e::fixtures::write_hdfs_file(&client, &path, text.as_bytes(), options)
        .await
        .unwrap_or_else(|e| panic!("write {path}: {e}"));
    (format!("{}{path}", dfs.url()), ids)
}

/// Reads the whole file at `url` as one shard, pausing `pause` after every 100 records; the
/// ids read, and the shard's error if it failed.
async fn read(source: Source, url: String, pause: Duration) -> (Vec<String>, Option<String>) {
    let spec = ShardSpec { url, kind: ShardKind::Whole };
    let mut stream = read_shard(source, spec, FormatSpec::new(FormatKind::JsonLines));
    let mut ids = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(Ok(record)) => {
                let Payload::JsonLine(line) = &record.payload else { panic!("not a JSON line: {record:?}") };
                let value: serde_json::Value = serde_json::from_slice(line).expect("a JSON line");
                ids.push(value["id"].as_str().expect("an id").to_owned());
                if ids.len() % 100 == 0 {
                    tokio::time::sleep(pause).await;
                }
            }
            Ok(Err(malformed)) => panic!("malformed record: {malformed:?}"),
            Err(e) => return (ids, Some(e.to_string())),
        }
    }
    (ids, None)
}

fn check(what: &str, (ids, error): (Vec<String>, Option<String>), expected: &[String]) {
    assert_eq!(error, None, "{what}: the shard failed after {} records", ids.len());
    assert_eq!(ids.len(), expected.len(), "{what}: every record once");
    assert!(ids == expected, "{what}: the records in file order, none repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namenode_restart_neither_fails_nor_repeats_shards_being_read_or_opened() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let mut dfs = start(19100, 1, 1).await;
    let (a, a_ids) = write(&dfs, "a", 1).await;
    let (b, b_ids) = write(&dfs, "b", 1).await;
    let source = Source::for_url(&dfs.url()).expect("an HDFS source");

    // Shard a is read slowly (about 15 s), through the whole outage.
    let reading = tokio::spawn(read(source.clone(), a, Duration::from_millis(500)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restart = tokio::spawn(async move {
        let took = dfs.restart_namenode(Duration::from_secs(10)).await.expect("restart the namenode");
        (dfs, took)
    });
    // Shard b is opened while the namenode is down.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let opening = tokio::spawn(read(source, b, Duration::ZERO));

    let (dfs, took) = restart.await.expect("the restart task");
    eprintln!("namenode back after {:.1} s", took.as_secs_f64());
    check("read through the restart", reading.await.expect("reader a"), &a_ids);
    check("opened during the restart", opening.await.expect("reader b"), &b_ids);
    dfs.shutdown().await.expect("shut the MiniDFS down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datanode_lost_for_good_leaves_reads_to_the_other_replica() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let mut dfs = start(19200, 2, 2).await;
    let mut files = Vec::new();
    for name in ["a", "b", "c", "d"] {
        files.push(write(&dfs, name, 2).await);
    }
    let source = Source::for_url(&dfs.url()).expect("an HDFS source");

    // Two shards are being read (about 15 s each) when the datanode goes ...
    let mut reading = Vec::new();
    for (url, _) in &files[..2] {
        reading.push(tokio::spawn(read(source.clone(), url.clone(), Duration::from_millis(500))));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let took = dfs.stop_datanode(0).await.expect("stop datanode 0");
    eprintln!("datanode 0 stopped in {:.1} s", took.as_secs_f64());
    // ... and two are opened after: the namenode still lists both replicas of every block.
    for (url, _) in &files[2..] {
        reading.push(tokio::spawn(read(source.clone(), url.clone(), Duration::ZERO)));
    }
    for (task, (url, ids)) in reading.into_iter().zip(&files) {
        check(url, task.await.expect("a reader"), ids);
    }
    dfs.shutdown().await.expect("shut the MiniDFS down");
}
