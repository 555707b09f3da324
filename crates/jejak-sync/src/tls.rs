//! How a PC trusts the district server over HTTPS when its own clock may be wrong.
//!
//! A PC whose CMOS battery is dead believes it is the year 2000: every certificate looks
//! "not yet valid" to an ordinary check, so the PCs that most need the server's time
//! could never sync over HTTPS. Instead, `jejak enroll` makes one ordinary, fully
//! verified first contact (the system's trust roots plus, for a district's own
//! certificate, `--server-ca`), and records the SHA-256 of the server's public key
//! (its SubjectPublicKeyInfo) in `agent.toml` as `server_key`. From then on:
//!
//! - a server presenting that key is accepted whatever the PC's clock says: the TLS
//!   handshake still proves the server holds the private key (rustls checks the
//!   handshake signature against the certificate's key), and the key is what the PC
//!   verified at enrolment;
//! - a server presenting another key must pass the ordinary check (trust roots, name,
//!   validity by the PC's clock), as after a certificate renewal with a new key on a PC
//!   whose clock is right; anything else is refused.
//!
//! Nothing is weakened for a server that was never pinned: without a pin the check is
//! the ordinary one.

use std::sync::{Arc, Mutex};

use jejak_agent::clock::Clock;
use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// Where a pin is written: `sha256:` and 64 hex digits.
const PIN_PREFIX: &str = "sha256:";

/// What the PC trusts the server by.
#[derive(Debug, Clone)]
pub struct ServerTrust {
    /// The SHA-256 of the server's SubjectPublicKeyInfo, recorded at enrolment.
    pub pinned_key: Option<[u8; 32]>,
    /// Trust anchors beside the system's: a district's own CA or self-signed
    /// certificate (`server_ca`).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The PC's clock: the ordinary check judges validity by it.
    pub clock: Arc<dyn Clock>,
}

/// Why the trust settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// `server_key` is not `sha256:` and 64 hex digits.
    #[error("server_key '{0}' is not sha256: followed by 64 hex digits")]
    BadPin(String),
    /// The CA file cannot be read or holds no certificate.
    #[error("{path}: {detail}")]
    BadCa {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused a trust anchor.
    #[error("the trust anchors cannot be used: {0}")]
    Rustls(String),
}

/// Reads `sha256:HEX`.
pub fn parse_pin(text: &str) -> Result<[u8; 32], TrustError> {
    let bad = || TrustError::BadPin(text.to_string());
    let hex_digits = text.trim().strip_prefix(PIN_PREFIX).ok_or_else(bad)?;
    let mut pin = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut pin).map_err(|_| bad())?;
    Ok(pin)
}

/// Writes a pin as `parse_pin` reads it.
pub fn format_pin(pin: &[u8; 32]) -> String {
    format!("{PIN_PREFIX}{}", hex::encode(pin))
}

/// The pin of a certificate: the SHA-256 of its SubjectPublicKeyInfo (so it survives a
/// renewal that keeps the key).
pub fn key_pin(certificate: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let parsed = webpki::EndEntityCert::try_from(certificate).ok()?;
    Some(Sha256::digest(parsed.subject_public_key_info().as_ref()).into())
}

/// The certificates of a PEM file (a CA, or the server's own self-signed certificate).
pub fn read_ca(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let bad = |detail: String| TrustError::BadCa {
        path: path.display().to_string(),
        detail,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certificates.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(certificates)
}

/// An HTTP client for other exchanges with the same server (the agent's connectivity
/// probe), checked as the sync checks it.
pub fn http_client(
    trust: &ServerTrust,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, TrustError> {
    Arc::new(PinningVerifier::new(trust)?).http_client(timeout, timeout)
}

/// The verifier described in the module's notes. `seen` keeps the key of the last
/// server it accepted, for `jejak enroll` to record.
#[derive(Debug)]
pub(crate) struct PinningVerifier {
    pinned_key: Option<[u8; 32]>,
    ordinary: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
    clock: Arc<dyn Clock>,
    pub(crate) seen: Mutex<Option<[u8; 32]>>,
}

impl PinningVerifier {
    pub(crate) fn new(trust: &ServerTrust) -> Result<Self, TrustError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for certificate in &trust.extra_roots {
            roots
                .add(certificate.clone())
                .map_err(|e| TrustError::Rustls(e.to_string()))?;
        }
        let ordinary =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TrustError::Rustls(e.to_string()))?;
        Ok(PinningVerifier {
            pinned_key: trust.pinned_key,
            ordinary,
            provider,
            clock: trust.clock.clone(),
            seen: Mutex::new(None),
        })
    }

    /// A rustls client configuration that checks servers with this verifier.
    pub(crate) fn client_config(self: &Arc<Self>) -> Result<rustls::ClientConfig, TrustError> {
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TrustError::Rustls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// An HTTP client (no redirects) whose HTTPS connections are checked by this
    /// verifier.
    pub(crate) fn http_client(
        self: &Arc<Self>,
        timeout: std::time::Duration,
        connect_timeout: std::time::Duration,
    ) -> Result<reqwest::Client, TrustError> {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .use_preconfigured_tls(self.client_config()?)
            .build()
            .map_err(|e| TrustError::Rustls(e.to_string()))
    }

    fn pc_now(&self) -> UnixTime {
        let secs = self.clock.wall().timestamp().max(0) as u64;
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs))
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let key = key_pin(end_entity).ok_or(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ))?;
        let verified = if self.pinned_key == Some(key) {
            // The key this PC verified at enrolment: valid whatever its clock says.
            Ok(ServerCertVerified::assertion())
        } else {
            self.ordinary.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                self.pc_now(),
            )
        };
        if verified.is_ok()
            && let Ok(mut seen) = self.seen.lock()
        {
            *seen = Some(key);
        }
        verified
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_read_back_as_written_and_refuse_anything_else() {
        let pin = [7u8; 32];
        assert_eq!(parse_pin(&format_pin(&pin)).unwrap(), pin);
        for bad in [
            "",
            "sha256:",
            "md5:00",
            "sha256:zz",
            &format!("sha256:{}", "0".repeat(62)),
        ] {
            assert!(parse_pin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_pin_is_the_key_so_it_survives_a_new_certificate_for_the_same_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let first = rcgen::CertificateParams::new(vec!["jejak.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let renewed = rcgen::CertificateParams::new(vec!["perpusda.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let other = rcgen::CertificateParams::new(vec!["jejak.test".into()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let pin = key_pin(first.der()).unwrap();
        assert_eq!(key_pin(renewed.der()), Some(pin));
        assert_ne!(key_pin(other.der()), Some(pin));
    }
}
