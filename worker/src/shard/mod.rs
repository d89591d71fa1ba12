//! Shards: the unit of work a worker leases. A shard is a file, or a part of one that can be
//! read on its own (a byte range of plain text, a run of Parquet row groups, a byte range of an
//! Avro file resolved to its sync blocks).
//!
//! [`plan_shards`] (pure) cuts files into shards; [`read_shard`] streams a shard's records.

pub(crate) mod emit;
mod plan;
mod read;
mod text;

pub use plan::{PlanFile, plan_inputs, plan_shards};
pub use read::{ShardStream, read_shard, read_shard_from};

use serde::{Deserialize, Serialize};

use crate::decode::SpecError;
use crate::source::SourceError;

/// Which part of a file a shard covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ShardKind {
    /// All records of the file (compressed text, or any file not worth splitting).
    Whole,
    /// Plain text: the records whose first byte lies in `[start, end)`.
    ByteRange { start: u64, end: u64 },
    /// Parquet: row groups `first .. first + count`.
    RowGroups { first: u64, count: u64 },
    /// Avro: the blocks whose first byte lies in `[start, end)` (the first block starts right
    /// after the file header, every other one right after a sync marker).
    AvroBlocks { start: u64, end: u64 },
}

/// One shard of one file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardSpec {
    /// Full URL of the file.
    pub url: String,
    /// The part of the file.
    #[serde(flatten)]
    pub kind: ShardKind,
}

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
