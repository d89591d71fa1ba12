//! The simulator's configuration: what the partner limits, how it misbehaves and
//! whom it lets in. Serialised as JSON on `GET/PUT /config`; every part also has a
//! compact text form (`FromStr`) used by the `partner-sim` command-line flags.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Everything the simulator can be told; changeable at runtime as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Token bucket per key; `None` means unlimited.
    pub rate_limit: Option<RateLimit>,
    /// What a rate-limit key is made of.
    pub limit_key: LimitKey,
    /// Requests accepted per key per UTC day; `None` means no quota.
    pub daily_quota: Option<u64>,
    /// Delay before each partner answer.
    pub latency: Latency,
    /// Probability in 0..=1 that a request is answered with `error_status`.
    pub error_rate: f64,
    /// Status used for injected server errors and burst windows.
    pub error_status: u16,
    /// Periodic windows during which every request gets `error_status`.
    pub burst_window: Option<BurstWindow>,
    /// A fraction of requests answered with a specific status and body.
    pub inject_status: Option<InjectStatus>,
    /// Probability that a request is accepted and never answered.
    pub blackhole_rate: f64,
    /// Probability that the connection is closed without a response.
    pub reset_rate: f64,
    /// Trickle successful response bodies instead of sending them at once.
    pub slow_body: Option<SlowBody>,
    /// Seed for every random decision; `None` seeds from the clock.
    pub seed: Option<u64>,
    /// Credentials partner requests must carry.
    pub auth: Auth,
    /// Header whose value is recorded in the ledger for every 2xx answer.
    pub idempotency_header: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            rate_limit: None,
            limit_key: LimitKey::Global,
            daily_quota: None,
            latency: Latency::None,
            error_rate: 0.0,
            error_status: 503,
            burst_window: None,
            inject_status: None,
            blackhole_rate: 0.0,
            reset_rate: 0.0,
            slow_body: None,
            seed: None,
            auth: Auth::None,
            idempotency_header: "Idempotency-Key".to_owned(),
        }
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub rate: f64,
    /// Bucket size: requests allowed back to back after a quiet spell.
    pub burst: u32,
}

/// How requests are grouped into rate-limit keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum LimitKey {
    /// One bucket for everything.
    Global,
    /// One bucket per request path.
    Path,
    /// One bucket per value of this header (missing header = empty value).
    Header {
        /// Header name, case-insensitive.
        name: String,
    },
}

/// Distribution of the delay before an answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Latency {
    /// Answer immediately.
    None,
    /// Always the same delay.
    Fixed {
        /// Delay in milliseconds.
        ms: f64,
    },
    /// Uniform between two delays.
    Uniform {
        /// Smallest delay in milliseconds.
        min_ms: f64,
        /// Largest delay in milliseconds.
        max_ms: f64,
    },
    /// Log-normal with the given median and 99th percentile.
    #[serde(alias = "lognormal")]
    LogNormal {
        /// Median in milliseconds.
        p50_ms: f64,
        /// 99th percentile in milliseconds.
        p99_ms: f64,
    },
}

/// Every `every_ms`, answer `error_status` for `duration_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstWindow {
    /// Period of the windows in milliseconds (measured from simulator start or reset).
    pub every_ms: u64,
    /// Length of each window in milliseconds, at the start of each period.
    pub duration_ms: u64,
}

/// Answer `status` with `body` for a `fraction` of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectStatus {
    /// Probability in 0..=1.
    pub fraction: f64,
    /// HTTP status to answer.
    pub status: u16,
    /// Response body (JSON by default).
    #[serde(default = "default_inject_body")]
    pub body: String,
}

fn default_inject_body() -> String {
    r#"{"error":"invalid_request","message":"injected by partner-sim"}"#.to_owned()
}

/// Send the success body in `chunks` pieces, `chunk_delay_ms` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowBody {
    /// Number of body chunks.
    pub chunks: u32,
    /// Pause before each chunk in milliseconds.
    pub chunk_delay_ms: u64,
}

/// Credentials the partner demands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Auth {
    /// No check.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The one valid token.
        token: String,
    },
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// A fixed header value.
    Header {
        /// Header name.
        name: String,
        /// Required value.
        value: String,
    },
    /// Bearer tokens issued by `POST /oauth/token` (client-credentials grant).
    Oauth2 {
        /// Accepted client id.
        client_id: String,
        /// Accepted client secret.
        client_secret: String,
        /// Lifetime of issued tokens in seconds.
        token_ttl_secs: u64,
    },
}

/// A flag or config value that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} {input:?}: expected {expected}")]
pub struct ParseError {
    what: &'static str,
    input: String,
    expected: &'static str,
}

impl ParseError {
    fn new(what: &'static str, input: &str, expected: &'static str) -> Self {
        Self { what, input: input.to_owned(), expected }
    }
}

fn num<T: FromStr>(s: &str, what: &'static str, input: &str, expected: &'static str) -> Result<T, ParseError> {
    s.trim().parse().map_err(|_| ParseError::new(what, input, expected))
}

impl FromStr for LimitKey {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "global, path or header:NAME";
        match s.split_once(':') {
            None if s == "global" => Ok(Self::Global),
            None if s == "path" => Ok(Self::Path),
            Some(("header", name)) if !name.is_empty() => Ok(Self::Header { name: name.to_owned() }),
            _ => Err(ParseError::new("limit key", s, EXPECTED)),
        }
    }
}

impl FromStr for Latency {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "none, fixed:MS, uniform:MIN..MAX or lognormal:P50,P99";
        let err = || ParseError::new("latency", s, EXPECTED);
        let latency = match s.split_once(':') {
            None if s == "none" => Self::None,
            Some(("fixed", ms)) => Self::Fixed { ms: num(ms, "latency", s, EXPECTED)? },
            Some(("uniform", range)) => {
                let (min, max) = range.split_once("..").ok_or_else(err)?;
                Self::Uniform { min_ms: num(min, "latency", s, EXPECTED)?, max_ms: num(max, "latency", s, EXPECTED)? }
            }
            Some(("lognormal", pair)) => {
                let (p50, p99) = pair.split_once(',').ok_or_else(err)?;
                Self::LogNormal { p50_ms: num(p50, "latency", s, EXPECTED)?, p99_ms: num(p99, "latency", s, EXPECTED)? }
            }
            _ => return Err(err()),
        };
        latency.validate().map_err(|_| err())?;
        Ok(latency)
    }
}

impl Latency {
    fn validate(&self) -> Result<(), &'static str> {
        let ok = match *self {
            Self::None => true,
            Self::Fixed { ms } => ms >= 0.0,
            Self::Uniform { min_ms, max_ms } => min_ms >= 0.0 && max_ms >= min_ms,
            Self::LogNormal { p50_ms, p99_ms } => p50_ms > 0.0 && p99_ms >= p50_ms,
        };
        if ok { Ok(()) } else { Err("latency bounds must be non-negative and ordered") }
    }
}

impl FromStr for BurstWindow {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "EVERY_MS:DURATION_MS";
        let (every, duration) = s.split_once(':').ok_or_else(|| ParseError::new("burst window", s, EXPECTED))?;
        Ok(Self {
            every_ms: num(every, "burst window", s, EXPECTED)?,
            duration_ms: num(duration, "burst window", s, EXPECTED)?,
        })
    }
}

impl FromStr for InjectStatus {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "STATUS:FRACTION";
        let (status, fraction) = s.split_once(':').ok_or_else(|| ParseError::new("injected status", s, EXPECTED))?;
        Ok(Self {
            status: num(status, "injected status", s, EXPECTED)?,
            fraction: num(fraction, "injected status", s, EXPECTED)?,
            body: default_inject_body(),
        })
    }
}

impl FromStr for SlowBody {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "CHUNKS:DELAY_MS";
        let (chunks, delay) = s.split_once(':').ok_or_else(|| ParseError::new("slow body", s, EXPECTED))?;
        Ok(Self {
            chunks: num(chunks, "slow body", s, EXPECTED)?,
            chunk_delay_ms: num(delay, "slow body", s, EXPECTED)?,
        })
    }
}

impl FromStr for Auth {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str =
            "none, bearer:TOKEN, basic:USER:PASSWORD, header:NAME:VALUE or oauth2:CLIENT_ID:SECRET:TTL_SECS";
        let err = || ParseError::new("auth", s, EXPECTED);
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "none" => Ok(Self::None),
            "bearer" if !rest.is_empty() => Ok(Self::Bearer { token: rest.to_owned() }),
            "basic" => {
                let (user, password) = rest.split_once(':').ok_or_else(err)?;
                Ok(Self::Basic { user: user.to_owned(), password: password.to_owned() })
            }
            "header" => {
                let (name, value) = rest.split_once(':').ok_or_else(err)?;
                Ok(Self::Header { name: name.to_owned(), value: value.to_owned() })
            }
            "oauth2" => {
                let (id, rest) = rest.split_once(':').ok_or_else(err)?;
                let (secret, ttl) = rest.rsplit_once(':').ok_or_else(err)?;
                Ok(Self::Oauth2 {
                    client_id: id.to_owned(),
                    client_secret: secret.to_owned(),
                    token_ttl_secs: num(ttl, "auth", s, EXPECTED)?,
                })
            }
            _ => Err(err()),
        }
    }
}

impl SimConfig {
    /// Checks ranges that serde cannot: probabilities, statuses, positive rates.
    pub fn validate(&self) -> Result<(), String> {
        let probability = |name: &str, p: f64| {
            if (0.0..=1.0).contains(&p) { Ok(()) } else { Err(format!("{name} must be within 0..=1, got {p}")) }
        };
        probability("error_rate", self.error_rate)?;
        probability("blackhole_rate", self.blackhole_rate)?;
        probability("reset_rate", self.reset_rate)?;
        valid_status("error_status", self.error_status)?;
        if let Some(inject) = &self.inject_status {
            probability("inject_status.fraction", inject.fraction)?;
            valid_status("inject_status.status", inject.status)?;
        }
        if let Some(limit) = self.rate_limit
            && !(limit.rate > 0.0 && limit.rate.is_finite() && limit.burst >= 1)
        {
            return Err(format!("rate_limit needs rate > 0 and burst >= 1, got {limit:?}"));
        }
        if let Some(window) = self.burst_window
            && (window.every_ms == 0 || window.duration_ms > window.every_ms)
        {
            return Err(format!("burst_window needs 0 < duration_ms <= every_ms, got {window:?}"));
        }
        if let Some(slow) = self.slow_body
            && slow.chunks == 0
        {
            return Err("slow_body.chunks must be at least 1".to_owned());
        }
        self.latency.validate().map_err(str::to_owned)?;
        http::HeaderName::from_bytes(self.idempotency_header.as_bytes())
            .map_err(|_| format!("idempotency_header {:?} is not a header name", self.idempotency_header))?;
        if let LimitKey::Header { name } = &self.limit_key {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("limit_key header {name:?} is not a header name"))?;
        }
        if let Auth::Header { name, .. } = &self.auth {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("auth header {name:?} is not a header name"))?;
        }
        Ok(())
    }
}

fn valid_status(name: &str, status: u16) -> Result<(), String> {
    if (100..=999).contains(&status) { Ok(()) } else { Err(format!("{name} {status} is not an HTTP status")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_flag_forms_parse_into_config_values() {
        assert_eq!("header:X-Tenant".parse::<LimitKey>().ok(), Some(LimitKey::Header { name: "X-Tenant".into() }));
        assert_eq!("uniform:5..20".parse::<Latency>().ok(), Some(Latency::Uniform { min_ms: 5.0, max_ms: 20.0 }));
        assert_eq!(
            "lognormal:10,200".parse::<Latency>().ok(),
            Some(Latency::LogNormal { p50_ms: 10.0, p99_ms: 200.0 })
        );
        assert_eq!(
            "oauth2:id:sec:ret:60".parse::<Auth>().ok(),
            Some(Auth::Oauth2 { client_id: "id".into(), client_secret: "sec:ret".into(), token_ttl_secs: 60 })
        );
        assert!("uniform:20..5".parse::<Latency>().is_err());
        assert!("sometimes".parse::<Auth>().is_err());
    }

    #[test]
    fn json_with_only_some_fields_fills_the_rest_with_defaults() {
        let config: SimConfig = serde_json::from_str(r#"{"rate_limit":{"rate":50,"burst":5}}"#).expect("parses");
        assert_eq!(config.rate_limit, Some(RateLimit { rate: 50.0, burst: 5 }));
        assert_eq!(config.idempotency_header, "Idempotency-Key");
        assert!(config.validate().is_ok());
    }

    #[test]
    fn out_of_range_probability_is_refused() {
        let config = SimConfig { error_rate: 1.5, ..SimConfig::default() };
        assert!(config.validate().is_err());
    }
}
