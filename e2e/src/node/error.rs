//! The agent's one error type.

use std::path::PathBuf;

/// Everything that can go wrong inside the node agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the agent's own (images map, state record, volume file) could not be read or written.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What the agent was doing, e.g. "read images map".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The images map is not valid YAML of `repository: path` lines.
    #[error("failed to parse images map {path}: {source}")]
    ImagesMap {
        /// The images file.
        path: PathBuf,
        /// The parse error.
        source: serde_yaml::Error,
    },
    /// The kubeconfig could not be read or used.
    #[error("failed to load kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A request to the apiserver failed.
    #[error("failed to {action}: {source}")]
    Kube {
        /// What the agent was doing, e.g. "patch status of pod ns/name".
        action: String,
        /// The client error.
        source: kube::Error,
    },
    /// The pod asks for something this agent cannot provide.
    #[error("{0}")]
    Unsupported(String),
    /// A value the container needs (env var, volume file) could not be resolved.
    #[error("{0}")]
    Config(String),
    /// No loopback address is left for a new pod.
    #[error("no free loopback pod IP left (all of 127.0.0.2-127.0.0.254 are in use)")]
    NoFreeIp,
}

/// Result with the agent's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with what was being done to which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }

    /// Wraps a client error with what was being done.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Kube { action, source }
    }

    /// True when the apiserver answered 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Kube { source: kube::Error::Api(status), .. } if status.code == 404)
    }
}
