//! `kubectl courier describe PACKAGE`: the package with its shards, the workers of its
//! Destination with their shares, the top failure reasons with samples and where its dead
//! letters are.

use courier_api::conditions::{DestinationConditionType, find_condition};
use courier_api::package::FailureReason;
use courier_api::{DeliveryPackage, Destination};
use kube::ResourceExt as _;
use serde::Serialize;

use super::package::PackageRow;
use super::{age, count};
use crate::table::{Align, Cell, Table, Tone, bar, paint};
use crate::workers::WorkerPod;

/// Everything `describe` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageDescription {
    pub package: PackageRow,
    pub source: Vec<String>,
    pub started: String,
    pub shards: ShardsView,
    pub destination: Option<DestinationView>,
    pub workers: Vec<WorkerView>,
    pub failure_reasons: Vec<FailureReason>,
    pub dead_letter_path: Option<String>,
    pub conditions: Vec<ConditionView>,
}

/// The package's shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardsView {
    pub total: i64,
    /// Completed shard ids as ranges (`0-41,43`).
    pub completed: String,
    pub completed_count: i64,
    pub active: Vec<ActiveShardView>,
    pub failed: Vec<FailedShardView>,
}

/// A leased shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveShardView {
    pub id: i64,
    pub worker: String,
    pub checkpoint: i64,
    pub attempt: i64,
    pub sent: i64,
    pub dead_lettered: i64,
}

/// A shard that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedShardView {
    pub id: i64,
    pub attempts: i64,
    pub message: String,
}

/// The package's Destination, as far as the package is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationView {
    pub name: String,
    pub limit_per_second: i64,
    pub effective_per_second: Option<i64>,
    pub workers_desired: i64,
    pub workers_ready: i64,
    pub suspended: bool,
    pub throttled: Option<String>,
}

/// A worker pod of the Destination.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    pub pod: String,
    pub ready: bool,
    pub share_per_second: Option<f64>,
    pub in_flight: Option<f64>,
    pub throttled: Option<f64>,
    /// Shards of this package the worker holds.
    pub shards: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A condition with its age.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub age: String,
}

/// Counts the shard ids of a range list (`0-41,43` → 43); malformed parts count nothing.
pub fn range_count(ranges: &str) -> i64 {
    ranges
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => i64::from(p.parse::<i64>().is_ok()),
        })
        .sum()
}

/// The description of `pkg`, its Destination (if found) and that Destination's worker pods.
pub fn describe(
    pkg: &DeliveryPackage,
    dest: Option<&Destination>,
    pods: &[WorkerPod],
    now: jiff::Timestamp,
) -> PackageDescription {
    let status = pkg.status.clone().unwrap_or_default();
    let shards = &status.shards;
    let active: Vec<ActiveShardView> = shards
        .active
        .iter()
        .map(|a| ActiveShardView {
            id: i64::from(a.id),
            worker: a.worker.clone(),
            checkpoint: a.checkpoint,
            attempt: i64::from(a.attempt),
            sent: a.records.sent,
            dead_lettered: a.records.dead_lettered,
        })
        .collect();
    let source = match (&pkg.spec.source.hdfs, &pkg.spec.source.file) {
        (Some(h), _) => h.paths.iter().map(|p| format!("{}{p}", h.url.trim_end_matches('/'))).collect(),
        (None, Some(f)) => f.paths.iter().map(|p| format!("file://{p}")).collect(),
        (None, None) => Vec::new(),
    };
    let destination = dest.map(|d| {
        let s = d.status.clone().unwrap_or_default();
        let throttled = find_condition(&s.conditions, DestinationConditionType::Throttled)
            .filter(|c| c.status == "True")
            .map(|c| c.reason.clone());
        DestinationView {
            name: d.name_any(),
            limit_per_second: i64::from(d.spec.rate_limit.requests_per_second),
            effective_per_second: s.effective_requests_per_second.map(i64::from),
            workers_desired: i64::from(s.workers.desired),
            workers_ready: i64::from(s.workers.ready),
            suspended: d.spec.suspend,
            throttled,
        }
    });
    let workers = pods
        .iter()
        .map(|p| WorkerView {
            pod: p.name.clone(),
            ready: p.ready,
            share_per_second: p.figures.map(|f| f.share_per_second),
            in_flight: p.figures.map(|f| f.in_flight),
            throttled: p.figures.map(|f| f.throttled),
            shards: active.iter().filter(|a| a.worker == p.name).map(|a| a.id).collect(),
            note: p.error.clone(),
        })
        .collect();
    let conditions = status
        .conditions
        .iter()
        .map(|c| ConditionView {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            age: age(Some(&c.last_transition_time), now),
        })
        .collect();
    PackageDescription {
        package: PackageRow::of(pkg),
        source,
        started: status.start_time.as_ref().map_or_else(|| "-".to_owned(), |t| format!("{} ago", age(Some(t), now))),
        shards: ShardsView {
            total: i64::from(shards.total),
            completed: shards.completed.clone(),
            completed_count: range_count(&shards.completed),
            active,
            failed: shards
                .failed
                .iter()
                .map(|f| FailedShardView {
                    id: i64::from(f.id),
                    attempts: i64::from(f.attempts),
                    message: f.message.clone(),
                })
                .collect(),
        },
        destination,
        workers,
        failure_reasons: status.failure_reasons.clone(),
        dead_letter_path: status.dead_letter_path.clone(),
        conditions,
    }
}

fn field(out: &mut Vec<String>, name: &str, value: impl std::fmt::Display, colour: bool) {
    out.push(format!("{}{value}", paint(&format!("{name:<15}"), Tone::Dim, colour)));
}

fn indent(out: &mut Vec<String>, table: &Table, colour: bool) {
    out.extend(table.lines(colour).into_iter().map(|l| format!("  {l}")));
}

/// One line cut to `max` characters (`…` at the end when cut).
fn clip(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max { flat } else { flat.chars().take(max.saturating_sub(1)).chain(['…']).collect() }
}

/// The description as text.
pub fn lines(d: &PackageDescription, unicode: bool, colour: bool) -> Vec<String> {
    let p = &d.package;
    let mut out = Vec::new();
    field(&mut out, "Package:", format!("{}/{}", p.namespace, p.name), colour);
    field(&mut out, "Destination:", &p.destination, colour);
    field(&mut out, "Datum:", &p.datum, colour);
    field(&mut out, "Source:", d.source.join(", "), colour);
    let reason = if p.reason.is_empty() { String::new() } else { format!(" ({})", p.reason) };
    field(&mut out, "Phase:", format!("{}{reason}, attempt {}, started {}", p.phase, p.attempt, d.started), colour);
    field(
        &mut out,
        "Progress:",
        format!("{} {}%  rate {}  ETA {}", bar(p.percent, 30, unicode), p.percent, p.rate_text(), p.eta_text()),
        colour,
    );
    field(
        &mut out,
        "Records:",
        format!(
            "read {}, sent {}, dead-lettered {} (failed {}, malformed {}), retried {}",
            count(p.read),
            count(p.sent),
            count(p.dead_lettered),
            count(p.failed),
            count(p.malformed),
            count(p.retried)
        ),
        colour,
    );
    let s = &d.shards;
    let completed = if s.completed.is_empty() { "none".to_owned() } else { s.completed.clone() };
    field(&mut out, "Shards:", format!("{} of {} completed: {completed}", s.completed_count, s.total), colour);
    if !s.active.is_empty() {
        out.push("  Active:".to_owned());
        let mut t = Table::new(&[
            ("SHARD", Align::Right),
            ("WORKER", Align::Left),
            ("CHECKPOINT", Align::Right),
            ("ATTEMPT", Align::Right),
            ("SENT", Align::Right),
            ("DEAD-LETTERED", Align::Right),
        ]);
        for a in &s.active {
            t.row(vec![
                a.id.to_string().into(),
                a.worker.clone().into(),
                a.checkpoint.to_string().into(),
                a.attempt.to_string().into(),
                count(a.sent).into(),
                count(a.dead_lettered).into(),
            ]);
        }
        indent(&mut out, &t, colour);
    }
    if !s.failed.is_empty() {
        out.push("  Failed:".to_owned());
        let mut t = Table::new(&[("SHARD", Align::Right), ("ATTEMPTS", Align::Right), ("MESSAGE", Align::Left)]);
        for f in &s.failed {
            t.row(vec![
                f.id.to_string().into(),
                f.attempts.to_string().into(),
                Cell::toned(clip(&f.message, 100), Tone::Bad),
            ]);
        }
        indent(&mut out, &t, colour);
    }
    match &d.destination {
        Some(dest) => {
            let effective = dest.effective_per_second.map_or_else(|| "-".to_owned(), |e| format!("{e}/s"));
            let mut state = vec![];
            if dest.suspended {
                state.push("suspended".to_owned());
            }
            if let Some(t) = &dest.throttled {
                state.push(format!("throttled ({t})"));
            }
            let state = if state.is_empty() { String::new() } else { format!(", {}", state.join(", ")) };
            field(
                &mut out,
                "Workers:",
                format!(
                    "{} ready of {} desired; limit {}/s, effective {effective}{state}",
                    dest.workers_ready, dest.workers_desired, dest.limit_per_second
                ),
                colour,
            );
        }
        None => field(&mut out, "Workers:", format!("Destination {} not found", p.destination), colour),
    }
    if !d.workers.is_empty() {
        let mut t = Table::new(&[
            ("POD", Align::Left),
            ("READY", Align::Left),
            ("SHARE", Align::Right),
            ("IN-FLIGHT", Align::Right),
            ("429s", Align::Right),
            ("SHARDS OF THIS PACKAGE", Align::Left),
        ]);
        let num = |v: Option<f64>, unit: &str| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}{unit}"));
        for w in &d.workers {
            let ids = w.shards.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            // Why its figures are missing, after the shards it holds.
            let shards = match (&w.note, ids.is_empty()) {
                (Some(note), true) => note.clone(),
                (Some(note), false) => format!("{ids} ({note})"),
                (None, true) => "-".to_owned(),
                (None, false) => ids,
            };
            t.row(vec![
                w.pod.clone().into(),
                Cell::toned(if w.ready { "yes" } else { "no" }, if w.ready { Tone::Good } else { Tone::Warn }),
                num(w.share_per_second, "/s").into(),
                num(w.in_flight, "").into(),
                num(w.throttled, "").into(),
                shards.into(),
            ]);
        }
        indent(&mut out, &t, colour);
    }
    if d.failure_reasons.is_empty() {
        field(&mut out, "Failures:", "none", colour);
    } else {
        out.push(paint("Failures:", Tone::Dim, colour));
        let mut t = Table::new(&[("CODE", Align::Left), ("COUNT", Align::Right), ("SAMPLE", Align::Left)]);
        for r in &d.failure_reasons {
            t.row(vec![
                Cell::toned(r.code.clone(), Tone::Warn),
                count(r.count).into(),
                clip(r.sample.as_deref().unwrap_or("-"), 100).into(),
            ]);
        }
        indent(&mut out, &t, colour);
    }
    let dead = match &d.dead_letter_path {
        Some(path) if p.dead_lettered > 0 => {
            format!("{path}  (kubectl courier dead-letters {} -n {})", p.name, p.namespace)
        }
        Some(path) => format!("{path}  (none so far)"),
        None => "-".to_owned(),
    };
    field(&mut out, "Dead letters:", dead, colour);
    if !d.conditions.is_empty() {
        out.push(paint("Conditions:", Tone::Dim, colour));
        let mut t = Table::new(&[
            ("TYPE", Align::Left),
            ("STATUS", Align::Left),
            ("REASON", Align::Left),
            ("AGE", Align::Right),
            ("MESSAGE", Align::Left),
        ]);
        for c in &d.conditions {
            t.row(vec![
                c.type_.clone().into(),
                c.status.clone().into(),
                c.reason.clone().into(),
                c.age.clone().into(),
                clip(&c.message, 90).into(),
            ]);
        }
        indent(&mut out, &t, colour);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::WorkerFigures;

    const PKG: &str = r#"apiVersion: courier.dev/v1alpha1
kind: DeliveryPackage
metadata: { name: users, namespace: demo }
spec:
  destinationRef: { name: partner }
  datumRef: { name: users }
  source: { hdfs: { url: "hdfs://nn:9000", paths: ["/data/users/*.jsonl"] } }
status:
  phase: Running
  attempt: 1
  startTime: "2026-12-01T10:00:00Z"
  deadLetterPath: hdfs://nn:9000/_courier/dead-letter/demo/users/attempt-1
  conditions:
  - { type: Progressing, status: "True", reason: Delivering, message: delivering, lastTransitionTime: "2026-12-01T10:00:00Z" }
  progress: { files: 2, bytesTotal: 1000, bytesDone: 500, percent: 50, ratePerSecond: 100, etaSeconds: 20, records: { read: 1010, sent: 1000, failed: 2, malformed: 0, deadLettered: 2, retried: 5 } }
  shards:
    total: 6
    completed: 0-2,4
    active:
    - { id: 3, worker: courier-worker-partner-a, checkpoint: 8192, attempt: 1, records: { read: 10, sent: 9, failed: 0, malformed: 0, deadLettered: 0, retried: 0 } }
    - { id: 5, worker: courier-worker-partner-b, checkpoint: 0, attempt: 2, records: { read: 0, sent: 0, failed: 0, malformed: 0, deadLettered: 0, retried: 0 } }
    failed:
    - { id: 5, attempts: 1, message: "connection refused" }
  failureReasons:
  - { code: "400", count: 2, sample: "{\"error\":\"bad field\"}" }
"#;

    const DEST: &str = r#"apiVersion: courier.dev/v1alpha1
kind: Destination
metadata: { name: partner, namespace: demo }
spec:
  endpoint: { url: "http://partner:8080" }
  rateLimit: { requestsPerSecond: 200 }
status:
  workers: { desired: 2, ready: 1 }
  effectiveRequestsPerSecond: 150
  conditions:
  - { type: Throttled, status: "True", reason: RateLimited, message: m, lastTransitionTime: "2026-12-01T10:00:00Z" }
"#;

    fn pod(name: &str, share: Option<f64>) -> WorkerPod {
        WorkerPod {
            name: name.to_owned(),
            destination: "partner".to_owned(),
            ready: share.is_some(),
            phase: "Running".to_owned(),
            restarts: 0,
            figures: share.map(|s| WorkerFigures {
                share_per_second: s,
                in_flight: 3.0,
                active_leases: 1.0,
                records_sent: 9.0,
                records_dead_lettered: 0.0,
                throttled: 4.0,
            }),
            error: share.is_none().then(|| "metrics unavailable: timed out".to_owned()),
        }
    }

    #[test]
    fn ranges_count_their_ids() {
        let cases = [("", 0), ("0", 1), ("0-2,4", 4), ("0-41,43,45-60", 59), ("x,3", 1), ("5-2", 0)];
        for (ranges, want) in cases {
            assert_eq!(range_count(ranges), want, "{ranges}");
        }
    }

    #[test]
    fn a_description_joins_shards_workers_reasons_and_the_dead_letter_path() {
        let pkg: DeliveryPackage = serde_norway::from_str(PKG).expect("package");
        let dest: Destination = serde_norway::from_str(DEST).expect("destination");
        let now: jiff::Timestamp = "2026-12-01T10:01:40Z".parse().expect("time");
        let pods = [pod("courier-worker-partner-a", Some(150.0)), pod("courier-worker-partner-b", None)];
        let d = describe(&pkg, Some(&dest), &pods, now);
        assert_eq!(d.shards.completed_count, 4);
        assert_eq!(d.workers[0].shards, vec![3]);
        assert_eq!(d.workers[1].share_per_second, None);
        assert_eq!(d.destination.as_ref().and_then(|x| x.throttled.clone()), Some("RateLimited".to_owned()));
        let text = lines(&d, false, false).join("\n");
        for part in [
            "Package:       demo/users",
            "Source:        hdfs://nn:9000/data/users/*.jsonl",
            "Phase:         Running (Delivering), attempt 1, started 1m40s ago",
            "###############--------------- 50%  rate 100/s  ETA 20s",
            "read 1,010, sent 1,000, dead-lettered 2 (failed 2, malformed 0), retried 5",
            "4 of 6 completed: 0-2,4",
            "courier-worker-partner-a",
            "1 ready of 2 desired; limit 200/s, effective 150/s, throttled (RateLimited)",
            "150/s",
            "metrics unavailable: timed out",
            "connection refused",
            "{\"error\":\"bad field\"}",
            "hdfs://nn:9000/_courier/dead-letter/demo/users/attempt-1  (kubectl courier dead-letters users -n demo)",
            "Progressing   True     Delivering   1m40s",
        ] {
            assert!(text.contains(part), "{part:?} missing in\n{text}");
        }
    }

    #[test]
    fn a_package_without_its_destination_still_describes() {
        let pkg: DeliveryPackage = serde_norway::from_str(PKG).expect("package");
        let d = describe(&pkg, None, &[], jiff::Timestamp::UNIX_EPOCH);
        let text = lines(&d, true, false).join("\n");
        assert!(text.contains("Destination partner not found"), "{text}");
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
