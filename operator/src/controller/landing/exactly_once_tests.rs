//! Exactly once per Destination across operator restarts and a stale leader: the pure parts
//! (observe, assess, cut, outcomes) driven over a real ledger directory, with the operator's
//! memory dropped at every restart pattern, and the entries on disk checked afterwards.

use std::collections::{BTreeMap, HashSet};

use courier_core::source::{FileStatus, WriteState};

use super::batch::{self, CutInput};
use super::ledger::{DestFile, Entry, Ledger, OpenPackage, OutcomeEntry, PackageEnd};
use super::rules::{self, Observations, Rules};
use super::store::Store;

const DESTS: [&str; 2] = ["a", "b"];

fn rules() -> Rules {
    Rules { settle_ms: 0, open_timeout_ms: 0, marker: None, max_file_attempts: 3, literal_prefix: "file:///in/".into() }
}

/// Every (destination, url) of every batch entry in the directory, with how often it was
/// packaged.
fn packaged(dir: &std::path::Path) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("ledger dir") {
        let path = e.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.starts_with("snapshot") || name.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        if let Entry::Batch(b) = serde_json::from_str::<Entry>(&text).expect("an entry") {
            for p in b.packages {
                for f in p.files {
                    *counts.entry((p.destination.clone(), f.url)).or_default() += 1;
                }
            }
        }
    }
    counts
}

/// One leader's turn: cut a batch of what is ready (when anything is) and complete every open
/// package. A lost append means another leader wrote: read the ledger again.
async fn turn(store: &Store, ledger: &mut Ledger, obs: &Observations, listing: &[FileStatus], now: u64) {
    let a = rules::assess(ledger, listing, obs, &HashSet::new(), &rules(), now);
    if !a.ready.is_empty() {
        let dests: Vec<String> = DESTS.iter().map(|d| (*d).to_owned()).collect();
        let entry = batch::cut(&CutInput {
            datum: "d",
            destinations: &dests,
            batch: ledger.next_batch,
            ready: &a.ready,
            retry: &a.retry,
            missing: &[],
            max_files: 2,
            now_ms: now,
        });
        if !store.append(ledger, &Entry::Batch(entry)).await.expect("append") {
            *ledger = store.load().await.expect("reload");
        }
    }
    let open: Vec<(String, OpenPackage)> = ledger.open.iter().map(|(n, p)| (n.clone(), p.clone())).collect();
    for (package, open) in open {
        let entry = Entry::Outcome(OutcomeEntry {
            batch: open.batch,
            destination: open.destination,
            package,
            at_ms: now,
            end: PackageEnd::Complete,
            records_sent: open.files.len() as u64,
            retry: Vec::new(),
            failed: Vec::new(),
        });
        if !store.append(ledger, &entry).await.expect("append") {
            *ledger = store.load().await.expect("reload");
            return;
        }
    }
}

#[tokio::test]
async fn every_file_is_packaged_once_per_destination_whatever_the_restarts_and_stale_leaders() {
    // (restart every n steps, whether the replaced leader takes one more turn with its stale view)
    let cases = [(1, false), (1, true), (2, true), (3, true), (5, false), (100, false)];
    for (every, stale_turn) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(&format!("file://{}/ledger", dir.path().display())).expect("store");
        let mut ledger = store.load().await.expect("empty");
        let mut obs = Observations::new();
        let mut listing: Vec<FileStatus> = Vec::new();
        let steps = 12u64;
        for step in 0..steps + 10 {
            let now = step * 1_000;
            if step < steps {
                for k in 0..3 {
                    let url = format!("file:///in/f{step:02}-{k}.jsonl");
                    listing.push(FileStatus { url, size: 10, modified_ms: step, write: WriteState::Closed });
                }
                listing.sort_by(|x, y| x.url.cmp(&y.url));
            }
            if step % every == every - 1 {
                // A restart: memory is lost; the ledger is read again from the directory.
                let old = std::mem::replace(&mut ledger, store.load().await.expect("reload"));
                let old_obs = std::mem::take(&mut obs);
                if stale_turn {
                    let mut stale = old;
                    turn(&store, &mut stale, &old_obs, &listing, now).await;
                }
            }
            rules::observe(&mut obs, &listing, now);
            turn(&store, &mut ledger, &obs, &listing, now).await;
        }
        let counts = packaged(&dir.path().join("ledger"));
        let files: Vec<&str> = listing.iter().map(|f| f.url.as_str()).collect();
        for dest in DESTS {
            for url in &files {
                let n = counts.get(&(dest.to_owned(), (*url).to_owned())).copied().unwrap_or(0);
                assert_eq!(n, 1, "case {every}/{stale_turn}: {url} packaged {n} times for {dest}");
            }
        }
        let final_ledger = store.load().await.expect("reload");
        for url in &files {
            for dest in DESTS {
                let state = final_ledger.files.get(*url).and_then(|f| f.dest(dest));
                assert_eq!(state, Some(&DestFile::Delivered), "case {every}/{stale_turn}: {url} for {dest}");
            }
        }
        assert_eq!(final_ledger.files_delivered, files.len() as u64, "case {every}/{stale_turn}");
        for dest in DESTS {
            assert_eq!(final_ledger.totals[dest].files_packaged, files.len() as u64);
            assert_eq!(final_ledger.totals[dest].records_delivered, files.len() as u64);
        }
    }
}
