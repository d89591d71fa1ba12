//! Where dead-letter lines go: a local file (file://) or an HDFS file (hdfs://), one file per
//! worker per shard attempt, created on the first entry and appended to after that.

use std::future::Future;
use std::path::PathBuf;

use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;

pub use super::hdfs::HdfsSink;

/// A dead-letter sink failed; the shard must not report records past it as done.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("failed to write dead letters to {path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("failed to write dead letters to {path}: {source}")]
    Hdfs { path: String, source: hdfs_native::HdfsError },
    #[error("unsupported dead-letter location {0:?}: expected file:// or hdfs://")]
    Scheme(String),
    #[error("failed to serialize a dead letter: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// A destination for dead-letter bytes.
pub trait DeadLetterSink: Send {
    /// Appends whole lines.
    fn write(&mut self, data: Bytes) -> impl Future<Output = Result<(), DeadLetterError>> + Send;
    /// Makes everything written so far durable.
    fn flush(&mut self) -> impl Future<Output = Result<(), DeadLetterError>> + Send;
    /// Flushes and closes.
    fn close(&mut self) -> impl Future<Output = Result<(), DeadLetterError>> + Send;
}

/// The name of one worker's dead-letter file for one shard attempt.
pub fn dead_letter_file_name(shard_id: &str, worker: &str, attempt: u32) -> String {
    let clean = |s: &str| {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
            .collect::<String>()
    };
    format!("{}-{}-{attempt}.jsonl", clean(shard_id), clean(worker))
}

/// A local file, opened for append on the first write.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl FileSink {
    /// A sink appending to `path` (parent directories are created as needed).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), file: None }
    }

    fn err(&self, source: std::io::Error) -> DeadLetterError {
        DeadLetterError::File { path: self.path.display().to_string(), source }
    }

    async fn open(&mut self) -> Result<&mut tokio::fs::File, DeadLetterError> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(|e| self.err(e))?;
            }
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await
                .map_err(|e| self.err(e))?;
            self.file = Some(file);
        }
        let path = self.path.display().to_string();
        self.file.as_mut().ok_or_else(|| DeadLetterError::File { path, source: std::io::ErrorKind::NotFound.into() })
    }
}

impl DeadLetterSink for FileSink {
    async fn write(&mut self, data: Bytes) -> Result<(), DeadLetterError> {
        let result = self.open().await?.write_all(&data).await;
        result.map_err(|e| self.err(e))
    }

    async fn flush(&mut self) -> Result<(), DeadLetterError> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        let result = match file.flush().await {
            Ok(()) => file.sync_data().await,
            Err(e) => Err(e),
        };
        result.map_err(|e| self.err(e))
    }

    async fn close(&mut self) -> Result<(), DeadLetterError> {
        self.flush().await?;
        self.file = None;
        Ok(())
    }
}

/// A file:// or hdfs:// sink chosen by URL.
#[derive(Debug)]
pub enum AnySink {
    File(FileSink),
    Hdfs(Box<HdfsSink>),
}

impl AnySink {
    /// The sink for `file_name` inside the dead-letter directory `dir_url`.
    pub fn open(dir_url: &str, file_name: &str) -> Result<Self, DeadLetterError> {
        let url = format!("{}/{file_name}", dir_url.trim_end_matches('/'));
        if let Some(path) = url.strip_prefix("file://") {
            Ok(Self::File(FileSink::new(path)))
        } else if url.starts_with("hdfs://") {
            Ok(Self::Hdfs(Box::new(HdfsSink::from_url(&url)?)))
        } else {
            Err(DeadLetterError::Scheme(dir_url.to_owned()))
        }
    }
}

impl DeadLetterSink for AnySink {
    async fn write(&mut self, data: Bytes) -> Result<(), DeadLetterError> {
        match self {
            Self::File(s) => s.write(data).await,
            Self::Hdfs(s) => s.write(data).await,
        }
    }

    async fn flush(&mut self) -> Result<(), DeadLetterError> {
        match self {
            Self::File(s) => s.flush().await,
            Self::Hdfs(s) => s.flush().await,
        }
    }

    async fn close(&mut self) -> Result<(), DeadLetterError> {
        match self {
            Self::File(s) => s.close().await,
            Self::Hdfs(s) => s.close().await,
        }
    }
}
