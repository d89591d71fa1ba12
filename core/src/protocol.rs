//! The coordination protocol between workers and the operator (DESIGN §3), as JSON over HTTP.
//!
//! A worker calls `POST /v1/heartbeat` on the leading operator about once a second with a
//! [`HeartbeatRequest`], authenticated by its projected service-account token
//! (`Authorization: Bearer …`). The answer, a [`HeartbeatResponse`], carries its rate share, a
//! Destination-wide pause, the fate of its leases and new leases. These types are the wire
//! contract: both sides use them, nothing else defines it.
//!
//! Progress is reported as *cumulative* counters per lease (not deltas), so a lost or repeated
//! heartbeat can neither lose nor double-count anything: the coordinator keeps the highest
//! values it has seen for each lease.
//!
//! **Versions.** Both messages carry `protocolVersion`; a message without it is version 1.
//! Version 2 plans Parquet by byte ranges ([`ShardKind::RowGroupRange`](crate::shard::ShardKind)),
//! which a version 1 worker cannot read, so the operator grants no new leases to workers older
//! than [`OLDEST_LEASED_VERSION`] (a rollout replaces them). The Destination and Datum travel
//! as the protocol's own [`DestinationSettings`] and [`DatumSettings`], whose JSON keeps the
//! resources' shape, so either side still reads the other's version 1 messages.
//!
//! Version 3 shares a quota (`rateLimit.requestsPerDay`) as allowances: the answer's
//! [`RateShare::quota`] and the heartbeat's [`HeartbeatRequest::quota`]. A version 2 worker
//! knows neither; on a Destination with a quota the operator sends it `requestsToday: 0`, which
//! it enforces as a daily quota used up, so it starts no request it could not account for.
//! Version 3 also answers [`HeartbeatResponse::settled`] (see [`SETTLED_VERSION`]); a version 2
//! worker ignores it and forgets a completion once answered.

use serde::{Deserialize, Serialize};

use crate::datum::DatumSettings;
use crate::destination::DestinationSettings;
use crate::shard::ShardSpec;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 3;
/// The first version that takes quota allowances ([`QuotaAllowance`]).
pub const QUOTA_VERSION: u32 = 3;
/// From this version on the operator answers [`HeartbeatResponse::settled`]: a worker keeps
/// reporting a completed lease until it is named there (from an older operator, it forgets a
/// completion once answered, as before).
pub const SETTLED_VERSION: u32 = 3;
/// Workers speaking an older version get no new leases: they cannot read every shard kind.
pub const OLDEST_LEASED_VERSION: u32 = 2;

/// The version of a message that does not say (version 1 had no field).
fn unversioned() -> u32 {
    1
}

/// Path of the heartbeat endpoint.
pub const HEARTBEAT_PATH: &str = "/v1/heartbeat";

/// Environment variable of worker pods carrying the CA certificate (PEM, public) the
/// coordinator's serving certificate chains to.
pub const COORDINATOR_CA_ENV: &str = "COURIER_COORDINATOR_CA_PEM";

/// A partner's `Retry-After` shorter than this (about two heartbeats, the time it takes to
/// spread a pause to every worker of a Destination) only delays the record it answered; a
/// longer one pauses the worker at once and, through the coordinator, the whole Destination.
pub const SHORTEST_SPREAD_PAUSE_MS: u64 = 2_000;

/// Window over which the AIMD counts 429s (the coordinator, or a worker run alone).
pub const THROTTLE_WINDOW_MS: u64 = 2_000;

/// 429s that all came within this span are one clump of early arrivals: a process or link
/// stalled and requests sent evenly reached the partner together. A partner whose limit is
/// really below ours answers 429 all along, so its 429s spread over more than this within a
/// fraction of a second; only then are they the partner pushing back.
pub const CLUMP_MS: u64 = 100;

/// Whether 429s spread over `spread_ms` (first to last; `None`: not known, as from a worker
/// older than the field) are more than one clump.
pub fn spread_beyond_a_clump(spread_ms: Option<u64>) -> bool {
    spread_ms.is_none_or(|ms| ms >= CLUMP_MS)
}

/// Identifies one lease: one attempt of one shard of one package.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseKey {
    pub namespace: String,
    pub package: String,
    /// The package's uid: a re-created package with the same name is another package.
    pub package_uid: String,
    /// Shard id (index in the package's plan).
    pub shard: u32,
    /// Package attempt (a new `retryNonce` starts a new one).
    pub package_attempt: u32,
    /// Lease generation of this shard: increases every time the shard is leased again, so a
    /// report from an expired lease is recognised and ignored.
    pub lease_epoch: u64,
}

/// Counters of one lease since it was granted, cumulative.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseCounters {
    pub read: u64,
    pub sent: u64,
    pub failed: u64,
    pub malformed: u64,
    pub dead_lettered: u64,
    pub retried: u64,
    /// Bytes of records acknowledged.
    pub bytes: u64,
    /// Records sent again because an earlier lease of the shard ended with them read but not
    /// acknowledged (also counted once in `sent` or `dead_lettered`).
    #[serde(default)]
    pub resent: u64,
}

impl LeaseCounters {
    /// Field by field `self - other`, never below zero.
    pub fn saturating_sub(&self, other: &LeaseCounters) -> LeaseCounters {
        LeaseCounters {
            read: self.read.saturating_sub(other.read),
            sent: self.sent.saturating_sub(other.sent),
            failed: self.failed.saturating_sub(other.failed),
            malformed: self.malformed.saturating_sub(other.malformed),
            dead_lettered: self.dead_lettered.saturating_sub(other.dead_lettered),
            retried: self.retried.saturating_sub(other.retried),
            bytes: self.bytes.saturating_sub(other.bytes),
            resent: self.resent.saturating_sub(other.resent),
        }
    }
}

impl std::ops::AddAssign<&LeaseCounters> for LeaseCounters {
    fn add_assign(&mut self, other: &LeaseCounters) {
        self.read += other.read;
        self.sent += other.sent;
        self.failed += other.failed;
        self.malformed += other.malformed;
        self.dead_lettered += other.dead_lettered;
        self.retried += other.retried;
        self.bytes += other.bytes;
        self.resent += other.resent;
    }
}

/// A failure answer seen while delivering, for `status.failureReasons`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureSample {
    /// HTTP status (`"400"`) or error class (`"timeout"`, `"connect"`, `"malformed"`).
    pub code: String,
    /// Records that ended with it under this lease, cumulative.
    pub count: u64,
    /// Start of a response body or error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
}

/// Where a leased shard stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseReport {
    pub key: LeaseKey,
    /// Low watermark: every record before this position is acknowledged (sent or
    /// dead-lettered). A new lease of this shard resumes here.
    pub checkpoint: u64,
    /// Every record before this position has been read. Of the records between `checkpoint`
    /// and here, all but `pending` are acknowledged, so a new lease skips them (0: unknown,
    /// the same as `checkpoint`).
    #[serde(default)]
    pub frontier: u64,
    /// Offsets of records read and not yet acknowledged (in flight, or waiting for the
    /// limiter or a back-off), all at or after `checkpoint` and before `frontier`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<u64>,
    /// Cumulative counters of the shard: `base` plus what this lease did; consistent with
    /// `checkpoint`, `frontier` and `pending` (counted in the same instant).
    pub counters: LeaseCounters,
    /// The counters the lease was granted with. A coordinator that adopts the lease without
    /// knowing the shard's counters (a new leader whose status predates the lease) counts only
    /// `counters - base` as new, which is exact whatever the status held.
    #[serde(default)]
    pub base: LeaseCounters,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureSample>,
    /// Every record of the shard is acknowledged; the lease is given back.
    #[serde(default)]
    pub done: bool,
    /// The shard failed as a whole (unreadable file, …); the lease is given back and the
    /// coordinator retries the shard up to the package's backoffLimit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The lease has ended here without finishing the shard (the worker drains, or the lease
    /// was revoked): this is its final report and the shard may be leased again at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

/// What the partner said about our rate since the last heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleReport {
    /// 429 answers received since the last heartbeat.
    pub too_many_requests: u64,
    /// The latest instant a `Retry-After`/`RateLimit-Reset` asked us to wait until (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_until_unix_ms: Option<u64>,
    /// Milliseconds from the first to the last of those 429s ([`CLUMP_MS`]); absent from
    /// workers older than the field, which count as spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_ms: Option<u64>,
}

/// Throughput and latency figures the autoscaler uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStats {
    /// Requests completed per second, recent average.
    pub requests_per_second: u64,
    /// Median and 99th percentile latency in microseconds, recent.
    pub latency_p50_micros: u64,
    pub latency_p99_micros: u64,
    /// Requests in flight now, and the most allowed.
    pub in_flight: u32,
    pub max_in_flight: u32,
    /// Share of the last interval spent waiting for the limiter, in per mille (1000 = always).
    pub limiter_wait_permille: u32,
    /// Share of the last interval the CPU was busy, in per mille (of one core).
    pub cpu_permille: u32,
    /// How the partner has been answering this worker (why a package may have stalled).
    #[serde(default, skip_serializing_if = "PartnerView::is_answering")]
    pub partner: PartnerView,
    /// The partner refuses this worker's credentials (`retryPolicy.authFailureStatuses`): the
    /// worker waits for the rotated Secret. Unknown to older operators, which ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_refused: Option<CredentialsRefused>,
}

/// A refusal of the credentials under way on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRefused {
    /// The status of the first refusal (401 or 403).
    pub status: u16,
    /// Seconds since the first refusal.
    pub for_seconds: u64,
    /// Whether new sends are held (within `retryPolicy.authGraceSeconds`); false once the
    /// grace is over and refused records are dead-lettered.
    pub holding: bool,
}

/// How the partner has been answering one worker: failing in a row, or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerView {
    /// Attempts in a row that ended with a retryable failure (429, 5xx, no connection,
    /// timeout) since the partner last answered one usefully; 0: it answers.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The latest of those failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<PartnerFailure>,
}

impl PartnerView {
    /// The partner answers (no failure in a row).
    pub fn is_answering(&self) -> bool {
        self.consecutive_failures == 0
    }
}

/// One retryable failure of an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerFailure {
    pub kind: PartnerFailureKind,
    /// When it happened (Unix ms).
    pub at_unix_ms: u64,
    /// The status (`"503"`) or the error, shortened.
    pub detail: String,
}

/// What kind of retryable failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PartnerFailureKind {
    /// 429 Too Many Requests.
    Throttled,
    /// A 5xx answer (or another status listed in `retryOn`).
    ServerError,
    /// No answer: the connection failed, was reset, or the attempt timed out.
    Unreachable,
}

/// `POST /v1/heartbeat` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRequest {
    /// The protocol version the worker speaks ([`PROTOCOL_VERSION`]).
    #[serde(default = "unversioned")]
    pub protocol_version: u32,
    /// The worker's pod name (`POD_NAME`).
    pub worker: String,
    /// Random, fixed for the life of the worker process: a new value under the same name
    /// means the previous process has ended (its container was restarted), so its share and
    /// leases are free at once. 0 from workers that do not send it.
    #[serde(default)]
    pub incarnation: u64,
    pub namespace: String,
    /// Destination whose worker this is.
    pub destination: String,
    /// Destination generation of the config the worker has, 0 for none.
    pub destination_generation: i64,
    /// The rate share the worker enforces right now (requests/s), as last applied. The
    /// coordinator counts `max(granted, applied)` against the limit until the two agree.
    pub applied_share: u32,
    /// Requests/s the worker could use (0 when idle). Shares are divided in proportion to it.
    pub demand: u32,
    /// How many more shards the worker would take now.
    pub free_slots: u32,
    /// Stop granting leases: the worker is shutting down.
    #[serde(default)]
    pub draining: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<LeaseReport>,
    #[serde(default)]
    pub throttle: ThrottleReport,
    #[serde(default)]
    pub stats: WorkerStats,
    /// Where the worker's quota allowance stands (version 3, when it has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaReport>,
    /// The worker's own monotonic clock (ms since its process started) when it took this
    /// heartbeat's counters. The leader stamps progress with it, so a heartbeat held up on its
    /// way does not read as a lull followed by a burst. Absent from workers that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_ms: Option<u64>,
}

/// A worker's quota allowance as it enforces it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaReport {
    /// The period the allowance is of ([`QuotaAllowance::period_start_unix_ms`]).
    pub period_start_unix_ms: u64,
    /// The allowance in force (requests in the period, cumulative).
    pub allowed: u64,
    /// Requests started in the period, as counted when the heartbeat was sent.
    pub used: u64,
}

/// The requests a worker may start in one quota period, cumulative: `requests` is the total
/// for the period, so a repeated or lost answer changes nothing (the coordinator grows it, or
/// lowers it to what the worker has used when the worker has no work).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaAllowance {
    /// Start of the period (Unix ms); a new value starts a new count at 0.
    pub period_start_unix_ms: u64,
    /// End of the period: from then on nothing is started until a newer allowance comes.
    pub period_end_unix_ms: u64,
    /// Requests the worker may start in the period, all together.
    pub requests: u64,
}

/// A worker's part of its Destination's rate limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateShare {
    pub requests_per_second: u32,
    pub burst: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u64>,
    /// Version 2's daily quota: a version 3 operator only sends `0` here, to a version 2
    /// worker of a Destination with a quota (it cannot take allowances). Version 3 workers
    /// ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_today: Option<u64>,
    /// The worker's quota allowance, when the Destination has a quota (version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaAllowance>,
    /// Most requests in flight for this worker.
    pub max_in_flight: u32,
}

/// The Destination as the worker needs it (secrets are not in here: they reach the worker as
/// environment variables from the Secrets the Destination names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationConfig {
    pub generation: i64,
    pub spec: DestinationSettings,
}

/// A shard leased to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardLease {
    pub key: LeaseKey,
    pub shard: ShardSpec,
    /// Resume position: records before it are already acknowledged.
    pub checkpoint: u64,
    /// Records between `checkpoint` and this position were read by an earlier lease and are
    /// acknowledged, except `pending`: they are skipped (0: none).
    #[serde(default)]
    pub frontier: u64,
    /// Records an earlier lease read but did not acknowledge; sent again and counted as
    /// `resent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<u64>,
    /// Counters already reported by earlier leases of this shard (so the worker's cumulative
    /// counters continue from them).
    pub counters: LeaseCounters,
    /// The Datum of the package (format and request templates).
    pub datum: DatumSettings,
    /// Where dead letters of this package go (a directory URL).
    pub dead_letter_path: String,
    /// Only these record offsets are sent (retryScope FailedRecords re-sends); empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only_offsets: Vec<u64>,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// The protocol version the operator speaks ([`PROTOCOL_VERSION`]).
    #[serde(default = "unversioned")]
    pub protocol_version: u32,
    pub share: RateShare,
    /// Send nothing before this instant (Unix ms): the partner asked the Destination to pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_until_unix_ms: Option<u64>,
    /// Present when the worker's `destinationGeneration` is out of date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationConfig>,
    /// Leases the worker must stop at once (expired, pre-empted, package suspended or deleted).
    /// It reports their final checkpoint in the next heartbeat and forgets them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<LeaseKey>,
    /// Completed leases whose completion the package's status in the API now records: the
    /// worker forgets them. Until then it reports each completion again in every heartbeat, so
    /// a completion answered by a leader that died before its status write reaches the next
    /// leader, which would otherwise lease the shard again and send it twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settled: Vec<LeaseKey>,
    /// New leases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub granted: Vec<ShardLease>,
    /// Heartbeat again after this many milliseconds.
    pub heartbeat_interval_ms: u32,
    /// The share and the leases in this answer hold for this many milliseconds from when the
    /// worker *sent* the heartbeat; a worker that gets no newer answer by then sends nothing
    /// more (the coordinator counts them as held until then, and a little longer).
    pub lease_ttl_ms: u32,
    /// The leadership term of the operator replica that answered (the Lease's transition
    /// count when it took over): a worker sees answers of one term after another, never two
    /// at once. 0 without leader election.
    #[serde(default)]
    pub term: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_field_by_field_and_subtract_without_going_below_zero() {
        let base = LeaseCounters {
            read: 10,
            sent: 8,
            failed: 2,
            malformed: 1,
            dead_lettered: 2,
            retried: 3,
            bytes: 80,
            resent: 1,
        };
        let own = LeaseCounters {
            read: 5,
            sent: 5,
            failed: 0,
            malformed: 0,
            dead_lettered: 0,
            retried: 1,
            bytes: 50,
            resent: 0,
        };
        let mut total = base.clone();
        total += &own;
        assert_eq!(
            total,
            LeaseCounters {
                read: 15,
                sent: 13,
                failed: 2,
                malformed: 1,
                dead_lettered: 2,
                retried: 4,
                bytes: 130,
                resent: 1
            }
        );
        assert_eq!(total.saturating_sub(&base), own);
        assert_eq!(own.saturating_sub(&base), LeaseCounters::default(), "never below zero");
    }

    #[test]
    fn a_heartbeat_round_trips_through_json_with_camel_case_fields() {
        let req = HeartbeatRequest {
            protocol_version: PROTOCOL_VERSION,
            worker: "w-1".into(),
            incarnation: 42,
            namespace: "ns".into(),
            destination: "partner".into(),
            destination_generation: 3,
            applied_share: 100,
            demand: 250,
            free_slots: 2,
            draining: false,
            leases: vec![LeaseReport {
                key: LeaseKey {
                    namespace: "ns".into(),
                    package: "p".into(),
                    package_uid: "u".into(),
                    shard: 7,
                    package_attempt: 1,
                    lease_epoch: 2,
                },
                checkpoint: 4096,
                frontier: 8192,
                pending: vec![4096, 5000],
                counters: LeaseCounters { read: 10, sent: 9, dead_lettered: 1, failed: 1, ..Default::default() },
                base: LeaseCounters::default(),
                failures: vec![],
                done: false,
                error: None,
                released: false,
            }],
            throttle: ThrottleReport::default(),
            stats: WorkerStats::default(),
            quota: Some(QuotaReport { period_start_unix_ms: 1_000, allowed: 40, used: 12 }),
            clock_ms: Some(1_234),
        };
        let json = serde_json::to_value(&req).expect("serializes");
        assert_eq!(json["appliedShare"], 100);
        assert_eq!(json["clockMs"], 1_234);
        assert_eq!(json["leases"][0]["key"]["leaseEpoch"], 2);
        assert_eq!(json["quota"]["periodStartUnixMs"], 1_000);
        let back: HeartbeatRequest = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, req);
    }
}

#[cfg(test)]
#[path = "protocol_compat.rs"]
mod compat;
