//! Publish: the package's status queued for the status writer, and the Events of its
//! condition changes.

use courier_api::conditions::{ConditionStatus, PackageConditionType};
use courier_api::{DeliveryPackage, DeliveryPackageStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use super::status;
use crate::context::Context;
use crate::controller::{EventPolicy, publish_condition_changes};

fn is_true(c: &Condition) -> bool {
    c.status == ConditionStatus::True.as_str()
}

/// A `Progressing=False` past the progress deadline (not the end of a finished package, nor a
/// pause the user asked for).
fn is_stall(c: &Condition) -> bool {
    use courier_api::conditions::PackageReason as R;
    !is_true(c)
        && [
            R::PartnerThrottling,
            R::PartnerFailing,
            R::PartnerUnreachable,
            R::ProgressDeadlineExceeded,
            R::DestinationSuspended,
            R::DestinationNotFound,
            R::DestinationNotReady,
            R::DatumNotFound,
            R::DatumNotReady,
        ]
        .iter()
        .any(|r| r.as_str() == c.reason)
}

/// Events of a package: failures and planning trouble are warnings; a condition the package did
/// not have is announced once it is True.
const EVENTS: EventPolicy = EventPolicy {
    message_matters: false,
    warning: |c| {
        c.type_ == PackageConditionType::Failed.as_str()
            || (c.type_ == PackageConditionType::Planned.as_str() && !is_true(c))
            || (c.type_ == PackageConditionType::Progressing.as_str() && is_stall(c))
    },
    announce_new: is_true,
};

/// Queues the status; urgent (and with Events) when the phase or a condition changed.
pub async fn write_status(
    ctx: &Context,
    pkg: &DeliveryPackage,
    prior: &DeliveryPackageStatus,
    new: DeliveryPackageStatus,
) {
    let (Some(ns), name) = (pkg.namespace(), pkg.name_any()) else { return };
    let urgent = status::significant_change(prior, &new);
    if urgent {
        publish_condition_changes(&ctx.recorder, pkg, &prior.conditions, &new.conditions, &EVENTS).await;
    }
    if let Some(on_object) = &pkg.status {
        ctx.status.observed_status::<DeliveryPackage>(&ns, &name, on_object);
    }
    ctx.status.submit_status::<DeliveryPackage>(&ns, &name, &new, urgent);
}
