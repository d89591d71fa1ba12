//! `kubectl courier top`: one row per Destination — the limit, the effective limit after
//! 429s, the rate achieved by its running packages, workers, backlog and 429s.

use std::collections::BTreeMap;

use courier_api::conditions::{DestinationConditionType, find_condition};
use courier_api::{DeliveryPackage, Destination};
use kube::ResourceExt as _;
use serde::Serialize;

use super::count;
use crate::table::{Align, Cell, Table, Tone};
use crate::workers::WorkerPod;

/// A Destination's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRow {
    pub namespace: String,
    pub name: String,
    /// `spec.rateLimit.requestsPerSecond`.
    pub limit_per_second: i64,
    /// The limit shared among the workers now (lowered after 429s).
    pub effective_per_second: Option<i64>,
    /// Records acknowledged per second by its running packages.
    pub achieved_per_second: i64,
    pub workers_desired: i64,
    pub workers_ready: i64,
    pub backlog_records: i64,
    pub backlog_packages: i64,
    /// 429 answers its current workers have seen (`None` when no worker's metrics could be read).
    pub throttled: Option<f64>,
    /// 429 answers per second since the previous refresh of `top`.
    pub throttled_per_second: Option<f64>,
    /// `Suspended`, `Paused`, `Throttled (reason)` or `Active`.
    pub state: String,
}

/// The rows of `destinations`, with the rates of `packages` and the 429s of `pods`.
pub fn rows(destinations: &[Destination], packages: &[DeliveryPackage], pods: &[WorkerPod]) -> Vec<DestinationRow> {
    let mut achieved: BTreeMap<(String, String), i64> = BTreeMap::new();
    for p in packages {
        let running = p.status.as_ref().is_some_and(|s| s.phase.is_some_and(|ph| !ph.is_finished()));
        if running {
            let key = (p.namespace().unwrap_or_default(), p.spec.destination_ref.name.clone());
            *achieved.entry(key).or_default() += p.status.as_ref().map_or(0, |s| s.progress.rate_per_second);
        }
    }
    let mut out: Vec<DestinationRow> = destinations
        .iter()
        .map(|d| {
            let ns = d.namespace().unwrap_or_default();
            let name = d.name_any();
            let s = d.status.clone().unwrap_or_default();
            let scraped: Vec<f64> =
                pods.iter().filter(|p| p.destination == name).filter_map(|p| p.figures.map(|f| f.throttled)).collect();
            let throttled =
                find_condition(&s.conditions, DestinationConditionType::Throttled).filter(|c| c.status == "True");
            let paused = s.paused_until.as_ref().is_some_and(|t| t.0 > jiff::Timestamp::now());
            let state = if d.spec.suspend {
                "Suspended".to_owned()
            } else if paused {
                "Paused".to_owned()
            } else if let Some(c) = throttled {
                format!("Throttled ({})", c.reason)
            } else {
                "Active".to_owned()
            };
            DestinationRow {
                achieved_per_second: achieved.get(&(ns.clone(), name.clone())).copied().unwrap_or(0),
                namespace: ns,
                name,
                limit_per_second: i64::from(d.spec.rate_limit.requests_per_second),
                effective_per_second: s.effective_requests_per_second.map(i64::from),
                workers_desired: i64::from(s.workers.desired),
                workers_ready: i64::from(s.workers.ready),
                backlog_records: s.backlog.records,
                backlog_packages: i64::from(s.backlog.packages),
                throttled: (!scraped.is_empty()).then(|| scraped.iter().sum()),
                throttled_per_second: None,
                state,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

/// Sets each row's 429s per second from the `previous` refresh, `seconds` ago. A counter that
/// went down (a worker restarted or left) gives no rate this time.
pub fn with_rates(mut rows: Vec<DestinationRow>, previous: &[DestinationRow], seconds: f64) -> Vec<DestinationRow> {
    for r in &mut rows {
        let before = previous.iter().find(|p| p.namespace == r.namespace && p.name == r.name).and_then(|p| p.throttled);
        r.throttled_per_second = match (r.throttled, before) {
            (Some(now), Some(then)) if now >= then && seconds > 0.0 => Some((now - then) / seconds),
            _ => None,
        };
    }
    rows
}

/// The cells of a row, for the table and the full-screen view alike.
pub fn cells(r: &DestinationRow, namespaces: bool) -> Vec<Cell> {
    let mut cells = Vec::new();
    if namespaces {
        cells.push(Cell::new(r.namespace.clone()));
    }
    let effective = r.effective_per_second.map_or_else(|| "-".to_owned(), |e| format!("{}/s", count(e)));
    let lowered = r.effective_per_second.is_some_and(|e| e < r.limit_per_second);
    let ready_tone = if r.workers_ready < r.workers_desired { Tone::Warn } else { Tone::Plain };
    let throttled = match (r.throttled, r.throttled_per_second) {
        (None, _) => "-".to_owned(),
        (Some(t), Some(rate)) => format!("{t:.0} ({rate:.1}/s)"),
        (Some(t), None) => format!("{t:.0}"),
    };
    let state_tone = match r.state.as_str() {
        "Active" => Tone::Good,
        "Suspended" => Tone::Dim,
        _ => Tone::Warn,
    };
    cells.extend([
        Cell::new(r.name.clone()),
        Cell::new(format!("{}/s", count(r.limit_per_second))),
        Cell::toned(effective, if lowered { Tone::Warn } else { Tone::Plain }),
        Cell::toned(format!("{}/s", count(r.achieved_per_second)), Tone::Info),
        Cell::toned(format!("{}/{}", r.workers_ready, r.workers_desired), ready_tone),
        Cell::new(format!("{} ({} pkg)", count(r.backlog_records), r.backlog_packages)),
        Cell::toned(throttled, if r.throttled.is_some_and(|t| t > 0.0) { Tone::Warn } else { Tone::Plain }),
        Cell::toned(r.state.clone(), state_tone),
    ]);
    cells
}

/// Column headers and alignment.
pub fn headers(namespaces: bool) -> Vec<(&'static str, Align)> {
    let mut h = Vec::new();
    if namespaces {
        h.push(("NAMESPACE", Align::Left));
    }
    h.extend([
        ("DESTINATION", Align::Left),
        ("LIMIT", Align::Right),
        ("EFFECTIVE", Align::Right),
        ("ACHIEVED", Align::Right),
        ("WORKERS", Align::Right),
        ("BACKLOG", Align::Right),
        ("429s", Align::Right),
        ("STATE", Align::Left),
    ]);
    h
}

/// The table of rows.
pub fn table(rows: &[DestinationRow], namespaces: bool) -> Table {
    let mut t = Table::new(&headers(namespaces));
    for r in rows {
        t.row(cells(r, namespaces));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::WorkerFigures;

    fn dest(name: &str, status: &str) -> Destination {
        serde_norway::from_str(&format!(
            "apiVersion: courier.dev/v1alpha1\nkind: Destination\nmetadata: {{ name: {name}, namespace: demo }}\nspec:\n  endpoint: {{ url: \"http://p:1\" }}\n  rateLimit: {{ requestsPerSecond: 200 }}\n{status}"
        ))
        .expect("destination")
    }

    fn pkg(name: &str, dest: &str, phase: &str, rate: i64) -> DeliveryPackage {
        serde_norway::from_str(&format!(
            "apiVersion: courier.dev/v1alpha1\nkind: DeliveryPackage\nmetadata: {{ name: {name}, namespace: demo }}\nspec:\n  destinationRef: {{ name: {dest} }}\n  datumRef: {{ name: users }}\n  source: {{ file: {{ paths: [\"/x\"] }} }}\nstatus: {{ phase: {phase}, progress: {{ files: 1, bytesTotal: 0, bytesDone: 0, percent: 0, ratePerSecond: {rate}, records: {{ read: 0, sent: 0, failed: 0, malformed: 0, deadLettered: 0, retried: 0 }} }} }}\n"
        ))
        .expect("package")
    }

    fn pod(dest: &str, throttled: f64) -> WorkerPod {
        WorkerPod {
            name: format!("w-{dest}-{throttled}"),
            destination: dest.to_owned(),
            ready: true,
            phase: "Running".to_owned(),
            restarts: 0,
            figures: Some(WorkerFigures {
                share_per_second: 100.0,
                in_flight: 1.0,
                active_leases: 1.0,
                records_sent: 0.0,
                records_dead_lettered: 0.0,
                throttled,
            }),
            error: None,
        }
    }

    #[test]
    fn rows_sum_running_packages_rates_and_workers_429s() {
        let a = dest(
            "a",
            "status:\n  effectiveRequestsPerSecond: 150\n  workers: { desired: 2, ready: 1 }\n  backlog: { packages: 1, records: 4000, bytes: 1 }\n  conditions:\n  - { type: Throttled, status: \"True\", reason: RateLimited, message: m, lastTransitionTime: \"2026-12-01T10:00:00Z\" }\n",
        );
        let b = dest("b", "  suspend: true\n");
        let packages = [pkg("p1", "a", "Running", 120), pkg("p2", "a", "Running", 30), pkg("p3", "a", "Complete", 999)];
        let pods = [pod("a", 3.0), pod("a", 2.0)];
        let rows = rows(&[b, a], &packages, &pods);
        assert_eq!(rows[0].name, "a");
        assert_eq!((rows[0].achieved_per_second, rows[0].effective_per_second), (150, Some(150)));
        assert_eq!((rows[0].workers_ready, rows[0].workers_desired, rows[0].backlog_records), (1, 2, 4000));
        assert_eq!((rows[0].throttled, rows[0].state.as_str()), (Some(5.0), "Throttled (RateLimited)"));
        assert_eq!((rows[1].throttled, rows[1].state.as_str()), (None, "Suspended"));
        let later = with_rates(
            rows.clone()
                .into_iter()
                .map(|mut r| {
                    r.throttled = r.throttled.map(|t| t + 10.0);
                    r
                })
                .collect(),
            &rows,
            2.0,
        );
        assert_eq!(later[0].throttled_per_second, Some(5.0));
        let lines = table(&later, false).lines(false);
        let words: Vec<&str> = lines[1].split_whitespace().collect();
        let want = "a 200/s 150/s 150/s 1/2 4,000 (1 pkg) 15 (5.0/s) Throttled (RateLimited)";
        assert_eq!(words.join(" "), want, "{}", lines[1]);
        assert_eq!(
            lines[1].find("200/s"),
            lines[0].find("LIMIT").map(|i| i + "LIMIT".len() - "200/s".len()),
            "LIMIT right-aligned:\n{}\n{}",
            lines[0],
            lines[1]
        );
    }
}
