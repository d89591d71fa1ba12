//! A worker whose Destination is gone still reports: its last reports count.

use std::collections::BTreeSet;

use courier_core::protocol::HeartbeatRequest;

use super::State;
use crate::coordinator::types::ObjectKey;
use crate::planner::Millis;

/// Takes in the lease reports of a worker whose Destination is gone (only those of packages
/// of that Destination) and frees the leases it no longer reports. Returns the packages
/// touched.
pub(super) fn take_reports_of_a_gone_destination(
    state: &mut State,
    req: &HeartbeatRequest,
    now: Millis,
) -> BTreeSet<ObjectKey> {
    let mut touched = BTreeSet::new();
    for report in &req.leases {
        let pkey = ObjectKey::new(&report.key.namespace, &report.key.package);
        let ours = report.key.namespace == req.namespace
            && state.leases.package(&pkey).is_some_and(|p| p.destination == req.destination);
        if ours {
            state.leases.report(&req.worker, report, now);
            touched.insert(pkey);
        }
    }
    let reported: Vec<_> = req.leases.iter().map(|r| r.key.clone()).collect();
    for key in state.leases.release_unreported(&req.worker, &req.namespace, &req.destination, &reported) {
        touched.insert(ObjectKey::new(&key.namespace, &key.package));
    }
    touched
}
