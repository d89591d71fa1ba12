//! One line of `kubectl courier status`: a package's progress, rate, ETA, counters, phase
//! and the reason of its phase.

use courier_api::DeliveryPackage;
use courier_api::conditions::{PackageConditionType as Type, find_condition};
use courier_api::package::PackagePhase;
use kube::ResourceExt as _;
use serde::Serialize;

use super::{count, human_duration};
use crate::table::{Align, Cell, Table, Tone, bar};

/// A package's progress as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageRow {
    pub namespace: String,
    pub name: String,
    pub destination: String,
    pub datum: String,
    /// `Pending`, `Waiting`, `Running`, `Suspended`, `Complete`, `Failed`.
    pub phase: String,
    /// The reason of the condition that explains the phase (`Delivering`,
    /// `DestinationNotFound`, `DeliveredWithFailures`, …).
    pub reason: String,
    pub message: String,
    pub attempt: i32,
    pub percent: i64,
    pub bytes_done: i64,
    pub bytes_total: i64,
    /// Records acknowledged per second over the operator's recent window.
    pub rate_per_second: i64,
    pub eta_seconds: Option<i64>,
    pub read: i64,
    pub sent: i64,
    pub dead_lettered: i64,
    pub failed: i64,
    pub malformed: i64,
    pub retried: i64,
    /// Complete or Failed.
    pub finished: bool,
}

/// The condition type explaining each phase.
fn explaining(phase: &str) -> Type {
    match phase {
        "Complete" => Type::Complete,
        "Failed" => Type::Failed,
        "Waiting" => Type::Waiting,
        "Suspended" => Type::Suspended,
        "Running" => Type::Progressing,
        _ => Type::Planned,
    }
}

impl PackageRow {
    /// The row of `pkg`.
    pub fn of(pkg: &DeliveryPackage) -> PackageRow {
        let status = pkg.status.clone().unwrap_or_default();
        let phase = status.phase.map_or_else(|| "Pending".to_owned(), |p| format!("{p:?}"));
        let (reason, message) = find_condition(&status.conditions, explaining(&phase))
            .map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap_or_default();
        let p = &status.progress;
        let finished = status.phase.is_some_and(PackagePhase::is_finished);
        PackageRow {
            namespace: pkg.namespace().unwrap_or_default(),
            name: pkg.name_any(),
            destination: pkg.spec.destination_ref.name.clone(),
            datum: pkg.spec.datum_ref.name.clone(),
            phase,
            reason,
            message,
            attempt: status.attempt,
            percent: i64::from(p.percent),
            bytes_done: p.bytes_done,
            bytes_total: p.bytes_total,
            rate_per_second: if finished { 0 } else { p.rate_per_second },
            eta_seconds: if finished { Some(0) } else { p.eta_seconds },
            read: p.records.read,
            sent: p.records.sent,
            dead_lettered: p.records.dead_lettered,
            failed: p.records.failed,
            malformed: p.records.malformed,
            retried: p.records.retried,
            finished,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The ETA as text: `31s`, `done`, or `-` when unknown (not moving).
    pub fn eta_text(&self) -> String {
        match (self.finished, self.eta_seconds) {
            (true, _) => "-".to_owned(),
            (false, Some(s)) => human_duration(u64::try_from(s).unwrap_or(0)),
            (false, None) => "-".to_owned(),
        }
    }

    /// The rate as text: `198/s`.
    pub fn rate_text(&self) -> String {
        format!("{}/s", count(self.rate_per_second))
    }

    fn phase_tone(&self) -> Tone {
        match self.phase.as_str() {
            "Complete" if self.dead_lettered > 0 => Tone::Warn,
            "Complete" => Tone::Good,
            "Failed" => Tone::Bad,
            "Running" => Tone::Info,
            _ => Tone::Warn,
        }
    }

    /// One line for a pipe: `ns/name 42% rate=198/s eta=31s sent=… phase=Running reason=…`.
    pub fn log_line(&self) -> String {
        format!(
            "{} [{}] {:>3}% rate={} eta={} sent={} dead-lettered={} failed={} phase={} reason={}",
            self.key(),
            bar(self.percent, 20, false),
            self.percent,
            self.rate_text(),
            self.eta_text(),
            self.sent,
            self.dead_lettered,
            self.failed,
            self.phase,
            if self.reason.is_empty() { "-" } else { &self.reason },
        )
    }
}

/// The `status` table of `rows`; the NAMESPACE column only with `namespaces`.
pub fn status_table(rows: &[PackageRow], namespaces: bool, unicode: bool) -> Table {
    let mut headers = vec![];
    if namespaces {
        headers.push(("NAMESPACE", Align::Left));
    }
    headers.extend([
        ("PACKAGE", Align::Left),
        ("DESTINATION", Align::Left),
        ("PROGRESS", Align::Left),
        ("RATE", Align::Right),
        ("ETA", Align::Right),
        ("SENT", Align::Right),
        ("DEAD-LETTERED", Align::Right),
        ("FAILED", Align::Right),
        ("PHASE", Align::Left),
        ("REASON", Align::Left),
    ]);
    let mut table = Table::new(&headers);
    for r in rows {
        let mut cells: Vec<Cell> = Vec::new();
        if namespaces {
            cells.push(r.namespace.clone().into());
        }
        let bar_tone = if r.phase == "Failed" {
            Tone::Bad
        } else if r.finished {
            Tone::Good
        } else {
            Tone::Info
        };
        let dl_tone = if r.dead_lettered > 0 { Tone::Warn } else { Tone::Plain };
        cells.extend([
            Cell::new(r.name.clone()),
            Cell::new(r.destination.clone()),
            Cell::toned(format!("{} {:>3}%", bar(r.percent, 20, unicode), r.percent), bar_tone),
            Cell::new(r.rate_text()),
            Cell::new(r.eta_text()),
            Cell::new(count(r.sent)),
            Cell::toned(count(r.dead_lettered), dl_tone),
            Cell::toned(count(r.failed), if r.failed > 0 { Tone::Bad } else { Tone::Plain }),
            Cell::toned(r.phase.clone(), r.phase_tone()),
            Cell::toned(if r.reason.is_empty() { "-".to_owned() } else { r.reason.clone() }, Tone::Dim),
        ]);
        table.row(cells);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(status: &str) -> DeliveryPackage {
        let yaml = format!(
            "apiVersion: courier.dev/v1alpha1\nkind: DeliveryPackage\nmetadata: {{ name: users, namespace: demo }}\nspec:\n  destinationRef: {{ name: partner }}\n  datumRef: {{ name: users }}\n  source: {{ hdfs: {{ url: \"hdfs://nn:9000\", paths: [\"/d/*\"] }} }}\n{status}"
        );
        serde_norway::from_str(&yaml).expect("valid package")
    }

    const RUNNING: &str = "status:\n  phase: Running\n  attempt: 1\n  conditions:\n  - { type: Progressing, status: \"True\", reason: Delivering, message: delivering, lastTransitionTime: \"2026-12-01T10:00:00Z\" }\n  progress: { files: 4, bytesTotal: 1000, bytesDone: 420, percent: 42, ratePerSecond: 198, etaSeconds: 31, records: { read: 2600, sent: 2520, failed: 3, malformed: 1, deadLettered: 4, retried: 7 } }\n";

    #[test]
    fn a_running_package_shows_its_bar_rate_eta_counters_and_reason() {
        let row = PackageRow::of(&pkg(RUNNING));
        assert_eq!((row.phase.as_str(), row.reason.as_str()), ("Running", "Delivering"));
        assert_eq!((row.percent, row.rate_per_second, row.eta_seconds), (42, 198, Some(31)));
        assert_eq!((row.sent, row.dead_lettered, row.failed), (2520, 4, 3));
        let lines = status_table(std::slice::from_ref(&row), false, false).lines(false);
        assert_eq!(lines.len(), 2);
        for part in ["users", "partner", "########------------  42%", "198/s", "31s", "2,520", "Running", "Delivering"]
        {
            assert!(lines[1].contains(part), "{part:?} in {:?}", lines[1]);
        }
        assert_eq!(
            row.log_line(),
            "demo/users [########------------]  42% rate=198/s eta=31s sent=2520 dead-lettered=4 failed=3 phase=Running reason=Delivering"
        );
    }

    #[test]
    fn phases_take_the_reason_of_the_condition_that_explains_them() {
        let cases = [
            ("Complete", "Complete", "DeliveredWithFailures"),
            ("Failed", "Failed", "BackoffLimitExceeded"),
            ("Waiting", "Waiting", "DestinationNotFound"),
            ("Suspended", "Suspended", "Suspended"),
        ];
        for (phase, condition, reason) in cases {
            let status = format!(
                "status:\n  phase: {phase}\n  conditions:\n  - {{ type: {condition}, status: \"True\", reason: {reason}, message: m, lastTransitionTime: \"2026-12-01T10:00:00Z\" }}\n"
            );
            let row = PackageRow::of(&pkg(&status));
            assert_eq!((row.phase.as_str(), row.reason.as_str()), (phase, reason));
            assert_eq!(row.finished, phase == "Complete" || phase == "Failed");
        }
    }

    #[test]
    fn a_new_package_is_pending_without_numbers() {
        let row = PackageRow::of(&pkg(""));
        assert_eq!((row.phase.as_str(), row.reason.as_str(), row.percent), ("Pending", "", 0));
        assert_eq!(row.eta_text(), "-");
        let line = status_table(&[row], true, true).lines(false)[1].clone();
        assert!(line.starts_with("demo "), "{line}");
        assert!(line.contains("░░░░░░░░░░░░░░░░░░░░   0%"), "{line}");
    }

    #[test]
    fn a_finished_package_has_no_rate_and_no_eta() {
        let done = RUNNING.replace("phase: Running", "phase: Complete");
        let row = PackageRow::of(&pkg(&done));
        assert_eq!((row.rate_per_second, row.eta_text().as_str()), (0, "-"));
    }
}
