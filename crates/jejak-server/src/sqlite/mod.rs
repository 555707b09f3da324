//! The embedded SQLite implementation of [`ServerStore`]: the default for a district.
//!
//! One file in WAL mode with `synchronous=FULL`. One dedicated OS thread owns the write
//! connection and commits groups of jobs (see `writer.rs`); reads use a small pool of
//! read-only connections on tokio's blocking threads. The SQL lives in this module only
//! (`schema.rs`, `write.rs`, `read.rs`), so the PostgreSQL backend writes its own.

pub mod backup;
mod read;
mod rollups;
mod schema;
mod write;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jejak_domain::{LibraryCode, LibraryDetails, LibraryDetailsEdit, PcCode, Zone};
use rusqlite::{Connection, OpenFlags};

use crate::ingest::{IngestOutcome, PreparedBatch};
use crate::store::{
    AuthError, DeviceRef, DeviceState, DeviceToken, EnrollError, IngestError, LibraryInfo,
    Principal, ServerClock, ServerStore, StaffToken, StoreError, system_clock,
};
use crate::store::{DeviceInfo, DeviceKeys, KeyRegistration, StoredEvent, StoredSession};

pub(crate) use write::clean_name;

/// How long a connection waits for a lock held by another process (the CLI enrolling a
/// PC while the server runs) before it gives up. Inside the server there is one writer,
/// so its own jobs never wait on each other this way.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle read connections kept open.
const READ_POOL: usize = 8;
/// Below this much free space on the database's disk the store reports itself unable
/// to write: one batch's WAL frames and a checkpoint need about this much.
const MIN_FREE_BYTES: u64 = 1 << 20;

/// Options of [`SqliteStore::open_with`].
#[derive(Clone)]
pub struct SqliteOptions {
    /// The clock that stamps enrollments and answers (tests inject a movable one).
    pub clock: ServerClock,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            clock: system_clock(),
        }
    }
}

impl fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteOptions").finish_non_exhaustive()
    }
}

/// The district server's embedded store. Cheap to clone: clones share the writer
/// thread and the read pool. The writer thread stops when the last clone is dropped,
/// after answering every job it was given.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: writer::WriterHandle,
    /// Idle read-only connections.
    readers: Mutex<Vec<Connection>>,
    clock: ServerClock,
    /// The outcomes of the writer's latest commits, for the health check.
    writes: Arc<crate::store::WriteMemory>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("writer_alive", &self.inner.writer.is_alive())
            .finish()
    }
}

fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Inconsistent(format!(
            "the database refused WAL mode (it is in '{mode}' mode)"
        )));
    }
    // FULL, explicitly: in WAL mode NORMAL may lose the last commits on power loss, and
    // the server answers "stored" only for what survives one.
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         PRAGMA foreign_keys=ON;
         PRAGMA temp_store=MEMORY;
         PRAGMA cache_size=-32768;
         PRAGMA journal_size_limit=67108864;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    schema::migrations().to_latest(&mut conn)?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with the system clock, applying pending
    /// migrations. The parent folder must exist.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (or creates) the store with options (an injected clock).
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let conn = open_writer(path)?;
        let checkpoints = Connection::open(path)?;
        checkpoints.busy_timeout(BUSY_TIMEOUT)?;
        let writes = Arc::new(crate::store::WriteMemory::new());
        let writer = writer::WriterHandle::spawn(conn, checkpoints, writes.clone())?;
        tracing::info!(path = %path.display(), "server store open");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer,
                readers: Mutex::new(Vec::new()),
                clock: options.clock,
                writes,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs a read on a pooled read-only connection, on a blocking thread.
    async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut pool| pool.pop());
            let conn = match pooled {
                Some(conn) => conn,
                None => open_reader(&inner.path)?,
            };
            let result = work(&conn);
            if let Ok(mut pool) = inner.readers.lock()
                && pool.len() < READ_POOL
            {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| E::from(StoreError::Internal(format!("a read task failed: {e}"))))?
    }

    /// Checkpoints the WAL into the main file and compacts it (`VACUUM`), for measuring
    /// the file's size and for maintenance. Blocks the writer while it runs.
    pub async fn compact(&self) -> Result<u64, StoreError> {
        let path = self.inner.path.clone();
        self.inner
            .writer
            .call_exclusive(move |conn: &Connection| -> Result<u64, StoreError> {
                truncate_wal(conn)?;
                conn.execute_batch("VACUUM")?;
                truncate_wal(conn)?;
                let size = std::fs::metadata(&path)
                    .map_err(|source| StoreError::Io {
                        path: path.display().to_string(),
                        source,
                    })?
                    .len();
                Ok(size)
            })
            .await
    }

    /// Refuses when the database's disk has less than [`MIN_FREE_BYTES`] left for this
    /// user: SQLite would fail the next commits that need new pages.
    fn check_free_space(&self) -> Result<(), StoreError> {
        #[cfg(unix)]
        {
            let path = &self.inner.path;
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let stat = rustix::fs::statvfs(dir).map_err(|e| StoreError::Io {
                path: dir.display().to_string(),
                source: e.into(),
            })?;
            let free_bytes = stat.f_bavail.saturating_mul(stat.f_frsize);
            if free_bytes < MIN_FREE_BYTES {
                return Err(StoreError::DiskFull {
                    path: path.display().to_string(),
                    free_bytes,
                });
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ServerStore for SqliteStore {
    async fn add_library_with_details(
        &self,
        code: &LibraryCode,
        name: &str,
        timezone: Zone,
        details: &LibraryDetails,
    ) -> Result<(), EnrollError> {
        let name = write::clean_name(name)?;
        let (code, details) = (code.clone(), details.clone());
        let now = self.now().timestamp_millis();
        self.inner
            .writer
            .call(move |conn: &Connection| {
                write::add_library(conn, &code, &name, timezone, &details, now)
            })
            .await
    }

    async fn edit_library(
        &self,
        code: &LibraryCode,
        name: Option<&str>,
        edit: &LibraryDetailsEdit,
    ) -> Result<LibraryInfo, EnrollError> {
        let name = name.map(write::clean_name).transpose()?;
        let (code, edit) = (code.clone(), edit.clone());
        self.inner
            .writer
            .call(move |conn: &Connection| write::edit_library(conn, &code, name.as_deref(), &edit))
            .await
    }

    async fn add_device(
        &self,
        library: &LibraryCode,
        pc: &PcCode,
    ) -> Result<DeviceToken, EnrollError> {
        let token = DeviceToken::generate();
        let hash = token.hash();
        let (lib, pc_code) = (library.clone(), pc.clone());
        let now = self.now().timestamp_millis();
        let id = self
            .inner
            .writer
            .call(move |conn: &Connection| write::add_device(conn, &lib, &pc_code, &hash, now))
            .await?;
        tracing::info!(device = id.0, library = %library, pc = %pc, "device enrolled");
        Ok(token)
    }

    async fn revoke_device(&self, library: &LibraryCode, pc: &PcCode) -> Result<(), EnrollError> {
        let (lib, pc_code) = (library.clone(), pc.clone());
        let now = self.now().timestamp_millis();
        let id = self
            .inner
            .writer
            .call(move |conn: &Connection| write::revoke_device(conn, &lib, &pc_code, now))
            .await?;
        tracing::info!(device = id.0, library = %library, pc = %pc, "device token revoked");
        Ok(())
    }

    async fn add_staff(&self, name: &str) -> Result<StaffToken, EnrollError> {
        let name = write::clean_name(name)?;
        let token = StaffToken::generate();
        let hash = token.hash();
        let now = self.now().timestamp_millis();
        self.inner
            .writer
            .call(move |conn: &Connection| write::add_staff(conn, &name, &hash, now))
            .await?;
        Ok(token)
    }

    async fn revoke_staff(&self, name: &str) -> Result<(), EnrollError> {
        let name = name.trim().to_string();
        let now = self.now().timestamp_millis();
        self.inner
            .writer
            .call(move |conn: &Connection| write::revoke_staff(conn, &name, now))
            .await
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let token = token.to_string();
        self.read(move |conn| read::authenticate(conn, &token))
            .await
    }

    async fn staff_token_active(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let hash = *hash;
        self.read(move |conn| read::staff_token_active(conn, &hash))
            .await
    }

    async fn libraries(&self) -> Result<Vec<LibraryInfo>, StoreError> {
        self.read(read::libraries).await
    }

    async fn devices(&self) -> Result<Vec<DeviceInfo>, StoreError> {
        self.read(read::devices).await
    }

    async fn find_device(
        &self,
        library: &LibraryCode,
        pc: &PcCode,
    ) -> Result<Option<DeviceRef>, StoreError> {
        let (library, pc) = (library.clone(), pc.clone());
        self.read(move |conn| read::find_device(conn, &library, &pc))
            .await
    }

    async fn device_keys(&self, device: &DeviceRef) -> Result<Option<DeviceKeys>, StoreError> {
        let id = device.id;
        self.read(move |conn| read::device_keys(conn, id)).await
    }

    async fn register_device_key(
        &self,
        token_hash: &[u8; 32],
        public_key: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<KeyRegistration, StoreError> {
        let (hash, key, now_ms) = (*token_hash, *public_key, now.timestamp_millis());
        self.inner
            .writer
            .call(move |conn: &Connection| write::register_device_key(conn, &hash, &key, now_ms))
            .await
    }

    async fn store_batch(
        &self,
        device: &DeviceRef,
        batch: PreparedBatch,
        received_ms: i64,
    ) -> Result<IngestOutcome, IngestError> {
        let device_id = device.id;
        self.inner
            .writer
            .call(move |conn: &Connection| write::ingest(conn, device_id, &batch, received_ms))
            .await
    }

    fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    async fn sessions(&self, device: &DeviceRef) -> Result<Vec<StoredSession>, StoreError> {
        let device = device.clone();
        self.read(move |conn| read::sessions(conn, &device)).await
    }

    async fn events(&self, device: &DeviceRef) -> Result<Vec<StoredEvent>, StoreError> {
        let device = device.clone();
        self.read(move |conn| read::events(conn, &device)).await
    }

    async fn sessions_started_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(LibraryCode, PcCode, StoredSession)>, StoreError> {
        let (from_s, to_s) = (from.timestamp(), to.timestamp());
        self.read(move |conn| read::sessions_started_between(conn, from_s, to_s))
            .await
    }

    async fn entry_records(&self) -> Result<Vec<(jejak_domain::RecordBody, i64)>, StoreError> {
        self.read(|conn| {
            rollups::entry_rows(conn)?
                .into_iter()
                .map(|row| Ok((row.record()?, row.stored.at_s)))
                .collect()
        })
        .await
    }

    async fn device_state(&self, device: &DeviceRef) -> Result<DeviceState, StoreError> {
        let device = device.clone();
        self.read(move |conn| read::device_state(conn, &device))
            .await
    }

    async fn long_open_sessions(
        &self,
        started_before: DateTime<Utc>,
    ) -> Result<Vec<(LibraryCode, PcCode, u64)>, StoreError> {
        let before_ms = started_before.timestamp_millis();
        self.read(move |conn| read::long_open_sessions(conn, before_ms))
            .await
    }

    async fn months_facts(
        &self,
        months: &[chrono::NaiveDate],
        library: Option<&LibraryCode>,
        detail: crate::report::FactsDetail,
    ) -> Result<Vec<crate::report::MonthFacts>, StoreError> {
        let (months, library) = (months.to_vec(), library.cloned());
        self.read(move |conn| read::months_facts(conn, &months, library.as_ref(), detail))
            .await
    }

    async fn check_rollups(&self) -> Result<crate::store::RollupCheck, StoreError> {
        self.read(rollups::check).await
    }

    async fn rebuild_rollups(&self) -> Result<(), StoreError> {
        self.inner
            .writer
            .call(|conn: &Connection| rollups::rebuild(conn))
            .await
    }

    async fn prune_raw(
        &self,
        month: chrono::NaiveDate,
    ) -> Result<crate::store::PruneOutcome, StoreError> {
        let number = crate::rollup::month_number(month);
        let (sessions, events) = self
            .inner
            .writer
            .call(move |conn: &Connection| write::prune_raw(conn, number))
            .await?;
        let kept_from = self
            .read(write::retained_from)
            .await?
            .and_then(crate::rollup::month_first)
            .unwrap_or(month);
        tracing::info!(sessions, events, %kept_from, "raw records pruned");
        Ok(crate::store::PruneOutcome {
            sessions,
            events,
            kept_from,
        })
    }

    async fn latest_session_month(&self) -> Result<Option<chrono::NaiveDate>, StoreError> {
        self.read(read::latest_session_month).await
    }

    async fn letterhead(&self) -> Result<Option<crate::report::Letterhead>, StoreError> {
        self.read(read::letterhead).await
    }

    async fn set_letterhead(
        &self,
        letterhead: Option<crate::report::Letterhead>,
    ) -> Result<(), StoreError> {
        let json = letterhead
            .map(|l| serde_json::to_string(&l))
            .transpose()
            .map_err(|e| StoreError::Internal(format!("letterhead: {e}")))?;
        self.inner
            .writer
            .call(move |conn: &Connection| write::set_setting(conn, write::LETTERHEAD, json))
            .await
    }

    async fn check_health(&self) -> Result<(), StoreError> {
        if !self.inner.writer.is_alive() {
            return Err(StoreError::Stopped);
        }
        self.check_free_space()?;
        if self.inner.writes.wrote_recently() {
            return Ok(());
        }
        let now = self.now().timestamp_millis().to_string();
        self.inner
            .writer
            .call(move |conn: &Connection| {
                write::set_setting(conn, crate::store::HEALTH_PROBE, Some(now))
            })
            .await
    }

    async fn backup(&self, to: &Path) -> Result<crate::BackupInfo, StoreError> {
        let (db, to) = (self.inner.path.clone(), to.to_path_buf());
        tokio::task::spawn_blocking(move || backup::backup(&db, &to))
            .await
            .map_err(|e| StoreError::Internal(format!("the backup task failed: {e}")))?
            .map_err(StoreError::from)
    }
}

/// Copies the whole WAL into the database file and empties it. A TRUNCATE checkpoint
/// that meets a reader (the checkpointer thread's own passive checkpoint) gives up and
/// says so in its first column instead of failing; the file would then keep the pages
/// a VACUUM freed, so it is tried again for up to about two seconds.
fn truncate_wal(conn: &Connection) -> Result<(), StoreError> {
    for _ in 0..200 {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(StoreError::Internal(
        "the WAL could not be emptied: a reader kept it busy".into(),
    ))
}
