//! Avro object container files: records → JSON objects, read block by block.
//!
//! A shard `AvroBlocks { start, end }` owns the blocks whose first byte lies in `[start, end)`:
//! the first block starts right after the header, every other one right after a 16-byte sync
//! marker. The reader seeks to `start - 16` and scans for the marker, like Hadoop's
//! `AvroRecordReader`, then reads whole blocks (the last one past `end`). Blocks are small
//! (tens of KiB), so they are decoded in place on the async task.
//!
//! Record offset: `block_start << 16 | index_in_block` — unique and stable as long as a block
//! holds at most 65 536 records and the file is under 2^48 bytes (a larger block fails the
//! shard with a clear error).
//!
//! Values: unions are unwrapped (a nullable field is `null` or its value), enums become their
//! symbol, `bytes`/`fixed` base64 strings (standard alphabet, padded), maps objects, records
//! objects, logical dates/times/timestamps their underlying number, uuids strings, decimals
//! the unscaled integer as a string (the scale is in the schema), durations
//! `{"months","days","millis"}`. A top-level value that is not a record is wrapped as
//! `{"value": …}`.

use std::io;

use apache_avro::types::Value as Avro;
use apache_avro::{Codec, DeflateSettings, Schema, ZstandardSettings, from_avro_datum};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Number, Value};

use crate::record::{FileRef, Payload, Record};
use crate::shard::emit::Emitter;
use crate::shard::{ShardError, ShardKind, ShardSpec};
use crate::source::{Source, into_async_read};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use super::{FormatSpec, malformed};

const MAGIC: &[u8; 4] = b"Obj\x01";
const SYNC_LEN: u64 = 16;
/// Most records a block may hold for offsets to stay unique.
pub const MAX_RECORDS_PER_BLOCK: u64 = 1 << 16;

/// What the header says.
struct Header {
    schema: Schema,
    codec: Codec,
    sync: [u8; 16],
    /// Offset of the first block.
    end: u64,
}

/// An async reader that knows its file offset.
struct Cursor<R> {
    inner: R,
    position: u64,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl<R: AsyncBufRead + Unpin> Cursor<R> {
    async fn read_long(&mut self) -> io::Result<i64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.inner.read_u8().await?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(invalid("varint longer than 10 bytes".into()))
    }

    async fn read_len(&mut self, what: &str) -> io::Result<usize> {
        let n = self.read_long().await?;
        usize::try_from(n).ok().filter(|n| *n < (1 << 31)).ok_or_else(|| invalid(format!("bad {what} length {n}")))
    }

    async fn read_vec(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.inner.read_exact(&mut buf).await?;
        self.position += len as u64;
        Ok(buf)
    }

    async fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.inner.fill_buf().await?.is_empty())
    }

    /// Advances to just after the next occurrence of `sync`; false if there is none.
    async fn skip_past_sync(&mut self, sync: &[u8; 16]) -> io::Result<bool> {
        let finder = memchr::memmem::Finder::new(sync);
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                return Ok(false);
            }
            let mut window = std::mem::take(&mut carry);
            let carried = window.len();
            window.extend_from_slice(chunk);
            let n = chunk.len();
            if let Some(p) = finder.find(&window) {
                let used = p + sync.len() - carried;
                self.inner.consume(used);
                self.position += used as u64;
                return Ok(true);
            }
            let keep = window.len().min(sync.len() - 1);
            carry = window[window.len() - keep..].to_vec();
            self.inner.consume(n);
            self.position += n as u64;
        }
    }

    /// Parses the container header (the cursor must be at the start of the file).
    async fn read_header(&mut self) -> io::Result<Header> {
        let magic = self.read_vec(4).await?;
        if magic != MAGIC {
            return Err(invalid("not an Avro object container file (bad magic)".into()));
        }
        let (mut schema, mut codec) = (None, "null".to_owned());
        loop {
            let mut count = self.read_long().await?;
            if count == 0 {
                break;
            }
            if count < 0 {
                count = -count;
                self.read_long().await?; // byte size of the block, not needed
            }
            for _ in 0..count {
                let key_len = self.read_len("metadata key").await?;
                let key = self.read_vec(key_len).await?;
                let value_len = self.read_len("metadata value").await?;
                let value = self.read_vec(value_len).await?;
                match &key[..] {
                    b"avro.schema" => schema = Some(value),
                    b"avro.codec" => codec = String::from_utf8_lossy(&value).into_owned(),
                    _ => {}
                }
            }
        }
        let mut sync = [0u8; 16];
        self.inner.read_exact(&mut sync).await?;
        self.position += 16;
        let schema = schema.ok_or_else(|| invalid("header has no avro.schema".into()))?;
        let schema = parse_schema(&String::from_utf8_lossy(&schema)).map_err(invalid)?;
        let codec = match codec.as_str() {
            "null" => Codec::Null,
            "deflate" => Codec::Deflate(DeflateSettings::default()),
            "snappy" => Codec::Snappy,
            "zstandard" => Codec::Zstandard(ZstandardSettings::default()),
            other => return Err(invalid(format!("unsupported codec {other:?}"))),
        };
        Ok(Header { schema, codec, sync, end: self.position })
    }
}

async fn open(
    source: &Source,
    url: &str,
    offset: u64,
) -> Result<Cursor<impl AsyncBufRead + Unpin + use<>>, ShardError> {
    let stream = source.open_range(url, offset, None).await?;
    Ok(Cursor { inner: into_async_read(stream), position: offset })
}

/// Reads an Avro shard (decoding each block in place: blocks are small).
pub(crate) async fn read_shard(
    source: &Source,
    spec: &ShardSpec,
    format: &FormatSpec,
    resume_from: u64,
    emitter: &mut Emitter,
) -> Result<(), ShardError> {
    let url = spec.url.as_str();
    let (start, end) = match spec.kind {
        ShardKind::Whole => (0, u64::MAX),
        ShardKind::AvroBlocks { start, end } => (start, end),
        kind => {
            return Err(ShardError::Mismatch {
                url: url.to_owned(),
                kind,
                reason: "Avro files are read by block ranges or whole".to_owned(),
            });
        }
    };
    let seek = start.max(resume_from >> 16);
    if seek >= end {
        return Ok(());
    }
    let io_err = |context: &str| {
        let context = context.to_owned();
        move |e: io::Error| ShardError::from_io(url, &context, e)
    };
    let mut header_reader = open(source, url, 0).await?;
    let header = header_reader.read_header().await.map_err(io_err("bad Avro header"))?;
    if seek > header.end {
        drop(header_reader);
        let mut r = open(source, url, seek - SYNC_LEN).await?;
        if !r.skip_past_sync(&header.sync).await.map_err(io_err("seeking to a sync marker"))? {
            return Ok(());
        }
        read_blocks(url, &mut r, &header, end, format, emitter).await
    } else {
        read_blocks(url, &mut header_reader, &header, end, format, emitter).await
    }
}

async fn read_blocks<R: AsyncBufRead + Unpin>(
    url: &str,
    r: &mut Cursor<R>,
    header: &Header,
    end: u64,
    format: &FormatSpec,
    emitter: &mut Emitter,
) -> Result<(), ShardError> {
    let io_err = |context: &str| {
        let context = context.to_owned();
        move |e: io::Error| ShardError::from_io(url, &context, e)
    };
    let file = FileRef { url: url.into() };
    loop {
        let block_start = r.position;
        if block_start >= end || r.at_end().await.map_err(io_err("reading a block"))? {
            return Ok(());
        }
        let context = format!("truncated or corrupt Avro block at offset {block_start}");
        let count = r.read_long().await.map_err(io_err(&context))?;
        let size = r.read_len("block").await.map_err(io_err(&context))?;
        let mut data = r.read_vec(size).await.map_err(io_err(&context))?;
        let marker = r.read_vec(16).await.map_err(io_err(&context))?;
        if marker != header.sync {
            return Err(ShardError::unreadable(url, format!("{context}: sync marker mismatch")));
        }
        let count = u64::try_from(count)
            .map_err(|_| ShardError::unreadable(url, format!("{context}: negative record count")))?;
        if count > MAX_RECORDS_PER_BLOCK {
            return Err(ShardError::unreadable(
                url,
                format!(
                    "block at offset {block_start} holds {count} records; at most {MAX_RECORDS_PER_BLOCK} are supported"
                ),
            ));
        }
        if block_start >= 1 << 48 {
            return Err(ShardError::unreadable(url, "Avro files over 256 TiB are not supported"));
        }
        header
            .codec
            .decompress(&mut data)
            .map_err(|e| ShardError::unreadable(url, format!("{context}: cannot decompress: {e}")))?;
        let record_size = data.len() as u64 / count.max(1);
        let data = bytes::Bytes::from(data);
        let mut cursor: &[u8] = &data;
        for index in 0..count {
            let offset = (block_start << 16) | index;
            let before = data.len() - cursor.len();
            let decoded = match from_avro_datum(&header.schema, &mut cursor, None) {
                Ok(value) => Ok(Record {
                    file: file.clone(),
                    offset,
                    size: record_size,
                    payload: Payload::Object(to_object(value, format.fields.as_deref())),
                }),
                Err(e) => {
                    // Record boundaries are lost: the rest of the block is one dead letter.
                    let reason = format!("cannot decode record {index} of {count} in the block: {e}");
                    let rest = data.slice(before..);
                    if emitter.push(Err(malformed(&file, offset, rest, reason))).await.is_err() {
                        return Ok(());
                    }
                    break;
                }
            };
            if emitter.push(decoded).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// A decoded datum as a JSON object, keeping only `fields` when given.
pub fn to_object(value: Avro, fields: Option<&[String]>) -> Map<String, Value> {
    let value = match value {
        Avro::Union(_, inner) => *inner,
        other => other,
    };
    match value {
        Avro::Record(pairs) => pairs
            .into_iter()
            .filter(|(k, _)| fields.is_none_or(|f| f.iter().any(|x| x == k)))
            .map(|(k, v)| (k, to_json(v)))
            .collect(),
        other => {
            let mut map = Map::new();
            map.insert("value".to_owned(), to_json(other));
            map
        }
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Converts one Avro value to JSON (see the module docs for the mapping).
pub fn to_json(value: Avro) -> Value {
    match value {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(n) | Avro::Date(n) | Avro::TimeMillis(n) => Value::from(n),
        Avro::Long(n)
        | Avro::TimeMicros(n)
        | Avro::TimestampMillis(n)
        | Avro::TimestampMicros(n)
        | Avro::TimestampNanos(n)
        | Avro::LocalTimestampMillis(n)
        | Avro::LocalTimestampMicros(n)
        | Avro::LocalTimestampNanos(n) => Value::from(n),
        Avro::Float(f) => float(f64::from(f)),
        Avro::Double(f) => float(f),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::String(BASE64.encode(b)),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s),
        Avro::Union(_, inner) => to_json(*inner),
        Avro::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Avro::Map(entries) => Value::Object(entries.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
        Avro::Record(pairs) => Value::Object(pairs.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
        Avro::Decimal(d) => match Vec::<u8>::try_from(&d) {
            Ok(bytes) => Value::String(unscaled_decimal(&bytes)),
            Err(_) => Value::Null,
        },
        Avro::BigDecimal(d) => Value::String(d.to_string()),
        Avro::Duration(d) => serde_json::json!({
            "months": u32::from(d.months()),
            "days": u32::from(d.days()),
            "millis": u32::from(d.millis()),
        }),
        Avro::Uuid(u) => Value::String(u.to_string()),
    }
}

/// The decimal text of a big-endian two's-complement integer (base64 when over 128 bits).
fn unscaled_decimal(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "0".to_owned();
    }
    if bytes.len() > 16 {
        return BASE64.encode(bytes);
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut full = [fill; 16];
    full[16 - bytes.len()..].copy_from_slice(bytes);
    i128::from_be_bytes(full).to_string()
}

/// The writer's schema from a file header. apache-avro 0.21 unwraps a name it cannot split
/// (`Name::parse`), so a corrupt header would panic the reader: the parse runs under
/// `catch_unwind` and such a header is a bad schema like any other. Found by
/// `fuzz_bounded::every_record_decoder_survives_any_file`.
fn parse_schema(text: &str) -> Result<Schema, String> {
    match std::panic::catch_unwind(|| Schema::parse_str(text)) {
        Ok(Ok(schema)) => Ok(schema),
        Ok(Err(e)) => Err(format!("bad schema in header: {e}")),
        Err(_) => Err("bad schema in header: the Avro library could not parse it".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_schema_the_library_would_panic_on_is_a_bad_schema() {
        for text in [
            r#"{"type":"record","name":"1x","fields":[]}"#,
            r#"{"type":"record","name":"a..b","fields":[]}"#,
            r#"{"type":"enum","name":"","symbols":["A"]}"#,
        ] {
            let err = parse_schema(text).expect_err(text);
            assert!(err.starts_with("bad schema in header"), "{text}: {err}");
        }
        assert!(parse_schema(r#"{"type":"record","name":"ok.User","fields":[]}"#).is_ok());
    }

    #[test]
    fn avro_values_map_to_json() {
        let record = Avro::Record(vec![
            ("id".into(), Avro::Long(7)),
            ("name".into(), Avro::Union(1, Box::new(Avro::String("Ada".into())))),
            ("nick".into(), Avro::Union(0, Box::new(Avro::Null))),
            ("raw".into(), Avro::Bytes(vec![0, 255])),
            ("color".into(), Avro::Enum(1, "RED".into())),
            ("tags".into(), Avro::Array(vec![Avro::String("a".into())])),
            ("score".into(), Avro::Double(f64::NAN)),
            ("price".into(), Avro::Decimal(apache_avro::Decimal::from(vec![0xff, 0x85]))),
        ]);
        let got = Value::Object(to_object(record, None));
        assert_eq!(
            got,
            serde_json::json!({
                "id": 7, "name": "Ada", "nick": null, "raw": "AP8=", "color": "RED",
                "tags": ["a"], "score": null, "price": "-123"
            })
        );
    }

    #[test]
    fn field_lists_keep_only_named_fields_and_scalars_are_wrapped() {
        let record = Avro::Record(vec![("a".into(), Avro::Int(1)), ("b".into(), Avro::Int(2))]);
        let fields = vec!["b".to_owned()];
        assert_eq!(Value::Object(to_object(record, Some(&fields))), serde_json::json!({"b": 2}));
        assert_eq!(Value::Object(to_object(Avro::Int(3), None)), serde_json::json!({"value": 3}));
    }

    #[test]
    fn zigzag_varints_decode() {
        let cases: &[(&[u8], i64)] = &[(&[0], 0), (&[1], -1), (&[2], 1), (&[0x80, 0x01], 64), (&[0x7f], -64)];
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(async {
            for (bytes, want) in cases {
                let mut c = Cursor { inner: *bytes, position: 0 };
                assert_eq!(c.read_long().await.expect("valid"), *want);
                assert_eq!(c.position, bytes.len() as u64);
            }
            let mut c = Cursor { inner: &[0x80u8][..], position: 0 };
            assert!(c.read_long().await.is_err());
        });
    }
}
