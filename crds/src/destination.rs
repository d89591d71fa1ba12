//! `Destination`: a partner API that receives one HTTP request per record.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{SecretKeyRef, SecretRef, is_false};

/// A partner endpoint with its authentication, rate limit, retry policy and worker bounds.
///
/// Courier runs one autoscaled set of worker pods per Destination and shares the Destination's
/// rate limit among them, so the partner never sees more than `rateLimit.requestsPerSecond`.
/// Changes take effect within about a second, without restarts.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "courier.dev",
    version = "v1alpha1",
    kind = "Destination",
    doc = "A partner API that receives one HTTP request per record: endpoint, auth, rate limit, retry policy and worker bounds.",
    namespaced,
    status = "DestinationStatus",
    shortname = "dest",
    category = "courier",
    derive = "PartialEq",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.endpoint.url"),
    printcolumn(
        name = "Limit",
        type_ = "integer",
        json_path = ".spec.rateLimit.requestsPerSecond",
        description = "requests per second allowed by the partner"
    ),
    printcolumn(
        name = "Effective",
        type_ = "integer",
        json_path = ".status.effectiveRequestsPerSecond",
        description = "requests per second currently granted to workers (lower after 429s)"
    ),
    printcolumn(name = "Workers", type_ = "integer", json_path = ".status.workers.ready"),
    printcolumn(
        name = "Backlog",
        type_ = "integer",
        json_path = ".status.backlog.records",
        description = "records not yet delivered across all packages"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSpec {
    /// Where and how requests are sent.
    pub endpoint: Endpoint,
    /// How requests authenticate. Exactly one method may be set; omit for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// The partner's rate limit. Courier never exceeds it, across all workers, retries included.
    pub rate_limit: RateLimit,
    /// Which failures are retried, and how.
    #[serde(default)]
    pub retry_policy: RetryPolicy,
    /// Bounds and pod settings of this Destination's workers.
    #[serde(default)]
    pub workers: WorkerPolicy,
    /// Stop sending to this partner. Packages wait (condition Waiting, reason
    /// DestinationSuspended) and resume from their checkpoints when this is set back to false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,
}

/// HTTP method of the per-record requests.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
    Patch,
    Get,
    Delete,
}

impl HttpMethod {
    /// The method as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Get => "GET",
            Self::Delete => "DELETE",
        }
    }
}

/// Which HTTP version to speak to the partner.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum HttpVersion {
    /// HTTP/2 when the TLS handshake offers it (ALPN), HTTP/1.1 otherwise.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (prior knowledge on plain-text `http://`).
    Http2,
}

/// The partner endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Base URL, `http://` or `https://`. The Datum's `request.pathTemplate` is appended to it.
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("endpoint.url must start with http:// or https://"))]
    #[x_kube(validation = kube::core::Rule::new("isURL(self)").message("endpoint.url must be a valid URL"))]
    #[schemars(length(max = 2048))]
    pub url: String,
    /// HTTP method. Default POST.
    #[serde(default)]
    pub method: HttpMethod,
    /// Per-attempt timeout in milliseconds, from sending the request to the end of the response.
    #[serde(default = "default_timeout_millis")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 600000").message("endpoint.timeoutMillis must be between 1 and 600000"))]
    pub timeout_millis: i32,
    /// HTTP version. Default Auto.
    #[serde(default)]
    pub http_version: HttpVersion,
    /// TLS settings for `https://` endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// Static headers added to every request (the Datum's templated headers come on top).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

fn default_timeout_millis() -> i32 {
    10_000
}

/// TLS settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// A PEM CA bundle trusted in addition to the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Skip certificate verification. For tests only; never on a real partner.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_verify: bool,
}

/// Authentication: set exactly one method.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("[has(self.bearer), has(self.basic), has(self.oauth2ClientCredentials), has(self.header)].filter(x, x).size() == 1").message("auth must set exactly one of bearer, basic, oauth2ClientCredentials or header"))]
pub struct Auth {
    /// `Authorization: Bearer <token>` with the token read from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<BearerAuth>,
    /// HTTP basic auth from a Secret with keys `username` and `password`
    /// (a `kubernetes.io/basic-auth` Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// OAuth2 client credentials: Courier fetches a token and refreshes it before it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_client_credentials: Option<OAuth2ClientCredentials>,
    /// A custom header whose value is read from a Secret key (e.g. `X-Api-Key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderAuth>,
}

/// Bearer token auth.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BearerAuth {
    /// The Secret key holding the token.
    pub secret_ref: SecretKeyRef,
}

/// Basic auth.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// A Secret with keys `username` and `password`.
    pub secret_ref: SecretRef,
}

/// OAuth2 client-credentials grant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2ClientCredentials {
    /// The token endpoint, `http://` or `https://`.
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("oauth2ClientCredentials.tokenUrl must start with http:// or https://"))]
    #[schemars(length(max = 2048))]
    pub token_url: String,
    /// The Secret key holding the client id.
    pub client_id_ref: SecretKeyRef,
    /// The Secret key holding the client secret.
    pub client_secret_ref: SecretKeyRef,
    /// Scopes requested with the token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// Auth by a custom header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderAuth {
    /// Header name, e.g. `X-Api-Key`.
    #[schemars(length(max = 256))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z0-9!#$%&\\'*+.^_`|~-]+$')").message("auth.header.name must be a valid HTTP header name"))]
    pub name: String,
    /// The Secret key holding the header value.
    pub secret_ref: SecretKeyRef,
}

/// The partner's limits. Integers only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.burst) || self.burst <= self.requestsPerSecond * 10").message("rateLimit.burst must not exceed ten seconds' worth of requestsPerSecond"))]
pub struct RateLimit {
    /// Requests per second across all workers, retries included.
    #[x_kube(validation = kube::core::Rule::new("self > 0 && self <= 1000000").message("rateLimit.requestsPerSecond must be between 1 and 1000000"))]
    pub requests_per_second: i32,
    /// The partner's burst: how many requests it takes at once above the steady rate. Default:
    /// 1/50 of requestsPerSecond (20 ms worth), at least 1. Courier's workers together send at
    /// most half of it ahead of the steady rate; the other half absorbs the network delivering
    /// evenly sent requests in clumps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self > 0").message("rateLimit.burst must be positive"))]
    pub burst: Option<i32>,
    /// Optional cap on request body bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self > 0").message("rateLimit.bytesPerSecond must be positive"))]
    pub bytes_per_second: Option<i64>,
    /// Optional quota: requests (attempts, retries included) per quota period across all
    /// workers. The period is the calendar day in `quotaResetTimeZone`, or a part of it when
    /// `quotaWindowSeconds` is shorter. The coordinator hands each worker an allowance out of
    /// what is left (a worker never starts a request beyond it); what was used survives
    /// operator restarts in `status.quota`. Records beyond the quota wait for the next period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self > 0").message("rateLimit.requestsPerDay must be positive"))]
    pub requests_per_day: Option<i64>,
    /// The IANA time zone whose midnight starts a quota period (`Europe/Berlin`, `UTC`).
    /// Default `UTC`. An unknown zone is reported as `Ready=False` (`InvalidTimeZone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$')").message("rateLimit.quotaResetTimeZone must be an IANA time zone name such as UTC or Europe/Berlin"))]
    pub quota_reset_time_zone: Option<String>,
    /// Length of a quota period in seconds. Default 86400: the quota is per calendar day.
    /// Shorter periods divide the day from midnight on (`3600`: hourly quotas); the last one
    /// of a day ends at the next midnight (days of 23 or 25 hours). Must divide 86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self > 0 && self <= 86400 && 86400 % self == 0").message("rateLimit.quotaWindowSeconds must divide 86400 (a day) evenly"))]
    pub quota_window_seconds: Option<i32>,
    /// Optional cap on requests in flight across all workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self > 0").message("rateLimit.maxInFlight must be positive"))]
    pub max_in_flight: Option<i32>,
}

impl RateLimit {
    /// The burst in force: the configured one, or 1/50 of the rate (at least 1).
    pub fn effective_burst(&self) -> i32 {
        self.burst.unwrap_or((self.requests_per_second / 50).max(1))
    }

    /// The time zone of the quota periods (`UTC` unless set).
    pub fn quota_time_zone(&self) -> &str {
        self.quota_reset_time_zone.as_deref().unwrap_or("UTC")
    }

    /// The length of a quota period in seconds (a day unless set).
    pub fn quota_window(&self) -> i64 {
        self.quota_window_seconds.map_or(86_400, i64::from)
    }
}

/// Retry policy for failed requests. Every attempt counts against the rate limit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts per record, the first included. After the last, the record is dead-lettered.
    /// A 429 does not use one up: it is the partner asking to slow down (the pause and the lower
    /// effective limit answer it). Nor does a failure during a partner-wide outage (10 retryable
    /// failures in a row across a worker's records: down, black-holed, failing every request):
    /// the record is not at fault. A partner that keeps answering 429 or stays down holds
    /// records; the package reports it (`Progressing=False`, `PartnerThrottling`,
    /// `PartnerFailing` or `PartnerUnreachable`, after its `progressDeadlineSeconds`),
    /// `maxRetrySeconds` dead-letters such records and `activeDeadlineSeconds` of the package
    /// fails it.
    #[serde(default = "default_max_attempts")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 100").message("retryPolicy.maxAttempts must be between 1 and 100"))]
    pub max_attempts: i32,
    /// Back-off between attempts.
    #[serde(default)]
    pub backoff: Backoff,
    /// What is retried: status codes (`503`), classes (`5xx`), `connect` (connection refused or
    /// reset), `timeout`. Anything else is dead-lettered at once.
    #[serde(default = "default_retry_on")]
    #[x_kube(validation = kube::core::Rule::new("self.all(x, x.matches('^([1-5][0-9][0-9]|[1-5]xx|connect|timeout)$'))").message("retryPolicy.retryOn entries must be a status code like 503, a class like 5xx, connect or timeout"))]
    #[schemars(length(max = 32), inner(length(max = 16)))]
    pub retry_on: Vec<String>,
    /// Honour `Retry-After` and `RateLimit-Reset`: pause the whole Destination until then.
    #[serde(default = "default_true")]
    pub respect_retry_after: bool,
    /// Longest a record is retried, counted from its first attempt, 429s and outages included.
    /// A record still failing after that long is dead-lettered (counted in `failed`) with the
    /// partner's last answer, and the package goes on with the next records; its
    /// `failurePolicy` decides whether it ends Failed. Unset (the default): no limit, a partner
    /// answering 429 forever (or down) holds its records until the package's
    /// `activeDeadlineSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 604800").message("retryPolicy.maxRetrySeconds must be between 1 and 604800"))]
    pub max_retry_seconds: Option<i32>,
    /// Statuses that mean the partner refused the credentials, not the record (`401`, and
    /// `403` if the partner answers 403 to a stale token). Such an answer is not a record
    /// failure and uses up no attempt: the worker re-reads the mounted Secret at once and
    /// retries with the new credentials if they changed; if not, it holds new sends of the
    /// Destination and waits for the kubelet to update the mounted Secret (a rotation) for at
    /// most `authGraceSeconds`. Empty: such answers are dead-lettered at once.
    #[serde(default = "default_auth_failure_statuses")]
    #[x_kube(validation = kube::core::Rule::new("self.all(x, x == 401 || x == 403)").message("retryPolicy.authFailureStatuses entries must be 401 or 403"))]
    #[schemars(length(max = 2))]
    pub auth_failure_statuses: Vec<i32>,
    /// Longest the workers wait for changed credentials while the partner refuses them
    /// (counted from the first refusal). After it, refused records are dead-lettered with the
    /// partner's answer. Covers the kubelet's delay in updating a mounted Secret (its sync
    /// period plus its cache TTL: about a minute by default, up to two).
    #[serde(default = "default_auth_grace_seconds")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0 && self <= 3600").message("retryPolicy.authGraceSeconds must be between 0 and 3600"))]
    pub auth_grace_seconds: i32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            backoff: Backoff::default(),
            retry_on: default_retry_on(),
            respect_retry_after: true,
            max_retry_seconds: None,
            auth_failure_statuses: default_auth_failure_statuses(),
            auth_grace_seconds: default_auth_grace_seconds(),
        }
    }
}

fn default_auth_failure_statuses() -> Vec<i32> {
    vec![401]
}

fn default_auth_grace_seconds() -> i32 {
    180
}

fn default_max_attempts() -> i32 {
    5
}

fn default_retry_on() -> Vec<String> {
    ["408", "429", "5xx", "connect", "timeout"].map(String::from).to_vec()
}

fn default_true() -> bool {
    true
}

/// How the delay grows between attempts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Jitter {
    /// A random delay between 0 and the computed back-off (AWS "full jitter").
    #[default]
    Full,
    /// Half the back-off plus a random half.
    Equal,
    /// Exactly the computed back-off.
    None,
}

/// Exponential back-off.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.initialMillis <= self.maxMillis").message("retryPolicy.backoff.initialMillis must not exceed maxMillis"))]
pub struct Backoff {
    /// Delay before the second attempt, in milliseconds.
    #[serde(default = "default_initial_millis")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1").message("retryPolicy.backoff.initialMillis must be positive"))]
    pub initial_millis: i32,
    /// Longest delay, in milliseconds.
    #[serde(default = "default_max_millis")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 3600000").message("retryPolicy.backoff.maxMillis must be between 1 and 3600000"))]
    pub max_millis: i32,
    /// Factor applied to the delay after each attempt.
    #[serde(default = "default_multiplier")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 10").message("retryPolicy.backoff.multiplier must be between 1 and 10"))]
    pub multiplier: i32,
    /// Randomisation of the delay.
    #[serde(default)]
    pub jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial_millis: default_initial_millis(),
            max_millis: default_max_millis(),
            multiplier: default_multiplier(),
            jitter: Jitter::Full,
        }
    }
}

fn default_initial_millis() -> i32 {
    200
}

fn default_max_millis() -> i32 {
    30_000
}

fn default_multiplier() -> i32 {
    2
}

/// Bounds and pod settings of the Destination's workers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.min <= self.max").message("workers.min must not exceed workers.max"))]
pub struct WorkerPolicy {
    /// Fewest workers, even without backlog. Default 0 (scale to zero).
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("workers.min must not be negative"))]
    pub min: i32,
    /// Most workers.
    #[serde(default = "default_max_workers")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 1000").message("workers.max must be between 1 and 1000"))]
    pub max: i32,
    /// Requests in flight per worker (back-pressure on the reader).
    #[serde(default = "default_in_flight")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 65536").message("workers.maxInFlightPerWorker must be between 1 and 65536"))]
    pub max_in_flight_per_worker: i32,
    /// Seconds without backlog before scaling down to `min`.
    #[serde(default = "default_cooldown")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("workers.cooldownSeconds must not be negative"))]
    pub cooldown_seconds: i32,
    /// Worker image; default: the operator's configured worker image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Resources of the worker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node selector of the worker pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the worker pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

impl Default for WorkerPolicy {
    fn default() -> Self {
        Self {
            min: 0,
            max: default_max_workers(),
            max_in_flight_per_worker: default_in_flight(),
            cooldown_seconds: default_cooldown(),
            image: None,
            resources: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
        }
    }
}

fn default_max_workers() -> i32 {
    4
}

fn default_in_flight() -> i32 {
    256
}

fn default_cooldown() -> i32 {
    60
}

/// Observed state of a Destination.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Throttled`, `Suspended`, `Degraded`, `CredentialsRefused`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Worker pods wanted and ready.
    #[serde(default)]
    pub workers: WorkerCounts,
    /// What is left to deliver across this Destination's packages.
    #[serde(default)]
    pub backlog: Backlog,
    /// Requests per second currently shared among workers: the spec limit, lowered after 429s
    /// and climbing back (AIMD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_requests_per_second: Option<i32>,
    /// Until when all workers pause, after the partner answered Retry-After.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<Time>,
    /// Packages being delivered now.
    #[serde(default)]
    pub active_packages: i32,
    /// The quota period under way, when `rateLimit.requestsPerDay` is set. A leader that
    /// starts restores the period's usage from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaStatus>,
}

/// Where a Destination's quota stands in the current period.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaStatus {
    /// Start of the period (the day, or the part of it).
    pub period_start: Time,
    /// When the period ends and the quota is whole again.
    pub resets_at: Time,
    /// Requests the period allows (`rateLimit.requestsPerDay`).
    pub limit: i64,
    /// Requests started in the period, as far as the workers have reported.
    pub used: i64,
    /// Requests not granted to any worker yet: `limit` minus what was used and what workers
    /// hold as allowances (a worker that vanished counts as having used all of its own).
    pub remaining: i64,
    /// The most the coordinator may have granted in the period (used plus allowances, and a
    /// little ahead). It never grants beyond what it has read back from here, so a new leader
    /// starts from this figure and no restart lets the period exceed its limit.
    pub reserved: i64,
}

/// Worker pods wanted and ready.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerCounts {
    /// Replicas the operator asked for.
    pub desired: i32,
    /// Replicas ready.
    pub ready: i32,
}

/// Remaining work.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backlog {
    /// Packages not finished.
    pub packages: i32,
    /// Estimated records left.
    pub records: i64,
    /// Bytes left to read.
    pub bytes: i64,
}
