//! The per-package series (`courier_operator_package_…`), encoded at each scrape from the
//! figures the leader last took from its package watch.
//!
//! Sixteen series per package live only in the scrape's text: the operator keeps one compact
//! [`PackageFigures`] per package, not sixteen label sets and gauges in metric families (at
//! 3,000 packages those families held about 9 MiB and were updated every 5 s), and a deleted
//! package's series end with the next figures, with nothing to remove.

use std::sync::{Mutex, MutexGuard, PoisonError};

use courier_api::DeliveryPackage;
use courier_api::package::{DeliveryPackageStatus, PackagePhase};
use kube::ResourceExt as _;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

/// The phases a package can be in, as the `phase` label writes them.
pub const PHASES: [&str; 6] = ["Pending", "Waiting", "Running", "Suspended", "Complete", "Failed"];

/// The outcomes of a package's record counters, as the `outcome` label writes them.
pub const OUTCOMES: [&str; 6] = ["read", "sent", "failed", "malformed", "dead_lettered", "retried"];

/// Labels of per-package series.
#[derive(Clone, Debug, PartialEq, EncodeLabelSet)]
pub struct PackageLabels {
    pub namespace: String,
    pub package: String,
    pub destination: String,
}

/// What the per-package series say about one package (from its status).
#[derive(Clone, Debug, PartialEq)]
pub struct PackageFigures {
    pub labels: PackageLabels,
    /// One of [`PHASES`].
    pub phase: &'static str,
    /// `bytesDone / bytesTotal`, 0..=1.
    pub progress: f64,
    pub remaining_bytes: i64,
    /// `None` while the package does not move.
    pub eta_seconds: Option<i64>,
    /// Records by outcome, in the order of [`OUTCOMES`].
    pub records: [i64; 6],
}

/// The `phase` label of a package phase (`None`: not set yet).
fn phase_label(phase: Option<PackagePhase>) -> &'static str {
    match phase {
        None | Some(PackagePhase::Pending) => "Pending",
        Some(PackagePhase::Waiting) => "Waiting",
        Some(PackagePhase::Running) => "Running",
        Some(PackagePhase::Suspended) => "Suspended",
        Some(PackagePhase::Complete) => "Complete",
        Some(PackagePhase::Failed) => "Failed",
    }
}

impl PackageFigures {
    /// The figures of `pkg`'s status (read in place, nothing of it copied).
    pub fn of(pkg: &DeliveryPackage) -> PackageFigures {
        let none = DeliveryPackageStatus::default();
        let status = pkg.status.as_ref().unwrap_or(&none);
        let p = &status.progress;
        let phase = phase_label(status.phase);
        let finished = status.phase.is_some_and(PackagePhase::is_finished);
        let progress = if finished || p.bytes_total <= 0 {
            if finished || phase == "Running" { 1.0 } else { 0.0 }
        } else {
            (p.bytes_done as f64 / p.bytes_total as f64).clamp(0.0, 1.0)
        };
        let r = &p.records;
        PackageFigures {
            labels: PackageLabels {
                namespace: pkg.namespace().unwrap_or_default(),
                package: pkg.name_any(),
                destination: pkg.spec.destination_ref.name.clone(),
            },
            phase,
            progress,
            remaining_bytes: if finished { 0 } else { (p.bytes_total - p.bytes_done).max(0) },
            eta_seconds: if finished { Some(0) } else { p.eta_seconds },
            records: [r.read, r.sent, r.failed, r.malformed, r.dead_lettered, r.retried],
        }
    }
}

/// The figures of every package, as last recorded; a [`Collector`] of the registry.
#[derive(Debug, Default)]
pub struct PackageSeries(Mutex<Vec<PackageFigures>>);

impl PackageSeries {
    /// Replaces the figures (an empty list: no per-package series at all).
    pub fn record(&self, figures: Vec<PackageFigures>) {
        *self.lock() = figures;
    }

    fn lock(&self) -> MutexGuard<'_, Vec<PackageFigures>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Encodes one gauge family: `value` gives each package's figure (`None`: no series).
fn gauge_family<N>(
    encoder: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    figures: &[PackageFigures],
    value: impl Fn(&PackageFigures) -> Option<ConstGauge<N>>,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: prometheus_client::encoding::EncodeMetric,
{
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for f in figures {
        if let Some(gauge) = value(f) {
            gauge.encode(family.encode_family(&f.labels)?)?;
        }
    }
    Ok(())
}

/// Encodes one gauge family with an extra label `key`: `values` gives each package's
/// (label value, figure) pairs.
fn labelled_family<'f, I: IntoIterator<Item = (&'static str, i64)>>(
    encoder: &mut DescriptorEncoder,
    (name, help, key): (&str, &str, &'static str),
    figures: &'f [PackageFigures],
    values: impl Fn(&'f PackageFigures) -> I,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for f in figures {
        let l = &f.labels;
        for (label, n) in values(f) {
            let labels: [(&str, &str); 4] =
                [("namespace", &l.namespace), ("package", &l.package), ("destination", &l.destination), (key, label)];
            ConstGauge::new(n).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for PackageSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let figures = self.lock();
        let figures = figures.as_slice();
        if figures.is_empty() {
            return Ok(());
        }
        let e = &mut encoder;
        gauge_family(e, ("package_progress_ratio", "Share of a package's bytes delivered (0 to 1)"), figures, |f| {
            Some(ConstGauge::new(f.progress))
        })?;
        gauge_family(e, ("package_remaining_bytes", "Bytes of a package not yet delivered"), figures, |f| {
            Some(ConstGauge::new(f.remaining_bytes))
        })?;
        gauge_family(
            e,
            ("package_eta_seconds", "Estimated seconds until a package is delivered (absent while it does not move)"),
            figures,
            |f| f.eta_seconds.map(ConstGauge::new),
        )?;
        labelled_family(
            e,
            ("package_records", "A package's record counters from its status, by outcome", "outcome"),
            figures,
            |f| OUTCOMES.into_iter().zip(f.records),
        )?;
        labelled_family(
            e,
            ("package_phase", "1 for a package's phase, 0 for the other phases", "phase"),
            figures,
            |f| PHASES.map(|p| (p, i64::from(f.phase == p))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_has_its_label() {
        let phases = [
            PackagePhase::Pending,
            PackagePhase::Waiting,
            PackagePhase::Running,
            PackagePhase::Suspended,
            PackagePhase::Complete,
            PackagePhase::Failed,
        ];
        for (phase, label) in phases.into_iter().zip(PHASES) {
            assert_eq!(phase_label(Some(phase)), label);
            assert_eq!(format!("{phase:?}"), label, "the label is the phase's name");
        }
        assert_eq!(phase_label(None), "Pending", "no status yet");
    }
}
