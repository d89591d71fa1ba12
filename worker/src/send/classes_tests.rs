//! Each way a partner can fail an attempt, served by a real socket on loopback, against both
//! send paths: the lean HTTP/1.1 connection and hyper's HTTP/2 (h2c, prior knowledge). Both
//! must name the same class, so the same `retryOn` entry governs it whatever the Destination's
//! HTTP version.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::client::{HttpClient, Outgoing};
use super::config::{HttpVersion, SendConfig};
use super::retry::TransportError;

/// How the partner misbehaves on each connection it accepts.
#[derive(Debug, Clone, Copy)]
enum Misbehaviour {
    /// Reads what comes, then closes without a word.
    CloseAfterReading,
    /// Answers bytes that are not HTTP (for h2c: not a SETTINGS frame either).
    Garbage,
    /// Reads and never answers.
    Silent,
}

async fn serve(listener: TcpListener, how: Misbehaviour) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = socket.read(&mut buf).await;
            match how {
                Misbehaviour::CloseAfterReading => {}
                Misbehaviour::Garbage => {
                    let _ = socket.write_all(b"NOT HTTP AT ALL\r\n\r\n\x00\x01\x02\x03\x04\x05\x06\x07\x08").await;
                    let _ = socket.flush().await;
                    // Keep the connection open so the garbage is what the client reads.
                    let _ = socket.read(&mut buf).await;
                }
                Misbehaviour::Silent => {
                    let _ = socket.read(&mut buf).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            }
            drop(socket);
        });
    }
}

async fn attempt(port: u16, version: HttpVersion, body: Bytes, timeout: Duration) -> Option<TransportError> {
    let config = SendConfig { http_version: version, max_in_flight: 4, ..SendConfig::default() };
    let client = HttpClient::new(&config).expect("client");
    let uri: Uri = format!("http://127.0.0.1:{port}/records").parse().expect("uri");
    let headers = HeaderMap::new();
    let request = Outgoing { method: &Method::POST, uri: &uri, headers: &headers, extra: [None, None], body: &body };
    client.execute(request, timeout).await.err().map(|e| e.kind)
}

const VERSIONS: [HttpVersion; 2] = [HttpVersion::Http1, HttpVersion::Http2];

#[tokio::test]
async fn a_partner_that_is_not_there_is_a_connect_failure_on_both_paths() {
    // A port bound and released: nothing listens there (no other test binds it meanwhile in
    // this process; a stray listener would make the attempt answer, failing loudly).
    let port = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
    for version in VERSIONS {
        let class = attempt(port, version, Bytes::from_static(b"{}"), Duration::from_secs(5)).await;
        assert_eq!(class, Some(TransportError::Connect), "{version:?}");
    }
}

#[tokio::test]
async fn each_misbehaviour_gets_the_same_class_on_both_paths() {
    let cases = [
        (Misbehaviour::CloseAfterReading, TransportError::Read),
        (Misbehaviour::Garbage, TransportError::Protocol),
        (Misbehaviour::Silent, TransportError::Timeout),
    ];
    for (how, expected) in cases {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(serve(listener, how));
        for version in VERSIONS {
            let class = attempt(port, version, Bytes::from_static(b"{}"), Duration::from_millis(500)).await;
            assert_eq!(class, Some(expected), "{how:?} over {version:?}");
        }
        server.abort();
    }
}

#[tokio::test]
async fn a_request_cut_off_while_it_is_written_is_a_write_failure_on_the_lean_path() {
    // The partner resets the connection without reading: an 8 MiB body cannot be written.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { return };
            socket.set_zero_linger().expect("linger 0: close with a reset");
            drop(socket);
        }
    });
    let body = Bytes::from(vec![b'x'; 8 << 20]);
    let class = attempt(port, HttpVersion::Http1, body, Duration::from_secs(5)).await;
    assert_eq!(class, Some(TransportError::Write));
    server.abort();
}
