//! The worker's integration tests: reading (file:// and MiniDFS), sending to the partner
//! simulator, the pipeline, the binary, bounded fuzzing — one binary, a module per subject. The
//! modules take turns (`courier_e2e::testkit::turn`): the tests of one module may run side by
//! side, never beside another module's.

mod fuzz_support;
mod read_support;
mod run_support;
mod send_support;

mod deadletter_hdfs;
mod faults_partner;
mod fuzz_bounded;
mod health_http;
mod pipeline_coordinator;
mod pipeline_formats;
mod read_file;
mod read_hdfs;
mod read_hdfs_faults;
mod run_binary;
mod run_secrets;
mod run_sigterm;
mod send_auth;
mod send_clean;
mod send_deadletter;
mod send_http;
mod send_limit;
mod send_parity;
mod send_retry;
