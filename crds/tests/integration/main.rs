//! The API's integration tests, one binary with a module per subject: the CEL rules over the
//! samples on the local cluster's apiserver, and the generated files kept current. The two
//! share nothing, so they need no turns.

mod cel_rules;
mod generated_files;
