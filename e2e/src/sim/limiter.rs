//! Per-key token buckets and daily quotas, exact to the nanosecond so a client's
//! pacing can be judged at the percent level.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::bucket::ArrivalBucket;
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
    bucket: Option<ArrivalBucket>,
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

    /// Decides one request for `key` that arrived at `now`, taking a token and a quota unit if
    /// allowed. Requests come over several connections and may be judged out of arrival
    /// order; the bucket places each at its own instant (see [`ArrivalBucket`]).
    pub fn check(&self, key: &str, now: SystemTime) -> Decision {
        if !self.is_active() {
            return Decision::Allowed(None);
        }
        let unix = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let today = unix / DAY_SECS;
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut keys = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = match keys.get_mut(key) {
            Some(state) => state,
            None => keys.entry(key.into()).or_insert(KeyState {
                bucket: self.rate_limit.map(|l| ArrivalBucket::new(l.rate, l.burst, now)),
                day: today,
                used_today: 0,
            }),
        };
        if state.day != today {
            state.day = today;
            state.used_today = 0;
        }
        if let Some(quota) = self.daily_quota
            && state.used_today >= quota
        {
            return Decision::QuotaExhausted { quota, retry_after: ((today + 1) * DAY_SECS - unix).max(1) };
        }
        state.used_today += 1;
        let (Some(limit), Some(bucket)) = (self.rate_limit, state.bucket.as_mut()) else {
            return Decision::Allowed(None);
        };
        let (allowed, tokens) = bucket.take(now);
        if !allowed {
            state.used_today -= 1;
        }
        let headers = Headers {
            limit: limit.burst,
            remaining: tokens.max(0.0).floor() as u32,
            reset: ceil_secs((f64::from(limit.burst) - tokens) / limit.rate),
            retry_after: ceil_secs((1.0 - tokens) / limit.rate).max(1),
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
    use std::time::Duration;

    fn at(millis: u64) -> SystemTime {
        // A fixed day, far from midnight, so the quota's day does not change in a test.
        UNIX_EPOCH + Duration::from_secs(20_000 * DAY_SECS + 3_600) + Duration::from_millis(millis)
    }

    #[test]
    fn a_full_bucket_allows_exactly_the_burst_then_limits() {
        let limiter = Limiter::new(Some(RateLimit { rate: 1.0, burst: 3 }), None);
        let decisions: Vec<Decision> = (0..5).map(|_| limiter.check("k", at(0))).collect();
        assert!(decisions[..3].iter().all(|d| matches!(d, Decision::Allowed(Some(_)))));
        assert!(matches!(decisions[3], Decision::RateLimited(Headers { remaining: 0, retry_after: 1, .. })));
    }

    #[test]
    fn keys_have_separate_buckets() {
        let limiter = Limiter::new(Some(RateLimit { rate: 1.0, burst: 1 }), None);
        assert!(matches!(limiter.check("a", at(0)), Decision::Allowed(_)));
        assert!(matches!(limiter.check("b", at(0)), Decision::Allowed(_)));
        assert!(matches!(limiter.check("a", at(0)), Decision::RateLimited(_)));
    }

    #[test]
    fn requests_are_judged_by_when_they_arrived_not_when_they_were_read() {
        // 10/s, no burst beyond one: one request every 100 ms is the limit exactly.
        let limiter = Limiter::new(Some(RateLimit { rate: 10.0, burst: 1 }), None);
        for millis in [0, 100, 200, 300] {
            assert!(matches!(limiter.check("k", at(millis)), Decision::Allowed(_)), "at {millis} ms");
        }
        assert!(matches!(limiter.check("k", at(350)), Decision::RateLimited(_)), "50 ms after the last");
        assert!(matches!(limiter.check("k", at(400)), Decision::Allowed(_)));
    }

    #[test]
    fn an_arrival_judged_after_a_later_one_is_placed_at_its_own_instant() {
        let limiter = Limiter::new(Some(RateLimit { rate: 10.0, burst: 1 }), None);
        assert!(matches!(limiter.check("k", at(100)), Decision::Allowed(_)));
        // Arrived 100 ms earlier over another connection, read after: it fit then.
        assert!(matches!(limiter.check("k", at(0)), Decision::Allowed(_)));
        // Arrived 50 ms after the first: it did not.
        assert!(matches!(limiter.check("k", at(150)), Decision::RateLimited(_)));
        assert!(matches!(limiter.check("k", at(200)), Decision::Allowed(_)));
    }

    #[test]
    fn an_exhausted_daily_quota_says_to_come_back_tomorrow() {
        let limiter = Limiter::new(None, Some(2));
        assert!(matches!(limiter.check("k", at(0)), Decision::Allowed(None)));
        assert!(matches!(limiter.check("k", at(0)), Decision::Allowed(None)));
        match limiter.check("k", at(0)) {
            Decision::QuotaExhausted { quota, retry_after } => {
                assert_eq!(quota, 2);
                assert_eq!(retry_after, DAY_SECS - 3_600);
            }
            other => panic!("expected quota exhaustion, got {other:?}"),
        }
        assert!(
            matches!(limiter.check("k", at(0) + Duration::from_secs(DAY_SECS)), Decision::Allowed(None)),
            "a new day"
        );
    }

    #[test]
    fn a_rate_limited_request_does_not_use_quota() {
        let limiter = Limiter::new(Some(RateLimit { rate: 1000.0, burst: 1 }), Some(2));
        assert!(matches!(limiter.check("k", at(0)), Decision::Allowed(_)));
        assert!(matches!(limiter.check("k", at(0)), Decision::RateLimited(_)));
        assert!(matches!(limiter.check("k", at(3)), Decision::Allowed(_)));
        assert!(matches!(limiter.check("k", at(6)), Decision::QuotaExhausted { .. }));
    }
}
