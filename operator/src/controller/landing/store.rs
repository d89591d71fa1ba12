//! The ledger's directory (I/O through courier-source): one JSON file per entry, named by its
//! sequence number (`000000000042.json`), written once; every [`SNAPSHOT_EVERY`] entries a
//! snapshot of the whole state (`snapshot-000000000100.json`, the state before entry 100),
//! after which entries older than the snapshot before it are deleted.
//!
//! Writing entry N succeeds only if no entry N exists yet, and a writer knows N only after it
//! has read every entry before N: of two replicas that both think they lead, the one whose
//! view is stale fails to write, reads again and sees the other's entry. That is what keeps a
//! file from being packaged twice across leader changes.

use bytes::Bytes;
use courier_source::{Source, SourceError};

use super::ledger::{Entry, Ledger};

/// Entries between two snapshots.
pub const SNAPSHOT_EVERY: u64 = 100;

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to access the ledger at {url}: {source}")]
    Io { url: String, source: SourceError },
    #[error("ledger file {url} is not a ledger entry: {source}")]
    Corrupt { url: String, source: serde_json::Error },
}

/// A ledger directory.
#[derive(Debug, Clone)]
pub struct Store {
    source: Source,
    /// Directory URL without a trailing `/`.
    pub dir: String,
}

fn entry_name(seq: u64) -> String {
    format!("{seq:012}.json")
}

fn snapshot_name(seq: u64) -> String {
    format!("snapshot-{seq:012}.json")
}

/// The sequence number of an entry or snapshot file name (and whether it is a snapshot).
fn parse_name(name: &str) -> Option<(bool, u64)> {
    let stem = name.strip_suffix(".json")?;
    let (snapshot, digits) = stem.strip_prefix("snapshot-").map_or((false, stem), |d| (true, d));
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((snapshot, digits.parse().ok()?))
}

impl Store {
    /// The store at `dir` (a directory URL).
    pub fn new(dir: &str) -> Result<Store, StoreError> {
        let dir = dir.trim_end_matches('/').to_owned();
        let source = Source::for_url(&dir).map_err(|source| StoreError::Io { url: dir.clone(), source })?;
        Ok(Store { source, dir })
    }

    fn io(&self, url: &str) -> impl FnOnce(SourceError) -> StoreError + '_ {
        let url = url.to_owned();
        move |source| StoreError::Io { url, source }
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, StoreError> {
        let bytes = self.source.read_all(url).await.map_err(self.io(url))?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt { url: url.to_owned(), source })
    }

    /// The ledger as the directory holds it: the newest snapshot and every entry after it.
    pub async fn load(&self) -> Result<Ledger, StoreError> {
        let names = self.source.list_names(&self.dir).await.map_err(self.io(&self.dir))?;
        let parsed: Vec<(bool, u64)> = names.iter().filter(|e| !e.is_dir).filter_map(|e| parse_name(&e.name)).collect();
        let newest_snapshot = parsed.iter().filter(|(s, _)| *s).map(|(_, n)| *n).max();
        let mut ledger = match newest_snapshot {
            Some(n) => self.read_json(&format!("{}/{}", self.dir, snapshot_name(n))).await?,
            None => Ledger::default(),
        };
        let mut entries: Vec<u64> =
            parsed.iter().filter(|(s, n)| !*s && *n >= ledger.next_entry).map(|(_, n)| *n).collect();
        entries.sort_unstable();
        for seq in entries {
            if seq != ledger.next_entry {
                break; // never happens: entries appear in order, whole
            }
            let entry: Entry = self.read_json(&format!("{}/{}", self.dir, entry_name(seq))).await?;
            ledger.apply(seq, &entry);
        }
        Ok(ledger)
    }

    /// Writes `entry` as the ledger's next one and applies it. `Ok(false)`: another writer took
    /// that number; reload the ledger and decide again.
    pub async fn append(&self, ledger: &mut Ledger, entry: &Entry) -> Result<bool, StoreError> {
        let seq = ledger.next_entry;
        let url = format!("{}/{}", self.dir, entry_name(seq));
        let body =
            serde_json::to_vec_pretty(entry).map_err(|source| StoreError::Corrupt { url: url.clone(), source })?;
        if !self.source.create_new(&url, Bytes::from(body)).await.map_err(self.io(&url))? {
            return Ok(false);
        }
        ledger.apply(seq, entry);
        Ok(true)
    }

    /// Writes a snapshot when [`SNAPSHOT_EVERY`] entries have passed since the last one, then
    /// deletes what the snapshot before it made redundant. Returns whether it wrote one.
    pub async fn maybe_snapshot(&self, ledger: &Ledger, last_snapshot: u64) -> Result<bool, StoreError> {
        if ledger.next_entry < last_snapshot + SNAPSHOT_EVERY {
            return Ok(false);
        }
        let url = format!("{}/{}", self.dir, snapshot_name(ledger.next_entry));
        let body = serde_json::to_vec(ledger).map_err(|source| StoreError::Corrupt { url: url.clone(), source })?;
        self.source.create_new(&url, Bytes::from(body)).await.map_err(self.io(&url))?;
        // Keep the entries since the previous snapshot (for reading), drop older ones.
        let names = self.source.list_names(&self.dir).await.map_err(self.io(&self.dir))?;
        for (snapshot, n) in names.iter().filter_map(|e| parse_name(&e.name)) {
            if n < last_snapshot {
                let name = if snapshot { snapshot_name(n) } else { entry_name(n) };
                let url = format!("{}/{name}", self.dir);
                self.source.delete_file(&url).await.map_err(self.io(&url))?;
            }
        }
        Ok(true)
    }

    /// The sequence number of the newest snapshot (0: none).
    pub async fn last_snapshot(&self) -> Result<u64, StoreError> {
        let names = self.source.list_names(&self.dir).await.map_err(self.io(&self.dir))?;
        Ok(names.iter().filter_map(|e| parse_name(&e.name)).filter(|(s, _)| *s).map(|(_, n)| n).max().unwrap_or(0))
    }
}

/// The default ledger directory: `_courier/ledger/<namespace>/<datum>` under the landing
/// path's namenode (HDFS) or its first literal directory (file://).
pub fn default_dir(landing_path: &str, namespace: &str, datum: &str) -> String {
    let root = if let Some(rest) = landing_path.strip_prefix("hdfs://") {
        format!("hdfs://{}", rest.split('/').next().unwrap_or_default())
    } else {
        let path = landing_path.strip_prefix("file://").unwrap_or(landing_path);
        let prefix = super::rules::literal_prefix(path);
        format!("file://{}", prefix.trim_end_matches('/'))
    };
    format!("{root}/_courier/ledger/{namespace}/{datum}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::landing::ledger::{BatchEntry, FileRef, PackageFiles};

    fn batch(n: u64, url: &str) -> Entry {
        Entry::Batch(BatchEntry {
            batch: n,
            at_ms: n,
            packages: vec![PackageFiles {
                destination: "a".into(),
                name: format!("d-a-{n:06}"),
                files: vec![FileRef { url: url.into(), size: 1, modified_ms: 1, seen_ms: 1 }],
            }],
            missing: Vec::new(),
        })
    }

    #[test]
    fn names_parse_back_and_other_files_are_ignored() {
        assert_eq!(parse_name(&entry_name(42)), Some((false, 42)));
        assert_eq!(parse_name(&snapshot_name(100)), Some((true, 100)));
        for other in [".000000000001.json.1234.tmp", "000000000001.json.tmp", "notes.txt", "12.json"] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn the_default_directory_is_under_the_namenode_or_the_first_literal_directory() {
        assert_eq!(
            default_dir("hdfs://nn:9000/landing/users/*/*.jsonl", "ns", "users"),
            "hdfs://nn:9000/_courier/ledger/ns/users"
        );
        assert_eq!(default_dir("file:///data/in/*.csv", "ns", "d"), "file:///data/in/_courier/ledger/ns/d");
    }

    #[tokio::test]
    async fn a_second_writer_with_a_stale_view_loses_and_sees_the_first_writers_entry_on_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(&format!("file://{}/ledger", dir.path().display())).expect("store");
        let mut first = store.load().await.expect("empty ledger");
        let mut stale = first.clone();
        assert!(store.append(&mut first, &batch(0, "file:///x/a")).await.expect("write"));
        assert!(!store.append(&mut stale, &batch(0, "file:///x/a")).await.expect("write"), "the number is taken");
        let reloaded = store.load().await.expect("reload");
        assert_eq!(reloaded, first);
        assert_eq!(reloaded.next_batch, 1);
    }

    #[tokio::test]
    async fn a_snapshot_replaces_the_entries_before_it_and_loads_to_the_same_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(&format!("file://{}/ledger", dir.path().display())).expect("store");
        let mut ledger = store.load().await.expect("empty");
        let mut last = 0;
        for n in 0..(2 * SNAPSHOT_EVERY + 5) {
            assert!(store.append(&mut ledger, &batch(n, &format!("file:///x/{n}"))).await.expect("write"));
            if store.maybe_snapshot(&ledger, last).await.expect("snapshot") {
                last = ledger.next_entry;
            }
        }
        assert_eq!(last, 2 * SNAPSHOT_EVERY);
        assert_eq!(store.load().await.expect("reload"), ledger);
        let names = store.source.list_names(&store.dir).await.expect("list");
        assert!(names.iter().all(|e| parse_name(&e.name).is_some_and(|(_, n)| n >= SNAPSHOT_EVERY)), "{names:?}");
    }
}
