//! The worker's local rate limiter: a GCRA over requests (and optionally bytes), a pause
//! instant for partner-wide Retry-After, and an optional quota allowance. The rate share can be
//! changed at any time by the coordinator client; first attempts and retries draw from the
//! same limiter, because the limit is a promise to the partner.

mod gcra;
mod shared;

pub use self::gcra::{Decision, LimiterState, Rate, decide};
pub use self::shared::{Limiter, LimiterSnapshot};
