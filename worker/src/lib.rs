#![forbid(unsafe_code)]
//! courier-worker: reads a shard of a delivery package and sends one HTTP request per record,
//! at exactly the rate it is allowed, accounting for every record.

pub mod record;
pub mod source;
pub mod decode;
pub mod shard;
pub mod request;
pub mod ack;
pub mod limiter;
pub mod send;
pub mod deadletter;
pub mod protocol;
pub mod config;
pub mod metrics;
pub mod pipeline;
pub mod coordinator;
pub mod health;
pub mod cli;
