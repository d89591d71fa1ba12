//! Shards: the unit of work a worker leases. A shard is a file, or a part of one that can be
//! read on its own: a byte range, of which the reader takes the records (lines, Parquet row
//! groups, Avro blocks) that start inside it — the way Hadoop's and Spark's input formats
//! split files, so planning needs nothing but file sizes.
//!
//! [`plan_shards`] (pure) cuts files into shards; the worker reads them.

mod plan;

pub use plan::{plan_shards, shard_bytes};

use serde::{Deserialize, Serialize};

/// Which part of a file a shard covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ShardKind {
    /// All records of the file (compressed text, or any file not worth splitting).
    Whole,
    /// Plain text: the records whose first byte lies in `[start, end)`.
    ByteRange { start: u64, end: u64 },
    /// Parquet: row groups `first .. first + count`. Planned by protocol version 1 operators
    /// (from the footers); still read, no longer planned.
    RowGroups { first: u64, count: u64 },
    /// Avro: the blocks whose first byte lies in `[start, end)` (the first block starts right
    /// after the file header, every other one right after a sync marker).
    AvroBlocks { start: u64, end: u64 },
    /// Parquet: the row groups whose first byte lies in `[start, end)`, found in the footer
    /// by the reader (protocol version 2).
    RowGroupRange { start: u64, end: u64 },
}

impl ShardKind {
    /// The byte range of a range shard, `None` for `Whole` and `RowGroups`.
    pub fn byte_range(&self) -> Option<(u64, u64)> {
        match *self {
            ShardKind::ByteRange { start, end }
            | ShardKind::AvroBlocks { start, end }
            | ShardKind::RowGroupRange { start, end } => Some((start, end)),
            ShardKind::Whole | ShardKind::RowGroups { .. } => None,
        }
    }
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
