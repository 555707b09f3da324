//! The librarian's PIN for the librarian screen of the check-in page.
//!
//! Only an Argon2id hash of the PIN is kept (RustCrypto's `argon2`, its default
//! parameters: 19 MiB of memory and two passes, a fraction of a second on an old PC),
//! as a PHC string in `librarian.pin` inside the data directory, readable by its owner
//! only. The memory-hard hash makes guessing from a leaked file slow; the file's mode and
//! the private data directory keep it from the patron's account in the first place.
//! `jejak init --pin` writes it.
//!
//! Files written by earlier versions hold a salted, iterated SHA-256 (`jejak-pin-v1`).
//! They are still read and checked, and the check-in page writes the Argon2id hash in
//! their place at the next successful sign-in (the one moment the PIN itself is known).

use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};
use sha2::{Digest, Sha256};

/// The name of the PIN file inside the data directory.
pub const PIN_FILE: &str = "librarian.pin";
/// The shortest new PIN accepted: six digits at least, so that guessing one through the
/// page's growing delays takes years. PINs set by earlier versions (four digits) still
/// work until they are changed.
pub const MIN_PIN_CHARS: usize = 6;
/// The longest PIN accepted (a passphrase is fine; a novel is a mistake).
pub const MAX_PIN_CHARS: usize = 64;
/// The first word of a file holding an Argon2id hash.
const FORMAT: &str = "jejak-pin-v2";
/// The first word of a file written by earlier versions (iterated SHA-256).
const LEGACY_FORMAT: &str = "jejak-pin-v1";
/// Rounds of SHA-256 of the legacy format.
const LEGACY_ROUNDS: u32 = 10_000;
/// The most memory a stored hash may ask for (KiB). A file naming more is refused as
/// malformed rather than letting a check allocate it.
const MAX_MEMORY_KIB: u32 = 256 * 1024;

/// Why a PIN cannot be set or read.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(
        "the PIN must be {MIN_PIN_CHARS} to {MAX_PIN_CHARS} characters, without spaces at either end"
    )]
    BadLength,
    #[error("the PIN could not be hashed: {0}")]
    Hash(String),
    #[error("librarian PIN file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("librarian PIN file {path} is not in the expected format")]
    Malformed { path: PathBuf },
}

impl PinError {
    /// The message for people, in their language.
    pub fn message(&self, lang: jejak_domain::Lang) -> String {
        match (self, lang) {
            (PinError::BadLength, jejak_domain::Lang::Id) => format!(
                "PIN harus {MIN_PIN_CHARS} sampai {MAX_PIN_CHARS} karakter (minimal {MIN_PIN_CHARS} angka), tanpa spasi di awal atau akhir"
            ),
            (other, _) => other.to_string(),
        }
    }
}

/// How a PIN is kept.
#[derive(Clone, PartialEq, Eq)]
enum Stored {
    /// An Argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    Argon2(String),
    /// Earlier versions' salted, iterated SHA-256.
    LegacySha256 { salt: [u8; 16], hash: [u8; 32] },
}

/// A hash of the librarian's PIN.
#[derive(Clone, PartialEq, Eq)]
pub struct PinHash(Stored);

impl std::fmt::Debug for PinHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Even the hash is not printed: it is what a guesser would need.
        f.write_str("PinHash(..)")
    }
}

fn legacy_digest(salt: &[u8; 16], pin: &str) -> [u8; 32] {
    let mut hash: [u8; 32] = Sha256::new()
        .chain_update(salt)
        .chain_update(pin.as_bytes())
        .finalize()
        .into();
    for _ in 1..LEGACY_ROUNDS {
        hash = Sha256::new()
            .chain_update(salt)
            .chain_update(hash)
            .finalize()
            .into();
    }
    hash
}

impl PinHash {
    /// Hashes a new PIN under a fresh random salt. The PIN must be 6 to 64 characters.
    pub fn new(pin: &str) -> Result<PinHash, PinError> {
        let chars = pin.chars().count();
        if !(MIN_PIN_CHARS..=MAX_PIN_CHARS).contains(&chars) || pin.trim() != pin {
            return Err(PinError::BadLength);
        }
        Self::argon2(pin)
    }

    /// The Argon2id hash of `pin`, whatever its length: also used to re-hash a legacy
    /// PIN (which may be four digits) at its next successful entry.
    fn argon2(pin: &str) -> Result<PinHash, PinError> {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| PinError::Hash(e.to_string()))?;
        let phc = Argon2::default()
            .hash_password(pin.as_bytes(), &salt)
            .map_err(|e| PinError::Hash(e.to_string()))?
            .to_string();
        Ok(PinHash(Stored::Argon2(phc)))
    }

    /// Whether `pin` is the PIN (compared in constant time).
    pub fn verify(&self, pin: &str) -> bool {
        match &self.0 {
            Stored::Argon2(phc) => PasswordHash::new(phc).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(pin.as_bytes(), &parsed)
                    .is_ok()
            }),
            Stored::LegacySha256 { salt, hash } => {
                let given = legacy_digest(salt, pin);
                given
                    .iter()
                    .zip(hash.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            }
        }
    }

    /// The Argon2id hash to keep instead of this one, when this one is of the legacy
    /// format and `pin` (already verified) is the PIN; `None` when nothing needs doing.
    pub fn upgraded(&self, pin: &str) -> Option<Result<PinHash, PinError>> {
        match self.0 {
            Stored::Argon2(_) => None,
            Stored::LegacySha256 { .. } => Some(Self::argon2(pin)),
        }
    }

    /// Writes the hash readable by its owner only, replacing any earlier PIN so that
    /// a power cut leaves either the old or the new one.
    pub fn save(&self, path: &Path) -> Result<(), PinError> {
        let line = match &self.0 {
            Stored::Argon2(phc) => format!("{FORMAT} {phc}\n"),
            Stored::LegacySha256 { salt, hash } => format!(
                "{LEGACY_FORMAT} sha256 {LEGACY_ROUNDS} {} {}\n",
                hex::encode(salt),
                hex::encode(hash)
            ),
        };
        crate::platform::write_private_file(path, line.as_bytes()).map_err(|source| PinError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads the PIN file; `Ok(None)` when no PIN has been set.
    pub fn load(path: &Path) -> Result<Option<PinHash>, PinError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(PinError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let malformed = || PinError::Malformed {
            path: path.to_path_buf(),
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            [FORMAT, phc] => {
                let parsed = PasswordHash::new(phc).map_err(|_| malformed())?;
                let memory = parsed.params.get_decimal("m").ok_or_else(malformed)?;
                if parsed.algorithm != Algorithm::Argon2id.ident() || memory > MAX_MEMORY_KIB {
                    return Err(malformed());
                }
                Ok(Some(PinHash(Stored::Argon2((*phc).to_string()))))
            }
            [LEGACY_FORMAT, "sha256", rounds, salt, hash] => {
                if rounds.parse::<u32>().ok() != Some(LEGACY_ROUNDS) {
                    return Err(malformed());
                }
                let salt = hex::decode(salt)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(malformed)?;
                let hash = hex::decode(hash)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(malformed)?;
                Ok(Some(PinHash(Stored::LegacySha256 { salt, hash })))
            }
            _ => Err(malformed()),
        }
    }
}

#[cfg(test)]
impl PinHash {
    /// A hash as earlier versions kept it, to test the upgrade.
    pub(crate) fn legacy_for_tests(pin: &str) -> PinHash {
        let salt: [u8; 16] = rand::random();
        PinHash(Stored::LegacySha256 {
            salt,
            hash: legacy_digest(&salt, pin),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_kept_only_as_an_argon2id_hash_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PIN_FILE);
        assert!(PinHash::load(&path).unwrap().is_none(), "no PIN yet");
        let pin = PinHash::new("246810").unwrap();
        pin.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("246810"), "{text}");
        assert!(
            text.starts_with("jejak-pin-v2 $argon2id$v=19$m=19456,t=2,p=1$"),
            "{text}"
        );
        let loaded = PinHash::load(&path).unwrap().unwrap();
        assert!(loaded.verify("246810"));
        assert!(!loaded.verify("246811"));
        assert!(!loaded.verify(""));
        assert!(loaded.upgraded("246810").is_none(), "already Argon2id");
        assert_ne!(
            PinHash::new("246810").unwrap(),
            pin,
            "a new salt every time"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "no access for group or others");
        }
        assert_eq!(format!("{loaded:?}"), "PinHash(..)");
    }

    #[test]
    fn short_pins_and_damaged_files_are_refused() {
        for short in ["123", "1234", "12345", " 123456", "123456 "] {
            assert!(
                matches!(PinHash::new(short), Err(PinError::BadLength)),
                "{short:?}"
            );
        }
        assert!(PinHash::new(&"7".repeat(65)).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PIN_FILE);
        for junk in [
            "1234\n",
            "jejak-pin-v2 $argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n",
            "jejak-pin-v2 $argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n",
            "jejak-pin-v1 sha256 5 00 00\n",
        ] {
            std::fs::write(&path, junk).unwrap();
            assert!(
                matches!(PinHash::load(&path), Err(PinError::Malformed { .. })),
                "{junk}"
            );
        }
    }

    #[test]
    fn a_legacy_sha256_pin_still_works_and_is_upgraded_to_argon2id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PIN_FILE);
        // A file as earlier versions wrote it, for the four-digit PIN 2468.
        let salt = [7u8; 16];
        let legacy = PinHash(Stored::LegacySha256 {
            salt,
            hash: legacy_digest(&salt, "2468"),
        });
        legacy.save(&path).unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("jejak-pin-v1 sha256 10000 ")
        );
        let loaded = PinHash::load(&path).unwrap().unwrap();
        assert!(loaded.verify("2468"));
        assert!(!loaded.verify("2469"));
        let upgraded = loaded.upgraded("2468").unwrap().unwrap();
        upgraded.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("jejak-pin-v2 $argon2id$"), "{text}");
        let again = PinHash::load(&path).unwrap().unwrap();
        assert!(again.verify("2468"), "the same PIN, now under Argon2id");
        assert!(!again.verify("2469"));
    }
}
