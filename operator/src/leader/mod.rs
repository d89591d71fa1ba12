//! Leader election on a `coordination.k8s.io/v1` Lease: only the replica holding it runs the
//! controllers, writes status and serves the coordinator.
//!
//! Each process has its own identity (pod name plus a random suffix, so a restarted container
//! is a new candidate) and its own field manager. Every write of the Lease is a replace guarded
//! by the resourceVersion just read, so of two replicas racing for a free Lease exactly one
//! wins. A leader counts itself leader only until [`ElectionConfig::renew_deadline`] after the
//! start of its last successful renewal — shorter than the Lease duration a candidate waits
//! before taking over — and [`Leadership::is_leading`] checks that deadline at the instant of
//! each use, so a replica that is not sure it holds the Lease grants nothing (fencing).
//! The pure rules are in [`decide`]; this module does the I/O.

mod decide;
mod elector;
pub mod label;

pub use decide::{ConfigError, ElectionConfig, LeaseRecord, Observation, Step, decide};
pub use elector::{LeaderError, start};

use tokio::sync::watch;
use tokio::time::Instant;

/// Name of the Lease.
pub const LEASE_NAME: &str = "courier-operator-leader";

/// This replica's view of its leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderState {
    /// Not leading (or not sure of it any more).
    Following,
    /// Leading until `until` unless renewed; `term` is the Lease's transition count after this
    /// replica took it (it identifies the leadership term to workers).
    Leading { until: Instant, term: u64 },
}

/// A cheap handle on this replica's leadership, shared by the controllers' term loop, the
/// status writer and the coordinator's server.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<LeaderState>,
}

impl Leadership {
    /// A handle fed by `rx`.
    pub fn new(rx: watch::Receiver<LeaderState>) -> Self {
        Leadership { rx }
    }

    /// Always leading (election off: a single replica), term 0.
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(LeaderState::Leading { until: far_future(), term: 0 });
        // The sender lives as long as the process, so receivers never see a close.
        tokio::spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        Leadership { rx }
    }

    /// A handle driven by hand (tests): the sender sets the state.
    pub fn manual(leading: bool) -> (watch::Sender<LeaderState>, Self) {
        let state =
            if leading { LeaderState::Leading { until: far_future(), term: 1 } } else { LeaderState::Following };
        let (tx, rx) = watch::channel(state);
        (tx, Leadership { rx })
    }

    /// True when this replica leads right now: the state says so *and* its deadline has not
    /// passed. Checked at each answer, so the time between a missed renewal and the elector
    /// noticing it never counts as leading.
    pub fn is_leading(&self) -> bool {
        self.term().is_some()
    }

    /// The current term, when leading right now.
    pub fn term(&self) -> Option<u64> {
        match *self.rx.borrow() {
            LeaderState::Leading { until, term } if Instant::now() < until => Some(term),
            _ => None,
        }
    }

    /// Waits until leading (`true`) or following (`false`). A closed channel counts as
    /// following.
    pub async fn wait_for(&mut self, leading: bool) {
        loop {
            let state = *self.rx.borrow_and_update();
            let now_leading = match state {
                LeaderState::Leading { until, .. } => Instant::now() < until,
                LeaderState::Following => false,
            };
            if now_leading == leading {
                return;
            }
            let deadline = match state {
                LeaderState::Leading { until, .. } if !leading => Some(until),
                _ => None,
            };
            tokio::select! {
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        if !leading {
                            return;
                        }
                        std::future::pending::<()>().await;
                    }
                }
                () = sleep_until_opt(deadline) => {}
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An instant no run reaches (about 30 years ahead).
fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30)
}

/// This process's identity in the election: the pod name (or host name) and a random suffix.
pub fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "courier-operator".to_owned());
    format!("{base}_{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn leading_ends_at_the_deadline_even_when_nobody_says_so() {
        let until = Instant::now() + Duration::from_secs(7);
        let (_tx, rx) = watch::channel(LeaderState::Leading { until, term: 3 });
        let mut l = Leadership::new(rx);
        assert_eq!(l.term(), Some(3));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(l.is_leading());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!l.is_leading(), "not sure any more: not leading");
        tokio::time::timeout(Duration::from_millis(1), l.wait_for(false)).await.expect("returns at once");
    }

    #[tokio::test(start_paused = true)]
    async fn wait_for_following_wakes_at_the_deadline() {
        let until = Instant::now() + Duration::from_secs(7);
        let (_tx, rx) = watch::channel(LeaderState::Leading { until, term: 1 });
        let mut l = Leadership::new(rx);
        let started = Instant::now();
        l.wait_for(false).await;
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[test]
    fn identities_differ_per_process_start() {
        assert_ne!(identity(), identity());
    }
}
