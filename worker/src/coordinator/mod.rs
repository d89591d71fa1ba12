//! The seam between the worker and whoever hands out work: "here is my progress, give me my
//! share, pause and leases". [`LocalCoordinator`] plans a whole source by itself for
//! `courier-worker run`; [`HttpCoordinator`] speaks the operator's heartbeat protocol
//! ([`crate::protocol`]). One [`Driver`] runs the worker against either.

mod driver;
mod http;
mod local;

pub use driver::{Driver, DriverConfig, DriverEnd, DriverError};
pub use http::{HttpCoordinator, SERVICE_ACCOUNT_TOKEN};
pub use local::{LocalCoordinator, LocalPlan, LocalQuota, LocalSummary, ShardState};

use std::future::Future;

use crate::protocol::{HeartbeatRequest, HeartbeatResponse};

/// A heartbeat could not be exchanged.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("coordinator at {url} is unreachable: {source}")]
    Unreachable { url: String, source: Cause },
    #[error("coordinator at {url} gave no answer within {seconds} s")]
    NoAnswer { url: String, seconds: u64 },
    #[error("coordinator at {url} answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("coordinator at {url} sent an invalid answer: {source}")]
    Invalid { url: String, source: Cause },
    #[error("no coordinator URL given (got {given:?})")]
    NoUrl { given: String },
    #[error("cannot set up the coordinator client for {urls}: {source}")]
    Setup { urls: String, source: Cause },
    #[error("the checkpoint file {path} belongs to another source or shard plan")]
    ForeignCheckpoint { path: String },
    #[error("failed to write the checkpoint file {path}: {source}")]
    Checkpoint { path: String, source: std::io::Error },
}

/// What a [`CoordinatorError`] came from (hyper, serde_json, rustls …), kept whole for its chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Whoever hands out work to this worker.
pub trait Coordinator: Send {
    /// Reports progress and receives share, pause, Destination changes and leases.
    fn heartbeat(
        &mut self,
        request: HeartbeatRequest,
    ) -> impl Future<Output = Result<HeartbeatResponse, CoordinatorError>> + Send;

    /// True when there will never be more work (a local run whose shards are all finished).
    fn finished(&self) -> bool {
        false
    }
}
