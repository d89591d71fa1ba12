//! The simulator's shared state: the configuration in force (swapped whole on
//! change) and the counters, ledger and tokens that outlive configurations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, StatusCode};

use super::arrivals::Arrivals;
use super::auth::{AuthCheck, TokenStore};
use super::config::{LimitKey, SimConfig};
use super::ledger::Ledger;
use super::limiter::Limiter;
use super::random::Random;
use super::stats::{Outcome, Stats, StatsSnapshot};

/// A configuration that was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value out of range.
    #[error("invalid simulator config: {0}")]
    Invalid(String),
    /// Credentials that cannot be sent in a header.
    #[error(transparent)]
    Credentials(#[from] super::auth::BadCredentials),
}

/// A configuration together with everything derived from it.
#[derive(Debug)]
pub struct Active {
    /// The configuration as given.
    pub config: SimConfig,
    /// Buckets, fresh for this configuration.
    pub limiter: Limiter,
    /// Random decisions, seeded from the configuration.
    pub random: Random,
    /// Prepared credential check.
    pub auth: AuthCheck,
    /// Ledger header.
    pub idempotency: HeaderName,
    /// Header naming the rate-limit key, if keyed by header.
    pub limit_header: Option<HeaderName>,
    /// Start of the burst-window schedule.
    pub epoch: Instant,
    /// Status for injected server errors.
    pub error_status: StatusCode,
    /// Status, body and fraction of injected specific answers.
    pub inject: Option<(StatusCode, Bytes, f64)>,
}

impl Active {
    fn new(config: SimConfig) -> Result<Self, ConfigError> {
        config.validate().map_err(ConfigError::Invalid)?;
        let header = |name: &str| HeaderName::try_from(name).map_err(|e| ConfigError::Invalid(e.to_string()));
        let status = |code: u16| StatusCode::from_u16(code).map_err(|e| ConfigError::Invalid(e.to_string()));
        Ok(Self {
            limiter: Limiter::new(config.rate_limit, config.daily_quota),
            random: Random::new(config.seed),
            auth: AuthCheck::new(&config.auth)?,
            idempotency: header(&config.idempotency_header)?,
            limit_header: match &config.limit_key {
                LimitKey::Header { name } => Some(header(name)?),
                LimitKey::Global | LimitKey::Path => None,
            },
            epoch: Instant::now(),
            error_status: status(config.error_status)?,
            inject: match &config.inject_status {
                Some(inject) => {
                    Some((status(inject.status)?, Bytes::from(inject.body.clone().into_bytes()), inject.fraction))
                }
                None => None,
            },
            config,
        })
    }

    /// The rate-limit key of a request.
    pub fn limit_key<'a>(&self, parts: &'a Parts) -> &'a str {
        match (&self.config.limit_key, &self.limit_header) {
            (LimitKey::Path, _) => parts.uri.path(),
            (LimitKey::Header { .. }, Some(name)) => {
                parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
            }
            _ => "",
        }
    }

    /// Whether now falls in a periodic error window.
    pub fn in_burst_window(&self) -> bool {
        self.config.burst_window.is_some_and(|window| {
            let elapsed = self.epoch.elapsed().as_millis();
            elapsed % u128::from(window.every_ms) < u128::from(window.duration_ms)
        })
    }

    /// Pause before each chunk of a slow body.
    pub fn slow_body(&self) -> Option<(u32, Duration)> {
        self.config.slow_body.map(|slow| (slow.chunks, Duration::from_millis(slow.chunk_delay_ms)))
    }
}

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    active: RwLock<Arc<Active>>,
    /// Outcome counters.
    pub stats: Stats,
    /// When each partner request arrived.
    pub arrivals: Arrivals,
    /// Accepted idempotency keys.
    pub ledger: Ledger,
    /// Issued OAuth2 tokens.
    pub tokens: TokenStore,
    /// Requests still to be throttled by [`Shared::throttle_next`].
    throttle_left: AtomicU64,
    /// The Retry-After (seconds) those requests get.
    throttle_retry_after: AtomicU64,
}

impl Shared {
    /// State starting with `config`.
    pub fn new(config: SimConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            active: RwLock::new(Arc::new(Active::new(config)?)),
            stats: Stats::default(),
            arrivals: Arrivals::default(),
            ledger: Ledger::default(),
            tokens: TokenStore::default(),
            throttle_left: AtomicU64::new(0),
            throttle_retry_after: AtomicU64::new(1),
        })
    }

    /// Answers the next `count` partner requests with 429 and `Retry-After: retry_after_secs`,
    /// whatever the limiter says (a partner pushing back once, on whichever client comes next).
    pub fn throttle_next(&self, count: u64, retry_after_secs: u64) {
        self.throttle_retry_after.store(retry_after_secs, Ordering::Release);
        self.throttle_left.store(count, Ordering::Release);
    }

    /// Takes one request off the [`Shared::throttle_next`] budget: its Retry-After, if throttled.
    pub fn take_throttle(&self) -> Option<u64> {
        self.throttle_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(1))
            .ok()
            .map(|_| self.throttle_retry_after.load(Ordering::Acquire))
    }

    /// Counts one partner request that arrived at `arrived` and ended with `outcome`.
    pub fn count(&self, outcome: Outcome, arrived: std::time::SystemTime) {
        self.stats.count(outcome);
        self.arrivals.record(arrived, outcome);
    }

    /// The configuration in force.
    pub fn active(&self) -> Arc<Active> {
        Arc::clone(&self.active.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Puts `config` in force for every following request, with fresh buckets.
    pub fn apply(&self, config: SimConfig) -> Result<(), ConfigError> {
        let active = Arc::new(Active::new(config)?);
        *self.active.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = active;
        Ok(())
    }

    /// Clears counters and ledger and restarts the configuration in force
    /// (full buckets, burst schedule and seeded randomness from the start).
    pub fn reset(&self) {
        self.throttle_left.store(0, Ordering::Release);
        self.stats.clear();
        self.arrivals.clear();
        self.ledger.clear();
        let config = self.active().config.clone();
        if let Err(error) = self.apply(config) {
            tracing::warn!(%error, "re-applying the config in force failed");
        }
    }

    /// The `/stats` document.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.stats.snapshot(self.ledger.unique(), self.ledger.duplicates(), &self.active().config)
    }
}
