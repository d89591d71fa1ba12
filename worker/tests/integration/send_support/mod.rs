//! Shared fixtures of the send-path tests: records, and the worker's own delivery pipeline (the
//! lease loop that runs in production) aimed at an in-process partner, fed with those records;
//! its dead letters are read back.

#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use courier_worker::decode::{FormatKind, FormatSpec};
use courier_worker::limiter::{Limiter, Rate};
use courier_worker::metrics::Metrics;
use courier_worker::pipeline::{LeaseHandle, LeaseProgress, LeaseWork, Pipeline};
use courier_worker::protocol::{LeaseCounters, LeaseKey};
use courier_worker::record::{Decoded, FileRef, Payload, Record};
use courier_worker::request::{RequestBuilder, RequestSpec, idempotency_key};
use courier_worker::send::{AttemptReport, Jitter, RetryConfig, SendConfig, SendObserver, Throttle};
use courier_worker::shard::{ShardKind, ShardSpec};
use futures::StreamExt as _;
use tokio::time::Instant;

pub const NAMESPACE: &str = "tests";
pub const WORKER: &str = "worker-t";

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

/// A worker's pipeline delivering one package to a partner, with its dead letters in a
/// temporary directory unless told otherwise.
pub struct Delivery {
    pub pipeline: Pipeline,
    builder: Arc<RequestBuilder>,
    package: String,
    dead_letters: tempfile::TempDir,
}

/// A pipeline sending to `url` as package `package`, limited to `rate` (unlimited when `None`),
/// telling `observer` of every attempt.
pub fn sender(url: &str, package: &str, config: SendConfig, rate: Option<Rate>, observer: Arc<Recorder>) -> Delivery {
    sender_checkpointing(url, package, config, rate, observer, Duration::from_millis(200))
}

/// [`sender`] with checkpoints every `checkpoint_interval`.
pub fn sender_checkpointing(
    url: &str,
    package: &str,
    config: SendConfig,
    rate: Option<Rate>,
    observer: Arc<Recorder>,
    checkpoint_interval: Duration,
) -> Delivery {
    let metrics = Arc::new(Metrics::new("tests"));
    let pipeline = Pipeline::new(WORKER, &config, rate, metrics, checkpoint_interval).expect("pipeline");
    pipeline.observe(observer).expect("observer");
    let builder = RequestBuilder::new(&RequestSpec::new(url, NAMESPACE, package)).expect("spec");
    Delivery {
        pipeline,
        builder: Arc::new(builder),
        package: package.to_owned(),
        dead_letters: tempfile::tempdir().expect("tempdir"),
    }
}

impl Delivery {
    /// The limiter every attempt draws from.
    pub fn limiter(&self) -> &Arc<Limiter> {
        self.pipeline.limiter()
    }

    /// The `file://` URL of the temporary dead-letter directory.
    pub fn dead_letter_dir(&self) -> String {
        format!("file://{}", self.dead_letters.path().display())
    }

    /// Starts shard 0 of the package over `records`, dead letters under `dead_letter_dir`. The
    /// shard ends just past its last record.
    pub fn start_into(&self, records: Vec<Result<Decoded, Infallible>>, dead_letter_dir: &str) -> LeaseHandle {
        let offsets = records.iter().filter_map(|r| r.as_ref().ok()).map(|d| match d {
            Ok(r) => r.offset,
            Err(m) => m.offset,
        });
        let end = offsets.max().map_or(0, |o| o + 1);
        let url = records
            .iter()
            .find_map(|r| r.as_ref().ok().and_then(|d| d.as_ref().ok()).map(|r| r.file.url.to_string()))
            .unwrap_or_else(|| "file:///data/empty.jsonl".to_owned());
        let work = LeaseWork {
            key: LeaseKey {
                namespace: NAMESPACE.to_owned(),
                package: self.package.clone(),
                package_uid: format!("{}-uid", self.package),
                shard: 0,
                package_attempt: 1,
                lease_epoch: 1,
            },
            shard: ShardSpec { url, kind: ShardKind::ByteRange { start: 0, end } },
            checkpoint: 0,
            base: LeaseCounters::default(),
            format: FormatSpec::new(FormatKind::JsonLines),
            builder: self.builder.clone(),
            dead_letter_dir: dead_letter_dir.to_owned(),
            only_offsets: Vec::new(),
            frontier: 0,
            pending: Vec::new(),
        };
        let stream = futures::stream::iter(records).map(|r| match r {
            Ok(decoded) => Ok(decoded),
            Err(never) => match never {},
        });
        self.pipeline.start_with_records(work, stream.boxed())
    }

    /// Starts shard 0 over `records` with dead letters in the temporary directory.
    pub fn start(&self, records: Vec<Result<Decoded, Infallible>>) -> LeaseHandle {
        self.start_into(records, &self.dead_letter_dir())
    }

    /// Waits for the lease to end; its final progress and the temporary directory's dead
    /// letters.
    pub async fn finish(&self, mut lease: LeaseHandle) -> Run {
        while !lease.progress().finished {
            lease.changed().await;
        }
        let progress = lease.progress();
        assert_eq!(progress.error, None, "the lease ended without an error");
        let mut dead_letters = Vec::new();
        for entry in std::fs::read_dir(self.dead_letters.path()).expect("dead-letter dir") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("dead-letter file");
            dead_letters.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON")));
        }
        Run { progress, dead_letters }
    }
}

/// What one delivery produced.
#[derive(Debug)]
pub struct Run {
    /// The lease's final checkpoint and counters.
    pub progress: LeaseProgress,
    pub dead_letters: Vec<serde_json::Value>,
}

impl Run {
    pub fn counters(&self) -> &LeaseCounters {
        &self.progress.counters
    }
}

/// Delivers `records` to the end and reads back the dead letters; checks that every record
/// was either sent or dead-lettered.
pub async fn deliver(delivery: &Delivery, records: Vec<Result<Decoded, Infallible>>) -> Run {
    let n = records.len() as u64;
    let run = delivery.finish(delivery.start(records)).await;
    let c = run.counters();
    assert!(run.progress.done, "the shard completes");
    assert_eq!(c.read, n, "every record read");
    assert_eq!(c.sent + c.dead_lettered, n, "sent + dead-lettered == records");
    assert_eq!(run.dead_letters.len() as u64, c.dead_lettered, "one dead-letter line per dead-lettered record");
    run
}
