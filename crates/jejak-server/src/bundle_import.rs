//! `jejak server import`: a USB bundle (the format is `jejak_sync::bundle`) ingested
//! through the same idempotent path as an HTTP batch, and its signed acknowledgement
//! written for the PC to read back.
//!
//! Nothing is stored unless the whole bundle passes: it must be a bundle of a PC this
//! server knows, made by that PC (see "USB bundles: who can sign what" in
//! ARCHITECTURE.md), within the HTTP path's limits, and its batches must agree with its
//! header. A refused bundle stores nothing and gets no acknowledgement file.

use std::path::{Path, PathBuf};

use jejak_domain::Lang;
use jejak_sync::bundle::{Bundle, BundleAck, BundleError, BundleTrust, Carried};

use crate::http::{Limits, decode_carried_batch, inflate_carried};
use crate::store::{Delivery, IngestError, ServerClock, ServerStore, StoreError};

/// Why an import stopped. Nothing of the bundle was stored, and no acknowledgement
/// written, unless the error is about writing the acknowledgement itself.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bundle is refused, with why in Indonesian (`id`) and English (`en`).
    #[error("{en}")]
    Refused {
        /// Why, in Indonesian.
        id: String,
        /// Why, in English.
        en: String,
    },
    /// The bundle file could not be read, or the acknowledgement file not written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Whether it was being written (the acknowledgement) or read (the bundle).
        writing: bool,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store refused a batch for a reason no checked bundle should meet.
    #[error(transparent)]
    Ingest(IngestError),
    /// A batch that passed the checks no longer decodes (a bug, never the bundle's
    /// fault).
    #[error("a checked batch no longer decodes: {0}")]
    Recheck(String),
}

/// What an import did.
#[derive(Debug, serde::Serialize)]
pub struct ImportSummary {
    /// The bundle's library.
    pub library: String,
    /// The bundle's PC.
    pub pc: String,
    /// Batches stored.
    pub batches: usize,
    /// The last seq the server holds of the PC after the import.
    pub held_seq: u64,
    /// Records new to the server.
    pub new: u64,
    /// Records the server already had.
    pub duplicates: u64,
    /// Records refused (stored as rejected; see the acknowledgement).
    pub rejected: u64,
    /// Where the acknowledgement file was written.
    pub ack_file: PathBuf,
    /// What vouched for the bundle: `signed` (the PC's registered key) or `token_hash`
    /// (the PC has registered no key yet; see ARCHITECTURE.md).
    pub trust: BundleTrust,
    /// The fingerprint of the PC's registered key, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
}

/// The largest bundle file read. A PC's 90-day backlog is well under a megabyte; a
/// larger file is a mistake or an attack, refused before it is read.
const MAX_BUNDLE_FILE_BYTES: u64 = 32 << 20;
/// The most records one bundle may claim (a year of a busy PC is about 20,000).
const MAX_BUNDLE_RECORDS: u64 = 200_000;
/// What all of a bundle's batches may inflate to together, per record it claims
/// (a realistic record is a few hundred bytes of JSON), on top of one batch's limit.
const INFLATE_BUDGET_PER_RECORD: usize = 4 << 10;

/// What the district office vouches for at an import, beyond what the server holds.
#[derive(Debug, Clone, Default)]
pub struct ImportTrust {
    /// The fingerprint of the PC's key as the PC itself shows it: lets a PC that has not
    /// registered its key online have it registered by its signed bundle.
    pub key_fingerprint: Option<String>,
    /// Take an unsigned bundle (older jejak) on the token's hash alone.
    pub accept_unsigned: bool,
}

/// Ingests a bundle through the same idempotent path as HTTP and writes the signed
/// acknowledgement. Refuses a file too large to be a bundle, a damaged bundle, a bundle
/// of a PC this server does not know, one not made by that PC (its registered key's
/// signature, or before it registered one the HMAC under its token's hash), one with a
/// batch over the HTTP path's limits, and one whose batches disagree with its header.
/// A refused bundle stores nothing and gets no acknowledgement file.
pub async fn import_bundle(
    store: &dyn ServerStore,
    file: &Path,
    ack_path: &Path,
    trust: &ImportTrust,
    clock: &ServerClock,
) -> Result<ImportSummary, ImportError> {
    let refused = |id: String, en: String| ImportError::Refused { id, en };
    let bundle_refused = |e: BundleError| {
        refused(
            format!("berkas ditolak: {}", e.message(Lang::Id)),
            format!("bundle refused: {}", e.message(Lang::En)),
        )
    };
    let bytes = read_bundle_file(file)?;
    let bundle = Bundle::parse(&bytes).map_err(bundle_refused)?;
    drop(bytes);
    let Some(device) = store.find_device(&bundle.library, &bundle.pc).await? else {
        let revoked = store
            .devices()
            .await?
            .iter()
            .any(|d| d.library == bundle.library && d.pc == bundle.pc && !d.active);
        if revoked {
            return Err(refused(
                format!(
                    "berkas ditolak: token komputer {}/{} sudah dicabut; daftarkan ulang komputer itu",
                    bundle.library, bundle.pc
                ),
                format!(
                    "bundle refused: the token of PC {}/{} is revoked; enroll that PC again",
                    bundle.library, bundle.pc
                ),
            ));
        }
        return Err(refused(
            format!(
                "berkas ditolak: komputer {}/{} tidak terdaftar di server ini",
                bundle.library, bundle.pc
            ),
            format!(
                "bundle refused: PC {}/{} is not enrolled on this server",
                bundle.library, bundle.pc
            ),
        ));
    };
    let Some(keys) = store.device_keys(&device).await? else {
        return Err(refused(
            format!("berkas ditolak: token komputer {device} sudah dicabut"),
            format!("bundle refused: the token of PC {device} is revoked"),
        ));
    };
    // Nothing the server stores suffices to sign for a PC: a bundle counts when it is
    // signed with the key the PC registered online, or with a key whose fingerprint the
    // district read off the PC itself (then registered here), or — only when asked for
    // explicitly — when it is an older jejak's unsigned bundle, on the token's hash.
    let (registered, key_to_register) = match (keys.public_key, bundle.signer_key()) {
        (Some(key), _) => (Some(key), None),
        (None, Some(key)) => {
            let fingerprint = jejak_sync::signing::fingerprint(&key);
            match trust.key_fingerprint.as_deref().map(normalise_fingerprint) {
                Some(given) if given == fingerprint => (Some(key), Some(key)),
                Some(given) => {
                    return Err(refused(
                        format!(
                            "berkas ditolak: berkas ditandatangani kunci {fingerprint}, bukan {given}; periksa lagi sidik jari di komputer {device} (jejak status)"
                        ),
                        format!(
                            "bundle refused: it is signed with key {fingerprint}, not {given}; read the fingerprint on PC {device} again (jejak status)"
                        ),
                    ));
                }
                None => {
                    return Err(refused(
                        format!(
                            "berkas ditolak: komputer {device} belum mendaftarkan kuncinya ke server. Cocokkan sidik jari kunci berkas ini, {fingerprint}, dengan yang ditampilkan komputer itu (jejak status, atau saat berkas dibuat), lalu jalankan lagi dengan --trust-key {fingerprint}"
                        ),
                        format!(
                            "bundle refused: PC {device} has not registered its key with the server. Compare this bundle's key fingerprint, {fingerprint}, with the one that PC shows (jejak status, or when the bundle was made), then run again with --trust-key {fingerprint}"
                        ),
                    ));
                }
            }
        }
        (None, None) if trust.accept_unsigned => (None, None),
        (None, None) => {
            return Err(refused(
                format!(
                    "berkas ditolak: berkas dari {device} tidak ditandatangani (jejak versi lama di komputer itu). Perbarui jejak di komputer itu lalu buat berkas baru; hanya bila berkas ini pasti dari komputer itu, terima dengan --accept-unsigned"
                ),
                format!(
                    "bundle refused: the bundle from {device} is not signed (an older jejak on that PC). Update jejak there and make a new bundle; only if this file surely comes from that PC, accept it with --accept-unsigned"
                ),
            ));
        }
    };
    let trust = bundle
        .authenticate(registered.as_ref(), &keys.token_hash)
        .map_err(bundle_refused)?;
    let bodies = carried_bodies(&bundle).map_err(|(id, en)| refused(id, en))?;
    // Every batch is decoded and checked against the header before any is stored, then
    // decoded again to be stored one at a time (memory holds one batch, not all).
    check_contents(&bundle, &bodies).map_err(|(id, en)| refused(id, en))?;
    if let Some(key) = key_to_register {
        store
            .register_device_key(&keys.token_hash, &key, clock())
            .await?;
        tracing::info!(device = %device, fingerprint = %jejak_sync::signing::fingerprint(&key),
            "the PC's signing key was registered from its bundle, by the fingerprint the district confirmed");
    }
    let mut acks = Vec::new();
    for (body, compressed) in &bodies {
        let (batch, _) = decode_carried_batch(body, *compressed, Limits::default())
            .map_err(|problem| ImportError::Recheck(problem.detail))?;
        let now = clock();
        match store.ingest(&device, batch, now, Delivery::Carried).await {
            Ok(ack) => acks.push(ack),
            Err(IngestError::SeqGap {
                expected_seq,
                first_seq,
            }) => {
                return Err(refused(
                    format!(
                        "berkas ditolak: server menyimpan sampai seq {}, berkas mulai dari seq {first_seq}; buat berkas baru di komputer itu",
                        expected_seq - 1
                    ),
                    format!(
                        "bundle refused: the server holds up to seq {}, the bundle starts at seq {first_seq}; export a new bundle on that PC",
                        expected_seq - 1
                    ),
                ));
            }
            // A batch no PC writes (a number out of range, a broken shape): refused with
            // what is wrong, and no acknowledgement is written.
            Err(e @ (IngestError::Shape(_) | IngestError::OutOfRange(_))) => {
                return Err(refused(
                    format!("berkas ditolak: isinya tidak sah ({e})"),
                    format!("bundle refused: its contents are not valid ({e})"),
                ));
            }
            Err(e) => return Err(ImportError::Ingest(e)),
        }
    }
    if trust == BundleTrust::TokenHash {
        tracing::warn!(device = %device, "an unsigned bundle was accepted on its token-hash HMAC (--accept-unsigned)");
    }
    let summary = ImportSummary {
        library: bundle.library.to_string(),
        pc: bundle.pc.to_string(),
        batches: acks.len(),
        held_seq: acks.iter().map(|a| a.held_seq).max().unwrap_or(0),
        new: acks.iter().map(|a| u64::from(a.new)).sum(),
        duplicates: acks.iter().map(|a| u64::from(a.duplicates)).sum(),
        rejected: acks.iter().map(|a| a.rejected.len() as u64).sum(),
        ack_file: ack_path.to_path_buf(),
        trust,
        key_fingerprint: registered.as_ref().map(jejak_sync::signing::fingerprint),
    };
    let ack = BundleAck::new(&bundle, acks, &keys.token_hash);
    ack.write(ack_path).map_err(|source| ImportError::File {
        path: ack_path.to_path_buf(),
        writing: true,
        source,
    })?;
    Ok(summary)
}

/// A fingerprint as typed: case, spaces and separators do not matter.
fn normalise_fingerprint(text: &str) -> String {
    let hex: String = text
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// A bundle file's bytes, refusing one too large to be a bundle before reading it.
fn read_bundle_file(file: &Path) -> Result<Vec<u8>, ImportError> {
    use std::io::Read;
    let unreadable = |source| ImportError::File {
        path: file.to_path_buf(),
        writing: false,
        source,
    };
    let opened = std::fs::File::open(file).map_err(unreadable)?;
    let mut bytes = Vec::new();
    opened
        .take(MAX_BUNDLE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_BUNDLE_FILE_BYTES {
        let mb = MAX_BUNDLE_FILE_BYTES >> 20;
        return Err(ImportError::Refused {
            id: format!(
                "berkas ditolak: lebih besar dari {mb} MB, terlalu besar untuk berkas sinkron satu komputer"
            ),
            en: format!("bundle refused: larger than {mb} MB, too large for one PC's bundle"),
        });
    }
    Ok(bytes)
}

/// Why a bundle's contents are refused, in Indonesian and English.
type Refusal = (String, String);

/// Inflated bytes a version 1 bundle's stream may take per record its header claims.
const LEGACY_BYTES_PER_RECORD: usize = 512;
/// The most a version 1 bundle's stream may inflate to, whatever its header claims.
const LEGACY_MAX_INFLATED: usize = 128 << 20;

/// A bundle's batches as HTTP bodies: (body, whether zstd-compressed). A version 1
/// bundle's single stream is inflated (within one batch's limit) and split.
fn carried_bodies(bundle: &Bundle) -> Result<Vec<(Vec<u8>, bool)>, Refusal> {
    let problem = |detail: String| -> Refusal {
        (
            format!("berkas ditolak: {detail}"),
            format!("bundle refused: {detail}"),
        )
    };
    let not_a_bundle = |e: BundleError| {
        (
            format!("berkas ditolak: {}", e.message(Lang::Id)),
            format!("bundle refused: {}", e.message(Lang::En)),
        )
    };
    match bundle.carried().map_err(not_a_bundle)? {
        Carried::Batches(bodies) => Ok(bodies.into_iter().map(|b| (b, true)).collect()),
        Carried::LegacyStream(stream) => {
            // One stream holds every batch of a version 1 bundle: its inflated size is
            // bounded in proportion to the records the header claims (a record is about
            // 220 bytes of JSON; twice that is allowed), never below one batch's limit
            // and never above LEGACY_MAX_INFLATED.
            let limit = Limits::default()
                .max_decompressed_bytes
                .max(
                    usize::try_from(bundle.records)
                        .unwrap_or(usize::MAX)
                        .saturating_mul(LEGACY_BYTES_PER_RECORD),
                )
                .min(LEGACY_MAX_INFLATED);
            let json = inflate_carried(&stream, limit).map_err(|p| problem(p.detail))?;
            let batches = jejak_sync::bundle::split_legacy_batches(&json).map_err(not_a_bundle)?;
            Ok(batches.into_iter().map(|b| (b.to_vec(), false)).collect())
        }
    }
}

/// Decodes every batch within the HTTP path's limits (and all of them within a budget
/// in proportion to the records the header claims) and checks them against the
/// header: the same library, PC and epoch, seq ranges that follow each other from
/// `first_seq` to `last_seq` (after, possibly, one batch of held-back records below
/// `first_seq`), and as many records as it says.
fn check_contents(bundle: &Bundle, bodies: &[(Vec<u8>, bool)]) -> Result<(), Refusal> {
    let disagree = |detail: String| -> Refusal {
        let e = BundleError::Inconsistent(detail);
        (
            format!("berkas ditolak: {}", e.message(Lang::Id)),
            format!("bundle refused: {}", e.message(Lang::En)),
        )
    };
    if bundle.records > MAX_BUNDLE_RECORDS {
        return Err(disagree(format!(
            "it claims {} records; one bundle may carry at most {MAX_BUNDLE_RECORDS}",
            bundle.records
        )));
    }
    if bodies.is_empty() || bodies.len() as u64 > bundle.records.max(1) {
        return Err(disagree(format!(
            "{} batches for {} records",
            bodies.len(),
            bundle.records
        )));
    }
    let limits = Limits::default();
    let mut budget = limits.max_decompressed_bytes.saturating_add(
        usize::try_from(bundle.records)
            .unwrap_or(usize::MAX)
            .saturating_mul(INFLATE_BUDGET_PER_RECORD),
    );
    let (mut next_seq, mut records) = (bundle.first_seq, 0u64);
    for (index, (body, compressed)) in bodies.iter().enumerate() {
        let number = index + 1;
        let batch_limits = Limits {
            max_decompressed_bytes: limits.max_decompressed_bytes.min(budget),
            ..limits
        };
        let (batch, size) = decode_carried_batch(body, *compressed, batch_limits)
            .map_err(|p| disagree(format!("batch {number}: {}", p.detail)))?;
        budget = budget.saturating_sub(size);
        if batch.library != bundle.library || batch.pc != bundle.pc {
            return Err(disagree(format!(
                "batch {number} is of {}/{}, the header says {}/{}",
                batch.library, batch.pc, bundle.library, bundle.pc
            )));
        }
        if batch.epoch != bundle.epoch {
            return Err(disagree(format!(
                "batch {number} is of epoch {}, the header says {}",
                batch.epoch, bundle.epoch
            )));
        }
        // A batch of held-back records (kinds an older server did not take) comes
        // first: its range lies at or below what the server held when the bundle was
        // made, so it is no part of the header's range.
        if records == 0 && next_seq == bundle.first_seq && batch.last_seq < bundle.first_seq {
            records += batch.len() as u64;
            continue;
        }
        if batch.first_seq != next_seq || batch.last_seq < batch.first_seq {
            return Err(disagree(format!(
                "batch {number} covers seq {}–{}, expected a range from seq {next_seq}",
                batch.first_seq, batch.last_seq
            )));
        }
        next_seq = batch.last_seq.saturating_add(1);
        records += batch.len() as u64;
    }
    if next_seq != bundle.last_seq.saturating_add(1) {
        return Err(disagree(format!(
            "the batches end at seq {}, the header says {}",
            next_seq.saturating_sub(1),
            bundle.last_seq
        )));
    }
    if records != bundle.records {
        return Err(disagree(format!(
            "the batches hold {records} records, the header says {}",
            bundle.records
        )));
    }
    Ok(())
}
