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
use std::sync::Arc;

use serde::Serialize;

use crate::counters;
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
    /// The counters of the low-volume record kinds (desk visits, the member count) on
    /// the month's local days, by counter key (see [`EntryCountFacts`]).
    pub entry_counts: Vec<EntryCountFacts>,
}

impl LibraryFacts {
    /// The sum of counter `key` over the month's days (`day` `None`) or on one day.
    pub fn entry_count(&self, day: Option<NaiveDate>, key: &str) -> i64 {
        self.entry_counts
            .iter()
            .filter(|c| &*c.key == key && day.is_none_or(|d| d == c.day))
            .map(|c| c.value)
            .sum()
    }
}

/// One counter of a low-volume record kind on one local day, as the server's ingest
/// keeps it (`rollup::entry_counters`, where the keys are stated):
///
/// - `visit.entries`, `visit.people`: desk visits (buku tamu) entered on the day and
///   their visitors (a group counts its size); `visit.people.computer`: of them, those
///   who came for the computer or the internet. On the month's first day, each by
///   gender and age group (`visit.people.ga.P.remaja`), by user kind
///   (`visit.people.kind.anggota`) and by purpose (`visit.people.purpose.membaca`): the
///   reports read those per month only. A withdrawn entry counts nothing.
/// - `member_count.members`, `member_count.new`: the month's member count, on its
///   first day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryCountFacts {
    /// The local day.
    pub day: NaiveDate,
    /// The counter's key, shared by the month's days of one library (a year of the
    /// district's counters is about 300,000 of them).
    pub key: Arc<str>,
    /// Its value.
    pub value: i64,
}

/// How a PC check-in and a desk visit are counted together, one line for the foot of
/// every table that uses [`library_visits`] (Indonesian, English).
pub const VISITS_RULE: (&str, &str) = (
    "Kunjungan = pengunjung buku tamu dengan tujuan selain komputer/internet + yang lebih besar dari pengunjung buku tamu untuk komputer/internet dan orang yang check-in di PC, per hari: tidak ada yang terhitung dua kali.",
    "Visits = visitor-book visitors for purposes other than computer/internet + the larger of visitor-book visitors for computer/internet and people checked in at a PC, per day: nobody is counted twice.",
);

/// The visits of one day by the rule of [`VISITS_RULE`]: `desk_people` visitors in the
/// visitor book of whom `desk_computer` came for the computer or the internet, and
/// `pc_persons` people checked in at the library's PCs (public sessions' persons). A
/// librarian who writes a PC user in the book and the check-in count the same person;
/// one who does not still counts them through the check-in; so the computer visitors
/// are the larger of the two, never their sum.
pub fn visits_of_day(desk_people: u64, desk_computer: u64, pc_persons: u64) -> u64 {
    desk_people.saturating_sub(desk_computer) + desk_computer.max(pc_persons)
}

/// What one local day's visits are made of: the visitor book's people, of them those
/// who came for the computer or the internet, and the people checked in at the PCs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayVisits {
    /// Visitors in the visitor book (a group counts its size).
    pub desk_people: u64,
    /// Of them, those whose purpose was the computer or the internet.
    pub desk_computer: u64,
    /// People checked in at the library's PCs (public sessions' persons).
    pub pc_persons: u64,
}

impl DayVisits {
    /// The day's visits by the rule of [`VISITS_RULE`].
    pub fn visits(&self) -> u64 {
        visits_of_day(self.desk_people, self.desk_computer, self.pc_persons)
    }
}

/// A library's visit parts per local day of the month (days with none left out),
/// ascending.
pub fn library_day_visits(library: &LibraryFacts) -> Vec<(NaiveDate, DayVisits)> {
    // A sorted list merged by day, not a map: a district's year is 4,000 library-months.
    let mut parts: Vec<(NaiveDate, DayVisits)> = Vec::new();
    for c in &library.entry_counts {
        let value = u64::try_from(c.value).unwrap_or(0);
        match &*c.key {
            counters::VISIT_PEOPLE => parts.push((
                c.day,
                DayVisits {
                    desk_people: value,
                    ..DayVisits::default()
                },
            )),
            counters::VISIT_PEOPLE_COMPUTER => parts.push((
                c.day,
                DayVisits {
                    desk_computer: value,
                    ..DayVisits::default()
                },
            )),
            _ => {}
        }
    }
    parts.extend(library.days.iter().map(|d| {
        (
            d.day,
            DayVisits {
                pc_persons: d.persons,
                ..DayVisits::default()
            },
        )
    }));
    parts.sort_unstable_by_key(|(day, _)| *day);
    let mut days: Vec<(NaiveDate, DayVisits)> = Vec::with_capacity(parts.len());
    for (day, part) in parts {
        match days.last_mut() {
            Some((last, sum)) if *last == day => {
                sum.desk_people += part.desk_people;
                sum.desk_computer += part.desk_computer;
                sum.pc_persons += part.pc_persons;
            }
            _ => days.push((day, part)),
        }
    }
    days.retain(|(_, v)| v.visits() > 0);
    days
}

/// A library's visits per local day of the month (days with none left out), by the
/// rule of [`VISITS_RULE`], ascending.
pub fn library_visits(library: &LibraryFacts) -> Vec<(NaiveDate, u64)> {
    library_day_visits(library)
        .into_iter()
        .map(|(day, parts)| (day, parts.visits()))
        .collect()
}

/// The days the library served anyone: a PC was used or switched on, or the visitor
/// book has a visitor. Visits per open day divide by their number.
pub fn service_days(library: &LibraryFacts) -> usize {
    let mut days: Vec<NaiveDate> = library.open_days.clone();
    days.extend(
        library
            .entry_counts
            .iter()
            .filter(|c| &*c.key == counters::VISIT_PEOPLE && c.value > 0)
            .map(|c| c.day),
    );
    days.sort();
    days.dedup();
    days.len()
}

/// The member count the librarian entered for the month: members at its end and the
/// month's new members; `None` when none was entered (never a zero nobody said).
pub fn month_members(library: &LibraryFacts) -> Option<(u64, u64)> {
    let entered = library
        .entry_counts
        .iter()
        .any(|c| matches!(&*c.key, counters::MEMBERS | counters::NEW_MEMBERS));
    entered.then(|| {
        let total = |key: &str| u64::try_from(library.entry_count(None, key)).unwrap_or(0);
        (total(counters::MEMBERS), total(counters::NEW_MEMBERS))
    })
}

/// A counter summed over the month as a count (a negative sum, which ingest never
/// leaves, reads as zero).
pub fn month_count(library: &LibraryFacts, key: &str) -> u64 {
    u64::try_from(library.entry_count(None, key)).unwrap_or(0)
}

/// Whether [`FactsDetail::Days`] reads the entry counter `key`: what the district
/// matrix, the IPLM sheet and the village report's month before use — the visit rule's
/// per-day parts (not the visitor book's entries, which only the village report's own
/// month counts), the visitor book's purposes, activities and their participants (all,
/// and those of socialisation/KIE), and the member count. The breakdowns by gender, age,
/// user kind and place are for the village report's own month
/// ([`FactsDetail::Breakdowns`]); leaving them out keeps a district's year of facts small.
pub fn counter_in_days_detail(key: &str) -> bool {
    use counters::*;
    matches!(
        key,
        VISIT_PEOPLE | VISIT_PEOPLE_COMPUTER | ACTIVITIES | PARTICIPANTS | MEMBERS | NEW_MEMBERS
    ) || code_of(key, PARTICIPANTS, TYPE) == Some(jejak_domain::ActivityType::SosialisasiKie.code())
        || code_of(key, VISIT_PEOPLE, PURPOSE).is_some()
}

/// How much [`crate::ServerStore::month_facts`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactsDetail {
    /// Days and PCs only, and the entry counters of [`counter_in_days_detail`]: what
    /// the district matrix and the IPLM sheet need.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn a_pc_check_in_counts_as_a_visit_once() {
        // Nobody at the desk said "computer": every check-in is a visit of its own.
        assert_eq!(visits_of_day(10, 0, 4), 14);
        // The librarian wrote every PC user in the book too: counted once.
        assert_eq!(visits_of_day(10, 4, 4), 10);
        // Some PC users were written in the book, some only checked in.
        assert_eq!(visits_of_day(10, 2, 5), 13);
        // More desk visitors for the computer than check-ins (a PC without the agent).
        assert_eq!(visits_of_day(10, 6, 1), 10);
        assert_eq!(visits_of_day(0, 0, 0), 0);
    }

    #[test]
    fn a_librarys_visits_combine_its_desk_and_its_pcs_per_day() {
        let count = |d: u32, key: &str, value: i64| EntryCountFacts {
            day: day(d),
            key: key.into(),
            value,
        };
        let pc_day = |d: u32, persons: u64| DayFacts {
            pc: PcCode::parse("pc-01").unwrap(),
            day: day(d),
            sessions: persons,
            persons,
            seconds: 0,
            kib: 0,
            online_seconds: 0,
            complete: 0,
            men: 0,
            women: 0,
            estimated: 0,
        };
        let library = LibraryFacts {
            code: LibraryCode::parse("dermaji").unwrap(),
            name: "Dermaji".into(),
            timezone: Zone::Wib,
            details: jejak_domain::LibraryDetails::default(),
            pcs: Vec::new(),
            open_days: Vec::new(),
            unique_users: 0,
            last_batch_ms: None,
            days: vec![pc_day(2, 3), pc_day(3, 2)],
            breakdowns: Vec::new(),
            entry_counts: vec![
                count(1, "member_count.members", 120),
                count(2, "visit.people", 8),
                count(2, "visit.people.computer", 5),
                count(2, "visit.entries", 3),
                count(4, "visit.people", 1),
            ],
        };
        assert_eq!(
            library_visits(&library),
            vec![(day(2), 8), (day(3), 2), (day(4), 1)]
        );
        assert_eq!(library.entry_count(None, "member_count.members"), 120);
        assert_eq!(library.entry_count(Some(day(4)), "visit.people"), 1);
        assert_eq!(library.entry_count(None, "visit.people"), 9);
    }
}
