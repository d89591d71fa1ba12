//! The partner simulator: a real HTTP server playing a rate-limited,
//! misbehaving partner API, with a ledger of accepted idempotency keys.
//!
//! Start it in-process with [`Simulator::start`] or run the `partner-sim` binary.
//! Reserved paths: `GET /stats`, `POST /reset`, `GET|PUT /config`, `GET /keys`
//! and `POST /oauth/token`; everything else is partner traffic.

pub mod arrivals;
mod auth;
mod body;
mod bucket;
pub mod config;
mod control;
mod ledger;
mod limiter;
mod partner;
mod random;
mod server;
mod stamped;
mod state;
mod stats;
pub mod tls;

pub use arrivals::{Arrival, RejectionCluster, bins, busiest_window, longest_gap, rejection_clusters};
pub use config::{Auth, BurstWindow, InjectStatus, Latency, LimitKey, RateLimit, SimConfig, SlowBody};
pub use server::{SimError, Simulator};
pub use state::ConfigError;
pub use stats::{PerSecond, Rejected, SERIES_SECS, StatsSnapshot};
pub use tls::{TestPki, TlsIdentity};
