//! Backups of the SQLite store and restoring one.
//!
//! A backup is `VACUUM INTO` on a connection of its own: SQLite writes a consistent
//! snapshot of the database as of one read transaction into a new file, while the
//! writer goes on committing batches (WAL mode lets a reader and the writer run side by
//! side). The snapshot is written under a temporary name, flushed, and only then renamed
//! to the name asked for, so a file with that name is always a whole backup.
//!
//! A restore checks the file first (it opens as SQLite, `PRAGMA integrity_check` says
//! `ok`, it holds a Jejak server's tables, and its schema is not newer than this build),
//! refuses while anything holds the database open (a running server), moves the current
//! database aside (never deleted: it is the newest data there is, however damaged), and
//! puts a copy of the backup in its place. The server then holds less than the PCs were
//! told; each PC notices at its next sync and sends the difference again (see
//! `jejak_sync::sync_run`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// Why a backup or a restore was refused or failed. Nothing was changed in either case.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The backup's target already exists: a backup never overwrites a file.
    #[error("{0} already exists; choose another name (a backup never overwrites a file)")]
    Exists(PathBuf),
    /// The file is not an SQLite database, or SQLite finds it damaged.
    #[error("{path} is not a sound SQLite database: {detail}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// An SQLite database, but not a Jejak server's.
    #[error("{0} is not a Jejak server database (it has no devices and epochs tables)")]
    NotJejak(PathBuf),
    /// Made by a newer Jejak than this one.
    #[error(
        "{path} has schema version {found}, newer than this jejak reads ({supported}); restore it with a newer jejak"
    )]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build reads.
        supported: i64,
    },
    /// Another program (a running server) has the database open.
    #[error("{0} is in use (is the server running?); stop the server, then restore")]
    InUse(PathBuf),
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed while copying.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a backup file holds, as [`check`] found it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackupInfo {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its schema version (the migrations applied).
    pub schema_version: i64,
    /// Sessions it holds.
    pub sessions: u64,
    /// Enrolled PCs.
    pub devices: u64,
}

/// Writes a consistent copy of the database at `db` to `to` while the server may be
/// running and ingesting. `to` must not exist.
pub fn backup(db: &Path, to: &Path) -> Result<BackupInfo, BackupError> {
    if to.exists() {
        return Err(BackupError::Exists(to.to_path_buf()));
    }
    if !db.exists() {
        return Err(BackupError::Io {
            path: db.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no database here"),
        });
    }
    let partial = partial_name(to);
    let _ = std::fs::remove_file(&partial);
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let written = conn.execute("VACUUM INTO ?1", [partial.to_string_lossy().as_ref()]);
    drop(conn);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e.into());
    }
    // The snapshot is flushed before it takes the final name: a backup that a power cut
    // could leave half written is no backup.
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io(&partial))?;
    std::fs::rename(&partial, to).map_err(io(to))?;
    if let Some(folder) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::File::open(folder).and_then(|f| f.sync_all());
    }
    check(to)
}

fn partial_name(to: &Path) -> PathBuf {
    let mut name = to.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Checks a backup file: sound, a Jejak server's, not newer than this build.
pub fn check(path: &Path) -> Result<BackupInfo, BackupError> {
    let damaged = |detail: String| BackupError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let bytes = std::fs::metadata(path).map_err(io(path))?.len();
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| damaged(e.to_string()))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| damaged(e.to_string()))?;
    if integrity != "ok" {
        return Err(damaged(integrity));
    }
    let tables: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('devices', 'epochs')",
        [],
        |r| r.get(0),
    )?;
    if tables != 2 {
        return Err(BackupError::NotJejak(path.to_path_buf()));
    }
    let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = super::schema::latest_version();
    if schema_version > supported {
        return Err(BackupError::Newer {
            path: path.to_path_buf(),
            found: schema_version,
            supported,
        });
    }
    let count = |sql: &str| -> Result<u64, BackupError> {
        let n: Option<i64> = conn.query_row(sql, [], |r| r.get(0)).optional()?;
        Ok(n.unwrap_or(0).max(0) as u64)
    };
    Ok(BackupInfo {
        path: path.to_path_buf(),
        bytes,
        schema_version,
        sessions: count("SELECT COUNT(*) FROM sessions")?,
        devices: count("SELECT COUNT(*) FROM devices")?,
    })
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreOutcome {
    /// The backup restored, as checked.
    pub restored: BackupInfo,
    /// Where the database that was replaced now lies (`None` when there was none).
    pub previous_moved_to: Option<PathBuf>,
}

/// Puts the backup at `from` in place of the database at `db` (after [`check`]ing it).
/// The database that was there is moved aside to `db.before-restore-STAMP`, with its WAL.
/// Refused while another connection has `db` open.
pub fn restore(from: &Path, db: &Path, stamp: &str) -> Result<RestoreOutcome, BackupError> {
    let restored = check(from)?;
    let mut previous_moved_to = None;
    // Held until the database is moved aside: no server can open it in between.
    let lock = if db.exists() {
        Some(lock_exclusively(db)?)
    } else {
        None
    };
    let incoming = partial_name(db);
    let _ = std::fs::remove_file(&incoming);
    std::fs::copy(from, &incoming).map_err(io(&incoming))?;
    std::fs::File::open(&incoming)
        .and_then(|f| f.sync_all())
        .map_err(io(&incoming))?;
    if db.exists() {
        let aside = PathBuf::from(format!("{}.before-restore-{stamp}", db.display()));
        std::fs::rename(db, &aside).map_err(io(db))?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", db.display()));
            if side.exists() {
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                std::fs::rename(&side, &to).map_err(io(&side))?;
            }
        }
        previous_moved_to = Some(aside);
    }
    // Closed before the backup takes the name, so that nothing SQLite does on closing
    // (it looks for the WAL by name) can touch the restored file.
    drop(lock);
    std::fs::rename(&incoming, db).map_err(io(db))?;
    if let Some(folder) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::File::open(folder).and_then(|f| f.sync_all());
    }
    Ok(RestoreOutcome {
        restored,
        previous_moved_to,
    })
}

/// An exclusive lock on the database, which SQLite grants only while no other
/// connection (in WAL mode, not even an idle one) has it open.
fn lock_exclusively(db: &Path) -> Result<Connection, BackupError> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_millis(500))?;
    conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE;")?;
    match conn.execute_batch("BEGIN EXCLUSIVE") {
        Ok(()) => Ok(conn),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            Err(BackupError::InUse(db.to_path_buf()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Keeps the newest `keep` files named `jejak-*.db` in `dir` (the names sort by time)
/// and removes the others. Returns the removed files.
pub fn keep_newest(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("jejak-") && n.ends_with(".db"))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(keep.max(1));
    let removed: Vec<PathBuf> = backups.drain(..excess).collect();
    for path in &removed {
        std::fs::remove_file(path).map_err(io(path))?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jejak_db(path: &Path) {
        let mut conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
        super::super::schema::migrations()
            .to_latest(&mut conn)
            .unwrap();
    }

    #[test]
    fn a_backup_never_overwrites_and_a_restore_moves_the_old_database_aside() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("jejak.db");
        jejak_db(&db);
        let to = dir.path().join("jejak-1.db");
        let info = backup(&db, &to).unwrap();
        assert_eq!(info.schema_version, super::super::schema::latest_version());
        assert!(matches!(backup(&db, &to), Err(BackupError::Exists(_))));

        let outcome = restore(&to, &db, "stamp").unwrap();
        let aside = outcome.previous_moved_to.unwrap();
        assert!(aside.exists() && db.exists());
        assert_eq!(aside, dir.path().join("jejak.db.before-restore-stamp"));
    }

    #[test]
    fn a_restore_refuses_damaged_foreign_newer_and_open_databases() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("jejak.db");
        jejak_db(&db);
        let before = std::fs::read(&db).unwrap();

        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"not a database at all, just bytes").unwrap();
        assert!(matches!(
            restore(&junk, &db, "x"),
            Err(BackupError::Damaged { .. })
        ));

        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(matches!(
            restore(&foreign, &db, "x"),
            Err(BackupError::NotJejak(_))
        ));

        let newer = dir.path().join("newer.db");
        jejak_db(&newer);
        Connection::open(&newer)
            .unwrap()
            .execute_batch("PRAGMA user_version = 999")
            .unwrap();
        assert!(matches!(
            restore(&newer, &db, "x"),
            Err(BackupError::Newer { found: 999, .. })
        ));

        // An idle connection in WAL mode, as a running server holds.
        let good = dir.path().join("good.db");
        backup(&db, &good).unwrap();
        let server = Connection::open(&db).unwrap();
        server
            .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
        server
            .query_row("SELECT COUNT(*) FROM devices", [], |_| Ok(()))
            .unwrap();
        assert!(matches!(
            restore(&good, &db, "x"),
            Err(BackupError::InUse(_))
        ));
        drop(server);
        // Nothing was changed by any refusal.
        assert_eq!(std::fs::read(&db).unwrap(), before);
        assert!(!dir.path().join("jejak.db.before-restore-x").exists());
    }

    #[test]
    fn only_the_newest_backups_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for stamp in ["20261101T000000Z", "20261102T000000Z", "20261103T000000Z"] {
            std::fs::write(dir.path().join(format!("jejak-{stamp}.db")), b"x").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"kept").unwrap();
        let removed = keep_newest(dir.path(), 2).unwrap();
        assert_eq!(removed, vec![dir.path().join("jejak-20261101T000000Z.db")]);
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir.path().join("jejak-20261103T000000Z.db").exists());
    }
}
