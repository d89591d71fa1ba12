//! The heartbeat server over HTTPS on loopback: a client that trusts the CA gets answers, one
//! that does not fails the handshake, and a replaced certificate is served without a restart.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

use super::{Material, ServingCert, service_dns_names};
use crate::coordinator::server::{AuthMode, ServeOptions, bind, serve_with};
use crate::coordinator::{Coordinator, CoordinatorConfig};

fn material() -> Material {
    Material::generate(&service_dns_names("courier-coordinator", "courier-system"), (2026, 1, 1)).expect("generated")
}

fn connector(ca_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("pem")).expect("a root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// `GET /healthz` over TLS as `courier-coordinator.courier-system.svc`; the body, or the error.
async fn healthz(addr: std::net::SocketAddr, ca_pem: &str) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("courier-coordinator.courier-system.svc").expect("name");
    let mut tls = connector(ca_pem).connect(name, tcp).await.map_err(|e| e.to_string())?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n").await.map_err(|e| e.to_string())?;
    let mut reply = String::new();
    tls.read_to_string(&mut reply).await.map_err(|e| e.to_string())?;
    Ok(reply.split_once("\r\n\r\n").map(|(_, body)| body.trim().to_owned()).unwrap_or_default())
}

#[tokio::test]
async fn workers_trusting_the_ca_are_served_others_fail_the_handshake_and_a_renewal_needs_no_restart() {
    let first = material();
    let serving = ServingCert::new(first.clone()).expect("serves");
    let listener = bind("127.0.0.1:0".parse().expect("loopback")).await.expect("binds");
    let addr = listener.local_addr().expect("bound");
    let (_leader, leadership) = crate::leader::Leadership::manual(true);
    let options = ServeOptions {
        tls: Some(serving.acceptor().expect("acceptor")),
        ..ServeOptions::plain(AuthMode::InsecureSkipAuth)
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve_with(
        listener,
        Coordinator::new(CoordinatorConfig::default()),
        leadership,
        options,
        async move {
            let _ = stopped.await;
        },
    ));

    let first_ca = first.ca_pem.clone().expect("a CA");
    assert_eq!(healthz(addr, &first_ca).await, Ok("ok (leader)".to_owned()));
    let other = material();
    let other_ca = other.ca_pem.clone().expect("a CA");
    assert!(healthz(addr, &other_ca).await.is_err(), "a client that does not trust the CA refuses the server");

    assert!(serving.replace(other).expect("usable"), "new material is served");
    assert_eq!(serving.ca_pem(), Some(other_ca.clone()));
    assert_eq!(healthz(addr, &other_ca).await, Ok("ok (leader)".to_owned()), "the renewed certificate is served");
    assert!(healthz(addr, &first_ca).await.is_err(), "the old one is not");
    let _ = stop.send(());
}
