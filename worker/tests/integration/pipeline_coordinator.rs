//! A worker driven by the operator's heartbeat protocol over real HTTP: a tiny coordinator
//! server in the test plays the operator's side, the partner simulator the partner's.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::run_support::*;
use bytes::Bytes;
use courier_e2e::fixtures::{FixtureSet, Format};
use courier_e2e::sim::{SimConfig, Simulator};
use courier_worker::config::{self, SecretStore};
use courier_worker::coordinator::{Driver, DriverConfig, DriverEnd, DriverError, HttpCoordinator};
use courier_worker::limiter::Rate;
use courier_worker::metrics::Metrics;
use courier_worker::pipeline::Pipeline;
use courier_worker::protocol::{
    DestinationConfig, HeartbeatRequest, HeartbeatResponse, LeaseCounters, LeaseKey, PROTOCOL_VERSION, RateShare,
    ShardLease,
};
use courier_worker::send::SendConfig;
use courier_worker::shard::{ShardKind, ShardSpec};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type Respond = dyn Fn(&HeartbeatRequest, usize) -> Option<HeartbeatResponse> + Send + Sync;

/// What the fake coordinator saw: each heartbeat with its Authorization header.
#[derive(Default)]
struct Seen {
    beats: Vec<(Option<String>, HeartbeatRequest)>,
}

/// Serves `/v1/heartbeat` with `respond` (None = 503); returns its base URL.
async fn fake_coordinator(seen: Arc<Mutex<Seen>>, respond: Arc<Respond>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (seen, respond) = (seen.clone(), respond.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (seen, respond) = (seen.clone(), respond.clone());
                    async move {
                        assert_eq!(req.uri().path(), "/v1/heartbeat");
                        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
                        let body = req.into_body().collect().await.expect("body").to_bytes();
                        let beat: HeartbeatRequest = serde_json::from_slice(&body).expect("a heartbeat");
                        let n = {
                            let mut seen = seen.lock().expect("lock");
                            seen.beats.push((auth, beat.clone()));
                            seen.beats.len() - 1
                        };
                        let response = match respond(&beat, n) {
                            Some(answer) => hyper::Response::new(Full::new(Bytes::from(
                                serde_json::to_vec(&answer).expect("serializes"),
                            ))),
                            None => {
                                let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"not leader")));
                                *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                                r
                            }
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    format!("http://{addr}")
}

struct World {
    _dir: tempfile::TempDir,
    sim: Simulator,
    data_url: String,
    size: u64,
    records: u64,
    malformed: u64,
    token: std::path::PathBuf,
    dead: String,
    valid_offsets: Vec<u64>,
}

async fn world(records: usize) -> World {
    let sim = Simulator::start("127.0.0.1:0", SimConfig::default()).await.expect("simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = FixtureSet::standard(records).expect("fixtures").file("users.jsonl").expect("jsonl").clone();
    let path = dir.path().join("users.jsonl");
    std::fs::write(&path, &file.bytes).expect("writes");
    let token = dir.path().join("token");
    std::fs::write(&token, "token-1\n").expect("writes token");
    World {
        data_url: format!("file://{}", path.display()),
        size: file.bytes.len() as u64,
        records: file.records.len() as u64,
        malformed: file.malformed_lines.len() as u64,
        dead: format!("file://{}", dir.path().join("dead").display()),
        valid_offsets: line_offsets(&file.bytes)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !file.malformed_lines.contains(i))
            .map(|(_, o)| o)
            .collect(),
        token,
        sim,
        _dir: dir,
    }
}

impl World {
    fn lease(&self) -> ShardLease {
        let datum =
            config::load_datum(&write(self._dir.path(), "x.yaml", &datum_yaml(Format::JsonLines))).expect("Datum");
        ShardLease {
            key: LeaseKey {
                namespace: NAMESPACE.into(),
                package: "pkg".into(),
                package_uid: "uid-1".into(),
                shard: 0,
                package_attempt: 1,
                lease_epoch: 1,
            },
            shard: ShardSpec { url: self.data_url.clone(), kind: ShardKind::ByteRange { start: 0, end: self.size } },
            checkpoint: 0,
            frontier: 0,
            pending: Vec::new(),
            counters: LeaseCounters::default(),
            datum: (&datum.spec).into(),
            dead_letter_path: self.dead.clone(),
            only_offsets: Vec::new(),
        }
    }

    fn destination(&self) -> DestinationConfig {
        let path = write(self._dir.path(), "d.yaml", &destination_yaml(&self.sim.url(), 100_000, 32, ""));
        DestinationConfig { generation: 3, spec: (&config::load_destination(&path).expect("Destination").spec).into() }
    }

    fn answer(&self, rps: u32, first: bool, lease_ttl_ms: u32) -> HeartbeatResponse {
        HeartbeatResponse {
            protocol_version: PROTOCOL_VERSION,
            share: RateShare {
                requests_per_second: rps,
                burst: 1,
                bytes_per_second: None,
                requests_today: None,
                quota: None,
                max_in_flight: 16,
            },
            pause_until_unix_ms: None,
            destination: first.then(|| self.destination()),
            revoked: Vec::new(),
            settled: Vec::new(),
            granted: if first { vec![self.lease()] } else { Vec::new() },
            heartbeat_interval_ms: 50,
            lease_ttl_ms,
            term: 1,
        }
    }

    fn driver(&self, url: &str) -> Driver<HttpCoordinator> {
        self.driver_with(url, SecretStore::empty())
    }

    /// A driver finding the Destination's Secrets in `secrets`.
    fn driver_with(&self, url: &str, secrets: SecretStore) -> Driver<HttpCoordinator> {
        let metrics = Arc::new(Metrics::new("partner"));
        let pipeline = Pipeline::new(
            "worker-1",
            &SendConfig::default(),
            Some(Rate::new(0, 1)),
            metrics,
            Duration::from_millis(50),
        )
        .expect("pipeline");
        let config = DriverConfig {
            worker: "worker-1".into(),
            namespace: NAMESPACE.into(),
            destination: "partner".into(),
            destination_spec: None,
            secrets,
            max_leases: 2,
            drain: Duration::from_secs(5),
        };
        let coordinator = HttpCoordinator::new(url, &self.token).expect("client");
        Driver::new(coordinator, pipeline, config, Arc::new(AtomicBool::new(false)))
    }

    /// Runs a driver against `url` in a task; cancelling the token drains it.
    fn spawn_driver(&self, url: &str) -> (CancellationToken, JoinHandle<Result<DriverEnd, DriverError>>) {
        let mut driver = self.driver(url);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        (shutdown, tokio::spawn(async move { driver.run(stop).await }))
    }
}

/// `answer`, naming every completion `beat` reports settled.
fn settling_done(mut answer: HeartbeatResponse, beat: &HeartbeatRequest) -> HeartbeatResponse {
    answer.settled = beat.leases.iter().filter(|l| l.done).map(|l| l.key.clone()).collect();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_is_reported_in_every_heartbeat_until_the_coordinator_settles_it() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    for (version, settle_from, expected) in [
        // Settled at the fourth heartbeat that reports it: reported four times.
        (PROTOCOL_VERSION, 3, 4),
        // An operator before settlement: forgotten once answered, as before.
        (2, usize::MAX, 1),
    ] {
        let world = Arc::new(world(50).await);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (w, s) = (world.clone(), seen.clone());
        let url = fake_coordinator(
            seen.clone(),
            Arc::new(move |beat, n| {
                let mut answer = w.answer(5000, n == 0, 10_000);
                answer.protocol_version = version;
                let reports =
                    s.lock().expect("lock").beats.iter().filter(|(_, b)| b.leases.iter().any(|l| l.done)).count();
                Some(if reports > settle_from { settling_done(answer, beat) } else { answer })
            }),
        )
        .await;
        let (shutdown, running) = world.spawn_driver(&url);
        let done = wait_for(&seen, "the lease is done", |b| b.leases.iter().any(|l| l.done)).await;
        while seen.lock().expect("lock").beats.len() <= done + expected + 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        let end = tokio::time::timeout(Duration::from_secs(10), running).await.expect("stops").expect("task");
        assert_eq!(end.expect("driver ok"), DriverEnd::Drained { abandoned: false });
        let seen = seen.lock().expect("lock");
        let reporting: Vec<usize> =
            (0..seen.beats.len()).filter(|&i| seen.beats[i].1.leases.iter().any(|l| l.done)).collect();
        let expected_beats: Vec<usize> = (done..done + expected).collect();
        assert_eq!(reporting, expected_beats, "protocol {version}: reported in consecutive heartbeats until settled");
        let first = seen.beats[done].1.leases.iter().find(|l| l.done).expect("done");
        for i in &reporting {
            assert_eq!(seen.beats[*i].1.leases.iter().find(|l| l.done), Some(first), "the same final report");
        }
        assert_eq!(world.sim.stats().unique_keys, world.records);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_from_an_older_coordinator_term_is_disregarded() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let world = Arc::new(world(50).await);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = world.clone();
    // Term 2 answers first (the Destination, no lease); then only a replica of term 1, which
    // grants a lease and a share: a leader that lost the Lease and does not know it yet.
    let url = fake_coordinator(
        seen.clone(),
        Arc::new(move |_, n| {
            let mut answer = w.answer(5000, true, 10_000);
            if n == 0 {
                answer.term = 2;
                answer.granted.clear();
            } else {
                answer.term = 1;
            }
            Some(answer)
        }),
    )
    .await;
    let (shutdown, running) = world.spawn_driver(&url);
    while seen.lock().expect("lock").beats.len() < 8 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    let end = tokio::time::timeout(Duration::from_secs(10), running).await.expect("stops").expect("task");
    end.expect("driver ok");
    assert_eq!(world.sim.stats().accepted, 0, "nothing sent for an older term's grant");
    let seen = seen.lock().expect("lock");
    assert!(seen.beats.iter().all(|(_, b)| b.leases.is_empty()), "no lease taken from an older term");
}

async fn wait_for(seen: &Mutex<Seen>, what: &str, test: impl Fn(&HeartbeatRequest) -> bool) -> usize {
    for _ in 0..400 {
        if let Some(i) = seen.lock().expect("lock").beats.iter().position(|(_, b)| test(b)) {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no heartbeat where {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_delivers_a_granted_lease_reports_it_done_and_drains_on_shutdown() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let world = Arc::new(world(300).await);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = world.clone();
    // A coordinator whose status already records every completion it is told of.
    let url = fake_coordinator(
        seen.clone(),
        Arc::new(move |beat, n| Some(settling_done(w.answer(5000, n == 0, 10_000), beat))),
    )
    .await;
    let (shutdown, running) = world.spawn_driver(&url);

    let done = wait_for(&seen, "the lease is done", |b| b.leases.iter().any(|l| l.done)).await;
    std::fs::write(&world.token, "token-2\n").expect("rotates token");
    let after = done + 3;
    wait_for(&seen, "three more heartbeats went out", |_| true).await;
    while seen.lock().expect("lock").beats.len() <= after + 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    let end = tokio::time::timeout(Duration::from_secs(10), running).await.expect("stops").expect("task");
    assert_eq!(end.expect("driver ok"), DriverEnd::Drained { abandoned: false });

    let seen = seen.lock().expect("lock");
    let (auth, first) = &seen.beats[0];
    assert_eq!(auth.as_deref(), Some("Bearer token-1"));
    assert_eq!(
        (first.worker.as_str(), first.destination.as_str(), first.destination_generation),
        ("worker-1", "partner", 0)
    );
    assert_eq!(first.free_slots, 0, "no leases before the Destination is known");
    let report = seen.beats[done].1.leases.iter().find(|l| l.done).expect("done report").clone();
    assert_eq!(report.checkpoint, world.size);
    assert_eq!(report.counters.sent, world.records);
    assert_eq!(report.counters.malformed, world.malformed);
    assert_eq!(report.counters.read, world.records + world.malformed);
    assert_eq!(seen.beats[done].1.applied_share, 5000);
    assert_eq!(seen.beats[done].1.destination_generation, 3);
    assert!(seen.beats[done + 1..].iter().all(|(_, b)| b.leases.is_empty()), "a finished lease is reported once");
    assert_eq!(seen.beats.last().map(|(a, _)| a.as_deref()), Some(Some("Bearer token-2")), "rotated token is read");
    assert!(seen.beats.last().is_some_and(|(_, b)| b.draining && b.free_slots == 0));
    assert_eq!(world.sim.stats().unique_keys, world.records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_lease_stops_and_reports_a_final_checkpoint_the_partner_has_accepted() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let world = Arc::new(world(400).await);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = world.clone();
    let key = world.lease().key;
    let revoke_at = Arc::new(Mutex::new(None::<usize>));
    let r = revoke_at.clone();
    let url = fake_coordinator(
        seen.clone(),
        Arc::new(move |beat, n| {
            let mut answer = w.answer(100, n == 0, 10_000);
            let progressed = beat.leases.iter().any(|l| l.counters.sent >= 30);
            let mut at = r.lock().expect("lock");
            if progressed && at.is_none() {
                *at = Some(n);
                answer.revoked = vec![w.lease().key];
            }
            Some(answer)
        }),
    )
    .await;
    let (shutdown, running) = world.spawn_driver(&url);
    wait_for(&seen, "the lease was revoked", |_| revoke_at.lock().expect("lock").is_some()).await;
    let at = revoke_at.lock().expect("lock").unwrap_or_default();
    // The final report is the last one naming the lease; afterwards it is forgotten.
    wait_for(&seen, "the lease is forgotten", |b| b.leases.is_empty() && b.free_slots == 2).await;
    let accepted = world.sim.stats().accepted;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(world.sim.stats().accepted, accepted, "nothing more is sent after the revocation");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await.expect("stops");

    let seen = seen.lock().expect("lock");
    let last = seen.beats[at..]
        .iter()
        .rev()
        .find_map(|(_, b)| b.leases.iter().find(|l| l.key == key))
        .expect("reported after the revocation")
        .clone();
    assert!(!last.done && last.error.is_none(), "{last:?}");
    assert_eq!(last.counters.sent, accepted, "the final counters match what the partner accepted");
    assert!(last.counters.sent < world.records, "stopped early");
    let keys = world.sim.keys();
    let below: Vec<u64> = world.valid_offsets.iter().copied().filter(|o| *o < last.checkpoint).collect();
    assert!(!below.is_empty());
    for offset in below {
        let key = courier_worker::request::idempotency_key(NAMESPACE, "pkg", &world.data_url, offset);
        assert!(keys.contains_key(&key), "record at {offset} is below the checkpoint but was not accepted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_retry_after_is_reported_at_once_not_at_the_next_regular_heartbeat() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let world = Arc::new(world(50).await);
    world.sim.throttle_next(1, 5);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = world.clone();
    let url = fake_coordinator(
        seen.clone(),
        Arc::new(move |_, n| {
            // Regular heartbeats only every 60 s: a report within the test's wait is an early one.
            let mut answer = w.answer(5000, n == 0, 120_000);
            answer.heartbeat_interval_ms = 60_000;
            Some(answer)
        }),
    )
    .await;
    let (shutdown, running) = world.spawn_driver(&url);
    let at =
        wait_for(&seen, "a heartbeat reporting the Retry-After", |b| b.throttle.retry_after_until_unix_ms.is_some())
            .await;
    let reported = seen.lock().expect("lock").beats[at].1.throttle.clone();
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await.expect("stops");
    assert_eq!(at, 1, "the report right after the lease was granted");
    assert_eq!(reported.too_many_requests, 1);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    let until = reported.retry_after_until_unix_ms.unwrap_or_default();
    assert!(until > now + 2_000 && until <= now + 6_000, "the partner's 5 s pause: {until} vs now {now}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_coordinator_holds_new_records_after_the_lease_ttl_and_resumes_when_back() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let world = Arc::new(world(2000).await);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let down = Arc::new(AtomicBool::new(false));
    let (w, d) = (world.clone(), down.clone());
    let url = fake_coordinator(
        seen.clone(),
        Arc::new(move |_, n| (!d.load(Ordering::SeqCst)).then(|| w.answer(200, n == 0, 300))),
    )
    .await;
    let (shutdown, running) = world.spawn_driver(&url);
    wait_for(&seen, "progress", |b| b.leases.iter().any(|l| l.counters.sent >= 50)).await;
    down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let held = world.sim.stats().accepted;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(world.sim.stats().accepted, held, "no new records while the coordinator is away");
    assert!(held < world.records, "stopped before the end");
    down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(world.sim.stats().accepted > held, "sending resumes once the coordinator answers");
    shutdown.cancel();
    let end = tokio::time::timeout(Duration::from_secs(10), running).await.expect("stops").expect("task");
    assert!(end.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_with_only_offsets_sends_just_those_records() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let world = Arc::new(world(200).await);
    let picked: Vec<u64> = world.valid_offsets.iter().copied().step_by(37).collect();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (w, only) = (world.clone(), picked.clone());
    let url = fake_coordinator(
        seen.clone(),
        Arc::new(move |_, n| {
            let mut answer = w.answer(5000, n == 0, 10_000);
            for lease in &mut answer.granted {
                lease.only_offsets = only.clone();
            }
            Some(answer)
        }),
    )
    .await;
    let (shutdown, running) = world.spawn_driver(&url);
    let done = wait_for(&seen, "the lease is done", |b| b.leases.iter().any(|l| l.done)).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await.expect("stops");

    let report = seen.lock().expect("lock").beats[done].1.leases.iter().find(|l| l.done).expect("done").clone();
    assert_eq!(report.counters.read, picked.len() as u64);
    assert_eq!(report.counters.sent, picked.len() as u64);
    let expected: std::collections::HashSet<String> = picked
        .iter()
        .map(|o| courier_worker::request::idempotency_key(NAMESPACE, "pkg", &world.data_url, *o))
        .collect();
    let accepted: std::collections::HashSet<String> = world.sim.keys().into_keys().collect();
    assert_eq!(accepted, expected);
}

/// The Secret a Destination's bearer auth names, as the kubelet mounts it in worker pods.
const TOKEN_SECRET: &str = "partner-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotated_at_the_partner_before_the_mount_changes_loses_no_record_to_401s() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let world = Arc::new(world(1200).await);
    let with_token =
        |token: &str| SimConfig { auth: courier_e2e::sim::Auth::Bearer { token: token.into() }, ..world.sim.config() };
    world.sim.set_config(with_token("old-token")).expect("simulator takes the old token");
    let mounts = world._dir.path().join("mounts");
    std::fs::create_dir_all(mounts.join(TOKEN_SECRET)).expect("mount dir");
    std::fs::write(mounts.join(TOKEN_SECRET).join("token"), "old-token").expect("old token");
    let auth = format!("  auth:\n    bearer:\n      secretRef: {{name: {TOKEN_SECRET}, key: token}}\n");
    let path = write(world._dir.path(), "d-auth.yaml", &destination_yaml(&world.sim.url(), 100_000, 32, &auth));
    let destination =
        DestinationConfig { generation: 3, spec: (&config::load_destination(&path).expect("Destination").spec).into() };

    let seen = Arc::new(Mutex::new(Seen::default()));
    let w = world.clone();
    let respond = move |_: &HeartbeatRequest, n: usize| {
        let mut answer = w.answer(400, n == 0, 10_000);
        answer.destination = (n == 0).then(|| destination.clone());
        Some(answer)
    };
    let url = fake_coordinator(seen.clone(), Arc::new(respond)).await;
    let mut driver = world.driver_with(&url, SecretStore::empty().with_mounts(&mounts));
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let running = tokio::spawn(async move { driver.run(stop).await });

    wait_for(&seen, "a third of the records sent", |b| b.leases.iter().any(|l| l.counters.sent >= 400)).await;
    // The partner takes only the new token from now on; the kubelet swaps the mounted file
    // two seconds later (in a cluster: up to its sync period). Sending goes on at 400/s.
    world.sim.set_config(with_token("new-token")).expect("simulator takes the new token");
    let before = world.sim.stats().accepted;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused_before_the_mount = world.sim.stats().rejected.unauthorized;
    std::fs::write(mounts.join(TOKEN_SECRET).join("token"), "new-token").expect("rotated token");

    let done = wait_for(&seen, "the lease is done", |b| b.leases.iter().any(|l| l.done)).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await.expect("stops");
    let stats = world.sim.stats();
    let beats = seen.lock().expect("lock").beats.clone();
    let report = beats[done].1.leases.iter().find(|l| l.done).cloned().expect("report");
    assert!(before >= 400 && before < world.records, "rotated mid-delivery: {before} of {}", world.records);
    eprintln!("401s {}, counters {:?}, unique {}", stats.rejected.unauthorized, report.counters, stats.unique_keys);
    // Refused: the attempts in flight at the switch (at most 32), then nothing while held (the
    // first probe would go 5 s after the first refusal); 2 s at 400/s unheld would be 800.
    assert!(refused_before_the_mount >= 1, "the switch was seen as 401s");
    assert!(stats.rejected.unauthorized <= 32, "sends were held: {} refused", stats.rejected.unauthorized);
    // None of them dead-lettered: the dead letters are the fixture's malformed lines alone.
    assert_eq!(report.counters.dead_lettered, world.malformed);
    assert_eq!(report.counters.failed, world.malformed, "failed: the malformed lines alone");
    assert_eq!(report.counters.sent, world.records, "every record sent");
    assert_eq!(stats.unique_keys, world.records, "every record accepted");
    assert_eq!(stats.duplicates, 0, "exactly once");
    // The worker told the coordinator it waited for the rotated Secret.
    let held = beats.iter().filter_map(|(_, b)| b.stats.credentials_refused.as_ref()).find(|c| c.holding);
    assert_eq!(held.map(|c| c.status), Some(401), "a heartbeat reported the wait");
    assert!(beats.last().is_some_and(|(_, b)| b.stats.credentials_refused.is_none()), "the wait ended");
}
