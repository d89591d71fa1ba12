//! Messages of protocol version 1 (as its workers and operators wrote them, byte for byte)
//! still parse, and what this version writes still parses as version 1 expected.

use super::*;
use crate::shard::ShardKind;

/// A heartbeat of a version 1 worker: no `protocolVersion`, one lease.
const V1_HEARTBEAT: &str = r#"{"worker":"courier-worker-partner-7d9f-x2","namespace":"ns","destination":"partner","destinationGeneration":3,"appliedShare":100,"demand":250,"freeSlots":2,"draining":false,"leases":[{"key":{"namespace":"ns","package":"p","packageUid":"u-1","shard":7,"packageAttempt":1,"leaseEpoch":2},"checkpoint":4096,"counters":{"read":10,"sent":9,"failed":1,"malformed":0,"deadLettered":1,"retried":0,"bytes":900},"base":{"read":0,"sent":0,"failed":0,"malformed":0,"deadLettered":0,"retried":0,"bytes":0},"failures":[{"code":"400","count":1,"sample":"bad"}],"done":false}],"throttle":{"tooManyRequests":1,"retryAfterUntilUnixMs":1700000000000},"stats":{"requestsPerSecond":95,"latencyP50Micros":800,"latencyP99Micros":4000,"inFlight":3,"maxInFlight":64,"limiterWaitPermille":10,"cpuPermille":200}}"#;

/// An answer of a version 1 operator: the Destination's and the Datum's whole specs, a
/// row-group shard planned from a footer.
const V1_RESPONSE: &str = r#"{"share":{"requestsPerSecond":50,"burst":2,"maxInFlight":64},"destination":{"generation":4,"spec":{"endpoint":{"url":"http://127.0.0.1:8080/in","method":"POST","timeoutMillis":10000,"httpVersion":"Auto","headers":{"X-Src":"courier"}},"auth":{"bearer":{"secretRef":{"name":"tok","key":"token"}}},"rateLimit":{"requestsPerSecond":100},"retryPolicy":{"maxAttempts":5,"backoff":{"initialMillis":100,"maxMillis":30000,"multiplier":2,"jitter":"Full"},"retryOn":["408","429","5xx","timeout","connect"],"respectRetryAfter":true},"workers":{"min":0,"max":10,"maxInFlightPerWorker":64,"cooldownSeconds":300}}},"granted":[{"key":{"namespace":"ns","package":"p","packageUid":"u-1","shard":0,"packageAttempt":1,"leaseEpoch":1},"shard":{"url":"file:///d/a.parquet","type":"rowGroups","first":0,"count":2},"checkpoint":0,"counters":{"read":0,"sent":0,"failed":0,"malformed":0,"deadLettered":0,"retried":0,"bytes":0},"datum":{"format":{"type":"Parquet","compression":"Auto","fields":["id"]},"request":{"pathTemplate":"/u/{{ id }}","contentType":"application/json","idempotencyKey":{"header":"Idempotency-Key"}},"landing":{"path":"file:///in","pollIntervalSeconds":60,"settleSeconds":120,"batchWindowSeconds":300,"destinations":[{"name":"partner"}]}},"deadLetterPath":"file:///dl/attempt-1"}],"heartbeatIntervalMs":1000,"leaseTtlMs":10000}"#;

#[test]
fn a_version_1_heartbeat_still_parses_as_version_1() {
    let req: HeartbeatRequest = serde_json::from_str(V1_HEARTBEAT).expect("a version 1 heartbeat parses");
    assert_eq!(req.protocol_version, 1);
    assert_eq!(req.leases[0].key.lease_epoch, 2);
    assert_eq!(req.leases[0].counters.dead_lettered, 1);
    assert_eq!(req.throttle.retry_after_until_unix_ms, Some(1_700_000_000_000));
    assert_eq!(req.stats.cpu_permille, 200);
    assert!(req.protocol_version < OLDEST_LEASED_VERSION, "a version 1 worker gets no new leases");
}

#[test]
fn a_version_1_answer_still_parses_with_its_specs_as_settings() {
    let resp: HeartbeatResponse = serde_json::from_str(V1_RESPONSE).expect("a version 1 answer parses");
    assert_eq!(resp.protocol_version, 1);
    let dest = resp.destination.expect("destination");
    assert_eq!(dest.spec.endpoint.method, "POST");
    assert_eq!(dest.spec.rate_limit.effective_burst(), 2);
    assert_eq!(dest.spec.auth.and_then(|a| a.bearer).map(|b| b.secret_ref.key), Some("token".to_owned()));
    let lease = &resp.granted[0];
    assert_eq!(lease.shard.kind, ShardKind::RowGroups { first: 0, count: 2 });
    assert_eq!(lease.datum.format.fields, Some(vec!["id".to_owned()]));
    assert_eq!(lease.datum.request.path_template, "/u/{{ id }}");
}

#[test]
fn this_versions_answer_parses_as_a_version_1_worker_expected_it() {
    let mut resp: HeartbeatResponse = serde_json::from_str(V1_RESPONSE).expect("parses");
    resp.protocol_version = PROTOCOL_VERSION;
    let json = serde_json::to_value(&resp).expect("serializes");
    assert_eq!(json["protocolVersion"], PROTOCOL_VERSION);
    let spec = &json["destination"]["spec"];
    let old_dest: courier_api::destination::DestinationSpec =
        serde_json::from_value(spec.clone()).expect("a version 1 worker reads the Destination");
    assert_eq!(old_dest.endpoint.url, "http://127.0.0.1:8080/in");
    let datum = &json["granted"][0]["datum"];
    let old_datum: courier_api::datum::DatumSpec =
        serde_json::from_value(datum.clone()).expect("a version 1 worker reads the Datum");
    assert_eq!(old_datum.format.fields, vec!["id".to_owned()]);
}

#[test]
fn a_version_1_heartbeat_gets_neutral_values_for_what_version_2_added() {
    let req: HeartbeatRequest = serde_json::from_str(V1_HEARTBEAT).expect("parses");
    assert_eq!(req.incarnation, 0, "unknown incarnation");
    let lease = &req.leases[0];
    assert_eq!((lease.frontier, lease.pending.len(), lease.counters.resent, lease.released), (0, 0, 0, false));
}

#[test]
fn a_version_1_answer_has_no_term_and_leases_without_a_frontier() {
    let resp: HeartbeatResponse = serde_json::from_str(V1_RESPONSE).expect("parses");
    assert_eq!(resp.term, 0);
    assert_eq!((resp.granted[0].frontier, resp.granted[0].pending.len()), (0, 0));
}

#[test]
fn version_2_messages_have_no_quota_and_a_version_2_worker_reads_a_zero_daily_quota() {
    let req: HeartbeatRequest = serde_json::from_str(V1_HEARTBEAT).expect("parses");
    assert_eq!(req.quota, None);
    let resp: HeartbeatResponse = serde_json::from_str(V1_RESPONSE).expect("parses");
    assert_eq!((resp.share.quota, resp.share.requests_today), (None, None));
    let share = RateShare { requests_today: Some(0), ..RateShare::default() };
    let json = serde_json::to_value(share).expect("serializes");
    assert_eq!(json["requestsToday"], 0, "what a version 2 worker reads as its daily quota");
    assert!(json.get("quota").is_none());
}
