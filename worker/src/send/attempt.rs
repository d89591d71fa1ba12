//! One record's journey through the send stack: limiter → auth → HTTP → classifier, repeated
//! with back-off until it is accepted, refused, or out of attempts (a 429 does not use one up:
//! it is the partner's rate signal, not a verdict on the record; nor does a refusal of the
//! credentials, answered by `credentials`). Every attempt draws from the limiter, retries
//! included.

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderValue, StatusCode};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::auth::Auth;
use super::client::{Gate, Gated, HttpClient, Outgoing, Response};
use super::config::SendConfig;
use super::credentials::{AuthDecision, CredentialWatch, Ready};
use super::observer::{AttemptReport, SendObserver, Throttle};
use super::partner::{self, PartnerWatch};
use super::retry::{RetryConfig, RetryLogic, Verdict};
use super::throttle;
use crate::limiter::Limiter;
use crate::request::BuiltRequest;

/// How a record's delivery ended. `attempts` counts every request sent for the record, those
/// answered 429 included (only the others count against `max_attempts`).
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Accepted with this status after `attempts` attempts.
    Sent { status: u16, attempts: u32, bytes: u64 },
    /// Given up after `attempts` attempts.
    Failed(Failure),
    /// Stopped (drain, revoked lease) while waiting for the limiter or a back-off, before the
    /// next attempt went out: the record is neither sent nor failed and stays pending, so the
    /// next lease of its shard sends it.
    Abandoned { attempts: u32 },
}

/// Why a record was given up on: the last response, or the last error.
#[derive(Debug, Clone)]
pub struct Failure {
    pub attempts: u32,
    /// The last response, if the last attempt got one.
    pub response: Option<Response>,
    /// What went wrong, in words.
    pub error: String,
}

/// Everything a send task needs; shared by all of them.
pub struct Sender {
    client: HttpClient,
    credentials: Arc<CredentialWatch>,
    limiter: Arc<Limiter>,
    retry: RetryConfig,
    logic: Arc<dyn RetryLogic>,
    observer: Arc<dyn SendObserver>,
    config: SendConfig,
    partner: Arc<PartnerWatch>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender over `client`, drawing from `limiter`, reporting to `observer`.
    pub fn new(
        config: SendConfig,
        client: HttpClient,
        auth: Auth,
        limiter: Arc<Limiter>,
        observer: Arc<dyn SendObserver>,
    ) -> Self {
        let retry = config.retry.clone();
        let logic: Arc<dyn RetryLogic> = Arc::new(retry.clone());
        let partner = Arc::default();
        let credentials = Arc::new(CredentialWatch::new(config.auth.clone(), auth, client.clone()));
        Self { client, credentials, limiter, retry, logic, observer, config, partner }
    }

    /// Takes its credentials from `credentials` (kept across rebuilt senders, re-read on a
    /// refusal) instead of a fixed set of its own; they are replaced by this sender's.
    pub fn with_credentials(mut self, credentials: Arc<CredentialWatch>) -> Self {
        let (auth, _) = self.credentials.current();
        credentials.install(&self.config.auth, auth, self.client.clone());
        self.credentials = credentials;
        self
    }

    /// The credentials in use and whether the partner refuses them.
    pub fn credentials(&self) -> &Arc<CredentialWatch> {
        &self.credentials
    }

    /// Shares `partner` (kept across rebuilt senders) instead of a watch of its own.
    pub fn with_partner(mut self, partner: Arc<PartnerWatch>) -> Self {
        self.partner = partner;
        self
    }

    /// Whether the partner answers, as this sender saw it.
    pub fn partner(&self) -> &Arc<PartnerWatch> {
        &self.partner
    }

    /// Replaces the retry classifier (the back-off settings stay those of the config).
    pub fn with_retry_logic(mut self, logic: Arc<dyn RetryLogic>) -> Self {
        self.logic = logic;
        self
    }

    /// The send settings.
    pub fn config(&self) -> &SendConfig {
        &self.config
    }

    /// The limiter every attempt draws from.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// Delivers one request, retrying as the policy says.
    pub async fn deliver(&self, request: &BuiltRequest, key_header: &http::HeaderName) -> Delivery {
        self.deliver_until(request, key_header, &CancellationToken::new()).await
    }

    /// Like [`Sender::deliver`], but once `stop` is cancelled no further attempt starts: a
    /// record still waiting for the limiter or a back-off ends [`Delivery::Abandoned`]. An
    /// attempt already on the wire is always finished, so its answer is never lost.
    pub async fn deliver_until(
        &self,
        request: &BuiltRequest,
        key_header: &http::HeaderName,
        stop: &CancellationToken,
    ) -> Delivery {
        let bytes = request.body.len() as u64;
        // A key that is no valid header value is left out (the builder refuses such keys).
        let key = HeaderValue::from_str(&request.idempotency_key).ok();
        let max_attempts = self.retry.max_attempts.max(1);
        // Every attempt made; of those, the ones answered 429 and those that failed during a
        // partner-wide outage, which do not count against `max_attempts` (`max_retry` bounds
        // every retry, when set).
        let mut attempt = 0u32;
        let mut throttled = 0u32;
        let mut in_outage = 0u32;
        let mut refused = 0u32;
        let mut refreshed_auth = false;
        let grace = self.retry.auth_grace;
        let first = Instant::now();
        loop {
            if stop.is_cancelled() {
                return Delivery::Abandoned { attempts: attempt };
            }
            // While the partner refuses the credentials, new attempts wait for rotated ones
            // before drawing from the limiter: no rate budget is spent on refusals.
            let probe = match self.credentials.ready(grace, stop).await {
                Ready::Send => false,
                Ready::Probe => true,
                Ready::Stopped => return Delivery::Abandoned { attempts: attempt },
            };
            attempt += 1;
            let counted = attempt - throttled - in_outage - refused;
            let outgoing = Outgoing {
                method: &request.method,
                uri: &request.uri,
                headers: &request.headers,
                extra: [key.as_ref().map(|v| (key_header, v)), None],
                body: &request.body,
            };
            // The limiter is passed with a connection in hand, right before the request is
            // written, and the auth header is taken after it (so a token never expires while
            // the request waits): a slow connect never bunches requests the limiter spaced
            // out. When the limiter admits at once (the usual case) the stop signal is not even
            // registered with, which costs a lock per attempt.
            let mut limiter_wait = std::time::Duration::ZERO;
            let mut used_auth = None;
            let mut used = None;
            let gate = async {
                let waited = tokio::select! {
                    biased;
                    waited = self.limiter.acquire(bytes) => waited,
                    () = stop.cancelled() => return Gate::Hold,
                };
                limiter_wait = waited;
                if stop.is_cancelled() {
                    return Gate::Hold;
                }
                // A refusal that began while this attempt waited for the limiter holds it too
                // (the records queued at the limiter would otherwise all go out with the
                // refused credentials); the credentials are taken after the wait, so a rotation
                // meanwhile is used at once.
                if !probe && self.credentials.holding() {
                    return Gate::Again;
                }
                let (auth, generation) = self.credentials.current();
                let header = auth.header().await;
                used = Some((auth, generation));
                match header {
                    Ok(header) => {
                        used_auth = header.as_ref().map(|(_, v)| v.clone());
                        Gate::Go(header)
                    }
                    Err(e) => Gate::Fail(e.to_string()),
                }
            };
            let started = Instant::now();
            let result = match self.client.execute_gated(outgoing, self.config.timeout, gate).await {
                Gated::Sent(result) => result,
                Gated::Held => return Delivery::Abandoned { attempts: attempt - 1 },
                Gated::Again => {
                    // Nothing was sent: the record waits with the others for new credentials.
                    attempt -= 1;
                    continue;
                }
                Gated::Failed(error) => {
                    // No credentials: retried like a connect error, without touching the partner.
                    if counted >= max_attempts {
                        return Delivery::Failed(Failure { attempts: attempt, response: None, error });
                    }
                    pause(self.retry.backoff(counted), stop).await;
                    continue;
                }
            };
            self.observer.attempt(&AttemptReport {
                attempt,
                status: result.as_ref().ok().map(|r| r.status.as_u16()),
                error: result.as_ref().err().map(|e| e.kind),
                latency: started.elapsed().saturating_sub(limiter_wait),
                limiter_wait,
                bytes,
            });
            let (verdict, response, error) = match result {
                Ok(r) => (self.logic.classify_response(r.status, &r.headers), Some(r), None),
                Err(e) => (self.logic.classify_error(e.kind), None, Some(e.message)),
            };
            let outage = if let Verdict::Retry { .. } = verdict {
                let status = response.as_ref().map(|r| r.status.as_u16());
                let detail = error.clone().unwrap_or_else(|| status.map(|s| s.to_string()).unwrap_or_default());
                self.partner.failed(partner::failure_kind(status), &detail)
            } else {
                self.partner.answered();
                false
            };
            match verdict {
                Verdict::Success => {
                    self.credentials.accepted();
                    let status = response.map_or(200, |r| r.status.as_u16());
                    return Delivery::Sent { status, attempts: attempt, bytes };
                }
                Verdict::Reject => return Delivery::Failed(failure(attempt, response, error)),
                Verdict::CredentialsRefused => {
                    // A verdict on the credentials, not on the record: it uses up no attempt.
                    refused += 1;
                    let Some((auth, generation)) = used.take() else { continue };
                    if !refreshed_auth && auth.unauthorized(used_auth.as_ref()) {
                        // OAuth2: one immediate retry with a fresh token.
                        refreshed_auth = true;
                        continue;
                    }
                    let status = response.as_ref().map_or(401, |r| r.status.as_u16());
                    match self.credentials.refused(status, generation, grace, Instant::now()) {
                        AuthDecision::Retry | AuthDecision::Wait => continue,
                        AuthDecision::GiveUp { waited } => {
                            let mut failed = failure(attempt, response, error);
                            failed.error = if waited.is_zero() {
                                format!("partner refused the credentials ({status})")
                            } else {
                                format!(
                                    "partner refused the credentials ({status}) for {}s \
                                     (retryPolicy.authGraceSeconds {}); the mounted Secret did not change",
                                    waited.as_secs(),
                                    grace.as_secs()
                                )
                            };
                            return Delivery::Failed(failed);
                        }
                    }
                }
                Verdict::Retry { not_before } => {
                    if let Some(r) = &response {
                        self.report_throttle(r, not_before);
                    }
                    if let Some(limit) = self.retry.max_retry
                        && first.elapsed() >= limit
                    {
                        // `retryPolicy.maxRetrySeconds`: the record has been retried long
                        // enough, 429s included; it is dead-lettered with the last answer.
                        let mut failed = failure(attempt, response, error);
                        failed.error = format!(
                            "gave up after {}s of retries (retryPolicy.maxRetrySeconds): {}",
                            limit.as_secs(),
                            failed.error
                        );
                        return Delivery::Failed(failed);
                    }
                    // The record itself never goes again before the instant the partner named.
                    let asked = if self.retry.respect_retry_after {
                        not_before.and_then(|t| t.duration_since(SystemTime::now()).ok()).unwrap_or_default()
                    } else {
                        std::time::Duration::ZERO
                    };
                    if response.as_ref().is_some_and(|r| r.status == StatusCode::TOO_MANY_REQUESTS) {
                        // "Slow down" says nothing about the record: it is answered by the pause
                        // and the Destination's lower limit, and does not use up an attempt. Nor
                        // does its wait grow: records whose waits doubled with every 429 held
                        // the in-flight slots for seconds, so during a storm the worker sent a
                        // fifth of what the partner took and too few 429s for the limit to find
                        // the partner's (measured: 25/s at a partner taking 120/s). The record
                        // waits the first back-off step (jittered) or until the partner's
                        // instant, then goes through the limiter again like any other.
                        throttled += 1;
                        pause(self.retry.backoff(1).max(asked), stop).await;
                        continue;
                    }
                    if outage {
                        // The partner fails every request, not this record: wait for it (the
                        // package's progress deadline reports the stall) without using up an
                        // attempt.
                        in_outage += 1;
                        pause(self.retry.backoff(in_outage).max(asked), stop).await;
                        continue;
                    }
                    if counted >= max_attempts {
                        return Delivery::Failed(failure(attempt, response, error));
                    }
                    pause(self.retry.backoff(counted).max(asked), stop).await;
                }
            }
        }
    }

    fn report_throttle(&self, response: &Response, not_before: Option<SystemTime>) {
        let status = response.status.as_u16();
        if status != 429 && not_before.is_none() {
            return;
        }
        // A Retry-After long enough to be worth spreading pauses this worker at once (and, via
        // the coordinator, every worker of the Destination); a short one only delays the record
        // it answered, however many come (see `throttle::worth_pausing`).
        let until = not_before.filter(|_| self.retry.respect_retry_after);
        if let Some(at) = until
            && throttle::worth_pausing(at, SystemTime::now())
        {
            let ahead = at.duration_since(SystemTime::now()).unwrap_or_default();
            self.limiter.pause_until(Instant::now() + ahead);
        }
        self.observer.throttled(Throttle { status, until });
    }
}

/// Sleeps for `backoff`, or until `stop`; the loop then sees `stop` and abandons.
async fn pause(backoff: std::time::Duration, stop: &CancellationToken) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(backoff) => {}
    }
}

fn failure(attempts: u32, response: Option<Response>, error: Option<String>) -> Failure {
    let error = match (&response, error) {
        (_, Some(e)) => e,
        (Some(r), None) => format!("partner answered {}", r.status),
        (None, None) => "unknown failure".to_owned(),
    };
    Failure { attempts, response, error }
}
