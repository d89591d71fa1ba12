//! Shared fixtures of the send-path tests: records, a sender aimed at an in-process partner
//! simulator, and a delivery into a dead-letter file that is read back.

#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use courier_worker::ack::{AckTracker, Checkpoint};
use courier_worker::deadletter::{DeadLetterWriter, FileSink};
use courier_worker::limiter::Limiter;
use courier_worker::record::{Decoded, FileRef, Payload, Record};
use courier_worker::request::{RequestBuilder, RequestSpec, idempotency_key};
use courier_worker::send::{
    AttemptReport, Auth, HttpClient, Jitter, RetryConfig, SendConfig, SendObserver, Sender, ShardDelivery, Throttle,
};
use tokio::time::Instant;

pub const NAMESPACE: &str = "tests";

/// `n` JSON-lines records of about 256 bytes each, at offsets 0, 300, 600, …
pub fn records(file: &str, n: u64) -> Vec<Result<Decoded, Infallible>> {
    let file = FileRef { url: Arc::from(file) };
    (0..n)
        .map(|i| {
            let line = format!(r#"{{"id":{i},"name":"user-{i}","pad":"{}"}}"#, "x".repeat(220));
            Ok(Ok(Record {
                file: file.clone(),
                offset: i * 300,
                size: line.len() as u64,
                payload: Payload::JsonLine(Bytes::from(line)),
            }))
        })
        .collect()
}

/// The idempotency keys `records(file, n)` are sent with under `package`.
pub fn expected_keys(package: &str, file: &str, n: u64) -> Vec<String> {
    (0..n).map(|i| idempotency_key(NAMESPACE, package, file, i * 300)).collect()
}

/// A retry policy with short, unjittered back-off.
pub fn quick_retry(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        initial: Duration::from_millis(5),
        max: Duration::from_millis(50),
        jitter: Jitter::None,
        ..RetryConfig::default()
    }
}

/// Everything the observer saw, with the instants it saw them.
#[derive(Debug, Default)]
pub struct Recorder {
    /// (start of the attempt, its status)
    pub attempts: Mutex<Vec<(Instant, Option<u16>)>>,
    /// (when it was reported, the instant it named, as a monotonic instant)
    pub throttles: Mutex<Vec<(Instant, Option<Instant>)>>,
}

impl SendObserver for Recorder {
    fn attempt(&self, report: &AttemptReport) {
        let started = Instant::now() - report.latency;
        self.attempts.lock().expect("lock").push((started, report.status));
    }

    fn throttled(&self, throttle: Throttle) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let until = throttle.until.map(|u| now + u.duration_since(wall).unwrap_or_default());
        self.throttles.lock().expect("lock").push((now, until));
    }
}

/// A sender and builder for `url`.
pub fn sender(
    url: &str,
    package: &str,
    config: SendConfig,
    limiter: Limiter,
    observer: Arc<Recorder>,
) -> ShardDelivery {
    let client = HttpClient::new(&config).expect("client");
    let auth = Auth::new(&config.auth, client.clone()).expect("auth");
    let sender = Sender::new(config, client, auth, Arc::new(limiter), observer);
    let builder = RequestBuilder::new(&RequestSpec::new(url, NAMESPACE, package)).expect("spec");
    ShardDelivery::new(Arc::new(sender), Arc::new(builder))
}

/// What one delivery produced.
#[derive(Debug)]
pub struct Run {
    pub checkpoint: Checkpoint,
    pub dead_letters: Vec<serde_json::Value>,
}

/// Delivers `records` and reads back the dead-letter file; checks that every record was
/// either sent or dead-lettered.
pub async fn deliver(delivery: &ShardDelivery, records: Vec<Result<Decoded, Infallible>>) -> Run {
    let n = records.len() as u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dlq").join("shard-0-w-1.jsonl");
    let mut writer = DeadLetterWriter::new(FileSink::new(&path));
    let outcome =
        delivery.run(futures::stream::iter(records), AckTracker::new(0), None, &mut writer).await.expect("delivery");
    writer.close().await.expect("close");
    let dead_letters: Vec<serde_json::Value> = match std::fs::read_to_string(&path) {
        Ok(text) => text.lines().map(|l| serde_json::from_str(l).expect("dead letter is JSON")).collect(),
        Err(_) => Vec::new(),
    };
    let c = outcome.checkpoint.counters;
    assert!(outcome.checkpoint.complete, "the shard completes");
    assert_eq!(c.sent + c.dead_lettered, n, "sent + dead-lettered == records");
    assert_eq!(dead_letters.len() as u64, c.dead_lettered, "one dead-letter line per dead-lettered record");
    Run { checkpoint: outcome.checkpoint, dead_letters }
}
