//! Reading shards: [`read_shard`] streams a shard's records. What a shard is, and how files
//! are cut into shards, is defined in `courier-core` (shared with the operator's planner).

pub(crate) mod emit;
mod read;
mod text;

pub use courier_core::shard::{ShardKind, ShardSpec, plan_shards, shard_bytes};
pub use read::{ShardStream, read_shard, read_shard_from};

use crate::decode::SpecError;
use crate::source::SourceError;

/// Why a shard could not be read (records that merely fail to decode are
/// [`Malformed`](crate::record::Malformed) items instead).
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// Listing or reading failed (not found, namenode unreachable, permission denied, …).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The file cannot be decoded at all: truncated gzip, corrupt Parquet footer, bad Avro header.
    #[error("cannot read {url}: {message}")]
    Unreadable { url: String, message: String },
    /// The shard does not fit the format (e.g. a byte range of a gzip file).
    #[error("shard {kind:?} of {url} does not fit the format: {reason}")]
    Mismatch { url: String, kind: ShardKind, reason: String },
    /// The Datum's format options are invalid.
    #[error("invalid format options: {0}")]
    Spec(#[from] SpecError),
    /// The reader task died without finishing (a bug).
    #[error("the shard reader of {url} stopped unexpectedly")]
    ReaderDied { url: String },
}

impl ShardError {
    pub(crate) fn unreadable(url: &str, message: impl Into<String>) -> Self {
        ShardError::Unreadable { url: url.to_owned(), message: message.into() }
    }

    /// An I/O error of a reader built on a [`Source`](crate::source::Source) stream.
    pub(crate) fn from_io(url: &str, context: &str, err: std::io::Error) -> Self {
        let message = format!("{context}: {err}");
        if crate::source::source_error_of(&err).is_some()
            && let Some(inner) = err.into_inner()
            && let Ok(source) = inner.downcast::<SourceError>()
        {
            return ShardError::Source(*source);
        }
        ShardError::unreadable(url, message)
    }
}
