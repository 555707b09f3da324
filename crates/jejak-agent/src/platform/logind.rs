//! systemd-logind's view of who sits at a Linux PC: the session files under
//! `/run/systemd/sessions` for logins, and `loginctl show-session` for the idle hint
//! that desktops set.
//!
//! Privacy: only the session's class, type, state and whether it is remote are read;
//! user names, seats and displays are never kept or logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::unix::monotonic_us;
use crate::login::{LoginSource, SeatSnapshot};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
