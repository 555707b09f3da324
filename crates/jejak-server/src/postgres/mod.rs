//! The PostgreSQL implementation of [`ServerStore`], for a province or a country that
//! outgrows one SQLite file (`jejak server run --database postgres://…`).
//!
//! tokio-postgres over a small deadpool pool. Every write is one transaction; ingest
//! answers only after its COMMIT and retries a bounded number of times (with jitter)
//! when PostgreSQL reports a serialization failure or a deadlock, which concurrent
//! batches may meet. The rules (decoding, dating, revisions, conflicts, rollups) are the
//! backend-neutral ones of `ingest.rs`, `rollup.rs` and `recount.rs`, so both backends
//! store the same facts and keep byte-identical rollups. The schema (`schema.rs`) keys
//! every growing table by `library`, the distribution column of a sharded deployment,
//! and partitions sessions by month.

pub mod copy;
mod read;
mod schema;
mod write;

pub use copy::{CopyOptions, CopyReport, TableCount, copy_from_sqlite};

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use jejak_domain::{LibraryCode, LibraryDetails, LibraryDetailsEdit, PcCode, Zone};
use rand::Rng;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::ingest::{IngestOutcome, PreparedBatch, PreparedRecord};
use crate::rollup;
use crate::store::{
    AuthError, DeviceInfo, DeviceKeys, DeviceRef, DeviceState, DeviceToken, EnrollError,
    IngestError, KeyRegistration, LibraryInfo, Principal, RollupCheck, ServerClock, ServerStore,
    StaffToken, StoreError, StoredEvent, StoredSession, system_clock,
};

/// The settings key of the letterhead (JSON of `report::Letterhead`), as in SQLite.
const LETTERHEAD: &str = "letterhead";
/// How often a transaction that met a serialization failure or a deadlock is tried in
/// all before the error reaches the client (which then retries the batch later).
const ATTEMPTS: u32 = 5;
/// How many months after the newest one a batch stores get their sessions partition
/// made ahead of need (as pg_partman's `premake`).
const PREMAKE_MONTHS: i64 = 3;
/// Connections kept by default. A batch is a few short round trips and PostgreSQL's
/// work on it is CPU, so a handful of connections per core keeps a small district
/// machine busy; more only add backends that compete for the same cores, each with its
/// own catalog cache and prepared statements to warm up (50 PCs sending at once on 2
/// cores stored fewer sessions a second through 16 connections than through 8).
/// Batches beyond the pool wait for a connection in the server, not in PostgreSQL.
const DEFAULT_POOL: usize = 8;

/// How long a request waits for a pooled connection before it is answered 503: the
/// pool's connections are all busy (a burst of PCs) or the database is down.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// Options of [`PostgresStore::open_with`].
#[derive(Clone)]
pub struct PostgresOptions {
    /// The clock that stamps enrollments and answers (tests inject a movable one).
    pub clock: ServerClock,
    /// The most connections the store opens at once.
    pub pool_size: usize,
    /// How long making a connection may take, the server's first answer included: a
    /// host that accepts connections and then says nothing is given up on after this
    /// (TCP's own connect timeout does not cover it). Default 10 s.
    pub connect_timeout: Duration,
    /// PostgreSQL's `statement_timeout` for every statement of the store's connections
    /// (lock waits included): a batch blocked by a lock fails after it with 503 and
    /// `Retry-After` instead of waiting for ever. `None` (the default, for the
    /// maintenance commands that read everything) leaves the database's own setting;
    /// `jejak server run` sets 30 s.
    pub statement_timeout: Option<Duration>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            clock: system_clock(),
            pool_size: DEFAULT_POOL,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: None,
        }
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

/// The district (or provincial) server's store on PostgreSQL. Cheap to clone: clones
/// share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    pool: Pool,
    clock: ServerClock,
    /// Months whose sessions partition is known to exist (so ingest asks once).
    partitions: Mutex<HashSet<i64>>,
    /// Held while this process looks for or makes partitions: batches that meet the
    /// same new month at once wait here, without holding a pooled connection, and then
    /// find it in `partitions`.
    making_partitions: tokio::sync::Mutex<()>,
    /// True while a background task makes partitions ahead of need.
    making_ahead: AtomicBool,
    /// The outcomes of the latest writes, for the health check.
    writes: crate::store::WriteMemory,
    /// How long making a connection may take (for messages).
    connect_timeout: Duration,
    /// Where the store is, without the password (for logs and `Debug`).
    target: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.inner.target)
            .finish()
    }
}

/// The partition names a [`write::PARTITION_NAMES`] query returned.
fn partition_names(rows: Vec<tokio_postgres::Row>) -> Result<HashSet<String>, StoreError> {
    rows.iter()
        .map(|r| r.try_get::<_, String>(0).map_err(StoreError::from))
        .collect()
}

/// Whether an error is one a retry of the whole transaction can cure.
fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

fn pool_error(e: deadpool_postgres::PoolError, target: &str, connect: Duration) -> StoreError {
    use deadpool_postgres::{PoolError, TimeoutType};
    match e {
        PoolError::Backend(e) => StoreError::Postgres(e),
        PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => {
            StoreError::Timeout(format!(
                "PostgreSQL at {target} did not answer within {} s (is it running, and is that its address?)",
                connect.as_secs()
            ))
        }
        PoolError::Timeout(TimeoutType::Wait) => StoreError::Timeout(format!(
            "no PostgreSQL connection to {target} became free within {} s",
            POOL_WAIT.as_secs()
        )),
        other => StoreError::PostgresPool(other.to_string()),
    }
}

/// The host, port and database of a configuration (never its password).
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{}:{}/{}",
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or("")
    )
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    url.parse::<tokio_postgres::Config>()
        .map_err(|e| StoreError::PostgresPool(format!("invalid PostgreSQL URL: {e}")))
}

/// A boxed future borrowing a transaction, for [`PostgresStore::transact`].
type TxFuture<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'a>>;

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`) with the system
    /// clock and applies pending migrations.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        Self::open_with(url, PostgresOptions::default()).await
    }

    /// Connects with options (an injected clock, the pool's size).
    pub async fn open_with(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresStore, StoreError> {
        let mut config = parse_url(url)?;
        let target = describe(&config);
        config.connect_timeout(options.connect_timeout);
        if let Some(timeout) = options.statement_timeout {
            // Sent with the connection's startup, so every pooled connection has it
            // without a round trip of its own; options of the URL are kept.
            let mut startup = config.get_options().unwrap_or("").to_string();
            startup.push_str(&format!(" -c statement_timeout={}", timeout.as_millis()));
            config.options(startup.trim());
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .wait_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::PostgresPool(e.to_string()))?;
        let store = PostgresStore {
            inner: std::sync::Arc::new(Inner {
                pool,
                clock: options.clock,
                partitions: Mutex::new(HashSet::new()),
                making_partitions: tokio::sync::Mutex::new(()),
                making_ahead: AtomicBool::new(false),
                writes: crate::store::WriteMemory::new(),
                connect_timeout: options.connect_timeout,
                target,
            }),
        };
        store.migrate().await?;
        tracing::info!(target = %store.inner.target, "server store open (PostgreSQL)");
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(|e| {
            self.inner.writes.note(false);
            pool_error(e, &self.inner.target, self.inner.connect_timeout)
        })
    }

    /// Applies pending migrations in one transaction under an advisory lock.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // "relation already exists, skipping" is the normal case: not worth a notice.
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&schema::MIGRATION_LOCK],
        )
        .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_ms BIGINT NOT NULL
             )",
        )
        .await?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .try_get(0)?;
        let now = self.now().timestamp_millis();
        for (version, sql) in schema::MIGRATIONS {
            if *version <= current {
                continue;
            }
            tx.batch_execute(sql).await?;
            if *version == schema::PACK_ENTRY_COUNTS {
                write::pack_entry_counts(&tx).await?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)",
                &[version, &now],
            )
            .await?;
            tracing::info!(version, "PostgreSQL migration applied");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs `work` in a transaction (read-only when `read_only`), commits it, and tries
    /// again from the start (at most [`ATTEMPTS`] times in all, after a short random
    /// pause) when PostgreSQL reports a serialization failure or a deadlock.
    async fn transact<T, E, F>(&self, read_only: bool, work: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: for<'a, 'b> Fn(&'a Transaction<'b>) -> TxFuture<'a, T, E>,
        E: RetryCheck,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .read_only(read_only)
                .start()
                .await
                .map_err(StoreError::from)?;
            let result = work(&tx).await;
            let outcome = match result {
                Ok(value) => match tx.commit().await {
                    Ok(()) => {
                        if !read_only {
                            self.inner.writes.note(true);
                        }
                        return Ok(value);
                    }
                    Err(e) => {
                        self.inner.writes.note(false);
                        E::from(StoreError::Postgres(e))
                    }
                },
                Err(e) => {
                    // Dropping the transaction rolls it back; saying so explicitly
                    // returns the connection to the pool clean at once.
                    let _ = tx.rollback().await;
                    e
                }
            };
            if attempt >= ATTEMPTS || !outcome.is_retryable() {
                return Err(outcome);
            }
            let pause = rand::rng().random_range(5..50u64) * u64::from(attempt);
            tracing::debug!(
                attempt,
                pause_ms = pause,
                "transaction retried after a conflict"
            );
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Creates the sessions partitions a batch needs, each once, before the batch's
    /// transaction, and then, in the background, those of the months that follow the
    /// newest of them ([`PREMAKE_MONTHS`]): the first batches of a new month then find
    /// its partition made, instead of all waiting for the one that makes it.
    async fn ensure_partitions(&self, months: HashSet<i64>) -> Result<(), StoreError> {
        self.make_partitions(&months).await?;
        let Some(newest) = months.iter().copied().filter(|m| *m != 0).max() else {
            return Ok(());
        };
        let ahead: HashSet<i64> = (newest + 1..=newest + PREMAKE_MONTHS)
            .filter(|m| *m <= schema::LAST_PARTITION_MONTH)
            .collect();
        if self.unknown_partitions(&ahead)?.is_empty()
            || self.inner.making_ahead.swap(true, Ordering::AcqRel)
        {
            return Ok(());
        }
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(e) = store.make_partitions(&ahead).await {
                // The batch that needs one of them makes it then.
                tracing::warn!(error = %e, "sessions partitions not made ahead");
            }
            store.inner.making_ahead.store(false, Ordering::Release);
        });
        Ok(())
    }

    /// Makes the sessions partitions of the months from `first` to `last` (both
    /// included) and of the [`PREMAKE_MONTHS`] after them that are missing, as batches
    /// storing sessions of those months would, but at once. For a bulk load, so that
    /// its batches do not queue behind the DDL of a month each; the benchmark also makes
    /// its months' partitions before its clock starts, as it makes the COPY round's
    /// table before that round's clock.
    pub async fn make_month_partitions(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<(), StoreError> {
        let from = rollup::month_number(first).max(schema::FIRST_PARTITION_MONTH);
        let to = (rollup::month_number(last) + PREMAKE_MONTHS).min(schema::LAST_PARTITION_MONTH);
        self.make_partitions(&(from..=to).collect()).await
    }

    /// Creates the sessions partitions of `months` that are missing (DDL in its own
    /// short transaction under an advisory lock, so that two servers creating the same
    /// month do not race). The partitions are looked for first without the lock: when
    /// many batches meet a new month at once, only the first makes it and the others
    /// need not queue for the lock to learn that.
    async fn make_partitions(&self, months: &HashSet<i64>) -> Result<(), StoreError> {
        if self.unknown_partitions(months)?.is_empty() {
            return Ok(());
        }
        let _making = self.inner.making_partitions.lock().await;
        let asked = self.unknown_partitions(months)?;
        if asked.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let existing = partition_names(client.query(write::PARTITION_NAMES, &[]).await?)?;
        let missing: Vec<i64> = asked
            .iter()
            .copied()
            .filter(|m| !existing.contains(&write::partition_name(*m)))
            .collect();
        if !missing.is_empty() {
            let tx = client.transaction().await?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&(schema::MIGRATION_LOCK + 1)],
            )
            .await?;
            // Looked for again under the lock: another server may have made some.
            let existing = partition_names(tx.query(write::PARTITION_NAMES, &[]).await?)?;
            for month in &missing {
                if !existing.contains(&write::partition_name(*month)) {
                    tx.batch_execute(&write::partition_sql(*month)).await?;
                }
            }
            tx.commit().await?;
        }
        if let Ok(mut known) = self.inner.partitions.lock() {
            known.extend(asked);
        }
        Ok(())
    }

    /// The months of `months` whose partition this process does not know to exist.
    fn unknown_partitions(&self, months: &HashSet<i64>) -> Result<Vec<i64>, StoreError> {
        let known = self
            .inner
            .partitions
            .lock()
            .map_err(|_| StoreError::Internal("the partition cache is poisoned".into()))?;
        let mut m: Vec<i64> = months
            .iter()
            .copied()
            .filter(|m| *m != 0 && !known.contains(m))
            .collect();
        m.sort();
        Ok(m)
    }
}

/// Whether an error is worth retrying the transaction for.
trait RetryCheck {
    fn is_retryable(&self) -> bool;
}

impl RetryCheck for StoreError {
    fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Postgres(e) if retryable(e))
    }
}

impl RetryCheck for IngestError {
    fn is_retryable(&self) -> bool {
        matches!(self, IngestError::Store(e) if e.is_retryable())
    }
}

impl RetryCheck for EnrollError {
    fn is_retryable(&self) -> bool {
        matches!(self, EnrollError::Store(e) if e.is_retryable())
    }
}

impl RetryCheck for AuthError {
    fn is_retryable(&self) -> bool {
        matches!(self, AuthError::Store(e) if e.is_retryable())
    }
}

/// Creates the database `name` on the server of `admin_url` (connected to any existing
/// database, normally `postgres`) and returns the URL of the new one. For tests, the
/// benchmark and `jejak server copy`; `name` must be a plain identifier.
pub async fn create_database(admin_url: &str, name: &str) -> Result<String, StoreError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StoreError::PostgresPool(format!(
            "invalid database name '{name}'"
        )));
    }
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls).await?;
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    drop(client);
    let _ = task.await;
    // The same URL with the database replaced: the path after the authority.
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    let url = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |p| p + 2) => format!("{}/{name}", &base[..i]),
        _ => format!("{base}/{name}"),
    };
    Ok(url)
}

/// Drops the database `name` (closing its other connections first). For tests.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StoreError::PostgresPool(format!(
            "invalid database name '{name}'"
        )));
    }
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls).await?;
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    drop(client);
    let _ = task.await;
    Ok(())
}

#[async_trait]
impl ServerStore for PostgresStore {
    async fn add_library_with_details(
        &self,
        code: &LibraryCode,
        name: &str,
        timezone: Zone,
        details: &LibraryDetails,
    ) -> Result<(), EnrollError> {
        let name = crate::sqlite::clean_name(name)?;
        let now = self.now().timestamp_millis();
        let (code, details) = (code.clone(), details.clone());
        self.transact(false, move |tx| {
            let (code, name, details) = (code.clone(), name.clone(), details.clone());
            Box::pin(
                async move { write::add_library(tx, &code, &name, timezone, &details, now).await },
            )
        })
        .await
    }

    async fn edit_library(
        &self,
        code: &LibraryCode,
        name: Option<&str>,
        edit: &LibraryDetailsEdit,
    ) -> Result<LibraryInfo, EnrollError> {
        let name = name.map(crate::sqlite::clean_name).transpose()?;
        let (code, edit) = (code.clone(), edit.clone());
        self.transact(false, move |tx| {
            let (code, name, edit) = (code.clone(), name.clone(), edit.clone());
            Box::pin(async move { write::edit_library(tx, &code, name.as_deref(), &edit).await })
        })
        .await
    }

    async fn add_device(
        &self,
        library: &LibraryCode,
        pc: &PcCode,
    ) -> Result<DeviceToken, EnrollError> {
        let token = DeviceToken::generate();
        let hash = token.hash();
        let now = self.now().timestamp_millis();
        let (lib, pc_code) = (library.clone(), pc.clone());
        let id = self
            .transact(false, move |tx| {
                let (lib, pc_code) = (lib.clone(), pc_code.clone());
                Box::pin(async move { write::add_device(tx, &lib, &pc_code, &hash, now).await })
            })
            .await?;
        tracing::info!(device = id.0, library = %library, pc = %pc, "device enrolled");
        Ok(token)
    }

    async fn revoke_device(&self, library: &LibraryCode, pc: &PcCode) -> Result<(), EnrollError> {
        let now = self.now().timestamp_millis();
        let (lib, pc_code) = (library.clone(), pc.clone());
        let id = self
            .transact(false, move |tx| {
                let (lib, pc_code) = (lib.clone(), pc_code.clone());
                Box::pin(async move { write::revoke_device(tx, &lib, &pc_code, now).await })
            })
            .await?;
        tracing::info!(device = id.0, library = %library, pc = %pc, "device token revoked");
        Ok(())
    }

    async fn add_staff(&self, name: &str) -> Result<StaffToken, EnrollError> {
        let name = crate::sqlite::clean_name(name)?;
        let token = StaffToken::generate();
        let hash = token.hash();
        let now = self.now().timestamp_millis();
        self.transact(false, move |tx| {
            let name = name.clone();
            Box::pin(async move { write::add_staff(tx, &name, &hash, now).await })
        })
        .await?;
        Ok(token)
    }

    async fn revoke_staff(&self, name: &str) -> Result<(), EnrollError> {
        let name = name.trim().to_string();
        let now = self.now().timestamp_millis();
        self.transact(false, move |tx| {
            let name = name.clone();
            Box::pin(async move { write::revoke_staff(tx, &name, now).await })
        })
        .await
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let client = self.client().await?;
        read::authenticate(&client, token).await
    }

    async fn staff_token_active(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let client = self.client().await?;
        read::staff_token_active(&client, hash).await
    }

    async fn libraries(&self) -> Result<Vec<LibraryInfo>, StoreError> {
        self.transact(true, |tx| Box::pin(read::libraries(tx)))
            .await
    }

    async fn devices(&self) -> Result<Vec<DeviceInfo>, StoreError> {
        self.transact(true, |tx| Box::pin(read::devices(tx))).await
    }

    async fn find_device(
        &self,
        library: &LibraryCode,
        pc: &PcCode,
    ) -> Result<Option<DeviceRef>, StoreError> {
        let (library, pc) = (library.clone(), pc.clone());
        self.transact(true, move |tx| {
            let (library, pc) = (library.clone(), pc.clone());
            Box::pin(async move { read::find_device(tx, &library, &pc).await })
        })
        .await
    }

    async fn device_keys(&self, device: &DeviceRef) -> Result<Option<DeviceKeys>, StoreError> {
        let id = device.id;
        self.transact(true, move |tx| Box::pin(read::device_keys(tx, id)))
            .await
    }

    async fn register_device_key(
        &self,
        token_hash: &[u8; 32],
        public_key: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<KeyRegistration, StoreError> {
        let (hash, key, now_ms) = (*token_hash, *public_key, now.timestamp_millis());
        self.transact(false, move |tx| {
            Box::pin(async move { write::register_device_key(tx, &hash, &key, now_ms).await })
        })
        .await
    }

    async fn store_batch(
        &self,
        device: &DeviceRef,
        batch: PreparedBatch,
        received_ms: i64,
    ) -> Result<IngestOutcome, IngestError> {
        // The sessions partitions the batch needs are made before its transaction.
        let months: HashSet<i64> = batch
            .records
            .iter()
            .filter_map(|r| match r {
                PreparedRecord::Session(s) => Some(write::id_month(&s.id)),
                _ => None,
            })
            .collect();
        self.ensure_partitions(months).await?;
        let device_id = device.id;
        let batch = std::sync::Arc::new(batch);
        self.transact(false, move |tx| {
            let batch = batch.clone();
            Box::pin(async move { write::ingest(tx, device_id, &batch, received_ms).await })
        })
        .await
    }

    fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    async fn sessions(&self, device: &DeviceRef) -> Result<Vec<StoredSession>, StoreError> {
        let device = device.clone();
        self.transact(true, move |tx| {
            let device = device.clone();
            Box::pin(async move { read::sessions(tx, &device).await })
        })
        .await
    }

    async fn events(&self, device: &DeviceRef) -> Result<Vec<StoredEvent>, StoreError> {
        let device = device.clone();
        self.transact(true, move |tx| {
            let device = device.clone();
            Box::pin(async move { read::events(tx, &device).await })
        })
        .await
    }

    async fn sessions_started_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(LibraryCode, PcCode, StoredSession)>, StoreError> {
        let (from_s, to_s) = (from.timestamp(), to.timestamp());
        self.transact(true, move |tx| {
            Box::pin(async move { read::sessions_started_between(tx, from_s, to_s).await })
        })
        .await
    }

    async fn entry_records(&self) -> Result<Vec<(jejak_domain::RecordBody, i64)>, StoreError> {
        self.transact(true, |tx| {
            Box::pin(async move {
                read::entry_rows(tx)
                    .await?
                    .into_iter()
                    .map(|row| Ok((row.record()?, row.stored.at_s)))
                    .collect()
            })
        })
        .await
    }

    async fn device_state(&self, device: &DeviceRef) -> Result<DeviceState, StoreError> {
        let device = device.clone();
        self.transact(true, move |tx| {
            let device = device.clone();
            Box::pin(async move { read::device_state(tx, &device).await })
        })
        .await
    }

    async fn months_facts(
        &self,
        months: &[chrono::NaiveDate],
        library: Option<&LibraryCode>,
        detail: crate::report::FactsDetail,
    ) -> Result<Vec<crate::report::MonthFacts>, StoreError> {
        let (months, library) = (months.to_vec(), library.cloned());
        // One read-only transaction, so the months are one snapshot.
        self.transact(true, move |tx| {
            let (months, library) = (months.clone(), library.clone());
            Box::pin(async move {
                let mut facts = Vec::with_capacity(months.len());
                for month in months {
                    facts.push(read::month_facts(tx, month, library.as_ref(), detail).await?);
                }
                Ok(facts)
            })
        })
        .await
    }

    async fn long_open_sessions(
        &self,
        started_before: DateTime<Utc>,
    ) -> Result<Vec<(LibraryCode, PcCode, u64)>, StoreError> {
        let before_ms = started_before.timestamp_millis();
        self.transact(true, move |tx| {
            Box::pin(read::long_open_sessions(tx, before_ms))
        })
        .await
    }

    async fn check_rollups(&self) -> Result<RollupCheck, StoreError> {
        self.transact(true, |tx| Box::pin(read::check_rollups(tx)))
            .await
    }

    async fn rebuild_rollups(&self) -> Result<(), StoreError> {
        self.transact(false, |tx| Box::pin(rebuild(tx))).await
    }

    async fn latest_session_month(&self) -> Result<Option<chrono::NaiveDate>, StoreError> {
        self.transact(true, |tx| Box::pin(read::latest_session_month(tx)))
            .await
    }

    async fn letterhead(&self) -> Result<Option<crate::report::Letterhead>, StoreError> {
        self.transact(true, |tx| Box::pin(read::letterhead(tx)))
            .await
    }

    async fn set_letterhead(
        &self,
        letterhead: Option<crate::report::Letterhead>,
    ) -> Result<(), StoreError> {
        let json = letterhead
            .map(|l| serde_json::to_string(&l))
            .transpose()
            .map_err(|e| StoreError::Internal(format!("letterhead: {e}")))?;
        self.transact(false, move |tx| {
            let json = json.clone();
            Box::pin(async move {
                write::set_setting(tx, LETTERHEAD, json)
                    .await
                    .map_err(StoreError::from)
            })
        })
        .await
    }

    async fn prune_raw(
        &self,
        month: chrono::NaiveDate,
    ) -> Result<crate::store::PruneOutcome, StoreError> {
        let number = crate::rollup::month_number(month);
        let (sessions, events) = self
            .transact(false, move |tx| {
                Box::pin(async move {
                    // Pruning years of rows may take longer than a request's statement
                    // timeout; it is no request.
                    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
                    write::prune_raw(tx, number).await
                })
            })
            .await?;
        let kept_from = self
            .transact(true, |tx| Box::pin(write::retained_from(tx)))
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

    async fn check_health(&self) -> Result<(), StoreError> {
        if self.inner.writes.wrote_recently() {
            return Ok(());
        }
        let now = self.now().timestamp_millis().to_string();
        self.transact(false, move |tx| {
            let now = now.clone();
            Box::pin(async move {
                write::set_setting(tx, crate::store::HEALTH_PROBE, Some(now))
                    .await
                    .map_err(StoreError::from)
            })
        })
        .await
    }
}

/// Replaces the stored rollups and event cursors with a recount, with every device's
/// row locked (in key order, as ingest takes one) so that no batch runs meanwhile.
async fn rebuild(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.query("SELECT 1 FROM devices ORDER BY library, id FOR UPDATE", &[])
        .await?;
    let (expected, cursors) = read::recount(tx).await?;
    // The months before the retention cutoff keep their rollups: their raw rows are gone
    // (but for the undated records', which retention keeps).
    let from = write::retained_from(tx).await?.unwrap_or(i64::MIN);
    let expected = expected.keeping_months_from(from);
    let undated = crate::dating::FIRST_DATED_MONTH;
    for table in [
        "day_rollups",
        "breakdown_rollups",
        "patron_months",
        "entry_months",
    ] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE month >= $1 OR month < $2"),
            &[&from, &undated],
        )
        .await?;
    }
    write::write_rollups(tx, 0, &expected).await?;
    let mut cursors: Vec<_> = cursors.into_iter().collect();
    cursors.sort_by_key(|(device, _)| *device);
    for (device, cursor) in cursors {
        let library: i64 = tx
            .query_one("SELECT library FROM devices WHERE id = $1", &[&device])
            .await?
            .try_get(0)?;
        write::write_cursor(tx, library, device, cursor).await?;
    }
    Ok(())
}
