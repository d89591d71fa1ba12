//! A clean run against the partner simulator: every record is accepted exactly once.

mod send_support;

use std::collections::HashSet;
use std::sync::Arc;

use courier_e2e::sim::{SimConfig, Simulator};
use courier_worker::limiter::Limiter;
use courier_worker::send::SendConfig;
use send_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_has_every_key_accepted_exactly_once() {
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    let file = "file:///data/clean.jsonl";
    let config = SendConfig { max_in_flight: 16, retry: quick_retry(3), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "clean", config, Limiter::unlimited(), Arc::new(Recorder::default()));

    let run = deliver(&delivery, records(file, 2000)).await;

    assert_eq!(run.checkpoint.counters.sent, 2000);
    assert_eq!(run.checkpoint.counters.retried, 0);
    assert!(run.dead_letters.is_empty());
    let keys = sim.keys();
    assert!(keys.values().all(|&count| count == 1), "no key accepted twice");
    let expected: HashSet<String> = expected_keys("clean", file, 2000).into_iter().collect();
    let accepted: HashSet<String> = keys.into_keys().collect();
    assert_eq!(accepted, expected);
    assert_eq!(sim.stats().duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_ends_at_the_shard_end_and_counts_bytes() {
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    let delivery =
        sender(&sim.url(), "bytes", SendConfig::default(), Limiter::unlimited(), Arc::new(Recorder::default()));
    let recs = records("file:///data/bytes.jsonl", 10);
    let total: u64 = recs.iter().map(|r| r.as_ref().ok().and_then(|d| d.as_ref().ok()).map_or(0, |r| r.size)).sum();
    let run = deliver(&delivery, recs).await;
    assert_eq!(run.checkpoint.counters.bytes, total);
    assert_eq!(run.checkpoint.offset, 9 * 300 + 1, "just past the last record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_delivery_finishes_what_is_on_the_wire_and_leaves_the_rest_below_the_checkpoint() {
    use courier_worker::ack::AckTracker;
    use courier_worker::deadletter::{DeadLetterWriter, FileSink};

    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    let config = SendConfig { max_in_flight: 8, ..SendConfig::default() };
    let delivery = sender(&sim.url(), "drain", config, Limiter::new(100, 1), Arc::new(Recorder::default()));
    let stop = delivery.stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stop.cancel();
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dlq = DeadLetterWriter::new(FileSink::new(dir.path().join("dlq.jsonl")));
    let outcome = delivery
        .run(futures::stream::iter(records("file:///data/drain.jsonl", 1000)), AckTracker::new(0), None, &mut dlq)
        .await
        .expect("delivery");

    assert!(outcome.stopped);
    assert!(!outcome.checkpoint.complete);
    let sent = outcome.checkpoint.counters.sent;
    assert!((20..60).contains(&sent), "about 30 records in 300 ms at 100/s, sent {sent}");
    let returned = sim.stats().accepted;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sim.stats().accepted, returned, "nothing goes out after the delivery returned");
    assert_eq!(returned, sent, "everything that went out was counted as sent");
    // At 100/s the limiter admits in read order, so the sent records are a prefix and the
    // records still waiting for the limiter were abandoned at the checkpoint.
    assert_eq!(outcome.checkpoint.offset, sent * 300, "the next lease resumes at the first record not sent");
    assert_eq!(outcome.checkpoint.counters.dead_lettered, 0, "abandoned records are not dead letters");
}
