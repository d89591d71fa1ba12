//! Request building: one HTTP request per record, from templates compiled once per Datum.
//! A record that cannot be turned into a request becomes a dead letter with the reason.

mod builder;
mod context;
mod idempotency;
mod spec;

pub use builder::{BuildError, BuiltRequest, RequestBuilder, SpecError};
pub use idempotency::idempotency_key;
pub use spec::{BodySpec, IdempotencySpec, RequestSpec};
