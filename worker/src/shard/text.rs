//! Reading JSON-lines / CSV / TSV shards.
//!
//! Byte-range semantics follow Hadoop's `LineRecordReader`: a shard owns exactly the records
//! that start inside `[start, end)`. When `start > 0` the reader begins one byte early and
//! drops everything up to the first newline, so a record that starts exactly at `start` is
//! kept and one that started earlier is left to the previous shard; the last record is read
//! past `end` to its newline.

use bytes::Bytes;

use crate::decode::compression::decompress;
use crate::decode::csv::CsvDecoder;
use crate::decode::lines::{Line, LineFramer};
use crate::decode::{Compression, FormatKind, FormatSpec, json, malformed};
use crate::record::{Decoded, FileRef, Payload, Record};
use crate::source::{Source, into_async_read};

use super::emit::Emitter;
use super::{ShardError, ShardKind, ShardSpec};

/// How each line becomes a record.
enum LineDecoder {
    Json,
    Csv(CsvDecoder),
}

impl LineDecoder {
    fn decode(&mut self, file: &FileRef, line: Line) -> Option<Decoded> {
        let Line { offset, bytes } = line;
        match self {
            LineDecoder::Json => {
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                Some(match json::check_object(&bytes) {
                    Ok(()) => Ok(Record {
                        file: file.clone(),
                        offset,
                        size: bytes.len() as u64,
                        payload: Payload::JsonLine(bytes),
                    }),
                    Err(reason) => Err(malformed(file, offset, bytes, reason)),
                })
            }
            LineDecoder::Csv(csv) => {
                if bytes.is_empty() {
                    return None;
                }
                Some(match csv.decode(&bytes) {
                    Ok(object) => Ok(Record {
                        file: file.clone(),
                        offset,
                        size: bytes.len() as u64,
                        payload: Payload::Object(object),
                    }),
                    Err(reason) => Err(malformed(file, offset, bytes, reason)),
                })
            }
        }
    }
}

/// Reads one text shard into `emitter`.
pub(crate) async fn read_text(
    source: &Source,
    spec: &ShardSpec,
    format: &FormatSpec,
    resume_from: u64,
    emitter: &mut Emitter,
) -> Result<(), ShardError> {
    let url = spec.url.as_str();
    let compression = format.compression.resolve(url);
    let (start, end) = match (spec.kind, compression) {
        (ShardKind::Whole, _) => (0, u64::MAX),
        (ShardKind::ByteRange { start, end }, Compression::None) => (start, end),
        (kind, _) => {
            return Err(ShardError::Mismatch {
                url: url.to_owned(),
                kind,
                reason: match kind {
                    ShardKind::ByteRange { .. } => "compressed files are read whole".to_owned(),
                    _ => "text files are read by byte ranges or whole".to_owned(),
                },
            });
        }
    };
    // Plain text seeks straight to the checkpoint; compressed text decompresses from the start.
    let begin = if compression == Compression::None { start.max(resume_from) } else { 0 };
    if begin >= end {
        return Ok(());
    }

    let csv_header = matches!(format.kind, FormatKind::Csv | FormatKind::Tsv) && format.csv.header;
    let mut decoder = match format.kind {
        FormatKind::JsonLines => LineDecoder::Json,
        _ => {
            let delimiter = format.delimiter()?;
            let quoting = format.kind == FormatKind::Csv;
            let mut csv = CsvDecoder::new(Vec::new(), delimiter, quoting);
            let names = match (&format.fields, csv_header && begin > 0) {
                (Some(fields), _) => fields.clone(),
                (None, true) => header_names(source, url, compression, &mut csv).await?,
                (None, false) => Vec::new(),
            };
            LineDecoder::Csv(CsvDecoder::new(names, delimiter, quoting))
        }
    };

    let open_at = begin.saturating_sub(1);
    let stream = source.open_range(url, open_at, None).await?;
    let reader = decompress(into_async_read(stream), compression);
    let mut framer = LineFramer::new(reader, open_at);
    let context = format!("{compression:?} stream");
    let io_err = |e| ShardError::from_io(url, &context, e);
    if begin > 0 {
        framer.skip_line().await.map_err(io_err)?;
    }
    let file = FileRef { url: url.into() };
    while framer.position() < end {
        let Some(mut line) = framer.next_line().await.map_err(io_err)? else {
            break;
        };
        if line.offset == 0 {
            line.bytes = json::strip_bom(line.bytes);
            if csv_header {
                if let LineDecoder::Csv(csv) = &mut decoder
                    && format.fields.is_none()
                {
                    let names = header_from_line(url, csv, &line.bytes)?;
                    *csv = CsvDecoder::new(names, format.delimiter()?, format.kind == FormatKind::Csv);
                }
                continue;
            }
        }
        if let Some(decoded) = decoder.decode(&file, line)
            && emitter.push(decoded).await.is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

/// The column names from the first line of the file.
async fn header_names(
    source: &Source,
    url: &str,
    compression: Compression,
    csv: &mut CsvDecoder,
) -> Result<Vec<String>, ShardError> {
    let stream = source.open_range(url, 0, None).await?;
    let mut framer = LineFramer::new(decompress(into_async_read(stream), compression), 0);
    let line = framer
        .next_line()
        .await
        .map_err(|e| ShardError::from_io(url, "reading the header line", e))?
        .ok_or_else(|| ShardError::unreadable(url, "the file is empty: no header line"))?;
    header_from_line(url, csv, &json::strip_bom(line.bytes))
}

fn header_from_line(url: &str, csv: &mut CsvDecoder, line: &Bytes) -> Result<Vec<String>, ShardError> {
    csv.split(line).map_err(|reason| ShardError::unreadable(url, format!("bad header line: {reason}")))
}
