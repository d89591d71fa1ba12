//! Pod volumes as directories under the state dir, bound into containers by [`super::launch`].
//!
//! Supported: emptyDir, hostPath, secret, configMap, downwardAPI and projected
//! (serviceAccountToken, secret, configMap, downwardAPI sources). The
//! `kube-root-ca.crt` ConfigMap is served from the cluster CA of the node's
//! kubeconfig. Pods whose `automountServiceAccountToken` is not false and that
//! mount nothing at the standard path get a token volume there anyway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Volume};
use tokio::time::Instant;

use super::config::ClusterInfo;
use super::envvars::{Lookup, PodFacts};
use super::error::{Error, Result};
use super::launch::Mount;
use super::state::StateDir;
use super::token;

/// Where Kubernetes clients look for the service-account token, CA and namespace.
pub const SERVICE_ACCOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
const IMPLICIT_TOKEN_VOLUME: &str = "courier-node-service-account";

/// A token file to keep fresh.
#[derive(Debug, Clone)]
struct TokenFile {
    path: PathBuf,
    audience: Option<String>,
    expiration_seconds: i64,
    refresh_at: Instant,
}

/// The pod's volumes, ready to be bound into its containers.
#[derive(Debug, Default)]
pub struct PreparedVolumes {
    dirs: BTreeMap<String, PathBuf>,
    tokens: Vec<TokenFile>,
    implicit_token_dir: Option<PathBuf>,
}

impl PreparedVolumes {
    /// Creates every volume of the pod (fetching Secrets, ConfigMaps and tokens).
    pub async fn prepare(
        client: &kube::Client,
        state: &StateDir,
        facts: PodFacts<'_>,
        cluster: &ClusterInfo,
    ) -> Result<Self> {
        let uid = facts.pod.metadata.uid.as_deref().unwrap_or_default();
        let spec = facts.pod.spec.clone().unwrap_or_default();
        let mut lookup = Lookup::new(client, facts.namespace());
        let mut prepared = Self::default();
        for volume in spec.volumes.iter().flatten() {
            let dir = match &volume.host_path {
                Some(host) => PathBuf::from(&host.path),
                None => state.volume_dir(uid, &volume.name),
            };
            std::fs::create_dir_all(&dir).map_err(Error::io("create volume directory", &dir))?;
            prepared.fill(client, &mut lookup, facts, cluster, volume, &dir).await?;
            prepared.dirs.insert(volume.name.clone(), dir);
        }
        let mounts_standard_path = spec
            .containers
            .iter()
            .flat_map(|c| c.volume_mounts.iter().flatten())
            .any(|m| m.mount_path.trim_end_matches('/') == SERVICE_ACCOUNT_PATH);
        if spec.automount_service_account_token != Some(false) && !mounts_standard_path {
            let dir = state.volume_dir(uid, IMPLICIT_TOKEN_VOLUME);
            std::fs::create_dir_all(&dir).map_err(Error::io("create volume directory", &dir))?;
            prepared.add_token(client, facts, &dir, "token", None, None).await?;
            write_file(&dir, "ca.crt", &cluster.ca_pem)?;
            write_file(&dir, "namespace", facts.namespace().as_bytes())?;
            prepared.implicit_token_dir = Some(dir);
        }
        Ok(prepared)
    }

    async fn fill(
        &mut self,
        client: &kube::Client,
        lookup: &mut Lookup,
        facts: PodFacts<'_>,
        cluster: &ClusterInfo,
        volume: &Volume,
        dir: &Path,
    ) -> Result<()> {
        if volume.empty_dir.is_some() || volume.host_path.is_some() {
            return Ok(());
        }
        if let Some(secret) = &volume.secret {
            let name = secret.secret_name.clone().unwrap_or_default();
            let data = lookup.secret(&name).await?;
            return write_keyed(dir, data, secret.items.as_deref(), secret.optional, &format!("secret {name}"));
        }
        if let Some(cm) = &volume.config_map {
            let data = config_map(lookup, cluster, &cm.name).await?;
            return write_keyed(dir, data, cm.items.as_deref(), cm.optional, &format!("configmap {}", cm.name));
        }
        if let Some(downward) = &volume.downward_api {
            for item in downward.items.iter().flatten() {
                write_downward(dir, facts, &item.path, item.field_ref.as_ref().map(|f| f.field_path.as_str()))?;
            }
            return Ok(());
        }
        if let Some(projected) = &volume.projected {
            for source in projected.sources.iter().flatten() {
                if let Some(sat) = &source.service_account_token {
                    self.add_token(client, facts, dir, &sat.path, sat.audience.clone(), sat.expiration_seconds).await?;
                } else if let Some(cm) = &source.config_map {
                    let data = config_map(lookup, cluster, &cm.name).await?;
                    write_keyed(dir, data, cm.items.as_deref(), cm.optional, &format!("configmap {}", cm.name))?;
                } else if let Some(secret) = &source.secret {
                    let data = lookup.secret(&secret.name).await?;
                    let what = format!("secret {}", secret.name);
                    write_keyed(dir, data, secret.items.as_deref(), secret.optional, &what)?;
                } else if let Some(downward) = &source.downward_api {
                    for item in downward.items.iter().flatten() {
                        let field = item.field_ref.as_ref().map(|f| f.field_path.as_str());
                        write_downward(dir, facts, &item.path, field)?;
                    }
                } else {
                    return Err(Error::Unsupported(format!(
                        "volume {}: only serviceAccountToken, configMap, secret and downwardAPI projections are supported",
                        volume.name
                    )));
                }
            }
            return Ok(());
        }
        Err(Error::Unsupported(format!(
            "volume {}: courier-node supports emptyDir, hostPath, secret, configMap, downwardAPI and projected volumes",
            volume.name
        )))
    }

    async fn add_token(
        &mut self,
        client: &kube::Client,
        facts: PodFacts<'_>,
        dir: &Path,
        file: &str,
        audience: Option<String>,
        expiration_seconds: Option<i64>,
    ) -> Result<()> {
        let expiration_seconds = expiration_seconds.unwrap_or(token::DEFAULT_EXPIRATION_SECONDS);
        let issued = token::request(client, facts, audience.as_deref(), expiration_seconds).await?;
        write_file(dir, file, issued.token.as_bytes())?;
        self.tokens.push(TokenFile {
            path: dir.join(file),
            audience,
            expiration_seconds,
            refresh_at: Instant::now() + issued.refresh_after,
        });
        Ok(())
    }

    /// When the next token is due for refresh, if the pod has tokens.
    pub fn next_refresh(&self) -> Option<Instant> {
        self.tokens.iter().map(|t| t.refresh_at).min()
    }

    /// Replaces every token that is due with a fresh one.
    pub async fn refresh_due_tokens(&mut self, client: &kube::Client, facts: PodFacts<'_>) -> Result<()> {
        let now = Instant::now();
        for file in self.tokens.iter_mut().filter(|t| t.refresh_at <= now) {
            let issued = token::request(client, facts, file.audience.as_deref(), file.expiration_seconds).await?;
            let (dir, name) = split(&file.path);
            write_file(dir, name, issued.token.as_bytes())?;
            file.refresh_at = now + issued.refresh_after;
            tracing::debug!(path = %file.path.display(), "refreshed service-account token");
        }
        Ok(())
    }

    /// The bind mounts `container` needs.
    pub fn mounts_for(&self, container: &Container) -> Result<Vec<Mount>> {
        let mut mounts = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let dir = self
                .dirs
                .get(&mount.name)
                .ok_or_else(|| Error::Config(format!("volumeMount {} refers to no volume of the pod", mount.name)))?;
            let source = match mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
                Some(sub) => {
                    let source = dir.join(sub);
                    if !source.exists() {
                        std::fs::create_dir_all(&source).map_err(Error::io("create subPath", &source))?;
                    }
                    source
                }
                None => dir.clone(),
            };
            mounts.push(Mount { source, target: mount.mount_path.clone(), read_only: mount.read_only == Some(true) });
        }
        if let Some(dir) = &self.implicit_token_dir {
            mounts.push(Mount { source: dir.clone(), target: SERVICE_ACCOUNT_PATH.into(), read_only: true });
        }
        Ok(mounts)
    }
}

async fn config_map(
    lookup: &mut Lookup,
    cluster: &ClusterInfo,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    if name == ROOT_CA_CONFIG_MAP {
        return Ok(Some(BTreeMap::from([("ca.crt".to_string(), cluster.ca_pem.clone())])));
    }
    lookup.config_map(name).await
}

fn write_keyed(
    dir: &Path,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    what: &str,
) -> Result<()> {
    let Some(data) = data else {
        return if optional == Some(true) { Ok(()) } else { Err(Error::Config(format!("{what} not found"))) };
    };
    match items {
        None => data.iter().try_for_each(|(key, value)| write_file(dir, key, value)),
        Some(items) => items.iter().try_for_each(|item| match data.get(&item.key) {
            Some(value) => write_file(dir, &item.path, value),
            None if optional == Some(true) => Ok(()),
            None => Err(Error::Config(format!("key {:?} not found in {what}", item.key))),
        }),
    }
}

fn write_downward(dir: &Path, facts: PodFacts<'_>, path: &str, field: Option<&str>) -> Result<()> {
    let field =
        field.ok_or_else(|| Error::Unsupported(format!("downwardAPI item {path}: only fieldRef is supported")))?;
    write_file(dir, path, facts.field(field)?.as_bytes())
}

/// Writes `dir/relative` atomically (temporary file, then rename), creating parents.
fn write_file(dir: &Path, relative: &str, contents: &[u8]) -> Result<()> {
    if relative.split('/').any(|part| part == "..") || relative.starts_with('/') {
        return Err(Error::Config(format!("volume file path {relative:?} leaves its volume")));
    }
    let path = dir.join(relative);
    let (parent, name) = split(&path);
    std::fs::create_dir_all(parent).map_err(Error::io("create volume directory", parent))?;
    let temporary = parent.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, contents).map_err(Error::io("write volume file", &temporary))?;
    std::fs::rename(&temporary, &path).map_err(Error::io("write volume file", &path))
}

fn split(path: &Path) -> (&Path, &str) {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    (parent, name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("courier-node-volumes-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn all_keys_are_written_when_no_items_are_listed() {
        let dir = scratch("all");
        let data = BTreeMap::from([("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())]);
        write_keyed(&dir, Some(data), None, None, "secret s").unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"1");
        assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"2");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn listed_items_go_to_their_paths_and_a_missing_required_key_fails() {
        let dir = scratch("items");
        let data = BTreeMap::from([("a".to_string(), b"1".to_vec())]);
        let item = |key: &str, path: &str| KeyToPath { key: key.into(), path: path.into(), mode: None };
        write_keyed(&dir, Some(data.clone()), Some(&[item("a", "sub/x")]), None, "cm c").unwrap();
        assert_eq!(std::fs::read(dir.join("sub/x")).unwrap(), b"1");
        let error = write_keyed(&dir, Some(data), Some(&[item("zz", "y")]), None, "cm c").unwrap_err();
        assert!(error.to_string().contains("\"zz\""), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_optional_source_writes_nothing_and_a_required_one_fails() {
        let dir = scratch("missing");
        write_keyed(&dir, None, None, Some(true), "secret s").unwrap();
        assert!(write_keyed(&dir, None, None, None, "secret s").unwrap_err().to_string().contains("secret s"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn file_paths_cannot_escape_the_volume() {
        let dir = scratch("escape");
        assert!(write_file(&dir, "../x", b"").is_err());
        assert!(write_file(&dir, "/etc/x", b"").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
