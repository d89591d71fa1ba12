use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::{Duration, Instant};

use super::*;

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn sequential_acquires_are_admitted_exactly_on_the_interval() {
    let limiter = Limiter::new(200, 1);
    let start = Instant::now();
    for k in 0..400u32 {
        limiter.acquire(0).await;
        assert_eq!(start.elapsed(), 5 * MS * k, "request {k}");
    }
}

#[tokio::test(start_paused = true)]
async fn fifty_thousand_per_second_from_many_tasks_admits_the_rate_within_a_millisecond_of_slack() {
    let limiter = Arc::new(Limiter::new(50_000, 1));
    let admitted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (limiter, admitted) = (limiter.clone(), admitted.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = limiter.acquire(0) => {}
                    () = tokio::time::sleep_until(deadline) => return,
                }
                if Instant::now() >= deadline {
                    return;
                }
                admitted.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let n = admitted.load(Ordering::Relaxed);
    assert!((49_900..=50_000).contains(&n), "admitted {n} in one second at 50k/s");
}

#[tokio::test(start_paused = true)]
async fn a_raised_rate_wakes_a_waiter_at_once() {
    let limiter = Arc::new(Limiter::new(1, 1));
    limiter.acquire(0).await;
    let start = Instant::now();
    let raiser = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            tokio::time::sleep(100 * MS).await;
            limiter.set_rate(Some(Rate::new(1000, 1)));
        })
    };
    limiter.acquire(0).await;
    raiser.await.expect("raiser");
    // The old debt of one second is rescaled to 1 ms at the moment of the change.
    assert!(start.elapsed() <= 102 * MS, "waited {:?}", start.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_back_a_waiter_until_the_instant() {
    let limiter = Arc::new(Limiter::new(10, 1));
    limiter.acquire(0).await;
    let until = Instant::now() + Duration::from_secs(3);
    limiter.pause_until(until);
    limiter.acquire(0).await;
    assert!(Instant::now() >= until);
    assert_eq!(limiter.snapshot().paused_until, None);
}

#[tokio::test(start_paused = true)]
async fn a_zero_rate_blocks_until_a_share_is_granted() {
    let limiter = Arc::new(Limiter::new(0, 1));
    let granter = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            limiter.set_rate(Some(Rate::new(10, 1)));
        })
    };
    let start = Instant::now();
    limiter.acquire(0).await;
    granter.await.expect("granter");
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_acquire_charges_nothing_and_leaves_the_queue() {
    let limiter = Limiter::new(1, 1);
    limiter.acquire(0).await;
    let timed_out = tokio::time::timeout(100 * MS, limiter.acquire(0)).await;
    assert!(timed_out.is_err());
    assert_eq!(limiter.snapshot().waiting, 0);
    let start = Instant::now();
    limiter.acquire(0).await;
    assert_eq!(start.elapsed(), 900 * MS);
}

#[tokio::test(start_paused = true)]
async fn one_caller_after_another_keeps_fifty_thousand_per_second_despite_millisecond_timers() {
    let limiter = Limiter::new(50_000, 1);
    let start = Instant::now();
    for _ in 0..50_000 {
        limiter.acquire(0).await;
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(999) && took <= Duration::from_millis(1002), "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lapsed_share_holds_waiters_until_it_is_renewed() {
    let limiter = Arc::new(Limiter::new(1000, 1));
    limiter.set_valid_until(Some(Instant::now() + 50 * MS));
    limiter.acquire(0).await;
    tokio::time::sleep(60 * MS).await;
    let start = Instant::now();
    let renewer = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            tokio::time::sleep(500 * MS).await;
            limiter.set_valid_until(Some(Instant::now() + Duration::from_secs(10)));
        })
    };
    limiter.acquire(0).await;
    assert_eq!(start.elapsed(), 500 * MS, "admitted only once renewed");
    renewer.await.expect("renewer");
}
