//! Status (pure): the `Ready` condition from the validation's outcome, and which of its
//! changes are announced as Events.

use courier_api::conditions::{ConditionStatus, DatumConditionType, DatumReason, set_condition};
use courier_api::{Datum, DatumStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::validate;
use crate::controller::EventPolicy;

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
pub const EVENTS: EventPolicy = EventPolicy {
    message_matters: true,
    warning: |c| c.status != ConditionStatus::True.as_str(),
    announce_new: |_| true,
};

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
