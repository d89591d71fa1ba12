//! Per-key token buckets and daily quotas, exact to the nanosecond so a client's
//! pacing can be judged at the percent level.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::config::RateLimit;

const SHARDS: usize = 16;
const DAY_SECS: u64 = 86_400;

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; the RateLimit headers to report (when a bucket is configured).
    Allowed(Option<Headers>),
    /// The bucket is empty.
    RateLimited(Headers),
    /// The key's daily quota is used up; retry at the next UTC midnight.
    QuotaExhausted {
        /// The daily quota.
        quota: u64,
        /// Seconds to the day boundary.
        retry_after: u64,
    },
}

/// Values of the `RateLimit-*` and `Retry-After` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers {
    /// `RateLimit-Limit`: the bucket size.
    pub limit: u32,
    /// `RateLimit-Remaining`: whole tokens left after this request.
    pub remaining: u32,
    /// `RateLimit-Reset`: seconds until the bucket is full again.
    pub reset: u64,
    /// `Retry-After`: seconds until the next token (only meaningful when limited).
    pub retry_after: u64,
}

#[derive(Debug)]
struct KeyState {
    tokens: f64,
    last: Instant,
    day: u64,
    used_today: u64,
}

/// Buckets for every key seen since the last reset.
#[derive(Debug)]
pub struct Limiter {
    rate_limit: Option<RateLimit>,
    daily_quota: Option<u64>,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<Box<str>, KeyState>>>,
}

impl Limiter {
    /// A limiter with full buckets.
    pub fn new(rate_limit: Option<RateLimit>, daily_quota: Option<u64>) -> Self {
        Self {
            rate_limit,
            daily_quota,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Whether any limit is configured at all (lets the hot path skip key extraction).
    pub fn is_active(&self) -> bool {
        self.rate_limit.is_some() || self.daily_quota.is_some()
    }

    /// Decides one request for `key`, taking a token and a quota unit if allowed.
    pub fn check(&self, key: &str) -> Decision {
        if !self.is_active() {
            return Decision::Allowed(None);
        }
        let now = Instant::now();
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let today = unix / DAY_SECS;
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut keys = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = match keys.get_mut(key) {
            Some(state) => state,
            None => keys.entry(key.into()).or_insert(KeyState {
                tokens: self.rate_limit.map_or(0.0, |l| f64::from(l.burst)),
                last: now,
                day: today,
                used_today: 0,
            }),
        };
        if state.day != today {
            state.day = today;
            state.used_today = 0;
        }
        if let Some(limit) = self.rate_limit {
            let burst = f64::from(limit.burst);
            state.tokens = (state.tokens + now.duration_since(state.last).as_secs_f64() * limit.rate).min(burst);
            state.last = now;
        }
        if let Some(quota) = self.daily_quota
            && state.used_today >= quota
        {
            return Decision::QuotaExhausted { quota, retry_after: ((today + 1) * DAY_SECS - unix).max(1) };
        }
        state.used_today += 1;
        let Some(limit) = self.rate_limit else {
            return Decision::Allowed(None);
        };
        let allowed = state.tokens >= 1.0;
        if allowed {
            state.tokens -= 1.0;
        } else {
            state.used_today -= 1;
        }
        let headers = Headers {
            limit: limit.burst,
            remaining: state.tokens.floor() as u32,
            reset: ceil_secs((f64::from(limit.burst) - state.tokens) / limit.rate),
            retry_after: ceil_secs((1.0 - state.tokens) / limit.rate).max(1),
        };
        if allowed { Decision::Allowed(Some(headers)) } else { Decision::RateLimited(headers) }
    }
}

fn ceil_secs(secs: f64) -> u64 {
    if secs <= 0.0 { 0 } else { secs.ceil() as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_exactly_the_burst_then_limits() {
        let limiter = Limiter::new(Some(RateLimit { rate: 1.0, burst: 3 }), None);
        let decisions: Vec<Decision> = (0..5).map(|_| limiter.check("k")).collect();
        assert!(decisions[..3].iter().all(|d| matches!(d, Decision::Allowed(Some(_)))));
        assert!(matches!(decisions[3], Decision::RateLimited(Headers { remaining: 0, retry_after: 1, .. })));
    }

    #[test]
    fn keys_have_separate_buckets() {
        let limiter = Limiter::new(Some(RateLimit { rate: 1.0, burst: 1 }), None);
        assert!(matches!(limiter.check("a"), Decision::Allowed(_)));
        assert!(matches!(limiter.check("b"), Decision::Allowed(_)));
        assert!(matches!(limiter.check("a"), Decision::RateLimited(_)));
    }

    #[test]
    fn an_exhausted_daily_quota_says_to_come_back_tomorrow() {
        let limiter = Limiter::new(None, Some(2));
        assert!(matches!(limiter.check("k"), Decision::Allowed(None)));
        assert!(matches!(limiter.check("k"), Decision::Allowed(None)));
        match limiter.check("k") {
            Decision::QuotaExhausted { quota, retry_after } => {
                assert_eq!(quota, 2);
                assert!((1..=DAY_SECS).contains(&retry_after));
            }
            other => panic!("expected quota exhaustion, got {other:?}"),
        }
    }

    #[test]
    fn a_rate_limited_request_does_not_use_quota() {
        let limiter = Limiter::new(Some(RateLimit { rate: 1000.0, burst: 1 }), Some(2));
        assert!(matches!(limiter.check("k"), Decision::Allowed(_)));
        assert!(matches!(limiter.check("k"), Decision::RateLimited(_)));
        std::thread::sleep(std::time::Duration::from_millis(3));
        assert!(matches!(limiter.check("k"), Decision::Allowed(_)));
        std::thread::sleep(std::time::Duration::from_millis(3));
        assert!(matches!(limiter.check("k"), Decision::QuotaExhausted { .. }));
    }
}
