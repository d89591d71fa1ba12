//! Read-side throughput: records/s of `read_shard` over file:// for ~256-byte JSON lines
//! (plain, by byte ranges and whole, and gzip), CSV and Parquet/Avro fixtures.
//!
//! Run: `cargo bench -p courier-worker --bench read_shard` (prints one line per case).
//! Target (docs/benchmarks): ≥ 50k records/s per core for 256 B JSON lines.

use std::io::Write;
use std::time::Instant;

use courier_worker::decode::{FormatKind, FormatSpec};
use courier_worker::shard::{ShardSpec, plan_shards, read_shard};
use courier_worker::source::{FileInfo, Source};
use futures::StreamExt;

const LINES: usize = 400_000;

fn json_line(i: usize) -> String {
    // ~256 bytes per line.
    format!(
        r#"{{"id":{i},"email":"user{i}@example.com","segment":"gold","score":{},"ts":"2026-01-01T00:00:00Z","note":"{}"}}"#,
        i % 1000,
        "x".repeat(150)
    )
}

async fn drain(source: &Source, shards: Vec<ShardSpec>, format: &FormatSpec) -> (u64, u64) {
    let mut tasks = Vec::new();
    for shard in shards {
        let (source, format) = (source.clone(), format.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut bad) = (0u64, 0u64);
            let mut stream = read_shard(source, shard, format);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(Ok(_)) => ok += 1,
                    Ok(Err(_)) => bad += 1,
                    Err(e) => panic!("shard failed: {e}"),
                }
            }
            (ok, bad)
        }));
    }
    let mut total = (0, 0);
    for t in tasks {
        let (ok, bad) = t.await.expect("task");
        total = (total.0 + ok, total.1 + bad);
    }
    total
}

async fn case(name: &str, url: &str, format: FormatSpec, shards: u64, threads: usize) {
    let source = Source::for_url(url).expect("source");
    let size = source.size(url).await.expect("size");
    let plan = plan_shards(&[FileInfo { url: url.to_owned(), size }], &format, (size / shards).max(1));
    let n = plan.len();
    let start = Instant::now();
    let (ok, bad) = drain(&source, plan, &format).await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<34} shards={n:<2} threads={threads} records={ok:>7} malformed={bad} {:>6.0} MB/s {:>9.0} records/s ({:.0} per thread)",
        size as f64 / secs / 1e6,
        ok as f64 / secs,
        ok as f64 / secs / threads as f64
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jsonl = dir.path().join("bench.jsonl");
    let mut text = String::with_capacity(LINES * 260);
    for i in 0..LINES {
        text.push_str(&json_line(i));
        text.push('\n');
    }
    std::fs::write(&jsonl, &text).expect("write jsonl");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).expect("gzip");
    std::fs::write(dir.path().join("bench.jsonl.gz"), gz.finish().expect("gzip")).expect("write gz");
    let mut csv = String::from("id,email,segment,score,ts,note\n");
    for i in 0..LINES {
        csv.push_str(&format!("{i},user{i}@example.com,gold,{},2026-01-01T00:00:00Z,{}\n", i % 1000, "x".repeat(150)));
    }
    std::fs::write(dir.path().join("bench.csv"), csv).expect("write csv");
    let set = courier_e2e::fixtures::set::FixtureSet::standard(200_000).expect("fixtures");
    set.write_local(dir.path()).expect("write fixtures");
    let url = |name: &str| format!("file://{}", dir.path().join(name).display());

    for threads in [1usize, 2] {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().expect("runtime");
        runtime.block_on(async {
            let json = FormatSpec::new(FormatKind::JsonLines);
            case("jsonl 256B whole", &url("bench.jsonl"), json.clone(), 1, threads).await;
            case("jsonl 256B 4 byte ranges", &url("bench.jsonl"), json.clone(), 4, threads).await;
            case("jsonl 256B gzip", &url("bench.jsonl.gz"), json, 1, threads).await;
            case("csv 6 columns 4 byte ranges", &url("bench.csv"), FormatSpec::new(FormatKind::Csv), 4, threads).await;
            case("parquet users (snappy)", &url("users.parquet"), FormatSpec::new(FormatKind::Parquet), 4, threads)
                .await;
            case("avro users (deflate)", &url("users.avro"), FormatSpec::new(FormatKind::Avro), 4, threads).await;
        });
    }
}
