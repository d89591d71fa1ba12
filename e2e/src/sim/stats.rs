//! Counters of what the simulator answered, with a per-second series of the
//! last few minutes kept in a lock-free ring.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::config::{Latency, SimConfig};

/// Length of the per-second series.
pub const SERIES_SECS: u64 = 300;

/// Why a partner request did not get a 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 2xx.
    Accepted,
    /// 429 from the token bucket.
    RateLimited,
    /// 429 from the daily quota.
    Quota,
    /// Injected server error (probability or burst window).
    Injected5xx,
    /// Injected specific status.
    InjectedStatus,
    /// 401.
    Unauthorized,
    /// Never answered.
    Blackholed,
    /// Connection closed without an answer.
    Reset,
}

/// Live counters.
#[derive(Debug)]
pub struct Stats {
    counters: [AtomicU64; 8],
    connections: AtomicU64,
    http2_requests: AtomicU64,
    accepted_series: Series,
    limited_series: Series,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            connections: AtomicU64::new(0),
            http2_requests: AtomicU64::new(0),
            accepted_series: Series::default(),
            limited_series: Series::default(),
        }
    }
}

impl Stats {
    /// Counts one outcome.
    pub fn count(&self, outcome: Outcome) {
        self.counters[outcome as usize].fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Accepted => self.accepted_series.bump(unix_secs()),
            Outcome::RateLimited | Outcome::Quota => self.limited_series.bump(unix_secs()),
            _ => {}
        }
    }

    /// Counts one accepted connection.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one partner request that came over HTTP/2.
    pub fn http2_request(&self) {
        self.http2_requests.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self, outcome: Outcome) -> u64 {
        self.counters[outcome as usize].load(Ordering::Relaxed)
    }

    /// Zeroes every counter and the series.
    pub fn clear(&self) {
        for counter in self.counters.iter().chain([&self.connections, &self.http2_requests]) {
            counter.store(0, Ordering::Relaxed);
        }
        self.accepted_series.clear();
        self.limited_series.clear();
    }

    /// A consistent-enough copy for `/stats`.
    pub fn snapshot(&self, unique_keys: u64, duplicates: u64, config: &SimConfig) -> StatsSnapshot {
        let now = unix_secs();
        StatsSnapshot {
            accepted: self.get(Outcome::Accepted),
            rejected: Rejected {
                rate_limited: self.get(Outcome::RateLimited),
                quota: self.get(Outcome::Quota),
                injected_5xx: self.get(Outcome::Injected5xx),
                injected_status: self.get(Outcome::InjectedStatus),
                unauthorized: self.get(Outcome::Unauthorized),
                blackholed: self.get(Outcome::Blackholed),
                reset: self.get(Outcome::Reset),
            },
            unique_keys,
            duplicates,
            connections: self.connections.load(Ordering::Relaxed),
            http2_requests: self.http2_requests.load(Ordering::Relaxed),
            series: PerSecond {
                start_unix_secs: now + 1 - SERIES_SECS,
                accepted: self.accepted_series.last(now),
                too_many_requests: self.limited_series.last(now),
            },
            latency: config.latency,
            config: config.clone(),
        }
    }
}

/// The `/stats` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Partner requests answered 2xx.
    pub accepted: u64,
    /// Partner requests not answered 2xx, by reason.
    pub rejected: Rejected,
    /// Distinct idempotency keys accepted.
    pub unique_keys: u64,
    /// Acceptances of an already accepted key.
    pub duplicates: u64,
    /// TCP connections accepted (partner and control traffic alike).
    #[serde(default)]
    pub connections: u64,
    /// Partner requests that came over HTTP/2.
    #[serde(default)]
    pub http2_requests: u64,
    /// Per-second counts of the last [`SERIES_SECS`] seconds, oldest first.
    pub series: PerSecond,
    /// The latency distribution in force.
    pub latency: Latency,
    /// The whole configuration in force.
    pub config: SimConfig,
}

/// Rejections by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rejected {
    /// 429 from the token bucket.
    pub rate_limited: u64,
    /// 429 from the daily quota.
    pub quota: u64,
    /// Injected 5xx (probability or burst window).
    pub injected_5xx: u64,
    /// Injected specific status.
    pub injected_status: u64,
    /// 401.
    pub unauthorized: u64,
    /// Accepted and never answered.
    pub blackholed: u64,
    /// Closed without an answer.
    pub reset: u64,
}

/// Per-second series; element `i` covers second `start_unix_secs + i`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerSecond {
    /// Unix second of the first element.
    pub start_unix_secs: u64,
    /// 2xx answers per second.
    pub accepted: Vec<u64>,
    /// 429 answers (rate limit and quota) per second.
    pub too_many_requests: Vec<u64>,
}

/// A ring of per-second counters; each slot packs (second mod 2^32) in the high
/// half and the count in the low half, so rolling over to a new second and
/// counting are one compare-and-swap.
#[derive(Debug)]
struct Series {
    slots: Vec<AtomicU64>,
}

impl Default for Series {
    fn default() -> Self {
        Self { slots: (0..SERIES_SECS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl Series {
    fn bump(&self, second: u64) {
        let slot = &self.slots[(second % SERIES_SECS) as usize];
        let tag = second & 0xffff_ffff;
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let next = if current >> 32 == tag { current + 1 } else { (tag << 32) | 1 };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn last(&self, now: u64) -> Vec<u64> {
        (now + 1 - SERIES_SECS..=now)
            .map(|second| {
                let value = self.slots[(second % SERIES_SECS) as usize].load(Ordering::Relaxed);
                if value >> 32 == second & 0xffff_ffff { value & 0xffff_ffff } else { 0 }
            })
            .collect()
    }

    fn clear(&self) {
        for slot in &self.slots {
            slot.store(0, Ordering::Relaxed);
        }
    }
}

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_counts_per_second_and_forgets_old_laps_of_the_ring() {
        let series = Series::default();
        series.bump(1000);
        series.bump(1000);
        series.bump(1001);
        let last = series.last(1001);
        assert_eq!(&last[last.len() - 2..], &[2, 1]);
        series.bump(1000 + SERIES_SECS);
        assert_eq!(series.last(1000 + SERIES_SECS).last(), Some(&1));
    }

    #[test]
    fn outcomes_land_in_their_own_counters() {
        let stats = Stats::default();
        stats.count(Outcome::Accepted);
        stats.count(Outcome::RateLimited);
        stats.count(Outcome::RateLimited);
        let snapshot = stats.snapshot(1, 0, &SimConfig::default());
        assert_eq!((snapshot.accepted, snapshot.rejected.rate_limited), (1, 2));
        assert_eq!(snapshot.series.too_many_requests.iter().sum::<u64>(), 2);
    }
}
