//! One sync run: measure the clock offset, then push batches from the last
//! acknowledged seq until nothing is left, retrying each batch unchanged after network
//! errors, timeouts and 5xx with capped, jittered back-off.

use jejak_domain::RecordKind;
use std::time::{Duration, Instant};

use jejak_agent::store::{Store, StoreError, SyncProblem};
use jejak_domain::{ClockAnchor, Problem, RejectedRecord};

use crate::backoff::Backoff;
use crate::batching::{self, PreparedBatch};
use crate::client::{PushError, SyncClient};

/// How a sync run behaves.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Changes per batch: small enough that one batch crosses a 64 kbit/s link well
    /// within the request timeout (500 realistic records compress to about 20 KB).
    pub max_records: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Attempts per exchange before giving up; `None` retries forever (the agent).
    pub max_attempts: Option<u32>,
    /// Build the batches and report them, but send nothing.
    pub dry_run: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            max_records: 500,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(180),
            max_attempts: None,
            dry_run: false,
        }
    }
}

/// Where a sync run stands, for progress bars and log lines.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub batches: u32,
    pub records_sent: u64,
    pub bytes_sent: u64,
    /// The seq the server now holds, and the last seq there is.
    pub held_seq: u64,
    pub last_seq: u64,
    pub elapsed: Duration,
    /// Retries so far (network errors, timeouts, 5xx, answers that were not answers).
    pub retries: u32,
}

/// What a sync run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncReport {
    pub server: String,
    pub nothing_to_send: bool,
    pub dry_run: bool,
    pub batches: u32,
    /// Records in the batches: the newest revision of each session and every pc event.
    pub records_sent: u64,
    /// Changes of the change log the batches cover (seqs), what people are told as
    /// "catatan": a session started and ended is two changes and one record.
    pub changes_sent: u64,
    /// Compressed bytes of the batch bodies (each attempt counted).
    pub bytes_sent: u64,
    /// Bytes of the batches' JSON before compression.
    pub json_bytes: u64,
    pub new: u64,
    pub duplicates: u64,
    pub rejected: Vec<RejectedRecord>,
    pub held_seq: u64,
    pub pending_after: u64,
    pub retries: u32,
    /// The PC's clock minus the server's, as measured at the start (ms).
    pub clock_offset_ms: Option<i64>,
    pub clock_uncertainty_ms: Option<u64>,
    pub elapsed_ms: u64,
}

/// Why a sync run stopped without finishing. The data stays on the PC in every case.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no link to the server after {attempts} {}: {last_error}", tries(*.attempts))]
    NoLink { attempts: u32, last_error: String },
    /// The server answered, but failed (5xx): with `store_unavailable` it is up and
    /// cannot store just now (its database is down or its disk full), which is no
    /// link problem.
    #[error("the server {} after {attempts} {}: {last_error}{}",
        if *.store_unavailable { "cannot store right now" } else { "failed" },
        tries(*.attempts),
        .retry_after.map(|d| format!(" (it asks to retry in {} s)", d.as_secs())).unwrap_or_default())]
    ServerUnavailable {
        attempts: u32,
        store_unavailable: bool,
        retry_after: Option<Duration>,
        last_error: String,
    },
    #[error("the server refused the token{}: {detail}", if *.revoked { " (revoked)" } else { "" })]
    Unauthorized { revoked: bool, detail: String },
    #[error("the server refused the batch ({}): {}", .problem.status, .problem.detail)]
    Refused { problem: Problem },
    #[error("the server and this PC disagree about the change log: {0}")]
    NoProgress(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn tries(n: u32) -> &'static str {
    if n == 1 { "attempt" } else { "attempts" }
}

impl SyncError {
    /// Why the sync stopped, as people are told (`None` for a store error, which is
    /// reported as the store's own error).
    pub fn problem(&self) -> Option<SyncProblem> {
        Some(match self {
            SyncError::NoLink { .. } => SyncProblem::NoLink,
            SyncError::ServerUnavailable {
                store_unavailable: true,
                ..
            } => SyncProblem::ServerCannotStore,
            SyncError::ServerUnavailable { .. } => SyncProblem::ServerFailing,
            SyncError::Unauthorized { revoked: true, .. } => SyncProblem::TokenRevoked,
            SyncError::Unauthorized { .. } => SyncProblem::TokenRefused,
            SyncError::Refused { .. } => SyncProblem::Refused,
            SyncError::NoProgress(_) => SyncProblem::OutOfStep,
            SyncError::Store(_) => return None,
        })
    }

    /// Why a retryable exchange gave up after `attempts` tries.
    fn gave_up(error: &PushError, attempts: u32) -> SyncError {
        match error {
            PushError::Server { retry_after, .. } => SyncError::ServerUnavailable {
                attempts,
                store_unavailable: error.is_store_unavailable(),
                retry_after: *retry_after,
                last_error: error.to_string(),
            },
            other => SyncError::NoLink {
                attempts,
                last_error: other.to_string(),
            },
        }
    }
}

/// The longest `Retry-After` a sync someone waits for (`jejak sync`, "Sync now")
/// sleeps through; when the server asks for more, it stops and says so instead. The
/// agent's own sync waits as long as it is asked.
const MANUAL_RETRY_AFTER_LIMIT: Duration = Duration::from_secs(60);

/// After a failed try of a retryable exchange: whether to try again, having waited
/// the back-off's pause or, when longer, what the server asked for (`Retry-After`), so
/// the PC never sends sooner than the server asks.
async fn wait_before_retry(
    error: &PushError,
    attempts: u32,
    options: &SyncOptions,
    backoff: &mut Backoff,
    report: &mut SyncReport,
) -> bool {
    if options.max_attempts.is_some_and(|max| attempts >= max) {
        return false;
    }
    let asked = error.retry_after();
    if options.max_attempts.is_some() && asked.is_some_and(|d| d > MANUAL_RETRY_AFTER_LIMIT) {
        return false;
    }
    let pause = backoff.next_pause().max(asked.unwrap_or_default());
    report.retries += 1;
    tracing::warn!(error = %error, attempt = attempts, pause_ms = pause.as_millis() as u64,
        retry_after_secs = asked.map(|d| d.as_secs()), "not acknowledged; retrying");
    tokio::time::sleep(pause).await;
    true
}

/// Registers the PC's signing key with the server when it is not known to be
/// registered under this token and server. A failure never stops the sync: the data
/// goes over HTTP all the same, and the next sync tries again.
async fn register_signing_key(client: &SyncClient) {
    let Some(signing) = client.signing() else {
        return;
    };
    let (data_dir, key) = (&signing.data_dir, &signing.key);
    if crate::signing::is_registered(data_dir, client.server(), client.token(), key) {
        return;
    }
    match client.register_key(key).await {
        Ok(answer) => {
            tracing::info!(fingerprint = %key.fingerprint(), new = answer.new,
                "the server holds this PC's signing key");
            if let Err(e) =
                crate::signing::mark_registered(data_dir, client.server(), client.token(), key)
            {
                tracing::warn!(error = %e, "could not note the signing key's registration; it is sent again next time");
            }
        }
        Err(PushError::Refused { problem }) if problem.kind == "key-conflict" => {
            tracing::error!(fingerprint = %key.fingerprint(),
                "the server holds another signing key for this token; USB bundles of this PC will be refused until the district enrolls it again");
        }
        Err(e) => {
            tracing::warn!(error = %e, "the signing key could not be registered; tried again at the next sync")
        }
    }
}

/// Runs one sync: everything not yet acknowledged, in order.
pub async fn sync_once(
    store: &mut Store,
    client: &SyncClient,
    options: &SyncOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let state = store.sync_state()?;
    let mut report = SyncReport {
        server: client.server().to_string(),
        dry_run: options.dry_run,
        held_seq: state.acked_seq,
        ..SyncReport::default()
    };
    if state.pending() == 0 && (options.dry_run || !server_lost_changes(store, client).await?) {
        report.nothing_to_send = true;
        return Ok(report);
    }
    let state = store.sync_state()?;
    if options.dry_run {
        let sent = store.client_instant()?;
        let mut cursor = state.acked_seq;
        // What the server last said it takes: a dry run asks nothing.
        let kinds = store.server_accepts()?;
        if let Some(batch) = batching::prepare_held_back(store, options.max_records, sent, &kinds)?
        {
            report.batches += 1;
            report.records_sent += batch.records() as u64;
            report.changes_sent += batch.releases.len() as u64;
            report.bytes_sent += batch.body.len() as u64;
            report.json_bytes += batch.json_bytes as u64;
        }
        while let Some(batch) = batching::prepare(store, cursor, options.max_records, sent, &kinds)?
        {
            report.batches += 1;
            report.records_sent += batch.records() as u64;
            report.changes_sent += batch.changes();
            report.bytes_sent += batch.body.len() as u64;
            report.json_bytes += batch.json_bytes as u64;
            cursor = batch.wire.last_seq;
        }
        report.pending_after = state.pending();
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }

    let mut backoff = Backoff::new(options.backoff_base, options.backoff_cap);
    let outcome = run(
        store,
        client,
        options,
        progress,
        &mut report,
        &mut backoff,
        started,
    )
    .await;
    report.retries = report.retries.max(backoff.attempts());
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(()) => {
            let after = store.sync_state()?;
            report.held_seq = after.acked_seq;
            report.pending_after = after.pending();
            Ok(report)
        }
        Err(e) => {
            if let Some(problem) = e.problem() {
                store.record_sync_failure(problem, &e.to_string())?;
            }
            Err(e)
        }
    }
}

/// The kinds the server takes (`GET /api/v1/devices/me`), kept in the store for dry
/// runs and USB bundles; what the store last heard when the server cannot be asked.
async fn accepted_kinds(
    store: &mut Store,
    client: &SyncClient,
) -> Result<Vec<RecordKind>, SyncError> {
    match client.held_state().await {
        Ok(held) => {
            let kinds = held.accepted_kinds();
            store.save_server_accepts(&kinds)?;
            Ok(kinds)
        }
        Err(e) => {
            tracing::debug!(error = %e, "could not ask the server which kinds it takes");
            Ok(store.server_accepts()?)
        }
    }
}

/// With nothing new to send, asks the server what it holds of this store's epoch: a
/// server restored from an older backup (or one that lost the epoch) holds less than it
/// acknowledged, and the PC must send the difference again. Returns whether it does.
/// A server that cannot be asked leaves things as they are (the next sync asks again).
async fn server_lost_changes(store: &mut Store, client: &SyncClient) -> Result<bool, SyncError> {
    let acked = store.sync_state()?.acked_seq;
    if acked == 0 {
        return Ok(false);
    }
    match client.held_state().await {
        Ok(held) => {
            let held_seq = held.held_seq(store.epoch());
            Ok(store.rewind_ack(store.epoch(), held_seq)?.is_some())
        }
        Err(e) => {
            tracing::debug!(error = %e, "could not ask the server what it holds");
            Ok(false)
        }
    }
}

async fn run(
    store: &mut Store,
    client: &SyncClient,
    options: &SyncOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
    report: &mut SyncReport,
    backoff: &mut Backoff,
    started: Instant,
) -> Result<(), SyncError> {
    // The clock first: every batch of this run then carries an anchor for the current
    // boot, so the server can date its records whatever the wall clock says.
    let anchor = measure_clock(store, client, options, backoff, report).await?;
    store.save_anchor(anchor.0)?;
    register_signing_key(client).await;
    report.clock_offset_ms = Some(anchor.1);
    report.clock_uncertainty_ms = Some(anchor.0.uncertainty_ms);
    tracing::info!(
        offset_ms = anchor.1,
        uncertainty_ms = anchor.0.uncertainty_ms,
        "clock offset measured"
    );

    let kinds = accepted_kinds(store, client).await?;
    let mut max_records = options.max_records.max(1);
    let mut cursor = store.sync_state()?.acked_seq;
    let mut gaps_without_progress = 0;
    loop {
        let sent = store.client_instant()?;
        // Changes held back for an older server go first once the server takes them;
        // then the queue.
        let batch = match batching::prepare_held_back(store, max_records, sent, &kinds)? {
            Some(batch) => batch,
            None => match batching::prepare(store, cursor, max_records, sent, &kinds)? {
                Some(batch) => batch,
                None => return Ok(()),
            },
        };
        let (pushed, attempts) =
            push_with_retries(store, client, options, backoff, report, &batch).await;
        match pushed {
            Ok(ack) if !batch.releases.is_empty() => {
                store.release_held_back(&batch.releases, &ack.rejected)?;
                report.batches += 1;
                report.records_sent += batch.records() as u64;
                report.changes_sent += batch.releases.len() as u64;
                report.json_bytes += batch.json_bytes as u64;
                report.new += u64::from(ack.new);
                report.duplicates += u64::from(ack.duplicates);
                report.rejected.extend(ack.rejected.iter().cloned());
                tracing::info!(
                    batch = %batch.wire.batch_id,
                    records = batch.records(),
                    new = ack.new,
                    "held-back records acknowledged"
                );
            }
            Ok(ack) => {
                store.record_ack(ack.epoch, ack.held_seq, &ack.rejected, &batch.kinds)?;
                report.batches += 1;
                report.records_sent += batch.records() as u64;
                report.changes_sent += batch.changes();
                report.json_bytes += batch.json_bytes as u64;
                report.new += u64::from(ack.new);
                report.duplicates += u64::from(ack.duplicates);
                report.rejected.extend(ack.rejected.iter().cloned());
                if ack.held_seq <= cursor {
                    return Err(SyncError::NoProgress(format!(
                        "the server acknowledged seq {} after a batch up to {}",
                        ack.held_seq, batch.wire.last_seq
                    )));
                }
                cursor = ack.held_seq;
                gaps_without_progress = 0;
                tracing::info!(
                    batch = %batch.wire.batch_id,
                    records = batch.records(),
                    bytes = batch.body.len(),
                    held_seq = ack.held_seq,
                    new = ack.new,
                    duplicates = ack.duplicates,
                    rejected = ack.rejected.len(),
                    "batch acknowledged"
                );
                progress(&Progress {
                    batches: report.batches,
                    records_sent: report.records_sent,
                    bytes_sent: report.bytes_sent,
                    held_seq: ack.held_seq,
                    last_seq: store.sync_state()?.last_seq,
                    elapsed: started.elapsed(),
                    retries: backoff.attempts(),
                });
            }
            Err(PushError::Gap { expected_seq }) => {
                let held = expected_seq.saturating_sub(1);
                tracing::warn!(
                    expected_seq,
                    cursor,
                    "the server expects another seq; resuming there"
                );
                gaps_without_progress += 1;
                if gaps_without_progress > 3 {
                    return Err(SyncError::NoProgress(format!(
                        "the server keeps asking for seq {expected_seq}"
                    )));
                }
                if held > cursor {
                    // The server holds more than this PC knew: an acknowledgement was lost.
                    // Which kinds the batches it acknowledged carried is not known here:
                    // assuming the fewest holds back every other kind, to be sent again
                    // (a duplicate at worst) rather than taken as held.
                    store.record_ack(batch.wire.epoch, held, &[], &RecordKind::WIRE_V1)?;
                } else if held < cursor {
                    // The server holds less than it acknowledged (restored from an older
                    // backup): what it lost counts as unsent again, so it is kept and
                    // sent from what this PC still has.
                    store.rewind_ack(batch.wire.epoch, held)?;
                }
                cursor = held;
            }
            Err(PushError::Refused { problem }) if problem.status == 413 && max_records > 1 => {
                max_records = (max_records / 2).max(1);
                tracing::warn!(
                    max_records,
                    "batch too large for the server; sending smaller batches"
                );
            }
            Err(PushError::Refused { problem }) => return Err(SyncError::Refused { problem }),
            Err(PushError::Unauthorized { revoked, detail }) => {
                return Err(SyncError::Unauthorized { revoked, detail });
            }
            Err(other) => return Err(SyncError::gave_up(&other, attempts)),
        }
    }
}

/// Pushes one batch, retrying the same bytes under the same batch id while the error
/// is one that waiting can cure. Each acknowledged exchange also refines the anchor.
/// Returns the outcome and how many tries it took.
async fn push_with_retries(
    store: &mut Store,
    client: &SyncClient,
    options: &SyncOptions,
    backoff: &mut Backoff,
    report: &mut SyncReport,
    batch: &PreparedBatch,
) -> (Result<jejak_domain::BatchAck, PushError>, u32) {
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let t1 = store.mono_now();
        report.bytes_sent += batch.body.len() as u64;
        match client.push(batch).await {
            Ok(ack) => {
                let t4 = store.mono_now();
                let anchor = ClockAnchor::measure(
                    batch.wire.sent.run,
                    t1,
                    ack.received_at_ms,
                    ack.sent_at_ms,
                    t4,
                );
                if let Err(e) = store.save_anchor(anchor) {
                    tracing::warn!(error = %e, "could not keep the clock anchor");
                }
                return (Ok(ack), attempts);
            }
            Err(e) if e.is_retryable() => {
                if !wait_before_retry(&e, attempts, options, backoff, report).await {
                    return (Err(e), attempts);
                }
            }
            Err(e) => return (Err(e), attempts),
        }
    }
}

/// The time probe, retried like a batch. Returns the anchor and the PC's wall clock
/// minus the server's clock.
async fn measure_clock(
    store: &mut Store,
    client: &SyncClient,
    options: &SyncOptions,
    backoff: &mut Backoff,
    report: &mut SyncReport,
) -> Result<(ClockAnchor, i64), SyncError> {
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let instant = store.client_instant()?;
        let t1 = store.mono_now();
        let answer = client.server_time().await;
        let t4 = store.mono_now();
        match answer {
            Ok(time) => {
                let anchor =
                    ClockAnchor::measure(instant.run, t1, time.received_at_ms, time.sent_at_ms, t4);
                let wall_at_anchor =
                    instant.wall_ms + (anchor.mono_ms as i64 - instant.mono_ms as i64);
                return Ok((anchor, wall_at_anchor - anchor.server_ms));
            }
            Err(e) if e.is_retryable() => {
                if !wait_before_retry(&e, attempts, options, backoff, report).await {
                    return Err(SyncError::gave_up(&e, attempts));
                }
            }
            Err(PushError::Unauthorized { revoked, detail }) => {
                return Err(SyncError::Unauthorized { revoked, detail });
            }
            Err(PushError::Refused { problem }) => return Err(SyncError::Refused { problem }),
            Err(e) => {
                return Err(SyncError::NoLink {
                    attempts,
                    last_error: e.to_string(),
                });
            }
        }
    }
}
