//! An evenly paced sender: the yardstick the cluster tests hold Courier's 429s against. It
//! never bursts — a request goes one interval after the one before, or at once when it is late
//! (a stall of the sender moves its schedule rather than being caught up) — so whatever 429s
//! a strict partner answers it come from requests that left in order and arrived in a clump:
//! the jitter of the machine and the path, not of the sender.

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Sends `rate` POSTs a second to `{base}/records` for `duration` over keep-alive connections,
/// each with its own `idempotency-key` (`{key_prefix}-{i}`); returns the requests sent.
///
/// # Panics
/// When `base` is not a URL.
pub async fn send(base: &str, key_prefix: &str, rate: u32, duration: Duration) -> u64 {
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = format!("{base}/records").parse().unwrap_or_else(|e| panic!("{base}: {e}"));
    let total = u64::from(rate) * duration.as_secs();
    let interval = Duration::from_nanos(1_000_000_000 / u64::from(rate.max(1)));
    let mut at = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        tokio::time::sleep_until(at).await;
        // On time (within half an interval): the schedule holds. Later: it moves.
        at = at.max(tokio::time::Instant::now() - interval / 2) + interval;
        let (client, uri, key) = (client.clone(), uri.clone(), format!("{key_prefix}-{i}"));
        tasks.spawn(async move {
            let Ok(req) = http::Request::post(uri).header("idempotency-key", key).body(Empty::new()) else { return };
            if let Ok(resp) = client.request(req).await {
                let _ = resp.into_body().collect().await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    total
}
