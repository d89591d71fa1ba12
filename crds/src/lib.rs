#![forbid(unsafe_code)]
// `#[kube(printcolumn(..))]` repeats `type_ = "string"` across columns, which clippy mistakes for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]
//! The Courier API, group `courier.dev`, version `v1alpha1`: `Destination` (a partner endpoint),
//! `Datum` (a data type) and `DeliveryPackage` (one batch of files of one Datum for one
//! Destination), with their condition types and the helpers that set them.
//!
//! The CRD YAML under `crds/generated/` and `docs/api.md` are generated from these types by the
//! `crdgen` binary; a test fails when the committed files are stale.

pub mod common;
pub mod conditions;
pub mod datum;
pub mod destination;
pub mod generate;
pub mod package;
mod package_status;

pub use common::{LocalRef, SecretKeyRef, SecretRef};
pub use datum::{Datum, DatumSpec, DatumStatus};
pub use destination::{Destination, DestinationSpec, DestinationStatus};
pub use package::{DeliveryPackage, DeliveryPackageSpec, DeliveryPackageStatus};

/// API group of every Courier resource.
pub const GROUP: &str = "courier.dev";
/// API version of every Courier resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Courier resource.
pub const API_VERSION: &str = "courier.dev/v1alpha1";
/// The field manager Courier uses for server-side apply.
pub const FIELD_MANAGER: &str = "courier-operator";
