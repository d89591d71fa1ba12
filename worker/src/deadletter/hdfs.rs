//! The HDFS dead-letter sink: one file, created on the first write (or appended to if it
//! exists), `hsync`ed on every flush.
//!
//! When a block fills, the client asks the NameNode for the next one (`addBlock`), which the
//! NameNode refuses with `NotReplicatedYetException` until a DataNode has reported the previous
//! block. Hadoop's own client retries that `addBlock` with a growing back-off (400 ms, doubled,
//! 5 times: `dfs.client.block.write.locateFollowingBlock.*`). hdfs-native gives up instead and
//! its writer forgets the previous block, so the sink retries the same way one level up: after
//! the back-off it recovers the file's lease (which closes the file at the end of the last
//! complete block), opens it again for append — whose first write asks for the next block with
//! the right previous one, the same `addBlock` — and writes what had not reached the file yet
//! (the file's length says how much had).

use std::time::Duration;

use bytes::Bytes;
use hdfs_native::{Client, HdfsError, WriteOptions};

use super::sink::{DeadLetterError, DeadLetterSink};

/// `addBlock` retries after `NotReplicatedYetException`, as Hadoop's client makes by default.
pub const ADD_BLOCK_RETRIES: u32 = 5;
/// The first back-off before such a retry; it doubles after each.
pub const ADD_BLOCK_BACKOFF: Duration = Duration::from_millis(400);
/// Polls of a lease recovery before giving up (the last block is already complete, so the
/// NameNode usually closes the file at the first).
const RECOVERY_POLLS: u32 = 20;
const RECOVERY_POLL: Duration = Duration::from_millis(250);

/// An HDFS file, created on the first write (or appended to if it exists).
pub struct HdfsSink {
    client: Client,
    path: String,
    options: WriteOptions,
    writer: Option<hdfs_native::file::FileWriter>,
    /// Bytes known to be in the file (what it held when opened, plus every write that
    /// succeeded).
    written: u64,
    /// `addBlock` retries made so far.
    retries: u64,
}

impl std::fmt::Debug for HdfsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdfsSink").field("path", &self.path).field("written", &self.written).finish_non_exhaustive()
    }
}

/// Whether `error` is the NameNode refusing `addBlock` until the previous block is reported.
pub fn is_not_replicated_yet(error: &HdfsError) -> bool {
    matches!(error, HdfsError::RPCError(class, _) if class.ends_with("NotReplicatedYetException"))
}

/// The back-off before `addBlock` retry `n` (1-based).
pub fn add_block_backoff(n: u32) -> Duration {
    ADD_BLOCK_BACKOFF.saturating_mul(1 << n.saturating_sub(1).min(16))
}

/// How many bytes of a `len`-byte write reached a file that held `before` bytes when the write
/// started and holds `after` now.
pub fn landed(before: u64, after: u64, len: usize) -> usize {
    usize::try_from(after.saturating_sub(before)).unwrap_or(usize::MAX).min(len)
}

impl HdfsSink {
    /// A sink writing `path` (absolute, inside the cluster) through `client`.
    pub fn new(client: Client, path: impl Into<String>) -> Self {
        Self::with_options(client, path, WriteOptions::default())
    }

    /// [`HdfsSink::new`] creating the file with `options` (e.g. a small block size in tests).
    pub fn with_options(client: Client, path: impl Into<String>, options: WriteOptions) -> Self {
        Self { client, path: path.into(), options, writer: None, written: 0, retries: 0 }
    }

    /// A sink for the full URL `hdfs://namenode:port/dir/file.jsonl`.
    pub fn from_url(url: &str) -> Result<Self, DeadLetterError> {
        let rest = url.strip_prefix("hdfs://").ok_or_else(|| DeadLetterError::Scheme(url.to_owned()))?;
        let (authority, path) = rest.split_once('/').ok_or_else(|| DeadLetterError::Scheme(url.to_owned()))?;
        let client = hdfs_native::ClientBuilder::new()
            .with_url(format!("hdfs://{authority}"))
            .build()
            .map_err(|source| DeadLetterError::Hdfs { path: url.to_owned(), source })?;
        Ok(Self::new(client, format!("/{path}")))
    }

    /// `addBlock` retries made after `NotReplicatedYetException`.
    pub fn add_block_retries(&self) -> u64 {
        self.retries
    }

    fn err(&self, source: HdfsError) -> DeadLetterError {
        DeadLetterError::Hdfs { path: self.path.clone(), source }
    }

    async fn open(&mut self) -> Result<(), DeadLetterError> {
        if self.writer.is_some() {
            return Ok(());
        }
        let writer = match self.client.create(&self.path, self.options.clone()).await {
            Ok(w) => {
                self.written = 0;
                w
            }
            Err(HdfsError::AlreadyExists(_)) => self.append().await?,
            Err(e) => return Err(self.err(e)),
        };
        self.writer = Some(writer);
        Ok(())
    }

    /// Opens the existing file for append, learning its length.
    async fn append(&mut self) -> Result<hdfs_native::file::FileWriter, DeadLetterError> {
        let status = self.client.get_file_info(&self.path).await.map_err(|e| self.err(e))?;
        self.written = status.length as u64;
        self.client.append(&self.path).await.map_err(|e| self.err(e))
    }

    /// After a refused `addBlock`: drop the writer (it no longer knows the previous block),
    /// close the file through lease recovery, and open it for append again.
    async fn reopen(&mut self) -> Result<(), DeadLetterError> {
        drop(self.writer.take());
        let mut polls = 0;
        while !self.client.recover_lease(&self.path).await.map_err(|e| self.err(e))? {
            polls += 1;
            if polls >= RECOVERY_POLLS {
                let message = format!("lease recovery of {} did not finish in {polls} polls", self.path);
                return Err(self.err(HdfsError::OperationFailed(message)));
            }
            tokio::time::sleep(RECOVERY_POLL).await;
        }
        let writer = self.append().await?;
        self.writer = Some(writer);
        Ok(())
    }
}

impl DeadLetterSink for HdfsSink {
    async fn write(&mut self, data: Bytes) -> Result<(), DeadLetterError> {
        self.open().await?;
        let mut rest = data;
        let mut retry = 0;
        loop {
            let Some(writer) = self.writer.as_mut() else { return Ok(()) };
            let before = self.written;
            match writer.write_bytes(rest.clone()).await {
                Ok(_) => {
                    self.written += rest.len() as u64;
                    return Ok(());
                }
                Err(e) if is_not_replicated_yet(&e) && retry < ADD_BLOCK_RETRIES => {
                    retry += 1;
                    self.retries += 1;
                    let wait = add_block_backoff(retry);
                    tracing::info!(path = %self.path, retry, ?wait, "previous block not replicated yet; retrying addBlock");
                    tokio::time::sleep(wait).await;
                    self.reopen().await?;
                    rest = rest.slice(landed(before, self.written, rest.len())..);
                    if rest.is_empty() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    async fn flush(&mut self) -> Result<(), DeadLetterError> {
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        let result = writer.hsync().await;
        result.map_err(|e| self.err(e))
    }

    async fn close(&mut self) -> Result<(), DeadLetterError> {
        let Some(mut writer) = self.writer.take() else { return Ok(()) };
        writer.close().await.map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_400ms_like_hadoops_client() {
        let waits: Vec<u64> = (1..=ADD_BLOCK_RETRIES).map(|n| add_block_backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, vec![400, 800, 1600, 3200, 6400]);
        assert_eq!(add_block_backoff(100), add_block_backoff(17), "bounded");
    }

    #[test]
    fn only_the_bytes_past_the_file_end_are_written_again() {
        // (file length before the write, after recovery, write length) -> bytes already there
        let cases = [(0, 0, 10, 0), (100, 108, 10, 8), (100, 110, 10, 10), (100, 130, 10, 10), (100, 90, 10, 0)];
        for (before, after, len, want) in cases {
            assert_eq!(landed(before, after, len), want, "{before} {after} {len}");
        }
    }

    #[test]
    fn the_refusal_is_told_by_its_java_class() {
        let refused = HdfsError::RPCError(
            "org.apache.hadoop.hdfs.server.namenode.NotReplicatedYetException".into(),
            "Not replicated yet: /x".into(),
        );
        assert!(is_not_replicated_yet(&refused));
        assert!(!is_not_replicated_yet(&HdfsError::RPCError("java.io.IOException".into(), "x".into())));
        assert!(!is_not_replicated_yet(&HdfsError::AlreadyExists("x".into())));
    }
}
