//! A package's life around its reconciles: forgotten by the coordinator when finished or
//! deleted, deleted itself after `ttlSecondsAfterFinished`, and counted by phase.

use std::time::Duration;

use courier_api::{DeliveryPackage, DeliveryPackageStatus};
use kube::api::DeleteParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};

use crate::context::Context;
use crate::controller::watches::gone_from;
use crate::controller::{Error, Result};
use crate::coordinator::ObjectKey;

/// Drops the package from the coordinator, if this term registered it.
pub fn forget(ctx: &Context, key: &ObjectKey) {
    if ctx.registered().remove(key).is_some() {
        ctx.coordinator.remove_package(&key.namespace, &key.name);
    }
}

/// A finished package: delete it once `ttlSecondsAfterFinished` has passed.
pub async fn finished(pkg: &DeliveryPackage, ctx: &Context, status: &DeliveryPackageStatus) -> Result<Action> {
    let (Some(ttl), Some(done)) = (pkg.spec.ttl_seconds_after_finished, status.completion_time.as_ref()) else {
        return Ok(Action::await_change());
    };
    let left = done.0.as_second() + i64::from(ttl) - jiff::Timestamp::now().as_second();
    if left > 0 {
        return Ok(Action::requeue(Duration::from_secs(left.unsigned_abs())));
    }
    let ns = pkg.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = pkg.name_any();
    Api::<DeliveryPackage>::namespaced(ctx.client.clone(), &ns)
        .delete(&name, &DeleteParams::background())
        .await
        .map_err(|source| Error::Delete { what: format!("DeliveryPackage {ns}/{name}"), source })?;
    ctx.status.forget_status::<DeliveryPackage>(&ns, &name);
    tracing::info!("deleted after ttlSecondsAfterFinished");
    Ok(Action::await_change())
}

/// Sets the packages-by-phase gauge and the per-package series from the watch cache.
pub fn record_phases(ctx: &Context, store: &Store<DeliveryPackage>) {
    use crate::metrics::{PHASES, PackageFigures, PhaseLabel};
    let figures: Vec<PackageFigures> = store.state().iter().map(|p| PackageFigures::of(p)).collect();
    for phase in PHASES {
        let n = figures.iter().filter(|f| f.phase == phase).count();
        ctx.metrics.packages_by_phase.get_or_create(&PhaseLabel { phase: phase.to_owned() }).set(n as i64);
    }
    ctx.metrics.record_packages(figures);
}

/// Removes packages that no longer exist from the coordinator and the status writer.
pub fn collect_garbage(ctx: &Context, store: &Store<DeliveryPackage>) {
    let gone = gone_from(store, ctx.registered().keys());
    for key in gone {
        tracing::info!(namespace = %key.namespace, name = %key.name, "package deleted");
        forget(ctx, &key);
        ctx.status.forget_status::<DeliveryPackage>(&key.namespace, &key.name);
    }
}
