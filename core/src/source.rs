//! What planning needs from a filesystem: the files matching a pattern, with their sizes.
//!
//! The listing itself (hdfs-native, tokio fs) lives in `courier-source`; planning takes the
//! listed [`FileInfo`]s, so it stays a pure function.

use std::collections::BTreeSet;
use std::future::Future;

/// A file to read: full URL and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct FileInfo {
    /// e.g. `hdfs://127.0.0.1:9000/data/users/part-0.jsonl` or `file:///tmp/x.csv`.
    pub url: String,
    /// Length in bytes.
    pub size: u64,
}

/// Whether a file may still be written to, as far as its filesystem says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum WriteState {
    /// The filesystem says the file was closed after it was created.
    Closed,
    /// The filesystem says the file has not been closed since it was created (HDFS: it may
    /// be under construction).
    NeverClosed,
    /// The filesystem does not say (local files).
    Unknown,
}

/// A listed file with what deciding whether it is complete needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileStatus {
    /// Full URL, as in [`FileInfo`].
    pub url: String,
    /// Length in bytes.
    pub size: u64,
    /// Modification time, Unix milliseconds.
    pub modified_ms: u64,
    /// Whether it may still be written to.
    pub write: WriteState,
}

/// Lists the files a pattern stands for.
pub trait FileLister {
    /// Why listing failed.
    type Error;

    /// The files matching `pattern` (a URL, possibly with a glob in its path), sorted by URL.
    /// A pattern matching nothing is an error.
    fn list(&self, pattern: &str) -> impl Future<Output = Result<Vec<FileInfo>, Self::Error>> + Send;

    /// The files matching `pattern` with their modification times and write states, sorted by
    /// URL; a pattern matching nothing yields no file (a landing directory may be empty).
    fn list_status(&self, pattern: &str) -> impl Future<Output = Result<Vec<FileStatus>, Self::Error>> + Send;

    /// Whether a file (not a directory) exists at `url`.
    fn exists(&self, url: &str) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// Every file matching any of `patterns`, each once, sorted by URL. Stops at the first
/// pattern that fails (a pattern matching nothing included).
pub async fn list_all<L: FileLister + Sync>(lister: &L, patterns: &[String]) -> Result<Vec<FileInfo>, L::Error> {
    let mut files = BTreeSet::new();
    for pattern in patterns {
        files.extend(lister.list(pattern).await?);
    }
    Ok(files.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing held in memory: pattern → files.
    struct Fixed(Vec<(&'static str, Vec<FileInfo>)>);

    impl FileLister for Fixed {
        type Error = String;

        async fn list(&self, pattern: &str) -> Result<Vec<FileInfo>, String> {
            self.0.iter().find(|(p, _)| *p == pattern).map(|(_, f)| f.clone()).ok_or_else(|| pattern.to_owned())
        }

        async fn list_status(&self, pattern: &str) -> Result<Vec<FileStatus>, String> {
            Ok(self
                .list(pattern)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|f| FileStatus { url: f.url, size: f.size, modified_ms: 0, write: WriteState::Unknown })
                .collect())
        }

        async fn exists(&self, url: &str) -> Result<bool, String> {
            Ok(self.0.iter().any(|(_, files)| files.iter().any(|f| f.url == url)))
        }
    }

    fn file(url: &str, size: u64) -> FileInfo {
        FileInfo { url: url.to_owned(), size }
    }

    #[tokio::test]
    async fn files_of_overlapping_patterns_are_listed_once_in_url_order() {
        let lister = Fixed(vec![
            ("file:///d/*", vec![file("file:///d/b", 2), file("file:///d/a", 1)]),
            ("file:///d/a", vec![file("file:///d/a", 1)]),
        ]);
        let got = list_all(&lister, &["file:///d/*".to_owned(), "file:///d/a".to_owned()]).await;
        assert_eq!(got, Ok(vec![file("file:///d/a", 1), file("file:///d/b", 2)]));
    }

    #[tokio::test]
    async fn a_pattern_that_fails_fails_the_listing() {
        let lister = Fixed(vec![("file:///d/*", vec![file("file:///d/a", 1)])]);
        let got = list_all(&lister, &["file:///d/*".to_owned(), "file:///missing".to_owned()]).await;
        assert_eq!(got, Err("file:///missing".to_owned()));
    }
}
