//! The HTTP layer against real servers: keep-alive reuse, TLS with a partner's private CA,
//! HTTP/2 by ALPN and by prior knowledge (the partner simulator), and the framing corners of
//! HTTP/1.1 — chunked and close-delimited bodies, interim answers, connections the partner
//! closes — against a raw-socket partner whose every byte the test chooses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::send_support::*;
use courier_e2e::sim::{SimConfig, Simulator, TestPki};
use courier_worker::send::{HttpVersion, SendConfig, TlsConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn config(version: HttpVersion, tls: TlsConfig, in_flight: usize) -> SendConfig {
    SendConfig { http_version: version, tls, max_in_flight: in_flight, retry: quick_retry(1), ..SendConfig::default() }
}

/// Delivers `n` records to `url` as package `name` and returns what happened.
async fn send(url: &str, name: &str, config: SendConfig, n: u64) -> Run {
    let delivery = sender(url, name, config, None, Arc::default());
    deliver(&delivery, records(&format!("file:///data/{name}.jsonl"), n)).await
}

fn private_ca(pki: &TestPki) -> TlsConfig {
    TlsConfig { extra_ca_pem: Some(pki.ca_pem.clone().into_bytes()), insecure_skip_verify: false }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_carry_many_requests_each() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    let run = send(&sim.url(), "reuse", config(HttpVersion::Http1, TlsConfig::default(), 4), 400).await;

    let stats = sim.stats();
    assert_eq!((run.counters().sent, stats.accepted, stats.duplicates), (400, 400, 0));
    assert!(stats.connections <= 4, "400 requests, 4 at a time, over {} connections", stats.connections);
    assert_eq!(stats.http2_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_partner_with_a_private_ca_gets_every_record_over_http_1_1() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let pki = TestPki::generate().expect("pki");
    let sim = Simulator::start_tls("127.0.0.1:0", SimConfig::default(), &pki.server).await.expect("simulator");
    let run = send(&sim.url(), "tls1", config(HttpVersion::Http1, private_ca(&pki), 4), 200).await;

    let stats = sim.stats();
    assert_eq!((run.counters().sent, stats.accepted, stats.unique_keys), (200, 200, 200));
    assert_eq!(stats.http2_requests, 0, "HTTP/1.1 was asked for");
    assert!(stats.connections <= 4, "TLS connections are kept alive too: {}", stats.connections);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_speaks_http2_when_the_tls_partner_offers_it() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let pki = TestPki::generate().expect("pki");
    let sim = Simulator::start_tls("127.0.0.1:0", SimConfig::default(), &pki.server).await.expect("simulator");
    let run = send(&sim.url(), "alpn", config(HttpVersion::Auto, private_ca(&pki), 8), 200).await;

    let stats = sim.stats();
    assert_eq!((run.counters().sent, stats.accepted, stats.duplicates), (200, 200, 0));
    assert_eq!(stats.http2_requests, 200, "ALPN chose h2 for every request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_by_prior_knowledge_on_plain_http() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator");
    let run = send(&sim.url(), "h2c", config(HttpVersion::Http2, TlsConfig::default(), 8), 200).await;

    let stats = sim.stats();
    assert_eq!((run.counters().sent, stats.accepted, stats.http2_requests), (200, 200, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_unknown_ca_is_refused_and_dead_lettered_with_the_reason() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let pki = TestPki::generate().expect("pki");
    let sim = Simulator::start_tls("127.0.0.1:0", SimConfig::default(), &pki.server).await.expect("simulator");
    for version in [HttpVersion::Http1, HttpVersion::Auto] {
        let run = send(&sim.url(), "unknown-ca", config(version, TlsConfig::default(), 2), 3).await;

        assert_eq!(run.counters().dead_lettered, 3, "{version:?}");
        let error = run.dead_letters[0]["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.to_lowercase().contains("certificate"), "{version:?}: {error}");
    }
    assert_eq!(sim.stats().accepted, 0);

    let skip = TlsConfig { extra_ca_pem: None, insecure_skip_verify: true };
    let run = send(&sim.url(), "skip-verify", config(HttpVersion::Http1, skip, 2), 3).await;
    assert_eq!((run.counters().sent, sim.stats().accepted), (3, 3), "insecureSkipVerify accepts it");
}

/// What the raw partner does with the `n`th request (from 0) of a connection.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// Writes these bytes and keeps the connection open.
    Send(&'static str),
    /// Writes these bytes and closes the connection.
    SendAndClose(&'static str),
    /// Closes the connection without answering.
    Close,
}

/// The partner's answer to the `n`th request of a connection.
type Script = fn(u64) -> Reply;

/// A partner on a raw socket: reads each request (head and Content-Length body) and answers
/// with what `script` says for its position on the connection.
struct RawPartner {
    url: String,
    connections: Arc<AtomicU64>,
    /// Requests answered.
    requests: Arc<AtomicU64>,
}

impl RawPartner {
    async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let connections = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve_raw(stream, script, r.clone()));
            }
        });
        Self { url, connections, requests }
    }
}

async fn serve_raw(mut stream: TcpStream, script: Script, requests: Arc<AtomicU64>) {
    let mut buf = Vec::new();
    for n in 0.. {
        let Some(len) = read_request(&mut stream, &mut buf).await else { return };
        buf.drain(..len);
        let reply = script(n);
        if !matches!(reply, Reply::Close) {
            requests.fetch_add(1, Ordering::Relaxed);
        }
        match reply {
            Reply::Send(answer) => {
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
            Reply::SendAndClose(answer) => {
                let _ = stream.write_all(answer.as_bytes()).await;
                return;
            }
            Reply::Close => return,
        }
    }
}

/// Reads one whole request into `buf`; its length, or `None` at end of stream.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = request.parse(buf) {
            let body: usize = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .unwrap_or(0);
            if buf.len() >= head + body {
                return Some(head + body);
            }
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[tokio::test]
async fn a_chunked_refusal_is_dead_lettered_with_its_whole_body() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let partner = RawPartner::start(|_| {
        Reply::Send("HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nX-Reason: schema\r\n\r\n4\r\nbad \r\n6;x=y\r\nrecord\r\n0\r\n\r\n")
    })
    .await;
    let run = send(&partner.url, "chunked", config(HttpVersion::Http1, TlsConfig::default(), 1), 3).await;

    assert_eq!(run.counters().dead_lettered, 3);
    assert_eq!(run.dead_letters[0]["status"], 400);
    assert_eq!(run.dead_letters[0]["body"], "bad record");
    assert_eq!(partner.connections.load(Ordering::Relaxed), 1, "a chunked answer read to its end keeps the connection");
}

#[tokio::test]
async fn answers_delimited_by_close_or_marked_close_take_a_new_connection_each() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let scripts: [(&str, Script); 2] = [
        ("until close", |_| Reply::SendAndClose("HTTP/1.1 200 OK\r\n\r\nfine")),
        ("marked close", |_| {
            Reply::SendAndClose("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        }),
    ];
    for (answer, script) in scripts {
        let partner = RawPartner::start(script).await;
        let run = send(&partner.url, "close", config(HttpVersion::Http1, TlsConfig::default(), 1), 4).await;

        assert_eq!((run.counters().sent, run.counters().retried), (4, 0), "{answer:?}");
        assert_eq!(partner.connections.load(Ordering::Relaxed), 4, "{answer:?}");
    }
}

#[tokio::test]
async fn an_interim_100_continue_is_skipped() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let partner = RawPartner::start(|_| {
        Reply::Send("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    })
    .await;
    let run = send(&partner.url, "interim", config(HttpVersion::Http1, TlsConfig::default(), 1), 3).await;

    assert_eq!(run.counters().sent, 3);
    assert_eq!(partner.connections.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_kept_alive_connection_the_partner_drops_is_replaced_without_using_an_attempt() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // Each connection answers its first request and closes on the second without a word, as a
    // partner whose idle timeout fires just as the request arrives. One attempt per record
    // allowed: only the transparent resend on a fresh connection gets every record through.
    let partner = RawPartner::start(|n| if n == 0 { Reply::Send(OK) } else { Reply::Close }).await;
    let run = send(&partner.url, "stale", config(HttpVersion::Http1, TlsConfig::default(), 1), 5).await;

    assert_eq!((run.counters().sent, run.counters().dead_lettered), (5, 0), "{:?}", run.dead_letters);
    assert_eq!(run.counters().retried, 0, "a stale connection costs no attempt");
    assert_eq!(partner.connections.load(Ordering::Relaxed), 5);
    assert_eq!(partner.requests.load(Ordering::Relaxed), 5, "every record answered once");
}

#[tokio::test]
async fn a_fresh_connection_closed_without_an_answer_is_an_attempt_that_fails() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let partner = RawPartner::start(|_| Reply::Close).await;
    let run = send(&partner.url, "mute", config(HttpVersion::Http1, TlsConfig::default(), 1), 2).await;

    assert_eq!(run.counters().dead_lettered, 2);
    let error = run.dead_letters[0]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("closed the connection before a complete response"), "{error}");
    assert_eq!(partner.connections.load(Ordering::Relaxed), 2, "no resend on a connection that was new");
}
