//! Valid inputs the fuzz targets start from: shared by the bounded run
//! (`tests/integration/fuzz_bounded.rs`) and the libFuzzer corpus (`examples/fuzz_seeds.rs`).

#![allow(dead_code)]

use courier_e2e::fixtures::set::FixtureSet;
use courier_worker::fuzzing::RecordFormat;

/// Partner answers; the first byte is the read size the target feeds them in.
pub fn response_seeds() -> Vec<Vec<u8>> {
    let heads: &[&[u8]] = &[
        b"\x05HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"\x03HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nRateLimit: limit=10, remaining=0, reset=2\r\nContent-Length: 0\r\n\r\n",
        b"\x01HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n0\r\nT: 1\r\n\r\n",
        b"\x40HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nConnection: close\r\n\r\nbody until close",
        b"\x07HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n",
        b"\x02HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ];
    heads.iter().map(|h| h.to_vec()).collect()
}

/// Bodies; the first byte is the read size.
pub fn body_seeds() -> Vec<Vec<u8>> {
    vec![
        b"\x02a\r\nabcdefghij\r\n0\r\n\r\n".to_vec(),
        b"\x01FFFFFFFFFFFFFFFF\r\nxx".to_vec(),
        b"\x09hello world, until close".to_vec(),
        b"\x011;ext=\"quoted\"\r\nz\r\n0\r\nA: b\r\n\r\n".to_vec(),
    ]
}

/// Templates, each with a record after a NUL.
pub fn template_seeds() -> Vec<Vec<u8>> {
    [
        "/users/{{ id }}\0{\"id\":\"u1\"}",
        "{% for k, v in record|items %}{{ k }}={{ v|urlencode }}&{% endfor %}\0{\"a\":[1,2,{\"b\":null}]}",
        "{{ record | tojson }}\0not json",
        "{% if score > 500 %}{{ email }}{% else %}{{ offset }}{% endif %}\0{\"score\":1e308,\"email\":\"x\"}",
        "{{ range(100) | join(',') }}{{ file }}{{ package }}{{ namespace }}",
        "{% macro m(x) %}{{ m(x) }}{% endmacro %}{{ m(1) }}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// The fixture file of `format` (40 users, malformed lines included in the text formats).
pub fn record_seed(format: RecordFormat) -> Vec<u8> {
    let set = FixtureSet::standard(40).expect("fixtures");
    let name = match format {
        RecordFormat::JsonLines => "users.jsonl",
        RecordFormat::JsonLinesGzip => "users.jsonl.gz",
        RecordFormat::JsonLinesZstd => "users.jsonl.zst",
        RecordFormat::Csv => "users.csv",
        RecordFormat::CsvGzip => "users.csv.gz",
        RecordFormat::Tsv => "users.tsv",
        RecordFormat::Parquet => "users.parquet",
        RecordFormat::Avro => "users.avro",
    };
    set.file(name).unwrap_or_else(|| panic!("fixture {name}")).bytes.clone()
}
