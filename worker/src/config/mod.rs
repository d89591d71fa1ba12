//! From what users apply (Destination, Datum and Secret manifests, or the environment the
//! operator gives worker pods) to the worker's internal settings: the send stack's
//! [`SendConfig`](crate::send::SendConfig), the decoder's [`FormatSpec`](crate::decode::FormatSpec),
//! the request builder's [`RequestSpec`](crate::request::RequestSpec) and the limiter's rate.

mod convert;
mod manifest;
mod secrets;

pub use convert::{format_spec, rate_of, request_spec, send_config};
pub use manifest::{Manifest, load_datum, load_destination, load_secret};
pub use secrets::{MOUNT_ROOT, SecretStore, env_names};

/// A manifest or setting the worker cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The YAML does not parse into the expected resource.
    #[error("{path} is not a valid {kind} manifest: {source}")]
    Parse { path: String, kind: &'static str, source: serde_norway::Error },
    /// The manifest's `spec` does not parse into the resource's spec.
    #[error("{path} is not a valid {kind} manifest: spec: {source}")]
    Spec { path: String, kind: &'static str, source: serde_norway::Error },
    /// The manifest has another apiVersion or kind.
    #[error("{path}: expected apiVersion {api_version} kind {kind}, found {found}")]
    WrongKind { path: String, api_version: &'static str, kind: &'static str, found: String },
    /// A Secret value the Destination refers to is nowhere to be found.
    #[error("secret {name}/{key} is needed by the Destination but was not given (pass --secret or set {env})")]
    MissingSecret { name: String, key: String, env: String },
    /// A Secret value is not valid base64 or UTF-8.
    #[error("secret {name}/{key} is not valid: {source}")]
    BadSecret { name: String, key: String, source: SecretFault },
    /// A retryOn entry or other field the worker cannot apply.
    #[error("invalid Destination: {0}")]
    Invalid(String),
}

/// Why a Secret value cannot be used. Never carries the value, not even a byte of it: the
/// errors of `String::from_utf8` and base64 would (their `Debug`, or the offending symbol).
#[derive(Debug, thiserror::Error)]
pub enum SecretFault {
    /// The mounted file cannot be read.
    #[error("cannot read the mounted file: {0}")]
    Unreadable(#[source] std::io::Error),
    /// The value is not UTF-8.
    #[error("{0}")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// The manifest's value is not base64.
    #[error("not valid base64 (near byte {offset})")]
    NotBase64 { offset: usize },
}

impl SecretFault {
    /// The fault of a base64 value, keeping where it broke and not what was there.
    pub(crate) fn base64(err: &base64::DecodeError) -> Self {
        let offset = match *err {
            base64::DecodeError::InvalidByte(offset, _) | base64::DecodeError::InvalidLastSymbol(offset, _) => offset,
            base64::DecodeError::InvalidLength(length) => length,
            base64::DecodeError::InvalidPadding => 0,
        };
        SecretFault::NotBase64 { offset }
    }
}
