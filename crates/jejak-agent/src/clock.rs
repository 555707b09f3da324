//! Where the agent gets its times from. Wall time says when (and can be wrong); the
//! monotonic time since boot says how long (and cannot go backwards within a boot).
//! A boot is a "run": monotonic readings are compared only within the same run.

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::platform;

/// The earliest wall time that can be right: the build date, less a day.
pub fn earliest_plausible_wall() -> DateTime<Utc> {
    let secs: i64 = env!("JEJAK_BUILD_EPOCH_SECS").parse().unwrap_or(0);
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// A source of wall time, monotonic time and boot identity. The system clock is the
/// real one; the manual clock drives tests and the demo's simulated month.
pub trait Clock: Send + Sync + fmt::Debug {
    fn wall(&self) -> DateTime<Utc>;
    /// Milliseconds since this boot began; never decreases within one boot.
    fn mono_ms(&self) -> u64;
    /// An identifier that changes at every boot.
    fn boot_id(&self) -> String;
}

/// The operating system's clocks (see [`crate::platform`]): a monotonic clock shared by
/// every process of one boot (so the CLI and the daemon agree) that keeps counting
/// through sleep (Linux `CLOCK_BOOTTIME`, Windows `GetTickCount64`), and the boot's
/// identity (Linux's `boot_id`; on Windows a volatile registry key).
#[derive(Debug, Clone)]
pub struct SystemClock {
    boot_id: String,
}

impl SystemClock {
    /// `JEJAK_BOOT_ID` overrides the system's boot id, for tests and for systems
    /// without one.
    pub fn new() -> Self {
        let boot_id = std::env::var("JEJAK_BOOT_ID")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .or_else(platform::kernel_boot_id)
            .unwrap_or_else(|| {
                // Without a boot id, the moment of boot (wall now minus uptime, to the
                // minute) identifies the boot well enough.
                let boot = Utc::now() - Duration::milliseconds(platform::monotonic_ms() as i64);
                format!("boot-at-{}", boot.format("%Y%m%dT%H%M"))
            });
        SystemClock { boot_id }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn wall(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn mono_ms(&self) -> u64 {
        platform::monotonic_ms()
    }

    fn boot_id(&self) -> String {
        self.boot_id.clone()
    }
}

#[derive(Debug)]
struct ManualState {
    wall: DateTime<Utc>,
    mono_ms: u64,
    boot: u32,
}

/// A clock moved by hand. Cloning it shares the same time, so a test can hold one
/// handle and give another to the store.
#[derive(Debug, Clone)]
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
    boot_prefix: String,
}

impl ManualClock {
    pub fn new(wall: DateTime<Utc>) -> Self {
        ManualClock {
            state: Arc::new(Mutex::new(ManualState {
                wall,
                mono_ms: 60_000,
                boot: 1,
            })),
            boot_prefix: format!("manual-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut ManualState) -> T) -> T {
        // A poisoned lock only means another test thread panicked; the time is still usable.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// Time passes: both clocks move forward together.
    pub fn advance(&self, by: std::time::Duration) {
        self.with(|s| {
            s.wall += Duration::from_std(by).unwrap_or(Duration::zero());
            s.mono_ms += by.as_millis() as u64;
        });
    }

    /// Someone sets the wall clock: it moves, the monotonic clock does not.
    pub fn set_wall(&self, wall: DateTime<Utc>) {
        self.with(|s| s.wall = wall);
    }

    /// The PC restarts: a new boot id, the monotonic clock starts again near zero, and
    /// the wall clock reads whatever the CMOS says.
    pub fn reboot(&self, wall: DateTime<Utc>) {
        self.with(|s| {
            s.boot += 1;
            s.mono_ms = 30_000;
            s.wall = wall;
        });
    }
}

impl Clock for ManualClock {
    fn wall(&self) -> DateTime<Utc> {
        self.with(|s| s.wall)
    }

    fn mono_ms(&self) -> u64 {
        self.with(|s| s.mono_ms)
    }

    fn boot_id(&self) -> String {
        let boot = self.with(|s| s.boot);
        format!("{}-{boot}", self.boot_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_monotonic_time_does_not_go_back() {
        let clock = SystemClock::new();
        let a = clock.mono_ms();
        let b = clock.mono_ms();
        assert!(b >= a);
        assert!(!clock.boot_id().is_empty());
    }

    #[test]
    fn manual_clock_reboot_changes_boot_and_resets_monotonic() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::new(start);
        let boot = clock.boot_id();
        clock.advance(std::time::Duration::from_secs(3600));
        assert_eq!(clock.wall(), start + Duration::hours(1));
        clock.reboot(start);
        assert_ne!(clock.boot_id(), boot);
        assert!(clock.mono_ms() < 3_600_000);
    }

    #[test]
    fn the_build_date_is_a_plausible_lower_bound() {
        let earliest = earliest_plausible_wall();
        assert!(earliest.timestamp() > 1_700_000_000);
        assert!(earliest <= Utc::now());
    }
}
