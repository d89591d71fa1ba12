//! What a response or a transport error means for a record: success, retry (perhaps not before
//! an instant the partner named), or give up. Also the back-off between attempts.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use rand::Rng;

/// One entry of `retryPolicy.retryOn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// One status code, e.g. `429`.
    Status(u16),
    /// A class of status codes, e.g. `5xx` (the hundreds digit).
    Class(u16),
    /// Failures of the connection: refused or unreachable, TLS failures, reset or closed while
    /// writing or reading, a malformed answer.
    Connect,
    /// The per-request timeout elapsed.
    Timeout,
}

/// An entry of `retryOn` that is not a code, a class, `connect` or `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retryOn entry {0:?}: expected a status code (429), a class (5xx), \"connect\" or \"timeout\"")]
pub struct InvalidRetryOn(pub String);

impl std::str::FromStr for RetryOn {
    type Err = InvalidRetryOn;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let invalid = || InvalidRetryOn(s.to_owned());
        match t.as_str() {
            "connect" | "connection" | "connect-errors" => Ok(Self::Connect),
            "timeout" | "timeouts" => Ok(Self::Timeout),
            _ if t.len() == 3 && t.ends_with("xx") => {
                let class = t[..1].parse::<u16>().map_err(|_| invalid())?;
                (1..=5).contains(&class).then_some(Self::Class(class)).ok_or_else(invalid)
            }
            _ => {
                let code = t.parse::<u16>().map_err(|_| invalid())?;
                (100..=599).contains(&code).then_some(Self::Status(code)).ok_or_else(invalid)
            }
        }
    }
}

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the exponential delay.
    None,
    /// A uniform draw between zero and the exponential delay (AWS's "full jitter").
    Full,
    /// Half the exponential delay plus a uniform draw over the other half.
    Equal,
}

/// `retryPolicy` as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per record, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay after the first failed attempt.
    pub initial: Duration,
    /// Ceiling of the delay.
    pub max: Duration,
    /// Growth per attempt in percent (200 doubles the delay).
    pub multiplier_percent: u32,
    pub jitter: Jitter,
    pub retry_on: Vec<RetryOn>,
    /// Pause the limiter until a 429/503's Retry-After (or RateLimit-Reset) instant.
    pub respect_retry_after: bool,
    /// Longest a record is retried, from its first attempt (429s included); past it the
    /// record fails with its last answer. `None`: no limit.
    pub max_retry: Option<Duration>,
    /// Statuses that refuse the credentials, not the record (`retryPolicy.authFailureStatuses`):
    /// answered by re-reading the mounted Secret and waiting for a rotation (see
    /// `send::credentials`), never by using up an attempt.
    pub auth_statuses: Vec<u16>,
    /// Longest wait for changed credentials after the first refusal
    /// (`retryPolicy.authGraceSeconds`).
    pub auth_grace: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            multiplier_percent: 200,
            jitter: Jitter::Full,
            retry_on: vec![
                RetryOn::Status(408),
                RetryOn::Status(429),
                RetryOn::Class(5),
                RetryOn::Connect,
                RetryOn::Timeout,
            ],
            respect_retry_after: true,
            max_retry: None,
            auth_statuses: vec![401],
            auth_grace: Duration::from_secs(180),
        }
    }
}

impl RetryConfig {
    /// The delay before attempt `failed + 1`, after `failed` failed attempts (1-based).
    pub fn backoff(&self, failed: u32) -> Duration {
        let base = self.exponential(failed);
        match self.jitter {
            Jitter::None => base,
            Jitter::Full => {
                let max_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(rand::rng().random_range(0..=max_ms))
            }
            Jitter::Equal => {
                let half = u64::try_from(base.as_millis() / 2).unwrap_or(u64::MAX);
                Duration::from_millis(half + rand::rng().random_range(0..=half))
            }
        }
    }

    /// The delay before jitter: `initial × multiplier^(failed-1)`, at most `max`.
    pub fn exponential(&self, failed: u32) -> Duration {
        let mut delay = self.initial.as_secs_f64();
        let factor = f64::from(self.multiplier_percent.max(100)) / 100.0;
        for _ in 1..failed {
            delay *= factor;
            if delay >= self.max.as_secs_f64() {
                return self.max;
            }
        }
        Duration::from_secs_f64(delay).min(self.max)
    }
}

/// The failure of one attempt that got no usable response, by where it failed. The same
/// classes come from the lean HTTP/1.1 path and from hyper (HTTP/2, ALPN); see
/// docs/worker-send.md for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// No connection (refused, unreachable, DNS, TLS handshake): nothing reached the partner.
    Connect,
    /// The request could not be written whole: the partner may hold a part of it.
    Write,
    /// The request went out but its answer could not be read (reset, closed early): the
    /// partner may have acted on it.
    Read,
    /// No complete answer within the request timeout.
    Timeout,
    /// The answer broke HTTP (a malformed head, bad chunking, an HTTP/2 protocol error).
    Protocol,
}

impl TransportError {
    /// Every class, in the order of the metric's labels.
    pub const ALL: [TransportError; 5] = [Self::Connect, Self::Write, Self::Read, Self::Timeout, Self::Protocol];

    /// Its name in metrics and dead letters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Write => "write",
            Self::Read => "read",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
        }
    }

    /// The `retryOn` entry that lets it be retried: `timeout` for a timeout, `connect` for every
    /// failure of the connection (connect, write, read, protocol). Each retry carries the same
    /// idempotency key, so a partner that honours it drops what it already has (write, read).
    pub fn retry_entry(self) -> RetryOn {
        match self {
            Self::Timeout => RetryOn::Timeout,
            Self::Connect | Self::Write | Self::Read | Self::Protocol => RetryOn::Connect,
        }
    }
}

/// What an attempt's result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the record is acknowledged.
    Success,
    /// Try again, not before `not_before` if the partner said so.
    Retry { not_before: Option<SystemTime> },
    /// Give up: dead-letter the record.
    Reject,
    /// The partner refused the credentials (a status of `auth_statuses`): a verdict on the
    /// credentials, not on the record.
    CredentialsRefused,
}

/// The classifier, as a trait so a Destination-specific policy can replace it.
pub trait RetryLogic: Send + Sync {
    /// What a response means.
    fn classify_response(&self, status: StatusCode, headers: &HeaderMap) -> Verdict;
    /// What a transport error means.
    fn classify_error(&self, error: TransportError) -> Verdict;
}

impl RetryLogic for RetryConfig {
    fn classify_response(&self, status: StatusCode, headers: &HeaderMap) -> Verdict {
        if status.is_success() {
            return Verdict::Success;
        }
        let code = status.as_u16();
        if self.auth_statuses.contains(&code) {
            return Verdict::CredentialsRefused;
        }
        let listed = self.retry_on.iter().any(|r| match *r {
            RetryOn::Status(s) => s == code,
            RetryOn::Class(c) => c == code / 100,
            RetryOn::Connect | RetryOn::Timeout => false,
        });
        if !listed {
            return Verdict::Reject;
        }
        let not_before = if code == 429 || code == 503 { retry_after(headers, SystemTime::now()) } else { None };
        Verdict::Retry { not_before }
    }

    fn classify_error(&self, error: TransportError) -> Verdict {
        if self.retry_on.contains(&error.retry_entry()) { Verdict::Retry { not_before: None } } else { Verdict::Reject }
    }
}

/// The instant named by `Retry-After` (seconds or an HTTP date), else by `RateLimit-Reset`
/// (seconds) or the `t=` parameter of a `RateLimit` header, relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<SystemTime> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(now + Duration::from_secs(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.max(now));
        }
    }
    if let Some(secs) = text("ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
        return Some(now + Duration::from_secs(secs));
    }
    let t = text("ratelimit")?
        .split([';', ','])
        .filter_map(|p| p.trim().strip_prefix("t="))
        .find_map(|v| v.trim().parse::<u64>().ok())?;
    Some(now + Duration::from_secs(t))
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
