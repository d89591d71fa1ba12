//! Dereference: the package's Destination and Datum (from the watch caches), and the dead
//! letters of an earlier attempt.

use std::sync::Arc;

use courier_api::{Datum, DeliveryPackage, Destination};
use courier_source::{Source, SourceError};
use kube::ResourceExt;
use serde::Deserialize;

use super::plan::DeadLetterOffsets;
use crate::context::Lookups;
use crate::controller::{Error, Result};

/// The Destination and Datum the package names (`None` when absent), once the caches are filled.
pub async fn referenced(
    lookups: &Lookups,
    pkg: &DeliveryPackage,
) -> Result<(Option<Arc<Destination>>, Option<Arc<Datum>>)> {
    let ns = pkg.namespace().ok_or(Error::MissingField("namespace"))?;
    if !lookups.ready().await {
        return Err(Error::CacheGone);
    }
    Ok((lookups.destination(&ns, &pkg.spec.destination_ref.name), lookups.datum(&ns, &pkg.spec.datum_ref.name)))
}

/// The fields of a dead-letter line the retry needs.
#[derive(Debug, Deserialize)]
struct Line {
    file: String,
    offset: u64,
}

/// Adds the (file, offset) of every parsable line in `text` to `out`; returns how many lines
/// could not be parsed.
pub fn parse_dead_letters(text: &str, out: &mut DeadLetterOffsets) -> usize {
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Line>(line) {
            Ok(l) => {
                out.entry(l.file).or_default().insert(l.offset);
            }
            Err(_) => bad += 1,
        }
    }
    bad
}

/// Reads every dead-letter file under `dir` (a directory URL). A missing directory means no
/// dead letters.
pub async fn read_dead_letters(dir: &str) -> Result<DeadLetterOffsets, SourceError> {
    let source = Source::for_url(dir)?;
    let files = match source.list(dir).await {
        Ok(files) => files,
        Err(SourceError::NotFound { .. }) => return Ok(DeadLetterOffsets::new()),
        Err(err) => return Err(err),
    };
    let mut out = DeadLetterOffsets::new();
    for file in files.iter().filter(|f| f.url.ends_with(".jsonl")) {
        let bytes = source.read_range(&file.url, 0, file.size).await?;
        let bad = parse_dead_letters(&String::from_utf8_lossy(&bytes), &mut out);
        if bad > 0 {
            tracing::warn!(file = %file.url, bad, "unparsable dead-letter lines skipped");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_lines_give_their_file_and_offset() {
        let text = concat!(
            r#"{"record":{"id":1},"file":"file:///a","offset":0,"status":400,"headers":{},"body":null,"attempts":1,"error":"x","time":"t"}"#,
            "\n",
            r#"{"record":"raw","file":"file:///a","offset":42,"status":null,"headers":{},"body":null,"attempts":0,"error":"y","time":"t"}"#,
            "\nnot json\n\n",
        );
        let mut out = DeadLetterOffsets::new();
        assert_eq!(parse_dead_letters(text, &mut out), 1);
        assert_eq!(out.get("file:///a").map(|s| s.iter().copied().collect::<Vec<_>>()), Some(vec![0, 42]));
    }

    #[tokio::test]
    async fn dead_letters_are_read_from_every_file_of_the_directory_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}", dir.path().display());
        assert!(read_dead_letters(&format!("{url}/missing")).await.expect("missing dir is fine").is_empty());
        std::fs::write(dir.path().join("0-w1-1.jsonl"), "{\"file\":\"file:///a\",\"offset\":3}\n").expect("write");
        std::fs::write(dir.path().join("1-w2-1.jsonl"), "{\"file\":\"file:///b\",\"offset\":9}\n").expect("write");
        let out = read_dead_letters(&url).await.expect("reads");
        assert_eq!(out.len(), 2);
        assert!(out["file:///b"].contains(&9));
    }
}
