#![forbid(unsafe_code)]
//! courier-core: what the operator and the worker share, and nothing else — the coordination
//! protocol, shard planning, the one conversion of the API into what a worker needs (format,
//! request, Destination settings) and the names of the secrets a Destination uses, and
//! the logging setup of both binaries (`telemetry`).
//!
//! It depends on the API types and never on `courier-operator` or `courier-worker`.

pub mod aimd;
pub mod datum;
pub mod destination;
pub mod format;
pub mod protocol;
pub mod quota;
pub mod request;
pub mod secrets;
pub mod shard;
pub mod source;
pub mod telemetry;
