//! The worker pod's security settings and volumes: the `restricted` Pod Security profile, the
//! projected coordinator token, the Destination's Secrets as read-only volumes and a small
//! writable `/tmp`.

use std::collections::{BTreeMap, BTreeSet};

use courier_api::Destination;
use courier_core::destination::DestinationSettings;
use courier_core::secrets::{mount_dir, secret_uses};
use k8s_openapi::api::core::v1::{
    Capabilities, EmptyDirVolumeSource, KeyToPath, PodSecurityContext, ProjectedVolumeSource, SeccompProfile,
    SecretVolumeSource, SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::CoordinatorToken;

/// Where the projected coordinator token is mounted in worker pods.
pub const COORDINATOR_TOKEN_DIR: &str = "/var/run/secrets/courier.dev/coordinator";
/// The token file the worker reads before every heartbeat (the kubelet rewrites it).
pub const COORDINATOR_TOKEN_PATH: &str = "/var/run/secrets/courier.dev/coordinator/token";
/// The non-root user and group of Courier's images (`USER 65532:65532`).
const NONROOT: i64 = 65532;
/// Files readable by owner and group (the pod's fsGroup) only.
const READ_ONLY_MODE: i32 = 0o440;

/// Pod-level security: non-root 65532 (group and fsGroup too, so mounted files are readable),
/// RuntimeDefault seccomp.
pub fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NONROOT),
        run_as_group: Some(NONROOT),
        fs_group: Some(NONROOT),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), ..Default::default() }),
        ..Default::default()
    }
}

/// Container-level security: what Pod Security `restricted` demands, and a read-only root.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Default::default() }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount { name: name.to_owned(), mount_path: path.to_owned(), read_only: Some(read_only), ..Default::default() }
}

/// The Secret keys the Destination uses, grouped by Secret, both sorted.
fn keys_by_secret(dest: &Destination) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_secret: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for u in secret_uses(&DestinationSettings::from(&dest.spec)) {
        by_secret.entry(u.secret).or_default().insert(u.key);
    }
    by_secret
}

/// The pod's volumes and the worker container's mounts.
pub fn volumes(dest: &Destination, token: &CoordinatorToken) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![
        Volume {
            name: "coordinator-token".to_owned(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(READ_ONLY_MODE),
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(token.audience.clone()),
                        expiration_seconds: Some(token.expiration_seconds),
                        path: "token".to_owned(),
                    }),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("64Mi".to_owned())),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    let mut mounts = vec![mount("coordinator-token", COORDINATOR_TOKEN_DIR, true), mount("tmp", "/tmp", false)];
    for (i, (secret, keys)) in keys_by_secret(dest).into_iter().enumerate() {
        let name = format!("secret-{i}");
        mounts.push(mount(&name, &mount_dir(&secret), true));
        volumes.push(Volume {
            name,
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                default_mode: Some(READ_ONLY_MODE),
                items: Some(keys.into_iter().map(|k| KeyToPath { path: k.clone(), key: k, mode: None }).collect()),
                optional: Some(false),
            }),
            ..Default::default()
        });
    }
    (volumes, mounts)
}
