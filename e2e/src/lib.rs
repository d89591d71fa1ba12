#![forbid(unsafe_code)]
pub mod sim;
pub mod node;
