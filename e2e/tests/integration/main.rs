//! The ground's own tests and the checks that span the repository (API validation on the
//! cluster, the chart, configs, exact counters, the guide, MiniDFS, monitoring, the simulator,
//! no vacuous tests) — one binary, a module per subject. The modules take turns
//! (`courier_e2e::testkit::turn`): the tests of one module may run side by side, never beside
//! another module's.

mod api_validation;
mod chart;
mod config_consistency;
mod exact_counters;
mod guide;
mod minidfs;
mod monitoring;
mod no_vacuous_tests;
mod simulator;
