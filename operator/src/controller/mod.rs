//! The three controllers. Each reconcile runs dereference → validate → build → apply → status;
//! only dereference, apply and status touch the apiserver.

pub mod datum;
pub mod destination;
mod events;
pub mod landing;
pub mod package;
#[cfg(test)]
pub(crate) mod test_api;
pub mod triggers;
pub mod watches;

pub use events::{EventPolicy, publish, publish_condition_changes};

use std::time::Duration;

/// Why a reconcile failed. Each variant is a metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading related objects failed.
    #[error("failed to read {what}: {source}")]
    Dereference { what: String, source: kube::Error },
    /// Applying a child object failed.
    #[error("failed to apply {what}: {source}")]
    Apply { what: String, source: kube::Error },
    /// Listing the package's source or reading an earlier attempt's dead letters failed
    /// (retried with backoff).
    #[error("failed to read the source of {package}: {source}")]
    Source { package: String, source: courier_source::SourceError },
    /// Deleting an object failed.
    #[error("failed to delete {what}: {source}")]
    Delete { what: String, source: kube::Error },
    /// An object lacks a namespace or name.
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// A watch cache this reconcile reads from stopped (the term is ending).
    #[error("the watch cache of Destinations or Datums is gone")]
    CacheGone,
}

impl Error {
    /// Metric label of the error kind.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Dereference { .. } => "dereference",
            Error::Apply { .. } => "apply",
            Error::Source { .. } => "source",
            Error::Delete { .. } => "delete",
            Error::MissingField(_) => "missing_field",
            Error::CacheGone => "cache_gone",
        }
    }

    /// How long to wait before retrying.
    pub fn retry_after(&self) -> Duration {
        match self {
            Error::Source { .. } => Duration::from_secs(10),
            _ => Duration::from_secs(5),
        }
    }
}

/// Result of a reconcile stage.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An Api over one namespace, or over all of them when `namespace` is None (`--namespace`).
pub(crate) fn api<K>(client: &kube::Client, namespace: Option<&str>) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    }
}
