//! The storage boundary of the district server: the [`ServerStore`] trait, the values it
//! takes and returns, its errors, and the tokens it issues.
//!
//! The trait is a real boundary: the embedded SQLite implementation
//! ([`crate::SqliteStore`]) is the default, and the PostgreSQL one
//! ([`crate::PostgresStore`]) serves districts and provinces that outgrow one machine.
//! Everything a backend must guarantee is said here, so that both behave the same to the
//! HTTP layer, the USB import and the tests (`tests/storage.rs` runs one suite on both).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jejak_domain::{
    BatchAck, BatchShapeError, EndReason, LibraryCode, LibraryDetails, LibraryDetailsEdit,
    PatronProfile, PcCode, PcEvent, PcEventKind, Session, TimeQuality, WireBatch, Zone,
};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use jejak_report::LostRange;

/// The server's clock. Injected so that tests can replay a batch "weeks later" and the
/// demo can run a simulated month; production uses [`system_clock`].
pub type ServerClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The real clock.
pub fn system_clock() -> ServerClock {
    Arc::new(Utc::now)
}

/// Every device token starts with this, so a token pasted in the wrong place is
/// recognisable and a staff token is never mistaken for a device token.
pub const DEVICE_TOKEN_PREFIX: &str = "jejak_dev_";
/// Every staff token starts with this.
pub const STAFF_TOKEN_PREFIX: &str = "jejak_staff_";

/// The SHA-256 of a token, which is all the server keeps of it. It is also the key of a
/// USB bundle's HMAC (`jejak_sync::bundle::device_key` computes the same from the
/// token), which is checked only for a PC that has not registered its signing key yet.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// A new random secret: the prefix and 32 bytes from the operating system's CSPRNG
/// (through `rand`'s thread RNG, reseeded from it), as 64 hex digits.
fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

macro_rules! token_type {
    ($(#[$meta:meta])* $name:ident, $prefix:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Makes a new random token.
            pub(crate) fn generate() -> Self {
                $name(new_secret($prefix))
            }

            /// The secret itself, to show once to the person enrolling.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// What the server stores instead of the secret.
            pub fn hash(&self) -> [u8; 32] {
                token_hash(&self.0)
            }
        }

        // A token must never reach a log by accident: `Debug` shows only its kind.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({}…)"), $prefix)
            }
        }
    };
}

token_type!(
    /// A device's bearer token (`jejak_dev_…`): it may write batches of its own library
    /// and PC only. Shown once at enrollment; the server keeps only its hash.
    DeviceToken,
    DEVICE_TOKEN_PREFIX
);
token_type!(
    /// A district staff member's bearer token (`jejak_staff_…`): it reads reports and
    /// can never write batches.
    StaffToken,
    STAFF_TOKEN_PREFIX
);

/// The store's number for an enrolled PC. Records carry it instead of the library and
/// PC codes (a small integer costs a byte or two per record on disk). It survives a
/// token's revocation and re-enrollment, so a re-tokened PC keeps its history and its
/// held seqs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DeviceId(pub i64);

/// An authenticated device: what the token says, never what a payload claims.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceRef {
    /// The store's number for the PC.
    pub id: DeviceId,
    /// The library the token was issued for.
    pub library: LibraryCode,
    /// The PC the token was issued for.
    pub pc: PcCode,
}

impl fmt::Display for DeviceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.library, self.pc)
    }
}

/// Who a bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A village PC: it writes its own batches.
    Device {
        /// The library the token was issued for.
        library: LibraryCode,
        /// The PC the token was issued for.
        pc: PcCode,
        /// The store's number for that PC.
        device_id: DeviceId,
    },
    /// A district staff member: read-only.
    Staff {
        /// The name the token was issued to.
        name: String,
    },
}

impl Principal {
    /// The device, when the token is a device's.
    pub fn device(&self) -> Option<DeviceRef> {
        match self {
            Principal::Device {
                library,
                pc,
                device_id,
            } => Some(DeviceRef {
                id: *device_id,
                library: library.clone(),
                pc: pc.clone(),
            }),
            Principal::Staff { .. } => None,
        }
    }
}

/// How a batch reached the server. It decides whether the batch's send time can stand
/// in for a clock measurement when no anchor dates the PC's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Over HTTP: the batch's `sent` instant was read moments before the request left,
    /// so the arrival time minus the PC's send time estimates the PC clock's offset
    /// (plus the one-way transit time).
    Online,
    /// From a USB bundle carried to the district office: days may separate the send
    /// time from the import, so it says nothing about the PC's clock.
    Carried,
}

/// A library as listed for staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibraryInfo {
    /// The library's code.
    pub code: LibraryCode,
    /// Its name as reports print it.
    pub name: String,
    /// The zone its reports are written in.
    pub timezone: Zone,
    /// How many of its PCs hold an active token.
    pub active_devices: u32,
    /// When it was added, Unix ms.
    pub created_at_ms: i64,
    /// Its identity and signatories (NPP, desa, kecamatan, …), as far as they were set.
    pub details: LibraryDetails,
}

/// An enrolled PC as listed for staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// The store's number for the PC.
    pub device_id: DeviceId,
    /// Its library.
    pub library: LibraryCode,
    /// Its code.
    pub pc: PcCode,
    /// Whether it holds an active (unrevoked) token.
    pub active: bool,
    /// When it was first enrolled, Unix ms.
    pub enrolled_at_ms: i64,
    /// When its last batch arrived, Unix ms; `None` before the first.
    pub last_batch_at_ms: Option<i64>,
    /// Sessions stored for it.
    pub sessions: u64,
}

/// What authenticates a device's USB bundles.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKeys {
    /// The SHA-256 of its active token: the key of a bundle's HMAC, which is all that
    /// can be checked until the PC registers a public key.
    pub token_hash: [u8; 32],
    /// The Ed25519 public key the PC registered under that token, once it has.
    pub public_key: Option<[u8; 32]>,
}

impl fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token's hash is what a bundle's HMAC is keyed with: never in a log.
        f.debug_struct("DeviceKeys")
            .field("public_key", &self.public_key.map(hex::encode))
            .finish_non_exhaustive()
    }
}

impl DeviceKeys {
    /// The keys from a token row as both backends store them (32-byte blobs).
    pub(crate) fn from_stored(
        token_hash: &[u8],
        public_key: Option<&[u8]>,
    ) -> Result<DeviceKeys, StoreError> {
        let bytes32 = |bytes: &[u8], what: &str| {
            <[u8; 32]>::try_from(bytes)
                .map_err(|_| StoreError::Inconsistent(format!("a stored {what} is not 32 bytes")))
        };
        Ok(DeviceKeys {
            token_hash: bytes32(token_hash, "token hash")?,
            public_key: public_key.map(|k| bytes32(k, "public key")).transpose()?,
        })
    }
}

/// What registering `new` means for a token row found as `stored` (`None`: no active
/// device token; `Some(None)`: no key yet): the outcome, and whether to write the key.
pub(crate) fn key_registration(
    stored: Option<Option<&[u8]>>,
    new: &[u8; 32],
) -> (KeyRegistration, bool) {
    match stored {
        None => (KeyRegistration::NoActiveToken, false),
        Some(None) => (KeyRegistration::Registered, true),
        Some(Some(key)) if key == new.as_slice() => (KeyRegistration::AlreadyRegistered, false),
        Some(Some(_)) => (KeyRegistration::OtherKeyRegistered, false),
    }
}

/// What [`ServerStore::register_device_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRegistration {
    /// The key is now the device's.
    Registered,
    /// The same key was registered already: nothing changed.
    AlreadyRegistered,
    /// Another key is registered under this token: nothing changed.
    OtherKeyRegistered,
    /// The token is not an active device token (revoked in between): nothing changed.
    NoActiveToken,
}

/// What the server holds for one epoch of a device's change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EpochState {
    /// The device store's epoch (it changes when a damaged store is replaced).
    pub epoch: Uuid,
    /// The highest seq up to which the server holds every change of this epoch.
    pub held_seq: u64,
    /// When a batch of this epoch last arrived, Unix ms.
    pub last_batch_at_ms: Option<i64>,
    /// When its first batch arrived, Unix ms.
    pub opened_at_ms: Option<i64>,
}

/// What the server holds for one device (`GET /api/v1/devices/me`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeviceState {
    /// The library of the token.
    pub library: LibraryCode,
    /// The PC of the token.
    pub pc: PcCode,
    /// Every epoch the server has seen from this PC, oldest first.
    pub epochs: Vec<EpochState>,
    /// When the last batch arrived, Unix ms.
    pub last_batch_at_ms: Option<i64>,
    /// Sessions stored (each counted once, whatever its revisions).
    pub sessions: u64,
    /// pc events stored.
    pub events: u64,
    /// Distinct records refused (invalid or conflicting), kept for review.
    pub rejected: u64,
    /// The PC clock's latest known offset: server time minus PC wall time, ms.
    pub clock_offset_ms: Option<i64>,
    /// Its uncertainty (half the round trip of the measurement), ms; `None` when it was
    /// estimated from a send time alone.
    pub clock_uncertainty_ms: Option<u64>,
    /// When that offset was established, Unix ms (server clock).
    pub clock_offset_at_ms: Option<i64>,
    /// Ranges of the change log the PC could not send again after a restore.
    pub lost: Vec<LostRange>,
}

/// A session as the server holds it: what the PC sent at the highest revision (less its
/// run and monotonic start, which only served to date it) and how the server dated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The session's id.
    pub id: Uuid,
    /// The highest revision received.
    pub revision: u32,
    /// The start by the PC's wall clock, exactly as sent.
    pub raw_start: DateTime<Utc>,
    /// The start by the server's clock, in whole seconds.
    pub corrected_start: DateTime<Utc>,
    /// The end by the server's clock (`None` while open).
    pub corrected_end: Option<DateTime<Utc>>,
    /// Seconds of use (monotonic clock).
    pub duration_secs: u64,
    /// How it ended (`None` while open).
    pub end_reason: Option<EndReason>,
    /// Who used the PC, in categories (purposes in the domain's order).
    pub patron: PatronProfile,
    /// Kibibytes received and sent, as the wire carries them.
    pub rx_kib: u64,
    /// Kibibytes sent.
    pub tx_kib: u64,
    /// Seconds during which the link was up.
    pub online_secs: u64,
    /// How far the PC itself trusted its clock.
    pub client_time_quality: TimeQuality,
    /// How far the corrected times can be trusted.
    pub time_quality: TimeQuality,
}

impl StoredSession {
    /// Whether this holds `session` as the PC made it: every field the server keeps is
    /// equal (byte counters compared in whole KiB rounded up, purposes as a set).
    pub fn matches(&self, session: &Session) -> bool {
        let mut purposes = session.patron.purposes.clone();
        purposes.sort();
        let mut stored = self.patron.purposes.clone();
        stored.sort();
        self.id == session.id
            && self.revision == session.revision
            && self.raw_start == session.started_at
            && self.duration_secs == session.duration_secs
            && self.end_reason == session.end_reason
            && purposes == stored
            && self.patron.user_kind == session.patron.user_kind
            && self.patron.gender == session.patron.gender
            && self.patron.age_group == session.patron.age_group
            && self.patron.group_size == session.patron.group_size
            && self.patron.patron_key == session.patron.patron_key
            && self.rx_kib == session.bytes_rx.div_ceil(1024)
            && self.tx_kib == session.bytes_tx.div_ceil(1024)
            && self.online_secs == session.online_secs
            && self.client_time_quality == session.time_quality
    }
}

/// A pc event as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event's id.
    pub id: Uuid,
    /// What happened.
    pub kind: PcEventKind,
    /// When, by the PC's wall clock, exactly as sent.
    pub raw_at: DateTime<Utc>,
    /// When, by the server's clock, in whole seconds.
    pub corrected_at: DateTime<Utc>,
    /// For clock jumps: how far the wall clock moved beyond the monotonic clock, ms.
    pub clock_delta_ms: Option<i64>,
    /// How far the corrected time can be trusted.
    pub time_quality: TimeQuality,
}

impl StoredEvent {
    /// Whether this holds `event` as the PC made it.
    pub fn matches(&self, event: &PcEvent) -> bool {
        self.id == event.id
            && self.kind == event.kind
            && self.raw_at == event.at
            && self.clock_delta_ms == event.clock_delta_ms
    }
}

/// What `check-rollups` found: the stored rollups against a recount from the raw rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollupCheck {
    /// Rollup rows the recount produced.
    pub rows_checked: u64,
    /// Rows that differ (or exist on one side only).
    pub differences: u64,
    /// The first differences, described for people.
    pub described: Vec<String>,
}

impl RollupCheck {
    /// Whether the rollups equal the recount.
    pub fn is_consistent(&self) -> bool {
        self.differences == 0
    }
}

/// What [`ServerStore::prune_raw`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PruneOutcome {
    /// Raw sessions removed.
    pub sessions: u64,
    /// pc events removed.
    pub events: u64,
    /// The first month whose raw records are kept.
    pub kept_from: chrono::NaiveDate,
}

/// A failure of the storage itself (not of the request): the caller answers 5xx and the
/// client retries the same batch later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The SQLite database answered with an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// The PostgreSQL server answered with an error (or the connection failed).
    #[error("PostgreSQL error: {}", postgres_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had (pool, URL or configuration).
    #[error("PostgreSQL is not available: {0}")]
    PostgresPool(String),
    /// The database file or its folder cannot be used.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The path concerned.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The thread that owns the write connection has stopped (it panicked or the store
    /// is shutting down): nothing more can be written.
    #[error("the store's writer has stopped")]
    Stopped,
    /// The transaction that held this work could not be committed (the disk is full, or
    /// failing): nothing of it was written.
    #[error("the transaction could not be committed: {0}")]
    Commit(String),
    /// A bug in the server (a panic inside a store job, caught); the job's writes were
    /// rolled back.
    #[error("internal error: {0}")]
    Internal(String),
    /// A backup was refused or failed (nothing was written under its name).
    #[error("backup: {0}")]
    Backup(#[from] crate::BackupError),
    /// The backend cannot do this (yet).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Stored data contradicts itself (for example an unknown enum code in a row).
    #[error("stored data is inconsistent: {0}")]
    Inconsistent(String),
    /// The disk that holds the database has (almost) no room left: writes would fail.
    #[error("the disk of {path} is full: {free_bytes} bytes free")]
    DiskFull {
        /// The database file.
        path: String,
        /// Bytes still free for the server's user.
        free_bytes: u64,
    },
    /// The database did not answer in time.
    #[error("{0}")]
    Timeout(String),
}

/// What a PostgreSQL error says, with the server's own message and SQLSTATE: the
/// driver's `Display` is only "db error", which told an operator nothing (not even "the
/// database system is starting up").
pub(crate) fn postgres_detail(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

/// Why an enrollment command was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// `add_library` for a code that exists.
    #[error("library '{0}' already exists")]
    LibraryExists(LibraryCode),
    /// A device of a library that was never added.
    #[error("library '{0}' is not known; add it first")]
    UnknownLibrary(LibraryCode),
    /// `add_device` for a PC that still holds an active token.
    #[error("PC '{library}/{pc}' is already enrolled with an active token; revoke it first")]
    DeviceActive {
        /// The library.
        library: LibraryCode,
        /// The PC.
        pc: PcCode,
    },
    /// `revoke_device` for a PC that was never enrolled.
    #[error("PC '{library}/{pc}' is not enrolled")]
    UnknownDevice {
        /// The library.
        library: LibraryCode,
        /// The PC.
        pc: PcCode,
    },
    /// `revoke_device` for a PC whose token is already revoked.
    #[error("the token of PC '{library}/{pc}' is already revoked")]
    AlreadyRevoked {
        /// The library.
        library: LibraryCode,
        /// The PC.
        pc: PcCode,
    },
    /// `add_staff` for a name that holds an active token.
    #[error("staff member '{0}' already has an active token")]
    StaffExists(String),
    /// `revoke_staff` for a name without an active token.
    #[error("staff member '{0}' has no active token")]
    UnknownStaff(String),
    /// A library or staff name that is empty or too long.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No such token (or not a token at all).
    #[error("unknown token")]
    Unknown,
    /// The token was valid and has been revoked: the PC keeps its data and needs a new one.
    #[error("the token has been revoked")]
    Revoked,
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a batch was refused as a whole. Nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The document cannot be read as a batch (422).
    #[error("the batch cannot be read: {0}")]
    Shape(#[from] BatchShapeError),
    /// A number the store cannot hold (for example a seq beyond 2^63) (422).
    #[error("the batch cannot be read: {0}")]
    OutOfRange(String),
    /// The batch names another library or PC than its token (403).
    #[error("the batch names {claimed_library}/{claimed_pc} but the token belongs to {device}")]
    WrongDevice {
        /// The device of the token.
        device: String,
        /// What the payload claimed.
        claimed_library: LibraryCode,
        /// What the payload claimed.
        claimed_pc: PcCode,
    },
    /// The batch starts past what the server holds (409): resend from `expected_seq`.
    #[error("the batch starts at seq {first_seq} but the server holds up to {}: send from seq {expected_seq}", expected_seq - 1)]
    SeqGap {
        /// The seq the server expects next in this epoch.
        expected_seq: u64,
        /// Where the refused batch started.
        first_seq: u64,
    },
    /// The device is not (or no longer) in the store.
    #[error("the device is not enrolled")]
    UnknownDevice,
    /// The batch opens a new epoch, and the device opened too many in a day (429).
    #[error(
        "this PC opened {opened} new change logs (epochs) in the last day; another is taken in {retry_after_s} s"
    )]
    TooManyEpochs {
        /// New epochs opened within the window.
        opened: usize,
        /// Seconds until one more is taken.
        retry_after_s: u64,
    },
    /// The storage failed (5xx; the client retries).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the district server keeps what it knows. Every method is one unit of work: a
/// write returns only after its transaction has committed (and then it is durable), a
/// read sees every write that returned before it started.
///
/// The trait is object-safe (through `async_trait`), so the HTTP layer holds an
/// `Arc<dyn ServerStore>` and the backend is chosen at run time from configuration.
#[async_trait]
pub trait ServerStore: Send + Sync + fmt::Debug + 'static {
    /// Adds a village library without details. Its code must be new.
    async fn add_library(
        &self,
        code: &LibraryCode,
        name: &str,
        timezone: Zone,
    ) -> Result<(), EnrollError> {
        self.add_library_with_details(code, name, timezone, &LibraryDetails::default())
            .await
    }

    /// Adds a village library with its details, in one transaction. Its code must be
    /// new; the details were validated when they were made ([`LibraryDetailsEdit`]).
    async fn add_library_with_details(
        &self,
        code: &LibraryCode,
        name: &str,
        timezone: Zone,
        details: &LibraryDetails,
    ) -> Result<(), EnrollError>;

    /// Changes a library's name (when `name` is given) and the details `edit` names,
    /// leaving the rest as it was, in one transaction, and returns the library as it is
    /// then. An unknown library is [`EnrollError::UnknownLibrary`]. The zone is not
    /// editable: the local days of the stored rollups were counted in it.
    async fn edit_library(
        &self,
        code: &LibraryCode,
        name: Option<&str>,
        edit: &LibraryDetailsEdit,
    ) -> Result<LibraryInfo, EnrollError>;

    /// Enrolls a PC of a known library and returns its token (shown once; only its hash
    /// is stored). A PC whose token was revoked gets a new token and keeps its history;
    /// a PC with an active token is refused.
    async fn add_device(
        &self,
        library: &LibraryCode,
        pc: &PcCode,
    ) -> Result<DeviceToken, EnrollError>;

    /// Revokes a PC's active token. Its data stays; its batches are refused (401
    /// `token-revoked`) until it is enrolled again.
    async fn revoke_device(&self, library: &LibraryCode, pc: &PcCode) -> Result<(), EnrollError>;

    /// Issues a read-only staff token.
    async fn add_staff(&self, name: &str) -> Result<StaffToken, EnrollError>;

    /// Revokes a staff member's active token.
    async fn revoke_staff(&self, name: &str) -> Result<(), EnrollError>;

    /// Who a bearer token belongs to; unknown and revoked tokens are told apart.
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError>;

    /// Whether the staff token whose SHA-256 ([`token_hash`]) this is is known and not
    /// revoked. The dashboard asks on every page, so that revoking a staff token (from
    /// the CLI, another process) ends the sessions it signed in, without the dashboard
    /// keeping the token itself.
    async fn staff_token_active(&self, hash: &[u8; 32]) -> Result<bool, StoreError>;

    /// Every library, by code.
    async fn libraries(&self) -> Result<Vec<LibraryInfo>, StoreError>;

    /// Every enrolled PC, by library and code.
    async fn devices(&self) -> Result<Vec<DeviceInfo>, StoreError>;

    /// An enrolled PC with an active token, by its codes: the USB import names the
    /// device from the bundle and then checks the bundle with
    /// [`ServerStore::device_keys`].
    async fn find_device(
        &self,
        library: &LibraryCode,
        pc: &PcCode,
    ) -> Result<Option<DeviceRef>, StoreError>;

    /// What the device's USB bundles are checked with: the public key it registered
    /// under its active token, if it has, and that token's SHA-256. `None` when it has
    /// no active token.
    async fn device_keys(&self, device: &DeviceRef) -> Result<Option<DeviceKeys>, StoreError>;

    /// Registers `public_key` (Ed25519, checked by the caller) as the signing key of
    /// the device whose active token has the SHA-256 `token_hash`. A token holds one key
    /// for its life: the same key again changes nothing, another one is refused (a new
    /// key comes with a new token, that is a new enrollment).
    async fn register_device_key(
        &self,
        token_hash: &[u8; 32],
        public_key: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<KeyRegistration, StoreError>;

    /// Stores one batch of `device` in one transaction and answers only after the
    /// commit: the records upserted by id and revision, the held seq of the batch's
    /// epoch advanced, the batch recorded. Sending the same batch again, at once,
    /// concurrently or months later, changes nothing and reports duplicates.
    /// `received_at` is the server time when the request arrived (t2); the answer's
    /// `sent_at_ms` is the store's time after the commit (the HTTP layer refreshes it
    /// just before replying).
    ///
    /// The flow is the same for every backend ([`crate::ingest`]): a backend provides
    /// only [`ServerStore::store_batch`].
    async fn ingest(
        &self,
        device: &DeviceRef,
        batch: WireBatch,
        received_at: DateTime<Utc>,
        delivery: Delivery,
    ) -> Result<BatchAck, IngestError> {
        crate::ingest::ingest(self, device, batch, received_at, delivery).await
    }

    /// Stores one batch that [`ServerStore::ingest`] prepared (identity checked,
    /// decoded, validated, converted), in one transaction, answering after the commit:
    /// the gap check and a new epoch's allowance against the stored held seq, the lost
    /// ranges, the anchors, the clock offset, the dating of the batch's runs with the
    /// PC's kept runs (and the stored records whose dating moved, dated again), the
    /// records by id and revision with their rollups, the held seq and the batch's row.
    /// The decisions are `crate::ingest`'s and `crate::dating`'s; a backend looks up and
    /// writes. `received_ms` is the arrival time.
    async fn store_batch(
        &self,
        device: &DeviceRef,
        batch: crate::ingest::PreparedBatch,
        received_ms: i64,
    ) -> Result<crate::ingest::IngestOutcome, IngestError>;

    /// The store's clock (injected: tests and the demo replay time).
    fn now(&self) -> DateTime<Utc>;

    /// Every session stored for a device, by id. Meant for checks (the demo's "the
    /// server holds exactly what the PCs made", tests, support), not for reports: it
    /// reads the device's whole history.
    async fn sessions(&self, device: &DeviceRef) -> Result<Vec<StoredSession>, StoreError>;

    /// The sessions that started (by the server's clock) in `[from, to)`, with their
    /// library's and PC's codes: one pass over the raw sessions, for the detail export.
    async fn sessions_started_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(LibraryCode, PcCode, StoredSession)>, StoreError>;

    /// Every pc event stored for a device, by id (for checks, like `sessions`).
    async fn events(&self, device: &DeviceRef) -> Result<Vec<StoredEvent>, StoreError>;

    /// Every stored entry of the low-volume kinds (visits, member counts, activities),
    /// its newest version, with the time it is dated at (Unix s): for the detail export
    /// and checks. A district's entries are a few hundred kilobytes a year, so this reads
    /// them all.
    async fn entry_records(&self) -> Result<Vec<(jejak_domain::RecordBody, i64)>, StoreError>;

    /// What the server holds for a device.
    async fn device_state(&self, device: &DeviceRef) -> Result<DeviceState, StoreError>;

    /// The usage facts of each of `months` for reports, in the order given, read from
    /// the rollups (never row by row): per library (all, or only `library`) and PC,
    /// public use per local day, open days, unique users, uptime and last batches, the
    /// entry counters, and with [`crate::report::FactsDetail::Breakdowns`] the sessions
    /// per profile. Each month is any day of it (normally the first). See
    /// [`crate::report::facts`] for the rules. An unknown `library` gives no libraries.
    /// A period's months are read together, so that a backend can read what every
    /// month shares (the libraries and their PCs) once (the SQLite store does): a year
    /// of the IPLM sheet is one call.
    async fn months_facts(
        &self,
        months: &[chrono::NaiveDate],
        library: Option<&LibraryCode>,
        detail: crate::report::FactsDetail,
    ) -> Result<Vec<crate::report::MonthFacts>, StoreError>;

    /// One month's facts ([`ServerStore::months_facts`]).
    async fn month_facts(
        &self,
        month: chrono::NaiveDate,
        library: Option<&LibraryCode>,
        detail: crate::report::FactsDetail,
    ) -> Result<crate::report::MonthFacts, StoreError> {
        self.months_facts(&[month], library, detail)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Internal("no facts for the month asked".into()))
    }

    /// Per PC, how many sessions are still open that started before `started_before`
    /// (the operations view lists sessions open for more than 12 hours).
    async fn long_open_sessions(
        &self,
        started_before: DateTime<Utc>,
    ) -> Result<Vec<(LibraryCode, PcCode, u64)>, StoreError>;

    /// Recounts the rollups from the raw rows and compares them with the stored ones
    /// (`jejak server check-rollups`). Reads everything: for checks, not for requests.
    async fn check_rollups(&self) -> Result<RollupCheck, StoreError>;

    /// Replaces the stored rollups with a recount from the raw rows, in one transaction
    /// (`jejak server check-rollups --repair`).
    async fn rebuild_rollups(&self) -> Result<(), StoreError>;

    /// The latest month whose rollups hold any session, or `None` before the first: the
    /// month the dashboard opens on when none is asked for (the current month is all
    /// zeros in its first days). A read of the breakdown rollups' first key column.
    async fn latest_session_month(&self) -> Result<Option<chrono::NaiveDate>, StoreError>;

    /// The district's letterhead (kop) for printed reports, when one was set.
    async fn letterhead(&self) -> Result<Option<crate::report::Letterhead>, StoreError>;

    /// Sets (or, with `None`, removes) the district's letterhead.
    async fn set_letterhead(
        &self,
        letterhead: Option<crate::report::Letterhead>,
    ) -> Result<(), StoreError>;

    /// Removes the raw sessions that ended, and the pc events that happened, before
    /// `month` began (in each library's zone), keeping the rollups: the reports of those
    /// months stay as they were. Undated records (whose month cannot be told) stay, as
    /// they may be dated yet. From then on, records from before `month` that the store
    /// does not hold are refused (`beyond-retention`), and `check_rollups` compares the
    /// months from `month` on (and the undated ones). A backend that cannot prune says so with
    /// [`StoreError::Unsupported`].
    async fn prune_raw(&self, month: chrono::NaiveDate) -> Result<PruneOutcome, StoreError> {
        let _ = month;
        Err(StoreError::Unsupported(
            "this storage backend does not prune raw records yet".into(),
        ))
    }

    /// Whether the store can write now, found out rather than remembered: a write that
    /// committed moments ago says so, else a tiny write is committed as a batch's would
    /// be (the embedded store also needs room left on its disk). `/healthz` asks this
    /// (at most every few seconds), so a store that recovers by itself — a database
    /// back after an outage, a disk with room again — is seen as soon as it does.
    async fn check_health(&self) -> Result<(), StoreError>;

    /// Writes a consistent copy of the whole store to the file `to` while ingest goes
    /// on (`jejak server backup`, `run --backup-dir`). `to` must not exist. A backend
    /// whose database is backed up by its own tools (PostgreSQL: `pg_dump`, base
    /// backups and WAL archiving) says so with [`StoreError::Unsupported`].
    async fn backup(&self, to: &std::path::Path) -> Result<crate::BackupInfo, StoreError> {
        let _ = to;
        Err(StoreError::Unsupported(
            "this backend is backed up with its own tools (PostgreSQL: pg_dump or a base backup with WAL archiving)".into(),
        ))
    }
}

/// What a store remembers of its latest writes, so that a health check during steady
/// ingest costs nothing and one after a failure tries again.
#[derive(Debug)]
pub(crate) struct WriteMemory {
    origin: std::time::Instant,
    /// Milliseconds since `origin` of the last committed write (0: none yet).
    last_ok_ms: std::sync::atomic::AtomicU64,
    /// … and of the last write that failed for the store's own reasons.
    last_failed_ms: std::sync::atomic::AtomicU64,
}

/// A write committed this recently, with no failure since, says the store can write.
const RECENT_WRITE: std::time::Duration = std::time::Duration::from_secs(10);

impl WriteMemory {
    pub(crate) fn new() -> WriteMemory {
        WriteMemory {
            origin: std::time::Instant::now(),
            last_ok_ms: std::sync::atomic::AtomicU64::new(0),
            last_failed_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "never".
        u64::try_from(self.origin.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Notes the outcome of a write.
    pub(crate) fn note(&self, committed: bool) {
        let slot = if committed {
            &self.last_ok_ms
        } else {
            &self.last_failed_ms
        };
        slot.store(self.now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a write committed within [`RECENT_WRITE`] and none failed since.
    pub(crate) fn wrote_recently(&self) -> bool {
        let ok = self.last_ok_ms.load(std::sync::atomic::Ordering::Relaxed);
        let failed = self
            .last_failed_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        ok != 0 && ok > failed && self.now_ms() - ok <= RECENT_WRITE.as_millis() as u64
    }
}

/// The settings key the health check writes (the time of the check), on both backends.
pub(crate) const HEALTH_PROBE: &str = "health_probe";
