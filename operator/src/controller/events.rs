//! Kubernetes Events on state changes users care about: [`publish`] one, or
//! [`publish_condition_changes`] for every condition whose status or reason changed, by a
//! kind's [`EventPolicy`].

use courier_api::conditions::find_condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

/// How one kind's condition changes become Events.
#[derive(Debug, Clone, Copy)]
pub struct EventPolicy {
    /// A new message alone (same status and reason) is a change too.
    pub message_matters: bool,
    /// Whether the changed condition is reported as a Warning.
    pub warning: fn(&Condition) -> bool,
    /// Whether a condition the object did not carry before is announced.
    pub announce_new: fn(&Condition) -> bool,
}

/// The conditions of `new` that changed from `old` by `policy`, each with whether it is a
/// warning and the note (the message, or "`Type` is `Status`" when it has none). Pure.
pub fn condition_changes<'a>(
    old: &[Condition],
    new: &'a [Condition],
    policy: &EventPolicy,
) -> Vec<(&'a Condition, bool, String)> {
    new.iter()
        .filter(|c| match find_condition(old, &c.type_) {
            Some(o) => {
                o.status != c.status || o.reason != c.reason || (policy.message_matters && o.message != c.message)
            }
            None => (policy.announce_new)(c),
        })
        .map(|c| {
            let note = if c.message.is_empty() { format!("{} is {}", c.type_, c.status) } else { c.message.clone() };
            (c, (policy.warning)(c), note)
        })
        .collect()
}

/// Publishes an Event for every condition change of `obj` (see [`condition_changes`]).
pub async fn publish_condition_changes<K>(
    recorder: &Recorder,
    obj: &K,
    old: &[Condition],
    new: &[Condition],
    policy: &EventPolicy,
) where
    K: Resource<DynamicType = ()>,
{
    for (c, warning, note) in condition_changes(old, new, policy) {
        publish(recorder, obj, warning, &c.reason, note).await;
    }
}

/// The action of an Event: its reason and a digest of its note. The recorder counts an Event
/// with the type, reason and action of one it published in the last minutes as a repeat of it
/// and keeps the first note — a second `BatchCut`, `Scaled` or `SecretNotFound` with other
/// figures or another Secret's name showed only as a count on the first. The same note
/// repeated still counts as a repeat.
pub fn note_action(reason: &str, note: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    note.hash(&mut hasher);
    format!("{reason}-{:08x}", hasher.finish() as u32)
}

/// Publishes an Event about `obj` (its action from [`note_action`]); failures are logged,
/// never fatal.
pub async fn publish<K>(recorder: &Recorder, obj: &K, warning: bool, reason: &str, note: String)
where
    K: Resource<DynamicType = ()>,
{
    let action = note_action(reason, &note);
    let event = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action,
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(%err, reason, "failed to publish an Event");
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    #[test]
    fn events_with_other_notes_have_other_actions_and_a_repeated_note_the_same() {
        let a = note_action("BatchCut", "3 files");
        assert_eq!(a, note_action("BatchCut", "3 files"), "a repeat counts as one");
        assert_ne!(a, note_action("BatchCut", "4 files"));
        assert!(a.starts_with("BatchCut-") && a.len() == "BatchCut-".len() + 8, "{a}");
    }

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
            observed_generation: Some(1),
        }
    }

    const POLICY: EventPolicy =
        EventPolicy { message_matters: false, warning: |c| c.status == "False", announce_new: |c| c.status == "True" };

    #[test]
    fn only_changed_or_announced_conditions_become_events_with_their_note() {
        let old = [cond("Ready", "True", "Available", "ok"), cond("Suspended", "False", "Active", "")];
        let new = [
            cond("Ready", "False", "SecretNotFound", "Secret \"s\" not found"),
            cond("Suspended", "False", "Active", "a new message alone"),
            cond("Throttled", "True", "RateLimited", ""),
            cond("Degraded", "False", "WorkersAvailable", ""),
        ];
        let got: Vec<_> = condition_changes(&old, &new, &POLICY)
            .into_iter()
            .map(|(c, warning, note)| (c.type_.as_str(), warning, note))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Ready", true, "Secret \"s\" not found".to_owned()),
                ("Throttled", false, "Throttled is True".to_owned()),
            ]
        );
        let with_messages = EventPolicy { message_matters: true, ..POLICY };
        assert_eq!(condition_changes(&old, &new[1..2], &with_messages).len(), 1, "a new message is a change");
    }
}
