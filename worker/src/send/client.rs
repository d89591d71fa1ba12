//! The pooled keep-alive HTTP client (hyper-util's client over rustls), one attempt at a time:
//! send, read the response within the timeout, keep the first 4 KiB of its body.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::config::{HttpVersion, SendConfig};
use super::pool::Http1Pool;
use super::retry::TransportError;
use super::tls::{TlsError, client_config};

/// Bytes of a response body kept for dead letters.
pub const BODY_KEEP: usize = 4096;
/// A response body larger than this is not drained; its connection is dropped instead.
const BODY_DRAIN_MAX: usize = 1 << 20;

/// A response as far as the send path cares.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The first [`BODY_KEEP`] bytes of the body.
    pub body: Bytes,
}

/// An attempt that got no response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AttemptError {
    pub kind: TransportError,
    pub message: String,
}

/// The client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A cheap-to-clone pooled HTTP client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The lean HTTP/1.1 path, used unless HTTP/2 is asked for.
    http1: Option<std::sync::Arc<Http1Pool>>,
}

impl HttpClient {
    /// A client for `config`'s TLS, HTTP version and pool settings.
    pub fn new(config: &SendConfig) -> Result<Self, ClientError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let tls = client_config(&config.tls)?;
        let http1 = (config.http_version != HttpVersion::Http2).then(|| {
            let connector = HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http.clone());
            std::sync::Arc::new(Http1Pool::new(connector, config.max_in_flight))
        });
        let builder = HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
        let connector = match config.http_version {
            HttpVersion::Auto => builder.enable_http1().enable_http2().wrap_connector(http),
            HttpVersion::Http1 => builder.enable_http1().wrap_connector(http),
            HttpVersion::Http2 => builder.enable_http2().wrap_connector(http),
        };
        let mut client = Client::builder(TokioExecutor::new());
        client
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.max_in_flight.max(1))
            .http2_only(config.http_version == HttpVersion::Http2);
        Ok(Self { inner: client.build(connector), http1 })
    }

    /// Sends `request` and reads the response, all within `timeout`.
    pub async fn execute(&self, request: Request<Full<Bytes>>, timeout: Duration) -> Result<Response, AttemptError> {
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(AttemptError {
                kind: TransportError::Timeout,
                message: format!("no complete response within {}ms", timeout.as_millis()),
            }),
        }
    }

    async fn exchange(&self, mut request: Request<Full<Bytes>>) -> Result<Response, AttemptError> {
        let connect_error = |e: &(dyn std::error::Error + 'static)| AttemptError {
            kind: TransportError::Connect,
            message: error_chain(e),
        };
        let Some(pool) = &self.http1 else {
            let response = self.inner.request(request).await.map_err(|e| connect_error(&e))?;
            return read_response(response).await.map(|(r, _)| r);
        };
        let mut lease = pool.checkout(&mut request).await.map_err(|e| connect_error(&e))?;
        let response = lease.sender.send_request(request).await.map_err(|e| connect_error(&e))?;
        let (response, complete) = read_response(response).await?;
        if complete {
            pool.checkin(lease);
        }
        Ok(response)
    }
}

/// Reads a response, keeping the first [`BODY_KEEP`] bytes of its body; `true` when the body
/// was read to its end (so the connection can be reused).
async fn read_response(response: http::Response<hyper::body::Incoming>) -> Result<(Response, bool), AttemptError> {
    {
        let (parts, mut body) = response.into_parts();
        let mut kept = BytesMut::new();
        let mut read = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| AttemptError {
                kind: TransportError::Connect,
                message: format!("failed to read the response body: {}", error_chain(&e)),
            })?;
            if let Ok(data) = frame.into_data() {
                read += data.len();
                if kept.len() < BODY_KEEP {
                    let take = data.len().min(BODY_KEEP - kept.len());
                    kept.extend_from_slice(&data[..take]);
                }
                if read > BODY_DRAIN_MAX {
                    let response = Response { status: parts.status, headers: parts.headers, body: kept.freeze() };
                    return Ok((response, false));
                }
            }
        }
        Ok((Response { status: parts.status, headers: parts.headers, body: kept.freeze() }, true))
    }
}

/// An error and its sources, joined with ": ".
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}
