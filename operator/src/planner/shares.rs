//! Dividing a Destination's limit among its workers.
//!
//! Each worker gets `effective × demandᵢ / Σdemand` (integers, leftover spread by largest
//! remainder, ties to the earlier worker). Each worker's grant is decided at its own heartbeat
//! ([`grant_for`]) so that `Σ max(grantedᵢ, appliedᵢ) ≤ effective` holds at every step while the
//! limit does not drop: a shrinking share is granted at once (the larger share sent before is
//! still counted through `applied` until the worker reports the smaller one), a growing share
//! only takes what the others have acknowledged giving up.

/// A worker as the share planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerShare {
    /// Requests/s the worker could use (0 when idle).
    pub demand: u32,
    /// The share last granted to it.
    pub granted: u32,
    /// The share it reports enforcing.
    pub applied: u32,
}

impl WorkerShare {
    /// What this worker may be sending at right now, as far as the limit is concerned.
    pub fn held(&self) -> u64 {
        u64::from(self.granted.max(self.applied))
    }
}

/// Splits `total` in proportion to `weights` (integers, Σ = `total` unless every weight is 0, in
/// which case it is split evenly). The leftover goes to the largest remainders, ties to the
/// lower index.
pub fn proportional_split(total: u64, weights: &[u32]) -> Vec<u64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let weights: Vec<u64> =
        if sum == 0 { vec![1; weights.len()] } else { weights.iter().map(|&w| u64::from(w)).collect() };
    let sum: u64 = weights.iter().sum();
    let total128 = u128::from(total);
    let mut out = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let exact = total128 * u128::from(w);
        let base = (exact / u128::from(sum)) as u64;
        out.push(base);
        remainders.push((exact % u128::from(sum), i));
    }
    let given: u64 = out.iter().sum();
    let mut leftover = total - given;
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(rem, i) in &remainders {
        if leftover == 0 {
            break;
        }
        if rem > 0 {
            out[i] += 1;
            leftover -= 1;
        }
    }
    out
}

/// Like [`proportional_split`], but every worker gets at least `floor` (for burst and
/// in-flight limits, which must never be 0).
pub fn split_with_floor(total: u64, weights: &[u32], floor: u64) -> Vec<u64> {
    proportional_split(total, weights).into_iter().map(|v| v.max(floor)).collect()
}

/// The proportional target of each worker for the limit `effective`.
pub fn targets(effective: u32, workers: &[WorkerShare]) -> Vec<u32> {
    let demands: Vec<u32> = workers.iter().map(|w| w.demand).collect();
    proportional_split(u64::from(effective), &demands).into_iter().map(|v| v as u32).collect()
}

/// The share to send to worker `who` now. `granted` of every worker is the last share *sent*
/// to it, `applied` what it reports enforcing; `reserved` is held by workers not heard of yet
/// (a new leader's warm-up). A shrinking share is granted at once; a growing one only up to
/// what the others may be sending at (`max(granted, applied)` each) and the reserve leave
/// free. So `Σ max(granted, applied) + reserved ≤ effective` holds after every grant, as long
/// as the limit does not drop (after a cut it holds again once every worker applied its share).
pub fn grant_for(effective: u32, workers: &[WorkerShare], who: usize, reserved: u32) -> u32 {
    let Some(me) = workers.get(who) else { return 0 };
    let target = targets(effective, workers)[who];
    if u64::from(target) <= me.held() {
        return target;
    }
    let others: u64 =
        workers.iter().enumerate().filter(|(i, _)| *i != who).map(|(_, w)| w.held()).sum::<u64>() + u64::from(reserved);
    let free = u64::from(effective).saturating_sub(others);
    // Never below what it already holds (that is counted either way), never above the target.
    free.max(me.held()).min(u64::from(target)) as u32
}

/// Sum of `max(granted, applied)`: what the workers may be sending at, together.
pub fn committed(workers: &[WorkerShare]) -> u64 {
    workers.iter().map(WorkerShare::held).sum()
}

#[cfg(test)]
mod tests;
