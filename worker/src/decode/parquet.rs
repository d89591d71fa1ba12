//! Parquet: rows → JSON objects, read one row group at a time.
//!
//! The footer is fetched first (one ranged read from the end of the file) and decoded once;
//! then runs of consecutive row groups, one ranged read per run of up to 64 MiB (or one row
//! group when it is larger). Memory per reader is about one such run plus the footer. Values are converted with the parquet crate's
//! record API (`Row::to_json_value`): nested groups become objects, lists arrays, maps objects
//! keyed by the key's JSON text, binary base64 strings, decimals strings, dates
//! `YYYY-MM-DD` strings and timestamps `YYYY-MM-DD HH:MM:SS.mmm +00:00` strings.
//!
//! A shard `RowGroupRange { start, end }` owns the row groups whose first byte lies in
//! `[start, end)` (as Hadoop's and Spark's Parquet input formats split files by bytes), found
//! in the footer; `RowGroups { first, count }` (planned by older operators) names them by index.
//!
//! Record offset: `row_group << 32 | row_index_in_group`.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use parquet::errors::ParquetError;
use parquet::file::metadata::page_index::RowGroupPageIndex;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::{ChunkReader, Length, RowGroupReader};
use parquet::file::serialized_reader::SerializedRowGroupReader;
use serde_json::Value;

use crate::record::{FileRef, Payload, Record};
use crate::shard::emit::Emitter;
use crate::shard::{ShardError, ShardKind, ShardSpec};
use crate::source::Source;

use super::FormatSpec;

/// Bytes fetched from the end of the file on the first try (usually holds the whole footer).
const TAIL_GUESS: u64 = 64 << 10;
const FOOTER_LEN: u64 = 8;

/// A file's footer and where it sits.
pub struct Footer {
    /// File size.
    pub size: u64,
    /// Offset of `tail` in the file.
    pub tail_offset: u64,
    /// The last bytes of the file, covering the metadata and the 8-byte footer.
    pub tail: Bytes,
    /// The decoded metadata.
    pub metadata: ParquetMetaData,
}

/// Reads and decodes the footer of the Parquet file at `url`.
pub async fn read_footer(source: &Source, url: &str) -> Result<Footer, ShardError> {
    let size = source.size(url).await?;
    if size < 12 {
        return Err(ShardError::unreadable(url, format!("{size} bytes is too small for a Parquet file")));
    }
    let guess = size.min(TAIL_GUESS);
    let mut tail_offset = size - guess;
    let mut tail = source.read_range(url, tail_offset, guess).await?;
    let n = tail.len();
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return Err(ShardError::unreadable(url, "not a Parquet file: missing PAR1 footer magic"));
    }
    let metadata_len = u64::from(u32::from_le_bytes([tail[n - 8], tail[n - 7], tail[n - 6], tail[n - 5]]));
    let needed = metadata_len + FOOTER_LEN;
    if needed > size - 4 {
        return Err(ShardError::unreadable(
            url,
            format!("corrupt Parquet footer: metadata length {metadata_len} exceeds the file"),
        ));
    }
    if needed > guess {
        tail_offset = size - needed;
        tail = source.read_range(url, tail_offset, needed).await?;
    }
    let meta_start = tail.len() - needed as usize;
    let metadata = ParquetMetaDataReader::decode_metadata(&tail[meta_start..tail.len() - FOOTER_LEN as usize])
        .map_err(|e| ShardError::unreadable(url, format!("corrupt Parquet footer: {e}")))?;
    check_column_chunks(&metadata).map_err(|reason| ShardError::unreadable(url, reason))?;
    Ok(Footer { size, tail_offset, tail, metadata })
}

/// A footer whose column chunks have a negative offset or size is corrupt: refused here, since
/// the parquet crate asserts on them (`ColumnChunkMetaData::byte_range` panics) rather than
/// erring. Found by `fuzz_bounded::every_record_decoder_survives_any_file`.
fn check_column_chunks(metadata: &ParquetMetaData) -> Result<(), String> {
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for (c, column) in group.columns().iter().enumerate() {
            let start = column.dictionary_page_offset().unwrap_or_else(|| column.data_page_offset());
            if start < 0 || column.compressed_size() < 0 || column.data_page_offset() < 0 {
                return Err(format!(
                    "corrupt Parquet footer: row group {g} column {c} starts at {start} with {} bytes",
                    column.compressed_size()
                ));
            }
        }
    }
    Ok(())
}

/// A file of which only some spans are loaded.
struct SparseFile {
    size: u64,
    spans: Vec<(u64, Bytes)>,
}

impl SparseFile {
    fn span(&self, start: u64, len: u64) -> parquet::errors::Result<Bytes> {
        for (offset, bytes) in &self.spans {
            let span_end = offset + bytes.len() as u64;
            if start >= *offset && start + len <= span_end {
                let from = (start - offset) as usize;
                return Ok(bytes.slice(from..from + len as usize));
            }
        }
        Err(ParquetError::General(format!("bytes {start}..{} were not loaded", start + len)))
    }
}

impl Length for SparseFile {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for SparseFile {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        for (offset, bytes) in &self.spans {
            let span_end = offset + bytes.len() as u64;
            if start >= *offset && start <= span_end {
                return Ok(bytes.slice((start - offset) as usize..).reader());
            }
        }
        Err(ParquetError::General(format!("offset {start} was not loaded")))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.span(start, length as u64)
    }
}

/// Row groups are fetched together while their span stays under this many bytes.
const FETCH_SPAN: u64 = 64 << 20;

/// Byte span `[start, end)` of a row group's column chunks.
fn span_of(metadata: &ParquetMetaData, group: u64) -> (u64, u64) {
    metadata
        .row_group(group as usize)
        .columns()
        .iter()
        .map(|c| {
            let (s, l) = c.byte_range();
            (s, s + l)
        })
        .fold((u64::MAX, 0), |(s0, e0), (s, e)| (s0.min(s), e0.max(e)))
}

/// The row groups whose first byte lies in `[start, end)`, in file order: every row group
/// belongs to exactly one range of a plan covering the file.
fn groups_starting_in(metadata: &ParquetMetaData, start: u64, end: u64) -> Vec<u64> {
    let total = metadata.num_row_groups() as u64;
    (0..total).filter(|&g| (start..end).contains(&span_of(metadata, g).0)).collect()
}

/// Consecutive row groups, loaded, ready to decode on a blocking thread.
struct RowGroupJob {
    url: String,
    file: FileRef,
    metadata: Arc<ParquetMetaData>,
    groups: Vec<u64>,
    data: Arc<SparseFile>,
    fields: Option<Vec<String>>,
}

impl RowGroupJob {
    /// Decodes every row; `Ok(false)` when the consumer went away.
    fn decode(self, emitter: &mut Emitter) -> Result<bool, ShardError> {
        let props = Arc::new(ReaderProperties::builder().build());
        for &group in &self.groups {
            let index = group as usize;
            let corrupt = |e: ParquetError| ShardError::unreadable(&self.url, format!("row group {group}: {e}"));
            let rg = self.metadata.row_group(index);
            let row_size =
                u64::try_from(rg.total_byte_size()).unwrap_or(0) / u64::try_from(rg.num_rows()).unwrap_or(0).max(1);
            let reader = SerializedRowGroupReader::new(
                Arc::clone(&self.data),
                rg,
                RowGroupPageIndex::new(index, None),
                Arc::clone(&props),
            )
            .map_err(corrupt)?;
            for (row_index, row) in reader.get_row_iter(None).map_err(corrupt)?.enumerate() {
                let row = row.map_err(corrupt)?;
                let Value::Object(mut object) = row.to_json_value() else {
                    return Err(ShardError::unreadable(&self.url, "a row is not a group"));
                };
                if let Some(fields) = &self.fields {
                    object.retain(|k, _| fields.iter().any(|f| f == k));
                }
                let record = Record {
                    file: self.file.clone(),
                    offset: (group << 32) | row_index as u64,
                    size: row_size,
                    payload: Payload::Object(object),
                };
                if emitter.blocking_push(Ok(record)).is_err() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// Reads a Parquet shard: fetches the footer and then runs of row groups asynchronously, and
/// decodes them on a blocking thread (which never waits for I/O itself).
pub(crate) async fn read_shard(source: Source, spec: ShardSpec, format: FormatSpec, mut emitter: Emitter) {
    let url = spec.url.as_str();
    let footer = match read_footer(&source, url).await {
        Ok(footer) => footer,
        Err(e) => return emitter.finish(Err(e)).await,
    };
    let size = footer.size;
    let metadata = Arc::new(footer.metadata);
    let total = metadata.num_row_groups() as u64;
    let groups = match spec.kind {
        ShardKind::Whole => (0..total).collect(),
        ShardKind::RowGroups { first, count } if first + count <= total => (first..first + count).collect(),
        ShardKind::RowGroupRange { start, end } => groups_starting_in(&metadata, start, end),
        kind => {
            let err =
                ShardError::Mismatch { url: url.to_owned(), kind, reason: format!("the file has {total} row groups") };
            return emitter.finish(Err(err)).await;
        }
    };
    let file = FileRef { url: url.into() };
    let mut next = 0;
    while next < groups.len() {
        // The run of row groups fetched together.
        let run_start = next;
        let first = groups[next];
        let (start, mut end) = span_of(&metadata, first);
        next += 1;
        while next < groups.len() {
            let (s, e) = span_of(&metadata, groups[next]);
            if s < start || e.max(end) - start > FETCH_SPAN {
                break;
            }
            end = end.max(e);
            next += 1;
        }
        if start >= end {
            continue;
        }
        if end > size {
            let err = ShardError::unreadable(url, format!("row group {first} lies past the end of the file"));
            return emitter.finish(Err(err)).await;
        }
        let bytes = match source.read_range(url, start, end - start).await {
            Ok(bytes) => bytes,
            Err(e) => return emitter.finish(Err(e.into())).await,
        };
        let job = RowGroupJob {
            url: url.to_owned(),
            file: file.clone(),
            metadata: Arc::clone(&metadata),
            groups: groups[run_start..next].to_vec(),
            data: Arc::new(SparseFile { size, spans: vec![(start, bytes)] }),
            fields: format.fields.clone(),
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = job.decode(&mut emitter);
            (emitter, result)
        })
        .await;
        // A panicking decoder drops the emitter: the stream then reports the reader as dead.
        let Ok((back, result)) = joined else { return };
        emitter = back;
        match result {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return emitter.finish(Err(e)).await,
        }
    }
    emitter.finish(Ok(())).await
}
