//! The unit that flows through the worker: one record of one file, with the offset that
//! identifies it (its idempotency key and checkpoints are built from that offset).

use std::sync::Arc;

use bytes::Bytes;

/// Where a record comes from. Cheap to clone: every record of a shard shares one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileRef {
    /// Full URL of the file, e.g. `hdfs://127.0.0.1:9000/data/users/part-0.jsonl`.
    pub url: Arc<str>,
}

/// The decoded content of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A JSON-lines line, exactly as read (no trailing newline). Sent as-is when the Datum's
    /// body is the record itself; parsed only when a template needs its fields.
    JsonLine(Bytes),
    /// A record decoded into named fields (CSV/TSV with a header or field list, Parquet row,
    /// Avro record).
    Object(serde_json::Map<String, serde_json::Value>),
}

/// One record ready for request building.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub file: FileRef,
    /// Stable position of the record inside its file: byte offset of the line for text
    /// formats, `row_group << 32 | row` style ordinal for Parquet, block-start offset and
    /// index for Avro. Unique within the file and identical on every read.
    pub offset: u64,
    /// Approximate size in bytes (for bytes/s limits and progress).
    pub size: u64,
    pub payload: Payload,
}

/// A record that could not be decoded. It is dead-lettered with `reason`; it never stops the shard.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub file: FileRef,
    pub offset: u64,
    pub size: u64,
    /// The raw bytes, possibly truncated to 4 KiB.
    pub raw: Bytes,
    pub reason: String,
}

/// What a decoder yields for each position in the file.
pub type Decoded = Result<Record, Malformed>;
