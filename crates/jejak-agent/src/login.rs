//! Operating-system logins and input idleness, for sessions nobody checked in.
//!
//! A [`LoginSource`] says, when asked, whether someone is logged in at the PC and how
//! long the input has been idle, or that the system cannot tell. The [`LoginWatcher`]
//! turns a series of those answers into seat changes: someone began using the PC (a
//! login, or input again after an idle end), or stopped (logout, or idle beyond the
//! configured time). The daemon starts a session nobody checked in at the first and
//! ends the open session at the second. Sources are injectable, so tests feed logins,
//! logouts and idleness without a desktop.
//!
//! Privacy: only the session's class, type, state and whether it is remote are read;
//! user names, seats and displays are never kept or logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jejak_domain::EndReason;

use crate::collect::{CollectFuture, Collector, Observation};

/// What the operating system says about the PC's seat at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatSnapshot {
    /// Someone is logged in locally (a graphical or console session, not remote).
    pub logged_in: bool,
    /// How long the input has been idle; `None` when the system cannot tell.
    pub idle_for: Option<Duration>,
}

/// Where logins and idleness come from.
pub trait LoginSource: Send {
    /// The seat now, or `None` when this system cannot tell whether anyone is logged in.
    fn snapshot(&mut self) -> Option<SeatSnapshot>;
}

/// A change in the use of the PC's seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatChange {
    /// Someone logged in, or used the input again after an idle end.
    Began,
    /// The seat was left: `logout` or `idle`.
    Ended(EndReason),
}

/// Turns seat snapshots into seat changes.
#[derive(Debug, Clone)]
pub struct LoginWatcher {
    idle_end: Duration,
    logged_in: Option<bool>,
    /// The current login's use already ended for idleness.
    idle_ended: bool,
}

impl LoginWatcher {
    /// `idle_end`: input idle this long ends the open session as `idle`.
    pub fn new(idle_end: Duration) -> Self {
        LoginWatcher {
            idle_end,
            logged_in: None,
            idle_ended: false,
        }
    }

    /// The changes since the last snapshot. Nothing when the system cannot tell; the
    /// first snapshot with nobody logged in says nothing either (a session started by
    /// hand before the agent's start is not ended on a guess).
    pub fn observe(&mut self, snapshot: Option<SeatSnapshot>) -> Vec<SeatChange> {
        let Some(snapshot) = snapshot else {
            return Vec::new();
        };
        let idle = snapshot.idle_for.is_some_and(|d| d >= self.idle_end);
        let was = self.logged_in.replace(snapshot.logged_in);
        let mut out = Vec::new();
        match (was, snapshot.logged_in) {
            (Some(true), false) => {
                if !self.idle_ended {
                    out.push(SeatChange::Ended(EndReason::Logout));
                }
                self.idle_ended = false;
            }
            (_, false) => {}
            (Some(true), true) => {
                if idle && !self.idle_ended {
                    out.push(SeatChange::Ended(EndReason::Idle));
                    self.idle_ended = true;
                } else if !idle && self.idle_ended {
                    out.push(SeatChange::Began);
                    self.idle_ended = false;
                }
            }
            // A new login (or a login found at the agent's start). One found already
            // idle beyond the limit only ends what may be open: nobody is there.
            (_, true) => {
                if idle {
                    out.push(SeatChange::Ended(EndReason::Idle));
                    self.idle_ended = true;
                } else {
                    out.push(SeatChange::Began);
                    self.idle_ended = false;
                }
            }
        }
        out
    }
}

/// The collector the daemon runs: asks the source every `interval` (off the runtime's
/// thread, since a source may run a command) and reports seat changes.
pub struct LoginCollector {
    source: Option<Box<dyn LoginSource>>,
    watcher: LoginWatcher,
    interval: Duration,
}

impl std::fmt::Debug for LoginCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginCollector")
            .field("watcher", &self.watcher)
            .field("interval", &self.interval)
            .finish()
    }
}

impl LoginCollector {
    pub fn new(source: Box<dyn LoginSource>, idle_end: Duration, interval: Duration) -> Self {
        LoginCollector {
            source: Some(source),
            watcher: LoginWatcher::new(idle_end),
            interval,
        }
    }
}

impl Collector for LoginCollector {
    fn name(&self) -> &'static str {
        "logins"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        Box::pin(async move {
            let Some(mut source) = self.source.take() else {
                return Vec::new();
            };
            let snapshot = match tokio::task::spawn_blocking(move || {
                let snapshot = source.snapshot();
                (source, snapshot)
            })
            .await
            {
                Ok((source, snapshot)) => {
                    self.source = Some(source);
                    snapshot
                }
                Err(e) => {
                    // The source panicked: the PC simply loses login detection.
                    tracing::error!(error = %e, "the login source failed; logins are no longer watched");
                    None
                }
            };
            self.watcher
                .observe(snapshot)
                .into_iter()
                .map(Observation::Seat)
                .collect()
        })
    }
}

/// systemd-logind's view of the seat: the session files under `/run/systemd/sessions`
/// for logins, and `loginctl show-session` for the idle hint that desktops set. Where
/// logind is absent the system cannot tell (`None`); where the desktop sets no idle hint,
/// idleness is unknown and sessions end at logout or shutdown only.
#[derive(Debug)]
pub struct LogindSource {
    sessions_dir: PathBuf,
    loginctl: Option<PathBuf>,
    /// When an idle hint without a time was first seen, per session.
    idle_seen: HashMap<String, Instant>,
}

impl LogindSource {
    pub fn new() -> Self {
        LogindSource {
            sessions_dir: PathBuf::from("/run/systemd/sessions"),
            loginctl: ["/usr/bin/loginctl", "/bin/loginctl"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file()),
            idle_seen: HashMap::new(),
        }
    }

    /// Reads session files from `dir` and takes no idle hints (tests, other layouts).
    pub fn with_sessions_dir(dir: &Path) -> Self {
        LogindSource {
            sessions_dir: dir.to_path_buf(),
            loginctl: None,
            idle_seen: HashMap::new(),
        }
    }

    /// The ids of local user sessions at a screen or console that are in use.
    fn local_sessions(&self) -> Option<Vec<String>> {
        let entries = std::fs::read_dir(&self.sessions_dir).ok()?;
        let mut ids = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `<id>.ref` are FIFOs logind keeps beside the files.
            if name.contains('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(entry.path())
                && is_local_use(&text)
            {
                ids.push(name);
            }
        }
        ids.sort();
        Some(ids)
    }

    /// How long the least idle of `sessions` has been idle: zero if any is in use,
    /// `None` if the system cannot tell.
    fn idle_for(&mut self, sessions: &[String]) -> Option<Duration> {
        let loginctl = self.loginctl.clone()?;
        self.idle_seen.retain(|id, _| sessions.contains(id));
        let now_us = monotonic_us();
        let mut least: Option<Duration> = None;
        for id in sessions {
            let output = std::process::Command::new(&loginctl)
                .args([
                    "show-session",
                    id,
                    "-p",
                    "IdleHint",
                    "-p",
                    "IdleSinceHintMonotonic",
                ])
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())?;
            let (hint, since_us) = parse_idle(&String::from_utf8_lossy(&output.stdout))?;
            let idle = if !hint {
                self.idle_seen.remove(id);
                Duration::ZERO
            } else if since_us > 0 && since_us <= now_us {
                Duration::from_micros(now_us - since_us)
            } else {
                self.idle_seen
                    .entry(id.clone())
                    .or_insert_with(Instant::now)
                    .elapsed()
            };
            least = Some(least.map_or(idle, |l| l.min(idle)));
        }
        least
    }
}

impl Default for LogindSource {
    fn default() -> Self {
        Self::new()
    }
}

impl LoginSource for LogindSource {
    fn snapshot(&mut self) -> Option<SeatSnapshot> {
        let sessions = self.local_sessions()?;
        let idle_for = if sessions.is_empty() {
            None
        } else {
            self.idle_for(&sessions)
        };
        Some(SeatSnapshot {
            logged_in: !sessions.is_empty(),
            idle_for,
        })
    }
}

/// Whether a logind session file describes someone using the PC itself: a user session
/// (not a greeter or a background job), not remote, on a screen or console, not closing.
fn is_local_use(text: &str) -> bool {
    let mut class = "";
    let mut kind = "";
    let mut state = "";
    let mut remote = "0";
    for line in text.lines() {
        match line.split_once('=') {
            Some(("CLASS", v)) => class = v.trim(),
            Some(("TYPE", v)) => kind = v.trim(),
            Some(("STATE", v)) => state = v.trim(),
            Some(("REMOTE", v)) => remote = v.trim(),
            _ => {}
        }
    }
    class == "user"
        && remote != "1"
        && matches!(kind, "x11" | "wayland" | "mir" | "tty")
        && matches!(state, "active" | "online")
}

/// `IdleHint=yes|no` and `IdleSinceHintMonotonic=<µs>` from `loginctl show-session`.
fn parse_idle(text: &str) -> Option<(bool, u64)> {
    let mut hint = None;
    let mut since = 0;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("IdleHint", v)) => hint = Some(v.trim() == "yes"),
            Some(("IdleSinceHintMonotonic", v)) => since = v.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    hint.map(|h| (h, since))
}

/// `CLOCK_MONOTONIC` in microseconds, the clock logind's idle hint is on.
fn monotonic_us() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec as u64 / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn seat(logged_in: bool, idle_mins: Option<u64>) -> Option<SeatSnapshot> {
        Some(SeatSnapshot {
            logged_in,
            idle_for: idle_mins.map(|m| MIN * m as u32),
        })
    }

    #[test]
    fn login_idle_activity_and_logout_become_seat_changes() {
        let mut w = LoginWatcher::new(MIN * 15);
        assert_eq!(w.observe(seat(false, None)), vec![], "nobody, at start");
        assert_eq!(w.observe(seat(true, Some(0))), vec![SeatChange::Began]);
        assert_eq!(w.observe(seat(true, Some(14))), vec![]);
        assert_eq!(
            w.observe(seat(true, Some(15))),
            vec![SeatChange::Ended(EndReason::Idle)]
        );
        assert_eq!(w.observe(seat(true, Some(40))), vec![], "ended once");
        assert_eq!(w.observe(None), vec![], "cannot tell: no change");
        assert_eq!(
            w.observe(seat(true, Some(0))),
            vec![SeatChange::Began],
            "input again"
        );
        assert_eq!(
            w.observe(seat(false, None)),
            vec![SeatChange::Ended(EndReason::Logout)]
        );
        assert_eq!(w.observe(seat(false, None)), vec![]);
        assert_eq!(
            w.observe(seat(true, None)),
            vec![SeatChange::Began],
            "idleness unknown"
        );
        assert_eq!(w.observe(seat(true, None)), vec![]);
    }

    #[test]
    fn a_logout_after_an_idle_end_ends_nothing_more_and_a_login_found_idle_starts_nothing() {
        let mut w = LoginWatcher::new(MIN * 15);
        assert_eq!(
            w.observe(seat(true, Some(30))),
            vec![SeatChange::Ended(EndReason::Idle)]
        );
        assert_eq!(w.observe(seat(false, None)), vec![]);
        assert_eq!(w.observe(seat(true, Some(1))), vec![SeatChange::Began]);
    }

    #[test]
    fn logind_session_files_count_only_local_users_at_a_screen_or_console() {
        let dir = tempfile::tempdir().unwrap();
        let mut source = LogindSource::with_sessions_dir(dir.path());
        assert_eq!(
            source.snapshot(),
            Some(SeatSnapshot {
                logged_in: false,
                idle_for: None
            })
        );
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "c1",
            "UID=120\nUSER=gdm\nACTIVE=1\nSTATE=active\nREMOTE=0\nTYPE=wayland\nCLASS=greeter\n",
        );
        write(
            "7",
            "UID=0\nUSER=root\nSTATE=active\nREMOTE=1\nTYPE=tty\nCLASS=user\n",
        );
        write(
            "9",
            "UID=1000\nUSER=x\nSTATE=closing\nREMOTE=0\nTYPE=x11\nCLASS=user\n",
        );
        std::fs::create_dir(dir.path().join("3.ref")).unwrap();
        assert!(!source.snapshot().unwrap().logged_in);
        write(
            "3",
            "UID=1000\nUSER=pengunjung\nACTIVE=1\nSTATE=active\nREMOTE=0\nTYPE=x11\nCLASS=user\nSEAT=seat0\n",
        );
        assert_eq!(
            source.snapshot(),
            Some(SeatSnapshot {
                logged_in: true,
                idle_for: None
            })
        );
        let missing = LogindSource::with_sessions_dir(&dir.path().join("none")).snapshot();
        assert_eq!(missing, None, "no logind: the system cannot tell");
    }

    #[test]
    fn the_idle_hint_is_read_from_loginctl_output() {
        assert_eq!(
            parse_idle("IdleHint=yes\nIdleSinceHintMonotonic=5000000\n"),
            Some((true, 5_000_000))
        );
        assert_eq!(
            parse_idle("IdleHint=no\nIdleSinceHintMonotonic=0\n"),
            Some((false, 0))
        );
        assert_eq!(parse_idle("Failed to get session\n"), None);
    }

    /// Plays a script of snapshots, moving the manual clock a minute per look.
    struct Scripted {
        script: std::collections::VecDeque<Option<SeatSnapshot>>,
        clock: crate::clock::ManualClock,
    }

    impl LoginSource for Scripted {
        fn snapshot(&mut self) -> Option<SeatSnapshot> {
            self.clock.advance(MIN);
            self.script.pop_front().flatten()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_agent_records_a_login_nobody_checked_in_and_ends_it_on_idle_and_logout() {
        use crate::clock::ManualClock;
        use crate::daemon::{AgentSettings, run};
        use crate::store::Store;
        use chrono::TimeZone;
        use jejak_domain::{DeviceIdentity, LibraryCode, PatronProfile, PcCode, RecordBody};
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2031, 2, 3, 2, 0, 0).unwrap());
        let identity = DeviceIdentity {
            library: LibraryCode::parse("karanganyar").unwrap(),
            pc: PcCode::parse("pc-03").unwrap(),
        };
        let path = dir.path().join("jejak.db");
        let (store, _) = Store::open(&path, identity.clone(), Arc::new(clock.clone())).unwrap();
        let script = [
            seat(true, Some(0)),  // a login: session A
            seat(true, Some(3)),  // reading
            seat(true, Some(20)), // away: A ends as idle
            None,                 // the system cannot tell for a moment
            seat(true, Some(0)),  // back at the keyboard: session B
            seat(false, None),    // logout: B ends
        ];
        let collector = LoginCollector::new(
            Box::new(Scripted {
                script: script.into_iter().collect(),
                clock: clock.clone(),
            }),
            MIN * 15,
            MIN,
        );
        let settings = AgentSettings {
            heartbeat: Duration::from_secs(3600),
            heartbeat_event_every: 1,
            crash_grace: Duration::from_secs(90),
            sync_interval: Duration::from_secs(3600),
            prune: None,
        };
        let shutdown = tokio::time::sleep(MIN * 8);
        let summary = run(store, settings, vec![Box::new(collector)], None, shutdown)
            .await
            .unwrap();
        assert_eq!(summary.ended_at_shutdown, None, "nothing was left open");

        let (store, _) = Store::open(&path, identity, Arc::new(clock)).unwrap();
        let mut sessions = store.recent_sessions(10).unwrap();
        sessions.reverse();
        let ends: Vec<_> = sessions.iter().map(|s| s.end_reason).collect();
        assert_eq!(ends, vec![Some(EndReason::Idle), Some(EndReason::Logout)]);
        for s in &sessions {
            assert_eq!(s.patron, PatronProfile::default(), "patron unknown");
            assert!(s.duration_secs >= 60, "{s:?}");
        }
        let revisions = store
            .changes_after(0, u32::MAX)
            .unwrap()
            .into_iter()
            .filter(|c| matches!(c.body, RecordBody::Session(_)))
            .count();
        assert_eq!(revisions, 4, "each session: started, ended");
    }
}
