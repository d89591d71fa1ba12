//! Which Destinations name which Secrets: the index a change seen by the Secret watch is mapped
//! through, so a Secret event costs one lookup, not a scan of every Destination.
//!
//! Each reconcile records the Secrets its Destination names *before* it reads them, so a Secret
//! that changes after that read always finds the Destination here; one that changed before is
//! read by that reconcile itself. A Destination not yet reconciled is not in the index, and
//! needs not be: its first reconcile reads every Secret it names. Deleted Destinations are
//! dropped by the garbage collection ([`SecretIndex::retain`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use courier_api::Destination;
use kube::runtime::reflector::ObjectRef;

/// A namespace and a name.
type Named = (String, String);

#[derive(Debug, Default)]
struct Index {
    /// (namespace, Secret) → the Destinations of that namespace naming it.
    by_secret: HashMap<Named, BTreeSet<String>>,
    /// (namespace, Destination) → the Secrets it names.
    by_destination: HashMap<Named, BTreeSet<String>>,
}

/// The index, shared by the reconciles (writers), the Secret watch's mapper and the garbage
/// collection.
#[derive(Debug, Default)]
pub struct SecretIndex(Mutex<Index>);

impl SecretIndex {
    fn lock(&self) -> MutexGuard<'_, Index> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that Destination `namespace/destination` names exactly `secrets` now.
    pub fn set<'a>(&self, namespace: &str, destination: &str, secrets: impl IntoIterator<Item = &'a str>) {
        let now: BTreeSet<String> = secrets.into_iter().map(str::to_owned).collect();
        let mut index = self.lock();
        let key = (namespace.to_owned(), destination.to_owned());
        if index.by_destination.get(&key) == Some(&now) {
            return;
        }
        let before = index.by_destination.remove(&key).unwrap_or_default();
        for gone in before.difference(&now) {
            unlink(&mut index.by_secret, namespace, gone, destination);
        }
        for added in now.difference(&before) {
            index.by_secret.entry((namespace.to_owned(), added.clone())).or_default().insert(destination.to_owned());
        }
        if !now.is_empty() {
            index.by_destination.insert(key, now);
        }
    }

    /// The Destinations naming Secret `namespace/secret`: those a change of it reconciles.
    pub fn naming(&self, namespace: &str, secret: &str) -> Vec<ObjectRef<Destination>> {
        let index = self.lock();
        index
            .by_secret
            .get(&(namespace.to_owned(), secret.to_owned()))
            .into_iter()
            .flatten()
            .map(|d| ObjectRef::new(d).within(namespace))
            .collect()
    }

    /// Keeps only the Destinations for which `live(namespace, name)` holds; returns how many
    /// were dropped.
    pub fn retain(&self, live: impl Fn(&str, &str) -> bool) -> usize {
        let mut index = self.lock();
        let dead: Vec<Named> = index.by_destination.keys().filter(|(ns, name)| !live(ns, name)).cloned().collect();
        for (ns, name) in &dead {
            for secret in index.by_destination.remove(&(ns.clone(), name.clone())).unwrap_or_default() {
                unlink(&mut index.by_secret, ns, &secret, name);
            }
        }
        dead.len()
    }
}

fn unlink(by_secret: &mut HashMap<Named, BTreeSet<String>>, namespace: &str, secret: &str, destination: &str) {
    let key = (namespace.to_owned(), secret.to_owned());
    if let Some(names) = by_secret.get_mut(&key) {
        names.remove(destination);
        if names.is_empty() {
            by_secret.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(index: &SecretIndex, ns: &str, secret: &str) -> Vec<String> {
        index.naming(ns, secret).into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn a_secret_maps_to_the_destinations_of_its_namespace_that_name_it() {
        let index = SecretIndex::default();
        index.set("a", "one", ["tok"]);
        index.set("a", "two", ["other"]);
        index.set("b", "three", ["tok"]);
        index.set("a", "four", ["tok", "ca"]);
        assert_eq!(named(&index, "a", "tok"), ["four", "one"], "same namespace, same Secret");
        assert_eq!(named(&index, "a", "ca"), ["four"]);
        assert_eq!(named(&index, "b", "tok"), ["three"]);
        assert!(named(&index, "c", "tok").is_empty(), "no Destination there");
        assert!(named(&index, "a", "unnamed").is_empty());
        let refs = index.naming("b", "tok");
        assert_eq!(refs[0].namespace.as_deref(), Some("b"));
    }

    #[test]
    fn a_new_spec_replaces_what_the_destination_named() {
        /// Named first, named then, and who names each Secret afterwards.
        type Case =
            (&'static [&'static str], &'static [&'static str], &'static [(&'static str, &'static [&'static str])]);
        let cases: [Case; 4] = [
            (&["tok"], &["tok2"], &[("tok", &[]), ("tok2", &["d"])]),
            (&["tok", "ca"], &["ca"], &[("tok", &[]), ("ca", &["d"])]),
            (&["tok"], &[], &[("tok", &[])]),
            (&[], &["tok", "tok"], &[("tok", &["d"])]),
        ];
        for (first, then, expect) in cases {
            let index = SecretIndex::default();
            index.set("ns", "other", ["tok"]);
            index.set("ns", "d", first.iter().copied());
            index.set("ns", "d", then.iter().copied());
            for (secret, want) in expect {
                let mut want: Vec<&str> = want.to_vec();
                if *secret == "tok" {
                    want.push("other");
                }
                want.sort_unstable();
                assert_eq!(named(&index, "ns", secret), want, "{first:?} then {then:?}: {secret}");
            }
        }
    }

    #[test]
    fn deleted_destinations_are_dropped_and_leave_no_empty_entries() {
        let index = SecretIndex::default();
        index.set("a", "one", ["tok"]);
        index.set("a", "two", ["tok"]);
        index.set("b", "one", ["tok"]);
        assert_eq!(index.retain(|ns, name| !(ns == "a" && name == "one")), 1);
        assert_eq!(named(&index, "a", "tok"), ["two"]);
        assert_eq!(named(&index, "b", "tok"), ["one"], "the same name in another namespace stays");
        assert_eq!(index.retain(|_, _| false), 2);
        let inner = index.lock();
        assert!(inner.by_secret.is_empty() && inner.by_destination.is_empty());
    }
}
