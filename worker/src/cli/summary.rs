//! The final summary of a local run, as text for people or JSON for scripts.

use std::time::Duration;

use serde::Serialize;

use crate::protocol::FailureSample;

/// What a `run` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub records_read: u64,
    pub records_sent: u64,
    pub records_failed: u64,
    pub records_malformed: u64,
    pub records_dead_lettered: u64,
    pub retries: u64,
    /// Records acknowledged by the partner per second, over the whole run.
    pub rate_per_second: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub elapsed_seconds: f64,
    /// Seconds sending was paused by the partner's Retry-After.
    pub paused_seconds: f64,
    pub shards: usize,
    pub shards_done: usize,
    pub dead_letter_path: String,
    /// True when SIGTERM/SIGINT stopped the run before the end.
    pub interrupted: bool,
    /// True when the failure policy was exceeded.
    pub failure_policy_exceeded: bool,
    pub failures: Vec<FailureSample>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shard_errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_file: Option<String>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

impl Summary {
    /// Sets the latency percentiles.
    pub fn with_latency(mut self, p50: Duration, p99: Duration) -> Self {
        self.latency_p50_ms = ms(p50);
        self.latency_p99_ms = ms(p99);
        self
    }

    /// The summary as aligned text lines.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
        line("records read", self.records_read.to_string());
        line("sent", self.records_sent.to_string());
        line("failed", self.records_failed.to_string());
        line("malformed", self.records_malformed.to_string());
        line("dead-lettered", self.records_dead_lettered.to_string());
        line("retried", self.retries.to_string());
        line("rate", format!("{:.0} records/s", self.rate_per_second));
        line("latency", format!("p50 {:.2} ms, p99 {:.2} ms", self.latency_p50_ms, self.latency_p99_ms));
        if self.paused_seconds > 0.0 {
            line("paused", format!("{:.2} s (Retry-After)", self.paused_seconds));
        }
        line("shards", format!("{} of {} done", self.shards_done, self.shards));
        line("elapsed", format!("{:.2} s", self.elapsed_seconds));
        line("dead letters", self.dead_letter_path.clone());
        if let Some(path) = &self.checkpoint_file {
            line("checkpoint", path.clone());
        }
        for f in self.failures.iter().take(5) {
            let sample = f.sample.as_deref().unwrap_or("").replace('\n', " ");
            let sample: String = sample.chars().take(120).collect();
            line("failure", format!("{} × {}: {}", f.code, f.count, sample));
        }
        for e in &self.shard_errors {
            line("shard error", e.clone());
        }
        if self.interrupted {
            line("status", "interrupted (resume with the same --checkpoint-file)".to_owned());
        } else if self.failure_policy_exceeded {
            line("status", "FAILED: failures exceed the failure policy".to_owned());
        } else if !self.shard_errors.is_empty() {
            line("status", "FAILED: some shards could not be read".to_owned());
        } else {
            line("status", "complete".to_owned());
        }
        out
    }
}
