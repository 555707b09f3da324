//! HTTPS served by the server itself, for districts without a reverse proxy
//! (`jejak server run --tls-cert FILE --tls-key FILE`). Districts that already run nginx
//! or Caddy terminate TLS there instead (README, "HTTPS").
//!
//! The serving loop (`serve.rs`) runs each connection's TLS handshake in the
//! connection's own task, within the header timeout and under the connection cap, so a
//! slow or silent client (a 2G link that stalls mid-handshake) never holds up the
//! others' connections. This module loads the certificate and key.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The certificate file has no PEM certificate.
    #[error("{0}: no PEM certificate found")]
    NoCertificate(String),
    /// The key file cannot be read as a PEM private key.
    #[error("{path}: no PEM private key found ({detail})")]
    NoKey {
        /// The key file.
        path: String,
        /// What the PEM reader said.
        detail: String,
    },
    /// The file cannot be read.
    #[error("{path}: {detail}")]
    Unreadable {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The key does not match the certificate, or rustls refuses them.
    #[error("the certificate and key cannot be used together: {0}")]
    Rejected(String),
}

/// Reads a PEM certificate chain (the server's certificate first) and its private key.
pub fn load_server_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let shown = |p: &Path| p.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsSetupError::Unreadable {
            path: shown(cert),
            detail: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsSetupError::Unreadable {
            path: shown(cert),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCertificate(shown(cert)));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::NoKey {
        path: shown(key),
        detail: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsSetupError::Rejected(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| TlsSetupError::Rejected(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
