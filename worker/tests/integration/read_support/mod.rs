//! Helpers shared by the read-side integration tests (file:// and MiniDFS).

#![allow(dead_code)]

use courier_e2e::fixtures::dataset::{FIELDS, User};
use courier_e2e::fixtures::set::{Compression as FixtureCompression, FixtureFile, Format};
use courier_worker::decode::{FormatKind, FormatSpec};
use courier_worker::record::{Malformed, Payload, Record};
use courier_worker::shard::{ShardError, ShardKind, ShardSpec, plan_shards, read_shard};
use courier_worker::source::{FileInfo, Source};
use futures::StreamExt;
use serde_json::Value;

/// Everything one shard produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: Vec<Record>,
    pub malformed: Vec<Malformed>,
    pub error: Option<ShardError>,
}

/// The whole of the file at `url` as one shard.
pub fn whole(url: &str) -> ShardSpec {
    ShardSpec { url: url.to_owned(), kind: ShardKind::Whole }
}

/// Bytes `start..end` of the file at `url` as one shard.
pub fn range(url: &str, start: u64, end: u64) -> ShardSpec {
    ShardSpec { url: url.to_owned(), kind: ShardKind::ByteRange { start, end } }
}

/// Reads one shard to the end.
pub async fn read_one(source: &Source, spec: ShardSpec, format: &FormatSpec) -> Outcome {
    let mut out = Outcome::default();
    let mut stream = read_shard(source.clone(), spec, format.clone());
    while let Some(item) = stream.next().await {
        match item {
            Ok(Ok(record)) => out.records.push(record),
            Ok(Err(malformed)) => out.malformed.push(malformed),
            Err(e) => {
                assert!(out.error.is_none(), "two errors from one shard");
                out.error = Some(e);
            }
        }
    }
    out
}

/// Plans `files` with `target` bytes per shard and reads every shard, failing on shard errors.
/// Returns the shards and what each produced, concatenated in plan order.
pub async fn read_planned(
    source: &Source,
    files: Vec<FileInfo>,
    format: &FormatSpec,
    target: u64,
) -> (Vec<ShardSpec>, Outcome) {
    let shards = plan_shards(&files, format, target);
    let mut all = Outcome::default();
    for shard in &shards {
        let out = read_one(source, shard.clone(), format).await;
        if let Some(e) = out.error {
            panic!("shard {shard:?} failed: {e}");
        }
        all.records.extend(out.records);
        all.malformed.extend(out.malformed);
    }
    (shards, all)
}

/// The format spec a fixture file is read with.
pub fn spec_for(file: &FixtureFile) -> FormatSpec {
    match file.format {
        Format::JsonLines => FormatSpec::new(FormatKind::JsonLines),
        Format::Csv => FormatSpec::new(FormatKind::Csv).with_header(true),
        Format::Tsv => FormatSpec::new(FormatKind::Tsv).with_header(false).with_fields(FIELDS),
        Format::Parquet => FormatSpec::new(FormatKind::Parquet),
        Format::Avro => FormatSpec::new(FormatKind::Avro),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().expect("integer"),
        Value::String(s) => s.parse().expect("integer text"),
        other => panic!("not an integer: {other}"),
    }
}

fn text(v: &Value) -> String {
    v.as_str().expect("string").to_owned()
}

/// The user a record carries (CSV/TSV values are strings, JSON/Parquet/Avro numbers).
pub fn user_of(record: &Record) -> User {
    let object = match &record.payload {
        Payload::JsonLine(bytes) => match serde_json::from_slice(bytes).expect("valid JSON line") {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        },
        Payload::Object(map) => map.clone(),
    };
    User {
        id: int(&object["id"]),
        email: text(&object["email"]),
        segment: text(&object["segment"]),
        score: int(&object["score"]),
        ts: text(&object["ts"]),
    }
}

/// Checks that shards of a fixture file, read one after the other, yield exactly its records
/// (in order, each once, unique offsets) and its malformed lines.
pub async fn check_fixture_file(source: &Source, url: &str, file: &FixtureFile, shards_wanted: u64) {
    let format = spec_for(file);
    let info = FileInfo { url: url.to_owned(), size: file.bytes.len() as u64 };
    let target = (file.bytes.len() as u64 / shards_wanted).max(1);
    let (shards, out) = read_planned(source, vec![info], &format, target).await;
    let splittable = file.compression == FixtureCompression::None;
    if splittable {
        assert!(shards.len() >= 2, "{}: only {} shard(s): {shards:?}", file.name, shards.len());
    } else {
        assert_eq!(shards.iter().map(|s| s.kind).collect::<Vec<_>>(), vec![ShardKind::Whole]);
    }
    let users: Vec<User> = out.records.iter().map(user_of).collect();
    assert_eq!(users.len(), file.records.len(), "{}: record count", file.name);
    assert!(users == file.records, "{}: records differ from the fixture", file.name);
    let mut offsets: Vec<u64> = out.records.iter().map(|r| r.offset).collect();
    offsets.extend(out.malformed.iter().map(|m| m.offset));
    let n = offsets.len();
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(offsets.len(), n, "{}: offsets are not unique", file.name);
    assert_eq!(
        out.malformed.len(),
        file.malformed_lines.len(),
        "{}: malformed count ({:?})",
        file.name,
        out.malformed.iter().map(|m| &m.reason).collect::<Vec<_>>()
    );
    if file.format.is_text() {
        let lines = plain_lines(file);
        for (m, index) in out.malformed.iter().zip(&file.malformed_lines) {
            assert_eq!(&m.raw[..], lines[*index].as_bytes(), "{}: malformed line {index}", file.name);
            assert!(!m.reason.is_empty());
        }
    }
}

/// The data lines (header dropped) of a text fixture, decompressed.
fn plain_lines(file: &FixtureFile) -> Vec<String> {
    use std::io::Read;
    let bytes = match file.compression {
        FixtureCompression::None => file.bytes.clone(),
        FixtureCompression::Gzip => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&file.bytes[..]).read_to_end(&mut out).expect("fixture gzip");
            out
        }
        FixtureCompression::Zstd => zstd::decode_all(&file.bytes[..]).expect("fixture zstd"),
    };
    let text = String::from_utf8(bytes).expect("UTF-8 fixture");
    let skip = usize::from(file.format == Format::Csv);
    text.lines().skip(skip).map(str::to_owned).collect()
}
