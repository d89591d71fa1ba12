//! Fuzz targets: the worker's parsers of untrusted input, each as one function of arbitrary
//! bytes that must never panic, whatever the bytes. A partner's answer (response head and
//! body framing), every record decoder (file bytes of each format and compression) and the
//! request template renderer (a Datum's template and a record).
//!
//! Two drivers call them: `fuzz/` (cargo-fuzz with libFuzzer on nightly, `make fuzz`, for as
//! long as one likes) and `worker/tests/integration/fuzz_bounded.rs` (proptest on stable, a bounded run in
//! `make test`, from valid seeds mutated and random bytes). A finding is a panic here.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use futures::StreamExt as _;
use http::Method;

use crate::decode::{Compression, FormatKind, FormatSpec};
use crate::record::{FileRef, Payload, Record};
use crate::request::{BodySpec, RequestBuilder, RequestSpec};
use crate::send::wire::{BodyDecoder, Framing, parse_head};
use crate::shard::{ShardError, ShardKind, ShardSpec, read_shard};
use crate::source::Source;

/// A partner's answer as it arrives: the head parsed from a growing buffer (cut where
/// `data[0]` says), then its body decoded in pieces, as `conn` does.
pub fn http_response(data: &[u8]) {
    let Some((&step, wire)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let mut buf = BytesMut::new();
    for method in [Method::POST, Method::HEAD] {
        buf.clear();
        let mut fed = 0;
        let head = loop {
            match parse_head(&buf, &method) {
                Err(_) => return,
                Ok(Some(found)) => break found,
                Ok(None) if fed >= wire.len() => return,
                Ok(None) => {
                    let next = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..next]);
                    fed = next;
                }
            }
        };
        let (head, len) = head;
        assert!(len <= buf.len(), "a head longer than the bytes it was parsed from");
        bytes::Buf::advance(&mut buf, len);
        buf.extend_from_slice(&wire[fed..]);
        let before = buf.len();
        let mut body = BodyDecoder::new(head.framing, 64);
        if body.feed(&mut buf).is_ok() {
            let used = before - buf.len();
            assert!(body.read() <= used as u64, "the decoder counted bytes it was not given");
            let _ = body.eof();
        }
    }
}

/// A body of each framing decoded from `data[1..]` in pieces of `data[0]` bytes.
pub fn body(data: &[u8]) {
    let Some((&step, wire)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let framings = [
        Framing::Chunked,
        Framing::UntilClose,
        Framing::Empty,
        Framing::Length(step as u64 * 3),
        Framing::Length(u64::MAX),
    ];
    for framing in framings {
        let mut decoder = BodyDecoder::new(framing, 16);
        let mut buf = BytesMut::new();
        let mut fed = 0u64;
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            fed += piece.len() as u64;
            if decoder.feed(&mut buf).is_err() {
                break;
            }
            assert!(decoder.read() <= fed, "{framing:?}: read more than fed");
            if decoder.is_done() {
                break;
            }
        }
        assert!(decoder.into_kept().len() <= 16, "kept more than asked");
    }
}

/// The record formats and compressions a Datum can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    JsonLines,
    JsonLinesGzip,
    JsonLinesZstd,
    Csv,
    CsvGzip,
    Tsv,
    Parquet,
    Avro,
}

impl RecordFormat {
    /// Every one of them.
    pub const ALL: [RecordFormat; 8] = [
        RecordFormat::JsonLines,
        RecordFormat::JsonLinesGzip,
        RecordFormat::JsonLinesZstd,
        RecordFormat::Csv,
        RecordFormat::CsvGzip,
        RecordFormat::Tsv,
        RecordFormat::Parquet,
        RecordFormat::Avro,
    ];

    fn spec(self) -> FormatSpec {
        match self {
            Self::JsonLines => FormatSpec::new(FormatKind::JsonLines).with_compression(Compression::None),
            Self::JsonLinesGzip => FormatSpec::new(FormatKind::JsonLines).with_compression(Compression::Gzip),
            Self::JsonLinesZstd => FormatSpec::new(FormatKind::JsonLines).with_compression(Compression::Zstd),
            Self::Csv => FormatSpec::new(FormatKind::Csv).with_header(true).with_compression(Compression::None),
            Self::CsvGzip => FormatSpec::new(FormatKind::Csv).with_header(true).with_compression(Compression::Gzip),
            Self::Tsv => FormatSpec::new(FormatKind::Tsv).with_header(false).with_fields(["id", "email", "score"]),
            Self::Parquet => FormatSpec::new(FormatKind::Parquet),
            Self::Avro => FormatSpec::new(FormatKind::Avro),
        }
    }

    /// Whether a shard of a file of this format may be a byte range.
    fn splittable(self) -> bool {
        matches!(self, Self::JsonLines | Self::Csv | Self::Tsv | Self::Parquet | Self::Avro)
    }
}

/// What reading a file gave: records, malformed records, and whether the file was unreadable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadTally {
    pub records: usize,
    pub malformed: usize,
    pub unreadable: bool,
}

static FILES: AtomicU64 = AtomicU64::new(0);

/// `data` as a file of `format`, read as one shard (and, for splittable formats, as two byte
/// ranges cut in its middle) through the worker's real reader. Malformed records and an
/// unreadable file are fine; a panic in a reader (seen as [`ShardError::ReaderDied`]) or a
/// record outside the file is a finding.
pub fn records(format: RecordFormat, data: &[u8]) -> ReadTally {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => panic!("no Tokio runtime for the fuzz target: {e}"),
    };
    let n = FILES.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("courier-fuzz-{}-{n}", std::process::id()));
    if let Err(e) = std::fs::write(&path, data) {
        panic!("cannot write the fuzz input to {}: {e}", path.display());
    }
    let url = format!("file://{}", path.display());
    let tally = runtime.block_on(async {
        let Ok(source) = Source::for_url(&url) else { panic!("file source for {url}") };
        let spec = format.spec();
        let len = data.len() as u64;
        let whole = read_all(&source, ShardSpec { url: url.clone(), kind: ShardKind::Whole }, &spec, len).await;
        if format.splittable() && len > 1 {
            let cut = len / 2;
            for (start, end) in [(0, cut), (cut, len)] {
                let kind = ShardKind::ByteRange { start, end };
                read_all(&source, ShardSpec { url: url.clone(), kind }, &spec, len).await;
            }
        }
        whole
    });
    let _ = std::fs::remove_file(&path);
    tally
}

async fn read_all(source: &Source, shard: ShardSpec, format: &FormatSpec, len: u64) -> ReadTally {
    let mut tally = ReadTally::default();
    let mut stream = read_shard(source.clone(), shard, format.clone());
    while let Some(item) = stream.next().await {
        match item {
            Ok(Ok(record)) => {
                tally.records += 1;
                if format.is_text() && format.compression == Compression::None {
                    assert!(record.offset < len.max(1), "record at {} past the file's {len} bytes", record.offset);
                }
            }
            Ok(Err(_)) => tally.malformed += 1,
            Err(ShardError::ReaderDied { url }) => panic!("the reader of {url} died (a panic in a decoder)"),
            Err(_) => tally.unreadable = true,
        }
    }
    tally
}

/// A request template (`data` up to the first NUL, as path, header and body template) rendered
/// for the record after it (JSON, or raw bytes). Compile errors and render errors are fine.
pub fn template(data: &[u8]) {
    let (template, record) = match memchr::memchr(0, data) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{\"id\":1,\"name\":\"a\"}"[..]),
    };
    let template = String::from_utf8_lossy(template).into_owned();
    let record = Record {
        file: FileRef { url: std::sync::Arc::from("file:///fuzz/a.jsonl") },
        offset: 7,
        size: record.len() as u64,
        payload: Payload::JsonLine(bytes::Bytes::copy_from_slice(record)),
    };
    let base = RequestSpec::new("http://127.0.0.1:9/api", "ns", "pkg");
    let specs = [
        RequestSpec { path_template: Some(template.clone()), ..base.clone() },
        RequestSpec { header_templates: vec![("x-fuzz".into(), format!("{{{{ {template} }}}}"))], ..base.clone() },
        RequestSpec { body: BodySpec::Template(template.clone()), ..base.clone() },
        RequestSpec { body: BodySpec::Template(format!("{{{{ {template} }}}}")), ..base },
    ];
    for spec in specs {
        if let Ok(builder) = RequestBuilder::new(&spec) {
            let _ = builder.build(&record);
        }
    }
}
