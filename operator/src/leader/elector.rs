//! The election loop: reads the Lease, decides with [`decide`], writes with a
//! resourceVersion-guarded replace, and publishes [`LeaderState`].

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::decide::{ConfigError, ElectionConfig, LeaseRecord, Observation, Step, decide};
use super::{LEASE_NAME, LeaderState, Leadership};

/// Leadership could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("unsafe leader election settings: {0}")]
    Config(#[from] ConfigError),
}

/// Starts electing in `namespace` as `identity`; returns the leadership handle at once. When
/// `stop` is cancelled the loop ends, and if this replica holds the Lease it is released
/// (after the handle already says `Following`), so another replica takes over at once.
pub fn start(
    client: Client,
    namespace: &str,
    identity: &str,
    config: ElectionConfig,
    stop: CancellationToken,
) -> Result<(Leadership, tokio::task::JoinHandle<()>), LeaderError> {
    config.validate()?;
    let (tx, rx) = watch::channel(LeaderState::Following);
    let elector = Elector {
        api: Api::namespaced(client, namespace),
        identity: identity.to_owned(),
        params: PostParams { field_manager: Some(field_manager(identity)), ..PostParams::default() },
        config,
        tx,
        observed: None,
    };
    let task = tokio::spawn(elector.run(stop));
    Ok((Leadership::new(rx), task))
}

/// A field manager per replica (at most 128 characters, as the apiserver requires).
fn field_manager(identity: &str) -> String {
    let name = format!("courier-operator/{identity}");
    name.chars().take(128).collect()
}

struct Elector {
    api: Api<Lease>,
    identity: String,
    params: PostParams,
    config: ElectionConfig,
    tx: watch::Sender<LeaderState>,
    observed: Option<Observation>,
}

fn record_of(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity,
        duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
        transitions: spec.lease_transitions.unwrap_or(0),
        resource_version: lease.resource_version().unwrap_or_default(),
    }
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl Elector {
    async fn run(mut self, stop: CancellationToken) {
        let released = released(self.api.clone());
        tokio::pin!(released);
        loop {
            let started = Instant::now();
            // A request the apiserver never answers (etcd unavailable, a restart under way)
            // must not hold the election up: the round is given up and the next one tries
            // again, and leadership lapses at its deadline as it would without an answer.
            if tokio::time::timeout(self.config.round_timeout(), self.round(started)).await.is_err() {
                tracing::warn!(identity = %self.identity, "a leader election round got no answer in time");
            }
            let wake = started + self.config.retry_period;
            let deadline = self.deadline();
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(wake) => {}
                () = sleep_until_opt(deadline) => {}
                // A follower tries at once when the leader gives the Lease up (it stops), not
                // at its next retry: the hand-over takes a watch event, not up to a retry period.
                Some(()) = released.next(), if deadline.is_none() => {}
            }
            self.expire_if_due();
        }
        self.release().await;
    }

    fn deadline(&self) -> Option<Instant> {
        match *self.tx.borrow() {
            LeaderState::Leading { until, .. } => Some(until),
            LeaderState::Following => None,
        }
    }

    /// Steps down when the deadline passed without a renewal.
    fn expire_if_due(&self) {
        if let Some(until) = self.deadline()
            && Instant::now() >= until
        {
            tracing::warn!(identity = %self.identity, "could not renew the leader Lease in time: stepping down");
            self.tx.send_replace(LeaderState::Following);
        }
    }

    /// One read, decision and (maybe) write. `started` is before the read, so a successful
    /// write's deadline counts from before it reached the apiserver.
    async fn round(&mut self, started: Instant) {
        let current = match self.api.get_opt(LEASE_NAME).await {
            Ok(current) => current,
            Err(err) => {
                tracing::warn!(%err, "could not read the leader Lease");
                return;
            }
        };
        let record = current.as_ref().map(record_of);
        let now = Instant::now();
        let leading = self.deadline().is_some_and(|until| now < until);
        let step = decide(&self.identity, leading, record.as_ref(), &mut self.observed, now);
        let renewing = step == Step::Renew;
        let result = match step {
            Step::Create => self.create().await,
            Step::Acquire | Step::Renew => match current {
                Some(lease) => self.replace(lease, step == Step::Acquire).await,
                None => return,
            },
            Step::Follow { holder, .. } => {
                if self.deadline().is_some() {
                    tracing::warn!(%holder, "another replica holds the leader Lease: stepping down");
                    self.tx.send_replace(LeaderState::Following);
                }
                return;
            }
        };
        match result {
            Ok(lease) if renewing && self.deadline().is_none_or(|until| Instant::now() >= until) => {
                // The renewal got through only after leading had lapsed: the term is over for
                // everyone who asked meanwhile. The next round takes the Lease as a new term.
                tracing::warn!(identity = %self.identity, "renewed the leader Lease only after leading lapsed: taking it again as a new term");
                self.observed = Some(Observation { record: record_of(&lease), at: Instant::now() });
                self.tx.send_replace(LeaderState::Following);
            }
            Ok(lease) => {
                let term =
                    u64::try_from(lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0)).unwrap_or(0);
                let until = self.config.leading_until(started);
                let was = *self.tx.borrow();
                if !matches!(was, LeaderState::Leading { .. }) {
                    tracing::info!(identity = %self.identity, term, "acquired the leader Lease");
                }
                // Remember our own write so the next round sees no change by someone else.
                self.observed = Some(Observation { record: record_of(&lease), at: Instant::now() });
                self.tx.send_replace(LeaderState::Leading { until, term });
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Someone else wrote in between: they win; look again next round.
                tracing::debug!(identity = %self.identity, "lost a race for the leader Lease");
                if self.deadline().is_some() {
                    self.tx.send_replace(LeaderState::Following);
                }
            }
            Err(err) => tracing::warn!(%err, "could not write the leader Lease"),
        }
    }

    async fn create(&self) -> Result<Lease, kube::Error> {
        let now = now_micro();
        let lease = Lease {
            metadata: ObjectMeta { name: Some(LEASE_NAME.to_owned()), ..ObjectMeta::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(self.config.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(1),
                ..LeaseSpec::default()
            }),
        };
        self.api.create(&self.params, &lease).await
    }

    /// Replaces the Lease read (its resourceVersion guards the write): renews it, or takes it
    /// over (`acquire`), which counts a transition.
    async fn replace(&self, mut lease: Lease, acquire: bool) -> Result<Lease, kube::Error> {
        let now = now_micro();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if acquire {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            spec.acquire_time = Some(now.clone());
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(self.config.duration_seconds());
        spec.renew_time = Some(now);
        lease.metadata.managed_fields = None;
        self.api.replace(LEASE_NAME, &self.params, &lease).await
    }

    /// Gives the Lease up if this replica holds it. The handle says `Following` first.
    async fn release(&mut self) {
        let held = self.deadline().is_some();
        self.tx.send_replace(LeaderState::Following);
        if !held {
            return;
        }
        let lease = match self.api.get_opt(LEASE_NAME).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(%err, "could not read the leader Lease to release it");
                return;
            }
        };
        if record_of(&lease).holder() != Some(self.identity.as_str()) {
            return;
        }
        let mut lease = lease;
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now_micro());
        lease.metadata.managed_fields = None;
        match self.api.replace(LEASE_NAME, &self.params, &lease).await {
            Ok(_) => tracing::info!(identity = %self.identity, "released the leader Lease"),
            Err(err) => tracing::warn!(%err, "could not release the leader Lease"),
        }
    }
}

/// An item each time the watched Lease shows no holder (released).
fn released(api: Api<Lease>) -> impl futures::Stream<Item = ()> {
    let config = watcher::Config::default().fields(&format!("metadata.name={LEASE_NAME}"));
    watcher(api, config).default_backoff().applied_objects().filter_map(|lease| {
        futures::future::ready(match lease {
            Ok(lease) if record_of(&lease).holder().is_none() => Some(()),
            Ok(_) => None,
            Err(err) => {
                tracing::debug!(%err, "watching the leader Lease");
                None
            }
        })
    })
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
