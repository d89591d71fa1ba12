//! The partner simulator, driven over real TCP by a real HTTP client.

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use courier_e2e::sim::{Auth, BurstWindow, Latency, RateLimit, SimConfig, Simulator, SlowBody, StatsSnapshot};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncBufReadExt as _;
use tokio::task::JoinSet;

/// A thin HTTP client bound to one simulator.
#[derive(Clone)]
struct Client {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    base: String,
}

/// What came back.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

type SendError = Box<dyn std::error::Error + Send + Sync>;

impl Client {
    fn http1(sim: &Simulator) -> Self {
        let http = HyperClient::builder(TokioExecutor::new()).retry_canceled_requests(false).build_http();
        Self { http, base: sim.url() }
    }

    fn http2(sim: &Simulator) -> Self {
        let http =
            HyperClient::builder(TokioExecutor::new()).http2_only(true).retry_canceled_requests(false).build_http();
        Self { http, base: sim.url() }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Answer, SendError> {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body.to_owned())))?;
        let response = self.http.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::POST, path, headers, r#"{"record":1}"#).await.expect("the simulator answers")
    }

    async fn stats(&self) -> StatsSnapshot {
        let answer = self.send(Method::GET, "/stats", &[], "").await.expect("stats answer");
        serde_json::from_slice(&answer.body).expect("stats JSON")
    }
}

async fn start(config: SimConfig) -> (Simulator, Client) {
    let sim = Simulator::start("127.0.0.1:0", config).await.expect("the simulator starts");
    let client = Client::http1(&sim);
    (sim, client)
}

fn limited(rate: f64, burst: u32) -> SimConfig {
    SimConfig { rate_limit: Some(RateLimit { rate, burst }), ..SimConfig::default() }
}

#[tokio::test]
async fn a_burst_of_twenty_against_rate_50_burst_5_gets_exactly_5_accepted_and_15_limited_with_headers() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (sim, _) = start(limited(50.0, 5)).await;
    let client = Client::http2(&sim);
    client.stats().await; // open the HTTP/2 connection before the burst

    let mut burst = JoinSet::new();
    for _ in 0..20 {
        let client = client.clone();
        burst.spawn(async move { client.post("/records", &[]).await });
    }
    let answers: Vec<Answer> = burst.join_all().await;

    let accepted = answers.iter().filter(|a| a.status == StatusCode::OK).count();
    let limited: Vec<&Answer> = answers.iter().filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!((accepted, limited.len()), (5, 15));
    for answer in limited {
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert_eq!(answer.header("ratelimit-limit"), Some("5"));
        assert_eq!(answer.header("ratelimit-remaining"), Some("0"));
        assert_eq!(answer.header("ratelimit-reset"), Some("1"));
    }
    let stats = client.stats().await;
    assert_eq!((stats.accepted, stats.rejected.rate_limited), (5, 15));
    assert_eq!(stats.series.too_many_requests.iter().sum::<u64>(), 15);
}

#[tokio::test]
async fn a_client_pacing_just_under_the_limit_never_sees_a_429() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (_sim, client) = start(limited(50.0, 5)).await;
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / 45.0));
    // After a stall, keep the pace instead of catching up in a burst.
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..70 {
        pace.tick().await;
        let answer = client.post("/records", &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "limit headers {:?}", answer.headers);
    }
    assert_eq!(client.stats().await.rejected.rate_limited, 0);
}

#[tokio::test]
async fn an_overeager_client_gets_burst_plus_rate_times_elapsed_within_two_percent() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // A deep bucket (half a second of tokens) so that a client stalled by a busy
    // machine loses no allowance: what is measured is the limiter, not the client.
    let (sim, client) = start(limited(100.0, 50)).await;
    let started = Instant::now();
    let mut senders = JoinSet::new();
    for _ in 0..4 {
        let client = client.clone();
        senders.spawn(async move {
            while started.elapsed() < Duration::from_secs(2) {
                client.post("/records", &[]).await;
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        });
    }
    senders.join_all().await;
    let elapsed = started.elapsed().as_secs_f64();
    let stats = sim.stats();
    let allowed = 50.0 + 100.0 * elapsed;
    let accepted = stats.accepted as f64;
    assert!(stats.rejected.rate_limited > 0, "the client must have been faster than the limit");
    assert!(accepted <= allowed + 1.0, "accepted {accepted} exceeds the allowance {allowed:.1}");
    assert!(accepted >= allowed * 0.98, "accepted {accepted} is more than 2% under the allowance {allowed:.1}");
}

#[tokio::test]
async fn an_exhausted_daily_quota_answers_429_until_the_next_utc_day() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (sim, client) = start(SimConfig { daily_quota: Some(3), ..SimConfig::default() }).await;
    for _ in 0..3 {
        assert_eq!(client.post("/records", &[]).await.status, StatusCode::OK);
    }
    let refused = client.post("/records", &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After seconds");
    assert!((1..=86_400).contains(&retry_after));
    assert_eq!(refused.header("ratelimit-limit"), Some("3"));
    assert_eq!(sim.stats().rejected.quota, 1);
}

#[tokio::test]
async fn the_ledger_counts_unique_keys_and_duplicates_exactly() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (sim, client) = start(SimConfig::default()).await;
    for i in 0..10 {
        client.post("/records", &[("Idempotency-Key", &format!("key-{i}"))]).await;
    }
    for i in 0..5 {
        client.post("/records", &[("idempotency-key", &format!("key-{i}"))]).await;
    }
    client.post("/records", &[]).await;
    sim.set_config(SimConfig { error_rate: 1.0, ..SimConfig::default() }).expect("config applies");
    client.post("/records", &[("Idempotency-Key", "refused")]).await;

    let stats = client.stats().await;
    assert_eq!((stats.accepted, stats.unique_keys, stats.duplicates), (16, 10, 5));
    let keys = client.send(Method::GET, "/keys", &[], "").await.expect("keys answer").json();
    assert_eq!(keys["keys"]["key-0"], 2);
    assert_eq!(keys["keys"]["key-9"], 1);
    assert!(keys["keys"].get("refused").is_none());
    assert_eq!(sim.keys().len(), 10);
}

#[tokio::test]
async fn a_5xx_probability_of_one_answers_every_request_with_503() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (sim, client) = start(SimConfig { error_rate: 1.0, seed: Some(1), ..SimConfig::default() }).await;
    for _ in 0..10 {
        let answer = client.post("/records", &[]).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!((sim.stats().rejected.injected_5xx, sim.stats().accepted), (10, 0));
}

#[tokio::test]
async fn a_burst_window_answers_503_at_the_start_of_each_period_and_200_otherwise() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let window = BurstWindow { every_ms: 400, duration_ms: 200 };
    let (sim, client) = start(SimConfig { burst_window: Some(window), ..SimConfig::default() }).await;
    assert_eq!(client.post("/records", &[]).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(800) {
        pace.tick().await;
        client.post("/records", &[]).await;
    }
    let stats = sim.stats();
    let errors = stats.rejected.injected_5xx as f64;
    let share = errors / (errors + stats.accepted as f64);
    assert!((0.3..=0.7).contains(&share), "503 share {share:.2} of {} requests", errors + stats.accepted as f64);
}

#[tokio::test]
async fn an_injected_status_comes_with_its_json_error_body() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let inject = "400:1.0".parse().expect("flag form parses");
    let (sim, client) = start(SimConfig { inject_status: Some(inject), ..SimConfig::default() }).await;
    let answer = client.post("/records", &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_request");
    assert_eq!(sim.stats().rejected.injected_status, 1);
}

#[tokio::test]
async fn a_black_hole_leaves_the_client_waiting_until_its_timeout() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (sim, client) = start(SimConfig { blackhole_rate: 1.0, ..SimConfig::default() }).await;
    let waited = tokio::time::timeout(Duration::from_millis(300), client.post("/records", &[])).await;
    assert!(waited.is_err(), "a black-holed request must not be answered");
    assert_eq!(sim.stats().rejected.blackholed, 1);
}

#[tokio::test]
async fn a_reset_closes_the_connection_without_an_answer() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (sim, client) = start(SimConfig { reset_rate: 1.0, ..SimConfig::default() }).await;
    let result = client.send(Method::POST, "/records", &[], "{}").await;
    assert!(result.is_err(), "expected a connection error, got {result:?}");
    assert_eq!(sim.stats().rejected.reset, 1);
}

#[tokio::test]
async fn latency_and_slow_bodies_delay_the_answer_but_keep_it_whole() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let config = SimConfig {
        latency: Latency::Fixed { ms: 100.0 },
        slow_body: Some(SlowBody { chunks: 4, chunk_delay_ms: 50 }),
        ..SimConfig::default()
    };
    let (_sim, client) = start(config).await;
    let started = Instant::now();
    let answer = client.post("/records", &[]).await;
    assert!(started.elapsed() >= Duration::from_millis(300), "answered after {:?}", started.elapsed());
    assert_eq!((answer.status, &answer.json()["ok"]), (StatusCode::OK, &serde_json::json!(true)));
}

#[tokio::test]
async fn bearer_auth_lets_only_the_right_token_in() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (_sim, client) = start(SimConfig { auth: Auth::Bearer { token: "t0k".into() }, ..SimConfig::default() }).await;
    assert_eq!(client.post("/records", &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(client.post("/records", &[("Authorization", "Bearer nope")]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(client.post("/records", &[("Authorization", "Bearer t0k")]).await.status, StatusCode::OK);
    assert_eq!(client.stats().await.rejected.unauthorized, 2);
}

#[tokio::test]
async fn basic_and_header_auth_check_their_credentials() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let basic = Auth::Basic { user: "courier".into(), password: "s3cret".into() };
    let (sim, client) = start(SimConfig { auth: basic, ..SimConfig::default() }).await;
    let good = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("courier:s3cret"));
    let bad = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("courier:guess"));
    assert_eq!(client.post("/records", &[("Authorization", &good)]).await.status, StatusCode::OK);
    assert_eq!(client.post("/records", &[("Authorization", &bad)]).await.status, StatusCode::UNAUTHORIZED);

    let header = Auth::Header { name: "X-Api-Key".into(), value: "k1".into() };
    sim.set_config(SimConfig { auth: header, ..SimConfig::default() }).expect("config applies");
    assert_eq!(client.post("/records", &[("x-api-key", "k1")]).await.status, StatusCode::OK);
    assert_eq!(client.post("/records", &[("x-api-key", "k2")]).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn oauth2_tokens_work_until_their_ttl_and_a_fresh_token_works_again() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let auth = Auth::Oauth2 { client_id: "courier".into(), client_secret: "s3cret".into(), token_ttl_secs: 1 };
    let (_sim, client) = start(SimConfig { auth, ..SimConfig::default() }).await;
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let token_via_form = || async {
        let body = "grant_type=client_credentials&client_id=courier&client_secret=s3cret";
        let answer = client.send(Method::POST, "/oauth/token", &form, body).await.expect("token answer");
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["expires_in"], 1);
        format!("Bearer {}", answer.json()["access_token"].as_str().expect("access_token"))
    };

    let token = token_via_form().await;
    assert_eq!(client.post("/records", &[("Authorization", &token)]).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(client.post("/records", &[("Authorization", &token)]).await.status, StatusCode::UNAUTHORIZED);

    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("courier:s3cret"));
    let answer = client
        .send(Method::POST, "/oauth/token", &[form[0], ("Authorization", &basic)], "grant_type=client_credentials")
        .await
        .expect("token answer");
    let fresh = format!("Bearer {}", answer.json()["access_token"].as_str().expect("access_token"));
    assert_eq!(client.post("/records", &[("Authorization", &fresh)]).await.status, StatusCode::OK);

    let wrong = client
        .send(Method::POST, "/oauth/token", &form, "grant_type=client_credentials&client_id=courier&client_secret=x")
        .await
        .expect("token answer");
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn putting_a_config_changes_the_limit_for_the_very_next_request() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (_sim, client) = start(SimConfig::default()).await;
    for _ in 0..10 {
        assert_eq!(client.post("/records", &[]).await.status, StatusCode::OK);
    }
    let body = r#"{"rate_limit":{"rate":0.5,"burst":2}}"#;
    let put = client.send(Method::PUT, "/config", &[], body).await.expect("config answer");
    assert_eq!(put.status, StatusCode::OK);
    let statuses: Vec<StatusCode> = {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(client.post("/records", &[]).await.status);
        }
        statuses
    };
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 2);
    let config = client.send(Method::GET, "/config", &[], "").await.expect("config answer").json();
    assert_eq!(config["rate_limit"]["burst"], 2);

    let refused = client.send(Method::PUT, "/config", &[], r#"{"error_rate":2}"#).await.expect("config answer");
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn posting_reset_clears_counters_and_ledger() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (sim, client) = start(SimConfig::default()).await;
    for i in 0..3 {
        client.post("/records", &[("Idempotency-Key", &format!("k{i}"))]).await;
    }
    assert_eq!(client.stats().await.unique_keys, 3);
    let reset = client.send(Method::POST, "/reset", &[], "").await.expect("reset answer");
    assert_eq!(reset.status, StatusCode::OK);
    let stats = client.stats().await;
    assert_eq!((stats.accepted, stats.unique_keys, stats.duplicates), (0, 0, 0));
    assert_eq!(stats.series.accepted.iter().sum::<u64>(), 0);
    assert!(sim.keys().is_empty());
}

#[tokio::test]
async fn posting_throttle_answers_exactly_the_next_requests_429_with_retry_after() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (_sim, client) = start(SimConfig::default()).await;
    let bad = client.send(Method::POST, "/throttle", &[], r#"{"count":"two"}"#).await.expect("throttle answer");
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let set = client
        .send(Method::POST, "/throttle", &[], r#"{"count":2,"retry_after_secs":7}"#)
        .await
        .expect("throttle answer");
    assert_eq!(set.status, StatusCode::OK);
    let mut answers = Vec::new();
    for i in 0..4 {
        answers.push(client.post("/records", &[("Idempotency-Key", &format!("k{i}"))]).await);
    }
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(statuses, [429, 429, 200, 200]);
    assert_eq!(answers[0].header("retry-after"), Some("7"));
    assert_eq!(answers[2].header("retry-after"), None);
    let stats = client.stats().await;
    assert_eq!((stats.accepted, stats.rejected.rate_limited, stats.unique_keys), (2, 2, 2));
}

/// Starts the `partner-sim` binary with `args`; the child and the URL of its ready line.
async fn start_binary(args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_partner-sim"))
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a ready line within 10 s")
        .expect("stdout readable")
        .expect("a ready line");
    let url = ready.rsplit(' ').next().expect("the line ends with the URL").to_owned();
    (child, url)
}

/// Sends SIGTERM and checks that the binary exits cleanly within 5 s.
async fn stop_binary(mut child: tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let killed = tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.expect("exits").expect("waits");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn the_binary_refuses_a_bad_flag_with_one_line_and_exit_code_2() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_partner-sim"))
        .args(["--error-rate", "lots"])
        .output()
        .await
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "stderr: {stderr}");
}

#[tokio::test]
async fn the_binary_prints_its_address_serves_and_stops_on_sigterm() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (child, url) =
        start_binary(&["--listen", "127.0.0.1:0", "--rate", "10", "--burst", "2", "--threads", "1"]).await;

    let client = Client { http: HyperClient::builder(TokioExecutor::new()).build_http(), base: url };
    let stats = client.stats().await;
    assert_eq!(stats.config.rate_limit, Some(RateLimit { rate: 10.0, burst: 2 }));

    stop_binary(child).await;
}

#[tokio::test]
async fn the_binary_serves_https_with_the_given_certificate_and_refuses_a_cert_without_key() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    use courier_e2e::sim::TestPki;
    use rustls::pki_types::pem::PemObject as _;

    let pki = TestPki::generate().expect("pki");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &pki.server.cert_pem).expect("write cert");
    std::fs::write(&key, &pki.server.key_pem).expect("write key");

    let lonely = tokio::process::Command::new(env!("CARGO_BIN_EXE_partner-sim"))
        .arg("--tls-cert")
        .arg(&cert)
        .output()
        .await
        .expect("the binary runs");
    assert_eq!(lonely.status.code(), Some(2), "a certificate without its key is a usage error");

    let (cert, key) = (cert.to_str().expect("UTF-8 path"), key.to_str().expect("UTF-8 path"));
    let (child, url) =
        start_binary(&["--listen", "127.0.0.1:0", "--threads", "1", "--tls-cert", cert, "--tls-key", key]).await;
    assert!(url.starts_with("https://"), "{url}");
    let addr = url.trim_start_matches("https://").to_owned();

    // A TLS client trusting only the test CA, speaking HTTP/1.1 over it.
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls::pki_types::CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(ca.expect("CA PEM")).expect("CA");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.expect("handshake");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.expect("http/1.1");
    tokio::spawn(connection);
    let request = Request::builder()
        .uri("/ingest")
        .method(Method::POST)
        .header("host", "localhost")
        .header("idempotency-key", "tls-1")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    let response = sender.send_request(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);

    stop_binary(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulator_started_beside_another_shares_its_thread_and_outlives_it() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let local: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
    let partner = Simulator::start_dedicated(local, limited(1.0, 2)).expect("the partner starts");
    let control = partner.start_beside(local, limited(1.0, 1)).expect("the control starts beside it");
    assert_ne!(partner.addr(), control.addr());
    let statuses = |answers: Vec<Answer>| answers.iter().map(|a| a.status.as_u16()).collect::<Vec<_>>();
    let (p, c) = (Client::http1(&partner), Client::http1(&control));
    // Each has its own bucket: two back to back pass the partner, only one the control.
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(p.post("/", &[]).await);
    }
    assert_eq!(statuses(answers), vec![200, 200]);
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(c.post("/", &[]).await);
    }
    assert_eq!(statuses(answers), vec![200, 429]);
    // The partner stops; the thread they share keeps serving the control.
    drop(partner);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(c.stats().await.accepted, 1);
}

#[tokio::test]
async fn arrivals_reports_the_busiest_sliding_second_of_all_accepted_and_refused_requests() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (_sim, client) =
        start(SimConfig { rate_limit: Some(RateLimit { rate: 0.5, burst: 2 }), ..SimConfig::default() }).await;
    for _ in 0..5 {
        client.post("/records", &[]).await;
    }
    let got = client.send(Method::GET, "/arrivals", &[], "").await.expect("arrivals answer").json();
    assert_eq!(got["arrivals"], 5);
    assert_eq!(got["dropped"], 0);
    assert_eq!(got["busiest_second"]["all"], 5);
    assert_eq!(got["busiest_second"]["accepted"], 2);
    assert_eq!(got["busiest_second"]["rate_limited"], 3);
    assert_eq!(client.stats().await.accepted, 2, "the control route is not partner traffic");
}
