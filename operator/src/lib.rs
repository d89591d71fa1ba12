#![forbid(unsafe_code)]
//! courier-operator: controllers, the pure planner and the coordinator that workers call.

pub mod coordinator;
pub mod planner;
