//! The pooled keep-alive HTTP client, one attempt at a time: send, read the response within the
//! timeout, keep the first 4 KiB of its body. Plain-text HTTP/1.1 (and TLS when HTTP/1.1 is
//! asked for) goes through Courier's lean connection pool (`pool`, `conn`, `wire`), where the
//! request's own future drives its connection; HTTP/2, and `Auto` over TLS (ALPN decides),
//! through hyper-util's client over rustls.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::uri::Scheme;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::classes;
use super::config::{HttpVersion, SendConfig};
use super::conn::Answer;
use super::pool::Http1Pool;
use super::retry::TransportError;
use super::tls::{TlsError, client_config};
use super::wire::encode_request;

/// Bytes of a response body kept for dead letters.
pub const BODY_KEEP: usize = 4096;
/// A response body larger than this is not drained; its connection is dropped instead.
const BODY_DRAIN_MAX: u64 = 1 << 20;

/// A response as far as the send path cares.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    /// The answer's headers; the lean HTTP/1.1 path leaves them out of a 2xx answer, which
    /// needs nothing but its status.
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

/// One request as the client sends it: the built request's parts, plus headers added per
/// attempt (idempotency key, auth), which replace any of the same name.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub extra: [Option<(&'a HeaderName, &'a HeaderValue)>; 2],
    pub body: &'a Bytes,
}

impl<'a> Outgoing<'a> {
    /// The same request with `header` as its second per-attempt header.
    fn with_header(self, header: Option<&'a (HeaderName, HeaderValue)>) -> Outgoing<'a> {
        match header {
            Some((n, v)) => Outgoing { extra: [self.extra[0], Some((n, v))], ..self },
            None => self,
        }
    }

    fn extras(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> + Clone {
        self.extra.iter().flatten().map(|(n, v)| (*n, *v))
    }

    fn to_hyper(self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.clone_from(self.headers);
        for (name, value) in self.extras() {
            headers.insert(name.clone(), value.clone());
        }
        request
    }
}

/// A cheap-to-clone pooled HTTP client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    /// hyper-util's client: HTTP/2, and HTTP/1.1-or-2 by ALPN over TLS.
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The lean HTTP/1.1 path: plain-text HTTP unless HTTP/2 is asked for, and TLS when HTTP/1.1
    /// is asked for.
    http1: Option<Arc<Http1Pool>>,
    version: HttpVersion,
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
            Arc::new(Http1Pool::new(connector, config.max_in_flight, config.pool_idle_timeout))
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
        Ok(Self { inner: client.build(connector), http1, version: config.http_version })
    }

    /// Sends `request` and reads the response, all within `timeout`.
    pub async fn execute(&self, request: Outgoing<'_>, timeout: Duration) -> Result<Response, AttemptError> {
        match self.execute_gated(request, timeout, std::future::ready(Gate::Go(None))).await {
            Gated::Sent(result) => result,
            Gated::Held | Gated::Failed(_) | Gated::Again => unreachable_hold(),
        }
    }

    /// Like [`HttpClient::execute`], but the request goes on the wire only once `gate` lets
    /// it — awaited with a connection ready (a pooled one, or one just opened), so the instant
    /// the limiter admits a request is the instant it is written, however long connecting
    /// took. The gate may add one header (the auth header, fetched after the wait so it is
    /// fresh) or stop the request ([`Gated::Held`], [`Gated::Failed`]). Connecting and the
    /// exchange each get `timeout`; waiting at the gate does not count against it.
    pub async fn execute_gated(
        &self,
        request: Outgoing<'_>,
        timeout: Duration,
        gate: impl std::future::Future<Output = Gate>,
    ) -> Gated {
        let timed_out = || AttemptError {
            kind: TransportError::Timeout,
            message: format!("no complete response within {}ms", timeout.as_millis()),
        };
        let Some(pool) = self.lean(request.uri) else {
            // hyper-util connects inside the request: the gate is passed first.
            let header = match gate.await {
                Gate::Go(header) => header,
                Gate::Hold => return Gated::Held,
                Gate::Fail(e) => return Gated::Failed(e),
                Gate::Again => return Gated::Again,
            };
            let request = request.with_header(header.as_ref());
            let exchange = async {
                let response = self
                    .inner
                    .request(request.to_hyper())
                    .await
                    .map_err(|e| AttemptError { kind: classes::of_client(&e), message: error_chain(&e) })?;
                read_response(response).await
            };
            return Gated::Sent(tokio::time::timeout(timeout, exchange).await.unwrap_or_else(|_| Err(timed_out())));
        };
        let checkout = match tokio::time::timeout(timeout, pool.checkout(request.uri)).await {
            Ok(Ok(checkout)) => checkout,
            Ok(Err(e)) => return Gated::Sent(Err(connect_error(&e))),
            Err(_) => return Gated::Sent(Err(timed_out())),
        };
        let header = match gate.await {
            Gate::Go(header) => header,
            stop => {
                pool.checkin(checkout);
                return match stop {
                    Gate::Fail(e) => Gated::Failed(e),
                    Gate::Again => Gated::Again,
                    _ => Gated::Held,
                };
            }
        };
        let request = request.with_header(header.as_ref());
        let exchange = self.exchange_on(pool, checkout, request);
        Gated::Sent(tokio::time::timeout(timeout, exchange).await.unwrap_or_else(|_| Err(timed_out())))
    }

    /// The lean pool, when it serves `uri`: always for plain-text HTTP/1.1, and over TLS only
    /// when HTTP/1.1 was asked for (with `Auto`, ALPN may choose HTTP/2).
    fn lean(&self, uri: &Uri) -> Option<&Http1Pool> {
        let pool = self.http1.as_deref()?;
        (self.version == HttpVersion::Http1 || uri.scheme() != Some(&Scheme::HTTPS)).then_some(pool)
    }

    async fn exchange_on(
        &self,
        pool: &Http1Pool,
        mut checkout: super::pool::Checkout,
        request: Outgoing<'_>,
    ) -> Result<Response, AttemptError> {
        let target = request.uri.path_and_query().map_or("/", |p| p.as_str());
        loop {
            let conn = &mut checkout.conn;
            encode_request(
                &mut conn.out,
                request.method,
                target,
                &checkout.host,
                request.headers,
                request.extras(),
                request.body,
            );
            match conn.exchange(request.method, BODY_KEEP, BODY_DRAIN_MAX).await {
                Ok(Answer { response, reusable }) => {
                    if reusable {
                        pool.checkin(checkout);
                    }
                    return Ok(response);
                }
                // The partner dropped an idle keep-alive connection as the request went out:
                // once more on a fresh one (any duplicate carries the same idempotency key).
                Err(e) if checkout.reused && e.is_stale_connection() => {
                    tracing::debug!(error = %e, "reused connection was closed; sending again on a new one");
                    pool.reconnect(&mut checkout).await.map_err(|e| connect_error(&e))?;
                }
                Err(e) => return Err(AttemptError { kind: classes::of_exchange(&e), message: error_chain(&e) }),
            }
        }
    }
}

/// What a gate lets through.
#[derive(Debug)]
pub enum Gate {
    /// Send now, with this header added (replacing one of the same name).
    Go(Option<(HeaderName, HeaderValue)>),
    /// Send nothing (the record is given up on for now).
    Hold,
    /// Send nothing: this went wrong before the request could go (no credentials).
    Fail(String),
    /// Send nothing now: the request must wait (credentials refused meanwhile) and try again.
    Again,
}

/// What became of a gated attempt.
#[derive(Debug)]
pub enum Gated {
    /// It went out (or failed trying): the exchange's result.
    Sent(Result<Response, AttemptError>),
    /// The gate said hold: nothing was sent.
    Held,
    /// The gate failed: nothing was sent.
    Failed(String),
    /// The gate said try again later: nothing was sent.
    Again,
}

fn unreachable_hold() -> Result<Response, AttemptError> {
    // An always-open gate never holds; answer as a connect error rather than panic.
    Err(AttemptError { kind: TransportError::Connect, message: "the request was held back".to_owned() })
}

fn connect_error(e: &(dyn std::error::Error + 'static)) -> AttemptError {
    AttemptError { kind: TransportError::Connect, message: error_chain(e) }
}

/// Reads a hyper response, keeping the first [`BODY_KEEP`] bytes of its body (a body larger
/// than [`BODY_DRAIN_MAX`] is not read further; hyper then drops its connection).
async fn read_response(response: http::Response<hyper::body::Incoming>) -> Result<Response, AttemptError> {
    let (parts, mut body) = response.into_parts();
    let mut kept = BytesMut::new();
    let mut read = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| AttemptError {
            kind: classes::of_chain(&e),
            message: format!("failed to read the response body: {}", error_chain(&e)),
        })?;
        if let Ok(data) = frame.into_data() {
            read += data.len() as u64;
            if kept.len() < BODY_KEEP {
                let take = data.len().min(BODY_KEEP - kept.len());
                kept.extend_from_slice(&data[..take]);
            }
            if read > BODY_DRAIN_MAX {
                break;
            }
        }
    }
    Ok(Response { status: parts.status, headers: parts.headers, body: kept.freeze() })
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
