//! Idle HTTP/1.1 connections, kept per scheme and authority and handed out most recently used
//! first. A connection is owned by the request using it and comes back only when its response
//! was read to the end; one found closed, or idle for longer than the idle timeout, is dropped.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::uri::{Authority, Scheme};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service as _;

use super::conn::{Conn, Stream};

/// Where requests go: scheme and authority (cheap to clone and compare).
type Origin = (Scheme, Authority);

/// Idle HTTP/1.1 connections by origin.
#[derive(Debug)]
pub struct Http1Pool {
    connector: HttpsConnector<HttpConnector>,
    /// Usually one origin (a Destination's endpoint): a list beats hashing authorities.
    origins: Mutex<Vec<(Origin, OriginState)>>,
    max_idle: usize,
    idle_timeout: Duration,
}

/// One origin's idle connections and its `Host` header value, made once.
struct OriginState {
    idle: Vec<Conn>,
    host: Bytes,
}

impl std::fmt::Debug for OriginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginState").field("idle", &self.idle.len()).field("host", &self.host).finish()
    }
}

/// A connection taken from the pool, with what the request needs to use it.
pub struct Checkout {
    pub conn: Conn,
    /// The `Host` header value of the origin.
    pub host: Bytes,
    /// The connection carried a request before (so the partner may have closed it meanwhile).
    pub reused: bool,
    origin: Origin,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("URL {0} has no scheme or host")]
    Url(String),
    #[error("failed to connect to {key}: {source}")]
    Connect { key: String, source: Box<dyn std::error::Error + Send + Sync> },
}

impl Http1Pool {
    /// A pool connecting through `connector` (its TLS config must offer only http/1.1),
    /// keeping at most `max_idle` idle connections per origin for at most `idle_timeout`.
    pub fn new(connector: HttpsConnector<HttpConnector>, max_idle: usize, idle_timeout: Duration) -> Self {
        Self { connector, origins: Mutex::new(Vec::new()), max_idle: max_idle.max(1), idle_timeout }
    }

    /// A usable connection to `uri`'s origin: an idle one if any is still open, else a new one.
    pub async fn checkout(&self, uri: &Uri) -> Result<Checkout, PoolError> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(PoolError::Url(uri.to_string()));
        };
        let origin = (scheme.clone(), authority.clone());
        let (host, idle) = self.take_idle(&origin);
        if let Some(conn) = idle {
            return Ok(Checkout { conn, host, reused: true, origin });
        }
        // Boxed: connecting is rare, and its future (a TLS stream in the making) would otherwise
        // be part of every request's future, copied whole each time one is queued.
        let conn = Box::pin(self.connect(&origin)).await?;
        Ok(Checkout { conn, host, reused: false, origin })
    }

    /// A new connection to the checkout's origin in place of its current one.
    pub async fn reconnect(&self, checkout: &mut Checkout) -> Result<(), PoolError> {
        checkout.conn = Box::pin(self.connect(&checkout.origin)).await?;
        checkout.reused = false;
        Ok(())
    }

    async fn connect(&self, origin: &Origin) -> Result<Conn, PoolError> {
        let key = || format!("{}://{}", origin.0, origin.1);
        let uri = Uri::builder()
            .scheme(origin.0.clone())
            .authority(origin.1.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| PoolError::Connect { key: key(), source: e.into() })?;
        let io = self.connector.clone().call(uri).await.map_err(|source| PoolError::Connect { key: key(), source })?;
        let stream = match io {
            MaybeHttpsStream::Http(tcp) => Stream::Plain(tcp.into_inner()),
            MaybeHttpsStream::Https(tls) => Stream::Tls(Box::new(tls.into_inner())),
        };
        Ok(Conn::new(stream))
    }

    /// Returns a connection whose response was read to the end.
    pub fn checkin(&self, mut checkout: Checkout) {
        let now = tokio::time::Instant::now();
        checkout.conn.idle_since = now;
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, state)) = origins.iter_mut().find(|(o, _)| *o == checkout.origin) {
            // The least recently used one is at the bottom: drop it once it is too old, so a
            // pool that shrank does not hold sockets the partner has long closed.
            if state.idle.first().is_some_and(|c| now.duration_since(c.idle_since) > self.idle_timeout) {
                state.idle.remove(0);
            }
            if state.idle.len() < self.max_idle {
                state.idle.push(checkout.conn);
            }
        }
    }

    /// The origin's Host header value and its most recently used idle connection that is still
    /// open, if any; stale ones met on the way are dropped.
    fn take_idle(&self, origin: &Origin) -> (Bytes, Option<Conn>) {
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        let i = match origins.iter().position(|(o, _)| o == origin) {
            Some(i) => i,
            None => {
                let host = Bytes::copy_from_slice(origin.1.as_str().as_bytes());
                origins.push((origin.clone(), OriginState { idle: Vec::new(), host }));
                origins.len() - 1
            }
        };
        let state = &mut origins[i].1;
        while let Some(mut conn) = state.idle.pop() {
            if conn.idle_since.elapsed() <= self.idle_timeout && conn.is_open() {
                return (state.host.clone(), Some(conn));
            }
        }
        (state.host.clone(), None)
    }
}
