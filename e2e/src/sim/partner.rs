//! The partner API itself: every request that is not a control endpoint goes
//! through auth, the limiter and the fault injectors, then gets a small 2xx.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::body::{SimBody, Trickle};
use super::limiter::{Decision, Headers};
use super::state::Shared;
use super::stats::Outcome;

/// The connection is to be dropped without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by the simulator")]
pub struct Dropped;

/// How long a black-holed request is held before its connection is closed, so
/// abandoned sockets do not pile up in long runs.
const BLACKHOLE_HOLD: Duration = Duration::from_secs(300);

const OK_BODY: &[u8] = br#"{"ok":true}"#;
const UNAUTHORIZED_BODY: &[u8] = br#"{"error":"unauthorized"}"#;
const RATE_LIMITED_BODY: &[u8] = br#"{"error":"rate_limited"}"#;
const QUOTA_BODY: &[u8] = br#"{"error":"quota_exhausted"}"#;
const ERROR_BODY: &[u8] = br#"{"error":"unavailable"}"#;

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Answers one partner request that reached this host at `arrived`: its bucket and the
/// arrivals log judge it by that instant, not by when it was read.
pub async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
    peer: Option<std::net::IpAddr>,
    arrived: std::time::SystemTime,
) -> Result<Response<SimBody>, Dropped> {
    let count = |outcome| shared.count(outcome, arrived, peer);
    let active = shared.active();
    let config = &active.config;
    let (parts, body) = request.into_parts();
    if parts.version == http::Version::HTTP_2 {
        shared.stats.http2_request();
    }

    if active.random.chance(config.reset_rate) {
        count(Outcome::Reset);
        return Err(Dropped);
    }
    if active.random.chance(config.blackhole_rate) {
        count(Outcome::Blackholed);
        let _ = drain(body).await;
        tokio::time::sleep(BLACKHOLE_HOLD).await;
        return Err(Dropped);
    }
    if !active.auth.allows(&parts.headers, &shared.tokens) {
        drain(body).await?;
        count(Outcome::Unauthorized);
        return Ok(json(StatusCode::UNAUTHORIZED, Bytes::from_static(UNAUTHORIZED_BODY)));
    }
    if let Some(retry_after) = shared.take_throttle() {
        drain(body).await?;
        count(Outcome::RateLimited);
        let mut response = json(StatusCode::TOO_MANY_REQUESTS, Bytes::from_static(RATE_LIMITED_BODY));
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after));
        return Ok(response);
    }
    let limits = match active.limiter.check(active.limit_key(&parts), arrived) {
        Decision::Allowed(limits) => limits,
        Decision::RateLimited(limits) => {
            drain(body).await?;
            count(Outcome::RateLimited);
            let mut response = json(StatusCode::TOO_MANY_REQUESTS, Bytes::from_static(RATE_LIMITED_BODY));
            add_limit_headers(&mut response, limits, true);
            return Ok(response);
        }
        Decision::QuotaExhausted { quota, retry_after } => {
            drain(body).await?;
            count(Outcome::Quota);
            let mut response = json(StatusCode::TOO_MANY_REQUESTS, Bytes::from_static(QUOTA_BODY));
            let headers = response.headers_mut();
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
            headers.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(quota));
            headers.insert(RATELIMIT_REMAINING.clone(), HeaderValue::from(0u32));
            headers.insert(RATELIMIT_RESET.clone(), HeaderValue::from(retry_after));
            return Ok(response);
        }
    };
    drain(body).await?;

    if let Some(delay) = active.random.latency(&config.latency) {
        tokio::time::sleep(delay).await;
    }
    if active.in_burst_window() || active.random.chance(config.error_rate) {
        count(Outcome::Injected5xx);
        return Ok(json(active.error_status, Bytes::from_static(ERROR_BODY)));
    }
    if let Some((status, body, fraction)) = &active.inject
        && active.random.chance(*fraction)
    {
        count(Outcome::InjectedStatus);
        return Ok(json(*status, body.clone()));
    }

    if let Some(key) = parts.headers.get(&active.idempotency) {
        shared.ledger.record(key.as_bytes());
    }
    count(Outcome::Accepted);
    let mut response = match active.slow_body() {
        None => json(StatusCode::OK, Bytes::from_static(OK_BODY)),
        Some((chunks, delay)) => slow_ok(chunks, delay),
    };
    if let Some(limits) = limits {
        add_limit_headers(&mut response, limits, false);
    }
    Ok(response)
}

/// Reads and discards the request body, so the connection can be reused.
async fn drain(mut body: Incoming) -> Result<(), Dropped> {
    while let Some(frame) = body.frame().await {
        frame.map_err(|_| Dropped)?;
    }
    Ok(())
}

/// A JSON response with a fixed body.
pub fn json(status: StatusCode, body: Bytes) -> Response<SimBody> {
    let mut response = Response::new(SimBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn slow_ok(chunks: u32, delay: Duration) -> Response<SimBody> {
    // Pad the body so that every chunk carries at least one byte.
    let padding = usize::try_from(chunks).unwrap_or(0).saturating_sub(OK_BODY.len() + 14);
    let body = format!(r#"{{"ok":true,"pad":"{}"}}"#, " ".repeat(padding));
    let mut response = json(StatusCode::OK, Bytes::new());
    *response.body_mut() = SimBody::Trickle(Trickle::new(Bytes::from(body), chunks, delay));
    response
}

fn add_limit_headers(response: &mut Response<SimBody>, limits: Headers, limited: bool) {
    let headers = response.headers_mut();
    headers.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(limits.limit));
    headers.insert(RATELIMIT_REMAINING.clone(), HeaderValue::from(limits.remaining));
    headers.insert(RATELIMIT_RESET.clone(), HeaderValue::from(limits.reset));
    if limited {
        headers.insert(RETRY_AFTER, HeaderValue::from(limits.retry_after));
    }
}
