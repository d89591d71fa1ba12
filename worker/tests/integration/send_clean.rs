//! A clean run against the partner simulator: every record is accepted exactly once.

use std::collections::HashSet;
use std::sync::Arc;

use crate::send_support::*;
use courier_e2e::sim::{SimConfig, Simulator};
use courier_worker::limiter::Rate;
use courier_worker::send::SendConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_has_every_key_accepted_exactly_once() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    let file = "file:///data/clean.jsonl";
    let config = SendConfig { max_in_flight: 16, retry: quick_retry(3), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "clean", config, None, Arc::default());

    let run = deliver(&delivery, records(file, 2000)).await;

    assert_eq!(run.counters().sent, 2000);
    assert_eq!(run.counters().retried, 0);
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
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    let delivery = sender(&sim.url(), "bytes", SendConfig::default(), None, Arc::default());
    let recs = records("file:///data/bytes.jsonl", 10);
    let total: u64 = recs.iter().map(|r| r.as_ref().ok().and_then(|d| d.as_ref().ok()).map_or(0, |r| r.size)).sum();
    let run = deliver(&delivery, recs).await;
    assert_eq!(run.counters().bytes, total);
    assert_eq!(run.progress.checkpoint, 9 * 300 + 1, "just past the last record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_delivery_finishes_what_is_on_the_wire_and_leaves_the_rest_below_the_checkpoint() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    let config = SendConfig { max_in_flight: 8, ..SendConfig::default() };
    let delivery = sender(&sim.url(), "drain", config, Some(Rate::new(100, 1)), Arc::default());
    let lease = delivery.start(records("file:///data/drain.jsonl", 1000));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    lease.stop();
    let run = delivery.finish(lease).await;

    assert!(!run.progress.done);
    let sent = run.counters().sent;
    assert!((20..60).contains(&sent), "about 30 records in 300 ms at 100/s, sent {sent}");
    let returned = sim.stats().accepted;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sim.stats().accepted, returned, "nothing goes out after the delivery returned");
    assert_eq!(returned, sent, "everything that went out was counted as sent");
    // At 100/s the limiter admits in read order, so the sent records are a prefix and the
    // records still waiting for the limiter were abandoned at the checkpoint.
    assert_eq!(run.progress.checkpoint, sent * 300, "the next lease resumes at the first record not sent");
    assert_eq!(run.counters().dead_lettered, 0, "abandoned records are not dead letters");
    assert_eq!(run.counters().read, sent, "abandoned records are not counted as read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_checkpoints_the_published_counters_keep_up_with_the_partner() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // Checkpoints once a second, as a worker in a cluster makes them; a heartbeat reports the
    // published counters, and the leader's RATE is measured from them.
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    let config = SendConfig { max_in_flight: 4, ..SendConfig::default() };
    let delivery = sender_checkpointing(
        &sim.url(),
        "fresh",
        config,
        Some(Rate::new(200, 1)),
        Arc::default(),
        std::time::Duration::from_secs(1),
    );
    let lease = delivery.start(records("file:///data/fresh.jsonl", 2_000));
    let mut worst = 0;
    for _ in 0..12 {
        tokio::time::sleep(std::time::Duration::from_millis(137)).await;
        let accepted = sim.stats().accepted;
        let published = lease.progress().counters.sent;
        worst = worst.max(accepted.saturating_sub(published));
    }
    lease.stop();
    delivery.finish(lease).await;
    // At 200/s a second between publications let the counters fall up to 200 behind; published
    // every 100 ms they trail by about 20 plus what is on the wire (a wide margin for a busy
    // machine).
    assert!(worst <= 80, "the published counters fell {worst} records behind the partner");
}
