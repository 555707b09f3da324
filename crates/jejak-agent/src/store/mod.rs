//! The PC's durable local store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction that also appends to the change log
//! with the device's next `seq`; a call returns only after its commit, so whatever it
//! reports is on disk. Several processes (the agent and the CLI) may hold a `Store` on
//! the same file at once: SQLite's write lock orders them.

mod attend;
mod desk;
mod error;
mod lock;
mod prune;
mod schema;
mod sync_state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jejak_domain::{
    AgeGroup, ChangeRecord, DeviceIdentity, EndReason, Gender, PatronKey, PatronProfile, PcEvent,
    PcEventKind, Purpose, RecordBody, Session, TimeQuality, UserKind, Zone,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

pub use desk::{ActivityInput, VisitInput, short_id};
pub use error::StoreError;
pub use prune::{PrunePolicy, PruneReport, StoreUsage};
pub use sync_state::{RejectedChange, SyncProblem, SyncState, waiting_text};

use crate::clock::{Clock, earliest_plausible_wall};

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// A wall clock that moves this much more or less than the monotonic clock between two
/// writes has been set or has jumped.
const DEFAULT_JUMP_TOLERANCE_MS: i64 = 120_000;

/// Interface byte counters read at one moment (received, sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetCounters {
    pub rx: u64,
    pub tx: u64,
}

/// What opening the store found.
#[derive(Debug, Clone)]
pub struct OpenReport {
    /// The file did not exist and was created with a new epoch.
    pub created: bool,
    /// The file was damaged and was moved here (never deleted); the store started
    /// afresh with a new epoch.
    pub quarantined: Option<PathBuf>,
}

/// A session started, and the one it replaced if one was still open.
#[derive(Debug, Clone)]
pub struct Started {
    pub session: Session,
    pub replaced: Option<Session>,
}

/// What the agent did at start with a session an earlier run left open.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    /// Same boot and a recent heartbeat: the patron is still there.
    Continued(Session),
    /// Closed at its last heartbeat, as `power_loss` (the PC rebooted) or `crash`
    /// (only the agent died, long enough ago).
    Closed(Session),
}

/// The result of one heartbeat.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatOutcome {
    /// The open session, brought up to date.
    pub session: Option<Session>,
    /// The seq of the `heartbeat` pc event, when one was written.
    pub event_seq: Option<u64>,
}

/// A clock problem worth showing the librarian.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClockWarning {
    pub kind: PcEventKind,
    pub at: DateTime<Utc>,
    pub delta_ms: Option<i64>,
}

/// A wall-clock jump beyond this (a day) is no drift correction: the clock had been
/// reset (a dead CMOS battery resets it at every power cut) and was set right.
pub const CLOCK_RESET_JUMP_MS: i64 = 86_400_000;

/// What the librarian is told about this PC's clock (`jejak status`, the librarian
/// screen): the same judgement in both places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClockState {
    /// The clock reads a time that cannot be right (before this software was built).
    WrongNow,
    /// The clock is plausible now but was wrong recently: it jumped by `jump_ms` at
    /// `at`, or read an impossible time, as a reset clock does after a power cut.
    WasWrong {
        at: DateTime<Utc>,
        jump_ms: Option<i64>,
    },
    /// Nothing points to a wrong clock.
    Plausible,
}

impl ClockState {
    /// Whether the librarian must act.
    pub fn is_wrong(&self) -> bool {
        !matches!(self, ClockState::Plausible)
    }

    /// What to say, plainly, with what to do.
    pub fn advice(&self, lang: jejak_domain::Lang) -> String {
        match self {
            ClockState::WrongNow => lang
                .pick(
                    "SALAH — tanggal atau jam komputer ini tidak mungkin benar. Setel tanggal dan jamnya sekarang; jika jam kembali salah setiap listrik padam, ganti baterai CMOS (baterai kancing di papan induk).",
                    "WRONG — this PC's date or time cannot be right. Set the date and time now; if the clock goes wrong after every power cut, replace the CMOS battery (the coin battery on the motherboard).",
                )
                .to_string(),
            ClockState::WasWrong { at, jump_ms } => {
                let jump = jump_ms.map(describe_jump).unwrap_or_default();
                let when = at.format("%Y-%m-%d %H:%M UTC");
                match lang {
                    jejak_domain::Lang::Id => format!(
                        "PERNAH SALAH — jam komputer ini baru-baru ini salah lalu disetel ulang{jump} ({when}). Biasanya baterai CMOS sudah habis: ganti baterainya, dan sampai itu, periksa tanggal dan jam setiap kali komputer menyala setelah listrik padam."
                    ),
                    jejak_domain::Lang::En => format!(
                        "WAS WRONG — this PC's clock was wrong recently and was set again{jump} ({when}). Usually the CMOS battery is dead: replace it, and until then check the date and time whenever the PC starts after a power cut."
                    ),
                }
            }
            ClockState::Plausible => lang.pick("wajar", "plausible").to_string(),
        }
    }
}

/// A clock jump as people read it: `, +27 years`, `, -3 days`.
fn describe_jump(ms: i64) -> String {
    let days = ms / 86_400_000;
    if days.abs() >= 365 {
        format!(", {:+} y", days / 365)
    } else {
        format!(", {days:+} d")
    }
}

/// Everything `jejak status` shows about the store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreStatus {
    pub epoch: Uuid,
    pub path: PathBuf,
    pub open_session: Option<Session>,
    pub last_seq: u64,
    pub acked_seq: u64,
    pub pending_changes: u64,
    pub sessions_today: u64,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub clock_suspect_now: bool,
    pub clock_warnings: Vec<ClockWarning>,
    /// The judgement the librarian is told (from the two fields above).
    pub clock: ClockState,
    pub quick_check: String,
    pub recovered_from: Option<String>,
    pub file_bytes: u64,
}

/// The local store of one PC.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Every record this store writes is stamped with this library and PC.
    identity: DeviceIdentity,
    clock: Arc<dyn Clock>,
    /// Changes when a damaged store is replaced, so the server can tell that seqs
    /// started again at 1.
    epoch: Uuid,
    jump_tolerance_ms: i64,
    /// A wall time before this is a wrong clock (by default the build date).
    earliest_plausible_wall: DateTime<Utc>,
    /// The file this connection opened: if another process moves a damaged store aside,
    /// the path names a new file and this connection must not keep writing to the old one.
    file_identity: Option<(u64, u64)>,
}

enum OpenFailure {
    Corrupt(String),
    Other(StoreError),
}

impl Store {
    /// Opens (or creates) the store, checks it with `PRAGMA quick_check`, moves a damaged
    /// file aside and starts a fresh one, and applies pending migrations.
    pub fn open(
        path: &Path,
        identity: DeviceIdentity,
        clock: Arc<dyn Clock>,
    ) -> Result<(Store, OpenReport), StoreError> {
        let _lock = lock::OpenLock::acquire(path)?;
        let created = !path.exists();
        let (conn, quarantined) = match open_connection(path) {
            Ok(conn) => (conn, None),
            Err(OpenFailure::Other(e)) => return Err(e),
            Err(OpenFailure::Corrupt(why)) => {
                tracing::error!(path = %path.display(), problem = %why, "local store is damaged; moving it aside");
                let moved = quarantine(path, clock.wall())?;
                let conn = open_connection(path).map_err(|f| match f {
                    OpenFailure::Other(e) => e,
                    OpenFailure::Corrupt(why) => StoreError::Corrupt(why),
                })?;
                (conn, Some(moved))
            }
        };
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            identity,
            clock,
            epoch: Uuid::nil(),
            jump_tolerance_ms: DEFAULT_JUMP_TOLERANCE_MS,
            earliest_plausible_wall: earliest_plausible_wall(),
            file_identity: crate::platform::file_identity(path),
        };
        store.epoch = store.ensure_epoch()?;
        if let Some(moved) = &quarantined {
            let name = moved
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            store.write(|w| {
                w.tx.execute(
                    "INSERT OR REPLACE INTO store_meta (key, value) VALUES ('recovered_from', ?1)",
                    [&name],
                )?;
                w.event(PcEventKind::StoreRecovered, None)?;
                Ok(())
            })?;
        }
        Ok((
            store,
            OpenReport {
                created: created || quarantined.is_some(),
                quarantined,
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn epoch(&self) -> Uuid {
        self.epoch
    }

    /// The store's monotonic clock now, in milliseconds since the boot.
    pub fn monotonic_ms(&self) -> u64 {
        self.clock.mono_ms()
    }

    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Opens the store again at the same path (after `StoreError::needs_reopen`).
    pub fn reopen(&self) -> Result<(Store, OpenReport), StoreError> {
        let (mut store, report) =
            Store::open(&self.path, self.identity.clone(), self.clock.clone())?;
        store.jump_tolerance_ms = self.jump_tolerance_ms;
        store.earliest_plausible_wall = self.earliest_plausible_wall;
        Ok((store, report))
    }

    /// Lets a test or the demo use a tighter or looser clock-jump threshold.
    pub fn set_jump_tolerance(&mut self, tolerance: Duration) {
        self.jump_tolerance_ms = tolerance.as_millis() as i64;
    }

    /// Moves the earliest plausible wall time: the demo replays a month that lies
    /// before the build date, which a real PC's clock never legitimately does.
    pub fn set_earliest_plausible_wall(&mut self, earliest: DateTime<Utc>) {
        self.earliest_plausible_wall = earliest;
    }

    /// Gives SQLite a page limit, so that tests can make "disk full" happen on purpose.
    pub fn limit_pages_for_test(&self, pages: u64) -> Result<(), StoreError> {
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(|e| StoreError::from_sqlite(&self.path, e))
    }

    fn ensure_epoch(&mut self) -> Result<Uuid, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        tx.execute(
            "INSERT OR IGNORE INTO store_meta (key, value) VALUES ('epoch', ?1)",
            [Uuid::now_v7().to_string()],
        )
        .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        let raw: String = tx
            .query_row(
                "SELECT value FROM store_meta WHERE key = 'epoch'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        tx.commit()
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        Uuid::parse_str(&raw).map_err(|e| StoreError::Corrupt(format!("epoch '{raw}': {e}")))
    }

    /// Runs `f` in one immediate transaction and commits. The clock is read after the
    /// write lock is taken, so seq order and time order agree between processes.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        if crate::platform::file_identity(&self.path) != self.file_identity {
            return Err(StoreError::Replaced {
                path: self.path.clone(),
            });
        }
        let path = self.path.clone();
        let sqlite = |e| StoreError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let mut writer = Writer {
            tx: &tx,
            identity: &self.identity,
            now: Now {
                // Milliseconds, as stored here and sent on the wire: a record reads the
                // same on the PC and on the server.
                wall: millis_to_time(self.clock.wall().timestamp_millis()),
                mono_ms: self.clock.mono_ms() as i64,
            },
            run: RunState::default(),
        };
        writer
            .enter_run(
                &self.clock.boot_id(),
                self.jump_tolerance_ms,
                self.earliest_plausible_wall,
            )
            .map_err(sqlite)?;
        let out = f(&mut writer).map_err(|e| match e {
            rusqlite::Error::ToSqlConversionFailure(inner) => {
                match inner.downcast::<StoreError>() {
                    Ok(store_error) => *store_error,
                    Err(other) => {
                        StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(other))
                    }
                }
            }
            other => sqlite(other),
        })?;
        tx.commit().map_err(sqlite)?;
        Ok(out)
    }

    /// Starts a session. A session still open on this PC is ended first, as
    /// `staff_ended` (or as `power_loss` at its last heartbeat if the PC rebooted since).
    pub fn start_session(
        &mut self,
        profile: PatronProfile,
        net: Option<NetCounters>,
    ) -> Result<Started, StoreError> {
        profile.validate()?;
        self.write(|w| {
            let replaced = match w.open_row()? {
                Some(row) => Some(w.close_open(row, EndReason::StaffEnded, net, None)?),
                None => None,
            };
            let session = w.insert_new_session(profile, net)?;
            Ok(Started { session, replaced })
        })
    }

    /// Ends the open session with `reason`.
    pub fn end_session(
        &mut self,
        reason: EndReason,
        net: Option<NetCounters>,
    ) -> Result<Session, StoreError> {
        self.write(|w| match w.open_row()? {
            Some(row) => w.close_open(row, reason, net, None),
            None => Err(fail(StoreError::NoOpenSession)),
        })
    }

    /// Keeps the open session's last-seen time, bytes and online time current, and
    /// every so often writes a `heartbeat` pc event for the server's uptime figures.
    pub fn heartbeat(
        &mut self,
        net: Option<NetCounters>,
        link_up: Option<bool>,
        write_event: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        self.write(|w| {
            w.tx.execute(
                "UPDATE runs SET last_heartbeat_wall_ms = ?1, last_heartbeat_mono_ms = ?2,
                 heartbeats = heartbeats + 1 WHERE run_id = ?3",
                params![
                    w.now.wall.timestamp_millis(),
                    w.now.mono_ms,
                    w.run.run_id.to_string()
                ],
            )?;
            let session = match w.open_row()? {
                Some(mut row) if row.boot_id == w.run.boot_id => {
                    row.advance(&w.now, net, link_up);
                    w.save_row(&row)?;
                    Some(row.to_session(w.identity))
                }
                _ => None,
            };
            let event_seq = if write_event {
                Some(w.event(PcEventKind::Heartbeat, None)?)
            } else {
                None
            };
            Ok(HeartbeatOutcome { session, event_seq })
        })
    }

    /// At the agent's start: decides what happened to a session an earlier run left open.
    /// `grace` is how old the last heartbeat may be for the session to simply continue.
    pub fn recover_open_session(
        &mut self,
        grace: Duration,
    ) -> Result<Option<Recovery>, StoreError> {
        self.write(|w| {
            let Some(row) = w.open_row()? else {
                return Ok(None);
            };
            let rebooted = row.boot_id != w.run.boot_id;
            let silent_ms = w.now.mono_ms - row.last_seen_mono_ms;
            if !rebooted && silent_ms <= grace.as_millis() as i64 {
                return Ok(Some(Recovery::Continued(row.to_session(w.identity))));
            }
            let reason = if rebooted {
                EndReason::PowerLoss
            } else {
                EndReason::Crash
            };
            let closed = w.close_at_last_seen(row, reason)?;
            Ok(Some(Recovery::Closed(closed)))
        })
    }

    /// After the PC slept or hibernated (Windows' Fast Startup "shut down" included): the
    /// open session of this boot, silent for longer than `max_silence`, is closed at its
    /// last heartbeat as `idle` — nobody uses a sleeping PC — with its end an estimate.
    /// Returns the closed session, or `None` when nothing was open or it was not silent.
    pub fn end_session_after_sleep(
        &mut self,
        max_silence: Duration,
    ) -> Result<Option<Session>, StoreError> {
        self.write(|w| match w.open_row()? {
            Some(row)
                if row.boot_id == w.run.boot_id
                    && w.now.mono_ms - row.last_seen_mono_ms > max_silence.as_millis() as i64 =>
            {
                Ok(Some(w.close_at_last_seen(row, EndReason::Idle)?))
            }
            _ => Ok(None),
        })
    }

    /// Records a pc event and returns its seq.
    pub fn record_event(&mut self, kind: PcEventKind) -> Result<u64, StoreError> {
        self.write(|w| w.event(kind, None))
    }

    pub fn open_session(&self) -> Result<Option<Session>, StoreError> {
        let row = read_open_row(&self.conn).map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        Ok(row.map(|r| r.to_session(&self.identity)))
    }

    /// The newest sessions first.
    pub fn recent_sessions(&self, limit: u32) -> Result<Vec<Session>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions ORDER BY started_wall_ms DESC, id DESC LIMIT ?1"
            ))
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        let rows = stmt
            .query_map([limit], SessionRow::from_row)
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        rows.map(|r| {
            r.map(|row| row.to_session(&self.identity))
                .map_err(|e| StoreError::from_sqlite(&self.path, e))
        })
        .collect()
    }

    /// Change records with `seq > after`, oldest first, at most `limit`.
    pub fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>, StoreError> {
        self.read_changes(
            "SELECT seq, recorded_wall_ms, run_id, mono_ms, body FROM changes
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            params![after as i64, limit],
        )
    }

    /// The change records a query selects (seq, wall ms, run, mono ms, body).
    fn read_changes(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, wall, run, mono, body) =
                row.map_err(|e| StoreError::from_sqlite(&self.path, e))?;
            let body: RecordBody = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("change {seq}: {e}")))?;
            out.push(ChangeRecord {
                seq: seq as u64,
                recorded_at: millis_to_time(wall),
                run_id: Uuid::parse_str(&run)
                    .map_err(|e| StoreError::Corrupt(format!("change {seq}: {e}")))?,
                mono_ms: mono.max(0) as u64,
                body,
            });
        }
        Ok(out)
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.pragma_check("integrity_check")
    }

    fn pragma_check(&self, pragma: &str) -> Result<String, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA {pragma}"))
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        let lines: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        Ok(lines.join("; "))
    }

    /// The store's state for `jejak status`; "today" is the day in the library's zone.
    pub fn status(&self, zone: Zone) -> Result<StoreStatus, StoreError> {
        let sqlite = |e| StoreError::from_sqlite(&self.path, e);
        let (last_seq, acked_seq): (i64, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT COALESCE(MAX(seq), 0) FROM changes),
                        (SELECT acked_seq FROM sync_state WHERE id = 1)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sqlite)?;
        let boot_id = self.clock.boot_id();
        let run: Option<(Option<i64>, bool)> = self
            .conn
            .query_row(
                "SELECT last_heartbeat_wall_ms, clock_suspect FROM runs WHERE boot_id = ?1",
                [&boot_id],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)),
            )
            .optional()
            .map_err(sqlite)?;
        let last_heartbeat: Option<i64> = self
            .conn
            .query_row("SELECT MAX(last_heartbeat_wall_ms) FROM runs", [], |r| {
                r.get(0)
            })
            .map_err(sqlite)?;
        let today_start = self
            .clock
            .wall()
            .with_timezone(&zone.offset())
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(zone.offset()).single())
            .map(|t| t.timestamp_millis())
            .unwrap_or(0);
        let sessions_today: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sessions WHERE started_wall_ms >= ?1",
                [today_start],
                |r| r.get(0),
            )
            .map_err(sqlite)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT body FROM changes WHERE record_kind = 'pc_event'
                 AND json_extract(body, '$.data.kind') IN ('clock_jump', 'clock_suspect')
                 ORDER BY seq DESC LIMIT 5",
            )
            .map_err(sqlite)?;
        let clock_warnings: Vec<ClockWarning> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sqlite)?
            .into_iter()
            .filter_map(|body| match serde_json::from_str(&body) {
                Ok(RecordBody::PcEvent(e)) => Some(ClockWarning {
                    kind: e.kind,
                    at: e.at,
                    delta_ms: e.clock_delta_ms,
                }),
                _ => None,
            })
            .collect();
        let recovered_from: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM store_meta WHERE key = 'recovered_from'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite)?;
        let file_bytes = ["", "-wal"]
            .iter()
            .filter_map(|suffix| {
                let mut p = self.path.clone().into_os_string();
                p.push(suffix);
                std::fs::metadata(p).ok().map(|m| m.len())
            })
            .sum();
        let wall_impossible = self.clock.wall() < self.earliest_plausible_wall;
        let clock_suspect_now = run.map(|(_, s)| s).unwrap_or(false) || wall_impossible;
        let clock = clock_state(wall_impossible, &clock_warnings);
        Ok(StoreStatus {
            epoch: self.epoch,
            path: self.path.clone(),
            open_session: self.open_session()?,
            last_seq: last_seq as u64,
            acked_seq: acked_seq as u64,
            // Changes held back for a server that takes their kind wait too.
            pending_changes: (last_seq - acked_seq).max(0) as u64 + self.sync_state()?.held_back,
            sessions_today: sessions_today as u64,
            last_heartbeat: last_heartbeat.map(millis_to_time),
            clock_suspect_now,
            clock_warnings,
            clock,
            quick_check: self.pragma_check("quick_check")?,
            recovered_from,
            file_bytes,
        })
    }
}

/// The librarian's judgement of the clock: wrong now (it reads an impossible time),
/// wrong recently (an impossible reading, or a jump of more than a day, among the latest
/// warnings), or plausible.
fn clock_state(wall_impossible: bool, warnings: &[ClockWarning]) -> ClockState {
    if wall_impossible {
        return ClockState::WrongNow;
    }
    warnings
        .iter()
        .find(|w| {
            w.kind == PcEventKind::ClockSuspect
                || w.delta_ms.is_some_and(|d| d.abs() > CLOCK_RESET_JUMP_MS)
        })
        .map_or(ClockState::Plausible, |w| ClockState::WasWrong {
            at: w.at,
            jump_ms: w.delta_ms,
        })
}

/// Wraps a store error so that it can travel through a rusqlite-typed closure.
fn fail(err: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(err))
}

fn open_connection(path: &Path) -> Result<Connection, OpenFailure> {
    // Another process may be creating or migrating the same file right now; its write
    // lock makes this one wait, and a few retries cover the moments when SQLite
    // refuses to wait (a deferred transaction upgrading to a writer).
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_open_connection(path) {
            Err(OpenFailure::Other(StoreError::Busy { .. })) if attempt < 50 => {
                std::thread::sleep(Duration::from_millis(20 * attempt.min(10)));
            }
            other => return other,
        }
    }
}

fn try_open_connection(path: &Path) -> Result<Connection, OpenFailure> {
    let classify = |e: rusqlite::Error| {
        if StoreError::is_corruption(&e) {
            OpenFailure::Corrupt(e.to_string())
        } else {
            OpenFailure::Other(StoreError::from_sqlite(path, e))
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| {
            OpenFailure::Other(StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })
        })?;
    }
    let mut conn = Connection::open(path).map_err(classify)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(classify)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenFailure::Other(StoreError::Corrupt(format!(
            "journal_mode is {mode}, not wal"
        ))));
    }
    // FULL, not NORMAL: in WAL mode only FULL syncs the log at every commit, which is
    // what "acknowledged means durable" needs across a power cut.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -512;",
    )
    .map_err(classify)?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(classify)?;
    if check != "ok" {
        return Err(OpenFailure::Corrupt(check));
    }
    schema::migrations()
        .to_latest(&mut conn)
        .map_err(|e| match &e {
            rusqlite_migration::Error::RusqliteError { err, .. } => {
                if StoreError::is_corruption(err) {
                    OpenFailure::Corrupt(e.to_string())
                } else if matches!(
                    err.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) {
                    OpenFailure::Other(StoreError::Busy {
                        path: path.to_path_buf(),
                    })
                } else {
                    OpenFailure::Other(StoreError::Migration(e))
                }
            }
            _ => OpenFailure::Other(StoreError::Migration(e)),
        })?;
    Ok(conn)
}

/// Moves a damaged store (and its WAL and shared-memory files) aside under a name with
/// the time, so that nothing is ever deleted and someone can try to salvage it.
fn quarantine(path: &Path, now: DateTime<Utc>) -> Result<PathBuf, StoreError> {
    // The random part keeps two quarantines in one millisecond from sharing a name.
    let stamp = format!(
        "{}-{:04x}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        rand::random::<u16>()
    );
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "jejak.db".into());
    let target = path.with_file_name(format!("{name}.corrupt-{stamp}"));
    std::fs::rename(path, &target).map_err(|source| StoreError::Quarantine {
        path: path.to_path_buf(),
        source,
    })?;
    for suffix in ["-wal", "-shm"] {
        let mut from = path.as_os_str().to_owned();
        from.push(suffix);
        let mut to = target.as_os_str().to_owned();
        to.push(suffix);
        if Path::new(&from).exists() {
            std::fs::rename(&from, &to).map_err(|source| StoreError::Quarantine {
                path: PathBuf::from(&from),
                source,
            })?;
        }
    }
    Ok(target)
}

fn millis_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

#[derive(Debug, Clone, Copy)]
struct Now {
    wall: DateTime<Utc>,
    mono_ms: i64,
}

#[derive(Debug, Default, Clone)]
struct RunState {
    run_id: Uuid,
    boot_id: String,
    clock_suspect: bool,
}

/// One write transaction in progress, with the time it is written at.
struct Writer<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    identity: &'t DeviceIdentity,
    now: Now,
    run: RunState,
}

impl Writer<'_> {
    /// Finds or creates the run of the current boot, and checks the wall clock against
    /// the monotonic clock since the last write of this run.
    fn enter_run(
        &mut self,
        boot_id: &str,
        jump_tolerance_ms: i64,
        earliest_plausible_wall: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        let existing: Option<(String, i64, i64, i64)> = self
            .tx
            .query_row(
                "SELECT run_id, anchor_wall_ms, anchor_mono_ms, clock_suspect FROM runs WHERE boot_id = ?1",
                [boot_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let wall_ms = self.now.wall.timestamp_millis();
        match existing {
            None => {
                self.run = RunState {
                    run_id: Uuid::now_v7(),
                    boot_id: boot_id.to_string(),
                    clock_suspect: false,
                };
                self.tx.execute(
                    "INSERT INTO runs (run_id, boot_id, started_wall_ms, started_mono_ms, anchor_wall_ms, anchor_mono_ms)
                     VALUES (?1, ?2, ?3, ?4, ?3, ?4)",
                    params![self.run.run_id.to_string(), boot_id, wall_ms, self.now.mono_ms],
                )?;
                self.event(PcEventKind::Boot, None)?;
            }
            Some((run_id, anchor_wall, anchor_mono, suspect)) => {
                self.run = RunState {
                    run_id: Uuid::parse_str(&run_id)
                        .map_err(|e| fail(StoreError::Corrupt(format!("run id: {e}"))))?,
                    boot_id: boot_id.to_string(),
                    clock_suspect: suspect != 0,
                };
                let expected_wall = anchor_wall + (self.now.mono_ms - anchor_mono);
                let delta = wall_ms - expected_wall;
                if delta.abs() > jump_tolerance_ms {
                    tracing::warn!(delta_ms = delta, "wall clock jumped");
                    self.event(PcEventKind::ClockJump, Some(delta))?;
                    // Wall times of a session that spans a jump cannot all be right.
                    self.tx.execute(
                        "UPDATE sessions SET time_quality = 'estimated'
                         WHERE ended_wall_ms IS NULL AND run_id = ?1",
                        [self.run.run_id.to_string()],
                    )?;
                }
                self.tx.execute(
                    "UPDATE runs SET anchor_wall_ms = ?1, anchor_mono_ms = ?2 WHERE run_id = ?3",
                    params![wall_ms, self.now.mono_ms, self.run.run_id.to_string()],
                )?;
            }
        }
        if !self.run.clock_suspect && self.now.wall < earliest_plausible_wall {
            tracing::warn!("wall clock reads a time before this build; times are estimates");
            self.run.clock_suspect = true;
            self.tx.execute(
                "UPDATE runs SET clock_suspect = 1 WHERE run_id = ?1",
                [self.run.run_id.to_string()],
            )?;
            self.event(PcEventKind::ClockSuspect, None)?;
        }
        Ok(())
    }

    /// Appends one change with the next seq; returns the seq.
    fn append(&self, body: &RecordBody) -> rusqlite::Result<u64> {
        let seq: i64 =
            self.tx
                .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM changes", [], |r| {
                    r.get(0)
                })?;
        let json = serde_json::to_string(body)
            .map_err(|e| fail(StoreError::Corrupt(format!("cannot encode record: {e}"))))?;
        self.tx.execute(
            "INSERT INTO changes (seq, record_kind, record_id, revision, run_id, recorded_wall_ms, mono_ms, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                seq,
                body.kind_code(),
                body.record_id().to_string(),
                body.revision(),
                self.run.run_id.to_string(),
                self.now.wall.timestamp_millis(),
                self.now.mono_ms,
                json
            ],
        )?;
        Ok(seq as u64)
    }

    fn event(&self, kind: PcEventKind, clock_delta_ms: Option<i64>) -> rusqlite::Result<u64> {
        self.append(&RecordBody::PcEvent(PcEvent {
            id: Uuid::now_v7(),
            library: self.identity.library.clone(),
            pc: self.identity.pc.clone(),
            kind,
            at: self.now.wall,
            run_id: self.run.run_id,
            mono_ms: self.now.mono_ms.max(0) as u64,
            clock_delta_ms,
        }))
    }

    fn open_row(&self) -> rusqlite::Result<Option<SessionRow>> {
        read_open_row(self.tx)
    }

    fn insert_new_session(
        &self,
        patron: PatronProfile,
        net: Option<NetCounters>,
    ) -> rusqlite::Result<Session> {
        let wall_ms = self.now.wall.timestamp_millis();
        let row = SessionRow {
            id: Uuid::now_v7(),
            revision: 0,
            run_id: self.run.run_id,
            boot_id: self.run.boot_id.clone(),
            started_wall_ms: wall_ms,
            started_mono_ms: self.now.mono_ms,
            ended_wall_ms: None,
            end_reason: None,
            duration_ms: 0,
            last_seen_wall_ms: wall_ms,
            last_seen_mono_ms: self.now.mono_ms,
            patron,
            bytes_rx: 0,
            bytes_tx: 0,
            online_ms: 0,
            net_seen: net,
            time_quality: if self.run.clock_suspect {
                TimeQuality::Estimated
            } else {
                TimeQuality::Trusted
            },
        };
        self.commit_revision(row)
    }

    /// Closes the open session: now with `reason` if it belongs to this boot, or at
    /// its last heartbeat as `power_loss` if the PC has rebooted since.
    fn close_open(
        &self,
        mut row: SessionRow,
        reason: EndReason,
        net: Option<NetCounters>,
        link_up: Option<bool>,
    ) -> rusqlite::Result<Session> {
        if row.boot_id != self.run.boot_id {
            return self.close_at_last_seen(row, EndReason::PowerLoss);
        }
        row.advance(&self.now, net, link_up);
        row.close(reason);
        self.commit_revision(row)
    }

    /// Closes a session at its last heartbeat: the end is an estimate.
    fn close_at_last_seen(
        &self,
        mut row: SessionRow,
        reason: EndReason,
    ) -> rusqlite::Result<Session> {
        row.time_quality = TimeQuality::Estimated;
        row.close(reason);
        self.commit_revision(row)
    }

    /// Saves the row as its next revision and appends that revision to the change log.
    fn commit_revision(&self, mut row: SessionRow) -> rusqlite::Result<Session> {
        row.revision += 1;
        self.save_row(&row)?;
        let session = row.to_session(self.identity);
        session
            .validate()
            .map_err(|e| fail(StoreError::Invalid(e)))?;
        self.append(&RecordBody::Session(session.clone()))?;
        Ok(session)
    }

    fn save_row(&self, row: &SessionRow) -> rusqlite::Result<()> {
        let purposes: Vec<&str> = row.patron.purposes.iter().map(|p| p.code()).collect();
        self.tx.execute(
            &format!(
                "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)
                 ON CONFLICT (id) DO UPDATE SET
                   revision = excluded.revision, ended_wall_ms = excluded.ended_wall_ms,
                   end_reason = excluded.end_reason, duration_ms = excluded.duration_ms,
                   last_seen_wall_ms = excluded.last_seen_wall_ms, last_seen_mono_ms = excluded.last_seen_mono_ms,
                   user_kind = excluded.user_kind, purposes = excluded.purposes, gender = excluded.gender,
                   age_group = excluded.age_group, group_size = excluded.group_size,
                   patron_key = excluded.patron_key, bytes_rx = excluded.bytes_rx, bytes_tx = excluded.bytes_tx,
                   online_ms = excluded.online_ms, net_rx_seen = excluded.net_rx_seen,
                   net_tx_seen = excluded.net_tx_seen, time_quality = excluded.time_quality"
            ),
            params![
                row.id.to_string(),
                row.revision,
                row.run_id.to_string(),
                row.boot_id,
                row.started_wall_ms,
                row.started_mono_ms,
                row.ended_wall_ms,
                row.end_reason.map(|r| r.code()),
                row.duration_ms,
                row.last_seen_wall_ms,
                row.last_seen_mono_ms,
                row.patron.user_kind.code(),
                purposes.join(","),
                row.patron.gender.code(),
                row.patron.age_group.code(),
                row.patron.group_size,
                row.patron.patron_key.as_ref().map(|k| k.as_str()),
                row.bytes_rx as i64,
                row.bytes_tx as i64,
                row.online_ms,
                row.net_seen.map(|n| n.rx as i64),
                row.net_seen.map(|n| n.tx as i64),
                row.time_quality.code(),
            ],
        )?;
        Ok(())
    }
}

const SESSION_COLUMNS: &str = "id, revision, run_id, boot_id, started_wall_ms, started_mono_ms, \
    ended_wall_ms, end_reason, duration_ms, last_seen_wall_ms, last_seen_mono_ms, user_kind, \
    purposes, gender, age_group, group_size, patron_key, bytes_rx, bytes_tx, online_ms, \
    net_rx_seen, net_tx_seen, time_quality";

fn read_open_row(conn: &Connection) -> rusqlite::Result<Option<SessionRow>> {
    conn.query_row(
        &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE ended_wall_ms IS NULL"),
        [],
        SessionRow::from_row,
    )
    .optional()
}

/// A session as the store keeps it: the domain session plus the local bookkeeping
/// (boot, last heartbeat, counter readings) that never leaves the PC.
#[derive(Debug, Clone)]
struct SessionRow {
    id: Uuid,
    revision: u32,
    run_id: Uuid,
    boot_id: String,
    started_wall_ms: i64,
    started_mono_ms: i64,
    ended_wall_ms: Option<i64>,
    end_reason: Option<EndReason>,
    duration_ms: i64,
    last_seen_wall_ms: i64,
    last_seen_mono_ms: i64,
    patron: PatronProfile,
    bytes_rx: u64,
    bytes_tx: u64,
    online_ms: i64,
    net_seen: Option<NetCounters>,
    time_quality: TimeQuality,
}

fn decode<T>(
    idx: usize,
    raw: &str,
    parse: impl Fn(&str) -> Result<T, jejak_domain::DomainError>,
) -> rusqlite::Result<T> {
    parse(raw).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl SessionRow {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
        let uuid = |idx: usize| -> rusqlite::Result<Uuid> {
            let raw: String = r.get(idx)?;
            Uuid::parse_str(&raw).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    idx,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
        };
        let end_reason: Option<String> = r.get(7)?;
        let purposes: String = r.get(12)?;
        let patron_key: Option<String> = r.get(16)?;
        let net_rx: Option<i64> = r.get(20)?;
        let net_tx: Option<i64> = r.get(21)?;
        Ok(SessionRow {
            id: uuid(0)?,
            revision: r.get(1)?,
            run_id: uuid(2)?,
            boot_id: r.get(3)?,
            started_wall_ms: r.get(4)?,
            started_mono_ms: r.get(5)?,
            ended_wall_ms: r.get(6)?,
            end_reason: end_reason
                .map(|s| decode(7, &s, EndReason::parse))
                .transpose()?,
            duration_ms: r.get(8)?,
            last_seen_wall_ms: r.get(9)?,
            last_seen_mono_ms: r.get(10)?,
            patron: PatronProfile {
                user_kind: decode(11, &r.get::<_, String>(11)?, UserKind::parse)?,
                purposes: purposes
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| decode(12, s, Purpose::parse))
                    .collect::<Result<_, _>>()?,
                gender: decode(13, &r.get::<_, String>(13)?, Gender::parse)?,
                age_group: decode(14, &r.get::<_, String>(14)?, AgeGroup::parse)?,
                group_size: r.get(15)?,
                patron_key: patron_key
                    .map(|k| decode(16, &k, PatronKey::parse))
                    .transpose()?,
            },
            bytes_rx: r.get::<_, i64>(17)?.max(0) as u64,
            bytes_tx: r.get::<_, i64>(18)?.max(0) as u64,
            online_ms: r.get(19)?,
            net_seen: net_rx.zip(net_tx).map(|(rx, tx)| NetCounters {
                rx: rx.max(0) as u64,
                tx: tx.max(0) as u64,
            }),
            time_quality: decode(22, &r.get::<_, String>(22)?, TimeQuality::parse)?,
        })
    }

    /// Brings the row up to `now`: duration from the monotonic clock (never less than
    /// before, never negative), bytes from the counters, online time from the link.
    fn advance(&mut self, now: &Now, net: Option<NetCounters>, link_up: Option<bool>) {
        let elapsed = (now.mono_ms - self.last_seen_mono_ms).max(0);
        if link_up == Some(true) {
            self.online_ms += elapsed;
        }
        self.duration_ms = self
            .duration_ms
            .max(now.mono_ms - self.started_mono_ms)
            .max(0);
        if let Some(current) = net {
            if let Some(seen) = self.net_seen {
                // A counter that went down was reset (interface restarted): everything
                // it shows now is new traffic.
                let delta = |cur: u64, old: u64| if cur >= old { cur - old } else { cur };
                self.bytes_rx += delta(current.rx, seen.rx);
                self.bytes_tx += delta(current.tx, seen.tx);
            }
            self.net_seen = Some(current);
        }
        self.last_seen_wall_ms = now.wall.timestamp_millis();
        self.last_seen_mono_ms = self.last_seen_mono_ms.max(now.mono_ms);
    }

    fn close(&mut self, reason: EndReason) {
        self.duration_ms = self
            .duration_ms
            .max(self.last_seen_mono_ms - self.started_mono_ms)
            .max(0);
        self.ended_wall_ms = Some(self.started_wall_ms + self.duration_ms);
        self.end_reason = Some(reason);
    }

    fn to_session(&self, identity: &DeviceIdentity) -> Session {
        let online_ms = self.online_ms.min(self.duration_ms).max(0);
        Session {
            id: self.id,
            revision: self.revision.max(1),
            library: identity.library.clone(),
            pc: identity.pc.clone(),
            started_at: millis_to_time(self.started_wall_ms),
            ended_at: self.ended_wall_ms.map(millis_to_time),
            duration_secs: (self.duration_ms / 1000) as u64,
            end_reason: self.end_reason,
            patron: self.patron.clone(),
            bytes_rx: self.bytes_rx,
            bytes_tx: self.bytes_tx,
            online_secs: (online_ms / 1000) as u64,
            time_quality: self.time_quality,
            run_id: self.run_id,
            started_mono_ms: self.started_mono_ms.max(0) as u64,
        }
    }
}

#[cfg(test)]
mod tests;
