//! The landing ledger (pure): which file went into which package for which Destination, and
//! with what outcome.
//!
//! The durable form is a directory of entries, each a whole JSON file written once (see
//! `store.rs`): a [`Entry::Batch`] is written *before* its packages are created, an
//! [`Entry::Outcome`] when a package has finished and *before* its finalizer lets it go. The
//! state here is what applying the entries in order yields; applying an entry twice changes
//! nothing, so a new leader that replays the directory reaches the same state.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Failed files kept per Destination for the status (the ledger holds every one).
pub const RECENT_FAILED: usize = 20;

/// A file as it was when packaged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct FileRef {
    pub url: String,
    pub size: u64,
    pub modified_ms: u64,
    /// When Courier first listed it (delivery lag counts from here).
    pub seen_ms: u64,
}

/// One package of a batch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PackageFiles {
    pub destination: String,
    pub name: String,
    pub files: Vec<FileRef>,
}

/// A file to be packaged again that was not in the listing when its batch was cut.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MissingFile {
    pub destination: String,
    pub url: String,
    /// Attempts after this one.
    pub attempts: u32,
    /// True: out of attempts, recorded failed.
    pub failed: bool,
    pub reason: String,
}

/// A batch: the packages it creates, written before they are created.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchEntry {
    pub batch: u64,
    pub at_ms: u64,
    pub packages: Vec<PackageFiles>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingFile>,
}

/// How a package ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackageEnd {
    Complete,
    Failed,
    /// Deleted before it finished.
    Deleted,
}

/// A file of a finished package that was not delivered.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Undelivered {
    pub url: String,
    pub reason: String,
}

/// A finished package: every file not listed in `retry` or `failed` was delivered.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeEntry {
    pub batch: u64,
    pub destination: String,
    pub package: String,
    pub at_ms: u64,
    pub end: PackageEnd,
    /// Records the partner accepted, from the package's counters.
    pub records_sent: u64,
    /// Not delivered, to be packaged again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry: Vec<Undelivered>,
    /// Not delivered, out of attempts or not to be sent again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Undelivered>,
}

/// A packaged file whose size or modification time changed afterwards (reported once).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChangedEntry {
    pub at_ms: u64,
    pub packaged: FileRef,
    pub now: FileRef,
}

/// One ledger entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Entry {
    Batch(BatchEntry),
    Outcome(OutcomeEntry),
    Changed(ChangedEntry),
}

/// Where a file stands for one Destination.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum DestFile {
    /// In a package that has not finished.
    #[serde(rename_all = "camelCase")]
    InPackage {
        package: String,
        attempts: u32,
    },
    Delivered,
    /// To be packaged again.
    #[serde(rename_all = "camelCase")]
    Retry {
        attempts: u32,
        reason: String,
    },
    #[serde(rename_all = "camelCase")]
    Failed {
        attempts: u32,
        reason: String,
    },
}

impl DestFile {
    fn attempts(&self) -> u32 {
        match self {
            DestFile::InPackage { attempts, .. }
            | DestFile::Retry { attempts, .. }
            | DestFile::Failed { attempts, .. } => *attempts,
            DestFile::Delivered => 0,
        }
    }

    /// Finished for this Destination (delivered or failed).
    pub fn is_final(&self) -> bool {
        matches!(self, DestFile::Delivered | DestFile::Failed { .. })
    }
}

/// One file of the ledger.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FileLedger {
    pub size: u64,
    pub modified_ms: u64,
    /// When it was first packaged.
    pub packaged_ms: u64,
    /// When Courier first listed it.
    pub seen_ms: u64,
    pub dests: Vec<(String, DestFile)>,
    /// A change after packaging was reported.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed: bool,
}

impl FileLedger {
    /// The state for `dest`, if the file was ever packaged for it.
    pub fn dest(&self, dest: &str) -> Option<&DestFile> {
        self.dests.iter().find(|(d, _)| d == dest).map(|(_, s)| s)
    }

    fn dest_mut(&mut self, dest: &str) -> Option<&mut DestFile> {
        self.dests.iter_mut().find(|(d, _)| d == dest).map(|(_, s)| s)
    }
}

/// A package the ledger knows of and has no outcome for yet.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OpenPackage {
    pub batch: u64,
    pub destination: String,
    pub files: Vec<FileRef>,
}

/// Cumulative figures of one Destination.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DestTotals {
    pub files_packaged: u64,
    pub files_delivered: u64,
    pub files_failed: u64,
    pub records_delivered: u64,
    pub last_batch: Option<u64>,
    pub last_package: Option<String>,
    /// The most recent failed files: (url, attempts, reason).
    pub recent_failed: VecDeque<(String, u32, String)>,
}

/// The ledger's state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    /// Sequence number of the next entry.
    pub next_entry: u64,
    /// Number of the next batch.
    pub next_batch: u64,
    pub last_batch_ms: Option<u64>,
    pub files: HashMap<String, FileLedger>,
    /// Packages without an outcome, by name.
    pub open: BTreeMap<String, OpenPackage>,
    pub totals: BTreeMap<String, DestTotals>,
    /// Files delivered to every Destination they were packaged for, and files failed for one
    /// (cumulative, including files forgotten since).
    pub files_delivered: u64,
    pub files_failed: u64,
}

impl Ledger {
    /// Applies the entry numbered `seq`.
    pub fn apply(&mut self, seq: u64, entry: &Entry) {
        self.next_entry = self.next_entry.max(seq + 1);
        match entry {
            Entry::Batch(b) => self.apply_batch(b),
            Entry::Outcome(o) => self.apply_outcome(o),
            Entry::Changed(c) => {
                if let Some(f) = self.files.get_mut(&c.packaged.url) {
                    f.changed = true;
                }
            }
        }
    }

    fn apply_batch(&mut self, b: &BatchEntry) {
        if self.open.values().any(|p| p.batch == b.batch) || b.batch < self.next_batch {
            return; // applied already
        }
        self.next_batch = b.batch + 1;
        self.last_batch_ms = Some(b.at_ms);
        for p in &b.packages {
            let dest = &p.destination;
            let package = &p.name;
            let totals = self.totals.entry(p.destination.clone()).or_default();
            totals.last_batch = Some(b.batch);
            totals.last_package = Some(p.name.clone());
            for f in &p.files {
                let entry = self.files.entry(f.url.clone()).or_insert_with(|| FileLedger {
                    size: f.size,
                    modified_ms: f.modified_ms,
                    packaged_ms: b.at_ms,
                    seen_ms: f.seen_ms,
                    dests: Vec::new(),
                    changed: false,
                });
                entry.size = f.size;
                entry.modified_ms = f.modified_ms;
                match entry.dest_mut(dest) {
                    Some(state) => {
                        let attempts = state.attempts() + 1;
                        *state = DestFile::InPackage { package: package.clone(), attempts };
                    }
                    None => {
                        totals.files_packaged += 1;
                        entry.dests.push((dest.clone(), DestFile::InPackage { package: package.clone(), attempts: 1 }));
                    }
                }
            }
            self.open.insert(
                p.name.clone(),
                OpenPackage { batch: b.batch, destination: p.destination.clone(), files: p.files.clone() },
            );
        }
        for m in &b.missing {
            let reason = m.reason.clone();
            let next = if m.failed {
                DestFile::Failed { attempts: m.attempts, reason }
            } else {
                DestFile::Retry { attempts: m.attempts, reason }
            };
            self.set_final_or_retry(&m.destination, &m.url, next);
        }
    }

    fn apply_outcome(&mut self, o: &OutcomeEntry) {
        let Some(open) = self.open.remove(&o.package) else { return };
        let retry: HashMap<&str, &str> = o.retry.iter().map(|u| (u.url.as_str(), u.reason.as_str())).collect();
        let failed: HashMap<&str, &str> = o.failed.iter().map(|u| (u.url.as_str(), u.reason.as_str())).collect();
        self.totals.entry(o.destination.clone()).or_default().records_delivered += o.records_sent;
        for f in &open.files {
            let still_there = self
                .files
                .get(&f.url)
                .and_then(|l| l.dest(&o.destination))
                .is_some_and(|s| matches!(s, DestFile::InPackage { package, .. } if *package == o.package));
            if !still_there {
                continue;
            }
            let attempts = self.files.get(&f.url).and_then(|l| l.dest(&o.destination)).map_or(1, DestFile::attempts);
            let next = if let Some(reason) = failed.get(f.url.as_str()) {
                DestFile::Failed { attempts, reason: (*reason).to_owned() }
            } else if let Some(reason) = retry.get(f.url.as_str()) {
                DestFile::Retry { attempts, reason: (*reason).to_owned() }
            } else {
                DestFile::Delivered
            };
            self.set_final_or_retry(&o.destination, &f.url, next);
        }
    }

    /// Moves `url` for `dest` to `next`, keeping the totals.
    fn set_final_or_retry(&mut self, dest: &str, url: &str, next: DestFile) {
        let Some(file) = self.files.get_mut(url) else { return };
        let was_done = file_done(file);
        let was_failed = file_failed(file);
        let Some(state) = file.dest_mut(dest) else { return };
        let totals = self.totals.entry(dest.to_owned()).or_default();
        match &next {
            DestFile::Delivered if !state.is_final() => totals.files_delivered += 1,
            DestFile::Failed { attempts, reason } if !state.is_final() => {
                totals.files_failed += 1;
                totals.recent_failed.push_back((url.to_owned(), *attempts, reason.clone()));
                while totals.recent_failed.len() > RECENT_FAILED {
                    totals.recent_failed.pop_front();
                }
            }
            _ => {}
        }
        if state.is_final() {
            return;
        }
        *state = next;
        if !was_done && file_done(file) {
            self.files_delivered += 1;
        }
        if !was_failed && file_failed(file) {
            self.files_failed += 1;
        }
    }

    /// Forgets files that are final for every Destination and no longer listed (the ledger
    /// then stays as large as the landing directory). Cumulative totals are kept.
    pub fn forget_gone(&mut self, listed: &dyn Fn(&str) -> bool) -> usize {
        let before = self.files.len();
        self.files.retain(|url, f| listed(url) || !f.dests.iter().all(|(_, s)| s.is_final()));
        before - self.files.len()
    }

    /// Files landed and not final for every Destination they were packaged for.
    pub fn in_flight(&self) -> impl Iterator<Item = (&String, &FileLedger)> {
        self.files.iter().filter(|(_, f)| !f.dests.iter().all(|(_, s)| s.is_final()))
    }
}

/// Delivered to every Destination it was packaged for.
fn file_done(f: &FileLedger) -> bool {
    !f.dests.is_empty() && f.dests.iter().all(|(_, s)| *s == DestFile::Delivered)
}

/// Failed for at least one Destination.
fn file_failed(f: &FileLedger) -> bool {
    f.dests.iter().any(|(_, s)| matches!(s, DestFile::Failed { .. }))
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
