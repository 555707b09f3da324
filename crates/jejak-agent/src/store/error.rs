use std::path::PathBuf;

use jejak_domain::{DomainError, Lang};

/// What can go wrong with the local store. Callers branch on `DiskFull`,
/// `NoOpenSession` and `Busy`; the rest are reported as they are.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}", self.message(Lang::En))]
    DiskFull { path: PathBuf },
    #[error("{}", self.message(Lang::En))]
    NoOpenSession,
    /// `jejak visit undo` with no visit left to take back.
    #[error("{}", self.message(Lang::En))]
    NothingToUndo,
    /// `jejak activity edit` with an id that names no activity of this PC.
    #[error("{}", self.message(Lang::En))]
    NoSuchActivity { given: String },
    /// A short id that names more than one activity.
    #[error("{}", self.message(Lang::En))]
    AmbiguousActivity { given: String },
    #[error("{}", self.message(Lang::En))]
    Busy { path: PathBuf },
    /// Another process moved the store aside (it was damaged): open it again.
    #[error("the store {path} was replaced by another process; open it again")]
    Replaced { path: PathBuf },
    #[error("cannot move the corrupt store {path} aside: {source}")]
    Quarantine {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store migration failed: {}", short(&.0.to_string()))]
    Migration(#[from] rusqlite_migration::Error),
    #[error("invalid record: {}", .0.message(Lang::En))]
    Invalid(#[from] DomainError),
    #[error("a stored record cannot be read: {0}")]
    Corrupt(String),
    #[error("SQLite: {0}")]
    Sqlite(rusqlite::Error),
}

impl StoreError {
    /// A message for the librarian, in their language, that says what to do.
    pub fn message(&self, lang: Lang) -> String {
        match self {
            StoreError::DiskFull { path } => match lang {
                Lang::Id => format!(
                    "disk penuh: data Jejak di {} tidak bisa disimpan. Kosongkan ruang disk (hapus berkas yang tidak perlu), lalu coba lagi. Data yang sudah tersimpan aman.",
                    path.display()
                ),
                Lang::En => format!(
                    "disk full: Jejak cannot save to {}. Free some disk space (delete files you do not need) and try again. Data already saved is safe.",
                    path.display()
                ),
            },
            StoreError::NoOpenSession => lang
                .pick(
                    "tidak ada sesi yang sedang berjalan di komputer ini; mulai sesi dengan 'jejak session start'",
                    "there is no open session on this PC; start one with 'jejak session start'",
                )
                .to_string(),
            StoreError::NothingToUndo => lang
                .pick(
                    "tidak ada kunjungan yang bisa dibatalkan: buku tamu di komputer ini belum punya kunjungan (atau semuanya sudah dibatalkan); catat dengan 'jejak visit add'",
                    "there is no visit to undo: the visitor book on this PC has none (or every one was undone already); record one with 'jejak visit add'",
                )
                .to_string(),
            StoreError::NoSuchActivity { given } => match lang {
                Lang::Id => format!(
                    "tidak ada kegiatan dengan ID '{given}' di komputer ini; lihat ID-nya dengan 'jejak activity list'"
                ),
                Lang::En => format!(
                    "there is no activity with ID '{given}' on this PC; see the IDs with 'jejak activity list'"
                ),
            },
            StoreError::AmbiguousActivity { given } => match lang {
                Lang::Id => format!(
                    "ID '{given}' cocok dengan lebih dari satu kegiatan; tulis ID yang lebih panjang dari 'jejak activity list --full-id'"
                ),
                Lang::En => format!(
                    "ID '{given}' matches more than one activity; give a longer ID from 'jejak activity list --full-id'"
                ),
            },
            StoreError::Busy { path } => match lang {
                Lang::Id => format!(
                    "basis data {} sedang dipakai proses lain terlalu lama; coba lagi sebentar lagi",
                    path.display()
                ),
                Lang::En => format!(
                    "the store {} has been busy in another process for too long; try again shortly",
                    path.display()
                ),
            },
            StoreError::Invalid(err) => err.message(lang),
            other => other.to_string(),
        }
    }

    pub(crate) fn from_sqlite(path: &std::path::Path, err: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        match err.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull {
                path: path.to_path_buf(),
            },
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => StoreError::Busy {
                path: path.to_path_buf(),
            },
            _ => StoreError::Sqlite(err),
        }
    }

    /// Whether opening the store again is the cure: it was moved aside, or it is damaged
    /// (and opening will move it aside and start afresh).
    pub fn needs_reopen(&self) -> bool {
        match self {
            StoreError::Replaced { .. } | StoreError::Corrupt(_) => true,
            StoreError::Sqlite(e) => Self::is_corruption(e),
            _ => false,
        }
    }

    /// Whether the error means the file itself is damaged (as opposed to busy or full).
    pub(crate) fn is_corruption(err: &rusqlite::Error) -> bool {
        use rusqlite::ErrorCode;
        matches!(
            err.sqlite_error_code(),
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase)
        )
    }
}

/// The first line of a long message (a migration error carries its whole SQL).
fn short(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    first.chars().take(200).collect()
}
