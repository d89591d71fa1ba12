//! Build (async only for the listing it plans from): the shards of an attempt and what is
//! already done of them, and the plan the coordinator is given.

use courier_api::package::{PinnedDatum, RetryScope};
use courier_api::{DeliveryPackage, DeliveryPackageStatus};
use courier_core::format::FormatSpec;

use super::dereference;
use super::plan::{self, PlanError};
use super::status::AttemptInfo;
use crate::coordinator::{ObjectKey, PackagePlan, PlannedShard, RestoredProgress};

/// The shards of this attempt and what is already done of them.
pub struct Planned {
    pub shards: Vec<PlannedShard>,
    pub restored: RestoredProgress,
    /// Distinct files the shards cover.
    pub files: i32,
}

/// Lists the package's files and plans the attempt's shards: every record of them, the
/// failed records of the last attempt only (a retry of `FailedRecords`), less what the
/// attempt already did (from status) when it goes on.
pub async fn plan_attempt(
    pkg: &DeliveryPackage,
    prior: &DeliveryPackageStatus,
    attempt: &AttemptInfo,
    format: &FormatSpec,
    target: u64,
) -> Result<Planned, PlanError> {
    let all = plan::list_and_plan(pkg, format, target).await?;
    let files = i32::try_from(all.iter().map(|s| &s.spec.url).collect::<std::collections::BTreeSet<_>>().len())
        .unwrap_or(i32::MAX);
    if attempt.started_now && pkg.spec.retry_scope == RetryScope::FailedRecords {
        let previous = plan::dead_letter_path(pkg, attempt.attempt.saturating_sub(1));
        let dead = dereference::read_dead_letters(&previous).await.map_err(PlanError::Unavailable)?;
        let shards = plan::failed_record_shards(&all, &dead)
            .into_iter()
            .map(|(s, offsets)| with_only_offsets(s, offsets))
            .collect();
        return Ok(Planned { shards, restored: RestoredProgress::default(), files });
    }
    let restored = if attempt.started_now { RestoredProgress::default() } else { plan::restored_from(prior) };
    Ok(Planned { shards: all, restored, files })
}

/// A planned shard restricted to some record offsets.
fn with_only_offsets(shard: PlannedShard, only_offsets: Vec<u64>) -> PlannedShard {
    PlannedShard { only_offsets, ..shard }
}

/// The plan of attempt `attempt` of `pkg` as the coordinator takes it.
pub fn package_plan(
    pkg: &DeliveryPackage,
    key: &ObjectKey,
    uid: &str,
    attempt: &AttemptInfo,
    pinned: &PinnedDatum,
    planned: Planned,
) -> PackagePlan {
    PackagePlan {
        key: key.clone(),
        uid: uid.to_owned(),
        destination: pkg.spec.destination_ref.name.clone(),
        attempt: attempt.attempt,
        priority: pkg.spec.priority,
        created_unix_ms: pkg
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| u64::try_from(t.0.as_millisecond()).unwrap_or(0)),
        suspended: pkg.spec.suspend,
        backoff_limit: u32::try_from(pkg.spec.backoff_limit).unwrap_or(0),
        datum: plan::pinned_spec(pinned),
        dead_letter_path: attempt.dead_letter_path.clone(),
        shards: planned.shards,
        restored: planned.restored,
    }
}

#[cfg(test)]
mod tests {
    use courier_api::Datum;
    use courier_core::shard::{ShardKind, ShardSpec};

    use super::*;

    #[test]
    fn the_plan_carries_the_attempt_the_pinned_datum_and_the_package_settings() {
        let pkg: DeliveryPackage = serde_norway::from_str(
            "apiVersion: courier.dev/v1alpha1\nkind: DeliveryPackage\nmetadata: { name: p, namespace: ns, creationTimestamp: \"1970-01-01T00:00:02Z\" }\nspec:\n  destinationRef: { name: d }\n  datumRef: { name: u }\n  source: { files: { paths: [\"/data/*.jsonl\"] } }\n  priority: 7\n  suspend: true\n  backoffLimit: 2\n",
        )
        .expect("valid package");
        let datum: Datum = serde_norway::from_str(
            "apiVersion: courier.dev/v1alpha1\nkind: Datum\nmetadata: { name: u, namespace: ns, generation: 4 }\nspec:\n  format: { type: JsonLines }\n  request: { pathTemplate: \"/v1/{{ id }}\" }\n",
        )
        .expect("valid datum");
        let attempt =
            AttemptInfo { attempt: 3, nonce: None, dead_letter_path: "file:///dl/p/3".into(), started_now: false };
        let shard = PlannedShard {
            spec: ShardSpec { url: "file:///data/a.jsonl".into(), kind: ShardKind::ByteRange { start: 0, end: 10 } },
            bytes: 10,
            only_offsets: Vec::new(),
        };
        let planned = Planned { shards: vec![shard.clone()], restored: RestoredProgress::default(), files: 1 };
        let key = ObjectKey::new("ns", "p");
        let plan = package_plan(&pkg, &key, "uid-1", &attempt, &plan::pin(&datum), planned);
        assert_eq!((plan.key, plan.uid.as_str(), plan.destination.as_str()), (key, "uid-1", "d"));
        assert_eq!((plan.attempt, plan.priority, plan.suspended, plan.backoff_limit), (3, 7, true, 2));
        assert_eq!(plan.created_unix_ms, 2_000);
        assert_eq!(plan.dead_letter_path, "file:///dl/p/3");
        assert_eq!(plan.datum.request.path_template, "/v1/{{ id }}");
        assert_eq!(plan.shards, vec![shard]);
    }
}
