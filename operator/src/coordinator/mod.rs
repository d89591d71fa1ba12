//! The coordinator: the lease table, rate shares and the heartbeat endpoint workers call
//! (DESIGN §3). Only the leader serves it; its memory is a cache rebuilt from status.
//!
//! Controllers feed it Destinations and package plans through a [`Coordinator`] handle and read
//! back [`PackageSnapshot`]s and [`DestinationRuntime`]s; [`Coordinator::changes`] tells them
//! which objects changed.

pub mod auth;
mod destination;
mod handle;
mod handover;
pub mod leases;
pub mod quota;
pub mod server;
pub mod tls;
mod types;

pub use destination::RELEASE_SETTLE_MS;
pub use handle::{CLOCK_MARGIN_MS, Coordinator, CoordinatorConfig, HeartbeatError, now_ms};
pub use types::{
    ActiveShardState, Change, DestinationRuntime, FailedShardState, FailureCount, ObjectKey, PackagePlan,
    PackageSnapshot, PlannedShard, RestoredProgress, WorkerRuntime,
};

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod churn_tests;
#[cfg(test)]
mod handle_tests;
#[cfg(test)]
mod server_tests;
