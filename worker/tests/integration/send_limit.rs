//! The limiter as the partner sees it: requests per second in the simulator's per-second
//! series. A behaviour check with a generous bound, not a performance test.

use std::sync::Arc;

use crate::send_support::*;
use courier_e2e::sim::{RateLimit, SimConfig, Simulator};
use courier_worker::limiter::Rate;
use courier_worker::send::SendConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_per_second_reach_the_partner_at_two_hundred_per_second() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // The partner allows 200/s with a burst of 20; we send at 200/s with a burst of 1.
    let sim_config = SimConfig { rate_limit: Some(RateLimit { rate: 200.0, burst: 20 }), ..SimConfig::default() };
    let sim = Simulator::start("127.0.0.1:0", sim_config).await.expect("simulator");
    let config = SendConfig { max_in_flight: 32, retry: quick_retry(3), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "limit", config, Some(Rate::new(200, 1)), Arc::default());

    let started = std::time::Instant::now();
    let run = deliver(&delivery, records("file:///data/limit.jsonl", 600)).await;
    let elapsed = started.elapsed().as_secs_f64();

    assert_eq!(run.counters().sent, 600);
    let stats = sim.stats();
    assert_eq!(stats.rejected.rate_limited, 0, "never faster than the partner allows");
    assert!(elapsed >= 2.9, "600 requests at 200/s cannot finish before 3 s, took {elapsed:.2} s");
    assert!(elapsed < 8.0, "and should not take much longer, took {elapsed:.2} s");
    let busy: Vec<u64> = stats.series.accepted.iter().copied().filter(|&n| n > 0).collect();
    assert!(busy.iter().all(|&n| n <= 205), "no second above the rate: {busy:?}");
    // Seconds fully inside the run are close to the rate.
    if busy.len() >= 3 {
        for &n in &busy[1..busy.len() - 1] {
            assert!(n >= 180, "a full second carried {n} requests: {busy:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_change_applies_to_a_running_delivery() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    let config = SendConfig { max_in_flight: 8, ..SendConfig::default() };
    let delivery = sender(&sim.url(), "rechange", config, Some(Rate::new(10, 1)), Arc::default());
    let limiter = delivery.limiter().clone();
    let raise = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        limiter.set_rate(Some(Rate::new(1000, 10)));
    });
    let started = std::time::Instant::now();
    let run = deliver(&delivery, records("file:///data/rechange.jsonl", 505)).await;
    raise.await.expect("raise");
    // At 10/s the whole run would take 50 s; after the raise it takes about half a second more.
    assert_eq!(run.counters().sent, 505);
    assert!(started.elapsed().as_secs_f64() < 5.0, "took {:?}", started.elapsed());
}
