//! USB bundles: when a village has no link, `jejak sync --export FILE` writes every
//! change not yet acknowledged into one file that the librarian carries to the
//! district office; `jejak server import FILE` ingests it through the same idempotent
//! path as HTTP and writes an acknowledgement file, which `jejak sync --import-ack`
//! brings back to the PC.
//!
//! Both files are JSON (self-describing) and carry a SHA-256 of their content (a damaged
//! stick is detected). A bundle (version 2) holds each batch compressed on its own,
//! exactly as it would travel over HTTP, so the importer applies the HTTP path's limits
//! to every one; it is signed with the PC's Ed25519 key ([`crate::signing`]), whose
//! public half the server keeps, so nothing stored on the server can sign for a PC. It
//! also carries an HMAC keyed with the SHA-256 of the device token, which is all a
//! server that has not yet been told the PC's key can check: such a server accepts it
//! and says so; once the key is registered, only the signature counts. Version 1 (one
//! compressed stream, HMAC only) is still read from PCs not yet upgraded, under the same
//! rule. The trust model is set out in ARCHITECTURE.md ("USB bundles: who can sign
//! what").
//!
//! An acknowledgement carries an HMAC under the token's SHA-256: the server holds no
//! secret of its own for the PC. Someone holding a copy of the server's database and the
//! stick could forge one; the PC would then count records as delivered that were not,
//! until its next HTTP sync, where the server's `expected_seq` makes it send them
//! again (they are kept `retention_days` after an acknowledgement).

use hmac::{Hmac, Mac};
use jejak_agent::store::{Store, StoreError};
use jejak_domain::{BatchAck, LibraryCode, PcCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::batching;
use crate::signing::{self, DeviceKey};

const BUNDLE_FORMAT: &str = "jejak-bundle";
const ACK_FORMAT: &str = "jejak-bundle-ack";
/// Bundles written now: a batch per entry, signed with the PC's key.
const VERSION: u32 = 2;
/// Bundles of earlier versions: one compressed stream of every batch, HMAC only.
const LEGACY_VERSION: u32 = 1;
/// Acknowledgement files.
const ACK_VERSION: u32 = 1;
/// Records per batch inside a bundle, as over HTTP.
const BATCH_RECORDS: u32 = 500;
/// What the signature covers starts with this, so it can never be mistaken for a
/// signature over anything else.
const SIGNATURE_CONTEXT: &str = "jejak-bundle-signature-v2";

/// The key of a bundle's HMAC: SHA-256 of the device token.
pub fn device_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// A bundle file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub version: u32,
    pub library: LibraryCode,
    pub pc: PcCode,
    pub epoch: Uuid,
    pub first_seq: u64,
    pub last_seq: u64,
    pub records: u64,
    pub created_at_ms: i64,
    /// SHA-256 of the content: version 1's `payload` text; version 2's `batches`, each
    /// followed by a newline.
    pub payload_sha256: String,
    /// Version 1: every batch as one JSON array, zstd-compressed, hex-encoded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload: String,
    /// Version 2: each batch's HTTP body (its JSON, zstd-compressed), hex-encoded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<String>,
    /// Version 2: the PC's public key, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Version 2: the Ed25519 signature of the header (see `signed_message`), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// HMAC-SHA256 of the header under the token's SHA-256, hex.
    pub mac: String,
}

/// An acknowledgement file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleAck {
    pub format: String,
    pub version: u32,
    pub library: LibraryCode,
    pub pc: PcCode,
    pub epoch: Uuid,
    /// The bundle this answers.
    pub bundle_sha256: String,
    pub acks: Vec<BatchAck>,
    pub mac: String,
}

/// What vouches for an accepted bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BundleTrust {
    /// Signed with the key the PC registered: nothing stored on the server could have
    /// made it.
    Signed,
    /// The PC has no registered key yet, so only the HMAC under the token's SHA-256
    /// could be checked: a copy of the server's database would suffice to make it.
    TokenHash,
}

/// Why a bundle or an acknowledgement file is refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a Jejak bundle file: {0}")]
    NotABundle(String),
    #[error("the file is damaged: its content does not match its checksum")]
    Damaged,
    #[error("the file was changed or does not belong to {0}: its signature does not match")]
    BadSignature(String),
    #[error(
        "the file is not signed with the key {0} registered on this server (made by an older version, or forged): export it again with this version on that PC"
    )]
    NotSignedWithRegisteredKey(String),
    #[error("the file's content does not match its header: {0}")]
    Inconsistent(String),
    #[error("the file is for {found}, but this is {expected}")]
    Foreign { found: String, expected: String },
    #[error("the file is for store epoch {found}, but this store's epoch is {expected}")]
    OtherEpoch { found: Uuid, expected: Uuid },
    #[error("nothing is waiting to be sent")]
    NothingToExport,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl BundleError {
    /// The message for the librarian or the district officer, in their language.
    pub fn message(&self, lang: jejak_domain::Lang) -> String {
        use jejak_domain::Lang::{En, Id};
        match (self, lang) {
            (BundleError::NotABundle(why), Id) => format!("bukan berkas sinkron Jejak: {why}"),
            (BundleError::Damaged, Id) => {
                "berkas rusak: isinya tidak cocok dengan checksum-nya; salin ulang dari komputer asal".into()
            }
            (BundleError::BadSignature(device), Id) => format!(
                "berkas diubah atau bukan milik {device}: tanda tangannya tidak cocok"
            ),
            (BundleError::NotSignedWithRegisteredKey(device), Id) => format!(
                "berkas tidak ditandatangani dengan kunci {device} yang terdaftar di server ini (dibuat versi lama, atau dipalsukan): ekspor ulang dengan versi ini di komputer itu"
            ),
            (BundleError::Inconsistent(why), Id) => {
                format!("isi berkas tidak cocok dengan kepalanya: {why}")
            }
            (BundleError::Foreign { found, expected }, Id) => {
                format!("berkas ini untuk {found}, sedangkan komputer ini {expected}")
            }
            (BundleError::OtherEpoch { found, expected }, Id) => format!(
                "berkas ini untuk basis data epoch {found}, sedangkan epoch komputer ini {expected}"
            ),
            (BundleError::NothingToExport, Id) => "tidak ada yang perlu dikirim".into(),
            (BundleError::Store(e), lang) => e.message(lang),
            (BundleError::Io(e), Id) => format!("berkas tidak bisa dibaca atau ditulis: {e}"),
            (other, En) => other.to_string(),
        }
    }
}

fn new_mac(key: &[u8; 32], parts: &[String]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    mac
}

fn mac_hex(key: &[u8; 32], parts: &[String]) -> String {
    hex::encode(new_mac(key, parts).finalize().into_bytes())
}

fn verify_mac(key: &[u8; 32], parts: &[String], claimed: &str) -> bool {
    hex::decode(claimed).is_ok_and(|claimed| new_mac(key, parts).verify_slice(&claimed).is_ok())
}

/// The digest a bundle's `payload_sha256` holds for version 2's batches.
fn batches_digest(batches: &[String]) -> String {
    let mut hash = Sha256::new();
    for batch in batches {
        hash.update(batch.as_bytes());
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

impl Bundle {
    /// The header fields the HMAC covers (as version 1 defined them).
    fn signed_parts(&self) -> Vec<String> {
        vec![
            self.format.clone(),
            self.version.to_string(),
            self.library.to_string(),
            self.pc.to_string(),
            self.epoch.to_string(),
            self.first_seq.to_string(),
            self.last_seq.to_string(),
            self.records.to_string(),
            self.payload_sha256.clone(),
        ]
    }

    /// What the Ed25519 signature covers: a fixed context, then every header field
    /// (the content through its digest), the creation time and the public key itself.
    fn signed_message(&self) -> Vec<u8> {
        let mut parts = vec![SIGNATURE_CONTEXT.to_string()];
        parts.extend(self.signed_parts());
        parts.push(self.created_at_ms.to_string());
        parts.push(self.public_key.clone().unwrap_or_default());
        parts.join("\n").into_bytes()
    }

    /// Signs the bundle as it stands with `key` and sets its HMAC under `token_hash`
    /// (the SHA-256 of the device token, [`device_key`]). `export` seals every bundle it
    /// writes; the content digest must already be set.
    pub fn seal(&mut self, key: &DeviceKey, token_hash: &[u8; 32]) {
        self.public_key = Some(key.public_hex());
        self.signature = Some(key.sign(&self.signed_message()));
        self.mac = mac_hex(token_hash, &self.signed_parts());
    }

    /// Sets `payload_sha256` from the content (after the content was changed).
    pub fn update_checksum(&mut self) {
        self.payload_sha256 = if self.version == LEGACY_VERSION {
            hex::encode(Sha256::digest(self.payload.as_bytes()))
        } else {
            batches_digest(&self.batches)
        };
    }

    /// Parses a bundle and checks its checksum (not yet who made it: that needs the
    /// device's keys, which the reader looks up from `library` and `pc`).
    pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let bundle: Bundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::NotABundle(e.to_string()))?;
        let digest = match bundle.version {
            _ if bundle.format != BUNDLE_FORMAT => None,
            LEGACY_VERSION if bundle.batches.is_empty() => {
                Some(hex::encode(Sha256::digest(bundle.payload.as_bytes())))
            }
            VERSION if bundle.payload.is_empty() => Some(batches_digest(&bundle.batches)),
            _ => None,
        };
        let Some(digest) = digest else {
            return Err(BundleError::NotABundle(format!(
                "format {} version {}",
                bundle.format, bundle.version
            )));
        };
        if digest != bundle.payload_sha256 {
            return Err(BundleError::Damaged);
        }
        Ok(bundle)
    }

    /// The public key the bundle names as its signer, if it names a well-formed one
    /// (whether it really signed is [`Bundle::authenticate`]'s to check).
    pub fn signer_key(&self) -> Option<[u8; 32]> {
        let bytes = hex::decode(self.public_key.as_deref()?).ok()?;
        bytes.try_into().ok()
    }

    /// Checks who made the bundle. With `registered_key` (the public key the PC
    /// registered), only a signature under that key is accepted, whatever else the file
    /// carries. Without one, the HMAC under `token_hash` (the SHA-256 of the PC's active
    /// token) is all that can be checked, and [`BundleTrust::TokenHash`] says so.
    pub fn authenticate(
        &self,
        registered_key: Option<&[u8; 32]>,
        token_hash: &[u8; 32],
    ) -> Result<BundleTrust, BundleError> {
        let device = format!("{}/{}", self.library, self.pc);
        match registered_key {
            Some(key) => {
                let (Some(public_key), Some(signature)) = (&self.public_key, &self.signature)
                else {
                    return Err(BundleError::NotSignedWithRegisteredKey(device));
                };
                if hex::decode(public_key).ok().as_deref() != Some(key.as_slice()) {
                    return Err(BundleError::NotSignedWithRegisteredKey(device));
                }
                if signing::verify(key, &self.signed_message(), signature) {
                    Ok(BundleTrust::Signed)
                } else {
                    Err(BundleError::BadSignature(device))
                }
            }
            None if verify_mac(token_hash, &self.signed_parts(), &self.mac) => {
                Ok(BundleTrust::TokenHash)
            }
            None => Err(BundleError::BadSignature(device)),
        }
    }

    /// The batches inside, as the HTTP path would receive them. Inflating and parsing is
    /// the reader's, with its limits (the district server's import uses the HTTP path's).
    pub fn carried(&self) -> Result<Carried, BundleError> {
        let unhex =
            |text: &str| hex::decode(text).map_err(|e| BundleError::NotABundle(e.to_string()));
        if self.version == LEGACY_VERSION {
            return Ok(Carried::LegacyStream(unhex(&self.payload)?));
        }
        self.batches
            .iter()
            .map(|batch| unhex(batch))
            .collect::<Result<_, _>>()
            .map(Carried::Batches)
    }

    /// What an acknowledgement of this bundle refers to.
    pub fn checksum(&self) -> &str {
        &self.payload_sha256
    }
}

/// A bundle's batches before they are inflated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carried {
    /// Each batch's body: its JSON, zstd-compressed.
    Batches(Vec<Vec<u8>>),
    /// Version 1: every batch as one JSON array, zstd-compressed; split it with
    /// [`split_legacy_batches`] once inflated.
    LegacyStream(Vec<u8>),
}

/// The batches of a version 1 bundle's inflated JSON array, each as its own JSON text.
pub fn split_legacy_batches(json: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let raw: Vec<&serde_json::value::RawValue> =
        serde_json::from_slice(json).map_err(|e| BundleError::NotABundle(e.to_string()))?;
    Ok(raw
        .into_iter()
        .map(|batch| batch.get().as_bytes())
        .collect())
}

/// What `export` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub path: std::path::PathBuf,
    pub first_seq: u64,
    pub last_seq: u64,
    pub records: u64,
    pub batches: usize,
    pub bytes: u64,
    /// The fingerprint of the key that signed it.
    pub key_fingerprint: String,
}

/// Writes every change not yet acknowledged into `path` (mode 0600), signed with `key`
/// and authenticated with the token's HMAC. Marks nothing as synced: that happens only
/// when the acknowledgement file comes back.
pub fn export(
    store: &mut Store,
    token: &str,
    key: &DeviceKey,
    path: &std::path::Path,
) -> Result<ExportSummary, BundleError> {
    let state = store.sync_state()?;
    if state.pending() == 0 {
        return Err(BundleError::NothingToExport);
    }
    let sent = store.client_instant()?;
    let mut batches = Vec::new();
    let mut records = 0u64;
    let mut cursor = state.acked_seq;
    // A bundle carries the kinds the server last said it takes (those of wire format
    // v1 while it never said): an older server would refuse a batch with another kind.
    // The rest is held back when the acknowledgement comes back, and goes first in a
    // later bundle (or sync) once the server says it takes it (`jejak enroll` and every
    // sync ask).
    let kinds = store.server_accepts()?;
    let mut held_back = Vec::new();
    if let Some(batch) = batching::prepare_held_back(store, BATCH_RECORDS, sent, &kinds)? {
        records += batch.records() as u64;
        held_back = batch.releases.clone();
        batches.push(hex::encode(&batch.body));
    }
    while let Some(batch) = batching::prepare(store, cursor, BATCH_RECORDS, sent, &kinds)? {
        cursor = batch.wire.last_seq;
        records += batch.records() as u64;
        batches.push(hex::encode(&batch.body));
    }
    let identity = store.identity().clone();
    let mut bundle = Bundle {
        format: BUNDLE_FORMAT.into(),
        version: VERSION,
        library: identity.library,
        pc: identity.pc,
        epoch: store.epoch(),
        first_seq: state.acked_seq + 1,
        last_seq: cursor,
        records,
        created_at_ms: sent.wall_ms,
        payload_sha256: batches_digest(&batches),
        payload: String::new(),
        batches,
        public_key: Some(key.public_hex()),
        signature: None,
        mac: String::new(),
    };
    bundle.seal(key, &device_key(token));
    // What the bundle carried, for its acknowledgement: the kinds, and the held-back
    // changes it releases.
    store.save_bundle_kinds(&bundle.payload_sha256, &kinds, &held_back)?;
    let bytes =
        serde_json::to_vec_pretty(&bundle).map_err(|e| BundleError::NotABundle(e.to_string()))?;
    // A USB stick may be pulled right after the command ends: the file is on the disk
    // before it says done. It holds patron categories: readable by its owner only.
    jejak_agent::platform::write_private_file(path, &bytes)?;
    Ok(ExportSummary {
        path: path.to_path_buf(),
        first_seq: bundle.first_seq,
        last_seq: bundle.last_seq,
        records,
        batches: bundle.batches.len(),
        bytes: bytes.len() as u64,
        key_fingerprint: key.fingerprint(),
    })
}

impl BundleAck {
    /// Writes the acknowledgement to `path`, on the disk before it returns and readable
    /// by its owner only, as a bundle is written.
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        jejak_agent::platform::write_private_file(path, &self.to_bytes())
    }

    fn signed_parts(&self) -> Vec<String> {
        let acks = serde_json::to_string(&self.acks).unwrap_or_default();
        vec![
            self.format.clone(),
            self.version.to_string(),
            self.library.to_string(),
            self.pc.to_string(),
            self.epoch.to_string(),
            self.bundle_sha256.clone(),
            acks,
        ]
    }

    /// The server's side: acknowledges `bundle` with the answers of its batches,
    /// signed with the device's key.
    pub fn new(bundle: &Bundle, acks: Vec<BatchAck>, key: &[u8; 32]) -> BundleAck {
        let mut ack = BundleAck {
            format: ACK_FORMAT.into(),
            version: ACK_VERSION,
            library: bundle.library.clone(),
            pc: bundle.pc.clone(),
            epoch: bundle.epoch,
            bundle_sha256: bundle.payload_sha256.clone(),
            acks,
            mac: String::new(),
        };
        ack.mac = mac_hex(key, &ack.signed_parts());
        ack
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn highest_held_seq(&self) -> u64 {
        self.acks.iter().map(|a| a.held_seq).max().unwrap_or(0)
    }
}

/// What `import_ack` recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedAck {
    pub held_seq: u64,
    pub new: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// The PC's side: checks an acknowledgement file and marks what it acknowledges.
pub fn import_ack(
    store: &mut Store,
    token: &str,
    bytes: &[u8],
) -> Result<ImportedAck, BundleError> {
    let ack: BundleAck =
        serde_json::from_slice(bytes).map_err(|e| BundleError::NotABundle(e.to_string()))?;
    if ack.format != ACK_FORMAT || ack.version != ACK_VERSION {
        return Err(BundleError::NotABundle(format!(
            "format {} version {}",
            ack.format, ack.version
        )));
    }
    let identity = store.identity().clone();
    if ack.library != identity.library || ack.pc != identity.pc {
        return Err(BundleError::Foreign {
            found: format!("{}/{}", ack.library, ack.pc),
            expected: identity.to_string(),
        });
    }
    if !verify_mac(&device_key(token), &ack.signed_parts(), &ack.mac) {
        return Err(BundleError::BadSignature(identity.to_string()));
    }
    if ack.epoch != store.epoch() {
        return Err(BundleError::OtherEpoch {
            found: ack.epoch,
            expected: store.epoch(),
        });
    }
    let mut summary = ImportedAck {
        held_seq: 0,
        new: 0,
        duplicates: 0,
        rejected: 0,
    };
    // The server wrote this file after its last answer: now, as the PC reads it, the
    // server's clock reads at least that time. Kept as a lower bound for the run that is
    // going now (see `ClockBound`), so that the next bundle or sync dates this run, and
    // the runs after it, better than a clock reset to 2000 can. A file whose times are
    // not a server's (before 2024) teaches nothing.
    if let Some(server_ms) = ack
        .acks
        .iter()
        .map(|a| a.sent_at_ms.max(a.received_at_ms))
        .max()
        .filter(|ms| *ms >= jejak_domain::EARLIEST_SERVER_MS)
    {
        store.save_bound(server_ms)?;
    }
    let (kinds, releases) = store.bundle_kinds(&ack.bundle_sha256)?;
    if !releases.is_empty() {
        // The held-back batch comes first; its rejections are recorded with the rest.
        store.release_held_back(&releases, &[])?;
    }
    for batch_ack in &ack.acks {
        store.record_ack(
            batch_ack.epoch,
            batch_ack.held_seq,
            &batch_ack.rejected,
            &kinds,
        )?;
        summary.held_seq = summary.held_seq.max(batch_ack.held_seq);
        summary.new += u64::from(batch_ack.new);
        summary.duplicates += u64::from(batch_ack.duplicates);
        summary.rejected += batch_ack.rejected.len() as u64;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jejak_agent::clock::ManualClock;
    use jejak_domain::{DeviceIdentity, EndReason, PatronProfile};
    use std::sync::Arc;

    fn store(dir: &tempfile::TempDir, pc: &str) -> Store {
        let clock = ManualClock::new(chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap());
        let identity = DeviceIdentity {
            library: LibraryCode::parse("adisara").unwrap(),
            pc: PcCode::parse(pc).unwrap(),
        };
        Store::open(
            &dir.path().join(format!("{pc}.db")),
            identity,
            Arc::new(clock),
        )
        .unwrap()
        .0
    }

    fn key(dir: &tempfile::TempDir) -> DeviceKey {
        DeviceKey::load_or_create(dir.path()).unwrap()
    }

    fn inflate(body: &[u8]) -> jejak_domain::WireBatch {
        serde_json::from_slice(&zstd::decode_all(body).unwrap()).unwrap()
    }

    #[test]
    fn a_bundle_round_trips_signed_and_tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir, "pc-01");
        for _ in 0..3 {
            store.start_session(PatronProfile::default(), None).unwrap();
            store.end_session(EndReason::Logout, None).unwrap();
        }
        let key = key(&dir);
        let path = dir.path().join("bundle.json");
        let summary = export(&mut store, "token-a", &key, &path).unwrap();
        assert_eq!((summary.first_seq, summary.last_seq), (1, 7));
        assert_eq!(summary.key_fingerprint, key.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o777,
                0o600,
                "a bundle is readable by its owner only"
            );
        }
        let bytes = std::fs::read(&path).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        let public = key.public_key();
        let token_a = device_key("token-a");
        assert_eq!(
            bundle.authenticate(Some(&public), &token_a).unwrap(),
            BundleTrust::Signed
        );
        assert_eq!(
            bundle.authenticate(None, &token_a).unwrap(),
            BundleTrust::TokenHash,
            "a server that has no key for the PC yet checks the HMAC"
        );
        assert!(matches!(
            bundle.authenticate(None, &device_key("token-b")),
            Err(BundleError::BadSignature(_))
        ));
        let other = DeviceKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(matches!(
            bundle.authenticate(Some(&other.public_key()), &token_a),
            Err(BundleError::NotSignedWithRegisteredKey(_))
        ));
        let Carried::Batches(bodies) = bundle.carried().unwrap() else {
            panic!("a version 2 bundle carries batches");
        };
        assert_eq!(
            bodies.iter().map(|b| inflate(b).len()).sum::<usize>(),
            4,
            "boot + 3 sessions"
        );
        assert_eq!(
            store.sync_state().unwrap().acked_seq,
            0,
            "exporting marks nothing synced"
        );

        // A changed batch fails the checksum; a changed header fails the signature and
        // the HMAC.
        let mut tampered: Bundle = serde_json::from_slice(&bytes).unwrap();
        tampered.batches[0].replace_range(0..2, "00");
        assert!(matches!(
            Bundle::parse(&serde_json::to_vec(&tampered).unwrap()),
            Err(BundleError::Damaged)
        ));
        let mut tampered: Bundle = serde_json::from_slice(&bytes).unwrap();
        tampered.last_seq = 99;
        let reparsed = Bundle::parse(&serde_json::to_vec(&tampered).unwrap()).unwrap();
        assert!(matches!(
            reparsed.authenticate(Some(&public), &token_a),
            Err(BundleError::BadSignature(_))
        ));
        assert!(matches!(
            reparsed.authenticate(None, &token_a),
            Err(BundleError::BadSignature(_))
        ));
        assert!(matches!(
            Bundle::parse(b"{\"hello\":1}"),
            Err(BundleError::NotABundle(_))
        ));
    }

    /// What someone holding a copy of the server's database can make: the token's hash
    /// is in it, the PC's private key is not.
    #[test]
    fn a_bundle_forged_from_the_servers_database_is_refused_once_the_key_is_registered() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir, "pc-01");
        store.start_session(PatronProfile::default(), None).unwrap();
        let path = dir.path().join("bundle.json");
        export(&mut store, "token-a", &key(&dir), &path).unwrap();
        let genuine = Bundle::parse(&std::fs::read(&path).unwrap()).unwrap();

        let stolen_hash = device_key("token-a");
        let forger = DeviceKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        let mut forged = genuine.clone();
        forged.records += 1;
        forged.seal(&forger, &stolen_hash);
        let forged = Bundle::parse(&serde_json::to_vec(&forged).unwrap()).unwrap();
        assert!(matches!(
            forged.authenticate(Some(&key(&dir).public_key()), &stolen_hash),
            Err(BundleError::NotSignedWithRegisteredKey(_))
        ));
        // Without its signature (a version 1 file) it is refused too.
        let mut unsigned = genuine.clone();
        unsigned.signature = None;
        unsigned.public_key = None;
        assert!(matches!(
            unsigned.authenticate(Some(&key(&dir).public_key()), &stolen_hash),
            Err(BundleError::NotSignedWithRegisteredKey(_))
        ));
        // Before the PC registered its key the HMAC is all there is: that window is what
        // the import reports as `token_hash`.
        assert_eq!(
            forged.authenticate(None, &stolen_hash).unwrap(),
            BundleTrust::TokenHash
        );
    }

    #[test]
    fn a_version_1_bundle_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir, "pc-01");
        store.start_session(PatronProfile::default(), None).unwrap();
        let sent = store.client_instant().unwrap();
        let batch = batching::prepare(&store, 0, 500, sent, &jejak_domain::RecordKind::ALL)
            .unwrap()
            .unwrap();
        let json = serde_json::to_vec(&vec![batch.wire.clone()]).unwrap();
        let payload = hex::encode(zstd::bulk::compress(&json, 3).unwrap());
        let mut v1 = Bundle {
            format: BUNDLE_FORMAT.into(),
            version: LEGACY_VERSION,
            library: batch.wire.library.clone(),
            pc: batch.wire.pc.clone(),
            epoch: batch.wire.epoch,
            first_seq: 1,
            last_seq: batch.wire.last_seq,
            records: batch.wire.len() as u64,
            created_at_ms: 0,
            payload_sha256: hex::encode(Sha256::digest(payload.as_bytes())),
            payload,
            batches: Vec::new(),
            public_key: None,
            signature: None,
            mac: String::new(),
        };
        v1.mac = mac_hex(&device_key("token-a"), &v1.signed_parts());
        let text = serde_json::to_vec(&v1).unwrap();
        assert!(!String::from_utf8_lossy(&text).contains("\"batches\""));
        let parsed = Bundle::parse(&text).unwrap();
        assert_eq!(
            parsed.authenticate(None, &device_key("token-a")).unwrap(),
            BundleTrust::TokenHash
        );
        let Carried::LegacyStream(stream) = parsed.carried().unwrap() else {
            panic!("version 1 carries one stream");
        };
        let json = zstd::decode_all(stream.as_slice()).unwrap();
        let batches = split_legacy_batches(&json).unwrap();
        assert_eq!(batches.len(), 1);
        let back: jejak_domain::WireBatch = serde_json::from_slice(batches[0]).unwrap();
        assert_eq!(back.batch_id, batch.wire.batch_id);
    }

    #[test]
    fn an_acknowledgement_marks_records_synced_only_with_the_right_key_and_device() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir, "pc-01");
        store.start_session(PatronProfile::default(), None).unwrap();
        let path = dir.path().join("bundle.json");
        export(&mut store, "token-a", &key(&dir), &path).unwrap();
        let bundle = Bundle::parse(&std::fs::read(&path).unwrap()).unwrap();
        let ack = |held| BatchAck {
            batch_id: Uuid::nil(),
            epoch: bundle.epoch,
            held_seq: held,
            new: 2,
            duplicates: 0,
            rejected: vec![],
            received_at_ms: 0,
            sent_at_ms: 0,
        };
        let forged = BundleAck::new(&bundle, vec![ack(2)], &device_key("token-b"));
        assert!(matches!(
            import_ack(&mut store, "token-a", &forged.to_bytes()),
            Err(BundleError::BadSignature(_))
        ));
        let mut other = store_for_other_pc(&dir);
        let good = BundleAck::new(&bundle, vec![ack(2)], &device_key("token-a"));
        assert!(matches!(
            import_ack(&mut other, "token-a", &good.to_bytes()),
            Err(BundleError::Foreign { .. })
        ));
        let imported = import_ack(&mut store, "token-a", &good.to_bytes()).unwrap();
        assert_eq!(imported.held_seq, 2);
        assert_eq!(store.sync_state().unwrap().pending(), 0);
        // The same acknowledgement again changes nothing.
        import_ack(&mut store, "token-a", &good.to_bytes()).unwrap();
        assert_eq!(store.sync_state().unwrap().acked_seq, 2);
    }

    fn store_for_other_pc(dir: &tempfile::TempDir) -> Store {
        store(dir, "pc-02")
    }
}
