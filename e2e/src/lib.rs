#![forbid(unsafe_code)]
pub mod cluster;
pub mod fixtures;
pub mod minidfs;
pub mod node;
pub mod sim;
