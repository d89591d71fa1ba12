//! Dead letters as the worker writes them (one JSON object per line) and their table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::table::{Align, Cell, Table, Tone};

/// One dead letter. Unknown fields are ignored, missing ones are empty: files of older or
/// newer workers still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    #[serde(default)]
    pub record: serde_json::Value,
    #[serde(default)]
    pub file: String,
    #[serde(default)]
    pub offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub time: String,
}

/// The dead letters of one file's text, and how many lines could not be read.
pub fn parse_lines(text: &str) -> (Vec<DeadLetter>, usize) {
    let mut entries = Vec::new();
    let mut unreadable = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<DeadLetter>(line) {
            Ok(e) => entries.push(e),
            Err(_) => unreadable += 1,
        }
    }
    (entries, unreadable)
}

fn clip(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max { flat } else { flat.chars().take(max.saturating_sub(1)).chain(['…']).collect() }
}

/// The last path segment of a URL.
fn file_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// The table of dead letters: where the record came from, the answer and why it was given up.
pub fn table(entries: &[DeadLetter]) -> Table {
    let mut t = Table::new(&[
        ("FILE:OFFSET", Align::Left),
        ("STATUS", Align::Right),
        ("ATTEMPTS", Align::Right),
        ("REASON", Align::Left),
        ("BODY", Align::Left),
        ("RECORD", Align::Left),
    ]);
    for e in entries {
        let record = match &e.record {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        t.row(vec![
            format!("{}:{}", file_name(&e.file), e.offset).into(),
            Cell::toned(e.status.map_or_else(|| "-".to_owned(), |s| s.to_string()), Tone::Warn),
            e.attempts.to_string().into(),
            clip(&e.error, 40).into(),
            clip(e.body.as_deref().unwrap_or("-"), 40).into(),
            clip(&record, 50).into(),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = concat!(
        r#"{"record":{"id":"r-1"},"file":"hdfs://nn:9000/d/part-0.jsonl","offset":120,"idempotencyKey":"k1","status":400,"headers":{"content-type":"application/json"},"body":"{\"error\":\"bad field\"}","attempts":1,"error":"partner refused the record (400)","time":"2026-12-01T10:00:00Z"}"#,
        "\n",
        r#"{"record":"not json at all","file":"hdfs://nn:9000/d/part-1.jsonl","offset":0,"status":null,"headers":{},"body":null,"attempts":0,"error":"malformed: expected value","time":"2026-12-01T10:00:01Z","extra":"ignored"}"#,
        "\n",
        "{truncated\n",
    );

    #[test]
    fn dead_letter_lines_parse_and_unreadable_ones_are_counted() {
        let (entries, unreadable) = parse_lines(FILE);
        assert_eq!((entries.len(), unreadable), (2, 1));
        assert_eq!(entries[0].status, Some(400));
        assert_eq!(entries[1].record, serde_json::json!("not json at all"));
        let lines = table(&entries).lines(false);
        assert!(
            lines[1].starts_with("part-0.jsonl:120      400          1   partner refused the record (400)"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains(r#"{"error":"bad field"}"#), "{}", lines[1]);
        assert!(lines[1].ends_with(r#"{"id":"r-1"}"#), "{}", lines[1]);
        assert!(lines[2].contains("malformed: expected value"), "{}", lines[2]);
    }
}
