//! The librarian's PIN for the librarian screen of the check-in page.
//!
//! Only a salted, iterated SHA-256 of the PIN is kept, in `librarian.pin` inside the
//! data directory, readable by its owner only. The iterations make guessing from a
//! leaked file slower; the file's mode and the private data directory keep it from the
//! patron's account in the first place. `jejak init --pin` writes it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The name of the PIN file inside the data directory.
pub const PIN_FILE: &str = "librarian.pin";
/// The shortest PIN accepted.
pub const MIN_PIN_CHARS: usize = 4;
/// The longest PIN accepted (a passphrase is fine; a novel is a mistake).
pub const MAX_PIN_CHARS: usize = 64;
/// Rounds of SHA-256. Enough to slow a guesser down, few enough that a check costs a
/// few milliseconds on an old PC (and in debug test builds).
const ROUNDS: u32 = 10_000;
/// The first word of the file, naming its format.
const FORMAT: &str = "jejak-pin-v1";

/// Why a PIN cannot be set or read.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("the PIN must be {MIN_PIN_CHARS} to {MAX_PIN_CHARS} characters")]
    BadLength,
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
            (PinError::BadLength, jejak_domain::Lang::Id) => {
                format!("PIN harus {MIN_PIN_CHARS} sampai {MAX_PIN_CHARS} karakter")
            }
            (other, _) => other.to_string(),
        }
    }
}

/// A salted hash of the librarian's PIN.
#[derive(Clone, PartialEq, Eq)]
pub struct PinHash {
    salt: [u8; 16],
    hash: [u8; 32],
}

impl std::fmt::Debug for PinHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Even the hash is not printed: it is what a guesser would need.
        f.write_str("PinHash(..)")
    }
}

fn digest(salt: &[u8; 16], pin: &str) -> [u8; 32] {
    let mut hash: [u8; 32] = Sha256::new()
        .chain_update(salt)
        .chain_update(pin.as_bytes())
        .finalize()
        .into();
    for _ in 1..ROUNDS {
        hash = Sha256::new()
            .chain_update(salt)
            .chain_update(hash)
            .finalize()
            .into();
    }
    hash
}

impl PinHash {
    /// Hashes a new PIN under a fresh random salt.
    pub fn new(pin: &str) -> Result<PinHash, PinError> {
        let chars = pin.chars().count();
        if !(MIN_PIN_CHARS..=MAX_PIN_CHARS).contains(&chars) || pin.trim() != pin {
            return Err(PinError::BadLength);
        }
        let salt: [u8; 16] = rand::random();
        Ok(PinHash {
            hash: digest(&salt, pin),
            salt,
        })
    }

    /// Whether `pin` is the PIN, compared in constant time.
    pub fn verify(&self, pin: &str) -> bool {
        let given = digest(&self.salt, pin);
        given
            .iter()
            .zip(self.hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// Writes the hash readable by its owner only, replacing any earlier PIN so that
    /// a power cut leaves either the old or the new one.
    pub fn save(&self, path: &Path) -> Result<(), PinError> {
        let line = format!(
            "{FORMAT} sha256 {ROUNDS} {} {}\n",
            hex::encode(self.salt),
            hex::encode(self.hash)
        );
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
        let [format, "sha256", rounds, salt, hash] = words.as_slice() else {
            return Err(malformed());
        };
        if *format != FORMAT || rounds.parse::<u32>().ok() != Some(ROUNDS) {
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
        Ok(Some(PinHash { salt, hash }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_kept_only_as_a_salted_hash_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PIN_FILE);
        assert!(PinHash::load(&path).unwrap().is_none(), "no PIN yet");
        let pin = PinHash::new("246810").unwrap();
        pin.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("246810"), "{text}");
        let loaded = PinHash::load(&path).unwrap().unwrap();
        assert!(loaded.verify("246810"));
        assert!(!loaded.verify("246811"));
        assert!(!loaded.verify(""));
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
        assert!(matches!(PinHash::new("123"), Err(PinError::BadLength)));
        assert!(matches!(PinHash::new(" 1234"), Err(PinError::BadLength)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PIN_FILE);
        std::fs::write(&path, "1234\n").unwrap();
        assert!(matches!(
            PinHash::load(&path),
            Err(PinError::Malformed { .. })
        ));
    }
}
