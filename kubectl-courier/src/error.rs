//! Errors of `kubectl courier`, each with what it was doing and the cause kept as source.

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The arguments do not make sense together (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error("failed to load the kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("failed to find a cluster to talk to (no kubeconfig, not in a pod): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("failed to create a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("{kind} {name:?} not found in namespace {namespace:?}")]
    NotFound { kind: &'static str, name: String, namespace: String },
    #[error("failed to {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to watch {what}: {source}")]
    Watch {
        what: String,
        #[source]
        source: kube::runtime::watcher::Error,
    },
    #[error("failed to read dead letters under {path}: {source}")]
    DeadLetters {
        path: String,
        #[source]
        source: courier_source::SourceError,
    },
    #[error("package {0} has no dead-letter path yet (not planned)")]
    NoDeadLetterPath(String),
    #[error("failed to write the output: {0}")]
    Output(#[source] std::io::Error),
    #[error("failed to encode the output: {0}")]
    Encode(String),
    #[error("failed to draw on the terminal: {0}")]
    Terminal(#[source] std::io::Error),
}

impl Error {
    /// The process exit code for this error: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => crate::EXIT_USAGE,
            _ => 1,
        }
    }

    /// An API call failed while doing `what`.
    pub fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| Error::Api { what, source }
    }
}
