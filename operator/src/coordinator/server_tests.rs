//! The heartbeat server over real HTTP on loopback, authentication disabled.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use courier_core::protocol::{HEARTBEAT_PATH, HeartbeatRequest, HeartbeatResponse};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{oneshot, watch};

use super::handle_tests::{dest_spec, hb, progress};
use super::leases::tests::plan;
use super::server::{AuthMode, RefusalLabels, ServeOptions, bind, serve_with};
use super::*;

pub(crate) struct TestServer {
    pub addr: SocketAddr,
    pub coordinator: Coordinator,
    pub leader: watch::Sender<crate::leader::LeaderState>,
    /// Heartbeats refused, by status code.
    pub refusals:
        prometheus_client::metrics::family::Family<RefusalLabels, prometheus_client::metrics::counter::Counter>,
    stop: Option<oneshot::Sender<()>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl TestServer {
    pub(crate) async fn start(config: CoordinatorConfig, auth: AuthMode) -> TestServer {
        let coordinator = Coordinator::new(config);
        // Term 1 began long ago: no warm-up in these tests.
        coordinator.begin_term(1, 0);
        let (leader, leader_rx) = crate::leader::Leadership::manual(true);
        let listener = bind("127.0.0.1:0".parse().expect("loopback")).await.expect("binds");
        let addr = listener.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServeOptions::plain(auth);
        let refusals = options.refusals.clone();
        tokio::spawn(serve_with(listener, coordinator.clone(), leader_rx, options, async move {
            let _ = stopped.await;
        }));
        let client = Client::builder(TokioExecutor::new()).build_http();
        TestServer { addr, coordinator, leader, refusals, stop: Some(stop), client }
    }

    pub(crate) async fn post(&self, body: Vec<u8>, token: Option<&str>) -> (StatusCode, Bytes) {
        let mut req =
            Request::post(format!("http://{}{HEARTBEAT_PATH}", self.addr)).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = self.client.request(req.body(Full::new(Bytes::from(body))).expect("request")).await.expect("answer");
        let status = resp.status();
        (status, resp.into_body().collect().await.expect("body").to_bytes())
    }

    pub(crate) async fn heartbeat(&self, req: &HeartbeatRequest) -> Result<HeartbeatResponse, (StatusCode, String)> {
        let (status, body) = self.post(serde_json::to_vec(req).expect("json"), None).await;
        if status != StatusCode::OK {
            return Err((status, String::from_utf8_lossy(&body).into_owned()));
        }
        Ok(serde_json::from_slice(&body).expect("a heartbeat response"))
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let req = Request::get(format!("http://{}{path}", self.addr)).body(Full::new(Bytes::new())).expect("request");
        let resp = self.client.request(req).await.expect("answer");
        let status = resp.status();
        (status, String::from_utf8_lossy(&resp.into_body().collect().await.expect("body").to_bytes()).into_owned())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn server_with_package(ttl_ms: u32, shards: u32) -> TestServer {
    let config = CoordinatorConfig { lease_ttl_ms: ttl_ms, ..CoordinatorConfig::default() };
    let s = TestServer::start(config, AuthMode::InsecureSkipAuth).await;
    s.coordinator.upsert_destination("ns", "d", &dest_spec(100), 1);
    s.coordinator.upsert_package(plan("p", "d", 0, 0, shards));
    s
}

#[tokio::test]
async fn a_worker_is_granted_leases_then_reports_progress_and_completion_over_http() {
    let s = server_with_package(10_000, 2).await;
    let first = s.heartbeat(&hb("w1", 0, 0, 0, 4)).await.expect("200");
    assert_eq!(first.granted.len(), 2);
    assert_eq!(first.share.requests_per_second, 100);
    assert!(first.destination.is_some());
    let mut req = hb("w1", 1, 10, 100, 2);
    req.leases = vec![progress(&first.granted[0], 40, 4, false), progress(&first.granted[1], 100, 10, true)];
    let second = s.heartbeat(&req).await.expect("200");
    assert!(second.revoked.is_empty() && second.granted.is_empty() && second.destination.is_none());
    let snap = s.coordinator.package_snapshot("ns", "p").expect("known");
    assert_eq!((snap.counters.sent, snap.completed_ranges.as_str()), (14, "1"));
    assert_eq!(snap.active.first().map(|a| (a.worker.as_str(), a.checkpoint)), Some(("w1", 40)));
}

#[tokio::test]
async fn an_expired_lease_goes_to_another_worker_from_its_checkpoint_and_the_first_is_revoked() {
    let s = server_with_package(300, 1).await;
    let first = s.heartbeat(&hb("w1", 1, 10, 0, 1)).await.expect("200");
    let lease = first.granted[0].clone();
    let mut renew = hb("w1", 1, 10, 0, 0);
    renew.leases = vec![progress(&lease, 30, 3, false)];
    s.heartbeat(&renew).await.expect("200");
    // The lease TTL plus the coordinator's clock margin.
    tokio::time::sleep(Duration::from_millis(300 + CLOCK_MARGIN_MS + 100)).await;
    let second = s.heartbeat(&hb("w2", 1, 10, 0, 1)).await.expect("200");
    assert_eq!(second.granted.len(), 1, "the expired shard is leased again");
    assert_eq!(second.granted[0].checkpoint, 30);
    assert_eq!(second.granted[0].counters.sent, 3);
    renew.leases = vec![progress(&lease, 60, 6, false)];
    let late = s.heartbeat(&renew).await.expect("200");
    assert_eq!(late.revoked, vec![lease.key.clone()]);
    assert_eq!(
        s.coordinator.package_snapshot("ns", "p").map(|p| p.counters.sent),
        Some(3),
        "the stale report counts nothing"
    );
}

#[tokio::test]
async fn suspending_a_package_revokes_its_lease_at_the_next_heartbeat() {
    let s = server_with_package(10_000, 1).await;
    let first = s.heartbeat(&hb("w1", 1, 10, 0, 1)).await.expect("200");
    s.coordinator.set_package_suspended("ns", "p", true);
    let mut req = hb("w1", 1, 10, 0, 1);
    req.leases = vec![progress(&first.granted[0], 0, 0, false)];
    let next = s.heartbeat(&req).await.expect("200");
    assert_eq!(next.revoked, vec![first.granted[0].key.clone()]);
    assert!(next.granted.is_empty());
}

#[tokio::test]
async fn a_replica_that_does_not_lead_answers_503_and_serves_again_once_it_leads() {
    let s = server_with_package(10_000, 1).await;
    s.leader.send_replace(crate::leader::LeaderState::Following);
    let (status, body) = s.heartbeat(&hb("w1", 1, 10, 0, 1)).await.expect_err("not the leader");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("not the leader"), "{body}");
    let (status, health) = s.get("/healthz").await;
    assert_eq!((status, health.as_str()), (StatusCode::OK, "ok (standby)\n"));
    s.leader.send_replace(crate::leader::LeaderState::Leading {
        until: tokio::time::Instant::now() + std::time::Duration::from_secs(3600),
        term: 1,
    });
    assert_eq!(s.heartbeat(&hb("w1", 1, 10, 0, 1)).await.map(|r| r.granted.len()), Ok(1));
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let s = server_with_package(10_000, 1).await;
    let (status, body) = s.post(b"{not json".to_vec(), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    let mut other = hb("w1", 1, 10, 0, 1);
    other.destination = "nope".into();
    assert_eq!(s.heartbeat(&other).await.map_err(|e| e.0).err(), Some(StatusCode::NOT_FOUND));
    assert_eq!(s.get(HEARTBEAT_PATH).await.0, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(s.get("/other").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_server_ticks_so_a_silent_worker_lease_expires_without_heartbeats() {
    let s = server_with_package(300, 1).await;
    s.heartbeat(&hb("w1", 1, 10, 0, 1)).await.expect("200");
    let mut changes = s.coordinator.subscribe();
    let expired = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Change::Package(_)) = changes.recv().await
                && s.coordinator.package_snapshot("ns", "p").is_some_and(|p| p.active.is_empty())
            {
                return;
            }
        }
    })
    .await;
    assert!(expired.is_ok(), "the lease expired on a tick");
}
