//! Partner credentials that rotate under a running worker. The Destination's Secrets are
//! mounted as files the kubelet updates some time after the Secret changes (its sync period
//! plus its cache TTL: a minute or two). A partner that already switched to the new token
//! refuses the old one meanwhile, and that refusal says nothing about the record. So on a
//! refusal (a status of `retryPolicy.authFailureStatuses`) the worker re-reads the mounted
//! credentials at once: if they changed, the request goes again with the new ones; if not, new
//! sends of the Destination are held on this worker — no rate budget spent on refusals, one
//! probe now and then in case the refusal was the partner's passing fault — until the mount
//! changes or `retryPolicy.authGraceSeconds` have passed since the first refusal. After that,
//! refused records are dead-lettered with the partner's answer. A refusal ends when other
//! credentials are installed or an attempt is accepted. Without a source to re-read (a local
//! run with fixed credentials) there is nothing to wait for: a refusal is dead-lettered at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::auth::Auth;
use super::client::HttpClient;
use super::config::AuthConfig;

/// Shortest spacing of two reads of the mounted Secret while refused.
pub const READ_EVERY: Duration = Duration::from_secs(1);
/// Spacing of probes (one attempt with unchanged credentials) while refused: first, ceiling.
pub const PROBE_FIRST: Duration = Duration::from_secs(5);
pub const PROBE_MAX: Duration = Duration::from_secs(30);

/// Re-reads the credentials from where they are kept up to date (the mounted Secret files).
/// Errors are words without secret values.
pub trait CredentialSource: Send + Sync {
    fn read(&self) -> Result<AuthConfig, String>;
}

impl<F: Fn() -> Result<AuthConfig, String> + Send + Sync> CredentialSource for F {
    fn read(&self) -> Result<AuthConfig, String> {
        self()
    }
}

/// Told of changes of the credential state (the worker's metrics).
pub trait CredentialEvents: Send + Sync {
    /// An attempt was refused with `status`.
    fn refused(&self, _status: u16) {}
    /// Changed credentials were taken into use.
    fn reloaded(&self) {}
    /// New sends are held (true) or go again (false).
    fn holding(&self, _holding: bool) {}
}

struct NoEvents;
impl CredentialEvents for NoEvents {}

/// What a refusal means for the refused record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// Other credentials are in use now: send again at once.
    Retry,
    /// Wait (held by [`CredentialWatch::ready`]) for changed credentials, then send again.
    Wait,
    /// Refused for the whole grace (or nothing to wait for): dead-letter, after `waited`.
    GiveUp { waited: Duration },
}

/// What [`CredentialWatch::ready`] lets an attempt do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Nothing holds sends: go.
    Send,
    /// Sends are held, but this attempt is the probe that may go now.
    Probe,
    /// The stop signal came while waiting.
    Stopped,
}

/// A refusal under way: the first refused status and when it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub since: Instant,
}

struct State {
    config: AuthConfig,
    auth: Auth,
    client: HttpClient,
    /// Bumped whenever other credentials are installed.
    generation: u64,
    refusal: Option<Refusal>,
    held: bool,
    next_read: Instant,
    next_probe: Instant,
    probes: u32,
}

/// The credentials every send task of a worker uses, and whether the partner refuses them.
/// Shared across rebuilt senders. `Debug` shows the generation and the refusal, no value.
pub struct CredentialWatch {
    state: Mutex<State>,
    /// Mirrors `state.refusal.is_some()`: the hot path reads it without the lock.
    refused: AtomicBool,
    source: Mutex<Option<Arc<dyn CredentialSource>>>,
    changed: watch::Sender<u64>,
    events: Arc<dyn CredentialEvents>,
}

impl std::fmt::Debug for CredentialWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("CredentialWatch")
            .field("generation", &s.generation)
            .field("refusal", &s.refusal)
            .finish_non_exhaustive()
    }
}

impl CredentialWatch {
    /// Sends with `auth` (prepared from `config`; OAuth2 tokens fetched with `client`).
    pub fn new(config: AuthConfig, auth: Auth, client: HttpClient) -> Self {
        let now = Instant::now();
        let state = State {
            config,
            auth,
            client,
            generation: 0,
            refusal: None,
            held: false,
            next_read: now,
            next_probe: now,
            probes: 0,
        };
        Self {
            state: Mutex::new(state),
            refused: AtomicBool::new(false),
            source: Mutex::new(None),
            changed: watch::Sender::new(0),
            events: Arc::new(NoEvents),
        }
    }

    /// Reports state changes to `events`.
    #[must_use]
    pub fn with_events(mut self, events: Arc<dyn CredentialEvents>) -> Self {
        self.events = events;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where changed credentials are read from on a refusal (`None`: nowhere, a refusal is
    /// final).
    pub fn set_source(&self, source: Option<Arc<dyn CredentialSource>>) {
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = source;
    }

    fn source(&self) -> Option<Arc<dyn CredentialSource>> {
        self.source.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The credentials to send with now, and their generation (given back to
    /// [`CredentialWatch::refused`]).
    pub fn current(&self) -> (Auth, u64) {
        let s = self.lock();
        (s.auth.clone(), s.generation)
    }

    /// The refusal under way, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        if !self.refused.load(Ordering::Relaxed) {
            return None;
        }
        self.lock().refusal
    }

    /// Whether new sends are held now (a refusal within its grace).
    pub fn holding(&self) -> bool {
        self.refused.load(Ordering::Relaxed) && self.lock().held
    }

    /// Installs the credentials of a rebuilt send config. Other credentials than those in use
    /// end a refusal (held sends go at once); the same ones change nothing. True if they
    /// changed.
    pub fn install(&self, config: &AuthConfig, auth: Auth, client: HttpClient) -> bool {
        let mut s = self.lock();
        s.client = client;
        if *config == s.config {
            return false;
        }
        self.take(&mut s, config.clone(), auth);
        true
    }

    /// An attempt was accepted: the credentials work, a refusal is over.
    pub fn accepted(&self) {
        if self.refused.load(Ordering::Relaxed) {
            let mut s = self.lock();
            if s.refusal.take().is_some() {
                tracing::info!("the partner accepts the credentials again");
                self.refused.store(false, Ordering::Relaxed);
                self.set_held(&mut s, false);
                self.changed.send_modify(|g| *g += 1);
            }
        }
    }

    /// The partner refused (`status`) an attempt that carried the credentials of `generation`.
    /// Re-reads the source at once on the first refusal (then at most every [`READ_EVERY`]);
    /// `grace` is how long to wait for changed credentials from the first refusal.
    pub fn refused(&self, status: u16, generation: u64, grace: Duration, now: Instant) -> AuthDecision {
        self.events.refused(status);
        let mut s = self.lock();
        if s.generation != generation {
            // Another task installed other credentials since this attempt went out.
            return AuthDecision::Retry;
        }
        let first = s.refusal.is_none();
        if (first || now >= s.next_read) && self.reload(&mut s, now) {
            return AuthDecision::Retry;
        }
        let has_source = self.can_change(&s);
        let since = match s.refusal {
            Some(r) => r.since,
            None => {
                s.refusal = Some(Refusal { status, since: now });
                self.refused.store(true, Ordering::Relaxed);
                s.probes = 0;
                s.next_probe = now + PROBE_FIRST;
                if has_source && !grace.is_zero() {
                    tracing::warn!(
                        status,
                        grace_seconds = grace.as_secs(),
                        "partner refused credentials ({status}); waiting for the rotated Secret, new sends held"
                    );
                    self.set_held(&mut s, true);
                }
                now
            }
        };
        let waited = now.saturating_duration_since(since);
        if !has_source || waited >= grace {
            self.set_held(&mut s, false);
            return AuthDecision::GiveUp { waited };
        }
        AuthDecision::Wait
    }

    /// Waits, before an attempt, while a refusal holds new sends: until other credentials are
    /// in use, the refusal ends, a probe is due (one caller goes), or `grace` has passed since
    /// the first refusal.
    pub async fn ready(&self, grace: Duration, stop: &CancellationToken) -> Ready {
        if !self.refused.load(Ordering::Relaxed) {
            return Ready::Send;
        }
        let mut changed = self.changed.subscribe();
        loop {
            let until = {
                let mut s = self.lock();
                let now = Instant::now();
                let Some(refusal) = s.refusal else { return Ready::Send };
                let end = refusal.since + grace;
                if !self.can_change(&s) || now >= end {
                    self.set_held(&mut s, false);
                    return Ready::Send;
                }
                if now >= s.next_read && self.reload(&mut s, now) {
                    return Ready::Send;
                }
                if now >= s.next_probe {
                    s.probes += 1;
                    s.next_probe = now + probe_spacing(s.probes);
                    return Ready::Probe;
                }
                s.next_read.min(s.next_probe).min(end)
            };
            tokio::select! {
                () = stop.cancelled() => return Ready::Stopped,
                () = tokio::time::sleep_until(until) => {}
                _ = changed.changed() => {}
            }
        }
    }

    /// Whether waiting may bring other credentials: there is a source to re-read, and the
    /// Destination sends credentials at all (a partner refusing requests without any is not
    /// waiting for a rotation).
    fn can_change(&self, s: &State) -> bool {
        s.config != AuthConfig::None && self.source().is_some()
    }

    /// Reads the source; takes other credentials into use. True if they changed.
    fn reload(&self, s: &mut State, now: Instant) -> bool {
        s.next_read = now + READ_EVERY;
        let Some(source) = self.source() else { return false };
        match source.read() {
            Ok(config) if config != s.config => match Auth::new(&config, s.client.clone()) {
                Ok(auth) => {
                    self.take(s, config, auth);
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the changed credentials cannot be used");
                    false
                }
            },
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read the Destination's credentials");
                false
            }
        }
    }

    fn take(&self, s: &mut State, config: AuthConfig, auth: Auth) {
        s.config = config;
        s.auth = auth;
        s.generation += 1;
        if s.refusal.take().is_some() {
            tracing::info!("the Destination's Secret changed: sending again with the new credentials");
        }
        self.refused.store(false, Ordering::Relaxed);
        self.set_held(s, false);
        self.events.reloaded();
        self.changed.send_modify(|g| *g += 1);
    }

    fn set_held(&self, s: &mut State, held: bool) {
        if s.held != held {
            s.held = held;
            self.events.holding(held);
        }
    }
}

/// The spacing after the `n`th probe: doubling from [`PROBE_FIRST`] up to [`PROBE_MAX`].
pub fn probe_spacing(n: u32) -> Duration {
    PROBE_FIRST.saturating_mul(1 << n.min(8)).min(PROBE_MAX)
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
