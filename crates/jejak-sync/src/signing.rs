//! The PC's signing key: an Ed25519 key pair made on the PC at enrollment (`jejak
//! enroll`, `jejak init --token`), whose private half stays in the data folder
//! (`signing.key`, readable by the agent's account only) and whose public half the
//! district server keeps. USB bundles are signed with it, so that nothing the server
//! stores — not a backup, not a copy made for `jejak report --database` — suffices to
//! write records for a PC.
//!
//! The public half is registered over HTTP with the device token (`PUT
//! /api/v1/devices/me/key`) at enrollment, and again at the start of every sync until the
//! server has confirmed it under the current token and server: `signing.registered`
//! holds a digest of (server, token, public key) once it has, so a new token or
//! another server registers again; so does a confirmation older than a week (a server
//! restored from an older backup may have lost the key).

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// The private key's file inside the data directory.
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// The file that says the public key is registered (with which server and token).
pub const REGISTERED_FILE: &str = "signing.registered";
/// The first word of the key file, naming its format.
const FORMAT: &str = "jejak-signing-key-v1";

/// Why the signing key cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing key {path} is not in the expected format")]
    Malformed { path: PathBuf },
}

/// This PC's signing key.
pub struct DeviceKey(SigningKey);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The public half only: the private half never reaches a log.
        write!(f, "DeviceKey({})", self.fingerprint())
    }
}

impl DeviceKey {
    /// The key in `data_dir`, made (and saved, private) if there is none yet.
    pub fn load_or_create(data_dir: &Path) -> Result<DeviceKey, KeyError> {
        if let Some(key) = Self::load(data_dir)? {
            return Ok(key);
        }
        // rand's default generator is a CSPRNG seeded from the operating system.
        let key = DeviceKey(SigningKey::from_bytes(&rand::random::<[u8; 32]>()));
        let path = data_dir.join(SIGNING_KEY_FILE);
        let line = format!("{FORMAT} {}\n", hex::encode(key.0.to_bytes()));
        jejak_agent::platform::write_private_file(&path, line.as_bytes())
            .map_err(|source| KeyError::Io { path, source })?;
        tracing::info!(fingerprint = %key.fingerprint(), "a signing key was made for this PC");
        Ok(key)
    }

    /// The key in `data_dir`; `None` when none was made yet.
    pub fn load(data_dir: &Path) -> Result<Option<DeviceKey>, KeyError> {
        let path = data_dir.join(SIGNING_KEY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(KeyError::Io { path, source }),
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let seed: Option<[u8; 32]> = match words.as_slice() {
            [FORMAT, seed] => hex::decode(seed).ok().and_then(|b| b.try_into().ok()),
            _ => None,
        };
        let seed = seed.ok_or(KeyError::Malformed { path })?;
        Ok(Some(DeviceKey(SigningKey::from_bytes(&seed))))
    }

    /// The public half, as the server keeps it.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The public half in hex, as the registration and the bundles carry it.
    pub fn public_hex(&self) -> String {
        hex::encode(self.public_key())
    }

    /// A short form of the public key for people ("3f2a-91c0-…"), to compare what a PC
    /// shows with what the server holds.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public_key())
    }

    /// The signature of `message`, in hex.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.0.sign(message).to_bytes())
    }
}

/// A short form of a public key for people: the first 8 bytes of its SHA-256 in four
/// groups of four hex digits.
pub fn fingerprint(public_key: &[u8; 32]) -> String {
    let digest = hex::encode(&Sha256::digest(public_key)[..8]);
    digest
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// Whether `public_key` is a usable Ed25519 public key (a point on the curve; the
/// server refuses anything else at registration).
pub fn is_valid_public_key(public_key: &[u8; 32]) -> bool {
    VerifyingKey::from_bytes(public_key).is_ok_and(|key| !key.is_weak())
}

/// Whether `signature_hex` is the signature of `message` under `public_key` (strict
/// verification: no malleable or weak-key signatures).
pub fn verify(public_key: &[u8; 32], message: &[u8], signature_hex: &str) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let Some(signature) = hex::decode(signature_hex)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
        .map(|b| Signature::from_bytes(&b))
    else {
        return false;
    };
    key.verify_strict(message, &signature).is_ok() && key.verify(message, &signature).is_ok()
}

/// What `signing.registered` holds once `key` is registered with `server` under
/// `token`: a digest of the three, so the file reveals none of them.
fn registration_digest(server: &str, token: &str, key: &DeviceKey) -> String {
    let mut hash = Sha256::new();
    for part in [
        server.trim_end_matches('/'),
        token.trim(),
        &key.public_hex(),
    ] {
        hash.update(part.as_bytes());
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

/// How long a confirmed registration is trusted before a sync sends it again: a
/// server restored from a backup older than the registration no longer holds the key,
/// and the PC would not know otherwise. Once a week costs one small request.
const REGISTRATION_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Whether `key` is known to be registered with `server` under `token` (confirmed in
/// the last week).
pub fn is_registered(data_dir: &Path, server: &str, token: &str, key: &DeviceKey) -> bool {
    let path = data_dir.join(REGISTERED_FILE);
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|at| at.elapsed().is_ok_and(|age| age < REGISTRATION_FRESH_FOR));
    fresh
        && std::fs::read_to_string(&path)
            .is_ok_and(|text| text.trim() == registration_digest(server, token, key))
}

/// Notes that the server confirmed `key` under `token`.
pub fn mark_registered(
    data_dir: &Path,
    server: &str,
    token: &str,
    key: &DeviceKey,
) -> std::io::Result<()> {
    jejak_agent::platform::write_private_file(
        &data_dir.join(REGISTERED_FILE),
        format!("{}\n", registration_digest(server, token, key)).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_kept_private_and_signs_what_only_it_can() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DeviceKey::load(dir.path()).unwrap().is_none());
        let key = DeviceKey::load_or_create(dir.path()).unwrap();
        let again = DeviceKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.public_key(), again.public_key(), "made once, then read");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "no access for group or others");
        }
        assert!(is_valid_public_key(&key.public_key()));
        let signature = key.sign(b"bundle header");
        assert!(verify(&key.public_key(), b"bundle header", &signature));
        assert!(!verify(&key.public_key(), b"bundle header!", &signature));
        let other = DeviceKey(SigningKey::from_bytes(&[9u8; 32]));
        assert!(!verify(&other.public_key(), b"bundle header", &signature));
        assert!(!verify(&key.public_key(), b"bundle header", "zz"));
        assert_eq!(key.fingerprint().len(), 19);
        assert!(!format!("{key:?}").contains(&hex::encode(key.0.to_bytes())));
        // Small-order points (the identity, y = 0) are no keys.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(!is_valid_public_key(&identity));
        assert!(!is_valid_public_key(&[0u8; 32]));
    }

    #[test]
    fn registration_is_remembered_per_server_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let key = DeviceKey::load_or_create(dir.path()).unwrap();
        assert!(!is_registered(dir.path(), "http://a", "tok-1", &key));
        mark_registered(dir.path(), "http://a/", "tok-1", &key).unwrap();
        assert!(is_registered(dir.path(), "http://a", "tok-1", &key));
        assert!(
            !is_registered(dir.path(), "http://a", "tok-2", &key),
            "a new token registers again"
        );
        assert!(
            !is_registered(dir.path(), "http://b", "tok-1", &key),
            "another server too"
        );
        let text = std::fs::read_to_string(dir.path().join(REGISTERED_FILE)).unwrap();
        assert!(!text.contains("tok-1"));
        // A week later it is sent again (a server restored from an older backup may
        // have lost it).
        let file = std::fs::File::options()
            .write(true)
            .open(dir.path().join(REGISTERED_FILE))
            .unwrap();
        file.set_modified(std::time::SystemTime::now() - REGISTRATION_FRESH_FOR)
            .unwrap();
        assert!(!is_registered(dir.path(), "http://a", "tok-1", &key));
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(SIGNING_KEY_FILE),
            "jejak-signing-key-v1 12\n",
        )
        .unwrap();
        assert!(matches!(
            DeviceKey::load_or_create(dir.path()),
            Err(KeyError::Malformed { .. })
        ));
    }
}
