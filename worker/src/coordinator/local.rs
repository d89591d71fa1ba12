//! The coordinator of `courier-worker run`: the whole package is planned locally, every shard is
//! leased to this worker, and the share is the Destination's rate as the operator would set it:
//! the same AIMD (`courier_core::aimd`) lowers it on sustained 429s and pauses on `Retry-After`.
//! Progress can be kept in a checkpoint file, so a stopped run resumes where it was.

use std::path::PathBuf;

use courier_core::aimd::{AimdConfig, AimdState, Millis};
use courier_core::datum::DatumSettings;
use serde::{Deserialize, Serialize};

use super::{Coordinator, CoordinatorError};
use crate::protocol::{
    FailureSample, HeartbeatRequest, HeartbeatResponse, LeaseCounters, LeaseKey, PROTOCOL_VERSION, QuotaAllowance,
    RateShare, ShardLease,
};
use crate::shard::ShardSpec;

/// Automatic attempts of a shard that fails as a whole.
const SHARD_ATTEMPTS: u32 = 3;

/// Where one shard stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardState {
    pub shard: Option<ShardSpec>,
    pub checkpoint: u64,
    /// Read up to here; between `checkpoint` and here only `pending` are unacknowledged.
    #[serde(default)]
    pub frontier: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<u64>,
    pub counters: LeaseCounters,
    #[serde(default)]
    pub failures: Vec<FailureSample>,
    pub done: bool,
    /// The shard failed as a whole after every attempt.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(skip)]
    attempts: u32,
    #[serde(skip)]
    leased: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckpointFile {
    source: String,
    shards: Vec<ShardState>,
}

/// Everything the local coordinator needs to hand out leases.
#[derive(Debug, Clone)]
pub struct LocalPlan {
    /// The source pattern (recorded in the checkpoint file).
    pub source: String,
    pub shards: Vec<ShardSpec>,
    pub datum: DatumSettings,
    pub namespace: String,
    pub package: String,
    pub dead_letter_dir: String,
    /// The Destination's rate (all of it is this worker's share).
    pub share: RateShare,
    /// Progress is written here on every heartbeat, and read from it at start when it exists.
    pub checkpoint_file: Option<PathBuf>,
    /// Heartbeat interval (how often progress is collected).
    pub heartbeat_interval_ms: u32,
    /// The Destination's quota, all of it this worker's allowance in each period.
    pub quota: Option<LocalQuota>,
}

/// `rateLimit.requestsPerDay` of a local run, with its periods.
#[derive(Debug, Clone)]
pub struct LocalQuota {
    pub requests: u64,
    pub window_seconds: i64,
    pub time_zone: jiff::tz::TimeZone,
}

/// Totals of a local run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalSummary {
    pub counters: LeaseCounters,
    pub failures: Vec<FailureSample>,
    pub shards: usize,
    pub shards_done: usize,
    pub shard_errors: Vec<String>,
}

/// Plans locally, leases everything to this worker.
#[derive(Debug)]
pub struct LocalCoordinator {
    plan: LocalPlan,
    states: Vec<ShardState>,
    epoch: u64,
    dirty: bool,
    aimd: AimdState,
    aimd_config: AimdConfig,
}

impl LocalCoordinator {
    /// A coordinator of `plan`, resuming from its checkpoint file if there is one. A checkpoint
    /// file of another plan (other source or shards) is refused.
    pub fn new(plan: LocalPlan) -> Result<Self, CoordinatorError> {
        let mut states: Vec<ShardState> =
            plan.shards.iter().map(|s| ShardState { shard: Some(s.clone()), ..ShardState::default() }).collect();
        if let Some(path) = &plan.checkpoint_file
            && let Ok(text) = std::fs::read_to_string(path)
        {
            let file: CheckpointFile = serde_json::from_str(&text)
                .map_err(|e| CoordinatorError::Invalid { url: path.display().to_string(), source: e.into() })?;
            let same = file.source == plan.source
                && file.shards.len() == states.len()
                && file.shards.iter().zip(&states).all(|(a, b)| a.shard == b.shard);
            if !same {
                return Err(CoordinatorError::ForeignCheckpoint { path: path.display().to_string() });
            }
            states = file.shards.into_iter().map(|s| ShardState { error: None, ..s }).collect();
        }
        let aimd = AimdState::new(plan.share.requests_per_second, 0);
        Ok(Self { plan, states, epoch: 0, dirty: true, aimd, aimd_config: AimdConfig::default() })
    }

    /// Shard states (checkpoints and counters).
    pub fn states(&self) -> &[ShardState] {
        &self.states
    }

    /// Totals over all shards.
    pub fn summary(&self) -> LocalSummary {
        let mut summary = LocalSummary { shards: self.states.len(), ..LocalSummary::default() };
        for state in &self.states {
            summary.counters += &state.counters;
            if state.done {
                summary.shards_done += 1;
            }
            if let Some(e) = &state.error {
                summary.shard_errors.push(e.clone());
            }
        }
        let mut by_code: std::collections::BTreeMap<String, FailureSample> = std::collections::BTreeMap::new();
        for state in &self.states {
            for f in &state.failures {
                let entry = by_code.entry(f.code.clone()).or_insert_with(|| FailureSample {
                    code: f.code.clone(),
                    count: 0,
                    sample: f.sample.clone(),
                });
                entry.count += f.count;
            }
        }
        let mut failures: Vec<FailureSample> = by_code.into_values().collect();
        failures.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
        summary.failures = failures;
        summary
    }

    fn key(&self, shard: usize) -> LeaseKey {
        LeaseKey {
            namespace: self.plan.namespace.clone(),
            package: self.plan.package.clone(),
            package_uid: "local".to_owned(),
            shard: u32::try_from(shard).unwrap_or(u32::MAX),
            package_attempt: 1,
            lease_epoch: self.epoch,
        }
    }

    fn save(&mut self) -> Result<(), CoordinatorError> {
        let Some(path) = &self.plan.checkpoint_file else { return Ok(()) };
        if !self.dirty {
            return Ok(());
        }
        let file = CheckpointFile { source: self.plan.source.clone(), shards: self.states.clone() };
        let err = |source| CoordinatorError::Checkpoint { path: path.display().to_string(), source };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| err(std::io::Error::other(e)))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        self.dirty = false;
        Ok(())
    }

    fn apply_reports(&mut self, request: &HeartbeatRequest) {
        for report in &request.leases {
            let Some(state) = self.states.get_mut(report.key.shard as usize) else { continue };
            if state.done {
                continue;
            }
            self.dirty |= state.checkpoint != report.checkpoint || state.counters != report.counters;
            if report.checkpoint >= state.checkpoint {
                // Checkpoint, frontier, pending and counters of one report belong together.
                state.checkpoint = report.checkpoint;
                state.frontier = report.frontier;
                state.pending = report.pending.clone();
                state.counters = report.counters.clone();
            }
            state.failures = report.failures.clone();
            if report.done {
                state.done = true;
                state.leased = false;
                self.dirty = true;
            } else if let Some(error) = &report.error {
                state.leased = false;
                state.attempts += 1;
                if state.attempts >= SHARD_ATTEMPTS {
                    state.error = Some(error.clone());
                }
                self.dirty = true;
            }
        }
        // A draining worker's reports are final: its unfinished leases end with it.
        if request.draining {
            for state in &mut self.states {
                state.leased = false;
            }
        }
    }

    fn grant(&mut self, free: u32) -> Vec<ShardLease> {
        let mut granted = Vec::new();
        for i in 0..self.states.len() {
            if granted.len() >= free as usize {
                break;
            }
            let state = &self.states[i];
            if state.done || state.leased || state.error.is_some() {
                continue;
            }
            let Some(shard) = state.shard.clone() else { continue };
            self.epoch += 1;
            // Records read but not acknowledged are read again: `read` keeps the acknowledged.
            let mut counters = state.counters.clone();
            counters.read = counters.read.min(counters.sent + counters.dead_lettered);
            let lease = ShardLease {
                key: self.key(i),
                shard,
                checkpoint: state.checkpoint,
                frontier: state.frontier,
                pending: state.pending.clone(),
                counters,
                datum: self.plan.datum.clone(),
                dead_letter_path: self.plan.dead_letter_dir.clone(),
                only_offsets: Vec::new(),
            };
            self.states[i].leased = true;
            granted.push(lease);
        }
        granted
    }
}

impl LocalCoordinator {
    /// The share at `now` after this heartbeat's throttle report: the rate (and its burst) as
    /// the AIMD has it, and the pause it asks for.
    fn throttled_share(&mut self, request: &HeartbeatRequest, now: Millis) -> (RateShare, Option<u64>) {
        let t = &request.throttle;
        self.aimd.observe(&self.aimd_config, t, now);
        let spec = self.plan.share.requests_per_second.max(1);
        let effective = self.aimd.effective().min(spec);
        let burst = (u64::from(self.plan.share.burst) * u64::from(effective) / u64::from(spec)).max(1);
        // The whole quota of the current period (a new run starts counting at 0 again).
        let quota = self.plan.quota.as_ref().and_then(|q| {
            let period = courier_core::quota::period_at(now, q.window_seconds, &q.time_zone).ok()?;
            Some(QuotaAllowance {
                period_start_unix_ms: period.start_unix_ms,
                period_end_unix_ms: period.end_unix_ms,
                requests: q.requests,
            })
        });
        let share = RateShare {
            requests_per_second: effective,
            burst: u32::try_from(burst).unwrap_or(u32::MAX),
            quota,
            ..self.plan.share
        };
        (share, self.aimd.paused_until(now))
    }
}

fn unix_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Coordinator for LocalCoordinator {
    async fn heartbeat(&mut self, request: HeartbeatRequest) -> Result<HeartbeatResponse, CoordinatorError> {
        self.apply_reports(&request);
        let granted = if request.draining { Vec::new() } else { self.grant(request.free_slots) };
        self.save()?;
        // Saved: every completion reported is durable now.
        let settled = request.leases.iter().filter(|r| r.done).map(|r| r.key.clone()).collect();
        let (share, pause_until_unix_ms) = self.throttled_share(&request, unix_ms());
        Ok(HeartbeatResponse {
            protocol_version: PROTOCOL_VERSION,
            share,
            pause_until_unix_ms,
            destination: None,
            revoked: Vec::new(),
            settled,
            granted,
            heartbeat_interval_ms: self.plan.heartbeat_interval_ms,
            lease_ttl_ms: u32::MAX,
            term: 0,
        })
    }

    fn finished(&self) -> bool {
        self.states.iter().all(|s| s.done || s.error.is_some())
    }
}

#[cfg(test)]
mod tests {
    use courier_core::protocol::{ThrottleReport, WorkerStats};

    use super::*;

    fn plan(rps: u32, burst: u32) -> LocalPlan {
        LocalPlan {
            source: "file:///in".into(),
            shards: Vec::new(),
            datum: serde_json::from_value(serde_json::json!({"format": {"type": "JsonLines"}})).expect("datum"),
            namespace: "local".into(),
            package: "p".into(),
            dead_letter_dir: "file:///dl".into(),
            share: RateShare { requests_per_second: rps, burst, max_in_flight: 8, ..RateShare::default() },
            checkpoint_file: None,
            heartbeat_interval_ms: 1_000,
            quota: None,
        }
    }

    fn beat(too_many: u64, retry_after_until_unix_ms: Option<u64>) -> HeartbeatRequest {
        HeartbeatRequest {
            protocol_version: PROTOCOL_VERSION,
            worker: "local".into(),
            incarnation: 1,
            namespace: "local".into(),
            destination: "d".into(),
            destination_generation: 0,
            applied_share: 0,
            demand: 1,
            free_slots: 0,
            draining: false,
            leases: Vec::new(),
            throttle: ThrottleReport { too_many_requests: too_many, retry_after_until_unix_ms, spread_ms: None },
            stats: WorkerStats::default(),
            quota: None,
            clock_ms: None,
        }
    }

    #[test]
    fn a_local_run_lowers_its_rate_on_sustained_429s_and_pauses_on_retry_after() {
        let mut c = LocalCoordinator::new(plan(150, 10)).expect("plan");
        let t0 = 1_000_000;
        let (share, pause) = c.throttled_share(&beat(0, None), t0);
        assert_eq!((share.requests_per_second, share.burst, pause), (150, 10, None), "the spec rate at first");
        let (share, _) = c.throttled_share(&beat(2, None), t0 + 100);
        assert_eq!(share.requests_per_second, 150, "a couple of 429s are jitter, not a lower limit");
        let (share, pause) = c.throttled_share(&beat(40, Some(t0 + 1_200)), t0 + 200);
        assert!(share.requests_per_second < 150, "sustained 429s cut the rate: {share:?}");
        assert!(share.burst < 10 && share.burst >= 1, "the burst follows the rate: {share:?}");
        assert_eq!(pause, None, "a Retry-After of one second delays its records, not the run");
        let (_, pause) = c.throttled_share(&beat(1, Some(t0 + 2_500)), t0 + 300);
        assert_eq!(pause, Some(t0 + 2_500), "a Retry-After of two seconds or more pauses the run");
        let (later, pause) = c.throttled_share(&beat(0, None), t0 + 60_000);
        assert_eq!((later.requests_per_second, pause), (150, None), "back at the spec once it is quiet");
    }
}
