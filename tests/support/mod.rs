//! Helpers shared by the end-to-end tests: a PC data directory in a tempdir, the real
//! `jejak` binary run with a deadline, the agent as a child process whose JSON log lines
//! are collected, and read-only views of the SQLite store.
//!
//! Every child process lives in a guard that kills (SIGKILL) and reaps it on drop, so a
//! failing assertion never leaves an agent running. Nothing here sleeps to "let things
//! happen": waits are polls (or condition-variable waits) with a deadline, and a missed
//! deadline fails with the evidence (log lines, output).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::Value;

/// The binary under test.
pub const JEJAK: &str = env!("CARGO_BIN_EXE_jejak");

/// How long one CLI command may take before the test calls it hung. Generous: a loaded
/// 2-core CI machine running debug builds with `synchronous=FULL` can be slow.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(60);
/// How long to wait for something the agent is expected to log.
pub const LOG_DEADLINE: Duration = Duration::from_secs(20);

pub const LIBRARY: &str = "dermaji";
pub const PC: &str = "pc-01";

/// Exit codes the CLI promises to scripts.
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_NO_OPEN_SESSION: i32 = 3;
pub const EXIT_NOTHING_TO_SEND: i32 = 4;
pub const EXIT_NO_LINK: i32 = 5;
pub const EXIT_REFUSED: i32 = 6;
pub const EXIT_SERVER_UNAVAILABLE: i32 = 7;

/// Fast back-off and small batches for `jejak sync` (they override agent.toml).
pub const FAST_SYNC: [(&str, &str); 4] = [
    ("JEJAK_SYNC_BACKOFF_BASE_SECS", "0.02"),
    ("JEJAK_SYNC_BACKOFF_CAP_SECS", "0.2"),
    ("JEJAK_SYNC_TIMEOUT_SECS", "5"),
    ("JEJAK_SYNC_BATCH_RECORDS", "40"),
];

/// Wall-clock milliseconds since the Unix epoch, as the store records wall times.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls `check` until it returns `Some`, or panics with `what` after `deadline`.
pub fn poll_until<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(value) = check() {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

pub use jejak_testkit::process::{ChildGuard, DistrictProcess};

/// What one finished CLI command did.
#[derive(Debug, Clone)]
pub struct Run {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics with the whole output unless the command exited 0.
    pub fn ok(self) -> Run {
        assert!(
            self.status.success(),
            "jejak {:?} failed with {:?}\nstdout: {}\nstderr: {}",
            self.args,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            Some(code),
            "jejak {:?}: expected exit {code}\nstdout: {}\nstderr: {}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "jejak {:?} did not print JSON ({e}): {}",
                self.args, self.stdout
            )
        })
    }
}

fn read_all(mut from: impl Read + Send + 'static, done: mpsc::Sender<()>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        let _ = done.send(());
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs a command to completion with piped output, killing it (and failing the test) if
/// it has not finished within `deadline`.
pub fn run_command(mut command: Command, deadline: Duration) -> Run {
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn(&mut command);
    let (done_tx, done_rx) = mpsc::channel();
    let out = read_all(guard.child_mut().stdout.take().unwrap(), done_tx.clone());
    let err = read_all(guard.child_mut().stderr.take().unwrap(), done_tx);
    // Both pipes reach end-of-file when the process exits.
    let start = Instant::now();
    for _ in 0..2 {
        let left = deadline.saturating_sub(start.elapsed());
        if done_rx.recv_timeout(left).is_err() {
            guard.kill9();
            panic!("jejak {args:?} did not finish within {deadline:?}");
        }
    }
    let status = guard
        .wait_deadline(deadline.saturating_sub(start.elapsed()) + Duration::from_secs(1))
        .unwrap_or_else(|| panic!("jejak {args:?} closed its output but did not exit"));
    Run {
        args,
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

// ---------------------------------------------------------------------------------------
// A PC's data directory
// ---------------------------------------------------------------------------------------

/// One simulated village PC: a data directory in its own tempdir, a fixed boot id (so
/// every process of the test belongs to the same "boot" unless a test says otherwise)
/// and a fake `/proc/net/dev`, so that byte counts are the test's to decide.
#[derive(Debug)]
pub struct TestPc {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub net_dev: PathBuf,
    pub boot_id: String,
}

impl TestPc {
    pub fn new() -> TestPc {
        let dir = tempfile::Builder::new()
            .prefix("jejak-e2e-")
            .tempdir()
            .unwrap();
        let data_dir = dir.path().join("data");
        let net_dev = dir.path().join("net_dev");
        let pc = TestPc {
            boot_id: format!("boot-{}", uuid::Uuid::new_v4().simple()),
            dir,
            data_dir,
            net_dev,
        };
        pc.set_net_counters(0, 0);
        pc
    }

    /// A new PC, set up with `jejak init`.
    pub fn initialised() -> TestPc {
        let pc = TestPc::new();
        pc.init();
        pc
    }

    pub fn init(&self) {
        let run = self
            .run(&[
                "init",
                "--library",
                LIBRARY,
                "--pc",
                PC,
                "--timezone",
                "Asia/Jakarta",
            ])
            .ok();
        assert!(run.stdout.contains("dermaji/pc-01"), "{}", run.stdout);
        for file in ["agent.toml", "patron.key", "jejak.db"] {
            assert!(
                self.data_dir.join(file).is_file(),
                "init did not create {file}"
            );
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("jejak.db")
    }

    /// Writes the fake interface counters atomically (the agent may be reading them).
    pub fn set_net_counters(&self, rx: u64, tx: u64) {
        let text = format!(
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo: 999999 10 0 0 0 0 0 0 999999 10 0 0 0 0 0 0\n  \
             eth0: {rx} 10 0 0 0 0 0 0 {tx} 10 0 0 0 0 0 0\n"
        );
        let tmp = self.net_dev.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.net_dev).unwrap();
    }

    /// `jejak --data-dir DIR …` with a clean environment: no `JEJAK_*` variable of the
    /// machine running the tests leaks in; the boot id and counters file are the test's.
    pub fn command(&self) -> Command {
        let mut command = bare_command();
        command
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("JEJAK_BOOT_ID", &self.boot_id)
            .env("JEJAK_NET_DEV_PATH", &self.net_dev)
            // The machine running the tests may have a desktop login: its logins must not
            // become sessions of the test's PC.
            .env("JEJAK_LOGIN_WATCH", "false")
            // Many test agents run at once: none may hold the check-in page's default
            // port (the check-in tests give theirs a free one).
            .env("JEJAK_CHECKIN_PORT", "0");
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.command();
        command.args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        run_command(command, COMMAND_DEADLINE)
    }

    /// `jejak session start ARGS`; returns the id it printed (checked to be a UUIDv7).
    pub fn start_session(&self, args: &[&str]) -> String {
        let mut all = vec!["session", "start"];
        all.extend_from_slice(args);
        let run = self.run(&all).ok();
        parse_session_id(&run.stdout)
            .unwrap_or_else(|| panic!("session start printed no id: {:?}", run.stdout))
    }

    /// Starts and ends `n` sessions (a woman of 16–30, for education), as a librarian
    /// would with `jejak session start/end`.
    pub fn record_sessions(&self, n: usize) {
        for _ in 0..n {
            self.start_session(&[
                "--purpose",
                "pendidikan",
                "--gender",
                "P",
                "--age",
                "pemuda",
            ]);
            self.run(&["session", "end", "--reason", "logout"]).ok();
        }
    }

    /// Everything a failed command could have written: the change log, the sessions and
    /// the runs (a write transaction would have created this boot's run).
    pub fn footprint(&self) -> (i64, i64, Vec<SessionRow>, i64) {
        let store = self.store();
        let (count, max) = store.count_and_max();
        (
            count,
            max,
            store.sessions(),
            store.count("SELECT COUNT(*) FROM runs"),
        )
    }

    pub fn status_json(&self) -> Value {
        self.run(&["--format", "json", "status"]).ok().json()
    }

    pub fn store(&self) -> StoreView {
        StoreView::open(&self.db_path())
    }

    pub fn spawn_agent(&self, options: AgentOptions) -> Agent {
        let mut command = self.command();
        command
            .arg("agent")
            .env("JEJAK_LOG_FORMAT", "json")
            .env("JEJAK_HEARTBEAT_SECS", options.heartbeat_secs.to_string())
            .env(
                "JEJAK_HEARTBEAT_EVENT_EVERY",
                options.heartbeat_event_every.to_string(),
            );
        if let Some(grace) = options.crash_grace_secs {
            command.env("JEJAK_CRASH_GRACE_SECS", grace.to_string());
        }
        if let Some(boot) = &options.boot_id {
            command.env("JEJAK_BOOT_ID", boot);
        }
        if let Some(filter) = &options.log_filter {
            command.env("JEJAK_LOG", filter);
        }
        Agent::spawn(command)
    }
}

/// The binary with every `JEJAK_*` variable of the test environment removed.
pub fn bare_command() -> Command {
    let mut command = Command::new(JEJAK);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("JEJAK_") {
            command.env_remove(key);
        }
    }
    command.env_remove("NO_COLOR");
    command
}

/// The session id `session start` printed: the UUIDv7 that ends its `ID sesi:` /
/// `Session ID:` line (the line before it says who the session is for). `None` unless
/// there is exactly one such line and it is complete (a process killed mid-write).
pub fn parse_session_id(stdout: &str) -> Option<String> {
    let mut ids = stdout.lines().filter_map(|line| {
        let rest = line
            .strip_prefix("ID sesi: ")
            .or_else(|| line.strip_prefix("Session ID: "))?;
        let id = uuid::Uuid::parse_str(rest.trim()).ok()?;
        (id.get_version_num() == 7).then(|| id.to_string())
    });
    let id = ids.next()?;
    (ids.next().is_none() && stdout.ends_with('\n')).then_some(id)
}

// ---------------------------------------------------------------------------------------
// The agent
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub heartbeat_secs: f64,
    pub heartbeat_event_every: u32,
    pub crash_grace_secs: Option<f64>,
    pub boot_id: Option<String>,
    pub log_filter: Option<String>,
}

impl AgentOptions {
    /// A heartbeat (and a heartbeat pc event) every `secs`.
    pub fn fast(secs: f64) -> AgentOptions {
        AgentOptions {
            heartbeat_secs: secs,
            heartbeat_event_every: 1,
            crash_grace_secs: None,
            boot_id: None,
            log_filter: None,
        }
    }

    pub fn boot(mut self, boot_id: &str) -> AgentOptions {
        self.boot_id = Some(boot_id.to_string());
        self
    }

    pub fn crash_grace(mut self, secs: f64) -> AgentOptions {
        self.crash_grace_secs = Some(secs);
        self
    }

    pub fn log(mut self, filter: &str) -> AgentOptions {
        self.log_filter = Some(filter.to_string());
        self
    }
}

/// Lines read from a pipe, shared with the thread that reads them.
#[derive(Debug, Default)]
struct Lines {
    state: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

impl Lines {
    fn collect(self: &Arc<Self>, from: impl Read + Send + 'static) -> JoinHandle<()> {
        let lines = Arc::clone(self);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                        let mut state = lines.state.lock().unwrap();
                        state.0.push(line);
                        lines.changed.notify_all();
                    }
                }
            }
            lines.state.lock().unwrap().1 = true;
            lines.changed.notify_all();
        })
    }

    fn snapshot(&self) -> Vec<String> {
        self.state.lock().unwrap().0.clone()
    }

    /// Waits until some line satisfies `find`, or the pipe closes, or the deadline.
    fn wait_for<T>(
        &self,
        deadline: Duration,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let start = Instant::now();
        let mut seen = 0;
        let mut state = self.state.lock().unwrap();
        loop {
            while seen < state.0.len() {
                if let Some(found) = find(&state.0[seen]) {
                    return Some(found);
                }
                seen += 1;
            }
            let left = deadline.checked_sub(start.elapsed())?;
            if state.1 {
                return None;
            }
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
    }
}

/// One structured log line of the agent (`JEJAK_LOG_FORMAT=json`).
pub fn log_event(line: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(line).ok()?;
    value.get("fields")?.get("message")?;
    Some(value)
}

pub fn log_message(event: &Value) -> &str {
    event["fields"]["message"].as_str().unwrap_or("")
}

/// The seqs of the lines "heartbeat recorded" among `lines`, in order.
pub fn heartbeat_seqs(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| log_event(l))
        .filter(|e| log_message(e) == "heartbeat recorded")
        .map(|e| e["fields"]["seq"].as_u64().unwrap())
        .collect()
}

/// `jejak agent` running as a child process, with its log lines collected.
#[derive(Debug)]
pub struct Agent {
    child: ChildGuard,
    stderr: Arc<Lines>,
    stdout: Arc<Lines>,
    readers: Vec<JoinHandle<()>>,
}

impl Agent {
    fn spawn(mut command: Command) -> Agent {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut command);
        let stderr = Arc::new(Lines::default());
        let stdout = Arc::new(Lines::default());
        let readers = vec![
            stderr.collect(child.child_mut().stderr.take().unwrap()),
            stdout.collect(child.child_mut().stdout.take().unwrap()),
        ];
        Agent {
            child,
            stderr,
            stdout,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.stderr.snapshot()
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.snapshot()
    }

    pub fn heartbeat_seqs(&self) -> Vec<u64> {
        heartbeat_seqs(&self.log_lines())
    }

    /// Waits for a JSON log line for which `matches` holds; panics with the log if it
    /// does not come within [`LOG_DEADLINE`] or the agent exits first.
    pub fn wait_for_log(&self, what: &str, mut matches: impl FnMut(&Value) -> bool) -> Value {
        self.stderr
            .wait_for(LOG_DEADLINE, |line| log_event(line).filter(|e| matches(e)))
            .unwrap_or_else(|| {
                panic!(
                    "the agent did not log {what} within {LOG_DEADLINE:?}; its log:\n{}",
                    self.log_lines().join("\n")
                )
            })
    }

    pub fn wait_for_message(&self, message: &str) -> Value {
        self.wait_for_log(&format!("{message:?}"), |e| log_message(e) == message)
    }

    /// Waits until the agent has logged `count` heartbeats with a seq above `after`;
    /// returns the highest seq seen.
    pub fn wait_for_heartbeats_after(&self, after: u64, count: usize) -> u64 {
        let mut seen = 0;
        let event = self.wait_for_log(&format!("{count} heartbeats after seq {after}"), |e| {
            if log_message(e) == "heartbeat recorded"
                && e["fields"]["seq"].as_u64().unwrap_or(0) > after
            {
                seen += 1;
            }
            seen >= count
        });
        event["fields"]["seq"].as_u64().unwrap()
    }

    /// Waits until the agent has logged `count` heartbeats in all.
    pub fn wait_for_heartbeats(&self, count: usize) -> u64 {
        self.wait_for_heartbeats_after(0, count)
    }

    /// SIGKILL: the agent gets no chance to clean up. Returns every line it logged.
    pub fn kill9(&mut self) -> Vec<String> {
        self.child.kill9();
        self.join_readers();
        self.log_lines()
    }

    /// Sends `TERM` or `INT` without waiting.
    pub fn signal(&self, signal: &str) {
        self.child.signal(signal);
    }

    /// Sends `TERM` or `INT` and waits for the agent to exit.
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        self.child.signal(signal);
        self.wait_exit()
    }

    /// Waits for the agent to exit (after a signal), within [`COMMAND_DEADLINE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let status = self
            .child
            .wait_deadline(COMMAND_DEADLINE)
            .unwrap_or_else(|| {
                panic!(
                    "the agent did not exit within {COMMAND_DEADLINE:?}; its log:\n{}",
                    self.log_lines().join("\n")
                )
            });
        self.join_readers();
        status
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The store, read-only
// ---------------------------------------------------------------------------------------

/// A session row as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub revision: i64,
    pub boot_id: String,
    pub started_wall_ms: i64,
    pub started_mono_ms: i64,
    pub ended_wall_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub duration_ms: i64,
    pub last_seen_wall_ms: i64,
    pub last_seen_mono_ms: i64,
    pub user_kind: String,
    pub purposes: String,
    pub gender: String,
    pub age_group: String,
    pub group_size: i64,
    pub patron_key: Option<String>,
    pub bytes_rx: i64,
    pub bytes_tx: i64,
    pub time_quality: String,
}

/// One entry of the change log.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub seq: i64,
    pub record_kind: String,
    pub record_id: String,
    pub revision: i64,
    pub run_id: String,
    pub body: Value,
}

impl ChangeRow {
    /// The pc event kind (`heartbeat`, `shutdown`, …) or `None` for a session change.
    pub fn event_kind(&self) -> Option<&str> {
        (self.record_kind == "pc_event").then(|| self.body["data"]["kind"].as_str().unwrap_or(""))
    }
}

/// A read-only connection to a store; it never writes, checkpoints or creates files
/// beyond what SQLite needs to read a WAL database.
#[derive(Debug)]
pub struct StoreView {
    pub conn: Connection,
}

impl StoreView {
    pub fn open(path: &Path) -> StoreView {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap_or_else(|e| panic!("cannot open {} read-only: {e}", path.display()));
        conn.busy_timeout(Duration::from_secs(20)).unwrap();
        StoreView { conn }
    }

    pub fn integrity_check(&self) -> String {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check").unwrap();
        let lines: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        lines.join("; ")
    }

    /// `(COUNT(*), MAX(seq))` of the change log (0, 0 when empty).
    pub fn count_and_max(&self) -> (i64, i64) {
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM changes",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    pub fn change(&self, seq: i64) -> Option<ChangeRow> {
        self.conn
            .query_row(
                "SELECT seq, record_kind, record_id, revision, run_id, body FROM changes WHERE seq = ?1",
                [seq],
                change_from_row,
            )
            .optional()
            .unwrap()
    }

    pub fn changes(&self) -> Vec<ChangeRow> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, record_kind, record_id, revision, run_id, body FROM changes ORDER BY seq")
            .unwrap();
        stmt.query_map([], change_from_row)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    pub fn last_change(&self) -> ChangeRow {
        let (_, max) = self.count_and_max();
        self.change(max).unwrap()
    }

    /// The seq of a session's change at `revision`.
    pub fn session_change_seq(&self, id: &str, revision: i64) -> Option<i64> {
        self.conn
            .query_row(
                "SELECT seq FROM changes WHERE record_kind = 'session' AND record_id = ?1 AND revision = ?2",
                rusqlite::params![id, revision],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
    }

    pub fn session(&self, id: &str) -> Option<SessionRow> {
        self.conn
            .query_row(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"),
                [id],
                session_from_row,
            )
            .optional()
            .unwrap()
    }

    pub fn sessions(&self) -> Vec<SessionRow> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions ORDER BY started_wall_ms, id"
            ))
            .unwrap();
        stmt.query_map([], session_from_row)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    pub fn open_session_ids(&self) -> Vec<String> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM sessions WHERE ended_wall_ms IS NULL")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The invariants that must hold after anything, even a kill -9:
    /// the file is sound, the change log is exactly 1..=max with no gap, at most one
    /// session is open, and every session row is the newest revision in the change log
    /// (the row and the log were written in the same transaction).
    pub fn assert_sound(&self, context: &str) {
        assert_eq!(self.integrity_check(), "ok", "{context}: integrity_check");
        let (count, max) = self.count_and_max();
        assert_eq!(count, max, "{context}: the seqs are not contiguous");
        let min: i64 = self.count("SELECT COALESCE(MIN(seq), 1) FROM changes");
        assert_eq!(min, 1, "{context}: the change log does not start at 1");
        assert!(
            self.open_session_ids().len() <= 1,
            "{context}: more than one open session"
        );
        let mismatched: Vec<(String, i64, Option<i64>)> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT s.id, s.revision,
                            (SELECT MAX(c.revision) FROM changes c
                             WHERE c.record_kind = 'session' AND c.record_id = s.id)
                     FROM sessions s",
                )
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .into_iter()
                .filter(|(_, rev, logged)| *logged != Some(*rev))
                .collect()
        };
        assert!(
            mismatched.is_empty(),
            "{context}: session rows and the change log disagree: {mismatched:?}"
        );
        let orphans = self.count(
            "SELECT COUNT(DISTINCT record_id) FROM changes WHERE record_kind = 'session'
             AND record_id NOT IN (SELECT id FROM sessions)",
        );
        assert_eq!(
            orphans, 0,
            "{context}: session changes without a session row"
        );
    }
}

const SESSION_COLUMNS: &str = "id, revision, boot_id, started_wall_ms, started_mono_ms, \
    ended_wall_ms, end_reason, duration_ms, last_seen_wall_ms, last_seen_mono_ms, user_kind, \
    purposes, gender, age_group, group_size, patron_key, bytes_rx, bytes_tx, time_quality";

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        revision: r.get(1)?,
        boot_id: r.get(2)?,
        started_wall_ms: r.get(3)?,
        started_mono_ms: r.get(4)?,
        ended_wall_ms: r.get(5)?,
        end_reason: r.get(6)?,
        duration_ms: r.get(7)?,
        last_seen_wall_ms: r.get(8)?,
        last_seen_mono_ms: r.get(9)?,
        user_kind: r.get(10)?,
        purposes: r.get(11)?,
        gender: r.get(12)?,
        age_group: r.get(13)?,
        group_size: r.get(14)?,
        patron_key: r.get(15)?,
        bytes_rx: r.get(16)?,
        bytes_tx: r.get(17)?,
        time_quality: r.get(18)?,
    })
}

fn change_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChangeRow> {
    let body: String = r.get(5)?;
    Ok(ChangeRow {
        seq: r.get(0)?,
        record_kind: r.get(1)?,
        record_id: r.get(2)?,
        revision: r.get(3)?,
        run_id: r.get(4)?,
        body: serde_json::from_str(&body).unwrap(),
    })
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Names of the files in `dir` (not recursive).
pub fn file_names(dir: &Path) -> HashSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The district server
// ---------------------------------------------------------------------------------------

/// `jejak server run` on a free port of 127.0.0.1 on `database` (`sqlite:PATH` or
/// `postgres://…`) with `args` after `run` (timeouts, limits) and `env`, once it says
/// where it listens.
pub fn spawn_district(database: &str, args: &[&str], env: &[(&str, &str)]) -> DistrictProcess {
    let mut command = bare_command();
    command
        .args(["--lang", "en", "server", "--database", database])
        .args(["run", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied());
    DistrictProcess::start(command)
}

/// Adds `library` to the server database `database` (if new) and enrolls its `pc` with
/// the real `jejak server` commands; returns the PC's token.
pub fn enroll_pc(database: &str, library: &str, pc: &str) -> String {
    let mut add = bare_command();
    add.args(["server", "--database", database, "add-library", library])
        .args(["--name", "Perpustakaan Desa Penuh"]);
    // A library that exists already is refused; the device is what matters.
    let _ = run_command(add, COMMAND_DEADLINE);
    let mut device = bare_command();
    device
        .args(["server", "--database", database, "add-device"])
        .args(["--library", library, "--pc", pc]);
    run_command(device, COMMAND_DEADLINE)
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// An HTTP/1.1 answer read off a raw socket.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends `request` (a complete HTTP/1.1 request, `Connection: close`) to `addr` and
/// reads the whole answer, within `deadline`.
pub fn raw_request(addr: &str, request: &[u8], deadline: Duration) -> std::io::Result<RawAnswer> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(deadline))?;
    stream.write_all(request)?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    parse_answer(&bytes)
}

/// Splits raw answer bytes into status, head and body.
pub fn parse_answer(bytes: &[u8]) -> std::io::Result<RawAnswer> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no answer: {text:?}"),
        )
    })?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(RawAnswer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// `GET path` on a fresh connection.
pub fn raw_get(addr: &str, path: &str, deadline: Duration) -> std::io::Result<RawAnswer> {
    raw_request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        deadline,
    )
}

/// `jejak server run --listen 127.0.0.1:0` as a child process, and its URL.
pub fn spawn_server(db: &Path) -> (ChildGuard, String) {
    let (child, url, _) = spawn_server_with(db, &[]);
    (child, url)
}

/// `jejak server run --listen 127.0.0.1:0 EXTRA…` as a child process: its URL (`http://`
/// or `https://`) and the rest of its log, line by line.
pub fn spawn_server_with(
    db: &Path,
    extra: &[&std::ffi::OsStr],
) -> (ChildGuard, String, mpsc::Receiver<String>) {
    let mut command = bare_command();
    command
        .args(["--lang", "en", "server", "--database"])
        .arg(format!("sqlite:{}", db.display()))
        .args(["run", "--listen", "127.0.0.1:0"])
        .args(extra);
    DistrictProcess::start(command).into_parts()
}

/// `jejak server --database sqlite:DB ARGS…`, in English with JSON output.
pub fn server_cli(db: &Path, args: &[&str]) -> Run {
    let mut command = bare_command();
    command
        .args(["--lang", "en", "--format", "json", "server", "--database"])
        .arg(format!("sqlite:{}", db.display()))
        .args(args);
    run_command(command, COMMAND_DEADLINE)
}

/// A new district server database with `library` and its `pcs` enrolled; their tokens.
pub fn district_server(db: &Path, library: &str, pcs: &[&str]) -> Vec<String> {
    server_cli(db, &["init"]).ok();
    server_cli(db, &["add-library", library, "--name", "Perpustakaan Desa"]).ok();
    pcs.iter()
        .map(|pc| {
            server_cli(db, &["add-device", "--library", library, "--pc", pc])
                .ok()
                .json()["token"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}
