#![forbid(unsafe_code)]
pub mod cluster;
pub mod cpu;
pub mod fixtures;
pub mod helm;
pub mod metrics_doc;
pub mod minidfs;
pub mod own_minidfs;
pub mod paced;
pub mod pods;
pub mod rates;
pub mod sim;
pub mod testkit;
