//! The send stack: a pooled HTTP client with TLS and auth, the retry classifier and back-off,
//! and one record's attempts through the shared limiter. The loop over a shard's records is the
//! pipeline's (`crate::pipeline`).

mod attempt;
mod auth;
mod classes;
#[cfg(test)]
mod classes_tests;
mod client;
mod config;
mod conn;
pub mod credentials;
mod from_api;
mod observer;
pub mod partner;
mod pool;
mod retry;
pub mod throttle;
mod tls;
pub mod wire;

pub use attempt::{Delivery, Failure, Sender};
pub use auth::{Auth, AuthError, TokenSource};
pub use client::{AttemptError, BODY_KEEP, ClientError, HttpClient, Outgoing, Response};
pub use config::{AuthConfig, HttpVersion, OAuth2Config, SendConfig, TlsConfig};
pub use credentials::{AuthDecision, CredentialEvents, CredentialSource, CredentialWatch, Ready, Refusal};
pub use from_api::{FromApiError, SecretLookup, auth_config, retry_config, send_config};
pub use observer::{AttemptReport, Both, NoopObserver, SendObserver, Throttle, ThrottleSummary, ThrottleTracker};
pub use partner::PartnerWatch;
pub use retry::{InvalidRetryOn, Jitter, RetryConfig, RetryLogic, RetryOn, TransportError, Verdict, retry_after};
pub use tls::{TlsError, client_config};
