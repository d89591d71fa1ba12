//! The worker's metrics port over real HTTP, as Prometheus and the kubelet use it: `/metrics`
//! is the documented exposition (docs/metrics.md) with OpenMetrics' content type, `/readyz`
//! follows readiness, and `/log-level` refuses what it cannot take.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use courier_worker::health::{self, HealthState};
use courier_worker::metrics::Metrics;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

/// One HTTP/1.1 request on a fresh connection: (status, head, body).
async fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: worker\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn the_metrics_port_serves_the_documented_exposition_readiness_and_the_log_level() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let metrics = Arc::new(Metrics::new("partner"));
    let ready = Arc::new(AtomicBool::new(false));
    let shutdown = CancellationToken::new();
    let state = HealthState { metrics, ready: ready.clone() };
    let addr = health::serve("127.0.0.1:0".parse().expect("addr"), state, shutdown.clone()).await.expect("bind");

    let (status, head, body) = request(addr, "GET", "/metrics", b"").await;
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/openmetrics-text"), "{head}");
    // Chunked or not, the exposition is in the body.
    assert!(body.contains("# EOF"), "{body}");
    courier_e2e::metrics_doc::assert_documented(&body, "courier_worker_");

    assert_eq!(request(addr, "GET", "/healthz", b"").await.0, 200);
    assert_eq!(request(addr, "GET", "/readyz", b"").await.0, 503);
    ready.store(true, Ordering::Relaxed);
    assert_eq!(request(addr, "GET", "/readyz", b"").await.0, 200);
    assert_eq!(request(addr, "GET", "/nothing", b"").await.0, 404);

    // No subscriber of courier_core::telemetry in this test binary: a level that parses cannot
    // be applied (503), one that does not is refused (400), a huge body too (413).
    assert_eq!(request(addr, "GET", "/log-level", b"").await.0, 503);
    assert_eq!(request(addr, "PUT", "/log-level", b"courier_worker=loud").await.0, 400);
    assert_eq!(request(addr, "PUT", "/log-level", &[b'x'; 5000]).await.0, 413);
    assert_eq!(request(addr, "DELETE", "/log-level", b"").await.0, 405);
    shutdown.cancel();
}
