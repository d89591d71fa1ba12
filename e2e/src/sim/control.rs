//! Reserved endpoints that observe and steer the simulator; never counted as
//! partner traffic.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use super::arrivals::{Arrival, busiest_window};
use super::auth::token_endpoint;
use super::body::SimBody;
use super::config::SimConfig;
use super::partner::json;
use super::state::Shared;

/// Largest accepted control request body.
const MAX_CONTROL_BODY: usize = 1 << 20;

/// A reserved path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /stats`.
    Stats,
    /// `POST /reset`.
    Reset,
    /// `GET/PUT /config`.
    Config,
    /// `GET /keys`.
    Keys,
    /// `GET /arrivals`: the busiest sliding second of the arrivals log.
    Arrivals,
    /// `POST /oauth/token`.
    Token,
    /// `POST /throttle`.
    Throttle,
}

/// The body of `POST /throttle`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ThrottleNext {
    /// Partner requests to answer 429.
    count: u64,
    /// Their `Retry-After` in seconds.
    retry_after_secs: u64,
}

/// The control route for `path`, if it is reserved.
pub fn route(path: &str) -> Option<Route> {
    match path {
        "/stats" => Some(Route::Stats),
        "/reset" => Some(Route::Reset),
        "/config" => Some(Route::Config),
        "/keys" => Some(Route::Keys),
        "/arrivals" => Some(Route::Arrivals),
        "/oauth/token" => Some(Route::Token),
        "/throttle" => Some(Route::Throttle),
        _ => None,
    }
}

/// Answers a control request.
pub async fn handle(route: Route, shared: &Shared, request: Request<Incoming>) -> Response<SimBody> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_CONTROL_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return error_json(StatusCode::BAD_REQUEST, &format!("reading the request body: {error}")),
    };
    match (route, &parts.method) {
        (Route::Stats, &Method::GET) => ok_json(&shared.snapshot()),
        (Route::Reset, &Method::POST) => {
            shared.reset();
            ok_json(&serde_json::json!({ "reset": true }))
        }
        (Route::Config, &Method::GET) => ok_json(&shared.active().config),
        (Route::Config, &Method::PUT) => match serde_json::from_slice::<SimConfig>(&body) {
            Ok(config) => match shared.apply(config) {
                Ok(()) => ok_json(&shared.active().config),
                Err(error) => error_json(StatusCode::BAD_REQUEST, &error.to_string()),
            },
            Err(error) => error_json(StatusCode::BAD_REQUEST, &format!("config JSON: {error}")),
        },
        (Route::Keys, &Method::GET) => ok_json(&serde_json::json!({
            "unique_keys": shared.ledger.unique(),
            "duplicates": shared.ledger.duplicates(),
            "keys": shared.ledger.snapshot(),
        })),
        (Route::Arrivals, &Method::GET) => {
            ok_json(&busiest_second(&shared.arrivals.snapshot(), shared.arrivals.dropped()))
        }
        (Route::Throttle, &Method::POST) => match serde_json::from_slice::<ThrottleNext>(&body) {
            Ok(t) => {
                shared.throttle_next(t.count, t.retry_after_secs);
                ok_json(&serde_json::json!({ "count": t.count, "retry_after_secs": t.retry_after_secs }))
            }
            Err(error) => error_json(StatusCode::BAD_REQUEST, &format!("throttle JSON: {error}")),
        },
        (Route::Token, &Method::POST) => {
            let active = shared.active();
            let (status, body) = token_endpoint(&active.auth, &shared.tokens, &active.random, &parts.headers, &body);
            json(status, Bytes::from(body))
        }
        _ => error_json(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on a control endpoint"),
    }
}

/// What a benchmark outside the process needs of the arrivals log: how many requests arrived and
/// the most that fell in any sliding second — all of them, the accepted ones, the refused ones.
fn busiest_second(arrivals: &[Arrival], dropped: u64) -> serde_json::Value {
    let second = Duration::from_secs(1);
    let micros = |keep: fn(&Arrival) -> bool| -> Vec<u64> {
        arrivals.iter().filter(|a| keep(a)).map(|a| a.at_unix_micros).collect()
    };
    serde_json::json!({
        "arrivals": arrivals.len(),
        "dropped": dropped,
        "first_unix_micros": arrivals.first().map(|a| a.at_unix_micros),
        "last_unix_micros": arrivals.last().map(|a| a.at_unix_micros),
        "busiest_second": {
            "all": busiest_window(&micros(|_| true), second),
            "accepted": busiest_window(&micros(|a| a.accepted), second),
            "rate_limited": busiest_window(&micros(|a| a.rate_limited), second),
        },
    })
}

fn ok_json(value: &impl Serialize) -> Response<SimBody> {
    match serde_json::to_vec(value) {
        Ok(body) => json(StatusCode::OK, Bytes::from(body)),
        Err(error) => error_json(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

fn error_json(status: StatusCode, message: &str) -> Response<SimBody> {
    json(status, Bytes::from(serde_json::json!({ "error": message }).to_string()))
}
