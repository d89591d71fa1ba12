//! The coordinator of `courier-worker run`: the whole package is planned locally, every shard is
//! leased to this worker, and the share is the Destination's full rate. Progress can be kept in
//! a checkpoint file, so a stopped run resumes where it was.

use std::path::PathBuf;

use courier_core::datum::DatumSettings;
use serde::{Deserialize, Serialize};

use super::{Coordinator, CoordinatorError};
use crate::protocol::{
    FailureSample, HeartbeatRequest, HeartbeatResponse, LeaseCounters, LeaseKey, PROTOCOL_VERSION, RateShare,
    ShardLease,
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
            let invalid = |message: String| CoordinatorError::Invalid { url: path.display().to_string(), message };
            let file: CheckpointFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
            let same = file.source == plan.source
                && file.shards.len() == states.len()
                && file.shards.iter().zip(&states).all(|(a, b)| a.shard == b.shard);
            if !same {
                return Err(invalid("the checkpoint file belongs to another source or shard plan".to_owned()));
            }
            states = file.shards.into_iter().map(|s| ShardState { error: None, ..s }).collect();
        }
        Ok(Self { plan, states, epoch: 0, dirty: true })
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

impl Coordinator for LocalCoordinator {
    async fn heartbeat(&mut self, request: HeartbeatRequest) -> Result<HeartbeatResponse, CoordinatorError> {
        self.apply_reports(&request);
        let granted = if request.draining { Vec::new() } else { self.grant(request.free_slots) };
        self.save()?;
        Ok(HeartbeatResponse {
            protocol_version: PROTOCOL_VERSION,
            share: self.plan.share,
            pause_until_unix_ms: None,
            destination: None,
            revoked: Vec::new(),
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
