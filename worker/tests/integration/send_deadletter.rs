//! Dead letters written to real sinks: a local file and a real MiniDFS (the shared instance
//! at $COURIER_MINIDFS_URL, started by the e2e helper when nothing answers there).

use std::sync::Arc;

use crate::send_support::*;
use courier_e2e::minidfs::MiniDfs;
use courier_e2e::sim::{InjectStatus, SimConfig, Simulator};
use courier_worker::deadletter::dead_letter_file_name;
use courier_worker::record::{FileRef, Malformed};
use courier_worker::send::SendConfig;

async fn refusing_partner() -> Simulator {
    let inject = InjectStatus { fraction: 1.0, status: 422, body: r#"{"error":"unprocessable"}"#.to_owned() };
    Simulator::start("127.0.0.1:0", SimConfig { inject_status: Some(inject), ..SimConfig::default() })
        .await
        .expect("simulator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_and_refused_records_land_in_one_file_in_order_of_completion() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = refusing_partner().await;
    let delivery = sender(&sim.url(), "dlq-file", SendConfig::default(), None, Arc::default());
    let mut input = records("file:///data/dlq.jsonl", 3);
    input.insert(
        1,
        Ok(Err(Malformed {
            file: FileRef { url: Arc::from("file:///data/dlq.jsonl") },
            offset: 150,
            size: 9,
            raw: bytes::Bytes::from_static(b"{not json"),
            reason: "expected a JSON object".to_owned(),
        })),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_url = format!("file://{}/dead-letters", dir.path().display());
    let run = delivery.finish(delivery.start_into(input, &dir_url)).await;

    assert_eq!(run.counters().dead_lettered, 4);
    assert_eq!((run.counters().read, run.counters().malformed), (4, 1));
    let name = dead_letter_file_name("dlq-file-shard-00000", WORKER, 1);
    let text = std::fs::read_to_string(dir.path().join("dead-letters").join(name)).expect("file");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 4);
    let malformed = lines.iter().find(|l| l["offset"] == 150).expect("malformed entry");
    assert_eq!(malformed["record"], "{not json");
    assert_eq!(malformed["attempts"], 0);
    assert!(malformed["error"].as_str().is_some_and(|e| e.contains("expected a JSON object")));
    assert!(lines.iter().filter(|l| l["offset"] != 150).all(|l| l["status"] == 422));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_written_to_hdfs_and_a_second_writer_appends() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dfs = MiniDfs::ensure_running().await.expect("MiniDFS is running");
    let client = dfs.client().expect("hdfs client");
    let dir = dfs.unique_dir(&client, "dead-letters").await.expect("test directory");
    let dir_url = format!("{}{dir}", dfs.namenode_url().trim_end_matches('/'));
    let sim = refusing_partner().await;
    let delivery = sender(&sim.url(), "dlq-hdfs", SendConfig::default(), None, Arc::default());

    // Two leases of the same shard, worker and package attempt write the same file: the second
    // appends.
    for batch in ["file:///data/one.jsonl", "file:///data/two.jsonl"] {
        let run = delivery.finish(delivery.start_into(records(batch, 5), &dir_url)).await;
        assert_eq!(run.counters().dead_lettered, 5);
    }

    let name = dead_letter_file_name("dlq-hdfs-shard-00000", WORKER, 1);
    let reader = client.read(&format!("{dir}/{name}")).await.expect("open dead-letter file");
    let data = reader.read_range(0, reader.file_length()).await.expect("read");
    let text = String::from_utf8(data.to_vec()).expect("utf-8");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 10, "both writers' entries are there");
    assert_eq!(lines.iter().filter(|l| l["file"] == "file:///data/two.jsonl").count(), 5);
    assert!(lines.iter().all(|l| l["status"] == 422 && l["body"] == r#"{"error":"unprocessable"}"#));
}
