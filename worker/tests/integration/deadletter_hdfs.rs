//! The HDFS dead-letter sink against a real MiniDFS with 4 KiB blocks (the smallest it
//! allows): hundreds of blocks in a row, so the NameNode refuses some `addBlock` calls with
//! `NotReplicatedYetException` (a DataNode has not reported the previous block yet), which the
//! sink retries as Hadoop's client does. Every byte arrives exactly once, in order.
//!
//! Uses the shared MiniDFS at $COURIER_MINIDFS_URL (started if nothing answers; never skipped).

use bytes::Bytes;
use courier_e2e::minidfs::MiniDfs;
use courier_worker::deadletter::{DeadLetterSink, HdfsSink};
use hdfs_native::WriteOptions;

const BLOCK: u64 = 4096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_spanning_hundreds_of_small_blocks_arrive_exactly_once() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let dfs = MiniDfs::ensure_running().await.expect("MiniDFS");
    let client = dfs.client().expect("hdfs client");
    let dir = dfs.unique_dir(&client, "dead-letter-blocks").await.expect("test directory");
    let path = format!("{dir}/dead.jsonl");
    let mut sink = HdfsSink::with_options(client.clone(), &path, WriteOptions::default().block_size(BLOCK));
    let mut expected = Vec::new();
    let mut total_retries = 0;
    // Lines of ~300 bytes in writes of 10 lines, an hsync every 4 writes: ~1.2 MB, ~300 blocks.
    for write in 0..400u32 {
        let mut chunk = String::new();
        for line in 0..10u32 {
            chunk.push_str(&format!("{{\"write\":{write},\"line\":{line},\"pad\":\"{}\"}}\n", "x".repeat(260)));
        }
        expected.extend_from_slice(chunk.as_bytes());
        sink.write(Bytes::from(chunk)).await.unwrap_or_else(|e| panic!("write {write}: {e}"));
        if write % 4 == 3 {
            sink.flush().await.unwrap_or_else(|e| panic!("hsync after write {write}: {e}"));
        }
        total_retries = sink.add_block_retries();
    }
    sink.close().await.expect("close");
    let reader = client.read(&path).await.expect("open the dead-letter file");
    let got = reader.read_range(0, reader.file_length()).await.expect("read it back");
    eprintln!(
        "{} bytes in {} blocks of {BLOCK} bytes; addBlock retried {total_retries} times after NotReplicatedYetException",
        expected.len(),
        expected.len() as u64 / BLOCK + 1
    );
    assert_eq!(got.len(), expected.len(), "length");
    assert!(got[..] == expected[..], "the file holds every line exactly once, in order");
}
