//! A lean HTTP/1.1 connection pool over hyper's connection-level client: idle connections are
//! kept per scheme and authority and handed out LIFO. It skips the generic pool machinery of
//! hyper-util's client, which costs a large share of the CPU time per request at tens of
//! thousands of requests per second on one core.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri};
use http_body_util::Full;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service as _;

/// Where requests go: scheme and authority (cheap to clone and to hash, unlike a formatted key).
type Origin = (Scheme, Authority);

/// Idle HTTP/1.1 connections by origin.
#[derive(Debug)]
pub struct Http1Pool {
    connector: HttpsConnector<HttpConnector>,
    /// Usually one origin (a Destination's endpoint): a list beats hashing authorities.
    origins: Mutex<Vec<(Origin, OriginState)>>,
    max_idle: usize,
}

/// One origin's idle connections and its `Host` header value, made once.
#[derive(Debug)]
struct OriginState {
    idle: Vec<SendRequest<Full<Bytes>>>,
    host: Option<HeaderValue>,
}

/// A connection taken from the pool, with the origin it goes back under.
pub struct Lease {
    pub sender: SendRequest<Full<Bytes>>,
    origin: Origin,
}

/// Why no connection could be had or the request could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("URL {0} has no scheme or host")]
    Url(String),
    #[error("failed to connect to {key}: {source}")]
    Connect { key: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("HTTP/1.1 handshake with {key} failed: {source}")]
    Handshake { key: String, source: hyper::Error },
}

impl Http1Pool {
    /// A pool connecting through `connector` (its TLS config must offer only http/1.1).
    pub fn new(connector: HttpsConnector<HttpConnector>, max_idle: usize) -> Self {
        Self { connector, origins: Mutex::new(Vec::new()), max_idle: max_idle.max(1) }
    }

    /// A ready connection to the request's origin, and the request in origin form with a
    /// Host header.
    pub async fn checkout(&self, request: &mut Request<Full<Bytes>>) -> Result<Lease, PoolError> {
        let uri = request.uri();
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(PoolError::Url(uri.to_string()));
        };
        let origin = (scheme.clone(), authority.clone());
        let path = uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        let full = std::mem::replace(request.uri_mut(), Uri::from(path));
        let (host, mut idle) = self.take_idle(&origin);
        if let Some(host) = host {
            request.headers_mut().entry(HOST).or_insert(host);
        }
        while let Some(mut sender) = idle.take().or_else(|| self.take_idle(&origin).1) {
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Ok(Lease { sender, origin });
            }
        }
        // Boxed: connecting is rare, and its future (a TLS stream in the making) would otherwise
        // be part of every request's future, copied whole each time one is queued.
        Box::pin(self.connect(full, origin)).await
    }

    async fn connect(&self, uri: Uri, origin: Origin) -> Result<Lease, PoolError> {
        let key = || format!("{}://{}", origin.0, origin.1);
        let io = self.connector.clone().call(uri).await.map_err(|source| PoolError::Connect { key: key(), source })?;
        let (sender, connection) =
            Builder::new().handshake(io).await.map_err(|source| PoolError::Handshake { key: key(), source })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP/1.1 connection ended with an error");
            }
        });
        Ok(Lease { sender, origin })
    }

    /// Returns a connection whose response was read to the end.
    pub fn checkin(&self, lease: Lease) {
        if lease.sender.is_closed() {
            return;
        }
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, state)) = origins.iter_mut().find(|(o, _)| *o == lease.origin)
            && state.idle.len() < self.max_idle
        {
            state.idle.push(lease.sender);
        }
    }

    /// The origin's Host header value and its most recently used idle connection, if any.
    fn take_idle(&self, origin: &Origin) -> (Option<HeaderValue>, Option<SendRequest<Full<Bytes>>>) {
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        let i = match origins.iter().position(|(o, _)| o == origin) {
            Some(i) => i,
            None => {
                let host = HeaderValue::from_str(origin.1.as_str()).ok();
                origins.push((origin.clone(), OriginState { idle: Vec::new(), host }));
                origins.len() - 1
            }
        };
        let state = &mut origins[i].1;
        (state.host.clone(), state.idle.pop())
    }
}
