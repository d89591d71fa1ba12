//! The coordinator's TLS Secret through the apiserver: read it, create it with generated
//! material when it does not exist (two replicas racing: the first create wins, the other reads
//! what it wrote), and look at it again now and then to pick up a renewal.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use super::{Material, MaterialError, ServingCert};

/// Annotation marking a Secret whose material the operator generated.
pub const GENERATED_ANNOTATION: &str = "courier.dev/generated-by";
/// How often the Secret is read again for a renewed certificate.
const RECHECK: Duration = Duration::from_secs(30);

/// Why the Secret could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("failed to read or write the coordinator's TLS Secret {namespace}/{name}: {source}")]
    Api { namespace: String, name: String, source: kube::Error },
    #[error("the coordinator's TLS Secret {namespace}/{name} is unusable: {source}")]
    Material { namespace: String, name: String, source: MaterialError },
    #[error("the coordinator's TLS Secret {namespace}/{name} has no {keys} yet")]
    Incomplete { namespace: String, name: String, keys: &'static str },
}

/// The coordinator's TLS Secret.
#[derive(Clone)]
pub struct TlsSecret {
    api: Api<Secret>,
    namespace: String,
    name: String,
    /// Names the generated serving certificate is issued for.
    dns_names: Vec<String>,
}

impl TlsSecret {
    /// Secret `name` in `namespace`; a generated certificate is issued for `dns_names`.
    pub fn new(client: kube::Client, namespace: &str, name: &str, dns_names: Vec<String>) -> Self {
        TlsSecret {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dns_names,
        }
    }

    fn api_error(&self, source: kube::Error) -> SecretError {
        SecretError::Api { namespace: self.namespace.clone(), name: self.name.clone(), source }
    }

    fn material_error(&self, source: MaterialError) -> SecretError {
        SecretError::Material { namespace: self.namespace.clone(), name: self.name.clone(), source }
    }

    /// The material in the Secret; `Ok(None)` when the Secret does not exist.
    async fn read(&self) -> Result<Option<Material>, SecretError> {
        let Some(secret) = self.api.get_opt(&self.name).await.map_err(|e| self.api_error(e))? else {
            return Ok(None);
        };
        let data = secret.data.unwrap_or_default();
        match Material::from_secret_data(&data).map_err(|e| self.material_error(e))? {
            Some(material) => Ok(Some(material)),
            None => Err(SecretError::Incomplete {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                keys: "tls.crt and tls.key",
            }),
        }
    }

    /// The material to serve: the Secret's, or generated into a new Secret when there is none.
    pub async fn load_or_generate(&self) -> Result<Material, SecretError> {
        if let Some(material) = self.read().await? {
            tracing::info!(secret = %self.name, "coordinator TLS certificate from the Secret");
            return Ok(material);
        }
        let today = jiff::Zoned::now().date();
        let date =
            (i32::from(today.year()), u8::try_from(today.month()).unwrap_or(1), u8::try_from(today.day()).unwrap_or(1));
        let material = Material::generate(&self.dns_names, date).map_err(|e| self.material_error(e))?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                annotations: Some([(GENERATED_ANNOTATION.to_owned(), "courier-operator".to_owned())].into()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".to_owned()),
            data: Some(material.to_secret_data()),
            ..Default::default()
        };
        match self.api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(secret = %self.name, names = ?self.dns_names, "generated a self-signed CA and serving certificate for the coordinator");
                Ok(material)
            }
            // Another replica created it first: serve what it wrote.
            Err(kube::Error::Api(status)) if status.code == 409 => match self.read().await? {
                Some(material) => Ok(material),
                None => Err(SecretError::Incomplete {
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                    keys: "data after a conflicting create",
                }),
            },
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Reads the Secret every 30 s until `stop` and serves renewed material as it appears.
    pub async fn keep_current(self, serving: Arc<ServingCert>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RECHECK) => {}
            }
            match self.read().await {
                Ok(Some(material)) => match serving.replace(material) {
                    Ok(true) => tracing::info!(secret = %self.name, "serving the renewed coordinator certificate"),
                    Ok(false) => {}
                    Err(err) => {
                        tracing::warn!(%err, "the coordinator's TLS Secret changed to something unusable; serving the previous certificate")
                    }
                },
                Ok(None) => {
                    tracing::warn!(secret = %self.name, "the coordinator's TLS Secret is gone; serving the certificate in memory")
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot read the coordinator's TLS Secret; serving the previous certificate")
                }
            }
        }
    }
}
