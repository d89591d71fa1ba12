//! Glob expansion over directory listings, the same for every filesystem.

use super::glob::{Glob, has_wildcard};
use super::{Source, SourceError};

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Absolute path without scheme or authority.
    pub path: String,
    pub is_dir: bool,
    pub size: u64,
    /// Modification time, Unix milliseconds (0: unknown).
    pub modified_ms: u64,
    /// HDFS: the namenode reports a file never closed since it was created (see
    /// [`courier_core::source::WriteState`]).
    pub never_closed: Option<bool>,
}

impl Entry {
    fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }
}

/// Names Hadoop's input formats skip: `_SUCCESS`, `_temporary`, `.crc` files and the like.
pub(crate) fn is_hidden(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') { format!("{dir}{name}") } else { format!("{dir}/{name}") }
}

/// The files a path pattern stands for (directories expanded recursively).
pub(crate) async fn expand(source: &Source, pattern: &str) -> Result<Vec<Entry>, SourceError> {
    let glob = Glob::new(pattern)?;
    let mut matched = Vec::new();
    if !has_wildcard(pattern) {
        if let Some(entry) = source.stat(pattern).await? {
            matched.push(entry);
        }
    } else {
        for alternative in &glob.alternatives {
            matched.extend(walk_alternative(source, alternative).await?);
        }
    }
    let mut files = Vec::new();
    for entry in matched {
        if entry.is_dir {
            files.extend(files_below(source, &entry.path).await?);
        } else {
            files.push(entry);
        }
    }
    Ok(files)
}

async fn walk_alternative(
    source: &Source,
    components: &[super::glob::ComponentPattern],
) -> Result<Vec<Entry>, SourceError> {
    let mut frontier = vec![Entry { path: "/".to_owned(), is_dir: true, size: 0, modified_ms: 0, never_closed: None }];
    for component in components {
        let mut next = Vec::new();
        for dir in frontier.iter().filter(|e| e.is_dir) {
            if let Some(name) = component.literal() {
                if let Some(entry) = source.stat(&join(&dir.path, &name)).await? {
                    next.push(entry);
                }
            } else {
                for child in list_dir_or_empty(source, &dir.path).await? {
                    if !is_hidden(child.name()) && component.matches(child.name()) {
                        next.push(child);
                    }
                }
            }
        }
        frontier = next;
        if frontier.is_empty() {
            break;
        }
    }
    Ok(frontier)
}

async fn list_dir_or_empty(source: &Source, path: &str) -> Result<Vec<Entry>, SourceError> {
    match source.list_dir(path).await {
        Ok(entries) => Ok(entries),
        Err(SourceError::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

async fn files_below(source: &Source, dir: &str) -> Result<Vec<Entry>, SourceError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for child in list_dir_or_empty(source, &dir).await? {
            if is_hidden(child.name()) {
                continue;
            }
            if child.is_dir {
                pending.push(child.path);
            } else {
                files.push(child);
            }
        }
    }
    Ok(files)
}
