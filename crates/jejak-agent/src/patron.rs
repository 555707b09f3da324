//! Pseudonymous patron keys: a member number becomes an HMAC-SHA256 under a secret
//! that belongs to the library, so the same member gives the same key on every PC of
//! the library while the number itself is never stored or sent.

use std::path::Path;

use hmac::{Hmac, Mac};
use jejak_domain::PatronKey;
use sha2::Sha256;

/// The name of the secret file inside the data directory.
pub const SECRET_FILE: &str = "patron.key";

/// A library's secret for patron keys (32 random bytes).
pub struct PatronSecret([u8; 32]);

impl std::fmt::Debug for PatronSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret itself.
        f.write_str("PatronSecret(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PatronSecretError {
    #[error("patron secret {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("patron secret {path} is not 64 hexadecimal characters")]
    Malformed { path: std::path::PathBuf },
}

impl PatronSecret {
    pub fn generate() -> Self {
        PatronSecret(rand::random())
    }

    /// Parses a secret given as 64 hex characters (to share one library's secret
    /// between its PCs).
    pub fn from_hex(hex_text: &str) -> Option<Self> {
        let bytes = hex::decode(hex_text.trim()).ok()?;
        bytes.try_into().ok().map(PatronSecret)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Writes the secret readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), PatronSecretError> {
        crate::platform::write_private_file(path, self.to_hex().as_bytes()).map_err(|source| {
            PatronSecretError::Io {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    pub fn load(path: &Path) -> Result<Self, PatronSecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| PatronSecretError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_hex(&text).ok_or_else(|| PatronSecretError::Malformed {
            path: path.to_path_buf(),
        })
    }

    /// The key for a member number. Spaces and case are ignored so that "ab 123" and
    /// "AB123" are the same member.
    pub fn key_for(&self, member_number: &str) -> PatronKey {
        let normalised: String = member_number
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_uppercase)
            .collect();
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(normalised.as_bytes());
        let hex_text = hex::encode(mac.finalize().into_bytes());
        PatronKey::parse(&hex_text).expect("an HMAC-SHA256 is 64 lowercase hex characters")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_member_gives_the_same_key_and_never_the_number() {
        let secret = PatronSecret::generate();
        let a = secret.key_for("AB 1234");
        assert_eq!(a, secret.key_for("ab1234"));
        assert_ne!(a, secret.key_for("ab1235"));
        assert!(!a.as_str().contains("1234"));
        assert_ne!(
            a,
            PatronSecret::generate().key_for("ab1234"),
            "per-library secret"
        );
    }

    #[test]
    fn the_secret_file_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECRET_FILE);
        let secret = PatronSecret::generate();
        secret.save(&path).unwrap();
        let loaded = PatronSecret::load(&path).unwrap();
        assert_eq!(loaded.key_for("7"), secret.key_for("7"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "no access for group or others");
        }
        assert!(format!("{loaded:?}").contains(".."));
    }
}
