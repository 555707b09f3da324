//! The report builders: pure functions from a month's facts ([`MonthFacts`]) to a
//! [`Report`]. No IO. Column labels and titles are bilingual ([`Text`]); row labels
//! that sit in cells (age groups, purposes, identity items) are written in `lang`,
//! since a cell holds one text.
//!
//! Rules besides those of [`super::facts`]:
//!
//! - Opening hours are assumed to be 7 hours (420 minutes) a day until libraries
//!   record their own: PC use rate = session minutes ÷ (PCs × open days × 420).
//! - The PCs of a library are those with an active token or with sessions in the month.
//! - The age × gender table counts sessions (a group session counts once, under the
//!   profile recorded for it).
//! - The purpose × gender table counts a session once per purpose it names, so its
//!   purpose rows add up to more than the sessions; its total row counts sessions, and
//!   its % column is the share of sessions naming the purpose.
//! - Data MB are decimal megabytes (10^6 bytes, as `jejak demo` prints them) of the
//!   stored KiB received + sent (the server keeps whole KiB per session).
//! - Data completeness is the share of sessions with a gender other than X, a known age
//!   group and at least one purpose.
//! - A library is flagged in the district matrix when its last batch is more than 14
//!   days before `today` (in its zone), or when it never sent one, and otherwise when
//!   it has sessions whose month cannot be told, or else when its internet was up less
//!   than half of its PCs' powered time.
//! - The summary and the matrix say how many of the month's sessions are dated by
//!   estimate (counted in the month) and how many sessions' month cannot be told at all
//!   (whenever they happened: counted in no month, never in January 2000).

mod detail;
mod district;
mod iplm;
mod operations;
mod period;
mod services;
mod village;
mod village_entries;

pub use detail::{DetailFacts, SessionDetail, detail_export};
pub use district::district_monthly;
pub use iplm::iplm_sheet;
pub use operations::{CLOCK_WARNING_MS, OpsRow, operations_report};
pub use period::{Period, period_report};
pub use village::village_monthly;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use jejak_domain::{Gender, Lang, Zone};

use super::dates::month_name;
use super::facts::{DayFacts, LibraryFacts, PcFacts};
use super::model::{Cell, Column, ColumnKind, Report, Table, Text};

/// Assumed opening minutes per open day (7 hours).
pub const OPENING_MINUTES_PER_DAY: f64 = 420.0;

/// Days without a batch after which a library is flagged.
pub const SILENT_DAYS: i64 = 14;

/// Public use summed over some PC-days (a day, a PC, a library, a district).
#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    sessions: u64,
    persons: u64,
    men: u64,
    women: u64,
    seconds: u64,
    kib: u64,
    online: u64,
    complete: u64,
    estimated: u64,
}

impl Sum {
    fn add(&mut self, d: &DayFacts) {
        self.sessions += d.sessions;
        self.persons += d.persons;
        self.men += d.men;
        self.women += d.women;
        self.seconds += d.seconds;
        self.kib += d.kib;
        self.online += d.online_seconds;
        self.complete += d.complete;
        self.estimated += d.estimated;
    }

    /// Adds another sum (a library's to the district's).
    fn merge(&mut self, other: &Sum) {
        self.sessions += other.sessions;
        self.persons += other.persons;
        self.men += other.men;
        self.women += other.women;
        self.seconds += other.seconds;
        self.kib += other.kib;
        self.online += other.online;
        self.complete += other.complete;
        self.estimated += other.estimated;
    }

    fn of<'a>(groups: impl IntoIterator<Item = &'a DayFacts>) -> Sum {
        let mut sum = Sum::default();
        for g in groups {
            sum.add(g);
        }
        sum
    }

    fn minutes(&self) -> f64 {
        self.seconds as f64 / 60.0
    }

    fn hours(&self) -> f64 {
        self.seconds as f64 / 3600.0
    }

    fn mb(&self) -> f64 {
        self.kib as f64 * 1024.0 / 1e6
    }

    fn mean_minutes(&self) -> Cell {
        ratio(self.minutes(), self.sessions as f64)
    }

    fn completeness(&self) -> Cell {
        ratio(self.complete as f64, self.sessions as f64)
    }

    fn online_share(&self) -> Cell {
        ratio(self.online as f64, self.seconds as f64)
    }
}

/// `a / b`, or an empty cell when `b` is zero.
fn ratio(a: f64, b: f64) -> Cell {
    if b > 0.0 {
        Cell::number(a / b)
    } else {
        Cell::Empty
    }
}

/// Internet uptime: the share of the PCs' powered time in which the probe found the
/// link up (empty when no PC reported being on).
fn internet_uptime(pcs: &[PcFacts]) -> Cell {
    let powered: u64 = pcs.iter().map(|p| p.powered_seconds).sum();
    let up: u64 = pcs.iter().map(|p| p.internet_up_seconds).sum();
    ratio(up as f64, powered as f64)
}

/// Libraries whose internet was up less than this share of their powered time are
/// flagged in the district matrix.
pub const LOW_UPTIME: f64 = 0.5;

fn count(n: u64) -> Cell {
    Cell::number(n as f64)
}

/// A library's public sessions whose month cannot be told (see `facts.rs`).
fn undated(lib: &LibraryFacts) -> u64 {
    lib.pcs.iter().map(|p| p.undated_sessions).sum()
}

/// The two columns that say how well the sessions are dated: those of the month dated
/// by estimate (counted in it), and those whose month cannot be told (counted in none).
fn dating_columns() -> [Column; 2] {
    [
        col(
            "estimated",
            "Sesi bertanggal perkiraan",
            "Sessions dated by estimate",
            ColumnKind::Count,
        ),
        col(
            "undated",
            "Sesi tanggal tidak diketahui",
            "Sessions, date unknown",
            ColumnKind::Count,
        ),
    ]
}

fn col(key: &str, id: &str, en: &str, kind: ColumnKind) -> Column {
    Column::new(key, Text::new(id, en), kind)
}

// The columns of a library-month's indicators ([`LibraryMonth`]) that the village
// summary and the district matrix label alike.

fn days_open_column() -> Column {
    col(
        "days_open",
        "Hari buka",
        "Days open",
        ColumnKind::Decimal(0),
    )
}

fn sessions_column() -> Column {
    col("sessions", "Sesi", "Sessions", ColumnKind::Count)
}

// The village report's own totals, shown in its summary and beside the previous
// month's.

fn persons_column() -> Column {
    col("persons", "Orang", "Persons", ColumnKind::Count)
}

fn unique_users_keyed_column() -> Column {
    col(
        "unique_users",
        "Pengguna unik (berkartu)",
        "Unique users (keyed)",
        ColumnKind::Count,
    )
}

fn hours_used_column() -> Column {
    col(
        "hours",
        "Jam penggunaan",
        "Hours used",
        ColumnKind::Decimal(1),
    )
}

fn mean_minutes_column() -> Column {
    col(
        "mean_minutes",
        "Rata-rata menit",
        "Mean minutes",
        ColumnKind::Decimal(1),
    )
}

fn internet_uptime_column() -> Column {
    col(
        "internet_uptime",
        "Internet aktif",
        "Internet uptime",
        ColumnKind::Percent(1),
    )
}

fn data_mb_column() -> Column {
    col("data_mb", "Data (MB)", "Data (MB)", ColumnKind::Decimal(1))
}

/// A month as people name it: "Oktober 2026" / "October 2026".
pub fn month_text(month: NaiveDate) -> Text {
    Text::new(
        format!("{} {}", month_name(month, Lang::Id), month.year()),
        format!("{} {}", month_name(month, Lang::En), month.year()),
    )
}

/// The PCs counted for use rates: active, or with sessions this month.
fn counted_pcs(lib: &LibraryFacts) -> Vec<&jejak_domain::PcCode> {
    let mut pcs: Vec<&jejak_domain::PcCode> =
        lib.pcs.iter().filter(|p| p.active).map(|p| &p.pc).collect();
    // The days come per PC, so a PC is pushed once per run of its days.
    for g in &lib.days {
        if pcs.last() != Some(&&g.pc) {
            pcs.push(&g.pc);
        }
    }
    pcs.sort();
    pcs.dedup();
    pcs
}

/// A library-month's indicators, computed in one place for the village report's
/// summary and the district matrix's row, so that the two always agree.
struct LibraryMonth<'a> {
    /// The PCs counted for use rates ([`counted_pcs`]).
    pcs: Vec<&'a jejak_domain::PcCode>,
    /// The local days on which it was open.
    days_open: usize,
    /// Its public use over the month.
    sum: Sum,
    /// Its public sessions whose month cannot be told.
    undated: u64,
    /// The local date of its latest batch.
    last_sync: Option<NaiveDate>,
    /// The share of its PCs' powered time with the internet up.
    internet_uptime: Cell,
}

impl<'a> LibraryMonth<'a> {
    fn of(lib: &'a LibraryFacts) -> LibraryMonth<'a> {
        LibraryMonth {
            pcs: counted_pcs(lib),
            days_open: lib.open_days.len(),
            sum: Sum::of(&lib.days),
            undated: undated(lib),
            last_sync: date_of_ms(lib.last_batch_ms, lib.timezone),
            internet_uptime: internet_uptime(&lib.pcs),
        }
    }

    /// PC-days open: the denominator of sessions per PC and day and of the use rate.
    fn pc_days(&self) -> usize {
        self.pcs.len() * self.days_open
    }

    /// Session minutes over the assumed opening minutes of its PCs' open days.
    fn use_rate(&self) -> Cell {
        use_rate(self.sum.minutes(), self.pcs.len(), self.days_open)
    }
}

fn use_rate(minutes: f64, pcs: usize, days: usize) -> Cell {
    ratio(minutes, pcs as f64 * days as f64 * OPENING_MINUTES_PER_DAY)
}

fn date_of_ms(ms: Option<i64>, zone: Zone) -> Option<NaiveDate> {
    ms.and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|t| t.with_timezone(&zone.offset()).date_naive())
}

fn date_cell(date: Option<NaiveDate>) -> Cell {
    date.map_or(Cell::Empty, |d| {
        Cell::text(d.format("%Y-%m-%d").to_string())
    })
}

fn month_code(month: NaiveDate) -> String {
    month.format("%Y-%m").to_string()
}

/// A table of rows keyed by a label and split by gender (L, P, X, total).
fn gender_columns(first: Column) -> Vec<Column> {
    vec![
        first,
        col("l", "L", "M", ColumnKind::Count),
        col("p", "P", "F", ColumnKind::Count),
        col("x", "X", "X", ColumnKind::Count),
        col("total", "Jumlah", "Total", ColumnKind::Count),
    ]
}

fn gender_cells(label: String, by_gender: [u64; 3]) -> Vec<Cell> {
    vec![
        Cell::text(label),
        count(by_gender[0]),
        count(by_gender[1]),
        count(by_gender[2]),
        count(by_gender.iter().sum()),
    ]
}

fn gender_index(g: Gender) -> usize {
    match g {
        Gender::L => 0,
        Gender::P => 1,
        Gender::X => 2,
    }
}

/// The name of a table's XLSX sheet, when its title is longer than a sheet name may be
/// (31 characters): a deliberate short form rather than a title cut mid-word. Every
/// other table's sheet is named by its title (a test holds every report to it).
pub(crate) fn sheet_title(table: &Table) -> Option<Text> {
    let (id, en) = match table.id.as_str() {
        "age_by_gender" => ("E. Umur × Jenis Kelamin", "E. Age group × Gender"),
        "purpose_by_gender" => ("F. Tujuan × Jenis Kelamin", "F. Purpose × Gender"),
        "user_kind" => ("D. Kriteria Pengguna", "D. PC Sessions by User Kind"),
        "lost" => ("Hilang setelah pemulihan", "Lost after a restore"),
        "visitors_by_age_gender" => (
            "J. Buku Tamu Umur × Kelamin",
            "J. Visitor Book Age × Gender",
        ),
        "participants_by_age_gender" => {
            ("P. Peserta Umur × Kelamin", "P. Participants Age × Gender")
        }
        _ => return None,
    };
    Some(Text::new(id, en))
}

/// The tables of `report` whose XLSX sheet would not be named in full in one of the two
/// languages (by its title, or by the short form [`sheet_title`] chose) but cut at 31
/// characters or changed, each with the name it would lose. Empty for every report the
/// builders make (their tests hold them to it).
pub fn sheets_not_named_in_full(report: &Report) -> Vec<(String, String)> {
    let mut cut = Vec::new();
    for table in &report.sections {
        let title = sheet_title(table).unwrap_or_else(|| table.title.clone());
        for lang in [Lang::Id, Lang::En] {
            let name = title.get(lang);
            let mut used = std::collections::HashSet::new();
            if super::xlsx::sheet_name(name, &table.id, &mut used) != name {
                cut.push((table.id.clone(), name.to_string()));
            }
        }
    }
    cut
}

/// Asserts that every sheet of `report` is named in full, in both languages.
#[cfg(test)]
pub(crate) fn assert_sheets_named_in_full(report: &Report) {
    assert_eq!(
        sheets_not_named_in_full(report),
        Vec::<(String, String)>::new(),
        "these sheet names would be cut or changed; give them a short form in sheet_title"
    );
}
