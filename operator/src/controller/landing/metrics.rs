//! Landing metrics, registered into the operator's registry (`courier_operator_landing_…`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of per-Datum series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatumLabels {
    pub namespace: String,
    pub datum: String,
}

/// Labels of per-Datum-and-Destination series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatumDestinationLabels {
    pub namespace: String,
    pub datum: String,
    pub destination: String,
}

/// The landing series.
#[derive(Default)]
pub struct LandingMetrics {
    pub files_seen: Family<DatumLabels, Counter>,
    pub files_packaged: Family<DatumDestinationLabels, Counter>,
    pub files_delivered: Family<DatumDestinationLabels, Counter>,
    pub files_failed: Family<DatumDestinationLabels, Counter>,
    pub files_pending: Family<DatumLabels, Gauge>,
    pub lag_seconds: Family<DatumLabels, Gauge>,
    pub batches: Family<DatumLabels, Counter>,
}

impl LandingMetrics {
    /// New series, registered under `landing` in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("landing");
        r.register("files_seen", "Landed files listed for the first time", m.files_seen.clone());
        r.register("files_packaged", "Landed files put into a package, per Destination", m.files_packaged.clone());
        r.register(
            "files_delivered",
            "Landed files whose package completed, per Destination",
            m.files_delivered.clone(),
        );
        r.register("files_failed", "Landed files recorded failed, per Destination", m.files_failed.clone());
        r.register("files_pending", "Landed files not yet delivered everywhere nor failed", m.files_pending.clone());
        r.register("lag_seconds", "Age of the oldest landed file not yet delivered everywhere", m.lag_seconds.clone());
        r.register("batches", "Batches cut", m.batches.clone());
        m
    }

    /// The per-Datum labels.
    pub fn datum(namespace: &str, datum: &str) -> DatumLabels {
        DatumLabels { namespace: namespace.to_owned(), datum: datum.to_owned() }
    }

    /// The per-Destination labels.
    pub fn dest(namespace: &str, datum: &str, destination: &str) -> DatumDestinationLabels {
        DatumDestinationLabels {
            namespace: namespace.to_owned(),
            datum: datum.to_owned(),
            destination: destination.to_owned(),
        }
    }
}
