//! A Destination's quota (`rateLimit.requestsPerDay`) across its workers (pure).
//!
//! The coordinator owns the period's budget and hands each worker an *allowance*: the number of
//! requests it may start in the period, cumulative. What a worker holds counts as used
//! ([`Holder::held`]: the largest of what it was granted, what it reports enforcing and what it
//! reports having used) until the period ends — also when it dies, since what it started after
//! its last report cannot be known (its entry stays, frozen). So at every instant
//!
//! > Σ held over every worker process of the period ≤ the quota,
//!
//! and no worker ever starts a request beyond its allowance, so the partner sees at most the
//! quota in a period.
//!
//! **Across leaders.** A coordinator never grants beyond what it has *read back* from the
//! Destination's `status.quota.reserved` ([`QuotaLedger::observe_persisted`]); it asks for more
//! ahead of need ([`QuotaLedger::wanted_reservation`]). A new leader starts from the reservation
//! it reads (fresh) from the API: everything the earlier leader granted is within it. Workers
//! reporting allowances of the earlier leader are counted inside that figure (`inherited`), and
//! only what this leader grants beyond them is added.
//!
//! **Allowance size.** A worker with work gets about [`ALLOWANCE_SECONDS`] of its rate share
//! ahead of what it has used, topped up at every heartbeat; a worker without work (or
//! draining) is lowered to what it has used, which frees the rest as soon as it reports
//! enforcing that. So quota held unused by an idle worker returns within a heartbeat or two.

use std::collections::BTreeMap;

use courier_core::protocol::{QuotaAllowance, QuotaReport};
use courier_core::quota::Period;

/// Seconds of its rate share a working worker is granted ahead of what it used.
pub const ALLOWANCE_SECONDS: u64 = 2;
/// The reservation is renewed when less than this many seconds of the Destination's rate are
/// left in it …
pub const RESERVE_LOW_SECONDS: u64 = 3;
/// … to this many seconds ahead.
pub const RESERVE_AHEAD_SECONDS: u64 = 10;

/// One worker process's allowance in the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holder {
    /// The allowance last sent to it.
    pub granted: u64,
    /// The allowance it reported enforcing.
    pub applied: u64,
    /// Requests it reported having started.
    pub used: u64,
    /// What it held from an earlier leader when first heard of in this term (already within
    /// the restored reservation).
    pub inherited: u64,
    /// `used` when first heard of in this term (for the usage shown).
    pub inherited_used: u64,
    /// Gone (expired or restarted): frozen, still counted.
    pub gone: bool,
}

impl Holder {
    /// What counts against the quota.
    pub fn held(&self) -> u64 {
        self.granted.max(self.applied).max(self.used)
    }
}

/// The quota of one Destination in one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLedger {
    pub limit: u64,
    pub period: Period,
    /// Worker processes of the period, by (pod name, incarnation).
    pub holders: BTreeMap<(String, u64), Holder>,
    /// Restored from status at the start of the term: the earlier leader's reservation.
    /// `None` until read: nothing is granted before.
    pub base: Option<u64>,
    /// Usage the status showed when restored.
    pub base_used: u64,
    /// The highest reservation read back from status in this period.
    pub persisted: u64,
}

/// What the Destination's status shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaFigures {
    pub period: Period,
    pub limit: u64,
    pub used: u64,
    pub remaining: u64,
    /// The reservation to write (at least what is persisted).
    pub reserved: u64,
    /// Whether nothing is left to grant.
    pub exhausted: bool,
}

impl QuotaLedger {
    /// A ledger of `limit` requests in `period`, not restored yet.
    pub fn new(limit: u64, period: Period) -> Self {
        QuotaLedger { limit, period, holders: BTreeMap::new(), base: None, base_used: 0, persisted: 0 }
    }

    /// Moves to `period` (a new one starts empty: the reservation must be written anew) and
    /// takes a changed limit.
    pub fn roll(&mut self, limit: u64, period: Period) {
        self.limit = limit;
        if period != self.period && period.start_unix_ms > self.period.start_unix_ms {
            let restored = self.base.is_some();
            *self = QuotaLedger::new(limit, period);
            // A leader that had restored the last period knows this one starts at zero.
            if restored {
                self.base = Some(0);
            }
        }
    }

    /// Takes the Destination's `status.quota` as read: (period start, reserved, used). The first
    /// reading of a term restores the base; every reading raises what may be granted.
    pub fn observe_persisted(&mut self, status: Option<(u64, u64, u64)>) {
        let (reserved, used) = match status {
            Some((start, reserved, used)) if start == self.period.start_unix_ms => (reserved, used),
            _ => (0, 0),
        };
        if self.base.is_none() {
            self.base = Some(reserved);
            self.base_used = used;
        }
        self.persisted = self.persisted.max(reserved);
    }

    /// Everything granted or used in the period, as far as this leader can tell (an upper bound).
    pub fn committed(&self) -> u64 {
        let inherited: u64 = self.holders.values().map(|h| h.inherited).sum();
        let added: u64 = self.holders.values().map(|h| h.held().saturating_sub(h.inherited)).sum();
        self.base.unwrap_or(0).max(inherited) + added
    }

    /// Requests started in the period, as reported.
    pub fn used(&self) -> u64 {
        self.base_used + self.holders.values().map(|h| h.used.saturating_sub(h.inherited_used)).sum::<u64>()
    }

    /// Takes a worker's report (`None`: it has no allowance).
    pub fn observe(&mut self, worker: &str, incarnation: u64, report: Option<QuotaReport>) {
        let report = report.filter(|r| r.period_start_unix_ms == self.period.start_unix_ms).unwrap_or_default();
        let key = (worker.to_owned(), incarnation);
        match self.holders.get_mut(&key) {
            Some(h) => {
                h.applied = report.allowed;
                h.used = h.used.max(report.used);
            }
            None => {
                let held = report.allowed.max(report.used);
                let h = Holder {
                    granted: 0,
                    applied: report.allowed,
                    used: report.used,
                    inherited: held,
                    inherited_used: report.used,
                    gone: false,
                };
                self.holders.insert(key, h);
            }
        }
    }

    /// A worker process has ended (expired or restarted): what it held stays counted.
    pub fn gone(&mut self, worker: &str, incarnation: u64) {
        if let Some(h) = self.holders.get_mut(&(worker.to_owned(), incarnation)) {
            h.gone = true;
        }
    }

    /// Decides the allowance of a worker (recorded as sent). `rate` is its rate share
    /// (requests/s); `working`: it has work and is not draining.
    pub fn allowance(&mut self, worker: &str, incarnation: u64, rate: u32, working: bool) -> QuotaAllowance {
        let cap = self.limit.min(self.persisted);
        let committed = self.committed();
        let restored = self.base.is_some();
        let key = (worker.to_owned(), incarnation);
        let h = self.holders.entry(key).or_default();
        let requests = if !working {
            // Give back what it has not used (freed once it reports enforcing this).
            h.used
        } else if !restored {
            // Nothing is known of the period yet: it keeps what it has, no more.
            h.applied.max(h.used)
        } else {
            let want = h.used + (u64::from(rate) * ALLOWANCE_SECONDS).max(1);
            let free = cap.saturating_sub(committed);
            let current = h.granted.max(h.applied);
            if want <= current { current } else { current + (want - current).min(free) }
        };
        h.granted = requests;
        QuotaAllowance {
            period_start_unix_ms: self.period.start_unix_ms,
            period_end_unix_ms: self.period.end_unix_ms,
            requests,
        }
    }

    /// The reservation to have persisted now: when less than [`RESERVE_LOW_SECONDS`] of
    /// `rate` (the Destination's) is left in the persisted one, [`RESERVE_AHEAD_SECONDS`] more.
    pub fn wanted_reservation(&self, rate: u32) -> u64 {
        let committed = self.committed();
        let low = (committed + u64::from(rate) * RESERVE_LOW_SECONDS).min(self.limit);
        if self.base.is_none() || self.persisted >= low {
            return self.persisted;
        }
        (committed + u64::from(rate) * RESERVE_AHEAD_SECONDS).min(self.limit).max(self.persisted)
    }

    /// What the status shows.
    pub fn figures(&self, rate: u32) -> QuotaFigures {
        let committed = self.committed();
        let remaining = self.limit.saturating_sub(committed);
        QuotaFigures {
            period: self.period,
            limit: self.limit,
            used: self.used().min(self.limit.max(committed)),
            remaining,
            reserved: self.wanted_reservation(rate),
            exhausted: self.base.is_some() && remaining == 0,
        }
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
