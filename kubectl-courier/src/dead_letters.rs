//! `kubectl courier dead-letters PACKAGE [--limit N] [--attempt N]`: reads the package's
//! dead-letter files (HDFS or file://, through courier-source) and prints the records with
//! the partner's status and the reason they were given up on.

use std::io::Write as _;
use std::process::ExitCode;

use courier_api::DeliveryPackage;
use courier_source::{Source, SourceError};
use kube::Api;
use serde::Serialize;

use crate::cli::{DeadLettersArgs, Global, OutputFormat};
use crate::error::Error;
use crate::output;
use crate::table::Terminal;
use crate::view::deadletter::{DeadLetter, parse_lines, table};

/// What was read.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeadLetters {
    path: String,
    files: usize,
    /// Dead letters counted in the package's status (all attempts' files may hold more).
    dead_lettered: i64,
    shown: usize,
    unreadable_lines: usize,
    entries: Vec<DeadLetter>,
}

/// The dead-letter path of `attempt` next to the current attempt's `path` (`…/attempt-N`).
pub fn attempt_path(path: &str, attempt: Option<u32>) -> String {
    match (attempt, path.rsplit_once("/attempt-")) {
        (Some(n), Some((base, _))) => format!("{base}/attempt-{n}"),
        _ => path.to_owned(),
    }
}

/// Runs `dead-letters`.
pub async fn run(
    global: &Global,
    args: &DeadLettersArgs,
    format: Option<OutputFormat>,
    term: &Terminal,
) -> Result<ExitCode, Error> {
    let (client, namespace) = crate::client::connect(global).await?;
    let name = &args.package;
    let pkg = Api::<DeliveryPackage>::namespaced(client, &namespace)
        .get_opt(name)
        .await
        .map_err(Error::api(format!("get package {name}")))?
        .ok_or_else(|| Error::NotFound { kind: "DeliveryPackage", name: name.clone(), namespace: namespace.clone() })?;
    let status = pkg.status.unwrap_or_default();
    let current = status.dead_letter_path.ok_or_else(|| Error::NoDeadLetterPath(name.clone()))?;
    let path = attempt_path(&current, args.attempt);
    let read = read(&path, args.limit).await.map_err(|source| Error::DeadLetters { path: path.clone(), source })?;
    let result = DeadLetters {
        path: path.clone(),
        files: read.files,
        dead_lettered: status.progress.records.dead_lettered,
        shown: read.entries.len(),
        unreadable_lines: read.unreadable,
        entries: read.entries,
    };
    if let Some(f) = format {
        output::print(f, &result)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    let w = |out: &mut std::io::StdoutLock<'_>, line: &str| writeln!(out, "{line}").map_err(Error::Output);
    if result.entries.is_empty() {
        w(&mut out, &format!("No dead letters under {path}."))?;
    } else {
        for line in table(&result.entries).lines(term.colour) {
            w(&mut out, &line)?;
        }
        w(
            &mut out,
            &format!(
                "{} shown of {} files under {path} (status counts {} dead-lettered this attempt)",
                result.shown, result.files, result.dead_lettered
            ),
        )?;
    }
    if result.unreadable_lines > 0 {
        w(&mut out, &format!("{} line(s) could not be read as dead letters", result.unreadable_lines))?;
    }
    out.flush().map_err(Error::Output)?;
    Ok(ExitCode::SUCCESS)
}

struct Read {
    files: usize,
    entries: Vec<DeadLetter>,
    unreadable: usize,
}

/// Reads up to `limit` dead letters from the `.jsonl` files under `path`, files in name order.
async fn read(path: &str, limit: u64) -> Result<Read, SourceError> {
    let source = Source::for_url(path)?;
    let files = match source.list(&format!("{}/*.jsonl", path.trim_end_matches('/'))).await {
        Ok(files) => files,
        Err(SourceError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = Read { files: files.len(), entries: Vec::new(), unreadable: 0 };
    for file in &files {
        if out.entries.len() >= limit {
            break;
        }
        let bytes = source.read_range(&file.url, 0, file.size).await?;
        let (entries, unreadable) = parse_lines(&String::from_utf8_lossy(&bytes));
        out.unreadable += unreadable;
        out.entries.extend(entries.into_iter().take(limit - out.entries.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_attempts_path_replaces_the_attempt_number() {
        let p = "hdfs://nn:9000/_courier/dead-letter/ns/p/attempt-3";
        assert_eq!(attempt_path(p, None), p);
        assert_eq!(attempt_path(p, Some(1)), "hdfs://nn:9000/_courier/dead-letter/ns/p/attempt-1");
        assert_eq!(attempt_path("file:///dl", Some(2)), "file:///dl");
    }

    #[tokio::test]
    async fn dead_letters_are_read_from_the_files_up_to_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let line = |i: u32| {
            format!(
                "{{\"record\":{{\"id\":\"r-{i}\"}},\"file\":\"file:///in/x.jsonl\",\"offset\":{i},\"status\":400,\"headers\":{{}},\"body\":\"no\",\"attempts\":1,\"error\":\"refused\",\"time\":\"t\"}}\n"
            )
        };
        std::fs::write(dir.path().join("a-shard-0-w-1.jsonl"), (0..3).map(line).collect::<String>()).expect("write");
        std::fs::write(dir.path().join("b-shard-1-w-1.jsonl"), (3..5).map(line).collect::<String>() + "oops\n")
            .expect("write");
        std::fs::write(dir.path().join("_ignored.jsonl"), "x\n").expect("write");
        let url = format!("file://{}", dir.path().display());
        let all = read(&url, 100).await.expect("read");
        assert_eq!((all.files, all.entries.len(), all.unreadable), (2, 5, 1));
        let some = read(&url, 4).await.expect("read");
        assert_eq!(some.entries.iter().map(|e| e.offset).collect::<Vec<_>>(), [0, 1, 2, 3]);
        let none = read(&format!("{url}/nothing-here"), 10).await.expect("an empty directory reads as none");
        assert_eq!((none.files, none.entries.len()), (0, 0));
    }
}
