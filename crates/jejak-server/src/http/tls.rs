//! HTTPS served by the server itself, for districts without a reverse proxy
//! (`jejak server run --tls-cert FILE --tls-key FILE`). Districts that already run nginx
//! or Caddy terminate TLS there instead (README, "HTTPS").
//!
//! The TLS handshake of each connection runs in a task of its own, and only finished
//! handshakes are handed to the HTTP server, so a slow or silent client (a 2G link that
//! stalls mid-handshake) never holds up the others' connections.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A handshake that takes longer than this is given up (the client retries).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// Finished handshakes waiting for the HTTP server to take them.
const READY_QUEUE: usize = 256;

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

/// A listener that hands the HTTP server connections whose TLS handshake is done.
#[derive(Debug)]
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` and shakes hands with `config`, each connection in a task.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(READY_QUEUE);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, as axum's own
                        // listener does, instead of spinning.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, handed_over) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = handed_over.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    break;
                }
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task only ends when this listener is gone; never reached
            // while the server runs.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
