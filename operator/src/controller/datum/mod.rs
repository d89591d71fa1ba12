//! The Datum controller: compiles the request templates and checks the format, reporting the
//! outcome as the `Ready` condition (and an Event when it changes).

pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use courier_api::Datum;
use courier_api::conditions::DatumConditionType;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;

use self::status::{EVENTS, build_status};
use super::{Error, Result, publish_condition_changes};
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
