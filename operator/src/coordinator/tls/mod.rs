//! HTTPS for the coordinator. The serving certificate comes from a Secret in the operator's
//! namespace (cert-manager's `tls.crt`/`tls.key`/`ca.crt`), or, when that Secret does not exist,
//! from a self-signed CA and serving certificate the operator generates into it. The certificate
//! in force is swapped without a restart when the Secret changes (a cert-manager renewal).

mod material;
mod secret;

use std::sync::{Arc, PoisonError, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

pub use material::{CA_KEY, CERT_KEY, KEY_KEY, Material, MaterialError, service_dns_names};
pub use secret::{SecretError, TlsSecret};

/// The certificate the coordinator serves now, and the CA workers verify it with.
pub struct ServingCert {
    current: RwLock<(Arc<CertifiedKey>, Material)>,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("ServingCert").field("material", &guard.1).finish()
    }
}

impl ServingCert {
    /// Serves `material`.
    pub fn new(material: Material) -> Result<Arc<Self>, MaterialError> {
        let key = material.certified_key()?;
        Ok(Arc::new(ServingCert { current: RwLock::new((key, material)) }))
    }

    /// Serves `material` from the next handshake on; false when it is what is served already.
    pub fn replace(&self, material: Material) -> Result<bool, MaterialError> {
        if self.current.read().unwrap_or_else(PoisonError::into_inner).1 == material {
            return Ok(false);
        }
        let key = material.certified_key()?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (key, material);
        Ok(true)
    }

    /// The CA certificate (PEM) workers are to verify the coordinator with, if the Secret has one.
    pub fn ca_pem(&self) -> Option<String> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).1.ca_pem.clone()
    }

    /// A TLS acceptor serving whatever certificate is current at each handshake (HTTP/1.1).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).0.clone())
    }
}

#[cfg(test)]
mod serve_tests;
