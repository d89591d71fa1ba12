//! Decoders: turn the bytes of a file into [`Decoded`](crate::record::Decoded) records.
//!
//! Text formats (JSON lines, CSV, TSV) are framed into lines by [`lines`] and decoded line by
//! line; Parquet and Avro have their own block-oriented readers. [`FormatSpec`] says which one
//! applies to a Datum's files (defined in `courier-core`).

pub mod avro;
pub mod compression;
pub mod csv;
pub mod json;
pub mod lines;
pub mod parquet;

pub use courier_core::format::{Compression, CsvOptions, FormatKind, FormatSpec, SpecError};

use bytes::Bytes;

use crate::record::{FileRef, Malformed};

/// How many bytes of a malformed record are kept for the dead letter.
pub const MALFORMED_RAW_LIMIT: usize = 4096;

/// Builds a [`Malformed`] whose raw bytes are cut to [`MALFORMED_RAW_LIMIT`].
pub fn malformed(file: &FileRef, offset: u64, raw: Bytes, reason: String) -> Malformed {
    let size = raw.len() as u64;
    let raw = if raw.len() > MALFORMED_RAW_LIMIT { raw.slice(..MALFORMED_RAW_LIMIT) } else { raw };
    Malformed { file: file.clone(), offset, size, raw, reason }
}
