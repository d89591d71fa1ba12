//! Live progress of a local run: one rewritten line on a terminal, a log line every few seconds
//! otherwise.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Shows progress until `stop`.
pub async fn show(metrics: Arc<Metrics>, terminal: bool, stop: CancellationToken) {
    let every = if terminal { Duration::from_millis(250) } else { Duration::from_secs(5) };
    let started = Instant::now();
    let mut last_sent = 0u64;
    let mut last = Instant::now();
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let sent = metrics.records_sent.get();
        let rate = (sent - last_sent) as f64 / last.elapsed().as_secs_f64().max(1e-3);
        last_sent = sent;
        last = Instant::now();
        let read = metrics.records_read.get();
        let failed = metrics.records_failed.get();
        let in_flight = metrics.in_flight.get();
        let elapsed = started.elapsed().as_secs();
        if terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[2K{elapsed:>4}s  read {read}  sent {sent}  failed {failed}  in flight {in_flight}  {rate:.0}/s"
            );
            let _ = err.flush();
        } else {
            tracing::info!(read, sent, failed, in_flight, rate = rate.round(), "progress");
        }
    }
    if terminal {
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
    }
}
