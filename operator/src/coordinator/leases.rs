//! The lease table: which shard of which package is leased to whom, with checkpoints and
//! counters. Pure and synchronous: no I/O, time is passed in.
//!
//! - [`LeaseTable::grant`] hands out pending shards of a Destination's packages by priority
//!   (higher first), then age (older first), then shard id; [`LeaseTable::work`] and
//!   [`Work::room`] say how many of them a worker may take so the work left spreads evenly over
//!   the workers.
//! - [`LeaseTable::report`] renews a lease and takes in its progress: counters are cumulative
//!   per shard, so the table keeps the highest value of each (a repeated or late report cannot
//!   double-count), and reports of any other epoch are ignored.
//! - [`LeaseTable::expire`] returns leases not renewed within their TTL to pending, at their
//!   last checkpoint.
//! - Revocation (pre-emption, suspension) marks a lease *revoking*: the shard is not granted
//!   again until the worker gave its final report or the lease ran out.

mod fair;
mod package;
#[cfg(test)]
mod proptests;
mod table;
#[cfg(test)]
pub(crate) mod tests;

pub use fair::{Work, fair_share};
pub use package::{LeaseState, PackageEntry, ShardEntry, ShardState};
pub use table::{Grant, LeaseTable, RESTORED_HOLD_TTLS, ReportOutcome};

/// Default lease time-to-live.
pub const DEFAULT_LEASE_TTL_MS: u64 = 10_000;
