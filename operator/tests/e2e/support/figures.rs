//! The figures of one fault run, as the fault suites (`e2e_cluster_faults`, `e2e_hdfs_faults`,
//! `e2e_worker_kills`) measure, print and check them.

use std::fmt::Write as _;
use std::time::Duration;

use courier_e2e::sim::{Simulator, busiest_window};

use super::observe::package;

/// The ground the fault suites share (`cluster_faults`, `hdfs_faults`, `worker_kills`): a
/// strict partner allowing 500/s with a bucket of 20, workers of 32 in flight, and a paced
/// control pod at half the rate beside them.
pub mod suite {
    pub const LIMIT: u32 = 500;
    pub const BURST: u32 = 20;
    pub const IN_FLIGHT: u64 = 32;
    /// 429s allowed in all: start-up jitter of a few requests.
    pub const STARTUP_JITTER: u64 = 5;
    /// The control pod's rate (`paced_pod`).
    pub const PACED_RATE: u32 = LIMIT / 2;
}

/// The faults environment variable `var` names (comma-separated, as `name` spells each), or
/// all of `all` when it is not set; panics naming the known ones when it names none.
pub fn selected<F: Copy>(var: &str, all: &[F], name: impl Fn(F) -> String) -> Vec<F> {
    let Ok(wanted) = std::env::var(var) else { return all.to_vec() };
    let names: Vec<&str> = wanted.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    let faults: Vec<F> = all.iter().copied().filter(|&f| names.contains(&name(f).as_str())).collect();
    let known: Vec<String> = all.iter().map(|&f| name(f)).collect();
    assert!(!faults.is_empty(), "{var}={wanted} names no fault; known: {}", known.join(", "));
    faults
}

/// One fault run.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The fault, as the table names it.
    pub what: String,
    pub records: i64,
    pub sent: i64,
    pub dead_lettered: i64,
    pub read: i64,
    /// Records the partner's ledger does not have.
    pub lost: usize,
    /// Records the partner accepted more than once (the extra acceptances).
    pub duplicates: u64,
    /// 429s at the partner.
    pub rate_limited: u64,
    /// 429s a paced control pod drew at the same time, on the same path.
    pub control_rate_limited: u64,
    /// Requests in the busiest sliding second.
    pub busiest: usize,
    pub seconds: f64,
    pub ends: String,
}

impl Figures {
    /// Measures package `name` (Complete, with `ids` its records) against `sim`, the paced
    /// `control` beside it, `seconds` after the run began. The counters in status may trail the
    /// Complete condition by one status write: they are read until they add up (20 s at most).
    #[allow(clippy::too_many_arguments)]
    pub async fn measure(
        what: &str,
        client: &kube::Client,
        ns: &str,
        name: &str,
        ids: &[String],
        sim: &Simulator,
        control: &Simulator,
        seconds: f64,
    ) -> Figures {
        let records = ids.len() as i64;
        let mut status = package(client, ns, name).await.status.expect("status");
        for _ in 0..40 {
            let r = &status.progress.records;
            if r.sent + r.dead_lettered == records && r.read == records {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            status = package(client, ns, name).await.status.expect("status");
        }
        let r = status.progress.records;
        let keys = sim.keys();
        let all: Vec<u64> = sim.arrivals().iter().map(|a| a.at_unix_micros).collect();
        Figures {
            what: what.to_owned(),
            records,
            sent: r.sent,
            dead_lettered: r.dead_lettered,
            read: r.read,
            lost: ids.iter().filter(|id| !keys.contains_key(*id)).count(),
            duplicates: keys.values().map(|n| u64::from(n.saturating_sub(1))).sum(),
            rate_limited: sim.stats().rejected.rate_limited,
            control_rate_limited: control.stats().rejected.rate_limited,
            busiest: busiest_window(&all, Duration::from_secs(1)),
            seconds,
            ends: "Complete".into(),
        }
    }

    /// The checks every fault run passes: nothing lost, counters exact, nothing dead-lettered,
    /// no 429 beyond `jitter` plus what the control drew scaled by `control_scale` (its rate's
    /// share of ours), at most `duplicates` records accepted twice.
    pub fn check(&self, jitter: u64, control_scale: u64, duplicates: u64) {
        let what = &self.what;
        assert_eq!(self.lost, 0, "{what}: every record reached the partner");
        assert_eq!(
            (self.read, self.sent + self.dead_lettered),
            (self.records, self.records),
            "{what}: counters exact: {self:?}"
        );
        assert_eq!(self.dead_lettered, 0, "{what}: dead-letters nothing");
        assert!(
            self.rate_limited <= jitter + control_scale * self.control_rate_limited,
            "{what}: {} requests over the limit (429); the paced control drew {} at 1/{control_scale} of the rate",
            self.rate_limited,
            self.control_rate_limited
        );
        assert!(self.duplicates <= duplicates, "{what}: {} duplicates, more than {duplicates}", self.duplicates);
    }
}

/// The rows as a markdown table; `limit` and `burst` name the partner's, the control ran at
/// `control` (e.g. "half the rate").
pub fn figures_table(rows: &[Figures], limit: u32, burst: u32, control: &str) -> String {
    let mut out = format!(
        "| fault | records | sent | dead-lettered | lost | duplicates | 429s (paced control at {control}) | busiest second (limit {limit} + burst {burst}) | seconds | ends |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} ({}) | {} | {:.1} | {} |",
            r.what,
            r.records,
            r.sent,
            r.dead_lettered,
            r.lost,
            r.duplicates,
            r.rate_limited,
            r.control_rate_limited,
            r.busiest,
            r.seconds,
            r.ends
        );
    }
    out
}
