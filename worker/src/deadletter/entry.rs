//! One dead-letter entry.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::record::{Malformed, Payload, Record};
use crate::request::BuildError;
use crate::send::Failure;

/// Response headers kept with a dead letter.
const KEPT_HEADERS: [&str; 3] = ["retry-after", "content-type", "x-request-id"];

/// One JSON line of a dead-letter file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The record as JSON, or as a string when it is not JSON.
    pub record: serde_json::Value,
    /// URL of the source file.
    pub file: String,
    /// Offset of the record in the file.
    pub offset: u64,
    /// The idempotency key the requests carried (absent when no request was built).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Status of the last response, if any.
    pub status: Option<u16>,
    /// Selected headers of the last response.
    pub headers: BTreeMap<String, String>,
    /// The first 4 KiB of the last response body (lossy UTF-8).
    pub body: Option<String>,
    /// Attempts made (0 when no request could be built).
    pub attempts: u32,
    /// Why the record was given up on.
    pub error: String,
    /// When it was given up on (RFC 3339, UTC).
    pub time: String,
}

impl DeadLetter {
    /// A record the partner refused or that ran out of attempts.
    pub fn failed(record: &Record, idempotency_key: &str, failure: &Failure) -> Self {
        let response = failure.response.as_ref();
        let headers = response
            .map(|r| {
                KEPT_HEADERS
                    .iter()
                    .filter_map(|name| {
                        let value = r.headers.get(*name)?;
                        Some(((*name).to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            record: record_json(&record.payload),
            file: record.file.url.to_string(),
            offset: record.offset,
            idempotency_key: Some(idempotency_key.to_owned()),
            status: response.map(|r| r.status.as_u16()),
            headers,
            body: response.map(|r| String::from_utf8_lossy(&r.body).into_owned()),
            attempts: failure.attempts,
            error: failure.error.clone(),
            time: now(),
        }
    }

    /// A record no request could be built from.
    pub fn unbuildable(record: &Record, error: &BuildError) -> Self {
        Self::never_sent(
            record_json(&record.payload),
            record.file.url.to_string(),
            record.offset,
            format!("request build failed: {error}"),
        )
    }

    /// A record the decoder could not read.
    pub fn malformed(record: &Malformed) -> Self {
        Self::never_sent(
            serde_json::Value::String(String::from_utf8_lossy(&record.raw).into_owned()),
            record.file.url.to_string(),
            record.offset,
            format!("malformed record: {}", record.reason),
        )
    }

    /// The rest of file `url` from `offset` on, which cannot be decoded (`message` says why):
    /// no record, the file and the position to look at.
    pub fn unreadable(url: &str, offset: u64, message: &str) -> Self {
        Self::never_sent(
            serde_json::Value::Null,
            url.to_owned(),
            offset,
            format!("unreadable rest of the file: {message}"),
        )
    }

    /// A record given up on before any request went out: no key, no attempt, no response.
    fn never_sent(record: serde_json::Value, file: String, offset: u64, error: String) -> Self {
        Self {
            record,
            file,
            offset,
            idempotency_key: None,
            status: None,
            headers: BTreeMap::new(),
            body: None,
            attempts: 0,
            error,
            time: now(),
        }
    }
}

fn record_json(payload: &Payload) -> serde_json::Value {
    match payload {
        Payload::JsonLine(line) => serde_json::from_slice(line)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(line).into_owned())),
        Payload::Object(fields) => serde_json::Value::Object(fields.clone()),
    }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}
