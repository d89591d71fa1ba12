//! Small types shared by the three resources.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A reference to one key of a Secret in the same namespace as the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[x_kube(validation = kube::core::Rule::new("size(self) > 0").message("secret name must not be empty"))]
    #[schemars(length(max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[x_kube(validation = kube::core::Rule::new("size(self) > 0").message("secret key must not be empty"))]
    #[schemars(length(max = 253))]
    pub key: String,
}

/// A reference to a Secret in the same namespace, whose keys have fixed names documented where
/// the reference is used.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[x_kube(validation = kube::core::Rule::new("size(self) > 0").message("secret name must not be empty"))]
    pub name: String,
}

/// A reference by name to another Courier object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// Name of the referenced object.
    #[x_kube(validation = kube::core::Rule::new("size(self) > 0 && size(self) <= 253").message("name must be 1 to 253 characters"))]
    pub name: String,
}

impl LocalRef {
    /// A reference to the object called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// A short human duration, as status fields such as a package's `eta` are written: `45s`,
/// `3m20s`, `1h2m`, `2d5h` (the two largest units, like kubectl's ages).
pub fn human_duration(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) if m == 0 => format!("{h}h"),
        (0, _, _) => format!("{h}h{m}m"),
        _ if h == 0 => format!("{d}d"),
        _ => format!("{d}d{h}h"),
    }
}
