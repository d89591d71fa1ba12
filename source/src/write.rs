//! Small whole-file writes for the operator's records (the landing ledger): create a file only
//! if it does not exist yet, read one back, list a directory's names, delete.
//!
//! A file is written under a hidden temporary name in the same directory and then moved to its
//! name without overwriting, so a reader sees either nothing or the whole content, and of two
//! writers racing for one name exactly one wins.

use bytes::Bytes;

use super::{Source, SourceError};

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name (last path component).
    pub name: String,
    /// Length in bytes (0 for directories).
    pub size: u64,
    pub is_dir: bool,
}

fn split_dir(path: &str) -> (&str, &str) {
    path.rsplit_once('/').map_or(("", path), |(dir, name)| (dir, name))
}

impl Source {
    /// Writes `content` as a new file at `url`, creating missing directories. Returns `false`
    /// (and writes nothing) when a file already exists there.
    pub async fn create_new(&self, url: &str, content: Bytes) -> Result<bool, SourceError> {
        let path = self.path_of(url)?;
        let (dir, name) = split_dir(path);
        let tmp = format!("{dir}/.{name}.{:016x}.tmp", rand_suffix());
        match self {
            Source::File(f) => f.create_new(dir, &tmp, path, &content).await,
            Source::Hdfs(h) => h.create_new(&tmp, path, content).await,
        }
    }

    /// The whole content of the file at `url`.
    pub async fn read_all(&self, url: &str) -> Result<Bytes, SourceError> {
        let size = self.size(url).await?;
        self.read_range(url, 0, size).await
    }

    /// The entries of the directory at `url` (hidden names included), sorted by name; empty
    /// when the directory does not exist.
    pub async fn list_names(&self, url: &str) -> Result<Vec<DirEntry>, SourceError> {
        let path = self.path_of(url)?;
        let entries = match self.list_dir(path).await {
            Ok(entries) => entries,
            Err(SourceError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut names: Vec<DirEntry> = entries
            .into_iter()
            .map(|e| DirEntry {
                name: e.path.rsplit('/').next().unwrap_or_default().to_owned(),
                size: e.size,
                is_dir: e.is_dir,
            })
            .collect();
        names.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(names)
    }

    /// Deletes the file at `url`; a missing file is not an error.
    pub async fn delete_file(&self, url: &str) -> Result<(), SourceError> {
        let path = self.path_of(url)?;
        match self {
            Source::File(f) => f.delete(path).await,
            Source::Hdfs(h) => h.delete(path).await,
        }
    }
}

/// A random suffix for temporary names (two writers never share one).
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_file_is_written_once_and_a_second_writer_loses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = Source::for_url("file:///").expect("file source");
        let url = format!("file://{}/ledger/a/000001.json", dir.path().display());
        assert!(source.create_new(&url, Bytes::from_static(b"one")).await.expect("first write"));
        assert!(!source.create_new(&url, Bytes::from_static(b"two")).await.expect("second write"));
        assert_eq!(&source.read_all(&url).await.expect("read")[..], b"one");
        let names = source.list_names(&format!("file://{}/ledger/a", dir.path().display())).await.expect("list");
        assert_eq!(names.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), vec!["000001.json"], "no temporary left");
        source.delete_file(&url).await.expect("delete");
        source.delete_file(&url).await.expect("deleting a missing file is fine");
        assert!(source.list_names(&format!("file://{}/nowhere", dir.path().display())).await.expect("list").is_empty());
    }
}
