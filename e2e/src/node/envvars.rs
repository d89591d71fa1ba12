//! A container's environment: `env` (values, fieldRef, secretKeyRef, configMapKeyRef),
//! `envFrom`, and what every pod gets (POD_IP, KUBERNETES_SERVICE_HOST/PORT).

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;

use super::config::ClusterInfo;
use super::error::{Error, Result};

/// The facts about a pod that env vars and downward-API files may refer to.
#[derive(Debug, Clone, Copy)]
pub struct PodFacts<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its loopback address.
    pub ip: Ipv4Addr,
    /// The node it runs on.
    pub node_name: &'a str,
}

impl PodFacts<'_> {
    /// Namespace of the pod.
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// Name of the pod.
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    /// The value of a downward-API `fieldPath`.
    pub fn field(&self, path: &str) -> Result<String> {
        let meta = &self.pod.metadata;
        let spec = self.pod.spec.as_ref();
        let from_map = |map: &Option<BTreeMap<String, String>>, prefix: &str| {
            let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
            Some(map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default())
        };
        let value = match path {
            "metadata.name" => self.name().to_string(),
            "metadata.namespace" => self.namespace().to_string(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "spec.nodeName" => self.node_name.to_string(),
            "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
            "status.podIP" | "status.podIPs" => self.ip.to_string(),
            "status.hostIP" | "status.hostIPs" => "127.0.0.1".to_string(),
            _ => from_map(&meta.labels, "metadata.labels['")
                .or_else(|| from_map(&meta.annotations, "metadata.annotations['"))
                .ok_or_else(|| Error::Unsupported(format!("fieldPath {path:?} is not supported by courier-node")))?,
        };
        Ok(value)
    }
}

/// Reads Secrets and ConfigMaps of one namespace, each at most once.
pub struct Lookup {
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
    secret_cache: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    config_map_cache: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
}

impl Lookup {
    /// A lookup in `namespace`.
    pub fn new(client: &kube::Client, namespace: &str) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), namespace),
            config_maps: Api::namespaced(client.clone(), namespace),
            secret_cache: HashMap::new(),
            config_map_cache: HashMap::new(),
        }
    }

    /// The data of Secret `name`, or None if it does not exist.
    pub async fn secret(&mut self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        if let Some(cached) = self.secret_cache.get(name) {
            return Ok(cached.clone());
        }
        let secret = self.secrets.get_opt(name).await.map_err(Error::kube(format!("get secret {name}")))?;
        let data = secret.map(|s| s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect());
        self.secret_cache.insert(name.to_string(), data.clone());
        Ok(data)
    }

    /// The data (text and binary) of ConfigMap `name`, or None if it does not exist.
    pub async fn config_map(&mut self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        if let Some(cached) = self.config_map_cache.get(name) {
            return Ok(cached.clone());
        }
        let cm = self.config_maps.get_opt(name).await.map_err(Error::kube(format!("get configmap {name}")))?;
        let data = cm.map(|cm| {
            let mut data: BTreeMap<String, Vec<u8>> =
                cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
            data.extend(cm.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
            data
        });
        self.config_map_cache.insert(name.to_string(), data.clone());
        Ok(data)
    }
}

/// The complete environment of `container`.
pub async fn container_env(
    lookup: &mut Lookup,
    facts: PodFacts<'_>,
    container: &Container,
    cluster: &ClusterInfo,
) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::from([
        ("PATH".to_string(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()),
        ("HOME".to_string(), "/root".to_string()),
        ("HOSTNAME".to_string(), facts.name().to_string()),
        ("POD_IP".to_string(), facts.ip.to_string()),
        ("KUBERNETES_SERVICE_HOST".to_string(), cluster.host.clone()),
        ("KUBERNETES_SERVICE_PORT".to_string(), cluster.port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".to_string(), cluster.port.to_string()),
    ]);
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (data, name, optional) = if let Some(cm) = &source.config_map_ref {
            (lookup.config_map(&cm.name).await?, format!("configmap {}", cm.name), cm.optional)
        } else if let Some(secret) = &source.secret_ref {
            (lookup.secret(&secret.name).await?, format!("secret {}", secret.name), secret.optional)
        } else {
            continue;
        };
        match data {
            Some(data) => env.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), lossy(v)))),
            None if optional == Some(true) => {}
            None => return Err(Error::Config(format!("{name} not found (envFrom)"))),
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => Some(expand(var.value.as_deref().unwrap_or_default(), &env)),
            Some(from) => {
                if let Some(field) = &from.field_ref {
                    Some(facts.field(&field.field_path)?)
                } else if let Some(key) = &from.secret_key_ref {
                    let data = lookup.secret(&key.name).await?;
                    keyed(data, &key.key, key.optional, || format!("secret {}", key.name))?
                } else if let Some(key) = &from.config_map_key_ref {
                    let data = lookup.config_map(&key.name).await?;
                    keyed(data, &key.key, key.optional, || format!("configmap {}", key.name))?
                } else {
                    return Err(Error::Unsupported(format!(
                        "env {}: only value, fieldRef, secretKeyRef and configMapKeyRef are supported",
                        var.name
                    )));
                }
            }
        };
        if let Some(value) = value {
            env.insert(var.name.clone(), value);
        }
    }
    Ok(env)
}

fn keyed(
    data: Option<BTreeMap<String, Vec<u8>>>,
    key: &str,
    optional: Option<bool>,
    what: impl Fn() -> String,
) -> Result<Option<String>> {
    match data.as_ref().and_then(|d| d.get(key)) {
        Some(value) => Ok(Some(lossy(value.clone()))),
        None if optional == Some(true) => Ok(None),
        None if data.is_none() => Err(Error::Config(format!("{} not found", what()))),
        None => Err(Error::Config(format!("key {key:?} not found in {}", what()))),
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Expands `$(NAME)` references to defined variables as Kubernetes does:
/// `$$` is a literal `$`, and references to undefined names stay as written.
pub fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(close) = inner.find(')')
            && let Some(value) = env.get(&inner[..close])
        {
            out.push_str(value);
            rest = &inner[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn references_expand_escapes_collapse_and_unknown_names_stay() {
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(expand("x$(A)y", &env), "x1y");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$(B) $A $", &env), "$(B) $A $");
    }

    #[test]
    fn field_paths_resolve_from_the_pod_and_its_address() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                labels: Some(BTreeMap::from([("app".to_string(), "x".to_string())])),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        let facts = PodFacts { pod: &pod, ip: Ipv4Addr::new(127, 0, 0, 7), node_name: "n" };
        assert_eq!(facts.field("metadata.name").unwrap(), "p");
        assert_eq!(facts.field("metadata.namespace").unwrap(), "ns");
        assert_eq!(facts.field("metadata.uid").unwrap(), "u");
        assert_eq!(facts.field("status.podIP").unwrap(), "127.0.0.7");
        assert_eq!(facts.field("spec.nodeName").unwrap(), "n");
        assert_eq!(facts.field("metadata.labels['app']").unwrap(), "x");
        assert!(facts.field("status.phase").is_err());
    }

    #[test]
    fn a_missing_optional_key_is_skipped_and_a_missing_required_one_is_an_error() {
        let data = Some(BTreeMap::from([("k".to_string(), b"v".to_vec())]));
        assert_eq!(keyed(data.clone(), "k", None, || "secret s".into()).unwrap(), Some("v".into()));
        assert_eq!(keyed(data.clone(), "x", Some(true), || "secret s".into()).unwrap(), None);
        assert!(keyed(data, "x", None, || "secret s".into()).unwrap_err().to_string().contains("\"x\""));
        assert!(keyed(None, "x", None, || "secret s".into()).unwrap_err().to_string().contains("secret s not found"));
    }
}
