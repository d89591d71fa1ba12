//! A lean HTTP/1.1 connection pool over hyper's connection-level client: idle connections are
//! kept per scheme and authority and handed out LIFO. It skips the generic pool machinery of
//! hyper-util's client, which costs a large share of the CPU time per request at tens of
//! thousands of requests per second on one core.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::uri::{Parts, PathAndQuery};
use http::{Request, Uri};
use http_body_util::Full;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service as _;

/// Idle HTTP/1.1 connections by `scheme://authority`.
#[derive(Debug)]
pub struct Http1Pool {
    connector: HttpsConnector<HttpConnector>,
    idle: Mutex<HashMap<String, Vec<SendRequest<Full<Bytes>>>>>,
    max_idle: usize,
}

/// A connection taken from the pool, with the key it goes back under.
pub struct Lease {
    pub sender: SendRequest<Full<Bytes>>,
    key: String,
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
        Self { connector, idle: Mutex::new(HashMap::new()), max_idle: max_idle.max(1) }
    }

    /// A ready connection to the request's origin, and the request in origin form with a
    /// Host header.
    pub async fn checkout(&self, request: &mut Request<Full<Bytes>>) -> Result<Lease, PoolError> {
        let uri = request.uri().clone();
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(PoolError::Url(uri.to_string()));
        };
        let key = format!("{scheme}://{authority}");
        if !request.headers().contains_key(HOST)
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            request.headers_mut().insert(HOST, host);
        }
        let mut parts = Parts::default();
        parts.path_and_query = Some(uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
        *request.uri_mut() = Uri::from_parts(parts).map_err(|_| PoolError::Url(uri.to_string()))?;
        while let Some(mut sender) = self.pop(&key) {
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Ok(Lease { sender, key });
            }
        }
        // Boxed: connecting is rare, and its future (a TLS stream in the making) would otherwise
        // be part of every request's future, copied whole each time one is queued.
        Box::pin(self.connect(uri, key)).await
    }

    async fn connect(&self, uri: Uri, key: String) -> Result<Lease, PoolError> {
        let io =
            self.connector.clone().call(uri).await.map_err(|source| PoolError::Connect { key: key.clone(), source })?;
        let (sender, connection) =
            Builder::new().handshake(io).await.map_err(|source| PoolError::Handshake { key: key.clone(), source })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP/1.1 connection ended with an error");
            }
        });
        Ok(Lease { sender, key })
    }

    /// Returns a connection whose response was read to the end.
    pub fn checkin(&self, lease: Lease) {
        if lease.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(lease.key).or_default();
        if list.len() < self.max_idle {
            list.push(lease.sender);
        }
    }

    fn pop(&self, key: &str) -> Option<SendRequest<Full<Bytes>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).get_mut(key)?.pop()
    }
}
