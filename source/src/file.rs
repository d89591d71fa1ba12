//! `file://` — the local filesystem, for `courier-worker run`, tests and benchmarks.

use std::io::{ErrorKind, SeekFrom};

use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::walk::Entry;
use super::{ByteStream, READ_CHUNK, SourceError};

/// The local filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSource;

fn io_error(path: &str, err: std::io::Error) -> SourceError {
    match err.kind() {
        ErrorKind::NotFound => SourceError::NotFound { path: format!("file://{path}") },
        ErrorKind::PermissionDenied => {
            SourceError::PermissionDenied { path: format!("file://{path}"), source: err.into() }
        }
        _ => SourceError::Io { path: format!("file://{path}"), source: err.into() },
    }
}

/// A directory entry from local metadata (a local file's write state is unknown).
fn entry(path: String, meta: &std::fs::Metadata) -> Entry {
    let modified_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Entry { path, is_dir: meta.is_dir(), size: meta.len(), modified_ms, never_closed: None }
}

impl FileSource {
    pub(crate) async fn stat(&self, path: &str) -> Result<Option<Entry>, SourceError> {
        match tokio::fs::metadata(path).await {
            Ok(meta) => Ok(Some(entry(path.to_owned(), &meta))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(path, e)),
        }
    }

    pub(crate) async fn list_dir(&self, path: &str) -> Result<Vec<Entry>, SourceError> {
        let mut dir = tokio::fs::read_dir(path).await.map_err(|e| io_error(path, e))?;
        let mut entries = Vec::new();
        while let Some(child) = dir.next_entry().await.map_err(|e| io_error(path, e))? {
            let child_path = child.path();
            let Some(child_str) = child_path.to_str() else {
                continue; // not representable in a URL
            };
            // Follow symlinks; skip dangling ones.
            match tokio::fs::metadata(&child_path).await {
                Ok(meta) => entries.push(entry(child_str.to_owned(), &meta)),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(child_str, e)),
            }
        }
        Ok(entries)
    }

    /// Writes `content` to `tmp` and links it to `path` unless `path` exists.
    pub(crate) async fn create_new(
        &self,
        dir: &str,
        tmp: &str,
        path: &str,
        content: &[u8],
    ) -> Result<bool, SourceError> {
        tokio::fs::create_dir_all(dir).await.map_err(|e| io_error(dir, e))?;
        tokio::fs::write(tmp, content).await.map_err(|e| io_error(tmp, e))?;
        let linked = tokio::fs::hard_link(tmp, path).await;
        let _ = tokio::fs::remove_file(tmp).await;
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_error(path, e)),
        }
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<(), SourceError> {
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(path, e)),
        }
    }

    pub(crate) async fn open_range(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<ByteStream, SourceError> {
        let mut file = tokio::fs::File::open(path).await.map_err(|e| io_error(path, e))?;
        let size = file.metadata().await.map_err(|e| io_error(path, e))?.len();
        let remaining = match len {
            Some(len) if offset.saturating_add(len) <= size => len,
            None if offset <= size => size - offset,
            _ => {
                return Err(SourceError::OutOfRange {
                    path: format!("file://{path}"),
                    offset,
                    len: len.unwrap_or(0),
                    size,
                });
            }
        };
        file.seek(SeekFrom::Start(offset)).await.map_err(|e| io_error(path, e))?;
        let path = path.to_owned();
        let stream = futures::stream::try_unfold((file, remaining, path), |(mut file, remaining, path)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = usize::try_from(remaining).unwrap_or(READ_CHUNK).min(READ_CHUNK);
            let mut buf = BytesMut::with_capacity(want);
            while buf.len() < want {
                let n = (&mut file)
                    .take((want - buf.len()) as u64)
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| io_error(&path, e))?;
                if n == 0 {
                    return Err(SourceError::Shrank { path: format!("file://{path}") });
                }
            }
            let chunk = buf.freeze();
            let left = remaining - chunk.len() as u64;
            Ok(Some((chunk, (file, left, path))))
        });
        Ok(stream.boxed())
    }
}
