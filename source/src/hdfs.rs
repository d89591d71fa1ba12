//! `hdfs://` — HDFS through hdfs-native (pure Rust, no JVM).
//!
//! The authority is a namenode address (`127.0.0.1:9000`) or a name service configured in the
//! Hadoop configuration found through `HADOOP_CONF_DIR` (`hdfs://prod-ns/…`).

use std::io::ErrorKind;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use hdfs_native::{Client, ClientBuilder, HdfsError};

use super::resume::{RetryPolicy, resuming};
use super::walk::Entry;
use super::window::{Opener, WINDOW, Windowed};
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
    /// How reads wait out an outage ([`RetryPolicy::READS`] unless told otherwise).
    read_retries: RetryPolicy,
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
        Ok(HdfsSource {
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            client,
            read_retries: RetryPolicy::READS,
        })
    }

    /// This source with reads that retry by `policy` ([`RetryPolicy::NONE`]: the first error
    /// fails the read).
    pub fn with_read_retries(mut self, policy: RetryPolicy) -> HdfsSource {
        self.read_retries = policy;
        self
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
        match &err {
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
                SourceError::Unreachable { address: self.authority.clone(), source: err.into() }
            }
            HdfsError::RPCError(class, _) | HdfsError::FatalRPCError(class, _)
                if class.contains("AccessControlException") =>
            {
                SourceError::PermissionDenied { path: url, source: err.into() }
            }
            HdfsError::RPCError(class, _) | HdfsError::FatalRPCError(class, _)
                if class.contains("FileNotFoundException") =>
            {
                SourceError::NotFound { path: url }
            }
            _ => SourceError::Io { path: url, source: err.into() },
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

    /// Streams `len` bytes (to the end when `None`) from `offset`, waiting out a passing outage
    /// of the namenode or the datanodes ([`RetryPolicy::READS`], see [`crate::resume`]).
    pub(crate) async fn open_range(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<ByteStream, SourceError> {
        let this = self.clone();
        let owned = path.to_owned();
        let open = move |offset, len| {
            let this = this.clone();
            let path = owned.clone();
            async move { this.open_once(&path, offset, len).await }
        };
        let what = format!("{}{path}", self.base_url());
        let stream = resuming(what, offset, len, self.read_retries, ReadError::is_transient, open)
            .await
            .map_err(|e| e.into_source(self, path))?;
        let this = self.clone();
        let path = path.to_owned();
        Ok(stream.map(move |chunk| chunk.map_err(|e| e.into_source(&this, &path))).boxed())
    }

    /// One attempt: the block locations from the namenode, then the blocks from the datanodes
    /// ([`WINDOW`] bytes at a time, see [`crate::window`]).
    async fn open_once(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, ReadError>>, ReadError> {
        let reader = self.client.read(path).await?;
        let size = reader.file_length() as u64;
        let out_of_range = || {
            ReadError::Source(SourceError::OutOfRange {
                path: format!("{}{path}", self.base_url()),
                offset,
                len: len.unwrap_or(0),
                size,
            })
        };
        let len = match len {
            Some(len) if offset.saturating_add(len) <= size => len,
            None if offset <= size => size - offset,
            _ => return Err(out_of_range()),
        };
        if len == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        let (Ok(start), Ok(count)) = (usize::try_from(offset), usize::try_from(len)) else {
            return Err(out_of_range());
        };
        // In windows: hdfs-native reads a whole range ahead as fast as the datanode sends it.
        let open: Opener<ReadError> = Box::new(move |start, len| {
            reader.read_range_stream(start, len).map(|chunk| chunk.map_err(ReadError::Hdfs)).boxed()
        });
        Ok(Windowed::new(start, count, WINDOW, open).boxed())
    }
}

/// A failed read attempt: an HDFS error (maybe passing), or one of ours (never passing).
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Hdfs(#[from] HdfsError),
    #[error(transparent)]
    Source(SourceError),
}

impl ReadError {
    /// Errors another attempt may not meet: the namenode or a datanode not answering (a
    /// restart, a lost node whose replicas the namenode still lists), a namenode that is
    /// starting (safe mode, standby, "retriable"). Not: missing files, permissions, checksums.
    fn is_transient(&self) -> bool {
        match self {
            ReadError::Hdfs(HdfsError::IOError(_) | HdfsError::DataTransferError(_)) => true,
            ReadError::Hdfs(HdfsError::RPCError(class, _) | HdfsError::FatalRPCError(class, _)) => {
                ["RetriableException", "SafeModeException", "StandbyException"].iter().any(|c| class.ends_with(c))
            }
            _ => false,
        }
    }

    fn into_source(self, source: &HdfsSource, path: &str) -> SourceError {
        match self {
            ReadError::Hdfs(e) => source.error(path, e),
            ReadError::Source(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_outages_are_told_from_errors_another_attempt_would_meet_again() {
        let io = |kind| ReadError::Hdfs(HdfsError::IOError(std::io::Error::from(kind)));
        let rpc = |class: &str| ReadError::Hdfs(HdfsError::RPCError(class.into(), "m".into()));
        for e in [
            io(ErrorKind::ConnectionRefused),
            io(ErrorKind::UnexpectedEof),
            ReadError::Hdfs(HdfsError::DataTransferError("All DataNodes failed".into())),
            rpc("org.apache.hadoop.hdfs.server.namenode.SafeModeException"),
            rpc("org.apache.hadoop.ipc.RetriableException"),
            rpc("org.apache.hadoop.ipc.StandbyException"),
        ] {
            assert!(e.is_transient(), "{e}");
        }
        for e in [
            ReadError::Hdfs(HdfsError::FileNotFound("/x".into())),
            ReadError::Hdfs(HdfsError::ChecksumError),
            rpc("org.apache.hadoop.security.AccessControlException"),
            rpc("java.io.FileNotFoundException"),
            ReadError::Source(SourceError::OutOfRange { path: "/x".into(), offset: 9, len: 1, size: 3 }),
        ] {
            assert!(!e.is_transient(), "{e}");
        }
    }
}
