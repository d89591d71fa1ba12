//! Request building: one HTTP request per record, from templates compiled once per Datum.
//! A record that cannot be turned into a request becomes a dead letter with the reason.

mod builder;
mod context;
mod direct;
mod fields;
mod idempotency;
mod simple;

pub use builder::{BuildError, BuiltRequest, RequestBuilder};
pub use courier_core::request::{BodySpec, IdempotencySpec, RequestSpec, RequestTemplates, SpecError};
pub use idempotency::idempotency_key;
