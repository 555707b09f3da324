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
//! Each system's source lives in the platform layer: systemd-logind on Linux
//! ([`crate::platform::logind`]); on Windows the service's console-session
//! notifications and the per-user part's idle reports, gathered by [`ConsoleSeat`]
//! (platform-neutral, so its rules are tested everywhere with recorded events).
//!
//! Privacy: no source keeps or logs user names, seats or displays; they only say whether
//! someone is there.

use std::sync::{Arc, Mutex, OnceLock};
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

/// What a Windows PC tells the agent about its console: the service's session-change
/// notifications (logon, logoff, lock, unlock) and the per-user part's reports of how
/// long the input has been idle (a service in session 0 cannot read that itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleEvent {
    Logon,
    Logoff,
    Lock,
    Unlock,
    /// The input at the console has been idle this long (reported from the user's session).
    InputIdle(Duration),
}

/// An idle report older than this is not trusted: the per-user part reports every
/// [`IDLE_REPORT_EVERY`], so three missed reports mean it stopped (the user logged off,
/// or the part was closed) and idleness is unknown again.
pub const IDLE_REPORT_STALE_AFTER: Duration = Duration::from_secs(3 * 60);
/// How often the per-user part reports the input's idle time.
pub const IDLE_REPORT_EVERY: Duration = Duration::from_secs(60);

/// The console's state as its events tell it. Fed with events as they come (any thread)
/// and asked for a [`SeatSnapshot`] at each look of the [`LoginCollector`].
#[derive(Debug, Default, Clone)]
pub struct ConsoleSeat {
    /// Whether a user is logged on at the console; `None` until an event or a look at the
    /// system says.
    logged_on: Option<bool>,
    /// When the workstation was locked: a locked PC is nobody's, so its idle time runs
    /// from the lock.
    locked_since: Option<Instant>,
    /// The newest idle report and when it came.
    idle_report: Option<(Duration, Instant)>,
}

impl ConsoleSeat {
    pub fn apply(&mut self, event: ConsoleEvent, now: Instant) {
        match event {
            ConsoleEvent::Logon => {
                self.logged_on = Some(true);
                self.locked_since = None;
                self.idle_report = None;
            }
            ConsoleEvent::Logoff => {
                self.logged_on = Some(false);
                self.locked_since = None;
                self.idle_report = None;
            }
            ConsoleEvent::Lock => {
                self.locked_since.get_or_insert(now);
            }
            ConsoleEvent::Unlock => {
                self.logged_on = Some(true);
                self.locked_since = None;
                // Unlocking is input.
                self.idle_report = Some((Duration::ZERO, now));
            }
            ConsoleEvent::InputIdle(idle) => self.idle_report = Some((idle, now)),
        }
    }

    /// Sets whether someone is logged on, from a look at the system (which wins over
    /// events: a notification can be missed, for example while the service restarts).
    pub fn observe_logged_on(&mut self, logged_on: bool) {
        if self.logged_on != Some(logged_on) {
            self.apply(
                if logged_on {
                    ConsoleEvent::Logon
                } else {
                    ConsoleEvent::Logoff
                },
                Instant::now(),
            );
        }
    }

    /// The seat at `now`, or `None` when nothing has said yet whether anyone is there.
    pub fn snapshot(&self, now: Instant) -> Option<SeatSnapshot> {
        let logged_in = self.logged_on?;
        let idle_for = if !logged_in {
            None
        } else if let Some(locked) = self.locked_since {
            Some(now.saturating_duration_since(locked))
        } else {
            self.idle_report.and_then(|(idle, at)| {
                let age = now.saturating_duration_since(at);
                (age <= IDLE_REPORT_STALE_AFTER).then_some(idle + age)
            })
        };
        Some(SeatSnapshot {
            logged_in,
            idle_for,
        })
    }
}

/// The console of this PC, shared by whoever hears about it (the Windows service's
/// control handler, the check-in page's idle-report route) and the login source that
/// reads it. One per process, as the console is one per PC.
pub fn console() -> &'static Arc<Mutex<ConsoleSeat>> {
    static CONSOLE: OnceLock<Arc<Mutex<ConsoleSeat>>> = OnceLock::new();
    CONSOLE.get_or_init(|| Arc::new(Mutex::new(ConsoleSeat::default())))
}

/// Records a console event now.
pub fn console_event(event: ConsoleEvent) {
    // A poisoned lock only means a thread panicked while holding it; the state is plain data.
    let mut seat = console().lock().unwrap_or_else(|e| e.into_inner());
    seat.apply(event, Instant::now());
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
    fn console_events_become_seat_snapshots() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut seat = ConsoleSeat::default();
        assert_eq!(seat.snapshot(at(0)), None, "nothing said yet: cannot tell");
        seat.apply(ConsoleEvent::Logon, at(0));
        assert_eq!(
            seat.snapshot(at(10)),
            Some(SeatSnapshot {
                logged_in: true,
                idle_for: None
            }),
            "logged on, idleness unknown without reports"
        );
        seat.apply(ConsoleEvent::InputIdle(Duration::from_secs(5)), at(60));
        assert_eq!(
            seat.snapshot(at(90)).and_then(|s| s.idle_for),
            Some(Duration::from_secs(35)),
            "a report ages with the time since it came"
        );
        assert_eq!(
            seat.snapshot(at(60) + IDLE_REPORT_STALE_AFTER + Duration::from_secs(1))
                .and_then(|s| s.idle_for),
            None,
            "a stale report is not trusted"
        );
        seat.apply(ConsoleEvent::Lock, at(100));
        seat.apply(ConsoleEvent::InputIdle(Duration::ZERO), at(110));
        assert_eq!(
            seat.snapshot(at(400)).and_then(|s| s.idle_for),
            Some(Duration::from_secs(300)),
            "locked: idle since the lock, whatever the reports say"
        );
        seat.apply(ConsoleEvent::Unlock, at(500));
        assert_eq!(
            seat.snapshot(at(500)).and_then(|s| s.idle_for),
            Some(Duration::ZERO),
            "unlocking is input"
        );
        seat.apply(ConsoleEvent::Logoff, at(600));
        assert_eq!(
            seat.snapshot(at(600)),
            Some(SeatSnapshot {
                logged_in: false,
                idle_for: None
            })
        );
        seat.observe_logged_on(true);
        assert!(seat.snapshot(Instant::now()).is_some_and(|s| s.logged_in));
    }

    /// A recorded Windows day: the service hears logon, a lock while the patron fetches
    /// a book, unlock, a long lock (gone), and logoff; the watcher turns it into seat
    /// changes as the daemon sees them at each look.
    #[test]
    fn a_recorded_console_day_becomes_sessions_as_on_linux() {
        let t0 = Instant::now();
        let at = |mins: u64| t0 + MIN * mins as u32;
        let mut seat = ConsoleSeat::default();
        let mut watcher = LoginWatcher::new(MIN * 15);
        let mut changes = Vec::new();
        let script: &[(u64, Option<ConsoleEvent>)] = &[
            (0, Some(ConsoleEvent::Logon)),
            (1, Some(ConsoleEvent::InputIdle(Duration::ZERO))),
            (5, Some(ConsoleEvent::Lock)),
            (8, Some(ConsoleEvent::Unlock)),
            (9, None),
            (20, Some(ConsoleEvent::Lock)),
            (30, None),
            (40, None),
            (41, Some(ConsoleEvent::Unlock)),
            (50, Some(ConsoleEvent::Logoff)),
        ];
        for (minute, event) in script {
            if let Some(event) = event {
                seat.apply(*event, at(*minute));
            }
            changes.extend(watcher.observe(seat.snapshot(at(*minute))));
        }
        assert_eq!(
            changes,
            vec![
                SeatChange::Began,
                SeatChange::Ended(EndReason::Idle),
                SeatChange::Began,
                SeatChange::Ended(EndReason::Logout),
            ],
            "logon starts; a short lock changes nothing; a lock of 20 minutes ends as \
             idle; unlock starts again; logoff ends it"
        );
        let mut seat = ConsoleSeat::default();
        let mut watcher = LoginWatcher::new(MIN * 15);
        seat.apply(ConsoleEvent::Logon, at(0));
        assert_eq!(
            watcher.observe(seat.snapshot(at(0))),
            vec![SeatChange::Began]
        );
        seat.apply(ConsoleEvent::Logoff, at(3));
        assert_eq!(
            watcher.observe(seat.snapshot(at(3))),
            vec![SeatChange::Ended(EndReason::Logout)]
        );
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
