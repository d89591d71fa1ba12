#![forbid(unsafe_code)]
//! The Courier API.
