#![forbid(unsafe_code)]
//! Where records come from: `hdfs://` (hdfs-native) and `file://` (tokio fs).
//!
//! A [`Source`] serves one filesystem (one namenode or name service, or the local disk). It
//! lists files matching globs (the [`FileLister`] the operator's planner uses) and streams byte
//! ranges of them (what the worker's shard readers use).

pub mod file;
pub mod glob;
pub mod hdfs;
mod io;
pub mod resume;
mod walk;
mod window;
mod write;

pub use write::DirEntry;

pub use io::{ByteStream, into_async_read, source_error_of};

use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;

/// Size of each read from the underlying filesystem.
pub const READ_CHUNK: usize = 1 << 20;

pub use courier_core::source::{FileInfo, FileLister, FileStatus, WriteState};

/// Failure to list or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The URL cannot be served (bad scheme, relative path, …).
    #[error("invalid source URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The URL belongs to another filesystem than this source.
    #[error("{url} is not on {base}")]
    ForeignUrl { url: String, base: String },
    /// Nothing at this path.
    #[error("path not found: {path}")]
    NotFound { path: String },
    /// The namenode (or another server) cannot be reached.
    #[error("cannot reach {address}: {source}")]
    Unreachable { address: String, source: Cause },
    /// The user may not read or list this path.
    #[error("permission denied on {path}: {source}")]
    PermissionDenied { path: String, source: Cause },
    /// The glob pattern is malformed.
    #[error(transparent)]
    Glob(#[from] glob::GlobError),
    /// A range outside the file was asked for.
    #[error("range {offset}+{len} is outside {path} (size {size})")]
    OutOfRange { path: String, offset: u64, len: u64, size: u64 },
    /// A file became shorter than its listed size while it was read.
    #[error("I/O error on {path}: file shrank while being read")]
    Shrank { path: String },
    /// A file was expected and a directory found.
    #[error("I/O error on {path}: is a directory")]
    IsDirectory { path: String },
    /// Any other I/O failure, with the path it happened on.
    #[error("I/O error on {path}: {source}")]
    Io { path: String, source: Cause },
}

/// What a [`SourceError`] came from, kept whole for its chain: the local filesystem's
/// `std::io::Error` or hdfs-native's `HdfsError`.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A filesystem to read from. Cheap to clone (clients are shared).
#[derive(Debug, Clone)]
pub enum Source {
    /// The local filesystem (`file://`).
    File(file::FileSource),
    /// One HDFS namenode or name service (`hdfs://`).
    Hdfs(hdfs::HdfsSource),
}

/// A URL split into scheme, authority and absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl<'a> {
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
}

/// Splits `scheme://authority/path`. `file:/x` and `file:///x` are both accepted.
pub fn parse_url(url: &str) -> Result<ParsedUrl<'_>, SourceError> {
    let invalid = |reason: &str| SourceError::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
    let (scheme, rest) = url.split_once(':').ok_or_else(|| invalid("missing scheme"))?;
    let (authority, path) = match rest.strip_prefix("//") {
        Some(rest) => match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        },
        None => ("", rest),
    };
    if !path.starts_with('/') {
        return Err(invalid("the path must be absolute"));
    }
    Ok(ParsedUrl { scheme, authority, path })
}

impl Source {
    /// The source serving `url` (`file://…` or `hdfs://host:port/…` / `hdfs://nameservice/…`).
    /// HDFS clients connect lazily: an unreachable namenode shows up on the first call.
    pub fn for_url(url: &str) -> Result<Source, SourceError> {
        Source::for_url_with_config(url, &[])
    }

    /// [`Source::for_url`] with Hadoop settings for HDFS (e.g. `dfs.client.failover.max.attempts`);
    /// ignored for `file://`.
    pub fn for_url_with_config(url: &str, hadoop_config: &[(String, String)]) -> Result<Source, SourceError> {
        let parsed = parse_url(url)?;
        match parsed.scheme {
            "file" => {
                if !parsed.authority.is_empty() && parsed.authority != "localhost" {
                    return Err(SourceError::InvalidUrl {
                        url: url.to_owned(),
                        reason: "file URLs must not name a host".to_owned(),
                    });
                }
                Ok(Source::File(file::FileSource))
            }
            "hdfs" | "viewfs" => {
                Ok(Source::Hdfs(hdfs::HdfsSource::connect(parsed.scheme, parsed.authority, hadoop_config)?))
            }
            other => Err(SourceError::InvalidUrl {
                url: url.to_owned(),
                reason: format!("unsupported scheme {other:?} (use hdfs:// or file://)"),
            }),
        }
    }

    /// The path part of `url`, checked to belong to this source.
    fn path_of<'a>(&self, url: &'a str) -> Result<&'a str, SourceError> {
        let parsed = parse_url(url)?;
        let ok = match self {
            Source::File(_) => parsed.scheme == "file",
            Source::Hdfs(h) => h.owns(parsed.scheme, parsed.authority),
        };
        if ok { Ok(parsed.path) } else { Err(SourceError::ForeignUrl { url: url.to_owned(), base: self.base_url() }) }
    }

    /// `file://` or `hdfs://authority`.
    pub fn base_url(&self) -> String {
        match self {
            Source::File(_) => "file://".to_owned(),
            Source::Hdfs(h) => h.base_url(),
        }
    }

    /// The files matching `pattern` (a URL, possibly with a glob in its path), sorted by URL.
    ///
    /// A pattern naming a directory (or a glob matching directories) yields every file below
    /// it, recursively, skipping names that start with `_` or `.` (e.g. `_SUCCESS`). A pattern
    /// that matches nothing is an error ([`SourceError::NotFound`]).
    pub async fn list(&self, pattern: &str) -> Result<Vec<FileInfo>, SourceError> {
        let path = self.path_of(pattern)?;
        let entries = walk::expand(self, path).await?;
        if entries.is_empty() {
            return Err(SourceError::NotFound { path: pattern.to_owned() });
        }
        let base = self.base_url();
        let mut files: Vec<FileInfo> =
            entries.into_iter().map(|e| FileInfo { url: format!("{base}{}", e.path), size: e.size }).collect();
        files.sort();
        files.dedup();
        Ok(files)
    }

    /// The files matching `pattern` with modification times and write states, sorted by URL;
    /// nothing matching is an empty list, not an error.
    pub async fn list_status(&self, pattern: &str) -> Result<Vec<FileStatus>, SourceError> {
        let path = self.path_of(pattern)?;
        let base = self.base_url();
        let mut files: Vec<FileStatus> = walk::expand(self, path)
            .await?
            .into_iter()
            .map(|e| FileStatus {
                url: format!("{base}{}", e.path),
                size: e.size,
                modified_ms: e.modified_ms,
                write: match e.never_closed {
                    Some(true) => WriteState::NeverClosed,
                    Some(false) => WriteState::Closed,
                    None => WriteState::Unknown,
                },
            })
            .collect();
        files.sort_by(|a, b| a.url.cmp(&b.url));
        files.dedup_by(|a, b| a.url == b.url);
        Ok(files)
    }

    /// Whether a file (not a directory) exists at `url`.
    pub async fn exists(&self, url: &str) -> Result<bool, SourceError> {
        let path = self.path_of(url)?;
        Ok(self.stat(path).await?.is_some_and(|e| !e.is_dir))
    }

    /// Size of the file at `url`.
    pub async fn size(&self, url: &str) -> Result<u64, SourceError> {
        let path = self.path_of(url)?;
        match self.stat(path).await? {
            Some(e) if !e.is_dir => Ok(e.size),
            Some(_) => Err(SourceError::IsDirectory { path: url.to_owned() }),
            None => Err(SourceError::NotFound { path: url.to_owned() }),
        }
    }

    /// Streams `len` bytes (to the end of the file when `None`) from `offset`, in chunks of
    /// at most [`READ_CHUNK`] bytes, fetched as the stream is polled.
    pub async fn open_range(&self, url: &str, offset: u64, len: Option<u64>) -> Result<ByteStream, SourceError> {
        let path = self.path_of(url)?;
        match self {
            Source::File(f) => f.open_range(path, offset, len).await,
            Source::Hdfs(h) => h.open_range(path, offset, len).await,
        }
    }

    /// Reads `len` bytes from `offset` into memory (short only at the end of the file).
    pub async fn read_range(&self, url: &str, offset: u64, len: u64) -> Result<Bytes, SourceError> {
        let mut stream = self.open_range(url, offset, Some(len)).await?;
        let mut buf = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 26));
        while let Some(chunk) = stream.try_next().await? {
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    async fn stat(&self, path: &str) -> Result<Option<walk::Entry>, SourceError> {
        match self {
            Source::File(f) => f.stat(path).await,
            Source::Hdfs(h) => h.stat(path).await,
        }
    }

    async fn list_dir(&self, path: &str) -> Result<Vec<walk::Entry>, SourceError> {
        match self {
            Source::File(f) => f.list_dir(path).await,
            Source::Hdfs(h) => h.list_dir(path).await,
        }
    }
}

impl FileLister for Source {
    type Error = SourceError;

    async fn list(&self, pattern: &str) -> Result<Vec<FileInfo>, SourceError> {
        Source::list(self, pattern).await
    }

    async fn list_status(&self, pattern: &str) -> Result<Vec<FileStatus>, SourceError> {
        Source::list_status(self, pattern).await
    }

    async fn exists(&self, url: &str) -> Result<bool, SourceError> {
        Source::exists(self, url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let p = parse_url("hdfs://127.0.0.1:9000/data/x").expect("valid");
        assert_eq!((p.scheme, p.authority, p.path), ("hdfs", "127.0.0.1:9000", "/data/x"));
        let p = parse_url("hdfs://ns1/data").expect("valid");
        assert_eq!((p.scheme, p.authority, p.path), ("hdfs", "ns1", "/data"));
        let p = parse_url("file:///tmp/a b.csv").expect("valid");
        assert_eq!((p.scheme, p.authority, p.path), ("file", "", "/tmp/a b.csv"));
        let p = parse_url("file:/tmp/x").expect("valid");
        assert_eq!(p.path, "/tmp/x");
        assert!(parse_url("no-scheme").is_err());
        assert!(parse_url("file:relative").is_err());
    }

    #[test]
    fn unknown_schemes_are_refused() {
        let err = Source::for_url("s3://bucket/x").expect_err("s3 is not served");
        assert!(err.to_string().contains("unsupported scheme"), "{err}");
        assert!(Source::for_url("file://otherhost/x").is_err());
    }

    #[tokio::test]
    async fn a_failure_of_the_filesystem_keeps_its_cause() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").expect("writes");
        // A path under a regular file: neither found nor missing, ENOTDIR.
        let url = format!("file://{}/below", file.display());
        let err = Source::for_url(&url).expect("file://").read_range(&url, 0, 1).await.expect_err("ENOTDIR");
        assert!(matches!(err, SourceError::Io { .. }), "{err:?}");
        let cause = std::error::Error::source(&err).expect("the cause is kept");
        assert!(cause.downcast_ref::<std::io::Error>().is_some(), "{cause:?}");
        assert!(err.to_string().starts_with(&format!("I/O error on {url}: ")), "{err}");
    }
}
