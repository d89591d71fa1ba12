//! Apply on change: whether a built object must be applied again, or what the API server has is
//! already what was built.
//!
//! A Destination is reconciled every few seconds for its status and autoscaling. Applying its
//! ServiceAccount and Deployment on each of those turns (a forced server-side apply is a write
//! the API server has to process even when nothing changes) cost two writes per Destination every
//! 3 s: at 500 Destinations, over 300 writes a second for nothing. Now an object is applied when
//! what was built changed, when someone else changed it since (its `metadata.generation` moved
//! away from the one the last apply returned, or it is gone), and otherwise once every
//! [`RESYNC`] in case of a change nobody watches.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long an applied object is trusted without a change seen.
pub const RESYNC: Duration = Duration::from_secs(600);

/// Why an object is applied (the `reason` label of `courier_operator_applies_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Not applied by this leader yet.
    First,
    /// What was built differs from what was applied last.
    Changed,
    /// The object changed under us, or is gone.
    Drifted,
    /// Applied long enough ago to do it again.
    Resync,
}

impl Why {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::First => "first",
            Why::Changed => "changed",
            Why::Drifted => "drifted",
            Why::Resync => "resync",
        }
    }
}

/// What the last apply of one object sent and got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Fingerprint of the object sent.
    pub fingerprint: u64,
    /// `metadata.generation` of the object the API server returned.
    pub generation: Option<i64>,
    /// When.
    pub at: Instant,
}

/// What is known of the object on the API server now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Watched: its generation, or `None` when the watch has no such object.
    Watched(Option<i64>),
    /// Not watched (nothing to compare with but the last apply).
    Unwatched,
}

/// Whether to apply an object whose fingerprint is now `fingerprint`; `None` when what the API
/// server has is what was built. A watch lagging behind an apply reads as drift for a moment:
/// one more apply, which changes nothing.
pub fn needs_apply(last: Option<&Applied>, fingerprint: u64, observed: Observed, now: Instant) -> Option<Why> {
    let Some(last) = last else { return Some(Why::First) };
    if last.fingerprint != fingerprint {
        return Some(Why::Changed);
    }
    if let Observed::Watched(generation) = observed
        && (generation.is_none() || generation != last.generation)
    {
        return Some(Why::Drifted);
    }
    (now.saturating_duration_since(last.at) >= RESYNC).then_some(Why::Resync)
}

/// A fingerprint of what would be sent.
pub fn fingerprint(object: &impl Serialize) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    // k8s-openapi objects serialize maps in key order: equal objects give equal bytes.
    serde_json::to_vec(object).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

/// The last apply of each object, by `kind/namespace/name`, for one leadership term.
#[derive(Debug, Default)]
pub struct AppliedObjects(Mutex<HashMap<String, Applied>>);

impl AppliedObjects {
    fn key(kind: &str, namespace: &str, name: &str) -> String {
        format!("{kind}/{namespace}/{name}")
    }

    /// The last apply of the object, if any.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Applied> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(&Self::key(kind, namespace, name)).copied()
    }

    /// Remembers an apply.
    pub fn insert(&self, kind: &str, namespace: &str, name: &str, applied: Applied) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(Self::key(kind, namespace, name), applied);
    }

    /// Forgets every object for which `keep(kind, namespace, name)` is false (those of deleted
    /// Destinations); returns how many were forgotten.
    pub fn retain(&self, keep: impl Fn(&str, &str, &str) -> bool) -> usize {
        let mut objects = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let before = objects.len();
        objects.retain(|key, _| {
            let mut parts = key.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(kind), Some(namespace), Some(name)) => keep(kind, namespace, name),
                _ => false,
            }
        });
        before - objects.len()
    }

    /// How many objects are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(fingerprint: u64, generation: Option<i64>, at: Instant) -> Applied {
        Applied { fingerprint, generation, at }
    }

    /// (case, last apply, fingerprint now, observed, now, expected)
    type Case = (&'static str, Option<Applied>, u64, Observed, Instant, Option<Why>);

    #[test]
    fn an_object_is_applied_only_when_it_changed_drifted_or_is_due() {
        let t0 = Instant::now();
        let soon = t0 + Duration::from_secs(3);
        let due = t0 + RESYNC;
        let last = applied(7, Some(2), t0);
        let cases: &[Case] = &[
            ("never applied", None, 7, Observed::Watched(Some(2)), soon, Some(Why::First)),
            ("never applied, unwatched", None, 7, Observed::Unwatched, soon, Some(Why::First)),
            ("same object, same generation", Some(last), 7, Observed::Watched(Some(2)), soon, None),
            ("same object, unwatched", Some(last), 7, Observed::Unwatched, soon, None),
            ("built differently (replicas)", Some(last), 8, Observed::Watched(Some(2)), soon, Some(Why::Changed)),
            ("changed and drifted: changed wins", Some(last), 8, Observed::Watched(Some(5)), soon, Some(Why::Changed)),
            ("edited by someone else", Some(last), 7, Observed::Watched(Some(3)), soon, Some(Why::Drifted)),
            ("deleted by someone else", Some(last), 7, Observed::Watched(None), soon, Some(Why::Drifted)),
            ("the watch is behind our apply", Some(last), 7, Observed::Watched(Some(1)), soon, Some(Why::Drifted)),
            ("unchanged for the resync period", Some(last), 7, Observed::Watched(Some(2)), due, Some(Why::Resync)),
            ("unwatched, due", Some(last), 7, Observed::Unwatched, due, Some(Why::Resync)),
            ("a clock before the apply", Some(applied(7, Some(2), soon)), 7, Observed::Unwatched, t0, None),
        ];
        for (name, last, print, observed, now, want) in cases {
            assert_eq!(needs_apply(last.as_ref(), *print, *observed, *now), *want, "{name}");
        }
    }

    #[test]
    fn equal_objects_have_equal_fingerprints_and_a_change_shows() {
        use std::collections::BTreeMap;
        let a: BTreeMap<&str, i32> = [("replicas", 2), ("port", 8080)].into_iter().collect();
        let same: BTreeMap<&str, i32> = [("port", 8080), ("replicas", 2)].into_iter().collect();
        let other: BTreeMap<&str, i32> = [("replicas", 3), ("port", 8080)].into_iter().collect();
        assert_eq!(fingerprint(&a), fingerprint(&same), "built in another order");
        assert_ne!(fingerprint(&a), fingerprint(&other));
    }

    #[test]
    fn the_last_apply_is_remembered_per_object() {
        let objects = AppliedObjects::default();
        let at = Instant::now();
        objects.insert("Deployment", "ns", "w", applied(1, Some(1), at));
        assert_eq!(objects.get("Deployment", "ns", "w"), Some(applied(1, Some(1), at)));
        assert_eq!(objects.get("ServiceAccount", "ns", "w"), None, "kinds are apart");
        assert_eq!(objects.get("Deployment", "other", "w"), None, "namespaces are apart");
    }
}
