//! The instant every partner request arrived and how it was answered, so a test can judge the
//! rate the partner saw at any scale: the busiest sliding second, 100 ms bins, stalls.
//!
//! Kept in memory up to [`MAX_ARRIVALS`] (16 bytes each); later ones are counted but not kept.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::stats::Outcome;

/// Most arrivals kept (about 64 MiB).
pub const MAX_ARRIVALS: usize = 4 << 20;

/// One partner request as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// Unix time of arrival in microseconds.
    pub at_unix_micros: u64,
    /// Answered 2xx.
    pub accepted: bool,
    /// Refused with 429 by the partner's limiter or quota.
    pub rate_limited: bool,
    /// The client's address (which worker sent it).
    pub peer: Option<std::net::IpAddr>,
}

/// The log.
#[derive(Debug, Default)]
pub struct Arrivals {
    kept: Mutex<Vec<Arrival>>,
    dropped: AtomicU64,
}

impl Arrivals {
    /// Records one request that arrived at `at` and ended with `outcome`.
    pub fn record(&self, at: SystemTime, outcome: Outcome, peer: Option<std::net::IpAddr>) {
        let at_unix_micros = u64::try_from(at.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros()).unwrap_or(0);
        let arrival = Arrival {
            at_unix_micros,
            accepted: outcome == Outcome::Accepted,
            rate_limited: matches!(outcome, Outcome::RateLimited | Outcome::Quota),
            peer,
        };
        let mut kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() < MAX_ARRIVALS {
            kept.push(arrival);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every arrival kept, in arrival order.
    pub fn snapshot(&self) -> Vec<Arrival> {
        let mut all = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        // Answers are recorded as they end, which reorders requests of different latency.
        all.sort_by_key(|a| a.at_unix_micros);
        all
    }

    /// Arrivals not kept because the log was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        self.dropped.store(0, Ordering::Relaxed);
    }
}

/// The most instants (microseconds, sorted) that fall in any window of `window` length,
/// closed on the left and open on the right.
pub fn busiest_window(sorted_micros: &[u64], window: Duration) -> usize {
    let width = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
    let mut best = 0;
    let mut first = 0;
    for (last, &t) in sorted_micros.iter().enumerate() {
        while t.saturating_sub(sorted_micros[first]) >= width {
            first += 1;
        }
        best = best.max(last + 1 - first);
    }
    best
}

/// Counts of instants (microseconds, sorted) per bin of `bin` length from `start`.
pub fn bins(sorted_micros: &[u64], start_micros: u64, bin: Duration) -> Vec<u64> {
    let width = u64::try_from(bin.as_micros()).unwrap_or(u64::MAX).max(1);
    let mut out: Vec<u64> = Vec::new();
    for &t in sorted_micros {
        let Some(offset) = t.checked_sub(start_micros) else { continue };
        let i = usize::try_from(offset / width).unwrap_or(usize::MAX);
        if i >= out.len() {
            out.resize(i + 1, 0);
        }
        out[i] += 1;
    }
    out
}

/// The longest gap between consecutive instants (microseconds, sorted).
pub fn longest_gap(sorted_micros: &[u64]) -> Duration {
    let gap = sorted_micros.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    Duration::from_micros(gap)
}

/// A run of 429s close together, with who was sending around it: the way to tell a clump of
/// one sender from two senders whose shares overlapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionCluster {
    /// Unix microseconds of the first and last 429 of the run.
    pub first_micros: u64,
    pub last_micros: u64,
    pub rejected: usize,
    /// Requests per sender from `lookback` before the first 429 to the last, busiest first.
    pub senders: Vec<(Option<std::net::IpAddr>, usize)>,
}

/// Groups the 429s of `arrivals` (in arrival order) into runs whose neighbours are less than
/// `gap` apart, and counts each sender's requests from `lookback` before each run to its end.
pub fn rejection_clusters(arrivals: &[Arrival], gap: Duration, lookback: Duration) -> Vec<RejectionCluster> {
    let gap = u64::try_from(gap.as_micros()).unwrap_or(u64::MAX);
    let lookback = u64::try_from(lookback.as_micros()).unwrap_or(u64::MAX);
    let mut runs: Vec<(u64, u64, usize)> = Vec::new();
    for a in arrivals.iter().filter(|a| a.rate_limited) {
        match runs.last_mut() {
            Some((_, last, n)) if a.at_unix_micros.saturating_sub(*last) < gap => {
                *last = a.at_unix_micros;
                *n += 1;
            }
            _ => runs.push((a.at_unix_micros, a.at_unix_micros, 1)),
        }
    }
    runs.into_iter()
        .map(|(first, last, rejected)| {
            let from = first.saturating_sub(lookback);
            let mut senders: Vec<(Option<std::net::IpAddr>, usize)> = Vec::new();
            for a in arrivals.iter().filter(|a| (from..=last).contains(&a.at_unix_micros)) {
                match senders.iter_mut().find(|(p, _)| *p == a.peer) {
                    Some((_, n)) => *n += 1,
                    None => senders.push((a.peer, 1)),
                }
            }
            senders.sort_by_key(|s| std::cmp::Reverse(s.1));
            RejectionCluster { first_micros: first, last_micros: last, rejected, senders }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_window_counts_instants_within_its_width() {
        let s = Duration::from_secs(1);
        type Case = (&'static [u64], Duration, usize);
        let cases: &[Case] = &[
            (&[], s, 0),
            (&[5], s, 1),
            (&[0, 999_999], s, 2),
            (&[0, 1_000_000], s, 1),
            (&[0, 400_000, 800_000, 1_200_000, 1_600_000], s, 3),
            (&[0, 10, 20, 30, 2_000_000, 2_000_001], Duration::from_micros(15), 2),
        ];
        for (times, window, want) in cases {
            assert_eq!(busiest_window(times, *window), *want, "{times:?} in {window:?}");
        }
    }

    #[test]
    fn bins_count_from_the_start_and_skip_earlier_instants() {
        let bin = Duration::from_millis(100);
        assert_eq!(bins(&[5, 100_000, 150_000, 350_000], 0, bin), vec![1, 2, 0, 1]);
        assert_eq!(bins(&[5, 100_000, 150_000], 100_000, bin), vec![2]);
        assert!(bins(&[], 0, bin).is_empty());
    }

    #[test]
    fn rejections_are_grouped_into_runs_with_the_senders_around_them() {
        let a = |ms: u64, limited: bool, peer: u8| Arrival {
            at_unix_micros: ms * 1_000,
            accepted: !limited,
            rate_limited: limited,
            peer: Some(std::net::IpAddr::from([10, 0, 0, peer])),
        };
        let log = [
            a(0, false, 1),
            a(90, false, 2),
            a(95, false, 2),
            a(100, true, 2),
            a(150, true, 1),
            a(900, false, 1),
            a(1_000, true, 1),
        ];
        let got = rejection_clusters(&log, Duration::from_millis(100), Duration::from_millis(50));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].first_micros, got[0].last_micros, got[0].rejected), (100_000, 150_000, 2));
        let ip = |n: u8| Some(std::net::IpAddr::from([10, 0, 0, n]));
        assert_eq!(got[0].senders, vec![(ip(2), 3), (ip(1), 1)], "from 50 ms to 150 ms");
        assert_eq!(got[1].senders, vec![(ip(1), 1)]);
        assert!(rejection_clusters(&log[..3], Duration::from_millis(100), Duration::ZERO).is_empty());
    }

    #[test]
    fn the_longest_gap_is_between_neighbours() {
        assert_eq!(longest_gap(&[0, 10, 500, 510]), Duration::from_micros(490));
        assert_eq!(longest_gap(&[7]), Duration::ZERO);
    }

    #[test]
    fn arrivals_are_returned_in_arrival_order_and_the_log_is_bounded() {
        let log = Arrivals::default();
        let t = UNIX_EPOCH + Duration::from_secs(100);
        log.record(t + Duration::from_millis(5), Outcome::Accepted, None);
        log.record(t, Outcome::RateLimited, None);
        let got = log.snapshot();
        assert_eq!(got.len(), 2);
        assert!(got[0].rate_limited && !got[0].accepted);
        assert!(got[1].accepted);
        assert_eq!(got[1].at_unix_micros - got[0].at_unix_micros, 5_000);
        log.clear();
        assert!(log.snapshot().is_empty());
        assert_eq!(log.dropped(), 0);
    }
}
