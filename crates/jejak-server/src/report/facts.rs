//! What the report builders read: a month's counts per library, PC, local day and
//! profile, aggregated by the store ([`crate::ServerStore::month_facts`]).
//!
//! Rules (computed from raw sessions for now; rollups come later):
//!
//! - A session belongs to the local day (the library's zone: WIB +7, WITA +8, WIT +9)
//!   on which it *started*, whole; a session crossing midnight or a month end is not
//!   split. Open sessions count with the duration known so far.
//! - Staff sessions (`user_kind = staf`) are excluded from every count, except that a
//!   staff session still makes a day "open".
//! - A day is open when a session (of anyone) started or a PC booted on it.
//! - Unique users are the distinct patron keys of the month's public sessions: sessions
//!   without a key are not in that count.
//! - Internet uptime is not computed yet (it needs the pc events paired in time order).

use chrono::NaiveDate;
use jejak_domain::{AgeGroup, Gender, LibraryCode, PcCode, PcEventKind, Purpose, UserKind, Zone};
use serde::Serialize;

/// A month's facts for one or all libraries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthFacts {
    /// The first day of the month.
    pub month: NaiveDate,
    /// Each library, by code.
    pub libraries: Vec<LibraryFacts>,
}

impl MonthFacts {
    /// The facts of one library.
    pub fn library(&self, code: &LibraryCode) -> Option<&LibraryFacts> {
        self.libraries.iter().find(|l| &l.code == code)
    }
}

/// A month's facts for one library.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LibraryFacts {
    /// Its code.
    pub code: LibraryCode,
    /// Its name.
    pub name: String,
    /// The zone its days are counted in.
    pub timezone: Zone,
    /// Its PCs, by code.
    pub pcs: Vec<PcFacts>,
    /// The local days on which it was open, ascending.
    pub open_days: Vec<NaiveDate>,
    /// Distinct patron keys among the month's public sessions.
    pub unique_users: u64,
    /// The latest batch any of its PCs sent, Unix ms.
    pub last_batch_ms: Option<i64>,
    /// Public sessions grouped by PC, local day and profile.
    pub groups: Vec<FactGroup>,
}

/// One PC of a library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PcFacts {
    /// Its code.
    pub pc: PcCode,
    /// Whether it holds an active token.
    pub active: bool,
    /// Its latest batch, Unix ms.
    pub last_batch_ms: Option<i64>,
    /// Seconds of the month the PC was known to be on (see [`uptime`]).
    pub powered_seconds: u64,
    /// Of those, the seconds the connectivity probe found the internet up.
    pub internet_up_seconds: u64,
}

/// The longest silence that still counts as "on": the agent writes a heartbeat event
/// every 15 minutes, so a PC not heard from for longer had lost power (or its agent).
pub const MAX_SILENCE_MS: i64 = 20 * 60 * 1000;

/// Powered and internet-up seconds of one PC from its pc events in time order. Between
/// two events the PC counts as on if the first was not a shutdown, for at most
/// [`MAX_SILENCE_MS`]; the internet counts as up from an `internet_up` until an
/// `internet_down`, a boot (the probe has not spoken yet) or a shutdown.
pub fn uptime(events: &[(PcEventKind, i64)]) -> (u64, u64) {
    let (mut powered, mut up) = (0i64, 0i64);
    let mut link_up = false;
    for pair in events.windows(2) {
        let ((kind, at), (_, next)) = (pair[0], pair[1]);
        match kind {
            PcEventKind::InternetUp => link_up = true,
            PcEventKind::InternetDown | PcEventKind::Boot => link_up = false,
            _ => {}
        }
        if kind == PcEventKind::Shutdown {
            link_up = false;
            continue;
        }
        let span = (next - at).clamp(0, MAX_SILENCE_MS);
        powered += span;
        if link_up {
            up += span;
        }
    }
    ((powered / 1000) as u64, (up / 1000) as u64)
}

#[cfg(test)]
mod uptime_tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn uptime_counts_powered_time_and_the_link_within_it() {
        use PcEventKind::*;
        let events = [
            (Boot, 0),
            (InternetUp, MIN),
            (Heartbeat, 15 * MIN),
            (InternetDown, 25 * MIN),
            (Heartbeat, 30 * MIN),
            (Shutdown, 40 * MIN),
            // Off overnight: nothing counts until the next boot.
            (Boot, 600 * MIN),
            (InternetUp, 601 * MIN),
            // A power cut: heard of last here, an hour of silence counts 20 minutes.
            (Heartbeat, 610 * MIN),
            (Boot, 700 * MIN),
        ];
        let (powered, up) = uptime(&events);
        assert_eq!(powered, (40 + 1 + 9 + 20) * 60);
        assert_eq!(up, (24 + 9 + 20) * 60);
        assert_eq!(uptime(&[(Boot, 0)]), (0, 0));
    }
}

/// Public sessions sharing a PC, a local start day and a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactGroup {
    /// The PC.
    pub pc: PcCode,
    /// The local day the sessions started on.
    pub day: NaiveDate,
    /// The user kind (never staff).
    pub user_kind: UserKind,
    /// The gender.
    pub gender: Gender,
    /// The age group.
    pub age_group: AgeGroup,
    /// The purposes (a set; a session with several purposes is one session here).
    pub purposes: Vec<Purpose>,
    /// How many sessions.
    pub sessions: u64,
    /// How many persons (the sum of group sizes).
    pub persons: u64,
    /// Their total duration, seconds.
    pub seconds: u64,
    /// Their traffic received + sent, KiB.
    pub kib: u64,
    /// Their seconds with the internet up.
    pub online_seconds: u64,
}

/// A month as a range of days: its first day normalised, and the first day after it.
pub fn month_bounds(month: NaiveDate) -> (NaiveDate, NaiveDate) {
    use chrono::Datelike;
    let first = month.with_day(1).unwrap_or(month);
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    (first, next)
}
