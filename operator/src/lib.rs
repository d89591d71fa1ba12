#![forbid(unsafe_code)]
//! courier-operator: controllers, the pure planner and the coordinator that workers call.

pub mod coordinator;
pub mod planner;

// Controllers, runtime wiring and the binary's building blocks.
pub mod app;
pub mod context;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod status_writer;
