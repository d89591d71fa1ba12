//! Where dead-letter lines go: a local file (file://) or an HDFS file (hdfs://), one file per
//! worker per shard attempt, created on the first entry and appended to after that.

use std::future::Future;
use std::path::PathBuf;

use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;

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

/// An HDFS file, created on the first write (or appended to if it exists).
pub struct HdfsSink {
    client: hdfs_native::Client,
    path: String,
    writer: Option<hdfs_native::file::FileWriter>,
}

impl std::fmt::Debug for HdfsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdfsSink").field("path", &self.path).finish_non_exhaustive()
    }
}

impl HdfsSink {
    /// A sink writing `path` (absolute, inside the cluster) through `client`.
    pub fn new(client: hdfs_native::Client, path: impl Into<String>) -> Self {
        Self { client, path: path.into(), writer: None }
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

    fn err(&self, source: hdfs_native::HdfsError) -> DeadLetterError {
        DeadLetterError::Hdfs { path: self.path.clone(), source }
    }

    async fn open(&mut self) -> Result<(), DeadLetterError> {
        if self.writer.is_some() {
            return Ok(());
        }
        let created = self.client.create(&self.path, hdfs_native::WriteOptions::default()).await;
        let writer = match created {
            Ok(w) => w,
            Err(hdfs_native::HdfsError::AlreadyExists(_)) => {
                self.client.append(&self.path).await.map_err(|e| self.err(e))?
            }
            Err(e) => return Err(self.err(e)),
        };
        self.writer = Some(writer);
        Ok(())
    }
}

impl DeadLetterSink for HdfsSink {
    async fn write(&mut self, data: Bytes) -> Result<(), DeadLetterError> {
        self.open().await?;
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        let result = writer.write_bytes(data).await;
        result.map(drop).map_err(|e| self.err(e))
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
