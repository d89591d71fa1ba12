//! The delivery pipeline of a worker: shard reader → request builder → limiter → sender → ack
//! tracker and dead-letter writer, for several leases at once. All leases share one limiter
//! (first attempts and retries alike), one pool of in-flight slots (`maxInFlight`) and one
//! HTTP client; each lease has its own ack tracker and dead-letter file.

mod lease;
mod progress;

pub use lease::Records;
pub use progress::{FailureTally, LeaseProgress};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::decode::FormatSpec;
use crate::limiter::{Limiter, Rate};
use crate::metrics::Metrics;
use crate::protocol::{LeaseCounters, LeaseKey};
use crate::request::RequestBuilder;
use crate::send::{Auth, AuthError, Both, ClientError, CredentialWatch, HttpClient, SendConfig, SendObserver, Sender};
use crate::shard::ShardSpec;
use crate::source::{Source, SourceError, parse_url};

/// The send stack could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("failed to build the HTTP client: {0}")]
    Client(#[from] ClientError),
    #[error("failed to prepare authentication: {0}")]
    Auth(#[from] AuthError),
}

/// One lease to deliver.
#[derive(Debug, Clone)]
pub struct LeaseWork {
    pub key: LeaseKey,
    pub shard: ShardSpec,
    /// Records before this position are already acknowledged and skipped.
    pub checkpoint: u64,
    /// An earlier lease read up to here: records between `checkpoint` and `frontier` are
    /// skipped unless in `pending` (0: nothing to skip).
    pub frontier: u64,
    /// Records an earlier lease read and did not acknowledge: sent again, counted `resent`.
    pub pending: Vec<u64>,
    /// Counters reported by earlier leases of the shard.
    pub base: LeaseCounters,
    pub format: FormatSpec,
    pub builder: Arc<RequestBuilder>,
    /// Directory URL (file:// or hdfs://) of the package's dead letters.
    pub dead_letter_dir: String,
    /// Only these offsets are sent when not empty.
    pub only_offsets: Vec<u64>,
}

/// What every lease task shares.
pub(crate) struct Shared {
    sender: RwLock<Arc<Sender>>,
    /// The credentials in use, kept across rebuilt senders (see `send::credentials`).
    credentials: Arc<CredentialWatch>,
    /// Told of every attempt and throttle: the metrics, and whatever else watches.
    observer: RwLock<Arc<dyn SendObserver>>,
    slots: Arc<Semaphore>,
    slot_count: Mutex<usize>,
    limiter: Arc<Limiter>,
    metrics: Arc<Metrics>,
    gate: watch::Receiver<bool>,
    worker: String,
    checkpoint_interval: Duration,
    sources: Mutex<HashMap<String, Source>>,
    lease_ended: Notify,
}

impl Shared {
    fn sender(&self) -> Arc<Sender> {
        self.sender.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// One source per filesystem, shared by the leases reading it.
    fn source_for(&self, url: &str) -> Result<Source, SourceError> {
        let parsed = parse_url(url)?;
        let base = format!("{}://{}", parsed.scheme, parsed.authority);
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = sources.get(&base) {
            return Ok(s.clone());
        }
        let source = Source::for_url(url)?;
        sources.insert(base, source.clone());
        Ok(source)
    }
}

/// A running lease.
#[derive(Debug)]
pub struct LeaseHandle {
    pub key: LeaseKey,
    /// The counters the lease was granted with.
    pub base: LeaseCounters,
    stop: CancellationToken,
    progress: watch::Receiver<LeaseProgress>,
    task: JoinHandle<()>,
}

impl LeaseHandle {
    /// Stops reading; in-flight records still complete and the final checkpoint is published.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// The latest published progress.
    pub fn progress(&self) -> LeaseProgress {
        self.progress.borrow().clone()
    }

    /// Waits until the progress changes (or the task is gone).
    pub async fn changed(&mut self) {
        let _ = self.progress.changed().await;
    }

    /// Aborts the task at once (drain deadline passed); in-flight records are abandoned.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// True once the task has ended.
    pub fn is_finished(&self) -> bool {
        self.progress.borrow().finished || self.task.is_finished()
    }
}

/// The worker's delivery pipeline.
#[derive(Clone)]
pub struct Pipeline {
    shared: Arc<Shared>,
    gate: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("worker", &self.shared.worker).finish_non_exhaustive()
    }
}

fn build_sender(
    config: &SendConfig,
    limiter: &Arc<Limiter>,
    observer: Arc<dyn SendObserver>,
    metrics: &Metrics,
    credentials: &Arc<CredentialWatch>,
) -> Result<Sender, PipelineError> {
    let client = HttpClient::new(config)?;
    let auth = Auth::new(&config.auth, client.clone())?;
    Ok(Sender::new(config.clone(), client, auth, limiter.clone(), observer)
        .with_partner(metrics.partner.clone())
        .with_credentials(credentials.clone()))
}

impl Pipeline {
    /// A pipeline sending with `config`, limited to `rate` (unlimited when `None`).
    pub fn new(
        worker: impl Into<String>,
        config: &SendConfig,
        rate: Option<Rate>,
        metrics: Arc<Metrics>,
        checkpoint_interval: Duration,
    ) -> Result<Self, PipelineError> {
        let limiter = Arc::new(Limiter::unlimited());
        limiter.set_rate(rate);
        metrics.share.set(rate.map_or(0, |r| i64::try_from(r.per_second).unwrap_or(i64::MAX)));
        let observer: Arc<dyn SendObserver> = metrics.clone();
        let client = HttpClient::new(config)?;
        let auth = Auth::new(&config.auth, client.clone())?;
        let credentials =
            Arc::new(CredentialWatch::new(config.auth.clone(), auth, client).with_events(metrics.clone()));
        let sender = build_sender(config, &limiter, observer.clone(), &metrics, &credentials)?;
        let slots = config.max_in_flight.max(1);
        let (gate_tx, gate_rx) = watch::channel(true);
        let shared = Arc::new(Shared {
            sender: RwLock::new(Arc::new(sender)),
            credentials,
            observer: RwLock::new(observer),
            slots: Arc::new(Semaphore::new(slots)),
            slot_count: Mutex::new(slots),
            limiter,
            metrics,
            gate: gate_rx,
            worker: worker.into(),
            checkpoint_interval,
            sources: Mutex::new(HashMap::new()),
            lease_ended: Notify::new(),
        });
        Ok(Self { shared, gate: Arc::new(gate_tx) })
    }

    /// The limiter every attempt draws from.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.shared.limiter
    }

    /// The worker's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// The credentials every attempt uses, and whether the partner refuses them.
    pub fn credentials(&self) -> &Arc<CredentialWatch> {
        &self.shared.credentials
    }

    /// The current send settings.
    pub fn send_config(&self) -> SendConfig {
        self.shared.sender().config().clone()
    }

    /// Replaces the send settings without a restart: new client, auth and retry policy for every
    /// attempt from now on (attempts already running finish with the old ones); same limiter.
    pub fn set_send_config(&self, config: &SendConfig) -> Result<(), PipelineError> {
        let observer = self.shared.observer.read().unwrap_or_else(PoisonError::into_inner).clone();
        let sender =
            build_sender(config, &self.shared.limiter, observer, &self.shared.metrics, &self.shared.credentials)?;
        *self.shared.sender.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(sender);
        self.set_max_in_flight(config.max_in_flight);
        Ok(())
    }

    /// Tells `observer` of every attempt and throttle from now on, besides the metrics.
    pub fn observe(&self, observer: Arc<dyn SendObserver>) -> Result<(), PipelineError> {
        let metrics: Arc<dyn SendObserver> = self.shared.metrics.clone();
        *self.shared.observer.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Both(metrics, observer));
        self.set_send_config(&self.send_config())
    }

    /// Changes how many requests may be in flight across all leases.
    pub fn set_max_in_flight(&self, max: usize) {
        let max = max.max(1);
        let mut count = self.shared.slot_count.lock().unwrap_or_else(PoisonError::into_inner);
        if max > *count {
            self.shared.slots.add_permits(max - *count);
        } else if max < *count {
            // Take the surplus slots out as they come free.
            let surplus = u32::try_from(*count - max).unwrap_or(u32::MAX);
            let slots = self.shared.slots.clone();
            tokio::spawn(async move {
                if let Ok(permits) = slots.acquire_many_owned(surplus).await {
                    permits.forget();
                }
            });
        }
        *count = max;
    }

    /// The most requests in flight.
    pub fn max_in_flight(&self) -> usize {
        *self.shared.slot_count.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a rate share (requests/s and burst; `None` = unlimited).
    pub fn set_rate(&self, rate: Option<Rate>) {
        self.shared.limiter.set_rate(rate);
        self.shared.metrics.share.set(rate.map_or(0, |r| i64::try_from(r.per_second).unwrap_or(i64::MAX)));
    }

    /// Lets leases take new records (true) or holds them (false: the coordinator is unreachable).
    pub fn set_accepting(&self, accepting: bool) {
        self.gate.send_if_modified(|open| {
            let changed = *open != accepting;
            *open = accepting;
            changed
        });
    }

    /// Whether leases take new records now.
    pub fn accepting(&self) -> bool {
        *self.gate.borrow()
    }

    /// Completes when a lease task ends (or one ended since the last call).
    pub fn lease_ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        async move { shared.lease_ended.notified().await }
    }

    /// Starts delivering a lease, reading its shard.
    pub fn start(&self, work: LeaseWork) -> LeaseHandle {
        self.spawn(work, None)
    }

    /// Starts delivering a lease over `records` instead of its shard's reader (the shard's URL
    /// and kind still say where it ends): the send loop as it runs in production, fed by a test
    /// or a benchmark.
    pub fn start_with_records(&self, work: LeaseWork, records: Records) -> LeaseHandle {
        self.spawn(work, Some(records))
    }

    fn spawn(&self, work: LeaseWork, records: Option<Records>) -> LeaseHandle {
        let stop = CancellationToken::new();
        let initial =
            LeaseProgress { checkpoint: work.checkpoint, counters: work.base.clone(), ..LeaseProgress::default() };
        let (tx, rx) = watch::channel(initial);
        let key = work.key.clone();
        let base = work.base.clone();
        self.shared.metrics.active_leases.inc();
        // Every line about this lease carries its package and shard (and, from the caller's
        // span, the Destination).
        let span = tracing::info_span!(
            "lease",
            namespace = %key.namespace,
            package = %key.package,
            shard = key.shard,
            attempt = key.package_attempt
        );
        let task = tokio::spawn(lease::run(self.shared.clone(), work, records, stop.clone(), tx).instrument(span));
        LeaseHandle { key, base, stop, progress: rx, task }
    }
}
