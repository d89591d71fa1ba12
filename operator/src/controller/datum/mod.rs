//! The Datum controller: compiles the request templates and checks the format, reporting the
//! outcome as the `Ready` condition (and an Event when it changes).

pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use courier_api::conditions::{ConditionStatus, DatumConditionType, DatumReason, set_condition};
use courier_api::{Datum, DatumStatus};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;

use super::{Error, EventPolicy, Result, publish_condition_changes};
use crate::context::Context;

const CONTROLLER: &str = "datum";

/// Runs the controller over the term's shared Datum watch (`datums`, the store with its
/// subscription) until `shutdown` completes.
pub async fn run(
    ctx: Arc<Context>,
    datums: (Store<Datum>, impl futures::Stream<Item = Arc<Datum>> + Send + 'static),
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (store, subscription) = datums;
    Controller::for_shared_stream(subscription, store)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn error_policy(_datum: Arc<Datum>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(%err, "datum reconcile failed");
    ctx.metrics.failed(CONTROLLER, err.label());
    Action::requeue(err.retry_after())
}

/// The status of `datum` after validation.
pub fn build_status(
    datum: &Datum,
    prior: Option<DatumStatus>,
    outcome: Result<(), &validate::Invalid>,
    now: &Time,
) -> DatumStatus {
    let generation = datum.metadata.generation;
    let mut status = prior.or_else(|| datum.status.clone()).unwrap_or_default();
    status.observed_generation = generation;
    match outcome {
        Ok(()) => set_condition(
            &mut status.conditions,
            DatumConditionType::Ready,
            true,
            DatumReason::Compiled,
            "templates compile and the format is consistent",
            generation,
            now,
        ),
        Err(inv) => set_condition(
            &mut status.conditions,
            DatumConditionType::Ready,
            false,
            inv.reason,
            inv.message.clone(),
            generation,
            now,
        ),
    };
    status
}

/// Events of a Datum: every change of Ready (its message too), a warning unless it is True.
const EVENTS: EventPolicy = EventPolicy {
    message_matters: true,
    warning: |c| c.status != ConditionStatus::True.as_str(),
    announce_new: |_| true,
};

/// Reconciles one Datum.
#[tracing::instrument(skip_all, fields(namespace = datum.namespace(), name = datum.name_any()))]
pub async fn reconcile(datum: Arc<Datum>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let ns = datum.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = datum.name_any();
    let outcome = validate::validate(&datum);
    let now = Time(jiff::Timestamp::now());
    // The landing loop writes the same status (its section and conditions): start from the
    // freshest one queued here.
    let prior = ctx.status.latest_status::<Datum>(&ns, &name);
    let new_status = build_status(&datum, prior, outcome.as_ref().map(|_| ()), &now);
    let ready = |s: &[Condition]| {
        s.iter().filter(|c| c.type_ == DatumConditionType::Ready.as_str()).cloned().collect::<Vec<_>>()
    };
    let old = ready(datum.status.as_ref().map_or(&[][..], |s| s.conditions.as_slice()));
    publish_condition_changes(&ctx.recorder, datum.as_ref(), &old, &ready(&new_status.conditions), &EVENTS).await;
    ctx.status.submit_status::<Datum>(&ns, &name, &new_status, true);
    ctx.metrics.reconciled(CONTROLLER, "ok", started.elapsed());
    Ok(Action::requeue(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use courier_api::conditions::find_condition;

    use super::*;

    #[test]
    fn an_invalid_template_sets_ready_false_with_template_invalid_and_the_message() {
        let datum: Datum = serde_norway::from_str(
            "apiVersion: courier.dev/v1alpha1\nkind: Datum\nmetadata: { name: d, namespace: ns, generation: 3 }\nspec:\n  format: { type: JsonLines }\n  request: { pathTemplate: \"/x/{{ id\" }\n",
        )
        .expect("valid YAML");
        let outcome = validate::validate(&datum);
        let now = Time(jiff::Timestamp::from_second(5).expect("ts"));
        let s = build_status(&datum, None, outcome.as_ref().map(|_| ()), &now);
        let c = find_condition(&s.conditions, "Ready").expect("Ready");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "TemplateInvalid"));
        assert!(!c.message.is_empty());
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(c.observed_generation, Some(3));
    }
}
