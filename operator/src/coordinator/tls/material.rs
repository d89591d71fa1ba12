//! TLS material of the coordinator (pure): the three keys of a `kubernetes.io/tls` Secret as
//! cert-manager writes them (`tls.crt`, `tls.key`, `ca.crt`), and a self-signed CA with a
//! serving certificate it issued, for clusters without cert-manager.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Secret key of the serving certificate chain (PEM).
pub const CERT_KEY: &str = "tls.crt";
/// Secret key of the serving certificate's private key (PEM).
pub const KEY_KEY: &str = "tls.key";
/// Secret key of the CA certificate workers verify the chain with (PEM).
pub const CA_KEY: &str = "ca.crt";
/// Years a generated CA and serving certificate are valid.
const VALID_YEARS: i16 = 10;

/// Why the material cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("{key} is not valid UTF-8 PEM")]
    NotText { key: &'static str },
    #[error("{key} holds no usable PEM: {source}")]
    Pem { key: &'static str, source: rustls::pki_types::pem::Error },
    #[error("{CERT_KEY} holds no certificate")]
    NoCertificate,
    #[error("the key does not fit the certificate, or is of an unsupported type: {0}")]
    Key(#[source] rustls::Error),
    #[error("failed to generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A serving certificate chain, its key and the CA to verify it with.
#[derive(Clone, PartialEq, Eq)]
pub struct Material {
    pub cert_pem: String,
    pub key_pem: String,
    /// Absent when the chain ends at a CA workers already trust (a public one).
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .field("ca_pem", &self.ca_pem.as_ref().map(|c| format!("{} bytes", c.len())))
            .finish()
    }
}

fn text(data: &BTreeMap<String, ByteString>, key: &'static str) -> Result<Option<String>, MaterialError> {
    match data.get(key) {
        None => Ok(None),
        Some(bytes) if bytes.0.is_empty() => Ok(None),
        Some(bytes) => String::from_utf8(bytes.0.clone()).map(Some).map_err(|_| MaterialError::NotText { key }),
    }
}

impl Material {
    /// The material in a Secret's data; `None` while `tls.crt` or `tls.key` is missing (e.g.
    /// cert-manager has not issued yet).
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Result<Option<Material>, MaterialError> {
        let (Some(cert_pem), Some(key_pem)) = (text(data, CERT_KEY)?, text(data, KEY_KEY)?) else {
            return Ok(None);
        };
        let material = Material { cert_pem, key_pem, ca_pem: text(data, CA_KEY)? };
        material.certified_key()?;
        Ok(Some(material))
    }

    /// The Secret data holding this material.
    pub fn to_secret_data(&self) -> BTreeMap<String, ByteString> {
        let mut data = BTreeMap::from([
            (CERT_KEY.to_owned(), ByteString(self.cert_pem.clone().into_bytes())),
            (KEY_KEY.to_owned(), ByteString(self.key_pem.clone().into_bytes())),
        ]);
        if let Some(ca) = &self.ca_pem {
            data.insert(CA_KEY.to_owned(), ByteString(ca.clone().into_bytes()));
        }
        data
    }

    /// The chain and key as rustls serves them.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, MaterialError> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| MaterialError::Pem { key: CERT_KEY, source })?;
        if chain.is_empty() {
            return Err(MaterialError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|source| MaterialError::Pem { key: KEY_KEY, source })?;
        let provider = rustls::crypto::ring::default_provider();
        CertifiedKey::from_der(chain, key, &provider).map(Arc::new).map_err(MaterialError::Key)
    }

    /// A new self-signed CA and a serving certificate it issued for `dns_names`, both valid for
    /// about ten years around `today` (year, month, day).
    pub fn generate(dns_names: &[String], today: (i32, u8, u8)) -> Result<Material, MaterialError> {
        // Valid from the first of this month (a date that always exists and is never ahead of
        // a clock that is a little behind) until the same day ten years on.
        let (year, month, _day) = today;
        let month = month.clamp(1, 12);
        let from = rcgen::date_time_ymd(year, month, 1);
        let until = rcgen::date_time_ymd(year + i32::from(VALID_YEARS), month, 1);

        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.distinguished_name.push(DnType::CommonName, "courier coordinator CA");
        ca_params.not_before = from;
        ca_params.not_after = until;
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(dns_names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, dns_names.first().map_or("courier-coordinator", String::as_str));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = from;
        params.not_after = until;
        let cert = params.signed_by(&key, &ca)?;
        Ok(Material { cert_pem: cert.pem(), key_pem: key.serialize_pem(), ca_pem: Some(ca.pem()) })
    }
}

/// The names a Service `service` in `namespace` is reached by from inside the cluster.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use rustls::client::danger::ServerCertVerifier as _;

    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec()))).collect()
    }

    #[test]
    fn generated_material_round_trips_through_a_secret_and_serves() {
        let names = service_dns_names("rel-courier-coordinator", "courier-system");
        let m = Material::generate(&names, (2026, 12, 3)).expect("generated");
        assert!(m.ca_pem.as_deref().is_some_and(|ca| ca.contains("BEGIN CERTIFICATE")));
        let back = Material::from_secret_data(&m.to_secret_data()).expect("valid").expect("complete");
        assert_eq!(back, m);
        assert!(back.certified_key().is_ok());
    }

    #[test]
    fn the_serving_certificate_names_the_service_and_chains_to_the_ca() {
        let names = service_dns_names("c", "ns");
        assert_eq!(names, ["c.ns.svc", "c.ns.svc.cluster.local", "c.ns", "c"]);
        let m = Material::generate(&names, (2028, 2, 29)).expect("generated on a leap day");
        let ca = CertificateDer::from_pem_slice(m.ca_pem.as_deref().unwrap_or_default().as_bytes()).expect("CA");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).expect("a root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("verifier");
        let chain = CertificateDer::pem_slice_iter(m.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().expect("pem");
        let now = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_840_000_000)); // 2028-04-22
        for name in ["c.ns.svc", "c.ns.svc.cluster.local"] {
            let server = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("name");
            verifier.verify_server_cert(&chain[0], &chain[1..], &server, &[], now).expect("verifies");
        }
        let other = rustls::pki_types::ServerName::try_from("other.ns.svc".to_owned()).expect("name");
        assert!(verifier.verify_server_cert(&chain[0], &[], &other, &[], now).is_err());
    }

    #[test]
    fn an_incomplete_secret_is_not_material_yet_and_a_broken_one_is_an_error() {
        assert_eq!(Material::from_secret_data(&data(&[])).expect("no error"), None);
        assert_eq!(Material::from_secret_data(&data(&[(CA_KEY, "x")])).expect("no error"), None);
        assert_eq!(Material::from_secret_data(&data(&[(CERT_KEY, ""), (KEY_KEY, "")])).expect("no error"), None);
        let err = Material::from_secret_data(&data(&[(CERT_KEY, "garbage"), (KEY_KEY, "garbage")]));
        assert!(err.is_err(), "{err:?}");
        let m = Material::generate(&["a".to_owned()], (2026, 1, 1)).expect("generated");
        let other = Material::generate(&["b".to_owned()], (2026, 1, 1)).expect("generated");
        let mismatched = data(&[(CERT_KEY, &m.cert_pem), (KEY_KEY, &other.key_pem)]);
        assert!(matches!(Material::from_secret_data(&mismatched), Err(MaterialError::Key(_))));
    }

    #[test]
    fn the_private_key_is_never_printed() {
        let m = Material::generate(&["a".to_owned()], (2026, 1, 1)).expect("generated");
        let printed = format!("{m:?}");
        assert!(!printed.contains("PRIVATE KEY") && printed.contains("<redacted>"), "{printed}");
    }
}
