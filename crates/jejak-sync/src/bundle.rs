//! USB bundles: when a village has no link, `jejak sync --export FILE` writes every
//! change not yet acknowledged into one file that the librarian carries to the
//! district office; `jejak server import FILE` ingests it through the same idempotent
//! path as HTTP and writes an acknowledgement file, which `jejak sync --import-ack`
//! brings back to the PC.
//!
//! Both files are JSON (self-describing), carry a SHA-256 of their payload (a damaged
//! stick is detected) and an HMAC-SHA256 keyed with the SHA-256 of the device token —
//! the value the server keeps instead of the token — so a bundle cannot be forged for
//! another PC, and an acknowledgement cannot be forged by anyone but the server.

use hmac::{Hmac, Mac};
use jejak_agent::store::{Store, StoreError};
use jejak_domain::{BatchAck, LibraryCode, PcCode, WireBatch};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::batching;

const BUNDLE_FORMAT: &str = "jejak-bundle";
const ACK_FORMAT: &str = "jejak-bundle-ack";
const VERSION: u32 = 1;
/// Records per batch inside a bundle, as over HTTP.
const BATCH_RECORDS: u32 = 500;

/// The key that authenticates bundles of one device: SHA-256 of its token.
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
    /// SHA-256 of `payload` (the hex text as written).
    pub payload_sha256: String,
    /// The batches, as JSON, zstd-compressed, hex-encoded.
    pub payload: String,
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

/// Why a bundle or an acknowledgement file is refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a Jejak bundle file: {0}")]
    NotABundle(String),
    #[error("the file is damaged: its content does not match its checksum")]
    Damaged,
    #[error("the file was changed or does not belong to {0}: its signature does not match")]
    BadSignature(String),
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

fn mac_hex(key: &[u8; 32], parts: &[&str]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    hex::encode(mac.finalize().into_bytes())
}

fn verify_mac(key: &[u8; 32], parts: &[&str], claimed: &str) -> bool {
    let Ok(claimed) = hex::decode(claimed) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    mac.verify_slice(&claimed).is_ok()
}

impl Bundle {
    fn signed_parts(&self) -> [String; 9] {
        [
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

    /// Parses a bundle and checks its checksum (not yet its signature: that needs the
    /// device's key, which the reader looks up from `library` and `pc`).
    pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let bundle: Bundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::NotABundle(e.to_string()))?;
        if bundle.format != BUNDLE_FORMAT || bundle.version != VERSION {
            return Err(BundleError::NotABundle(format!(
                "format {} version {}",
                bundle.format, bundle.version
            )));
        }
        if hex::encode(Sha256::digest(bundle.payload.as_bytes())) != bundle.payload_sha256 {
            return Err(BundleError::Damaged);
        }
        Ok(bundle)
    }

    /// Checks the signature with the device's key.
    pub fn verify(&self, key: &[u8; 32]) -> Result<(), BundleError> {
        let parts = self.signed_parts();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        if verify_mac(key, &refs, &self.mac) {
            Ok(())
        } else {
            Err(BundleError::BadSignature(format!(
                "{}/{}",
                self.library, self.pc
            )))
        }
    }

    /// The batches inside (after `parse` and `verify`).
    pub fn batches(&self) -> Result<Vec<WireBatch>, BundleError> {
        let compressed =
            hex::decode(&self.payload).map_err(|e| BundleError::NotABundle(e.to_string()))?;
        let json = zstd::stream::decode_all(compressed.as_slice())
            .map_err(|e| BundleError::NotABundle(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| BundleError::NotABundle(e.to_string()))
    }

    /// What an acknowledgement of this bundle refers to.
    pub fn checksum(&self) -> &str {
        &self.payload_sha256
    }
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
}

/// Writes every change not yet acknowledged into `path`. Marks nothing as synced:
/// that happens only when the acknowledgement file comes back.
pub fn export(
    store: &mut Store,
    token: &str,
    path: &std::path::Path,
) -> Result<ExportSummary, BundleError> {
    let state = store.sync_state()?;
    if state.pending() == 0 {
        return Err(BundleError::NothingToExport);
    }
    let sent = store.client_instant()?;
    let mut batches = Vec::new();
    let mut cursor = state.acked_seq;
    while let Some(batch) = batching::prepare(store, cursor, BATCH_RECORDS, sent)? {
        cursor = batch.wire.last_seq;
        batches.push(batch.wire);
    }
    let records: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let json = serde_json::to_vec(&batches).map_err(|e| BundleError::NotABundle(e.to_string()))?;
    let payload = hex::encode(zstd::bulk::compress(&json, batching::ZSTD_LEVEL)?);
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
        payload_sha256: hex::encode(Sha256::digest(payload.as_bytes())),
        payload,
        mac: String::new(),
    };
    let parts = bundle.signed_parts();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    bundle.mac = mac_hex(&device_key(token), &refs);
    let bytes =
        serde_json::to_vec_pretty(&bundle).map_err(|e| BundleError::NotABundle(e.to_string()))?;
    write_durably(path, &bytes)?;
    Ok(ExportSummary {
        path: path.to_path_buf(),
        first_seq: bundle.first_seq,
        last_seq: bundle.last_seq,
        records,
        batches: batches.len(),
        bytes: bytes.len() as u64,
    })
}

/// A USB stick may be pulled right after the command ends: sync before saying done.
fn write_durably(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

impl BundleAck {
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
            version: VERSION,
            library: bundle.library.clone(),
            pc: bundle.pc.clone(),
            epoch: bundle.epoch,
            bundle_sha256: bundle.payload_sha256.clone(),
            acks,
            mac: String::new(),
        };
        let parts = ack.signed_parts();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        ack.mac = mac_hex(key, &refs);
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
    if ack.format != ACK_FORMAT || ack.version != VERSION {
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
    let parts = ack.signed_parts();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    if !verify_mac(&device_key(token), &refs, &ack.mac) {
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
    for batch_ack in &ack.acks {
        store.record_ack(batch_ack.epoch, batch_ack.held_seq, &batch_ack.rejected)?;
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

    #[test]
    fn a_bundle_round_trips_and_tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir, "pc-01");
        for _ in 0..3 {
            store.start_session(PatronProfile::default(), None).unwrap();
            store.end_session(EndReason::Logout, None).unwrap();
        }
        let path = dir.path().join("bundle.json");
        let summary = export(&mut store, "token-a", &path).unwrap();
        assert_eq!((summary.first_seq, summary.last_seq), (1, 7));
        let bytes = std::fs::read(&path).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        bundle.verify(&device_key("token-a")).unwrap();
        assert!(matches!(
            bundle.verify(&device_key("token-b")),
            Err(BundleError::BadSignature(_))
        ));
        let batches = bundle.batches().unwrap();
        assert_eq!(
            batches.iter().map(|b| b.len()).sum::<usize>(),
            4,
            "boot + 3 sessions"
        );
        assert_eq!(
            store.sync_state().unwrap().acked_seq,
            0,
            "exporting marks nothing synced"
        );

        // A changed payload fails the checksum; a changed header fails the signature.
        let mut tampered: Bundle = serde_json::from_slice(&bytes).unwrap();
        tampered.payload.replace_range(0..2, "00");
        assert!(matches!(
            Bundle::parse(&serde_json::to_vec(&tampered).unwrap()),
            Err(BundleError::Damaged)
        ));
        let mut tampered: Bundle = serde_json::from_slice(&bytes).unwrap();
        tampered.last_seq = 99;
        let reparsed = Bundle::parse(&serde_json::to_vec(&tampered).unwrap()).unwrap();
        assert!(matches!(
            reparsed.verify(&device_key("token-a")),
            Err(BundleError::BadSignature(_))
        ));
        assert!(matches!(
            Bundle::parse(b"{\"hello\":1}"),
            Err(BundleError::NotABundle(_))
        ));
    }

    #[test]
    fn an_acknowledgement_marks_records_synced_only_with_the_right_key_and_device() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir, "pc-01");
        store.start_session(PatronProfile::default(), None).unwrap();
        let path = dir.path().join("bundle.json");
        export(&mut store, "token-a", &path).unwrap();
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
