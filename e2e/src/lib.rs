#![forbid(unsafe_code)]
pub mod cluster;
pub mod sim;
pub mod fixtures;
pub mod minidfs;
pub mod node;
