//! The server's rustls configuration: our TLS certificate, HTTP/2 and HTTP/1.1,
//! and optional client certificates (iPads present their MDM identity here when
//! the profile asks them to; browsers and technicians present none).

use crate::bootstrap::Prepared;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

pub(crate) fn server_config(prepared: &Prepared) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_slice_iter(prepared.tls_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(prepared.tls_key_pem.as_bytes())?;

    // Both our root and the issuing CA are anchors: devices usually present only
    // their leaf, and a chain that cannot be built would fail the handshake.
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(prepared.ca.root_der()))?;
    roots.add(CertificateDer::from(prepared.ca.issuing_der()))?;
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()?;

    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
