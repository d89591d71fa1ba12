//! One send service, two protocols: the same records sent to the same partner behaviour over
//! HTTP/1.1 (Courier's lean client) and over HTTP/2 by prior knowledge (hyper) end the same way —
//! the same counters, the same requests at the partner (auth and idempotency keys included), and
//! the same dead letters (status, kept body, partner's headers, attempts, error). Only what the
//! protocol itself decides may differ: HTTP/1.1's connection headers and the `date` value.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::send_support::*;
use courier_e2e::sim::{Auth as SimAuth, InjectStatus, SimConfig, Simulator};
use courier_worker::send::{AuthConfig, HttpVersion, SendConfig, TlsConfig};

/// A partner behaviour, the credentials the worker sends it, and how much goes how fast.
/// Partners that fail every request run one record at a time and fewer failures than the ten
/// in a row that make an outage (which holds records instead of dead-lettering them), so both
/// runs see the same answers in the same order; the 429s are drawn from a seed for the same
/// reason.
struct Case {
    name: &'static str,
    sim: SimConfig,
    auth: AuthConfig,
    max_attempts: u32,
    records: u64,
    in_flight: usize,
}

impl Case {
    fn new(name: &'static str, sim: SimConfig) -> Case {
        Case { name, sim, auth: AuthConfig::None, max_attempts: 1, records: 24, in_flight: 8 }
    }

    /// One record at a time, `records` of them, `max_attempts` each.
    fn sequential(self, records: u64, max_attempts: u32) -> Case {
        Case { records, max_attempts, in_flight: 1, ..self }
    }
}

fn cases() -> Vec<Case> {
    let inject = |fraction: f64, status: u16, body: &str| SimConfig {
        inject_status: Some(InjectStatus { fraction, status, body: body.to_owned() }),
        seed: Some(7),
        ..SimConfig::default()
    };
    vec![
        Case::new("accepts", SimConfig::default()),
        Case {
            auth: AuthConfig::Bearer { token: "t0k3n".into() },
            ..Case::new("bearer", SimConfig { auth: SimAuth::Bearer { token: "t0k3n".into() }, ..SimConfig::default() })
        },
        Case {
            auth: AuthConfig::Header { name: "X-Api-Key".into(), value: "k3y".into() },
            ..Case::new(
                "api-key",
                SimConfig {
                    auth: SimAuth::Header { name: "X-Api-Key".into(), value: "k3y".into() },
                    ..SimConfig::default()
                },
            )
        },
        Case {
            max_attempts: 3,
            ..Case::new("refuses-422", inject(1.0, 422, r#"{"error":"unprocessable","field":"id"}"#))
        },
        Case::new("fails-503", inject(1.0, 503, "try later")).sequential(3, 3),
        Case::new("throttles-half-429", inject(0.5, 429, "slow down")).sequential(12, 2),
        Case::new("silent", SimConfig { blackhole_rate: 1.0, ..SimConfig::default() }).sequential(3, 2),
    ]
}

/// What a delivery left behind, with what the protocol decides taken out.
#[derive(Debug, PartialEq)]
struct Outcome {
    sent: u64,
    /// Requests the partner saw, answered or not.
    requests: u64,
    dead_lettered: u64,
    failed: u64,
    retried: u64,
    accepted: u64,
    duplicates: u64,
    unique_keys: u64,
    unauthorized: u64,
    /// Per record, by offset.
    dead_letters: BTreeMap<u64, Letter>,
}

/// A dead letter as the partner's answer and the worker's attempts left it.
#[derive(Debug, PartialEq)]
struct Letter {
    status: Option<u64>,
    body: Option<String>,
    /// The partner's headers but those the protocol decides; the date's value masked.
    headers: Vec<(String, String)>,
    attempts: u64,
    error: String,
}

/// Headers the protocol decides: HTTP/1.1's connection management, and the date's value.
fn protocol_header(name: &str) -> bool {
    matches!(name, "connection" | "keep-alive" | "transfer-encoding")
}

async fn outcome(case: &Case, version: HttpVersion) -> Outcome {
    let sim = Simulator::start("127.0.0.1:0", case.sim.clone()).await.expect("simulator");
    let config = SendConfig {
        http_version: version,
        tls: TlsConfig::default(),
        auth: case.auth.clone(),
        max_in_flight: case.in_flight,
        timeout: Duration::from_millis(300),
        retry: quick_retry(case.max_attempts),
        ..SendConfig::default()
    };
    let package = format!("parity-{}", case.name);
    let delivery = sender(&sim.url(), &package, config, None, Arc::default());
    let run = deliver(&delivery, records("file:///data/parity.jsonl", case.records)).await;
    let stats = sim.stats();
    let r = stats.rejected;
    let requests = stats.accepted
        + r.rate_limited
        + r.quota
        + r.injected_5xx
        + r.injected_status
        + r.unauthorized
        + r.blackholed
        + r.reset;
    let expected_h2 = if version == HttpVersion::Http2 { requests } else { 0 };
    assert_eq!(stats.http2_requests, expected_h2, "{} over {version:?}: the protocol asked for", case.name);

    let dead_letters = run
        .dead_letters
        .iter()
        .map(|dl| {
            let headers = dl["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .filter(|(name, _)| !protocol_header(name))
                        .map(|(name, value)| {
                            let value = if name == "date" { "<date>".to_owned() } else { value.to_string() };
                            (name.clone(), value)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let entry = Letter {
                status: dl["status"].as_u64(),
                body: dl["body"].as_str().map(str::to_owned),
                headers,
                attempts: dl["attempts"].as_u64().unwrap_or_default(),
                error: dl["error"].as_str().unwrap_or_default().to_owned(),
            };
            (dl["offset"].as_u64().expect("offset"), entry)
        })
        .collect();
    let c = run.counters();
    Outcome {
        sent: c.sent,
        requests,
        dead_lettered: c.dead_lettered,
        failed: c.failed,
        retried: c.retried,
        accepted: stats.accepted,
        duplicates: stats.duplicates,
        unique_keys: stats.unique_keys,
        unauthorized: stats.rejected.unauthorized,
        dead_letters,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_http2_end_every_partner_behaviour_the_same_way() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    for case in cases() {
        let http1 = outcome(&case, HttpVersion::Http1).await;
        let http2 = outcome(&case, HttpVersion::Http2).await;
        assert_eq!(http1, http2, "{}: HTTP/1.1 (left) and HTTP/2 (right) differ", case.name);
        assert_eq!(http1.sent + http1.dead_lettered, case.records, "{}", case.name);
    }
}
