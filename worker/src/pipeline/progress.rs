//! What a lease reports: its checkpoint, cumulative counters and failure samples.

use std::collections::BTreeMap;

use crate::protocol::{FailureSample, LeaseCounters};

/// Failure codes kept per lease (the rest are counted under `other`).
const MAX_CODES: usize = 16;
/// Characters of a sample body or message kept.
const SAMPLE_CHARS: usize = 512;

/// The state of one lease, published on every checkpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaseProgress {
    /// Low watermark: every record before it is sent or dead-lettered.
    pub checkpoint: u64,
    /// Every record before it was read (see [`crate::protocol::LeaseReport::frontier`]).
    pub frontier: u64,
    /// Records read, not acknowledged.
    pub pending: Vec<u64>,
    /// Cumulative counters (including those of earlier leases of the shard).
    pub counters: LeaseCounters,
    /// Failure codes seen, cumulative for this lease.
    pub failures: Vec<FailureSample>,
    /// Every record of the shard is acknowledged.
    pub done: bool,
    /// The shard failed as a whole.
    pub error: Option<String>,
    /// The lease's task has ended (done, failed, or stopped); nothing will change any more.
    pub finished: bool,
    /// Bytes of the shard not yet acknowledged (byte-range shards; 0 otherwise).
    pub lag_bytes: u64,
}

/// Counts failures by code, keeping the first sample of each.
#[derive(Debug, Clone, Default)]
pub struct FailureTally {
    codes: BTreeMap<String, (u64, Option<String>)>,
}

impl FailureTally {
    /// Counts one record that ended with `code`.
    pub fn add(&mut self, code: &str, sample: impl FnOnce() -> Option<String>) {
        let code = if self.codes.len() >= MAX_CODES && !self.codes.contains_key(code) { "other" } else { code };
        let entry = self.codes.entry(code.to_owned()).or_insert_with(|| (0, sample().map(|s| truncate(&s))));
        entry.0 += 1;
    }

    /// The samples, most frequent first.
    pub fn samples(&self) -> Vec<FailureSample> {
        let mut out: Vec<FailureSample> = self
            .codes
            .iter()
            .map(|(code, (count, sample))| FailureSample { code: code.clone(), count: *count, sample: sample.clone() })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
        out
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(SAMPLE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_code_with_the_first_sample_and_most_frequent_first() {
        let mut tally = FailureTally::default();
        tally.add("400", || Some("first".into()));
        tally.add("malformed", || Some("bad".into()));
        tally.add("400", || Some("second".into()));
        let samples = tally.samples();
        assert_eq!(samples[0], FailureSample { code: "400".into(), count: 2, sample: Some("first".into()) });
        assert_eq!(samples[1].code, "malformed");
    }
}
