#![forbid(unsafe_code)]
//! courier-worker: reads a shard of a delivery package and sends one HTTP request per record,
//! at exactly the rate it is allowed, accounting for every record.

pub mod ack;
pub mod cli;
pub mod config;
pub mod coordinator;
pub mod deadletter;
pub mod decode;
pub mod health;
pub mod limiter;
pub mod metrics;
pub mod pipeline;
pub mod protocol;
pub mod record;
pub mod request;
pub mod send;
pub mod shard;
pub mod source;
