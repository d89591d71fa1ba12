//! Pure planning functions: rate shares, the adaptive (AIMD) limit, autoscaling decisions and
//! status roll-ups. No I/O, no clock: time is passed in as Unix milliseconds.

pub mod autoscale;
pub mod rollup;
pub mod shares;

/// Unix time in milliseconds, the only clock the planner and the lease table know.
pub type Millis = u64;
