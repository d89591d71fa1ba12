//! TLS for the simulator: a partner behind `https://`, offering HTTP/2 and HTTP/1.1 by ALPN,
//! and a throwaway certificate authority that issues its serving certificate, so tests can hand
//! the CA to a Destination as the partner's private CA.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the TLS material could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("failed to read the {what} PEM: {source}")]
    Pem { what: &'static str, source: rustls::pki_types::pem::Error },
    #[error("failed to set up the TLS server: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A serving certificate chain and its key, in PEM.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A throwaway CA and a serving identity it issued for `localhost` and `127.0.0.1`.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate a client must trust.
    pub ca_pem: String,
    pub server: TlsIdentity,
}

impl TestPki {
    /// Makes a new CA and a serving certificate for the loopback names.
    pub fn generate() -> Result<Self, TlsError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "courier test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        let cert = params.signed_by(&key, &ca)?;
        Ok(Self { ca_pem: ca.pem(), server: TlsIdentity { cert_pem: cert.pem(), key_pem: key.serialize_pem() } })
    }
}

impl TlsIdentity {
    /// A TLS acceptor serving this identity, offering h2 and http/1.1.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem { what: "certificate", source })?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|source| TlsError::Pem { what: "private key", source })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
