//! The operator's end-to-end tests against the local cluster, MiniDFS and the partner
//! simulator: one binary, a module per subject (ignored by a plain `cargo test`; `make test`
//! runs them with `--include-ignored`). The modules take turns (`courier_e2e::testkit::turn`):
//! the tests of one module may run side by side, never beside another module's.

mod support;

mod autoscale;
mod churn;
mod cluster_faults;
mod conditions;
mod delivery;
mod failover;
mod hdfs_faults;
mod helm;
mod kubectl;
mod kubelet;
mod landing;
mod leader_churn;
mod lifecycle;
mod monitoring;
mod partner_faults;
mod progress;
mod quota;
mod rates;
mod rbac;
mod rotation;
mod worker_kills;
