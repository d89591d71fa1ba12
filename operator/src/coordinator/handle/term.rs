//! The coordinator's leadership terms: beginning one, forgetting one, the warm-up's worker pods
//! of an earlier leader, and the farewell of a worker whose pod is gone.

use std::collections::BTreeSet;

use courier_core::protocol::{HeartbeatRequest, HeartbeatResponse};

use super::{CLOCK_MARGIN_MS, Coordinator, Farewell, HeartbeatError, now_ms};
use crate::coordinator::leases::LeaseTable;
use crate::coordinator::types::ObjectKey;
use crate::planner::Millis;

impl Coordinator {
    /// Starts leadership term `term` at `now`: forgets everything of any earlier term (the
    /// state is rebuilt from the objects' status and the workers' reports) and enters the
    /// warm-up during which grants of an earlier leader are assumed to be in force.
    pub fn begin_term(&self, term: u64, now: Millis) {
        let mut state = self.lock();
        state.destinations.clear();
        state.leases = LeaseTable::new(u64::from(self.inner.config.lease_ttl_ms) + CLOCK_MARGIN_MS);
        state.last_runtime.clear();
        state.orphans.clear();
        state.term = Some((term, now));
    }

    /// Names the Destination's worker pods that exist now (of those that may hold an earlier
    /// leader's grants). During the warm-up, once each pod named the first time has reported
    /// (or is gone), nothing granted by an earlier leader is unknown any more: the warm-up ends
    /// early. With none, it ends at once. Leases restored from status stay held for the pods
    /// named, and end within one TTL for those that are not (see
    /// [`LeaseTable::hold_restored_for`]).
    pub fn set_prior_workers(&self, namespace: &str, name: &str, pods: Vec<String>) {
        self.set_prior_workers_at(namespace, name, pods, now_ms());
    }

    /// [`Self::set_prior_workers`] at a given instant.
    pub fn set_prior_workers_at(&self, namespace: &str, name: &str, pods: Vec<String>, now: Millis) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(d) = state.destinations.get_mut(&ObjectKey::new(namespace, name)) else { return };
        let pods: BTreeSet<String> = pods.into_iter().collect();
        d.prior_workers(pods.iter().cloned());
        let cut = state.leases.hold_restored_for(namespace, name, &pods, now);
        if cut > 0 {
            tracing::info!(%namespace, destination = %name, leases = cut, "leases of an earlier leader held by worker pods that are gone: granted again after one TTL");
        }
        d.worker_pods = Some(pods);
    }

    /// Whether the Destination is warming up, or has leases restored from status that their
    /// workers have not reported yet (the controller then names its worker pods).
    pub fn needs_prior_workers(&self, namespace: &str, name: &str) -> bool {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.destinations.get_mut(&ObjectKey::new(namespace, name)).is_some_and(|d| d.warming_up(now_ms()))
            || state.leases.has_restored(namespace, name)
    }

    /// The replicas of the Destination's worker Deployment, as the controller finds it: the
    /// first call for a Destination in a term is where its autoscaler starts (see
    /// `DestinationState::observe_replicas`); later ones are ignored.
    pub fn observe_worker_replicas(&self, namespace: &str, name: &str, replicas: i32) {
        let mut state = self.lock();
        if let Some(d) = state.destinations.get_mut(&ObjectKey::new(namespace, name)) {
            d.observe_replicas(replicas);
        }
    }

    /// Forgets every Destination, package and lease, and the term. Announces nothing.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.destinations.clear();
        state.leases = LeaseTable::new(u64::from(self.inner.config.lease_ttl_ms) + CLOCK_MARGIN_MS);
        state.last_runtime.clear();
        state.orphans.clear();
        state.term = None;
    }

    /// [`Self::heartbeat_in_term`] for a worker whose pod is gone from the API (force-deleted;
    /// the process runs on until the kubelet kills it): its reports count, and it is drained —
    /// its leases are revoked (what it reports now is their final report, so the shards are
    /// free at once from where it got to) and it gets no share and no lease.
    pub fn farewell_in_term(
        &self,
        req: &HeartbeatRequest,
        now: Millis,
        term: u64,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        let req = HeartbeatRequest { draining: true, free_slots: 0, ..req.clone() };
        self.answer(&req, now, Some(term), Farewell::Yes)
    }
}

impl Coordinator {
    /// Whether `worker` holds leases of packages of Destination `namespace/destination`.
    pub fn holds_leases(&self, worker: &str, namespace: &str, destination: &str) -> bool {
        self.lock().leases.holds(worker, namespace, destination)
    }
}

#[cfg(test)]
mod tests {
    use courier_api::destination::DestinationSpec;

    use crate::coordinator::handle_tests::{dest_spec, hb, progress};
    use crate::coordinator::leases::tests::plan;
    use crate::coordinator::{Coordinator, CoordinatorConfig};
    use crate::planner::Millis;

    #[test]
    fn a_worker_whose_pod_is_gone_is_drained_and_its_shards_go_on_from_where_it_got_to() {
        // Past the warm-up of term 1, two workers; w1 holds both shards.
        let t0 = 1_000_000;
        let c = Coordinator::new(CoordinatorConfig::default());
        c.begin_term(1, t0 - 60_000);
        c.upsert_destination_at("ns", "d", &dest_spec(100), 1, t0);
        c.upsert_package_at(plan("p", "d", 0, 0, 2), t0);
        let granted = c.heartbeat_in_term(&hb("w1", 1, 10, 0, 2), t0, 1).expect("ok").granted;
        assert_eq!(granted.len(), 2);
        c.heartbeat_in_term(&hb("w2", 1, 10, 0, 2), t0 + 10, 1).expect("ok");

        // w1's pod was force-deleted; its process reports once more, not draining yet.
        let mut last = hb("w1", 1, 10, 50, 0);
        last.leases = vec![progress(&granted[0], 40, 4, false), progress(&granted[1], 150, 5, false)];
        let r = c.farewell_in_term(&last, t0 + 100, 1).expect("ok");
        assert_eq!(r.share.requests_per_second, 0, "drained: no share");
        assert!(r.granted.is_empty(), "and no lease");
        assert_eq!(r.revoked.len(), 2, "its leases are revoked");
        let snap = c.package_snapshot("ns", "p").expect("known");
        assert_eq!(snap.counters.sent, 9, "what it reported counts");

        // The shards are free at once, from where w1 got to (not a lease TTL later).
        let again = c.heartbeat_in_term(&hb("w2", 1, 10, 0, 2), t0 + 200, 1).expect("ok").granted;
        let resume: Vec<u64> = again.iter().map(|g| g.checkpoint).collect();
        assert_eq!(resume, vec![40, 150]);
    }

    /// 100 requests/s, 0–8 workers of 16 in flight, one minute of cooldown.
    fn spec() -> DestinationSpec {
        serde_json::from_value(serde_json::json!({
            "endpoint": {"url": "http://127.0.0.1:1/"},
            "rateLimit": {"requestsPerSecond": 100},
            "workers": {"min": 0, "max": 8, "cooldownSeconds": 60, "maxInFlightPerWorker": 16}
        }))
        .expect("valid spec")
    }

    fn new_term_finding(replicas: i32, t0: Millis) -> Coordinator {
        let c = Coordinator::new(CoordinatorConfig::default());
        c.begin_term(2, t0);
        c.upsert_destination_at("ns", "d", &spec(), 1, t0);
        c.observe_worker_replicas("ns", "d", replicas);
        c
    }

    fn desired(c: &Coordinator, now: Millis) -> i32 {
        c.destination_snapshot_at("ns", "d", now).map_or(-1, |d| d.desired_replicas)
    }

    #[test]
    fn a_new_term_keeps_the_running_workers_while_it_knows_no_backlog_then_cools_down() {
        let t0 = 1_000_000;
        let c = new_term_finding(3, t0);
        c.observe_worker_replicas("ns", "d", 0);
        assert_eq!(desired(&c, t0 + 1), 3, "no backlog known yet: the three running are kept");
        assert_eq!(desired(&c, t0 + 59_999), 3, "through the cooldown");
        assert_eq!(desired(&c, t0 + 60_001), 0, "idle for the whole cooldown: scaled to min");
    }

    #[test]
    fn a_new_term_keeps_the_running_workers_until_it_has_measured_the_latency() {
        let t0 = 1_000_000;
        let c = new_term_finding(3, t0);
        c.upsert_package(plan("p", "d", 0, 0, 4));
        assert_eq!(desired(&c, t0 + 1), 3, "backlog, but no latency heard in this term");
        let mut measuring = hb("w1", 1, 10, 0, 0);
        measuring.stats.latency_p50_micros = 50_000;
        c.heartbeat(&measuring, t0 + 2).expect("answered");
        // 16 in flight at 50 ms is 320 requests/s a worker: one carries the limit.
        assert_eq!(desired(&c, t0 + 3), 1, "measured: what the limit needs");
    }

    #[test]
    fn a_destination_without_a_deployment_starts_from_none() {
        let c = Coordinator::new(CoordinatorConfig::default());
        c.begin_term(2, 0);
        c.upsert_destination_at("ns", "d", &spec(), 1, 0);
        assert_eq!(desired(&c, 1), 0);
        c.upsert_package(plan("p", "d", 0, 0, 4));
        assert_eq!(desired(&c, 2), 1, "one worker measures the latency");
    }
}
