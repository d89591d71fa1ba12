//! A kube client from the global flags, as kubectl would pick it.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::cli::Global;
use crate::error::Error;

/// The client and the namespace to use (the flag, else the kubeconfig context's).
pub async fn connect(global: &Global) -> Result<(Client, String), Error> {
    let options = KubeConfigOptions { context: global.context.clone(), ..Default::default() };
    let config = match (&global.kubeconfig, &global.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(Error::Kubeconfig)?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(Error::Kubeconfig)?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await.map_err(Error::Kubeconfig)?,
        (None, None) => Config::infer().await.map_err(Error::Infer)?,
    };
    let namespace = global.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(Error::Client)?;
    Ok((client, namespace))
}
