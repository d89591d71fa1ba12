//! Retries against the partner simulator: Retry-After pauses, 5xx back-off, dead letters.

use std::sync::Arc;
use std::time::Duration;

use crate::send_support::*;
use courier_e2e::sim::{BurstWindow, InjectStatus, RateLimit, SimConfig, Simulator};
use courier_worker::send::{RetryConfig, SendConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_a_long_retry_after_pauses_every_request_until_the_instant() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    // The first request is answered 429 with Retry-After: 3 (long enough to spread).
    sim.throttle_next(1, 3);
    let recorder = Arc::new(Recorder::default());
    let config = SendConfig { max_in_flight: 2, retry: quick_retry(10), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "retry-after", config, None, recorder.clone());

    let run = deliver(&delivery, records("file:///data/ra.jsonl", 6)).await;

    assert_eq!(run.counters().sent, 6);
    let throttles = recorder.throttles.lock().expect("lock").clone();
    assert_eq!(throttles.len(), 1, "the partner throttled once");
    let attempts = recorder.attempts.lock().expect("lock").clone();
    let (seen, until) = throttles[0];
    let until = until.expect("the simulator names a Retry-After");
    // 5 ms of slack for mapping the wall-clock instant onto the monotonic clock.
    let pause_end = until - Duration::from_millis(5);
    assert!(pause_end > seen + Duration::from_millis(1_900), "Retry-After names three seconds");
    for (started, status) in &attempts {
        assert!(
            !(*started > seen && *started < pause_end),
            "an attempt ({status:?}) started during a Retry-After pause"
        );
    }
    let stats = sim.stats();
    assert_eq!((stats.accepted, stats.duplicates, stats.rejected.rate_limited), (6, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_a_short_retry_after_delays_only_the_record_it_answered() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    // One request is answered 429 with Retry-After: 1 (a strict partner's answer to one
    // request that came a little early): the others keep going, that one waits a second.
    sim.throttle_next(1, 1);
    let recorder = Arc::new(Recorder::default());
    let config = SendConfig { max_in_flight: 4, retry: quick_retry(10), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "short-retry-after", config, None, recorder.clone());

    let run = deliver(&delivery, records("file:///data/sra.jsonl", 200)).await;

    assert_eq!(run.counters().sent, 200);
    let throttles = recorder.throttles.lock().expect("lock").clone();
    assert_eq!(throttles.len(), 1);
    let (seen, until) = throttles[0];
    let until = until.expect("the simulator names a Retry-After");
    let attempts = recorder.attempts.lock().expect("lock").clone();
    let during = attempts.iter().filter(|(started, _)| *started > seen && *started < until).count();
    assert!(during >= 10, "other records went on during the one-second wait: {during}");
    let retried = attempts.iter().filter(|(started, status)| *started >= until && *status == Some(200)).count();
    assert!(retried >= 1, "the throttled record went again after its Retry-After");
    assert_eq!(sim.stats().duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_records_are_retried_past_max_attempts_and_never_dead_lettered_for_a_429() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // 2 requests/s against 6 records 4 at a time: most first tries are answered 429.
    let sim_config = SimConfig { rate_limit: Some(RateLimit { rate: 2.0, burst: 1 }), ..SimConfig::default() };
    let sim = Simulator::start("127.0.0.1:0", sim_config).await.expect("simulator");
    let config = SendConfig { max_in_flight: 4, retry: quick_retry(2), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "storm", config, None, Arc::default());

    let run = deliver(&delivery, records("file:///data/storm.jsonl", 6)).await;

    let stats = sim.stats();
    assert!(stats.rejected.rate_limited > 6, "more 429s than maxAttempts allows per record: {stats:?}");
    assert_eq!(run.counters().dead_lettered, 0, "{:?}", run.dead_letters);
    assert_eq!((run.counters().sent, stats.accepted, stats.duplicates), (6, 6, 0));
    assert_eq!(run.counters().retried, stats.rejected.rate_limited, "every 429 counted as a retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_5xx_is_retried_then_dead_lettered_after_max_attempts() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim_config = SimConfig { error_rate: 1.0, error_status: 503, ..SimConfig::default() };
    let sim = Simulator::start("127.0.0.1:0", sim_config).await.expect("simulator");
    let config = SendConfig { max_in_flight: 4, retry: quick_retry(3), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "5xx", config, None, Arc::default());

    // 3 records × 3 attempts: 9 failures in a row, fewer than a partner outage
    // (`OUTAGE_AFTER`, 10), so every attempt counts against maxAttempts.
    let run = deliver(&delivery, records("file:///data/5xx.jsonl", 3)).await;

    assert_eq!(run.counters().dead_lettered, 3);
    assert_eq!(run.counters().retried, 6);
    assert_eq!(sim.stats().rejected.injected_5xx, 9, "three attempts per record");
    for dl in &run.dead_letters {
        assert_eq!(dl["status"], 503);
        assert_eq!(dl["attempts"], 3);
        assert_eq!(dl["body"], r#"{"error":"unavailable"}"#);
        assert_eq!(dl["headers"]["content-type"], "application/json");
        assert!(dl["idempotencyKey"].as_str().is_some_and(|k| k.len() == 32));
        assert_eq!(dl["record"]["name"].as_str().map(|s| s.starts_with("user-")), Some(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermittent_5xx_ends_with_every_record_sent_once_or_dead_lettered() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim_config = SimConfig { error_rate: 0.3, seed: Some(11), ..SimConfig::default() };
    let sim = Simulator::start("127.0.0.1:0", sim_config).await.expect("simulator");
    let config = SendConfig { max_in_flight: 8, retry: quick_retry(4), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "flaky", config, None, Arc::default());

    let run = deliver(&delivery, records("file:///data/flaky.jsonl", 300)).await;

    let c = run.counters().clone();
    assert!(c.retried > 0, "some attempts failed and were retried");
    assert_eq!(sim.stats().accepted, c.sent);
    assert_eq!(sim.stats().duplicates, 0);
    assert!(run.dead_letters.iter().all(|dl| dl["attempts"] == 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_dead_lettered_at_once_with_the_partners_body() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let body = r#"{"error":"invalid_email","field":"email"}"#;
    let sim_config = SimConfig {
        inject_status: Some(InjectStatus { fraction: 1.0, status: 400, body: body.to_owned() }),
        ..SimConfig::default()
    };
    let sim = Simulator::start("127.0.0.1:0", sim_config).await.expect("simulator");
    let config = SendConfig { retry: quick_retry(5), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "bad", config, None, Arc::default());

    let run = deliver(&delivery, records("file:///data/bad.jsonl", 5)).await;

    assert_eq!(run.counters().dead_lettered, 5);
    assert_eq!(run.counters().retried, 0);
    assert_eq!(sim.stats().rejected.injected_status, 5, "one attempt each");
    let mut offsets: Vec<u64> = run.dead_letters.iter().map(|dl| dl["offset"].as_u64().expect("offset")).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, [0, 300, 600, 900, 1200]);
    for dl in &run.dead_letters {
        assert_eq!(dl["status"], 400);
        assert_eq!(dl["attempts"], 1);
        assert_eq!(dl["body"], body);
        assert_eq!(dl["file"], "file:///data/bad.jsonl");
        assert!(dl["error"].as_str().is_some_and(|e| e.contains("400")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_then_dead_lettered_with_the_error() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // A port that was free a moment ago and has no listener now.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let config = SendConfig { retry: quick_retry(2), ..SendConfig::default() };
    let url = format!("http://127.0.0.1:{port}");
    let delivery = sender(&url, "refused", config, None, Arc::default());

    let run = deliver(&delivery, records("file:///data/refused.jsonl", 2)).await;

    assert_eq!(run.counters().dead_lettered, 2);
    for dl in &run.dead_letters {
        assert_eq!(dl["attempts"], 2);
        assert!(dl["status"].is_null());
        assert!(!dl["error"].as_str().unwrap_or_default().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_back_off_leaves_the_record_for_the_next_lease_instead_of_dead_lettering_it() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let inject = InjectStatus { fraction: 1.0, status: 503, body: "busy".to_owned() };
    let sim = Simulator::start("127.0.0.1:0", SimConfig { inject_status: Some(inject), ..SimConfig::default() })
        .await
        .expect("simulator");
    let retry = RetryConfig { initial: Duration::from_secs(30), max: Duration::from_secs(30), ..quick_retry(5) };
    let config = SendConfig { max_in_flight: 4, retry, ..SendConfig::default() };
    let delivery = sender(&sim.url(), "stop-backoff", config, None, Arc::default());
    let started = std::time::Instant::now();
    let lease = delivery.start(records("file:///data/stop.jsonl", 10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    lease.stop();
    let run = delivery.finish(lease).await;

    assert!(started.elapsed() < Duration::from_secs(10), "the 30 s back-off did not hold up the stop");
    assert!(!run.progress.done);
    assert_eq!(sim.stats().accepted, 0);
    assert_eq!(run.progress.checkpoint, 0, "the first record is still to be sent");
    assert_eq!(run.counters().dead_lettered, 0, "nothing dead-lettered by a stop");
    assert_eq!(run.counters().retried, 0, "only first attempts were made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_answering_429_forever_dead_letters_records_after_max_retry_seconds() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    // Every request answered 429 (Retry-After: 0): a partner that never lets anything through.
    sim.throttle_next(u64::MAX, 0);
    let limit = Duration::from_millis(400);
    let retry = RetryConfig { max_retry: Some(limit), ..quick_retry(2) };
    let config = SendConfig { max_in_flight: 4, retry, ..SendConfig::default() };
    let delivery = sender(&sim.url(), "forever-429", config, None, Arc::default());

    let started = std::time::Instant::now();
    let run = deliver(&delivery, records("file:///data/forever.jsonl", 4)).await;
    let took = started.elapsed();

    let stats = sim.stats();
    assert_eq!((run.counters().sent, run.counters().dead_lettered), (0, 4), "{:?}", run.dead_letters);
    assert!(stats.rejected.rate_limited > 8, "429s do not use up maxAttempts (2): {stats:?}");
    assert!(took >= limit, "records were retried for the whole limit ({took:?})");
    for dl in &run.dead_letters {
        assert_eq!(dl["status"], 429);
        let error = dl["error"].as_str().unwrap_or_default();
        assert!(error.contains("maxRetrySeconds"), "the dead letter says why: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_down_for_a_while_holds_records_past_max_attempts_and_delivers_them_all_after() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // Every request answered 503 for the first 1.5 s (a partner down), then all accepted.
    let window = BurstWindow { every_ms: 3_600_000, duration_ms: 1_500 };
    let sim_config = SimConfig { burst_window: Some(window), ..SimConfig::default() };
    let sim = Simulator::start("127.0.0.1:0", sim_config).await.expect("simulator");
    // The first failures, before ten in a row make an outage, still count: 4 records in flight
    // use up at most 9 of their 4 × 5 attempts before the outage is known.
    let config = SendConfig { max_in_flight: 4, retry: quick_retry(5), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "down", config, None, Arc::default());

    let run = deliver(&delivery, records("file:///data/down.jsonl", 20)).await;

    let stats = sim.stats();
    assert!(stats.rejected.injected_5xx > 40, "far more failures than maxAttempts (5) allows: {stats:?}");
    assert_eq!(run.counters().dead_lettered, 0, "an outage dead-letters nothing: {:?}", run.dead_letters);
    assert_eq!((run.counters().sent, stats.accepted, stats.duplicates), (20, 20, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_down_forever_dead_letters_records_after_max_retry_seconds() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim_config = SimConfig { error_rate: 1.0, error_status: 503, ..SimConfig::default() };
    let sim = Simulator::start("127.0.0.1:0", sim_config).await.expect("simulator");
    let limit = Duration::from_millis(400);
    let retry = RetryConfig { max_retry: Some(limit), ..quick_retry(2) };
    let config = SendConfig { max_in_flight: 4, retry, ..SendConfig::default() };
    let delivery = sender(&sim.url(), "forever-503", config, None, Arc::default());

    let started = std::time::Instant::now();
    let run = deliver(&delivery, records("file:///data/forever503.jsonl", 12)).await;
    let took = started.elapsed();

    let stats = sim.stats();
    assert_eq!((run.counters().sent, run.counters().dead_lettered), (0, 12), "{stats:?}");
    assert!(took >= limit, "the outage held records for the whole limit ({took:?})");
    let held =
        run.dead_letters.iter().filter(|dl| dl["error"].as_str().unwrap_or_default().contains("maxRetrySeconds"));
    assert!(held.count() >= 1, "records held by the outage end by maxRetrySeconds: {:?}", run.dead_letters);
    assert!(run.dead_letters.iter().all(|dl| dl["status"] == 503));
}
