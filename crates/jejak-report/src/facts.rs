//! What the report builders read: a month's rollups per library, PC and local day, and
//! per library and profile ([`crate::ServerStore::month_facts`]). The rules that fill
//! the rollups (local days, sessions split across midnight, staff excluded, uptime from
//! the pc events) are stated in `rollup.rs`; in short:
//!
//! - A session counts once, on the local day (the library's zone: WIB +7, WITA +8,
//!   WIT +9) on which it started; its hours, online time and data are split over the
//!   days it spans. Open sessions count with the duration known so far.
//! - Staff sessions (`user_kind = staf`) are excluded from every count, except that a
//!   staff session still makes a day "open".
//! - A day is open when a session (of anyone) started or a PC booted on it.
//! - Unique users are the distinct patron keys of the month's public sessions: sessions
//!   without a key are not in that count.
//! - A session dated by estimate counts in the month its estimate points to (and is
//!   counted as estimated); one whose month cannot be told counts in no month and is
//!   listed per PC as undated, whatever month is asked for.

use chrono::NaiveDate;
use jejak_domain::{
    AgeGroup, Gender, LibraryCode, LibraryDetails, PcCode, Purpose, UserKind, Zone,
};
use serde::Serialize;
use uuid::Uuid;

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
    /// Its identity and signatories (NPP, desa, kecamatan, …), for the reports' identity
    /// rows, grouping and signature block.
    pub details: LibraryDetails,
    /// Its PCs, by code.
    pub pcs: Vec<PcFacts>,
    /// The local days on which it was open, ascending.
    pub open_days: Vec<NaiveDate>,
    /// Distinct patron keys among the month's public sessions.
    pub unique_users: u64,
    /// The latest batch any of its PCs sent, Unix ms.
    pub last_batch_ms: Option<i64>,
    /// Public use per PC and local day (days without public use are left out).
    pub days: Vec<DayFacts>,
    /// Public sessions by age group and by purpose, user kind and gender; empty unless
    /// asked for ([`FactsDetail`]).
    pub breakdowns: Vec<BreakdownFacts>,
}

/// How much [`crate::ServerStore::month_facts`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactsDetail {
    /// Days and PCs only: what the district matrix needs.
    Days,
    /// Also the breakdowns by age group and purpose, for the cross tables.
    Breakdowns,
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
    /// Seconds of the month the PC was known to be on (from its pc events).
    pub powered_seconds: u64,
    /// Of those, the seconds the connectivity probe found the internet up.
    pub internet_up_seconds: u64,
    /// Its public sessions whose month cannot be told at all (its clock was wrong and
    /// nothing else dates them closely enough), whenever they happened: counted in no
    /// month, listed as "date unknown".
    pub undated_sessions: u64,
}

/// The longest silence that still counts as "on": the agent writes a heartbeat event
/// every 15 minutes, so a PC not heard from for longer had lost power (or its agent).
/// The uptime rule that uses it is in `rollup.rs`.
pub const MAX_SILENCE_MS: i64 = 20 * 60 * 1000;

/// Public use of one PC on one local day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayFacts {
    /// The PC.
    pub pc: PcCode,
    /// The local day.
    pub day: NaiveDate,
    /// Sessions started on the day.
    pub sessions: u64,
    /// Their persons (the sum of group sizes).
    pub persons: u64,
    /// Seconds of use falling on the day.
    pub seconds: u64,
    /// Traffic received + sent falling on the day, KiB.
    pub kib: u64,
    /// Seconds of use with the internet up.
    pub online_seconds: u64,
    /// Sessions started with gender, age group and a purpose stated.
    pub complete: u64,
    /// Sessions started by men (L).
    pub men: u64,
    /// Sessions started by women (P).
    pub women: u64,
    /// Of the sessions, those whose time is an estimate (no anchor measured against the
    /// server dates their run: a PC that syncs by USB only, or whose clock was wrong).
    pub estimated: u64,
}

/// Which cross table a [`BreakdownFacts`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Breakdown {
    /// Age × gender: sessions of this age group.
    Age(AgeGroup),
    /// Purpose × gender: sessions naming this purpose (a session counts once per
    /// purpose it names).
    Purpose(Purpose),
}

/// Public sessions of a library's month in one cell of a cross table, by user kind and
/// gender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakdownFacts {
    /// The age group or purpose.
    pub by: Breakdown,
    /// The user kind (never staff).
    pub user_kind: UserKind,
    /// The gender.
    pub gender: Gender,
    /// How many sessions.
    pub sessions: u64,
    /// How many persons (the sum of group sizes).
    pub persons: u64,
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

/// Changes of a device's log that are lost: the server was restored from a backup older
/// than their acknowledgement, and the PC had pruned them by the time it noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LostRange {
    /// The epoch of the device's change log.
    pub epoch: Uuid,
    /// The first seq lost.
    pub first_seq: u64,
    /// The last seq lost.
    pub last_seq: u64,
    /// When the PC reported them, Unix ms (server clock).
    pub reported_at_ms: i64,
}

impl LostRange {
    /// How many changes the range held.
    pub fn changes(&self) -> u64 {
        self.last_seq
            .saturating_sub(self.first_seq)
            .saturating_add(1)
    }
}
