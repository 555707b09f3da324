//! Turns errors into a message in the user's language and an exit code scripts can
//! branch on.

use jejak_agent::config::ConfigError;
use jejak_agent::store::StoreError;
use jejak_domain::{DomainError, Lang, LibraryDetailsError};

/// Invalid input: a value that is not allowed, a bad configuration key.
pub const EXIT_INVALID_INPUT: u8 = 2;
/// The command needs an open session and there is none.
pub const EXIT_NO_OPEN_SESSION: u8 = 3;
/// Anything else: the store cannot be written, a file cannot be read.
pub const EXIT_FAILURE: u8 = 1;

/// A message for the person at the keyboard, and the exit code.
pub fn explain(err: &anyhow::Error, lang: Lang) -> (String, u8) {
    if let Some(e) = err.downcast_ref::<DomainError>() {
        return (e.message(lang), EXIT_INVALID_INPUT);
    }
    if let Some(e) = err.downcast_ref::<LibraryDetailsError>() {
        return (e.message(lang), EXIT_INVALID_INPUT);
    }
    if let Some(e) = err.downcast_ref::<ConfigError>() {
        return (e.message(lang), EXIT_INVALID_INPUT);
    }
    if let Some(e) = err.downcast_ref::<StoreError>() {
        let code = match e {
            StoreError::NoOpenSession => EXIT_NO_OPEN_SESSION,
            StoreError::Invalid(_)
            | StoreError::NoSuchActivity { .. }
            | StoreError::AmbiguousActivity { .. } => EXIT_INVALID_INPUT,
            _ => EXIT_FAILURE,
        };
        return (e.message(lang), code);
    }
    if let Some(e) = err.downcast_ref::<UsageError>() {
        return (e.message(lang), e.code);
    }
    if let Some(SilentExit(code)) = err.downcast_ref::<SilentExit>() {
        return (String::new(), *code);
    }
    (format!("{err:#}"), EXIT_FAILURE)
}

/// What `-v` adds below the message: the technical detail behind it (the underlying
/// error's own words), when there is any.
pub fn detail(err: &anyhow::Error) -> Option<String> {
    if let Some(e) = err.downcast_ref::<UsageError>() {
        return e.detail.clone();
    }
    // Errors without a sentence of their own already show their whole chain.
    None
}

/// A command that cannot do its job, with what to do in both languages and the exit
/// code (by default "invalid input"). Its `Display` is the English text (what a log line
/// or a parser's error shows); people get [`UsageError::message`] in their language.
#[derive(Debug, thiserror::Error)]
#[error("{en}")]
pub struct UsageError {
    pub id: String,
    pub en: String,
    pub code: u8,
    /// The technical detail (an OS error, a server's answer) shown only with `-v`.
    pub detail: Option<String>,
}

/// An outcome already reported on stdout that still needs its own exit code (such as
/// "nothing to send").
#[derive(Debug, thiserror::Error)]
#[error("exit {0}")]
pub struct SilentExit(pub u8);

impl UsageError {
    pub fn new(id: impl Into<String>, en: impl Into<String>) -> Self {
        UsageError {
            id: id.into(),
            en: en.into(),
            code: EXIT_INVALID_INPUT,
            detail: None,
        }
    }

    /// Keeps `detail` for `-v`.
    pub fn with_detail(mut self, detail: impl std::fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    pub fn exit_code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    pub fn message(&self, lang: Lang) -> String {
        lang.pick(&self.id, &self.en).to_string()
    }
}

/// A file the user named could not be read or written: what went wrong in the user's
/// words and what to do, the OS's own error kept for `-v`. A file that is not there is
/// invalid input (exit 2); anything else a failure (exit 1).
pub fn file_error(path: &std::path::Path, writing: bool, e: std::io::Error) -> UsageError {
    use std::io::ErrorKind;
    let shown = path.display();
    let (id, en, code) = match (e.kind(), writing) {
        (ErrorKind::NotFound, false) => (
            format!("berkas {shown} tidak ada; periksa nama dan foldernya"),
            format!("{shown} does not exist; check its name and folder"),
            EXIT_INVALID_INPUT,
        ),
        (ErrorKind::NotFound, true) => (
            format!("folder untuk {shown} tidak ada; buat foldernya dulu atau pilih tempat lain"),
            format!(
                "the folder for {shown} does not exist; create it first or choose another place"
            ),
            EXIT_INVALID_INPUT,
        ),
        (ErrorKind::PermissionDenied, false) => (
            format!(
                "{shown} tidak boleh dibaca oleh pengguna ini; periksa izinnya, atau jalankan sebagai pemiliknya"
            ),
            format!("this user may not read {shown}; check its permissions, or run as its owner"),
            EXIT_FAILURE,
        ),
        (ErrorKind::PermissionDenied, true) => (
            format!(
                "{shown} tidak boleh ditulis oleh pengguna ini; pilih folder lain atau periksa izinnya"
            ),
            format!(
                "this user may not write {shown}; choose another folder or check its permissions"
            ),
            EXIT_FAILURE,
        ),
        (ErrorKind::StorageFull, _) => (
            format!("disk penuh saat menulis {shown}; kosongkan ruang lalu coba lagi"),
            format!("the disk is full writing {shown}; free some space and try again"),
            EXIT_FAILURE,
        ),
        (_, false) => (
            format!("{shown} tidak dapat dibaca"),
            format!("{shown} cannot be read"),
            EXIT_FAILURE,
        ),
        (_, true) => (
            format!("{shown} tidak dapat ditulis"),
            format!("{shown} cannot be written"),
            EXIT_FAILURE,
        ),
    };
    UsageError::new(id, en).exit_code(code).with_detail(e)
}
