//! `hdfs://` — HDFS through hdfs-native (pure Rust, no JVM).
//!
//! The authority is a namenode address (`127.0.0.1:9000`) or a name service configured in the
//! Hadoop configuration found through `HADOOP_CONF_DIR` (`hdfs://prod-ns/…`).

use std::io::ErrorKind;

use futures::StreamExt;
use hdfs_native::{Client, ClientBuilder, HdfsError};

use super::walk::Entry;
use super::{ByteStream, SourceError};

/// Settings the worker applies unless told otherwise: give up on an unreachable namenode after
/// about 8 s (4 attempts, 0.5 s doubling to 4 s) instead of Hadoop's minutes, so a shard fails
/// well within a lease and is granted again later.
pub const DEFAULT_CONFIG: &[(&str, &str)] = &[
    ("dfs.client.failover.max.attempts", "4"),
    ("dfs.client.failover.sleep.base.millis", "500"),
    ("dfs.client.failover.sleep.max.millis", "4000"),
];

/// A client of one HDFS filesystem.
#[derive(Clone)]
pub struct HdfsSource {
    scheme: String,
    authority: String,
    client: Client,
}

impl std::fmt::Debug for HdfsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdfsSource").field("base", &self.base_url()).finish()
    }
}

impl HdfsSource {
    /// A client for `scheme://authority`. Connects lazily.
    ///
    /// `config` overrides Hadoop settings (after `HADOOP_CONF_DIR` and [`DEFAULT_CONFIG`]).
    pub fn connect(scheme: &str, authority: &str, config: &[(String, String)]) -> Result<HdfsSource, SourceError> {
        let base = format!("{scheme}://{authority}");
        let settings =
            DEFAULT_CONFIG.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).chain(config.iter().cloned());
        let client = ClientBuilder::new()
            .with_url(base.clone())
            .with_config(settings)
            .build()
            .map_err(|e| SourceError::InvalidUrl { url: base, reason: e.to_string() })?;
        Ok(HdfsSource { scheme: scheme.to_owned(), authority: authority.to_owned(), client })
    }

    /// `hdfs://authority`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    pub(crate) fn owns(&self, scheme: &str, authority: &str) -> bool {
        scheme == self.scheme && authority == self.authority
    }

    /// Turns an hdfs-native error on `path` into a [`SourceError`].
    fn error(&self, path: &str, err: HdfsError) -> SourceError {
        let url = format!("{}{path}", self.base_url());
        match err {
            HdfsError::FileNotFound(_) => SourceError::NotFound { path: url },
            HdfsError::IOError(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::TimedOut
                        | ErrorKind::NotConnected
                        | ErrorKind::AddrNotAvailable
                        | ErrorKind::HostUnreachable
                        | ErrorKind::NetworkUnreachable
                ) =>
            {
                SourceError::Unreachable { address: self.authority.clone(), message: e.to_string() }
            }
            HdfsError::RPCError(class, message) | HdfsError::FatalRPCError(class, message) => {
                if class.contains("AccessControlException") {
                    SourceError::PermissionDenied { path: url, message }
                } else if class.contains("FileNotFoundException") {
                    SourceError::NotFound { path: url }
                } else {
                    SourceError::Io { path: url, message: format!("{class}: {message}") }
                }
            }
            other => SourceError::Io { path: url, message: other.to_string() },
        }
    }

    /// hdfs-native's file status carries neither the under-construction flag nor a way to ask
    /// `isFileClosed`; what the namenode does report is the times: it sets both the access and
    /// the modification time to the creation time and moves the modification time on every
    /// close (`completeFile`), so a file whose two times are equal has not been closed since it
    /// was created.
    fn entry(status: hdfs_native::client::FileStatus) -> Entry {
        let never_closed = (!status.isdir).then_some(status.modification_time == status.access_time);
        Entry {
            path: status.path,
            is_dir: status.isdir,
            size: status.length as u64,
            modified_ms: status.modification_time,
            never_closed,
        }
    }

    pub(crate) async fn stat(&self, path: &str) -> Result<Option<Entry>, SourceError> {
        match self.client.get_file_info(path).await {
            Ok(status) => Ok(Some(Self::entry(status))),
            Err(HdfsError::FileNotFound(_)) => Ok(None),
            Err(e) => match self.error(path, e) {
                SourceError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    pub(crate) async fn list_dir(&self, path: &str) -> Result<Vec<Entry>, SourceError> {
        let statuses = self.client.list_status(path, false).await.map_err(|e| self.error(path, e))?;
        Ok(statuses.into_iter().map(Self::entry).collect())
    }

    /// Writes `content` to `tmp` and renames it to `path` unless `path` exists.
    pub(crate) async fn create_new(&self, tmp: &str, path: &str, content: bytes::Bytes) -> Result<bool, SourceError> {
        let options = hdfs_native::WriteOptions::default().create_parent(true).overwrite(false);
        let mut writer = self.client.create(tmp, options).await.map_err(|e| self.error(tmp, e))?;
        writer.write_bytes(content).await.map_err(|e| self.error(tmp, e))?;
        writer.close().await.map_err(|e| self.error(tmp, e))?;
        let renamed = self.client.rename(tmp, path, false).await;
        if renamed.is_err() {
            let _ = self.client.delete(tmp, false).await;
        }
        match renamed {
            Ok(()) => Ok(true),
            Err(HdfsError::AlreadyExists(_)) => Ok(false),
            Err(HdfsError::RPCError(class, _) | HdfsError::FatalRPCError(class, _))
                if class.contains("FileAlreadyExists") =>
            {
                Ok(false)
            }
            Err(e) => Err(self.error(path, e)),
        }
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<(), SourceError> {
        match self.client.delete(path, false).await {
            Ok(_) => Ok(()),
            Err(e) => match self.error(path, e) {
                SourceError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    pub(crate) async fn open_range(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<ByteStream, SourceError> {
        let reader = self.client.read(path).await.map_err(|e| self.error(path, e))?;
        let size = reader.file_length() as u64;
        let len = match len {
            Some(len) if offset.saturating_add(len) <= size => len,
            None if offset <= size => size - offset,
            _ => {
                return Err(SourceError::OutOfRange {
                    path: format!("{}{path}", self.base_url()),
                    offset,
                    len: len.unwrap_or(0),
                    size,
                });
            }
        };
        if len == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        let (Ok(start), Ok(count)) = (usize::try_from(offset), usize::try_from(len)) else {
            return Err(SourceError::OutOfRange { path: format!("{}{path}", self.base_url()), offset, len, size });
        };
        let this = self.clone();
        let path = path.to_owned();
        let stream = reader.read_range_stream(start, count).map(move |chunk| chunk.map_err(|e| this.error(&path, e)));
        Ok(stream.boxed())
    }
}
