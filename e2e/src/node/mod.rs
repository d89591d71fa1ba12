//! `courier-node`: a node agent that runs the pods bound to one Node as
//! local processes, so the local control plane behaves like a small cluster
//! without a container runtime.
//!
//! The pipeline is visible in the file tree: [`agent`] wires the parts;
//! [`node_lease`] registers the Node and heartbeats; [`pods`] watches the
//! pods bound to the node and runs one [`pod_worker`] per pod, which prepares
//! [`volumes`] (with service-account [`token`]s), starts one [`container`]
//! supervisor per container (process [`launch`], [`probe`]s, restarts) and
//! writes the pod [`status`].

pub mod agent;
pub mod config;
pub mod container;
pub mod envvars;
pub mod error;
pub mod images;
pub mod ipam;
pub mod launch;
pub mod node_lease;
pub mod pod_worker;
pub mod pods;
pub mod probe;
pub mod state;
pub mod status;
pub mod token;
pub mod volumes;

pub use agent::run;
pub use config::{AgentConfig, ClusterInfo};
pub use error::{Error, Result};
