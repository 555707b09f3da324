//! The one thread that owns the SQLite write connection.
//!
//! Callers send it jobs over a channel and await a one-shot reply. The thread takes
//! whatever jobs are waiting (up to [`MAX_GROUP`]) and runs them in ONE transaction,
//! each inside its own savepoint, so that a failed job rolls back alone; then it commits
//! once and only then answers every job of the group. This is group commit: fifty PCs
//! syncing at once cost one fsync per group instead of one per batch, they simply queue
//! (there is a single writer, so SQLITE_BUSY cannot arise between them), and still no
//! answer leaves before the data it reports is durable.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::store::{StoreError, WriteMemory};

/// The most jobs one transaction takes. Bounds the latency of the first job of a group
/// and the size of the WAL one commit writes.
pub(super) const MAX_GROUP: usize = 64;
/// How long the checkpointer lets commits accumulate before copying the WAL back into
/// the database file: one checkpoint then serves many commits.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
/// WAL frames (pages) beyond which the checkpointer empties the WAL even if it must make
/// the writer wait: 16,384 pages of 4 KiB, 64 MiB.
const WAL_RESTART_FRAMES: i64 = 16_384;
/// Jobs that may wait for the writer before callers wait to enqueue (back-pressure).
pub(super) const QUEUE: usize = 256;

/// One unit of work for the writer.
pub(super) trait Job: Send {
    /// Runs inside the job's own savepoint; `true` keeps its writes.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Marks the job failed after it ran (its savepoint could not be released).
    fn fail(&mut self, why: String);
    /// Whether the job must run alone, outside any transaction (`VACUUM`).
    fn exclusive(&self) -> bool;
    /// Answers the caller once the group's transaction has committed (`Ok`) or not.
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

/// A closure and the channel its answer goes back on.
struct Call<T, E, F> {
    work: Option<F>,
    exclusive: bool,
    result: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Job for Call<T, E, F>
where
    T: Send,
    E: From<StoreError> + Send,
    F: FnOnce(&Connection) -> Result<T, E> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A bug in one job must not take the writer (and every later batch) down with
        // it: the panic becomes this job's error and its savepoint is rolled back.
        let result = catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|_| {
            tracing::error!("a store job panicked; its changes are rolled back");
            Err(E::from(StoreError::Internal(
                "a store job panicked".to_string(),
            )))
        });
        let keep = result.is_ok();
        self.result = Some(result);
        keep
    }

    fn exclusive(&self) -> bool {
        self.exclusive
    }

    fn fail(&mut self, why: String) {
        self.result = Some(Err(E::from(StoreError::Commit(why))));
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        let answer = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(why), _) => Err(E::from(StoreError::Commit(why))),
            (Ok(()), None) => Err(E::from(StoreError::Internal(
                "the job was never run".to_string(),
            ))),
        };
        // The caller may have gone (its client disconnected): the work is done anyway.
        let _ = self.reply.send(answer);
    }
}

/// The cheap, cloneable sending side.
#[derive(Clone)]
pub(super) struct WriterHandle {
    jobs: mpsc::Sender<Box<dyn Job>>,
    alive: Arc<AtomicBool>,
}

impl WriterHandle {
    /// Starts the writer thread on `conn`.
    /// Starts the writer thread on `conn` and the checkpointer on `checkpoints` (a
    /// second read-write connection to the same file). The writer's own automatic
    /// checkpoints are turned off: the checkpointer copies the WAL back into the
    /// database file in parallel, so commits (and the answers waiting on them) never
    /// pay for it.
    pub(super) fn spawn(
        conn: Connection,
        checkpoints: Connection,
        memory: Arc<WriteMemory>,
    ) -> Result<WriterHandle, StoreError> {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (committed, commits) = std::sync::mpsc::sync_channel::<()>(1);
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        // Set by the checkpointer when the WAL has grown past WAL_RESTART_FRAMES; the
        // writer then empties it itself between two groups (see `checkpointer`).
        let wal_full = Arc::new(AtomicBool::new(false));
        let wal_full_seen = wal_full.clone();
        let thread_error = |source| StoreError::Io {
            path: "store thread".into(),
            source,
        };
        std::thread::Builder::new()
            .name("jejak-store-checkpoint".into())
            .spawn(move || checkpointer(checkpoints, commits, &wal_full))
            .map_err(thread_error)?;
        std::thread::Builder::new()
            .name("jejak-store-writer".into())
            .spawn(move || {
                run(conn, rx, committed, &wal_full_seen, &memory);
                flag.store(false, Ordering::SeqCst);
            })
            .map_err(thread_error)?;
        Ok(WriterHandle { jobs: tx, alive })
    }

    /// Whether the thread is still taking jobs.
    pub(super) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !self.jobs.is_closed()
    }

    /// Runs `work` on the writer in its own savepoint and returns its result once the
    /// transaction that holds it has committed. `Err` from `work` rolls its writes back.
    pub(super) async fn call<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.submit(work, false).await
    }

    /// Runs `work` alone on the write connection, outside any transaction, between two
    /// groups (for `VACUUM` and checkpoints).
    pub(super) async fn call_exclusive<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.submit(work, true).await
    }

    async fn submit<T, E, F>(&self, work: F, exclusive: bool) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Call {
            work: Some(work),
            exclusive,
            result: None,
            reply,
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| E::from(StoreError::Stopped))?;
        answer.await.map_err(|_| E::from(StoreError::Stopped))?
    }
}

/// Copies the WAL back into the database file after commits, until the writer stops.
/// A PASSIVE checkpoint never waits for (nor blocks) the writer or readers; what it
/// cannot copy now it copies next time. The WAL restarts from its beginning once it has
/// been copied entirely.
///
/// Under sustained ingest (a province's PCs catching up after an outage) a passive
/// checkpoint never finds the WAL fully copied, so the WAL would never restart and
/// would grow without bound (the 6.5-million-session benchmark once left 22 GB of it),
/// and a TRUNCATE checkpoint from this thread rarely wins the write lock from a busy
/// writer. When the WAL holds more than [`WAL_RESTART_FRAMES`], the checkpointer
/// therefore raises `wal_full` and the writer empties the WAL itself between two
/// groups, where it holds no transaction.
fn checkpointer(conn: Connection, commits: std::sync::mpsc::Receiver<()>, wal_full: &AtomicBool) {
    while commits.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_PAUSE);
        while commits.try_recv().is_ok() {}
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
            Ok(frames) if frames > WAL_RESTART_FRAMES => wal_full.store(true, Ordering::SeqCst),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed; it is retried after the next commit")
            }
        }
    }
    // The writer has stopped: leave a small WAL behind.
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
}

fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Box<dyn Job>>,
    committed: std::sync::mpsc::SyncSender<()>,
    wal_full: &AtomicBool,
    memory: &WriteMemory,
) {
    let mut group: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = jobs.blocking_recv() {
        if first.exclusive() {
            run_alone(&conn, first);
            continue;
        }
        group.push(first);
        let mut alone = None;
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) if job.exclusive() => {
                    alone = Some(job);
                    break;
                }
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        memory.note(run_group(&mut conn, &mut group));
        // Wakes the checkpointer; if a wake-up is already pending, that one will do.
        let _ = committed.try_send(());
        if wal_full.swap(false, Ordering::SeqCst) {
            // Between groups this thread holds no transaction, so only readers can delay
            // the truncation (up to the busy timeout); the answers already went out.
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "WAL truncation failed; it is retried when the WAL is next found full");
            }
        }
        if let Some(job) = alone {
            run_alone(&conn, job);
        }
    }
    tracing::debug!("store writer stopping: every handle is gone");
}

fn run_alone(conn: &Connection, mut job: Box<dyn Job>) {
    // The job's own result says whether it worked; there is no transaction to commit.
    job.run(conn);
    job.finish(Ok(()));
}

/// Runs a group in one transaction; `true` when it committed.
fn run_group(conn: &mut Connection, group: &mut Vec<Box<dyn Job>>) -> bool {
    let count = group.len();
    // IMMEDIATE takes the write lock at once: another process (the CLI enrolling a PC
    // while the server runs) then waits on busy_timeout instead of failing mid-way.
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, jobs = count, "cannot begin a write transaction");
            let why = e.to_string();
            for job in group.drain(..) {
                job.finish(Err(why.clone()));
            }
            return false;
        }
    };
    let mut done: Vec<Box<dyn Job>> = Vec::with_capacity(count);
    for mut job in group.drain(..) {
        match tx.savepoint() {
            Ok(savepoint) => {
                if job.run(&savepoint)
                    && let Err(e) = savepoint.commit()
                {
                    job.fail(e.to_string());
                }
                // A savepoint dropped without commit rolls back to where it began.
            }
            Err(e) => job.fail(e.to_string()),
        }
        done.push(job);
    }
    let committed = tx.commit().map_err(|e| {
        tracing::error!(error = %e, jobs = count, "commit failed; the group's work is lost and will be retried by its clients");
        e.to_string()
    });
    let ok = committed.is_ok();
    for job in done {
        job.finish(committed.clone());
    }
    ok
}
