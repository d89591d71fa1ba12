#![forbid(unsafe_code)]
//! courier-worker: reads a shard of a delivery package and sends one HTTP request per record,
//! at exactly the rate it is allowed, accounting for every record.

pub mod ack;
pub mod cli;
pub mod config;
pub mod coordinator;
pub mod deadletter;
pub mod decode;
/// Fuzz targets of the parsers of untrusted input (driven by `fuzz/` and `tests/integration/fuzz_bounded.rs`).
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod limiter;
pub mod metrics;
pub mod pipeline;
pub mod record;
pub mod request;
pub mod send;
pub mod shard;

/// The coordination protocol (defined in `courier-core`, shared with the operator).
pub use courier_core::protocol;
/// Sources (`courier-source`, shared with the operator).
pub use courier_source as source;
