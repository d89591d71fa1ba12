//! Kubernetes Events on state changes users care about.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

/// Publishes an Event about `obj`; failures are logged, never fatal.
pub async fn publish<K>(recorder: &Recorder, obj: &K, warning: bool, reason: &str, note: String)
where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: reason.to_owned(),
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
