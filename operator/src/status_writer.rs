//! The status writer: one task that writes the status subresource of every Courier object with
//! server-side apply, debounced — at most one write per object per `interval`, except urgent
//! ones (a condition or the phase changed), which go out at once. Writes happen only while this
//! replica leads.
//!
//! Callers hand it typed statuses ([`Tracked::Status`] of the object's kind); it keeps them as
//! JSON only to fingerprint and write them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use courier_api::{
    Datum, DatumStatus, DeliveryPackage, DeliveryPackageStatus, Destination, DestinationStatus, FIELD_MANAGER,
};
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::sync::Notify;

use crate::leader::Leadership;
use crate::metrics::{ControllerLabel, Metrics};

/// Status writes in flight at once (a restart with thousands of due statuses is bounded by
/// round trips otherwise).
const WRITE_CONCURRENCY: usize = 8;

/// Which kind of object a status belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Destination,
    Datum,
    Package,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Destination => "destination",
            Kind::Datum => "datum",
            Kind::Package => "package",
        }
    }
}

/// A kind of object whose status the writer writes, and the type of that status.
pub trait Tracked {
    /// The status type.
    type Status: Serialize + DeserializeOwned;
    /// Which kind it is.
    const KIND: Kind;
}

impl Tracked for Destination {
    type Status = DestinationStatus;
    const KIND: Kind = Kind::Destination;
}

impl Tracked for Datum {
    type Status = DatumStatus;
    const KIND: Kind = Kind::Datum;
}

impl Tracked for DeliveryPackage {
    type Status = DeliveryPackageStatus;
    const KIND: Kind = Kind::Package;
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: Kind,
    namespace: String,
    name: String,
}

impl Key {
    fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Key { kind, namespace: namespace.to_owned(), name: name.to_owned() }
    }
}

/// A status as the writer keeps it: compact JSON text (a typed status serializes to the same
/// text every time: its fields in declaration order, maps sorted) and its fingerprint. Shared,
/// so queuing, remembering and writing it never copy the text.
#[derive(Debug, Clone)]
struct Snapshot {
    print: u64,
    text: Arc<str>,
}

/// What is known of one object's status. Memory matters at 10,000 packages: a status is kept
/// in full (as text) only while it is queued, or written but not yet seen on the object;
/// otherwise only its fingerprint is.
#[derive(Debug, Default)]
struct Entry {
    /// Queued, not written yet.
    pending: Option<Snapshot>,
    /// Written by this replica and not yet seen in the watch cache.
    written: Option<Arc<str>>,
    /// Fingerprint of the status the object carries (as written here, or as observed on it).
    written_print: Option<u64>,
    last_attempt: Option<Instant>,
    urgent: bool,
}

impl Entry {
    /// Whether the pending status should be written at `now`.
    fn is_due(&self, now: Instant, interval: Duration) -> bool {
        if self.pending.is_none() {
            return false;
        }
        self.urgent || self.last_attempt.is_none_or(|t| now.duration_since(t) >= interval)
    }
}

/// Feeds what a serializer writes into a hasher: a fingerprint without building the text.
struct HashWriter<'a, H>(&'a mut H);

impl<H: std::hash::Hasher> std::io::Write for HashWriter<'_, H> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A fingerprint of a status: a hash of its compact JSON text, computed as it is serialized
/// (nothing allocated: the watch cache's statuses are fingerprinted at every reconcile).
fn fingerprint<T: Serialize + ?Sized>(status: &T) -> serde_json::Result<u64> {
    use std::hash::Hasher;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_writer(HashWriter(&mut hasher), status)?;
    Ok(hasher.finish())
}

/// What the writer knows, under one lock: the term and the statuses taken in it.
#[derive(Default)]
struct Book {
    /// The leadership term whose statuses are taken and written (`None` between terms): a
    /// status computed in a term that ended is never written in the next one.
    term: Option<u64>,
    entries: HashMap<Key, Entry>,
}

/// Handle on the status writer; cheap to clone.
#[derive(Clone)]
pub struct StatusWriter {
    book: Arc<Mutex<Book>>,
    wake: Arc<Notify>,
    interval: Duration,
}

impl StatusWriter {
    /// A writer allowing one non-urgent write per object per `interval`. It takes statuses
    /// only once a term began ([`Self::begin_term`]).
    pub fn new(interval: Duration) -> Self {
        Self { book: Arc::default(), wake: Arc::new(Notify::new()), interval }
    }

    /// Starts taking statuses for leadership term `term`, with nothing remembered.
    pub fn begin_term(&self, term: u64) {
        let mut book = self.lock();
        book.entries.clear();
        book.term = Some(term);
    }

    /// Ends the term (the lease is lost): drops every status queued or remembered, and takes
    /// none until the next term begins — the controllers of the term that ended may still be
    /// winding down, and another replica writes now.
    pub fn end_term(&self) {
        let mut book = self.lock();
        book.term = None;
        book.entries.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `status` for the object `namespace/name` of kind `K`; `urgent` writes it without
    /// waiting for the interval.
    pub fn submit_status<K: Tracked>(&self, namespace: &str, name: &str, status: &K::Status, urgent: bool) {
        self.submit(K::KIND, namespace, name, status, urgent);
    }

    /// Records the status an object of kind `K` carries (see [`StatusWriter::observed`]).
    pub fn observed_status<K: Tracked>(&self, namespace: &str, name: &str, status: &K::Status) {
        self.observed(K::KIND, namespace, name, status);
    }

    /// The newest status queued or written for the object of kind `K`, if any.
    pub fn latest_status<K: Tracked>(&self, namespace: &str, name: &str) -> Option<K::Status> {
        self.latest(K::KIND, namespace, name).and_then(|text| serde_json::from_str(&text).ok())
    }

    /// Drops what is known about a deleted object of kind `K`.
    pub fn forget_status<K: Tracked>(&self, namespace: &str, name: &str) {
        self.forget(K::KIND, namespace, name);
    }

    fn submit<T: Serialize + ?Sized>(&self, kind: Kind, namespace: &str, name: &str, status: &T, urgent: bool) {
        let print = match fingerprint(status) {
            Ok(print) => print,
            Err(err) => return tracing::error!(%err, namespace, name, "a status does not serialize"),
        };
        let key = Key::new(kind, namespace, name);
        let mut book = self.lock();
        if book.term.is_none() {
            return;
        }
        let entry = book.entries.entry(key).or_default();
        if entry.written_print == Some(print) {
            // Already on the object (or on its way): nothing to write.
            entry.pending = None;
            entry.urgent = false;
            return;
        }
        // The same status queued already: only its urgency may change.
        if entry.pending.as_ref().is_none_or(|p| p.print != print) {
            match serde_json::to_string(status) {
                Ok(text) => entry.pending = Some(Snapshot { print, text: text.into() }),
                Err(err) => return tracing::error!(%err, namespace, name, "a status does not serialize"),
            }
        }
        entry.urgent |= urgent;
        drop(book);
        self.wake.notify_one();
    }

    /// Records the status the object carries as already written, unless this replica knows a
    /// newer one: after a restart or a leader change, an unchanged status is then not written
    /// again.
    fn observed<T: Serialize + ?Sized>(&self, kind: Kind, namespace: &str, name: &str, status: &T) {
        let Ok(print) = fingerprint(status) else { return };
        let key = Key::new(kind, namespace, name);
        let mut book = self.lock();
        let entry = book.entries.entry(key).or_insert_with(|| Entry { written_print: Some(print), ..Entry::default() });
        if entry.written_print == Some(print) {
            // The watch cache caught up with the last write: the object itself is the record now.
            entry.written = None;
        }
    }

    /// The newest status queued or written for the object, if any (fresher than the watch
    /// cache right after a debounced write).
    fn latest(&self, kind: Kind, namespace: &str, name: &str) -> Option<Arc<str>> {
        let key = Key::new(kind, namespace, name);
        self.lock()
            .entries
            .get(&key)
            .and_then(|e| e.pending.as_ref().map(|p| p.text.clone()).or_else(|| e.written.clone()))
    }

    /// Drops what is known about a deleted object.
    fn forget(&self, kind: Kind, namespace: &str, name: &str) {
        let key = Key::new(kind, namespace, name);
        self.lock().entries.remove(&key);
    }

    /// The statuses due at `now`, when `term` is the writer's term (none otherwise).
    fn take_due(&self, now: Instant, term: u64) -> Vec<(Key, Snapshot)> {
        let mut book = self.lock();
        let mut due = Vec::new();
        if book.term != Some(term) {
            return due;
        }
        for (key, entry) in book.entries.iter_mut() {
            if entry.is_due(now, self.interval)
                && let Some(pending) = entry.pending.take()
            {
                // Counted as written from now on (`latest` returns it); a failed write queues
                // it again.
                entry.written_print = Some(pending.print);
                entry.written = Some(pending.text.clone());
                due.push((key.clone(), pending));
                entry.urgent = false;
                entry.last_attempt = Some(now);
            }
        }
        due
    }

    /// A write failed: queue the status again unless a newer one is queued meanwhile.
    fn requeue(&self, key: &Key, value: Snapshot) {
        if let Some(entry) = self.lock().entries.get_mut(key)
            && entry.pending.is_none()
        {
            entry.pending = Some(value);
        }
    }

    /// Writes due statuses until the process ends; writes nothing while `leader` is false.
    pub async fn run(self, client: Client, leader: Leadership, metrics: Arc<Metrics>) {
        let tick = (self.interval / 4).clamp(Duration::from_millis(100), Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
            // Only statuses of the term this replica leads in right now.
            let Some(term) = leader.term() else { continue };
            let due = self.take_due(Instant::now(), term);
            let this = &self;
            futures::stream::iter(due)
                .for_each_concurrent(WRITE_CONCURRENCY, |(key, value)| {
                    let (client, metrics) = (&client, &metrics);
                    async move {
                        match write(client, &key, &value.text).await {
                            Ok(()) => {
                                metrics.status_writes.get_or_create(&ControllerLabel { controller: key.kind.as_str().into() }).inc();
                            }
                            Err(kube::Error::Api(resp)) if resp.code == 404 => {
                                this.forget(key.kind, &key.namespace, &key.name);
                            }
                            Err(err) => {
                                tracing::warn!(kind = key.kind.as_str(), namespace = %key.namespace, name = %key.name, %err, "failed to write status");
                                this.requeue(&key, value);
                            }
                        }
                    }
                })
                .await;
        }
    }
}

async fn write(client: &Client, key: &Key, status: &str) -> Result<(), kube::Error> {
    match key.kind {
        Kind::Destination => apply_status::<Destination>(client, key, status).await,
        Kind::Datum => apply_status::<Datum>(client, key, status).await,
        Kind::Package => apply_status::<DeliveryPackage>(client, key, status).await,
    }
}

async fn apply_status<K>(client: &Client, key: &Key, status: &str) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    /// The apply body, the status text as it is (it was serialized by this writer).
    #[derive(Debug, Serialize)]
    struct Body<'a> {
        #[serde(rename = "apiVersion")]
        api_version: &'a str,
        kind: &'a str,
        status: &'a RawValue,
    }
    let api: Api<K> = Api::namespaced(client.clone(), &key.namespace);
    let status: &RawValue = serde_json::from_str(status).map_err(kube::Error::SerdeError)?;
    let body = Body { api_version: &K::api_version(&()), kind: &K::kind(&()), status };
    api.patch_status(&key.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// What `latest` holds, parsed.
    fn latest(w: &StatusWriter, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        w.latest(kind, namespace, name).map(|text| serde_json::from_str(&text).expect("JSON"))
    }

    /// A writer in term 1.
    fn writer() -> StatusWriter {
        let w = StatusWriter::new(Duration::from_secs(3));
        w.begin_term(1);
        w
    }

    #[test]
    fn nothing_is_taken_outside_a_term_and_an_ended_term_leaves_nothing_to_write() {
        let w = StatusWriter::new(Duration::from_secs(3));
        let t0 = Instant::now();
        w.submit(Kind::Package, "ns", "p", &json!({"percent": 1}), true);
        assert!(w.take_due(t0, 1).is_empty(), "no term began: nothing taken");
        w.begin_term(1);
        w.submit(Kind::Package, "ns", "p", &json!({"percent": 2}), true);
        w.end_term();
        assert!(w.take_due(t0, 1).is_empty(), "queued in the term that ended: dropped");
        // The controllers of the ended term winding down submit still: not taken.
        w.submit(Kind::Package, "ns", "p", &json!({"percent": 3}), true);
        w.begin_term(2);
        assert!(w.take_due(t0, 2).is_empty(), "nothing of term 1 is written in term 2");
        assert_eq!(latest(&w, Kind::Package, "ns", "p"), None);
        w.submit(Kind::Package, "ns", "p", &json!({"percent": 4}), true);
        assert!(w.take_due(t0, 1).is_empty(), "a leader of another term takes nothing");
        assert_eq!(w.take_due(t0, 2).len(), 1);
    }

    #[test]
    fn a_second_change_within_the_interval_waits_unless_urgent() {
        let w = writer();
        let t0 = Instant::now();
        w.submit(Kind::Package, "ns", "p", &json!({"percent": 1}), false);
        assert_eq!(w.take_due(t0, 1).len(), 1, "the first status is written at once");
        w.submit(Kind::Package, "ns", "p", &json!({"percent": 2}), false);
        assert!(w.take_due(t0 + Duration::from_secs(1), 1).is_empty(), "debounced");
        assert_eq!(w.take_due(t0 + Duration::from_secs(3), 1).len(), 1, "written after the interval");
    }

    #[test]
    fn an_urgent_change_is_written_immediately() {
        let w = writer();
        let t0 = Instant::now();
        w.submit(Kind::Package, "ns", "p", &json!({"phase": "Running"}), false);
        w.take_due(t0, 1);
        w.submit(Kind::Package, "ns", "p", &json!({"phase": "Complete"}), true);
        let due = w.take_due(t0 + Duration::from_millis(10), 1);
        assert_eq!(due.len(), 1);
        assert_eq!(serde_json::from_str::<Value>(&due[0].1.text).ok(), Some(json!({"phase": "Complete"})));
    }

    #[test]
    fn a_status_equal_to_the_one_observed_on_the_object_is_not_written() {
        let w = writer();
        let t0 = Instant::now();
        w.observed(Kind::Package, "ns", "p", &json!({"phase": "Waiting"}));
        w.submit(Kind::Package, "ns", "p", &json!({"phase": "Waiting"}), true);
        assert!(w.take_due(t0, 1).is_empty(), "already on the object");
        assert_eq!(latest(&w, Kind::Package, "ns", "p"), None, "the object is the record: nothing kept in full");
        w.submit(Kind::Package, "ns", "p", &json!({"phase": "Running"}), true);
        assert_eq!(w.take_due(t0, 1).len(), 1);
    }

    #[test]
    fn a_written_status_is_kept_until_the_watch_cache_shows_it_and_a_failed_write_is_queued_again() {
        let w = writer();
        let t0 = Instant::now();
        let key = Key::new(Kind::Package, "ns", "p");
        w.submit(Kind::Package, "ns", "p", &json!({"percent": 1}), true);
        let due = w.take_due(t0, 1);
        assert_eq!(latest(&w, Kind::Package, "ns", "p"), Some(json!({"percent": 1})), "fresher than the cache");
        w.requeue(&key, due[0].1.clone());
        assert_eq!(w.take_due(t0 + Duration::from_secs(3), 1).len(), 1, "the failed write goes out again");
        w.observed(Kind::Package, "ns", "p", &json!({"percent": 0}));
        assert_eq!(latest(&w, Kind::Package, "ns", "p"), Some(json!({"percent": 1})), "the cache is behind");
        w.observed(Kind::Package, "ns", "p", &json!({"percent": 1}));
        assert_eq!(latest(&w, Kind::Package, "ns", "p"), None, "the cache caught up");
    }

    #[test]
    fn a_typed_status_read_back_from_the_object_matches_what_was_written() {
        use courier_api::conditions::{ConditionStatus, PackageConditionType};
        let w = writer();
        let t0 = Instant::now();
        let mut status = DeliveryPackageStatus {
            observed_generation: Some(3),
            attempt: 2,
            dead_letter_path: Some("hdfs:///dl/p".to_owned()),
            ..DeliveryPackageStatus::default()
        };
        status.progress.records.sent = 41;
        status.conditions.push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: PackageConditionType::Progressing.as_str().to_owned(),
            status: ConditionStatus::True.as_str().to_owned(),
            reason: "Sending".to_owned(),
            message: "41 sent".to_owned(),
            observed_generation: Some(3),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        });
        w.submit_status::<DeliveryPackage>("ns", "p", &status, true);
        let due = w.take_due(t0, 1);
        assert_eq!(due.len(), 1);
        // What the watch cache shows once the write landed: the written text, parsed again.
        let on_object: DeliveryPackageStatus = serde_json::from_str(&due[0].1.text).expect("the written text parses");
        assert_eq!(on_object, status);
        w.observed_status::<DeliveryPackage>("ns", "p", &on_object);
        assert_eq!(w.latest_status::<DeliveryPackage>("ns", "p"), None, "the cache caught up: the same fingerprint");
        w.submit_status::<DeliveryPackage>("ns", "p", &on_object, true);
        assert!(w.take_due(t0 + Duration::from_secs(10), 1).is_empty(), "unchanged: not written again");
    }

    #[test]
    fn the_same_status_queued_again_urgently_goes_out_at_once() {
        let w = writer();
        let t0 = Instant::now();
        w.submit(Kind::Package, "ns", "p", &json!({"percent": 1}), true);
        w.take_due(t0, 1);
        w.submit(Kind::Package, "ns", "p", &json!({"percent": 2}), false);
        assert!(w.take_due(t0 + Duration::from_secs(1), 1).is_empty(), "debounced");
        w.submit(Kind::Package, "ns", "p", &json!({"percent": 2}), true);
        let due = w.take_due(t0 + Duration::from_secs(1), 1);
        assert_eq!(due.len(), 1, "now urgent");
        assert_eq!(serde_json::from_str::<Value>(&due[0].1.text).ok(), Some(json!({"percent": 2})));
    }

    #[test]
    fn an_unchanged_status_is_not_written_again() {
        let w = writer();
        let t0 = Instant::now();
        w.submit(Kind::Datum, "ns", "d", &json!({"a": 1}), true);
        w.take_due(t0, 1);
        w.submit(Kind::Datum, "ns", "d", &json!({"a": 1}), true);
        assert!(w.take_due(t0 + Duration::from_secs(10), 1).is_empty());
        assert_eq!(latest(&w, Kind::Datum, "ns", "d"), Some(json!({"a": 1})));
    }
}
