//! Operations of the lease table.

use std::collections::BTreeMap;

use courier_core::protocol::{LeaseKey, LeaseReport, ShardLease};

use super::fair::Work;
use super::package::{LeaseState, PackageEntry, ShardState};
use crate::coordinator::types::{ObjectKey, PackagePlan};
use crate::planner::Millis;

/// All packages and their leases.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    ttl: Millis,
    packages: BTreeMap<ObjectKey, PackageEntry>,
}

/// A lease handed out.
pub type Grant = ShardLease;

/// What became of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The lease is renewed.
    Renewed,
    /// The shard is complete.
    Completed,
    /// The shard failed; it will be retried (`false`) or is out of attempts (`true`).
    ShardFailed { exhausted: bool },
    /// The lease is not (or no longer) this worker's: it must stop. Its report was ignored,
    /// or taken as the final report of a revoked lease.
    Revoke,
    /// The worker gave the lease back unfinished (it drains); the shard is pending again.
    Released,
    /// A completion reported again (the worker keeps reporting it until it is settled, see
    /// [`LeaseTable::completion_persisted`]); nothing changes.
    AlreadyCompleted,
}

/// How long a lease restored from status stays its worker's, in TTLs, while its worker pod
/// exists (see [`LeaseTable::hold_restored_for`]): a new leader may be out of the workers'
/// reach for longer than one TTL (its Service endpoint moves only once the cluster's
/// controllers run again after an outage), and a worker that comes back reports everything it
/// did meanwhile, which the status does not have. A worker that holds its lease longer than
/// one TTL without a coordinator sends nothing more, so holding the shard for it costs time,
/// never the limit.
pub const RESTORED_HOLD_TTLS: u64 = 4;

impl LeaseTable {
    /// An empty table whose leases live `ttl` milliseconds.
    pub fn new(ttl: Millis) -> Self {
        LeaseTable { ttl, packages: BTreeMap::new() }
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Millis {
        self.ttl
    }

    /// Adds a package or updates it. The same uid, attempt and shard count keep the progress
    /// and leases (priority, suspension and settings are updated; suspension revokes its
    /// leases); another uid, attempt or plan replaces the package (its restored progress used).
    pub fn upsert_package(&mut self, plan: PackagePlan, now: Millis) {
        let ttl = self.ttl;
        match self.packages.get_mut(&plan.key) {
            Some(p) if p.uid == plan.uid && p.attempt == plan.attempt && p.shards.len() == plan.shards.len() => {
                p.priority = plan.priority;
                p.created = plan.created_unix_ms;
                p.backoff_limit = plan.backoff_limit;
                p.datum = plan.datum;
                p.dead_letter_path = plan.dead_letter_path;
                p.destination = plan.destination;
                let suspended = plan.suspended;
                self.set_suspended(&plan.key, suspended);
            }
            _ => {
                let key = plan.key.clone();
                self.packages.insert(key, PackageEntry::from_plan(plan, now, ttl * RESTORED_HOLD_TTLS));
            }
        }
    }

    /// Restored leases of the Destination (see [`PackageEntry::from_plan`]) whose worker is not
    /// among `pods` (the worker pods that exist) end one TTL from `now` at the latest, as any
    /// lease its worker stopped renewing; those of existing pods stay held for them. Returns
    /// how many were cut short.
    pub fn hold_restored_for(
        &mut self,
        namespace: &str,
        destination: &str,
        pods: &std::collections::BTreeSet<String>,
        now: Millis,
    ) -> usize {
        let ttl = self.ttl;
        let mut cut = 0;
        for p in self.packages.values_mut().filter(|p| p.key.namespace == namespace && p.destination == destination) {
            for s in &mut p.shards {
                if let ShardState::Leased(l) = &mut s.state
                    && l.epoch.is_none()
                    && !pods.contains(&l.worker)
                    && l.expires > now + ttl
                {
                    l.expires = now + ttl;
                    cut += 1;
                }
            }
        }
        cut
    }

    /// Whether the Destination has leases restored from status that their workers have not
    /// reported yet.
    pub fn has_restored(&self, namespace: &str, destination: &str) -> bool {
        self.packages
            .values()
            .filter(|p| p.key.namespace == namespace && p.destination == destination)
            .flat_map(|p| &p.shards)
            .any(|s| matches!(&s.state, ShardState::Leased(l) if l.epoch.is_none()))
    }

    /// Forgets a package; its workers learn it at their next report.
    pub fn remove_package(&mut self, key: &ObjectKey) -> bool {
        self.packages.remove(key).is_some()
    }

    /// Suspends (its leases become revoking) or resumes a package. Returns whether it is known.
    pub fn set_suspended(&mut self, key: &ObjectKey, suspended: bool) -> bool {
        let Some(p) = self.packages.get_mut(key) else { return false };
        p.suspended = suspended;
        if suspended {
            for s in &mut p.shards {
                if let ShardState::Leased(l) = &mut s.state {
                    l.revoking = true;
                }
            }
        }
        true
    }

    /// Marks every live lease of `worker` on the Destination revoking (the Destination is
    /// suspended). Returns their keys.
    pub fn revoke_worker(&mut self, worker: &str, namespace: &str, destination: &str) -> Vec<LeaseKey> {
        for p in self.packages.values_mut().filter(|p| p.key.namespace == namespace && p.destination == destination) {
            for s in &mut p.shards {
                if let ShardState::Leased(l) = &mut s.state
                    && l.worker == worker
                {
                    l.revoking = true;
                }
            }
        }
        self.revoking_of(worker, namespace, destination)
    }

    /// The package, if known.
    pub fn package(&self, key: &ObjectKey) -> Option<&PackageEntry> {
        self.packages.get(key)
    }

    /// The package, mutably (for rate samples).
    pub fn package_mut(&mut self, key: &ObjectKey) -> Option<&mut PackageEntry> {
        self.packages.get_mut(key)
    }

    /// Packages of one Destination.
    pub fn packages_of<'a>(
        &'a self,
        namespace: &'a str,
        destination: &'a str,
    ) -> impl Iterator<Item = &'a PackageEntry> {
        self.packages.values().filter(move |p| p.key.namespace == namespace && p.destination == destination)
    }

    /// The package's status in the API (as last observed) lists `completed` shards of its
    /// attempt `attempt` of `uid`: those completions are durable.
    pub fn persist_completions(&mut self, key: &ObjectKey, uid: &str, attempt: u32, completed: &[u32]) {
        let Some(p) = self.packages.get_mut(key) else { return };
        if p.uid != uid || p.attempt != attempt {
            return;
        }
        for id in completed {
            if let Some(s) = p.shards.get_mut(*id as usize)
                && s.state == ShardState::Completed
            {
                s.completion_persisted = true;
            }
        }
    }

    /// Whether the shard of `key` is complete and its status in the API says so: the worker
    /// that completed it may forget its final report.
    pub fn completion_persisted(&self, key: &LeaseKey) -> bool {
        let pkey = ObjectKey::new(&key.namespace, &key.package);
        self.packages.get(&pkey).is_some_and(|p| {
            p.uid == key.package_uid
                && p.attempt == key.package_attempt
                && p.shards
                    .get(key.shard as usize)
                    .is_some_and(|s| s.state == ShardState::Completed && s.completion_persisted)
        })
    }

    /// Takes in one lease report from `worker` at `now`.
    pub fn report(&mut self, worker: &str, report: &LeaseReport, now: Millis) -> ReportOutcome {
        self.report_counted_at(worker, report, now, now)
    }

    /// Takes in one lease report from `worker` at `now`, its counters taken at `counted_at`
    /// (≤ `now`: the instant of the progress sample).
    pub fn report_counted_at(
        &mut self,
        worker: &str,
        report: &LeaseReport,
        now: Millis,
        counted_at: Millis,
    ) -> ReportOutcome {
        let ttl = self.ttl;
        let key = &report.key;
        let pkey = ObjectKey::new(&key.namespace, &key.package);
        let Some(p) = self.packages.get_mut(&pkey) else { return ReportOutcome::Revoke };
        if p.uid != key.package_uid || p.attempt != key.package_attempt {
            return ReportOutcome::Revoke;
        }
        let backoff_limit = p.backoff_limit;
        let suspended = p.suspended;
        let Some(shard) = p.shards.get_mut(key.shard as usize) else { return ReportOutcome::Revoke };
        if report.done && shard.state == ShardState::Completed {
            return ReportOutcome::AlreadyCompleted;
        }
        let resumes_lapsed = shard.lapsed_lease_of(worker, key.lease_epoch);
        let (revoking, adopting) = match &mut shard.state {
            ShardState::Leased(l) if l.worker == worker && l.epoch == Some(key.lease_epoch) => (l.revoking, false),
            ShardState::Leased(l) if l.worker == worker && l.epoch.is_none() => {
                l.epoch = Some(key.lease_epoch);
                (l.revoking, true)
            }
            // A lease of an earlier leader (a newer epoch than any granted here), or the lease
            // that ran out last, resumed by its worker while nobody else has the shard.
            ShardState::Pending if !suspended && (key.lease_epoch > shard.epoch || resumes_lapsed) => {
                shard.state = ShardState::Leased(LeaseState {
                    worker: worker.to_owned(),
                    epoch: Some(key.lease_epoch),
                    expires: now + ttl,
                    revoking: false,
                });
                (false, true)
            }
            _ => return ReportOutcome::Revoke,
        };
        shard.lapsed = None;
        if adopting {
            // A lease of an earlier leader: its cumulative counters are the shard's whole count.
            // The status lists every started shard with its counters (and the package's base
            // leaves them out), so a shard it does not list had counted nothing then.
            shard.epoch = shard.epoch.max(key.lease_epoch);
            // It was leased at least once, whatever the status knew: once started it stays in
            // the status's active list, with its counters, until it completes.
            shard.leases = shard.leases.max(1);
        }
        shard.merge_counters(&report.counters);
        shard.take_resume(report.checkpoint, report.frontier, &report.pending);
        shard.merge_failures(&report.failures);
        let outcome = if report.done {
            shard.state = ShardState::Completed;
            shard.close_failures();
            ReportOutcome::Completed
        } else if let Some(error) = &report.error {
            shard.errors += 1;
            shard.last_error = Some(error.clone());
            shard.close_failures();
            let exhausted = shard.errors > backoff_limit;
            shard.state = if exhausted { ShardState::Failed } else { ShardState::Pending };
            ReportOutcome::ShardFailed { exhausted }
        } else if revoking || report.released {
            // The lease's final report: the shard may go to another worker at once.
            shard.state = ShardState::Pending;
            shard.close_failures();
            if revoking { ReportOutcome::Revoke } else { ReportOutcome::Released }
        } else {
            if let ShardState::Leased(l) = &mut shard.state {
                l.expires = now + ttl;
            }
            ReportOutcome::Renewed
        };
        p.sample_rate(counted_at.min(now));
        outcome
    }

    /// Returns leases not renewed in time to pending (at their checkpoint). Returns the expired
    /// leases with their workers.
    pub fn expire(&mut self, now: Millis) -> Vec<(String, LeaseKey)> {
        let mut expired = Vec::new();
        for p in self.packages.values_mut() {
            let mut touched = false;
            for (id, s) in p.shards.iter_mut().enumerate() {
                if let ShardState::Leased(l) = &s.state
                    && l.expires <= now
                {
                    let key = lease_key(p_key(&p.key), &p.uid, p.attempt, id as u32, l.epoch.unwrap_or(0));
                    expired.push((l.worker.clone(), key));
                    s.lapsed = Some((l.worker.clone(), l.epoch));
                    s.state = ShardState::Pending;
                    s.close_failures();
                    touched = true;
                }
            }
            if touched {
                p.sample_rate_clock(now);
            }
        }
        expired
    }

    /// Grants up to `free_slots` pending shards of the Destination's packages to `worker`:
    /// priority first (higher), then age (older), then shard id.
    pub fn grant(
        &mut self,
        worker: &str,
        namespace: &str,
        destination: &str,
        free_slots: u32,
        now: Millis,
    ) -> Vec<Grant> {
        let mut order: Vec<&ObjectKey> = self
            .packages
            .values()
            .filter(|p| p.key.namespace == namespace && p.destination == destination && !p.suspended)
            .map(|p| &p.key)
            .collect();
        order.sort_by(|a, b| {
            let (pa, pb) = (&self.packages[*a], &self.packages[*b]);
            pb.priority.cmp(&pa.priority).then(pa.created.cmp(&pb.created)).then(a.cmp(b))
        });
        let order: Vec<ObjectKey> = order.into_iter().cloned().collect();
        let mut grants = Vec::new();
        let ttl = self.ttl;
        for key in order {
            if grants.len() as u32 >= free_slots {
                break;
            }
            let Some(p) = self.packages.get_mut(&key) else { continue };
            for id in 0..p.shards.len() {
                if grants.len() as u32 >= free_slots {
                    break;
                }
                let s = &mut p.shards[id];
                if s.state != ShardState::Pending {
                    continue;
                }
                let epoch = (s.epoch + 1).max(now);
                s.epoch = epoch;
                s.lapsed = None;
                s.leases += 1;
                s.rebase_for_new_lease();
                s.state = ShardState::Leased(LeaseState {
                    worker: worker.to_owned(),
                    epoch: Some(epoch),
                    expires: now + ttl,
                    revoking: false,
                });
                grants.push(ShardLease {
                    key: lease_key(p_key(&p.key), &p.uid, p.attempt, id as u32, epoch),
                    shard: s.spec.clone(),
                    checkpoint: s.checkpoint,
                    frontier: s.frontier,
                    pending: s.pending.clone(),
                    counters: s.counters.clone(),
                    datum: (&p.datum).into(),
                    dead_letter_path: p.dead_letter_path.clone(),
                    only_offsets: s.only_offsets.clone(),
                });
            }
        }
        grants
    }

    /// The Destination's work left as `worker` sees it: its pending shards and their bytes, the
    /// bytes left in leased shards and in those `worker` holds (of packages not suspended;
    /// leases being revoked are not counted as held). [`Work::room`] says how many more shards
    /// it may take.
    pub fn work(&self, worker: &str, namespace: &str, destination: &str) -> Work {
        let mut work = Work::default();
        for s in self.packages_of(namespace, destination).filter(|p| !p.suspended).flat_map(|p| &p.shards) {
            let left = s.bytes.saturating_sub(s.bytes_done());
            match &s.state {
                ShardState::Pending => {
                    work.pending += 1;
                    work.pending_bytes += left;
                }
                ShardState::Leased(l) => {
                    work.leased_left += left;
                    if l.worker == worker && !l.revoking {
                        work.held_left += left;
                    }
                }
                ShardState::Completed | ShardState::Failed => {}
            }
        }
        work
    }

    /// Pre-emption: when the Destination has pending shards of a higher priority than one of
    /// `worker`'s leases, and fewer leases are already being revoked for them, marks the
    /// lowest-priority such lease revoking and returns its key.
    pub fn preempt(&mut self, worker: &str, namespace: &str, destination: &str) -> Option<LeaseKey> {
        let top_pending = self
            .packages_of(namespace, destination)
            .filter(|p| !p.suspended && p.shards.iter().any(|s| s.state == ShardState::Pending))
            .map(|p| p.priority)
            .max()?;
        let pending_above = |prio: i32, table: &LeaseTable| -> (usize, usize) {
            let mut pending = 0;
            let mut revoking = 0;
            for p in table.packages_of(namespace, destination) {
                for s in &p.shards {
                    match &s.state {
                        ShardState::Pending if p.priority > prio && !p.suspended => pending += 1,
                        ShardState::Leased(l) if l.revoking && p.priority < top_pending && !p.suspended => {
                            revoking += 1
                        }
                        _ => {}
                    }
                }
            }
            (pending, revoking)
        };
        // The worker's lowest-priority live lease, youngest package first, highest shard.
        let victim = self
            .packages_of(namespace, destination)
            .filter(|p| p.priority < top_pending)
            .flat_map(|p| {
                p.shards.iter().enumerate().filter_map(move |(id, s)| match &s.state {
                    ShardState::Leased(l) if l.worker == worker && !l.revoking => {
                        Some((p.priority, p.created, p.key.clone(), id))
                    }
                    _ => None,
                })
            })
            .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.3.cmp(&a.3)))?;
        let (pending, revoking) = pending_above(victim.0, self);
        if revoking >= pending {
            return None;
        }
        let p = self.packages.get_mut(&victim.2)?;
        let (uid, attempt) = (p.uid.clone(), p.attempt);
        let ShardState::Leased(l) = &mut p.shards[victim.3].state else { return None };
        l.revoking = true;
        Some(lease_key(p_key(&victim.2), &uid, attempt, victim.3 as u32, l.epoch.unwrap_or(0)))
    }

    /// Keys of `worker`'s leases that are being revoked (sent again until the final report).
    pub fn revoking_of(&self, worker: &str, namespace: &str, destination: &str) -> Vec<LeaseKey> {
        let mut out = Vec::new();
        for p in self.packages_of(namespace, destination) {
            for (id, s) in p.shards.iter().enumerate() {
                if let ShardState::Leased(l) = &s.state
                    && l.worker == worker
                    && l.revoking
                {
                    out.push(lease_key(p_key(&p.key), &p.uid, p.attempt, id as u32, l.epoch.unwrap_or(0)));
                }
            }
        }
        out
    }

    /// Ends every lease of `worker` at once (its process is known to have ended): the shards
    /// are pending again from their last report. Returns the ended leases.
    pub fn release_worker(&mut self, worker: &str) -> Vec<LeaseKey> {
        let mut ended = Vec::new();
        for p in self.packages.values_mut() {
            for (id, s) in p.shards.iter_mut().enumerate() {
                if let ShardState::Leased(l) = &s.state
                    && l.worker == worker
                {
                    ended.push(lease_key(p_key(&p.key), &p.uid, p.attempt, id as u32, l.epoch.unwrap_or(0)));
                    s.state = ShardState::Pending;
                    s.close_failures();
                }
            }
        }
        ended
    }

    /// Ends the leases of `worker` on the Destination that its heartbeat did not report: a
    /// worker reports every lease it holds, so one it leaves out is one it never got (the
    /// answer granting it was lost) or no longer has. The shards are pending again at once.
    pub fn release_unreported(
        &mut self,
        worker: &str,
        namespace: &str,
        destination: &str,
        reported: &[LeaseKey],
    ) -> Vec<LeaseKey> {
        let mut ended = Vec::new();
        for p in self.packages.values_mut().filter(|p| p.key.namespace == namespace && p.destination == destination) {
            for (id, s) in p.shards.iter_mut().enumerate() {
                let ShardState::Leased(l) = &s.state else { continue };
                if l.worker != worker {
                    continue;
                }
                let held = reported.iter().any(|k| {
                    k.package == p.key.name
                        && k.package_uid == p.uid
                        && k.package_attempt == p.attempt
                        && k.shard as usize == id
                        && l.epoch.is_none_or(|e| e == k.lease_epoch)
                });
                if !held {
                    ended.push(lease_key(p_key(&p.key), &p.uid, p.attempt, id as u32, l.epoch.unwrap_or(0)));
                    s.state = ShardState::Pending;
                    s.close_failures();
                }
            }
        }
        ended
    }

    /// Whether `worker` holds a lease of a package of the Destination (revoking ones included).
    pub fn holds(&self, worker: &str, namespace: &str, destination: &str) -> bool {
        self.packages
            .values()
            .filter(|p| p.key.namespace == namespace && p.destination == destination)
            .flat_map(|p| &p.shards)
            .any(|s| matches!(&s.state, ShardState::Leased(l) if l.worker == worker))
    }

    /// Records `worker` has left to send of its leases of the Destination (revoking ones
    /// included): each shard's bytes left times its package's records per byte so far. `None`
    /// when it holds none, or when one of them cannot tell (no progress yet, or a shard whose
    /// position is not a byte offset).
    pub fn records_left(&self, worker: &str, namespace: &str, destination: &str) -> Option<u64> {
        let mut left = 0.0;
        let mut any = false;
        for p in self.packages_of(namespace, destination) {
            let mut held =
                p.shards.iter().filter(|s| matches!(&s.state, ShardState::Leased(l) if l.worker == worker)).peekable();
            if held.peek().is_none() {
                continue;
            }
            let per_byte = p.records_per_byte()?;
            for s in held {
                left += s.bytes_left()? as f64 * per_byte;
            }
            any = true;
        }
        any.then_some(left.ceil() as u64)
    }

    /// Live leases of `worker` (not revoking).
    pub fn leases_of(&self, worker: &str) -> u32 {
        self.packages
            .values()
            .flat_map(|p| &p.shards)
            .filter(|s| matches!(&s.state, ShardState::Leased(l) if l.worker == worker && !l.revoking))
            .count() as u32
    }

    /// Every package key.
    pub fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.packages.keys()
    }
}

fn p_key(k: &ObjectKey) -> (&str, &str) {
    (&k.namespace, &k.name)
}

fn lease_key((namespace, package): (&str, &str), uid: &str, attempt: u32, shard: u32, epoch: u64) -> LeaseKey {
    LeaseKey {
        namespace: namespace.to_owned(),
        package: package.to_owned(),
        package_uid: uid.to_owned(),
        shard,
        package_attempt: attempt,
        lease_epoch: epoch,
    }
}
