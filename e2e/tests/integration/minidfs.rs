//! Fixture files of every format go into a real MiniDFS and come back out
//! byte for byte; the binary formats also decode back to the dataset.
//!
//! Uses the shared instance at $COURIER_MINIDFS_URL (default
//! hdfs://127.0.0.1:9000), starting it with `e2e/minidfs/minidfs.sh start`
//! when nothing answers there.

use std::collections::BTreeMap;
use std::io::Read;

use courier_e2e::fixtures::{Compression, FixtureSet, Format, read_avro, read_parquet, write_hdfs_file};
use courier_e2e::minidfs::MiniDfs;
use hdfs_native::{Client, WriteOptions};

const RECORDS: usize = 500;

async fn setup(test: &str) -> (Client, String) {
    let dfs = MiniDfs::ensure_running().await.expect("MiniDFS is running");
    let client = dfs.client().expect("hdfs client");
    let dir = dfs.unique_dir(&client, test).await.expect("test directory");
    (client, dir)
}

async fn read_all(client: &Client, path: &str) -> Vec<u8> {
    let reader = client.read(path).await.expect("open for read");
    reader.read_range(0, reader.file_length()).await.expect("full read").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_file_lists_and_reads_back_byte_for_byte_in_full_and_by_range() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (client, dir) = setup("round-trip").await;
    let set = FixtureSet::standard(RECORDS).expect("fixtures");
    let paths = set.write_hdfs(&client, &dir).await.expect("write fixtures");
    assert_eq!(paths.len(), set.files.len());

    let listed: BTreeMap<String, usize> = client
        .list_status(&dir, false)
        .await
        .expect("list")
        .into_iter()
        .map(|s| (s.path.rsplit('/').next().unwrap_or_default().to_owned(), s.length))
        .collect();
    let expected: BTreeMap<String, usize> = set.files.iter().map(|f| (f.name.clone(), f.bytes.len())).collect();
    assert_eq!(listed, expected, "listing shows every file with its size");

    for (path, file) in paths.iter().zip(&set.files) {
        assert_eq!(read_all(&client, path).await, file.bytes, "{} full read", file.name);
        let reader = client.read(path).await.expect("open for read");
        let (offset, len) = (file.bytes.len() / 3, file.bytes.len() / 3);
        let range = reader.read_range(offset, len).await.expect("ranged read");
        assert_eq!(&range[..], &file.bytes[offset..offset + len], "{} ranged read", file.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_and_avro_read_from_hdfs_decode_to_the_expected_records() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (client, dir) = setup("decode-binary").await;
    let set = FixtureSet::standard(RECORDS).expect("fixtures");
    set.write_hdfs(&client, &dir).await.expect("write fixtures");

    let binaries: Vec<_> = set.files.iter().filter(|f| !f.format.is_text()).collect();
    assert_eq!(binaries.len(), 4);
    for file in binaries {
        let bytes = read_all(&client, &format!("{dir}/{}", file.name)).await;
        let records = match file.format {
            Format::Parquet => {
                let (records, row_groups) = read_parquet(bytes).expect("parquet decodes");
                assert_eq!(row_groups, RECORDS.div_ceil(100), "{} row groups", file.name);
                records
            }
            _ => read_avro(&bytes).expect("avro decodes"),
        };
        assert_eq!(records, file.records, "{}", file.name);
        assert_eq!(records, set.dataset.records(), "{}", file.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_text_read_from_hdfs_expands_to_the_plain_file_with_malformed_lines_in_place() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (client, dir) = setup("decode-text").await;
    let set = FixtureSet::standard(RECORDS).expect("fixtures");
    set.write_hdfs(&client, &dir).await.expect("write fixtures");

    for file in set.files.iter().filter(|f| f.format.is_text()) {
        let stored = read_all(&client, &format!("{dir}/{}", file.name)).await;
        let plain = match file.compression {
            Compression::None => stored,
            Compression::Gzip => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(stored.as_slice()).read_to_end(&mut out).expect("gunzip");
                out
            }
            Compression::Zstd => zstd::stream::decode_all(stored.as_slice()).expect("unzstd"),
        };
        let base = file.name.trim_end_matches(".gz").trim_end_matches(".zst");
        assert_eq!(plain, set.file(base).expect("plain twin").bytes, "{}", file.name);
    }

    // In JSON lines exactly the malformed lines fail to parse.
    let jsonl = String::from_utf8(read_all(&client, &format!("{dir}/users.jsonl")).await).expect("utf-8");
    let unparsable: Vec<usize> = jsonl
        .lines()
        .enumerate()
        .filter(|(_, l)| serde_json::from_str::<serde_json::Value>(l).is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(unparsable, set.dataset.malformed_lines());
    assert_eq!(unparsable.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_written_in_small_blocks_read_back_across_block_boundaries() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    const BLOCK: usize = 8 * 1024;
    let (client, dir) = setup("small-blocks").await;
    let set = FixtureSet::standard(2_000).expect("fixtures");
    let options = WriteOptions::default().block_size(BLOCK as u64);

    let jsonl = set.file("users.jsonl").expect("jsonl fixture");
    let path = format!("{dir}/{}", jsonl.name);
    write_hdfs_file(&client, &path, &jsonl.bytes, options.clone()).await.expect("write jsonl");
    assert!(jsonl.bytes.len() > 10 * BLOCK, "jsonl spans more than ten blocks");
    let status = client.get_file_info(&path).await.expect("stat");
    assert_eq!(status.blocksize, Some(BLOCK as u64));
    assert_eq!(read_all(&client, &path).await, jsonl.bytes);

    let reader = client.read(&path).await.expect("open for read");
    for boundary in [BLOCK, 5 * BLOCK] {
        let (offset, len) = (boundary - 100, 300);
        let range = reader.read_range(offset, len).await.expect("ranged read across a block boundary");
        assert_eq!(&range[..], &jsonl.bytes[offset..offset + len], "across {boundary}");
    }
    let range = reader.read_range(BLOCK / 2, 3 * BLOCK).await.expect("read of three blocks starting mid-block");
    assert_eq!(&range[..], &jsonl.bytes[BLOCK / 2..BLOCK / 2 + 3 * BLOCK]);

    // A Parquet file whose footer and row groups straddle blocks still decodes.
    let parquet = set.file("users.parquet").expect("parquet fixture");
    let path = format!("{dir}/{}", parquet.name);
    write_hdfs_file(&client, &path, &parquet.bytes, options).await.expect("write parquet");
    assert!(parquet.bytes.len() > 2 * BLOCK, "parquet spans several blocks");
    let (records, _) = read_parquet(read_all(&client, &path).await).expect("parquet decodes");
    assert_eq!(records, parquet.records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_running_on_a_running_instance_just_returns_it() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let first = MiniDfs::ensure_running().await.expect("running");
    let again = MiniDfs::ensure_running().await.expect("still running");
    assert_eq!(first.namenode_url(), again.namenode_url());
    assert_eq!(again.namenode_url(), MiniDfs::url());
}
