//! Validate (pure): is the package blocked on its Destination or Datum?

use courier_api::conditions::{DatumConditionType, DestinationConditionType, PackageReason, is_condition_true};
use courier_api::{Datum, DeliveryPackage, Destination};

/// Why a package waits, with a message naming the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: PackageReason,
    pub message: String,
}

/// The first thing the package waits for, or `None` when Destination and Datum are both there
/// and Ready (and the Destination is not suspended).
pub fn waiting_for(pkg: &DeliveryPackage, dest: Option<&Destination>, datum: Option<&Datum>) -> Option<Waiting> {
    waiting_for_destination(pkg, dest).or_else(|| waiting_for_datum(pkg, datum))
}

/// What the package waits for on its Destination: there, not suspended, Ready.
pub fn waiting_for_destination(pkg: &DeliveryPackage, dest: Option<&Destination>) -> Option<Waiting> {
    let dest_name = &pkg.spec.destination_ref.name;
    let wait = |reason, message: String| Some(Waiting { reason, message });
    let Some(dest) = dest else {
        return wait(PackageReason::DestinationNotFound, format!("Destination {dest_name:?} not found"));
    };
    if dest.spec.suspend {
        return wait(PackageReason::DestinationSuspended, format!("Destination {dest_name:?} is suspended"));
    }
    let dest_ready =
        dest.status.as_ref().is_some_and(|s| is_condition_true(&s.conditions, DestinationConditionType::Ready));
    if !dest_ready {
        return wait(PackageReason::DestinationNotReady, format!("Destination {dest_name:?} is not Ready"));
    }
    None
}

/// What the package waits for on its Datum: there and Ready. (An attempt that pinned its Datum
/// already does not wait for it: see `plan::pinned_by_attempt`.)
pub fn waiting_for_datum(pkg: &DeliveryPackage, datum: Option<&Datum>) -> Option<Waiting> {
    let datum_name = &pkg.spec.datum_ref.name;
    let wait = |reason, message: String| Some(Waiting { reason, message });
    let Some(datum) = datum else {
        return wait(PackageReason::DatumNotFound, format!("Datum {datum_name:?} not found"));
    };
    let datum_ready =
        datum.status.as_ref().is_some_and(|s| is_condition_true(&s.conditions, DatumConditionType::Ready));
    if !datum_ready {
        return wait(PackageReason::DatumNotReady, format!("Datum {datum_name:?} is not Ready"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGE: &str = r#"
apiVersion: courier.dev/v1alpha1
kind: DeliveryPackage
metadata: { name: p, namespace: ns }
spec:
  destinationRef: { name: partner }
  datumRef: { name: users }
  source: { file: { paths: ["/data/*.jsonl"] } }
"#;

    fn package() -> DeliveryPackage {
        serde_norway::from_str(PACKAGE).expect("valid package")
    }

    fn destination(suspend: bool, ready: &str) -> Destination {
        serde_norway::from_str(&format!(
            r#"
apiVersion: courier.dev/v1alpha1
kind: Destination
metadata: {{ name: partner, namespace: ns }}
spec:
  endpoint: {{ url: "http://127.0.0.1:1/" }}
  rateLimit: {{ requestsPerSecond: 10 }}
  suspend: {suspend}
status:
  conditions:
  - {{ type: Ready, status: "{ready}", reason: X, message: "", lastTransitionTime: "2026-01-01T00:00:00Z" }}
"#
        ))
        .expect("valid destination")
    }

    fn datum(ready: &str) -> Datum {
        serde_norway::from_str(&format!(
            r#"
apiVersion: courier.dev/v1alpha1
kind: Datum
metadata: {{ name: users, namespace: ns }}
spec:
  format: {{ type: JsonLines }}
  request: {{}}
status:
  conditions:
  - {{ type: Ready, status: "{ready}", reason: X, message: "", lastTransitionTime: "2026-01-01T00:00:00Z" }}
"#
        ))
        .expect("valid datum")
    }

    fn reason(dest: Option<&Destination>, datum: Option<&Datum>) -> Option<PackageReason> {
        waiting_for(&package(), dest, datum).map(|w| w.reason)
    }

    #[test]
    fn a_missing_destination_waits_with_destination_not_found() {
        assert_eq!(reason(None, Some(&datum("True"))), Some(PackageReason::DestinationNotFound));
        assert!(waiting_for(&package(), None, None).is_some_and(|w| w.message.contains("partner")));
    }

    #[test]
    fn a_suspended_destination_waits_with_destination_suspended() {
        assert_eq!(
            reason(Some(&destination(true, "True")), Some(&datum("True"))),
            Some(PackageReason::DestinationSuspended)
        );
    }

    #[test]
    fn an_unready_destination_waits_with_destination_not_ready() {
        assert_eq!(
            reason(Some(&destination(false, "False")), Some(&datum("True"))),
            Some(PackageReason::DestinationNotReady)
        );
    }

    #[test]
    fn a_missing_datum_waits_with_datum_not_found() {
        assert_eq!(reason(Some(&destination(false, "True")), None), Some(PackageReason::DatumNotFound));
    }

    #[test]
    fn an_unready_datum_waits_with_datum_not_ready() {
        assert_eq!(
            reason(Some(&destination(false, "True")), Some(&datum("False"))),
            Some(PackageReason::DatumNotReady)
        );
    }

    #[test]
    fn ready_destination_and_datum_do_not_wait() {
        assert_eq!(reason(Some(&destination(false, "True")), Some(&datum("True"))), None);
    }
}
