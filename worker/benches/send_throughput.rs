//! Throughput of the whole send path (the worker's lease loop, fed records from memory) on one
//! core: ~256-byte JSON POSTs to a minimal local HTTP
//! sink, one request per record, no rate limit. When `wrk` is installed, the same sink is
//! measured with `wrk -t1` for comparison.
//!
//! Run: `cargo bench -p courier-worker --bench send_throughput` (env `RECORDS`, `IN_FLIGHT`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier_worker::decode::{FormatKind, FormatSpec};
use courier_worker::metrics::Metrics;
use courier_worker::pipeline::{LeaseHandle, LeaseProgress, LeaseWork, Pipeline};
use courier_worker::protocol::{LeaseCounters, LeaseKey};
use courier_worker::record::{Decoded, FileRef, Payload, Record};
use courier_worker::request::{RequestBuilder, RequestSpec};
use courier_worker::send::{HttpVersion, SendConfig};
use courier_worker::shard::{ShardKind, ShardSpec};
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A sink that drains each request and answers 200 `{"ok":true}`, on its own thread and core.
fn start_sink() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send addr");
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(br#"{"ok":true}"#))))
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
    });
    rx.recv().expect("sink address")
}

fn records(n: usize) -> Vec<Result<Decoded, Infallible>> {
    let file = FileRef { url: Arc::from("file:///bench/data.jsonl") };
    (0..n as u64)
        .map(|i| {
            let line = format!(r#"{{"id":{i:08},"name":"user-{i:08}","pad":"{}"}}"#, "x".repeat(214));
            Ok(Ok(Record {
                file: file.clone(),
                offset: i * 257,
                size: line.len() as u64,
                payload: Payload::JsonLine(Bytes::from(line)),
            }))
        })
        .collect()
}

fn courier_rate(addr: SocketAddr, n: usize, in_flight: usize) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let config = SendConfig { max_in_flight: in_flight, http_version: HttpVersion::Http1, ..SendConfig::default() };
        let metrics = Arc::new(Metrics::new("bench"));
        let pipeline = Pipeline::new("bench", &config, None, metrics, Duration::from_secs(1)).expect("pipeline");
        let builder = Arc::new(
            RequestBuilder::new(&RequestSpec::new(format!("http://{addr}/ingest"), "bench", "bench")).expect("spec"),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let dead_letters = format!("file://{}", dir.path().display());
        let lease = |records: Vec<Result<Decoded, Infallible>>| {
            let n = records.len();
            let work = LeaseWork {
                key: LeaseKey {
                    namespace: "bench".into(),
                    package: "bench".into(),
                    package_uid: "bench".into(),
                    shard: 0,
                    package_attempt: 1,
                    lease_epoch: 1,
                },
                shard: ShardSpec {
                    url: "file:///bench/data.jsonl".into(),
                    kind: ShardKind::ByteRange { start: 0, end: n as u64 * 257 },
                },
                checkpoint: 0,
                base: LeaseCounters::default(),
                format: FormatSpec::new(FormatKind::JsonLines),
                builder: builder.clone(),
                dead_letter_dir: dead_letters.clone(),
                only_offsets: Vec::new(),
                frontier: 0,
                pending: Vec::new(),
            };
            let records = futures::stream::iter(records).map(|r| match r {
                Ok(decoded) => Ok(decoded),
                Err(never) => match never {},
            });
            pipeline.start_with_records(work, records.boxed())
        };
        // Warm the connection pool.
        finish(lease(records(in_flight * 4))).await;
        let recs = records(n);
        let started = Instant::now();
        let progress = finish(lease(recs)).await;
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(progress.counters.sent as usize, n, "every record sent");
        n as f64 / elapsed
    })
}

async fn finish(mut lease: LeaseHandle) -> LeaseProgress {
    while !lease.progress().finished {
        lease.changed().await;
    }
    lease.progress()
}

fn wrk_rate(addr: SocketAddr, connections: usize) -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("post.lua");
    let body = format!(r#"{{"id":00000001,"name":"user-00000001","pad":"{}"}}"#, "x".repeat(214));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Idempotency-Key\"] = \"0123456789abcdef0123456789abcdef\"\n"
        ),
    )
    .ok()?;
    let out = std::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), "-d5s", "-s"])
        .arg(&script)
        .arg(format!("http://{addr}/ingest"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("Requests/sec:"))?;
    line.trim_start_matches("Requests/sec:").trim().parse().ok()
}

fn main() {
    let n = env("RECORDS", 200_000);
    let in_flight = env("IN_FLIGHT", 64);
    let addr = start_sink();
    let ours = courier_rate(addr, n, in_flight);
    println!("courier send path, 1 core, {in_flight} in flight, {n} x 256 B POSTs: {ours:.0} req/s");
    match wrk_rate(addr, in_flight) {
        Some(wrk) => println!(
            "wrk -t1 -c{in_flight} on the same sink: {wrk:.0} req/s; courier = {:.0}% of wrk",
            100.0 * ours / wrk
        ),
        None => println!("wrk not found: install it (apt-get install wrk) for the comparison"),
    }
}
