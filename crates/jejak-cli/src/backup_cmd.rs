//! `jejak server backup`, `jejak server restore` and the periodic backups of `jejak
//! server run --backup-dir`. The mechanics (a consistent snapshot while ingest runs, the
//! checks before a restore) live in `jejak_server::backup`; this module names files,
//! speaks to the operator and keeps the last N backups.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jejak_server::{BackupError, ServerStore, backup};

use crate::context::Context;
use crate::errors::{UsageError, file_error};
use crate::output;
use crate::output::outln;
use crate::server_cmd::{is_postgres, sqlite_path};

/// The PostgreSQL answer to `backup` and `restore`: its own tools do it better.
fn postgres_refusal() -> UsageError {
    UsageError::new(
        "PostgreSQL dicadangkan dengan alatnya sendiri: pg_dump -Fc (lalu pg_restore), atau pg_basebackup dengan pengarsipan WAL; lihat README",
        "PostgreSQL is backed up with its own tools: pg_dump -Fc (and pg_restore), or pg_basebackup with WAL archiving; see the README",
    )
}

/// A refusal the operator can act on, in both languages. `writing`: the file the
/// operator named is written (a backup) rather than read (a restore).
fn refusal(e: BackupError, writing: bool) -> anyhow::Error {
    if let BackupError::Io { path, source } = e {
        return file_error(&path, writing, source).into();
    }
    let (id, en) = match &e {
        BackupError::Exists(path) => (
            format!(
                "{} sudah ada; pilih nama lain (cadangan tidak pernah menimpa berkas)",
                path.display()
            ),
            e.to_string(),
        ),
        BackupError::Damaged { path, detail } => (
            format!(
                "{} bukan basis data SQLite yang utuh ({detail}); pakai cadangan lain",
                path.display()
            ),
            e.to_string(),
        ),
        BackupError::NotJejak(path) => (
            format!("{} bukan basis data server Jejak", path.display()),
            e.to_string(),
        ),
        BackupError::Newer {
            path,
            found,
            supported,
        } => (
            format!(
                "{} dibuat oleh jejak yang lebih baru (skema {found}, versi ini membaca sampai {supported}); pulihkan dengan jejak yang lebih baru",
                path.display()
            ),
            e.to_string(),
        ),
        BackupError::InUse(path) => (
            format!(
                "{} sedang dipakai (server masih berjalan?); hentikan server dulu, lalu pulihkan",
                path.display()
            ),
            e.to_string(),
        ),
        BackupError::Io { .. } | BackupError::Sqlite(_) => return anyhow::Error::new(e),
    };
    UsageError::new(id, en).into()
}

/// `jejak server backup --to FILE`: a consistent copy while the server may be running.
pub fn backup_to(ctx: &Context, database: &str, to: &Path) -> anyhow::Result<()> {
    if is_postgres(database) {
        return Err(postgres_refusal().into());
    }
    let db = sqlite_path(database)?;
    let info = backup::backup(&db, to).map_err(|e| refusal(e, true))?;
    if ctx.json {
        return output::print_json(&info);
    }
    outln!(
        "{}",
        ctx.lang.pick(
            &format!(
                "Cadangan ditulis: {} ({:.1} MB, {} sesi, {} komputer)",
                info.path.display(),
                info.bytes as f64 / 1e6,
                info.sessions,
                info.devices
            ),
            &format!(
                "Backup written: {} ({:.1} MB, {} sessions, {} PCs)",
                info.path.display(),
                info.bytes as f64 / 1e6,
                info.sessions,
                info.devices
            ),
        )
    )?;
    Ok(())
}

/// `jejak server restore --from FILE`: checks the backup and puts it in place of the
/// (stopped) server's database; the database it replaces is moved aside, never deleted.
pub fn restore_from(ctx: &Context, database: &str, from: &Path) -> anyhow::Result<()> {
    if is_postgres(database) {
        return Err(postgres_refusal().into());
    }
    let db = sqlite_path(database)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let outcome = backup::restore(from, &db, &stamp).map_err(|e| refusal(e, false))?;
    // Brings a backup made by an older jejak up to this one's schema now, not at the
    // first batch.
    drop(jejak_server::SqliteStore::open(&db)?);
    if ctx.json {
        return output::print_json(&outcome);
    }
    let lang = ctx.lang;
    outln!(
        "{}",
        lang.pick(
            &format!(
                "Dipulihkan dari {} ({} sesi, {} komputer).",
                from.display(),
                outcome.restored.sessions,
                outcome.restored.devices
            ),
            &format!(
                "Restored from {} ({} sessions, {} PCs).",
                from.display(),
                outcome.restored.sessions,
                outcome.restored.devices
            ),
        )
    )?;
    if let Some(aside) = &outcome.previous_moved_to {
        outln!(
            "{}",
            lang.pick(
                &format!("Basis data sebelumnya disimpan di {}", aside.display()),
                &format!("The previous database was kept as {}", aside.display()),
            )
        )?;
    }
    outln!(
        "{}",
        lang.pick(
            "Setiap komputer perpustakaan akan mengirim ulang yang hilang pada sinkron berikutnya; yang sudah dihapus di komputer tampil di tampilan operasional.",
            "Every library PC sends again what the server lost at its next sync; what a PC had already pruned is listed on the operations view.",
        )
    )?;
    Ok(())
}

/// `--backup-every`: `24h`, `90m`, `1d`, `3600s` (or plain seconds).
pub fn parse_interval(raw: &str) -> Result<Duration, UsageError> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        UsageError::new(
            format!("'{raw}' bukan lama waktu; tulis mis. 24h, 90m atau 1d"),
            format!("'{raw}' is not a duration such as 24h, 90m or 1d"),
        )
    })?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => {
            return Err(UsageError::new(
                format!("'{raw}': pakai satuan s, m, h atau d (mis. 24h)"),
                format!("'{raw}': use s, m, h or d (for example 24h)"),
            ));
        }
    };
    if seconds < 60 {
        return Err(UsageError::new(
            format!("'{raw}' terlalu sering; cadangkan paling sering sekali semenit"),
            format!("'{raw}' is too short; back up at most once a minute"),
        ));
    }
    Ok(Duration::from_secs(seconds))
}

/// Where `run --backup-dir` writes one backup: names sort by time.
fn backup_name(dir: &Path, now: chrono::DateTime<chrono::Utc>) -> PathBuf {
    dir.join(format!("jejak-{}.db", now.format("%Y%m%dT%H%M%SZ")))
}

/// `jejak server run --backup-dir DIR --backup-every 24h --backup-keep N`: a backup at
/// start and then every interval, keeping the newest N. A failure is logged and tried
/// again at the next interval; it never stops the server.
pub async fn backup_periodically(
    store: Arc<dyn ServerStore>,
    dir: PathBuf,
    every: Duration,
    keep: usize,
) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        let to = backup_name(&dir, chrono::Utc::now());
        match store.backup(&to).await {
            Ok(info) => {
                tracing::info!(file = %info.path.display(), bytes = info.bytes, "backup written");
                let (dir, keep) = (dir.clone(), keep);
                match tokio::task::spawn_blocking(move || backup::keep_newest(&dir, keep)).await {
                    Ok(Ok(removed)) if !removed.is_empty() => {
                        tracing::info!(removed = removed.len(), "older backups removed")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "older backups could not be removed"),
                    Err(e) => tracing::error!(error = %e, "older backups could not be removed"),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "backup failed; tried again at the next interval")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_people_write_them() {
        assert_eq!(
            parse_interval("24h").ok(),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(parse_interval("90m").ok(), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_interval("1d").ok(), Some(Duration::from_secs(86_400)));
        assert_eq!(
            parse_interval("3600").ok(),
            Some(Duration::from_secs(3_600))
        );
        assert!(parse_interval("10s").is_err());
        assert!(parse_interval("daily").is_err());
        assert!(parse_interval("5w").is_err());
    }
}
