//! Which listed files are complete (pure): temporary names, the settle time, files still open
//! for write, `_SUCCESS`-style markers; and what a listing means given the ledger.

use std::collections::{BTreeMap, HashMap, HashSet};

use courier_core::source::{FileStatus, WriteState};

use super::ledger::{DestFile, FileRef, Ledger};

/// The landing settings the rules use, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub settle_ms: u64,
    pub open_timeout_ms: u64,
    /// A marker file name the file's directory must hold.
    pub marker: Option<String>,
    pub max_file_attempts: u32,
    /// Directory prefix of the landing pattern without wildcards (names below it are checked
    /// for temporary components).
    pub literal_prefix: String,
}

/// Hadoop's temporary names: `_…` and `.…` (e.g. `_temporary/`, `.part.crc`) and the
/// `….\_COPYING_` of `hdfs dfs -put`, in the file's name or any directory below the pattern's
/// literal prefix.
pub fn is_temporary(url: &str, literal_prefix: &str) -> bool {
    let below = url.strip_prefix(literal_prefix).unwrap_or(url);
    let name = below.rsplit('/').next().unwrap_or(below);
    name.ends_with("._COPYING_") || below.split('/').any(|c| c.starts_with('_') || c.starts_with('.'))
}

/// The part of a landing pattern before its first wildcard, up to the last `/`.
pub fn literal_prefix(pattern: &str) -> String {
    let end = pattern.find(['*', '?', '[', '{', '\\']).unwrap_or(pattern.len());
    match pattern[..end].rfind('/') {
        Some(i) => pattern[..=i].to_owned(),
        None => String::new(),
    }
}

/// The directory URL of a file URL.
pub fn dir_of(url: &str) -> &str {
    url.rsplit_once('/').map_or(url, |(d, _)| d)
}

/// What the operator has seen of a file across listings (memory only: a new leader starts
/// the settle time again, which delays a file, never loses one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub size: u64,
    pub modified_ms: u64,
    /// Since when size and modification time are what they are.
    pub stable_since_ms: u64,
    /// First listing that showed the file.
    pub first_seen_ms: u64,
}

/// Observations by URL.
pub type Observations = HashMap<String, Observation>;

/// Takes in a listing: new files and changed ones start their settle time now; files no
/// longer listed are forgotten. Returns how many files were seen for the first time.
pub fn observe(obs: &mut Observations, listing: &[FileStatus], now_ms: u64) -> usize {
    let mut new = 0;
    let listed: HashSet<&str> = listing.iter().map(|f| f.url.as_str()).collect();
    obs.retain(|url, _| listed.contains(url.as_str()));
    for f in listing {
        match obs.get_mut(&f.url) {
            Some(o) if o.size == f.size && o.modified_ms == f.modified_ms => {}
            Some(o) => {
                o.size = f.size;
                o.modified_ms = f.modified_ms;
                o.stable_since_ms = now_ms;
            }
            None => {
                new += 1;
                obs.insert(
                    f.url.clone(),
                    Observation {
                        size: f.size,
                        modified_ms: f.modified_ms,
                        stable_since_ms: now_ms,
                        first_seen_ms: now_ms,
                    },
                );
            }
        }
    }
    new
}

/// Whether a file not yet in the ledger can be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Size or modification time changed less than the settle time ago.
    Settling,
    /// Not closed since it was created (HDFS), within the open-file timeout.
    Open,
    /// Its directory has no marker yet.
    AwaitingMarker,
    Ready,
}

/// The rule for one file.
pub fn readiness(file: &FileStatus, obs: &Observation, rules: &Rules, marker_present: bool, now_ms: u64) -> Readiness {
    if file.write == WriteState::NeverClosed && now_ms.saturating_sub(file.modified_ms) < rules.open_timeout_ms {
        return Readiness::Open;
    }
    if now_ms.saturating_sub(obs.stable_since_ms) < rules.settle_ms {
        return Readiness::Settling;
    }
    if rules.marker.is_some() && !marker_present {
        return Readiness::AwaitingMarker;
    }
    Readiness::Ready
}

/// What one listing means.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    /// Files never packaged that are ready now.
    pub ready: Vec<FileRef>,
    /// Files to be packaged again for a Destination (its package could not read them), listed.
    pub retry: BTreeMap<String, Vec<FileRef>>,
    /// Files to be packaged again that are not listed any more: (destination, url, attempts
    /// so far, last reason).
    pub missing: Vec<(String, String, u32, String)>,
    /// Packaged files whose size or modification time differs now, not reported before.
    pub changed: Vec<(FileRef, FileRef)>,
    pub seen: usize,
    pub settling: usize,
    pub open: usize,
    pub awaiting_marker: usize,
    /// Listed files whose path cannot go into a package (longer than the API allows).
    pub too_long: Vec<String>,
}

/// The longest path a DeliveryPackage accepts.
pub const MAX_PATH: usize = 4096;

/// Sorts a listing out against the ledger. `markers` are the directories holding the marker.
pub fn assess(
    ledger: &Ledger,
    listing: &[FileStatus],
    obs: &Observations,
    markers: &HashSet<String>,
    rules: &Rules,
    now_ms: u64,
) -> Assessment {
    let mut a = Assessment::default();
    let mut listed: HashMap<&str, &FileStatus> = HashMap::new();
    for f in listing.iter().filter(|f| !is_temporary(&f.url, &rules.literal_prefix)) {
        a.seen += 1;
        listed.insert(&f.url, f);
        let now_ref = |seen_ms| FileRef { url: f.url.clone(), size: f.size, modified_ms: f.modified_ms, seen_ms };
        if let Some(entry) = ledger.files.get(&f.url) {
            if !entry.changed && (entry.size != f.size || entry.modified_ms != f.modified_ms) {
                let packaged = FileRef {
                    url: f.url.clone(),
                    size: entry.size,
                    modified_ms: entry.modified_ms,
                    seen_ms: entry.seen_ms,
                };
                a.changed.push((packaged, now_ref(entry.seen_ms)));
            }
            for (dest, state) in &entry.dests {
                if matches!(state, DestFile::Retry { .. }) {
                    a.retry.entry(dest.to_string()).or_default().push(now_ref(entry.seen_ms));
                }
            }
            continue;
        }
        let Some(o) = obs.get(&f.url) else { continue };
        if f.url.len() > MAX_PATH {
            a.too_long.push(f.url.clone());
            continue;
        }
        match readiness(f, o, rules, markers.contains(dir_of(&f.url)), now_ms) {
            Readiness::Settling => a.settling += 1,
            Readiness::Open => a.open += 1,
            Readiness::AwaitingMarker => a.awaiting_marker += 1,
            Readiness::Ready => a.ready.push(now_ref(o.first_seen_ms)),
        }
    }
    for (url, entry) in &ledger.files {
        if listed.contains_key(url.as_str()) {
            continue;
        }
        for (dest, state) in &entry.dests {
            if let DestFile::Retry { attempts, reason } = state {
                a.missing.push((dest.to_string(), url.clone(), *attempts, reason.clone()));
            }
        }
    }
    a.ready.sort();
    a.missing.sort();
    for files in a.retry.values_mut() {
        files.sort();
    }
    a
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
