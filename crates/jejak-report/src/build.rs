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

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use jejak_domain::{AgeGroup, Gender, Lang, LibraryCode, Purpose, Zone};

use super::facts::{Breakdown, DayFacts, LibraryFacts, MonthFacts, PcFacts, month_bounds};
use super::model::{Cell, Column, ColumnKind, Flag, Report, Row, Table, Text};

/// Assumed opening minutes per open day (7 hours).
pub const OPENING_MINUTES_PER_DAY: f64 = 420.0;

/// Days without a batch after which a library is flagged.
pub const SILENT_DAYS: i64 = 14;

#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    sessions: u64,
    persons: u64,
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
        self.seconds += d.seconds;
        self.kib += d.kib;
        self.online += d.online_seconds;
        self.complete += d.complete;
        self.estimated += d.estimated;
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

/// A month as people name it: "Oktober 2026" / "October 2026".
pub fn month_text(month: NaiveDate) -> Text {
    const ID: [&str; 12] = [
        "Januari",
        "Februari",
        "Maret",
        "April",
        "Mei",
        "Juni",
        "Juli",
        "Agustus",
        "September",
        "Oktober",
        "November",
        "Desember",
    ];
    const EN: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let i = month.month0() as usize;
    Text::new(
        format!("{} {}", ID[i], month.year()),
        format!("{} {}", EN[i], month.year()),
    )
}

/// The PCs counted for use rates: active, or with sessions this month.
fn counted_pcs(lib: &LibraryFacts) -> Vec<&jejak_domain::PcCode> {
    let mut pcs: Vec<&jejak_domain::PcCode> = lib
        .pcs
        .iter()
        .filter(|p| p.active || lib.days.iter().any(|g| g.pc == p.pc))
        .map(|p| &p.pc)
        .collect();
    for g in &lib.days {
        if !pcs.contains(&&g.pc) {
            pcs.push(&g.pc);
        }
    }
    pcs.sort();
    pcs
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
        "age_by_gender" => ("C. Umur × Jenis Kelamin", "C. Age group × Gender"),
        "purpose_by_gender" => ("D. Tujuan × Jenis Kelamin", "D. Purpose × Gender"),
        "lost" => ("Hilang setelah pemulihan", "Lost after a restore"),
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

/// The village monthly report (Laporan Bulanan Layanan TIK) of `library`, or `None`
/// when the facts do not hold it.
pub fn village_monthly(
    facts: &MonthFacts,
    library: &LibraryCode,
    lang: Lang,
    generated_at: DateTime<Utc>,
) -> Option<Report> {
    let lib = facts.library(library)?;
    let (first, next) = month_bounds(facts.month);
    let pcs = counted_pcs(lib);
    let days = lib.open_days.len();
    let all = Sum::of(&lib.days);
    let month = month_text(first);
    let last_sync = date_of_ms(lib.last_batch_ms, lib.timezone);

    let identity = Table {
        id: "identity".into(),
        title: Text::new("A. Identitas", "A. Identity"),
        // The values keep their types (the PCs a number, the last sync a date), so a
        // spreadsheet reads them as such; a `Date` column shows other text as text.
        columns: vec![
            col("item", "Keterangan", "Item", ColumnKind::Text),
            col("value", "Isi", "Value", ColumnKind::Date),
        ],
        rows: [
            (
                lang.pick("Perpustakaan", "Library"),
                Cell::text(lib.name.clone()),
            ),
            (lang.pick("Kode", "Code"), Cell::text(lib.code.as_str())),
            (lang.pick("Bulan", "Month"), Cell::text(month.get(lang))),
            (
                lang.pick("Zona waktu", "Time zone"),
                Cell::text(lib.timezone.label(lang)),
            ),
            (
                lang.pick("Jumlah PC", "PCs"),
                Cell::number(pcs.len() as f64),
            ),
            (
                lang.pick("Sinkron terakhir", "Last sync"),
                last_sync.map_or_else(|| Cell::text("-"), |d| date_cell(Some(d))),
            ),
        ]
        .into_iter()
        .map(|(k, v)| Row::new(vec![Cell::text(k), v]))
        .collect(),
    };

    let summary = Table {
        id: "summary".into(),
        title: Text::new("B. Ringkasan", "B. Summary"),
        columns: vec![
            col(
                "days_open",
                "Hari buka",
                "Days open",
                ColumnKind::Decimal(0),
            ),
            col("sessions", "Sesi", "Sessions", ColumnKind::Count),
            col("persons", "Orang", "Persons", ColumnKind::Count),
            col(
                "unique_users",
                "Pengguna unik (berkartu)",
                "Unique users (keyed)",
                ColumnKind::Count,
            ),
            col(
                "hours",
                "Jam penggunaan",
                "Hours used",
                ColumnKind::Decimal(1),
            ),
            col(
                "mean_minutes",
                "Rata-rata menit",
                "Mean minutes",
                ColumnKind::Decimal(1),
            ),
            col(
                "use_rate",
                "Pemanfaatan PC",
                "PC use rate",
                ColumnKind::Percent(1),
            ),
            col(
                "online_share",
                "Waktu daring",
                "Online share",
                ColumnKind::Percent(1),
            ),
            col(
                "internet_uptime",
                "Internet aktif",
                "Internet uptime",
                ColumnKind::Percent(1),
            ),
            col("data_mb", "Data (MB)", "Data (MB)", ColumnKind::Decimal(1)),
            col(
                "completeness",
                "Kelengkapan data",
                "Data completeness",
                ColumnKind::Percent(1),
            ),
        ]
        .into_iter()
        .chain(dating_columns())
        .collect(),
        rows: vec![Row::new(vec![
            Cell::number(days as f64),
            count(all.sessions),
            count(all.persons),
            count(lib.unique_users),
            Cell::number(all.hours()),
            all.mean_minutes(),
            use_rate(all.minutes(), pcs.len(), days),
            all.online_share(),
            internet_uptime(&lib.pcs),
            Cell::number(all.mb()),
            all.completeness(),
            count(all.estimated),
            count(undated(lib)),
        ])],
    };

    let mut by_age = Vec::new();
    let mut age_total = [0u64; 3];
    for age in AgeGroup::ALL {
        let mut cells = [0u64; 3];
        for g in lib
            .breakdowns
            .iter()
            .filter(|g| g.by == Breakdown::Age(*age))
        {
            cells[gender_index(g.gender)] += g.sessions;
            age_total[gender_index(g.gender)] += g.sessions;
        }
        by_age.push(Row::new(gender_cells(age.label(lang).to_string(), cells)));
    }
    by_age.push(Row::total(gender_cells(
        lang.pick("Jumlah", "Total").to_string(),
        age_total,
    )));
    let age_gender = Table {
        id: "age_by_gender".into(),
        title: Text::new(
            "C. Kelompok Umur × Jenis Kelamin (sesi)",
            "C. Age group × Gender (sessions)",
        ),
        columns: gender_columns(col(
            "age_group",
            "Kelompok umur",
            "Age group",
            ColumnKind::Text,
        )),
        rows: by_age,
    };

    let mut purpose_columns = gender_columns(col(
        "purpose",
        "Tujuan penggunaan",
        "Purpose",
        ColumnKind::Text,
    ));
    purpose_columns.push(col("share", "%", "%", ColumnKind::Percent(1)));
    let mut by_purpose = Vec::new();
    for purpose in Purpose::ALL {
        let mut cells = [0u64; 3];
        for g in lib
            .breakdowns
            .iter()
            .filter(|g| g.by == Breakdown::Purpose(*purpose))
        {
            cells[gender_index(g.gender)] += g.sessions;
        }
        let mut row = gender_cells(purpose.label(lang).to_string(), cells);
        row.push(ratio(cells.iter().sum::<u64>() as f64, all.sessions as f64));
        by_purpose.push(Row::new(row));
    }
    let mut total = gender_cells(
        lang.pick("Jumlah sesi", "Total sessions").to_string(),
        age_total,
    );
    total.push(Cell::Empty);
    by_purpose.push(Row::total(total));
    let purpose_gender = Table {
        id: "purpose_by_gender".into(),
        title: Text::new(
            "D. Tujuan Penggunaan × Jenis Kelamin (sesi; satu sesi dihitung sekali per tujuan)",
            "D. Purpose × Gender (sessions; a session counts once per purpose)",
        ),
        columns: purpose_columns,
        rows: by_purpose,
    };

    let mut daily_rows = Vec::new();
    let mut day = first;
    while day < next {
        let sum = Sum::of(lib.days.iter().filter(|g| g.day == day));
        let open = lib.open_days.contains(&day);
        daily_rows.push(Row::new(vec![
            Cell::text(day.format("%Y-%m-%d").to_string()),
            Cell::text(if open { lang.pick("ya", "yes") } else { "" }),
            count(sum.sessions),
            Cell::number(sum.hours()),
        ]));
        day = day.succ_opt().unwrap_or(next);
    }
    daily_rows.push(Row::total(vec![
        Cell::text(lang.pick("Jumlah", "Total")),
        Cell::number(days as f64),
        count(all.sessions),
        Cell::number(all.hours()),
    ]));
    let daily = Table {
        id: "daily".into(),
        title: Text::new("E. Kalender Harian", "E. Daily Calendar"),
        columns: vec![
            col("day", "Tanggal", "Date", ColumnKind::Date),
            col("open", "Buka", "Open", ColumnKind::Text),
            col("sessions", "Sesi", "Sessions", ColumnKind::Count),
            col("hours", "Jam", "Hours", ColumnKind::Decimal(1)),
        ],
        rows: daily_rows,
    };

    let mut pc_rows = Vec::new();
    for pc in &pcs {
        let sum = Sum::of(lib.days.iter().filter(|g| &&g.pc == pc));
        let last = lib
            .pcs
            .iter()
            .find(|p| &&p.pc == pc)
            .and_then(|p| p.last_batch_ms);
        pc_rows.push(Row::new(vec![
            Cell::text(pc.as_str()),
            count(sum.sessions),
            Cell::number(sum.hours()),
            use_rate(sum.minutes(), 1, days),
            Cell::number(sum.mb()),
            date_cell(date_of_ms(last, lib.timezone)),
        ]));
    }
    pc_rows.push(Row::total(vec![
        Cell::text(lang.pick("Jumlah", "Total")),
        count(all.sessions),
        Cell::number(all.hours()),
        use_rate(all.minutes(), pcs.len(), days),
        Cell::number(all.mb()),
        date_cell(last_sync),
    ]));
    let per_pc = Table {
        id: "per_pc".into(),
        title: Text::new("F. Per PC", "F. Per PC"),
        columns: vec![
            col("pc", "PC", "PC", ColumnKind::Text),
            col("sessions", "Sesi", "Sessions", ColumnKind::Count),
            col("hours", "Jam", "Hours", ColumnKind::Decimal(1)),
            col(
                "use_rate",
                "Pemanfaatan",
                "Use rate",
                ColumnKind::Percent(1),
            ),
            col("data_mb", "Data (MB)", "Data (MB)", ColumnKind::Decimal(1)),
            col(
                "last_sync",
                "Sinkron terakhir",
                "Last sync",
                ColumnKind::Date,
            ),
        ],
        rows: pc_rows,
    };

    Some(Report {
        id: format!(
            "laporan-bulanan-{}-{}",
            lib.code.as_str(),
            month_code(first)
        ),
        title: Text::new("Laporan Bulanan Layanan TIK", "Monthly ICT Service Report"),
        subtitle: vec![
            Text::same(format!("{} ({})", lib.name, lib.code.as_str())),
            month,
            Text::new(
                "Sesi petugas tidak dihitung; sesi dihitung pada tanggal mulainya (waktu setempat), jam dan data dibagi ke hari yang dilaluinya; pemanfaatan PC mengasumsikan buka 7 jam sehari.",
                "Staff sessions excluded; a session counts on its local start day, its hours and data are split over the days it spans; PC use rate assumes 7 opening hours a day.",
            ),
        ],
        letterhead: Default::default(),
        sections: vec![identity, summary, age_gender, purpose_gender, daily, per_pc],
        generated_at: generated_at.with_timezone(&lib.timezone.offset()),
        landscape: false,
        suppressed_below: None,
    })
}

/// The district monthly matrix (Rekap Bulanan Kabupaten): a row per library of the
/// facts, a total row, and libraries silent for more than 14 days before `today`
/// flagged.
pub fn district_monthly(
    facts: &MonthFacts,
    today: NaiveDate,
    lang: Lang,
    generated_at: DateTime<Utc>,
) -> Report {
    let (first, _) = month_bounds(facts.month);
    let mut rows = Vec::new();
    let (mut t_pcs, mut t_pc_days) = (0usize, 0usize);
    let mut t_sum = Sum::default();
    let mut t_gender = [0u64; 3];
    let mut t_undated = 0u64;
    for lib in &facts.libraries {
        let pcs = counted_pcs(lib).len();
        let days = lib.open_days.len();
        let sum = Sum::of(&lib.days);
        let mut gender = [0u64; 3];
        for d in &lib.days {
            gender[0] += d.men;
            gender[1] += d.women;
        }
        t_gender[0] += gender[0];
        t_gender[1] += gender[1];
        t_pcs += pcs;
        t_pc_days += pcs * days;
        for d in &lib.days {
            t_sum.add(d);
        }
        let last = date_of_ms(lib.last_batch_ms, lib.timezone);
        let lib_undated = undated(lib);
        t_undated += lib_undated;
        let row = Row::new(vec![
            Cell::text(lib.name.clone()),
            Cell::text(lib.code.as_str()),
            Cell::number(pcs as f64),
            Cell::number(days as f64),
            count(sum.sessions),
            ratio(sum.sessions as f64, (pcs * days) as f64),
            count(lib.unique_users),
            count(gender[0]),
            count(gender[1]),
            Cell::number(sum.hours()),
            sum.mean_minutes(),
            use_rate(sum.minutes(), pcs, days),
            internet_uptime(&lib.pcs),
            Cell::number(sum.mb()),
            date_cell(last),
            sum.completeness(),
            count(sum.estimated),
            count(lib_undated),
        ]);
        let uptime = match internet_uptime(&lib.pcs) {
            Cell::Number(share) => Some(share),
            _ => None,
        };
        let row = match last {
            None => row.flagged(Flag::alert(Text::new(
                "Belum pernah sinkron",
                "Never synced",
            ))),
            Some(d) if (today - d).num_days() > SILENT_DAYS => row.flagged(Flag::alert(Text::new(
                format!("Tidak sinkron {} hari", (today - d).num_days()),
                format!("Silent for {} days", (today - d).num_days()),
            ))),
            // Sessions that no month counts: the PC's clock needs looking at (the
            // uptime column shows a low uptime by itself).
            Some(_) if lib_undated > 0 => row.flagged(Flag::warning(Text::new(
                format!("{lib_undated} sesi tanggal tidak diketahui (jam PC salah)"),
                format!("{lib_undated} sessions, date unknown (PC clock wrong)"),
            ))),
            Some(_) => match uptime {
                Some(share) if share < LOW_UPTIME => row.flagged(Flag::warning(Text::new(
                    format!("Internet aktif hanya {:.0}%", share * 100.0),
                    format!("Internet up only {:.0}%", share * 100.0),
                ))),
                _ => row,
            },
        };
        rows.push(row);
    }
    rows.push(Row::total(vec![
        Cell::text(lang.pick("Jumlah", "Total")),
        Cell::Empty,
        Cell::number(t_pcs as f64),
        Cell::Empty,
        count(t_sum.sessions),
        ratio(t_sum.sessions as f64, t_pc_days as f64),
        Cell::Empty,
        count(t_gender[0]),
        count(t_gender[1]),
        Cell::number(t_sum.hours()),
        t_sum.mean_minutes(),
        ratio(t_sum.minutes(), t_pc_days as f64 * OPENING_MINUTES_PER_DAY),
        internet_uptime(
            &facts
                .libraries
                .iter()
                .flat_map(|l| l.pcs.iter().cloned())
                .collect::<Vec<_>>(),
        ),
        Cell::number(t_sum.mb()),
        Cell::Empty,
        t_sum.completeness(),
        count(t_sum.estimated),
        count(t_undated),
    ]));
    let zone = facts.libraries.first().map_or(Zone::Wib, |l| l.timezone);
    let month = month_text(first);
    Report {
        id: format!("rekap-bulanan-{}", month_code(first)),
        title: Text::new("Rekap Bulanan Kabupaten", "District Monthly Summary"),
        subtitle: vec![
            month,
            Text::new(
                "Sesi petugas tidak dihitung; pemanfaatan PC mengasumsikan buka 7 jam sehari; pengguna unik tidak dijumlahkan antar perpustakaan.",
                "Staff sessions excluded; PC use rate assumes 7 opening hours a day; unique users are not summed across libraries.",
            ),
        ],
        letterhead: Default::default(),
        sections: vec![Table {
            id: "libraries".into(),
            title: Text::new("Perpustakaan desa", "Village libraries"),
            columns: vec![
                col("library", "Perpustakaan", "Library", ColumnKind::Text),
                col("code", "Kode", "Code", ColumnKind::Text),
                col("pcs", "PC", "PCs", ColumnKind::Decimal(0)),
                col(
                    "days_open",
                    "Hari buka",
                    "Days open",
                    ColumnKind::Decimal(0),
                ),
                col("sessions", "Sesi", "Sessions", ColumnKind::Count),
                col(
                    "sessions_per_pc_day",
                    "Sesi/PC/hari",
                    "Sessions/PC/day",
                    ColumnKind::Decimal(1),
                ),
                col(
                    "unique_users",
                    "Pengguna unik",
                    "Unique users",
                    ColumnKind::Count,
                ),
                col("l", "L", "M", ColumnKind::Count),
                col("p", "P", "F", ColumnKind::Count),
                col("hours", "Jam", "Hours", ColumnKind::Decimal(1)),
                col(
                    "mean_minutes",
                    "Rata-rata menit",
                    "Mean minutes",
                    ColumnKind::Decimal(1),
                ),
                col(
                    "use_rate",
                    "Pemanfaatan",
                    "Use rate",
                    ColumnKind::Percent(1),
                ),
                col(
                    "internet_uptime",
                    "Internet aktif",
                    "Internet uptime",
                    ColumnKind::Percent(1),
                ),
                col("data_mb", "Data (MB)", "Data (MB)", ColumnKind::Decimal(1)),
                col(
                    "last_sync",
                    "Sinkron terakhir",
                    "Last sync",
                    ColumnKind::Date,
                ),
                col(
                    "completeness",
                    "Kelengkapan",
                    "Completeness",
                    ColumnKind::Percent(1),
                ),
            ]
            .into_iter()
            .chain(dating_columns())
            .collect(),
            rows,
        }],
        generated_at: generated_at.with_timezone(&zone.offset()),
        landscape: true,
        suppressed_below: None,
    }
}

/// Which comparison report: a quarter (Laporan Triwulan) or a year (Laporan Tahunan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A calendar quarter: `quarter` is 1 to 4.
    Quarter {
        /// The year.
        year: i32,
        /// 1 (January–March) to 4 (October–December).
        quarter: u32,
    },
    /// A calendar year.
    Year(i32),
}

impl Period {
    /// The first day of each month of the period.
    pub fn months(self) -> Vec<NaiveDate> {
        let (year, first, count) = match self {
            Period::Quarter { year, quarter } => (year, (quarter.clamp(1, 4) - 1) * 3 + 1, 3),
            Period::Year(year) => (year, 1, 12),
        };
        (0..count)
            .filter_map(|i| NaiveDate::from_ymd_opt(year, first + i, 1))
            .collect()
    }

    /// The period just before, to compare with.
    pub fn previous(self) -> Period {
        match self {
            Period::Quarter { year, quarter: 1 } => Period::Quarter {
                year: year - 1,
                quarter: 4,
            },
            Period::Quarter { year, quarter } => Period::Quarter {
                year,
                quarter: quarter - 1,
            },
            Period::Year(year) => Period::Year(year - 1),
        }
    }

    fn code(self) -> String {
        match self {
            Period::Quarter { year, quarter } => format!("{year}-Q{quarter}"),
            Period::Year(year) => year.to_string(),
        }
    }

    fn label(self) -> Text {
        match self {
            Period::Quarter { year, quarter } => Text::new(
                format!("Triwulan {quarter} tahun {year}"),
                format!("Quarter {quarter} of {year}"),
            ),
            Period::Year(year) => Text::new(format!("Tahun {year}"), format!("Year {year}")),
        }
    }
}

/// Quarterly or annual comparison: libraries × months with totals and the change
/// against the previous period, and the target groups of the programmes (women, youth
/// 16–30, UMKM = sessions with the economy purpose). `current` and `previous` hold the
/// month facts of the period's months and of the previous period's months.
pub fn period_report(
    period: Period,
    current: &[MonthFacts],
    previous: &[MonthFacts],
    lang: Lang,
    generated_at: DateTime<Utc>,
) -> Report {
    let mut libraries: Vec<(LibraryCode, String, Zone)> = Vec::new();
    for lib in current.iter().chain(previous).flat_map(|m| &m.libraries) {
        if !libraries.iter().any(|(code, _, _)| code == &lib.code) {
            libraries.push((lib.code.clone(), lib.name.clone(), lib.timezone));
        }
    }
    libraries.sort_by(|a, b| a.1.cmp(&b.1));
    let sessions_of = |months: &[MonthFacts], code: &LibraryCode| -> Vec<u64> {
        months
            .iter()
            .map(|m| {
                m.libraries
                    .iter()
                    .filter(|l| &l.code == code)
                    .flat_map(|l| &l.days)
                    .map(|d| d.sessions)
                    .sum()
            })
            .collect()
    };
    let change = |now: u64, before: u64| ratio(now as f64 - before as f64, before as f64);

    let mut month_rows = Vec::new();
    let mut month_totals = vec![0u64; current.len()];
    let (mut all_now, mut all_before) = (0u64, 0u64);
    let mut group_rows = Vec::new();
    let mut group_totals = [0u64; 4];
    for (code, name, _) in &libraries {
        let per_month = sessions_of(current, code);
        let now: u64 = per_month.iter().sum();
        let before: u64 = sessions_of(previous, code).iter().sum();
        for (total, n) in month_totals.iter_mut().zip(&per_month) {
            *total += n;
        }
        all_now += now;
        all_before += before;
        let mut cells = vec![Cell::text(name.clone())];
        cells.extend(per_month.iter().map(|n| count(*n)));
        cells.extend([count(now), count(before), change(now, before)]);
        month_rows.push(Row::new(cells));

        let groups = current
            .iter()
            .flat_map(|m| &m.libraries)
            .filter(|l| &l.code == code)
            .flat_map(|l| &l.breakdowns);
        // Every session is in exactly one age cell, so the age cells give the total,
        // the women and the youth; UMKM is the economy purpose's cells.
        let mut target = [0u64; 4];
        for g in groups {
            match g.by {
                Breakdown::Age(age) => {
                    target[0] += g.sessions;
                    if g.gender == Gender::P {
                        target[1] += g.sessions;
                    }
                    if age == AgeGroup::Pemuda {
                        target[2] += g.sessions;
                    }
                }
                Breakdown::Purpose(Purpose::Ekonomi) => target[3] += g.sessions,
                Breakdown::Purpose(_) => {}
            }
        }
        for (total, n) in group_totals.iter_mut().zip(target) {
            *total += n;
        }
        group_rows.push(Row::new(target_cells(Cell::text(name.clone()), target)));
    }
    let mut total = vec![Cell::text(lang.pick("Jumlah", "Total"))];
    total.extend(month_totals.iter().map(|n| count(*n)));
    total.extend([
        count(all_now),
        count(all_before),
        change(all_now, all_before),
    ]);
    month_rows.push(Row::total(total));
    group_rows.push(Row::total(target_cells(
        Cell::text(lang.pick("Jumlah", "Total")),
        group_totals,
    )));

    let mut month_columns = vec![col("library", "Perpustakaan", "Library", ColumnKind::Text)];
    for (i, m) in current.iter().enumerate() {
        let label = month_text(m.month);
        month_columns.push(Column::new(format!("m{}", i + 1), label, ColumnKind::Count));
    }
    month_columns.extend([
        col("total", "Jumlah", "Total", ColumnKind::Count),
        col(
            "previous",
            "Periode sebelumnya",
            "Previous period",
            ColumnKind::Count,
        ),
        col("change", "Perubahan", "Change", ColumnKind::Percent(1)),
    ]);
    let zone = libraries.first().map_or(Zone::Wib, |l| l.2);
    let (title, id_prefix) = match period {
        Period::Quarter { .. } => (
            Text::new(
                "Laporan Triwulan Layanan TIK",
                "Quarterly ICT Service Report",
            ),
            "laporan-triwulan",
        ),
        Period::Year(_) => (
            Text::new("Laporan Tahunan Layanan TIK", "Annual ICT Service Report"),
            "laporan-tahunan",
        ),
    };
    Report {
        id: format!("{id_prefix}-{}", period.code()),
        title,
        subtitle: vec![
            period.label(),
            Text::new(
                "Sesi petugas tidak dihitung; perubahan dibanding periode sebelumnya yang sama panjangnya.",
                "Staff sessions excluded; change against the previous period of the same length.",
            ),
        ],
        letterhead: Default::default(),
        sections: vec![
            Table {
                id: "sessions_by_month".into(),
                title: Text::new("Sesi per bulan", "Sessions by month"),
                columns: month_columns,
                rows: month_rows,
            },
            Table {
                id: "target_groups".into(),
                title: Text::new("Kelompok sasaran", "Target groups"),
                columns: vec![
                    col("library", "Perpustakaan", "Library", ColumnKind::Text),
                    col("sessions", "Sesi", "Sessions", ColumnKind::Count),
                    col("women", "Perempuan", "Women", ColumnKind::Count),
                    col(
                        "women_share",
                        "% perempuan",
                        "% women",
                        ColumnKind::Percent(1),
                    ),
                    col(
                        "youth",
                        "Pemuda (16–30)",
                        "Youth (16–30)",
                        ColumnKind::Count,
                    ),
                    col("youth_share", "% pemuda", "% youth", ColumnKind::Percent(1)),
                    col(
                        "umkm",
                        "UMKM (ekonomi)",
                        "UMKM (economy)",
                        ColumnKind::Count,
                    ),
                    col("umkm_share", "% UMKM", "% UMKM", ColumnKind::Percent(1)),
                ],
                rows: group_rows,
            },
        ],
        generated_at: generated_at.with_timezone(&zone.offset()),
        landscape: true,
        suppressed_below: None,
    }
}

/// One PC as the operations view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpsRow {
    /// The PC's library.
    pub library: LibraryCode,
    /// The library's name, as registered.
    pub library_name: String,
    /// The PC.
    pub pc: jejak_domain::PcCode,
    /// Whether its token is active.
    pub active: bool,
    /// Its latest batch, Unix ms.
    pub last_batch_ms: Option<i64>,
    /// The server's clock minus the PC's, as last measured (ms): negative when the
    /// PC's clock is ahead.
    pub clock_offset_ms: Option<i64>,
    /// Sessions open for more than 12 hours.
    pub long_open_sessions: u64,
    /// Records the server refused.
    pub rejected: u64,
    /// New epochs (change logs started again at seq 1) in the last 30 days: more than
    /// one means the PC's store was replaced, or a token is misused.
    pub new_epochs_30d: u64,
    /// Ranges of the PC's change log lost after a restore from an older backup.
    pub lost: Vec<crate::facts::LostRange>,
}

/// A clock further off than this is worth a visit (or a word on the phone).
pub const CLOCK_WARNING_MS: i64 = 5 * 60 * 1000;

/// What the operations view says of a PC's clock, when it needs attention: a short
/// cell in both languages and the flag with the evidence. Off by more than
/// [`CLOCK_WARNING_MS`] at the last measurement, or never measured although the PC sends
/// data (it syncs only by USB, so its records are dated by estimate). `None` for a clock
/// measured right, or a PC that never sent anything.
fn clock_evidence(offset_ms: Option<i64>, has_synced: bool, lang: Lang) -> Option<(String, Text)> {
    match offset_ms {
        Some(ms) if ms.abs() > CLOCK_WARNING_MS => {
            let (id, en) = span_words(ms.abs());
            let (ahead_id, ahead_en) = if ms < 0 {
                ("lebih cepat", "ahead")
            } else {
                ("terlambat", "behind")
            };
            Some((
                match lang {
                    Lang::Id => format!("{id} {ahead_id}"),
                    Lang::En => format!("{en} {ahead_en}"),
                },
                Text::new(
                    format!(
                        "Jam komputer salah: {id} {ahead_id} dari server (diukur saat sinkron)"
                    ),
                    format!("PC clock is wrong: {en} {ahead_en} of the server (measured at sync)"),
                ),
            ))
        }
        Some(_) => None,
        None if has_synced => Some((
            lang.pick("tidak diketahui", "unknown").to_string(),
            Text::new(
                "Jam komputer tidak diketahui: belum pernah diukur (hanya sinkron lewat USB?); waktu catatannya diperkirakan",
                "PC clock unknown: never measured (syncs by USB only?); its records are dated by estimate",
            ),
        )),
        None => None,
    }
}

/// A duration in the largest whole unit that fits, in both languages.
fn span_words(ms: i64) -> (String, String) {
    let minutes = ms / 60_000;
    let (n, id, en) = if minutes >= 2 * 365 * 1440 {
        (minutes / (365 * 1440), "tahun", "years")
    } else if minutes >= 2 * 1440 {
        (minutes / 1440, "hari", "days")
    } else if minutes >= 120 {
        (minutes / 60, "jam", "hours")
    } else {
        (minutes, "menit", "minutes")
    };
    (format!("{n} {id}"), format!("{n} {en}"))
}

/// The operations view: last sync per library and PC, clock offsets, sessions open for
/// more than 12 hours and rejected records, with the rows that need attention flagged.
pub fn operations_report(
    rows: &[OpsRow],
    today: NaiveDate,
    zone: Zone,
    lang: Lang,
    generated_at: DateTime<Utc>,
) -> Report {
    let mut table_rows = Vec::new();
    let mut lost_rows = Vec::new();
    for r in rows {
        for range in &r.lost {
            lost_rows.push(Row::new(vec![
                Cell::text(r.library_name.as_str()),
                Cell::text(r.library.as_str()),
                Cell::text(r.pc.as_str()),
                Cell::text(range.epoch.simple().to_string()[..8].to_string()),
                Cell::number(range.first_seq as f64),
                Cell::number(range.last_seq as f64),
                count(range.changes()),
                date_cell(date_of_ms(Some(range.reported_at_ms), zone)),
            ]));
        }
        let lost: u64 = r.lost.iter().map(|l| l.changes()).sum();
        let clock = clock_evidence(r.clock_offset_ms, r.last_batch_ms.is_some(), lang);
        let last = date_of_ms(r.last_batch_ms, zone);
        let silent = last.map(|d| (today - d).num_days());
        let mut row = Row::new(vec![
            Cell::text(r.library_name.as_str()),
            Cell::text(r.library.as_str()),
            Cell::text(r.pc.as_str()),
            Cell::text(if r.active {
                lang.pick("aktif", "active")
            } else {
                lang.pick("dicabut", "revoked")
            }),
            date_cell(last),
            silent.map_or(Cell::Empty, |d| Cell::number(d as f64)),
            r.clock_offset_ms
                .map_or(Cell::Empty, |ms| Cell::number((ms as f64 / 1000.0).round())),
            clock
                .as_ref()
                .map_or(Cell::Empty, |(cell, _)| Cell::text(cell.as_str())),
            count(r.long_open_sessions),
            count(r.rejected),
            count(r.new_epochs_30d),
            count(lost),
        ]);
        let flag = if lost > 0 {
            Some(Flag::alert(Text::new(
                format!("{lost} perubahan hilang setelah pemulihan server"),
                format!("{lost} changes lost after the server was restored"),
            )))
        } else if !r.active {
            None
        } else if last.is_none() {
            Some(Flag::alert(Text::new(
                "Belum pernah sinkron",
                "Never synced",
            )))
        } else if silent.is_some_and(|d| d > SILENT_DAYS) {
            let days = silent.unwrap_or_default();
            Some(Flag::alert(Text::new(
                format!("Tidak sinkron {days} hari"),
                format!("Silent for {days} days"),
            )))
        } else if r.long_open_sessions > 0 {
            Some(Flag::warning(Text::new(
                "Ada sesi terbuka lebih dari 12 jam",
                "Sessions open for more than 12 hours",
            )))
        } else if r.new_epochs_30d > 1 {
            Some(Flag::warning(Text::new(
                "Penyimpanan data PC dimulai ulang berulang kali",
                "The PC's store started again more than once",
            )))
        } else if r.rejected > 0 {
            Some(Flag::warning(Text::new(
                "Ada catatan ditolak",
                "Records were rejected",
            )))
        } else if let Some((_, evidence)) = clock {
            Some(Flag::warning(evidence))
        } else {
            None
        };
        if let Some(flag) = flag {
            row = row.flagged(flag);
        }
        table_rows.push(row);
    }
    Report {
        id: format!("operasional-{}", today.format("%Y-%m-%d")),
        title: Text::new("Keadaan Operasional", "Operations View"),
        subtitle: vec![Text::new(
            format!("Per {}", today.format("%Y-%m-%d")),
            format!("As of {}", today.format("%Y-%m-%d")),
        )],
        letterhead: Default::default(),
        sections: vec![Table {
            id: "pcs".into(),
            title: Text::new("Komputer", "PCs"),
            columns: vec![
                col("library", "Perpustakaan", "Library", ColumnKind::Text),
                col("code", "Kode", "Code", ColumnKind::Text),
                col("pc", "Komputer", "PC", ColumnKind::Text),
                col("token", "Token", "Token", ColumnKind::Text),
                col(
                    "last_sync",
                    "Sinkron terakhir",
                    "Last sync",
                    ColumnKind::Date,
                ),
                col(
                    "days_silent",
                    "Hari tanpa sinkron",
                    "Days silent",
                    ColumnKind::Decimal(0),
                ),
                col(
                    "clock_offset_s",
                    "Selisih jam (detik)",
                    "Clock offset (s)",
                    ColumnKind::Decimal(0),
                ),
                col("clock", "Jam komputer", "PC clock", ColumnKind::Text),
                col(
                    "open_over_12h",
                    "Sesi terbuka > 12 jam",
                    "Open > 12 h",
                    ColumnKind::Count,
                ),
                col("rejected", "Ditolak", "Rejected", ColumnKind::Count),
                col(
                    "new_epochs_30d",
                    "Penyimpanan baru (30 hari)",
                    "New stores (30 days)",
                    ColumnKind::Count,
                ),
                col(
                    "lost",
                    "Hilang setelah pemulihan",
                    "Lost after restore",
                    ColumnKind::Count,
                ),
            ],
            rows: table_rows,
        }]
        .into_iter()
        .chain((!lost_rows.is_empty()).then(|| Table {
            id: "lost".into(),
            title: Text::new(
                "Perubahan yang hilang setelah server dipulihkan dari cadangan lama (PC sudah menghapusnya)",
                "Changes lost after the server was restored from an older backup (the PC had pruned them)",
            ),
            columns: vec![
                col("library", "Perpustakaan", "Library", ColumnKind::Text),
                col("code", "Kode", "Code", ColumnKind::Text),
                col("pc", "Komputer", "PC", ColumnKind::Text),
                col("epoch", "Epoch", "Epoch", ColumnKind::Text),
                col("first_seq", "Seq awal", "First seq", ColumnKind::Decimal(0)),
                col("last_seq", "Seq akhir", "Last seq", ColumnKind::Decimal(0)),
                col("changes", "Perubahan", "Changes", ColumnKind::Count),
                col("reported", "Dilaporkan", "Reported", ColumnKind::Date),
            ],
            rows: lost_rows,
        }))
        .collect(),
        generated_at: generated_at.with_timezone(&zone.offset()),
        landscape: true,
        suppressed_below: None,
    }
}

#[cfg(test)]
mod ops_tests {
    use super::*;

    #[test]
    fn the_operations_view_flags_what_needs_attention() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let yesterday_ms = 1_795_600_000_000; // 2026-11-25 in WIB
        let row =
            |pc: &str, last: Option<i64>, offset: Option<i64>, open: u64, rejected: u64| OpsRow {
                library: LibraryCode::parse("dermaji").unwrap(),
                library_name: "Desa Dermaji".into(),
                pc: jejak_domain::PcCode::parse(pc).unwrap(),
                active: true,
                last_batch_ms: last,
                clock_offset_ms: offset,
                long_open_sessions: open,
                rejected,
                new_epochs_30d: 1,
                lost: Vec::new(),
            };
        let mut replaced = row("pc-07", Some(yesterday_ms), None, 0, 0);
        replaced.new_epochs_30d = 3;
        let mut restored = row("pc-09", Some(yesterday_ms), Some(0), 0, 0);
        restored.lost = vec![crate::facts::LostRange {
            epoch: uuid::Uuid::nil(),
            first_seq: 5,
            last_seq: 9,
            reported_at_ms: yesterday_ms,
        }];
        let rows = [
            row("pc-01", Some(yesterday_ms), Some(1_000), 0, 0),
            row("pc-02", None, None, 0, 0),
            row("pc-03", Some(yesterday_ms - 20 * 86_400_000), None, 0, 0),
            row("pc-04", Some(yesterday_ms), None, 2, 0),
            row("pc-05", Some(yesterday_ms), None, 0, 3),
            row(
                "pc-06",
                Some(yesterday_ms),
                Some(-3 * 365 * 86_400_000),
                0,
                0,
            ),
            replaced,
            // Syncs (by USB) but its clock was never measured.
            row("pc-08", Some(yesterday_ms), None, 0, 0),
            restored,
        ];
        let report = operations_report(&rows, today, Zone::Wib, Lang::Id, Utc::now());
        assert_sheets_named_in_full(&report);
        assert_eq!(report.sections[1].id, "lost");
        let reasons: Vec<Option<String>> = report.sections[0]
            .rows
            .iter()
            .map(|r| r.emphasis.as_ref().map(|f| f.reason.en.clone()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                None,
                Some("Never synced".into()),
                Some("Silent for 21 days".into()),
                Some("Sessions open for more than 12 hours".into()),
                Some("Records were rejected".into()),
                Some("PC clock is wrong: 3 years ahead of the server (measured at sync)".into()),
                Some("The PC's store started again more than once".into()),
                Some(
                    "PC clock unknown: never measured (syncs by USB only?); its records are dated by estimate"
                        .into()
                ),
                Some("5 changes lost after the server was restored".into()),
            ]
        );
        let column = |key: &str| {
            report.sections[0]
                .columns
                .iter()
                .position(|c| c.key == key)
                .unwrap()
        };
        assert_eq!(
            report.sections[0].rows[6].cells[column("new_epochs_30d")],
            Cell::number(3.0)
        );
        let clock = column("clock");
        assert_eq!(report.sections[0].rows[0].cells[clock], Cell::Empty);
        assert_eq!(
            report.sections[0].rows[5].cells[clock],
            Cell::text("3 tahun lebih cepat")
        );
        assert_eq!(
            report.sections[0].rows[0].cells[0],
            Cell::text("Desa Dermaji")
        );
        assert_eq!(report.sections[0].rows[0].cells[3], Cell::text("aktif"));
        assert_eq!(
            report.sections[0].rows[0].cells[column("clock_offset_s")],
            Cell::number(1.0)
        );
        assert_eq!(
            report.sections[0].rows[0].cells[column("days_silent")],
            Cell::number(1.0)
        );
        // One language at a time, English too.
        let english = operations_report(&rows, today, Zone::Wib, Lang::En, Utc::now());
        assert_eq!(
            english.sections[0].rows[5].cells[clock],
            Cell::text("3 years ahead")
        );
        assert_eq!(english.sections[0].rows[0].cells[3], Cell::text("active"));
    }
}

/// Sessions, then women, youth and UMKM sessions each with its share.
fn target_cells(label: Cell, [sessions, women, youth, umkm]: [u64; 4]) -> Vec<Cell> {
    vec![
        label,
        count(sessions),
        count(women),
        ratio(women as f64, sessions as f64),
        count(youth),
        ratio(youth as f64, sessions as f64),
        count(umkm),
        ratio(umkm as f64, sessions as f64),
    ]
}

#[cfg(test)]
mod period_tests {
    use super::*;
    use crate::{BreakdownFacts, DayFacts};

    fn facts(month: (i32, u32), libraries: &[(&str, u64)]) -> MonthFacts {
        let month = NaiveDate::from_ymd_opt(month.0, month.1, 1).unwrap();
        MonthFacts {
            month,
            libraries: libraries
                .iter()
                .map(|(code, sessions)| LibraryFacts {
                    code: LibraryCode::parse(code).unwrap(),
                    name: format!("Desa {code}"),
                    timezone: Zone::Wib,
                    pcs: Vec::new(),
                    open_days: Vec::new(),
                    unique_users: 0,
                    last_batch_ms: None,
                    days: vec![DayFacts {
                        pc: jejak_domain::PcCode::parse("pc-01").unwrap(),
                        day: month,
                        sessions: *sessions,
                        persons: *sessions,
                        seconds: 0,
                        kib: 0,
                        online_seconds: 0,
                        complete: *sessions,
                        men: 0,
                        women: *sessions,
                        estimated: 0,
                    }],
                    breakdowns: vec![
                        BreakdownFacts {
                            by: Breakdown::Age(AgeGroup::Pemuda),
                            user_kind: jejak_domain::UserKind::Anggota,
                            gender: Gender::P,
                            sessions: *sessions,
                            persons: *sessions,
                        },
                        BreakdownFacts {
                            by: Breakdown::Purpose(Purpose::Ekonomi),
                            user_kind: jejak_domain::UserKind::Anggota,
                            gender: Gender::P,
                            sessions: *sessions,
                            persons: *sessions,
                        },
                        BreakdownFacts {
                            by: Breakdown::Purpose(Purpose::Pendidikan),
                            user_kind: jejak_domain::UserKind::Anggota,
                            gender: Gender::P,
                            sessions: *sessions,
                            persons: *sessions,
                        },
                    ],
                })
                .collect(),
        }
    }

    #[test]
    fn a_quarter_lists_months_totals_and_the_change_against_the_previous_quarter() {
        let period = Period::Quarter {
            year: 2026,
            quarter: 1,
        };
        assert_eq!(
            period.previous(),
            Period::Quarter {
                year: 2025,
                quarter: 4
            }
        );
        assert_eq!(period.months().len(), 3);
        let current = [
            facts((2026, 1), &[("a", 10), ("b", 1)]),
            facts((2026, 2), &[("a", 20)]),
            facts((2026, 3), &[("a", 30), ("b", 3)]),
        ];
        let previous = [
            facts((2025, 10), &[("a", 40)]),
            facts((2025, 11), &[]),
            facts((2025, 12), &[]),
        ];
        let report = period_report(period, &current, &previous, Lang::Id, Utc::now());
        assert_eq!(report.id, "laporan-triwulan-2026-Q1");
        assert_sheets_named_in_full(&report);
        let months = &report.sections[0];
        assert_eq!(months.columns.len(), 1 + 3 + 3);
        let a = &months.rows[0].cells;
        assert_eq!(
            a[1..6],
            [count(10), count(20), count(30), count(60), count(40)]
        );
        assert_eq!(a[6], Cell::number(0.5), "60 against 40 is +50 %");
        let b = &months.rows[1].cells;
        assert_eq!(b[4], count(4));
        assert_eq!(b[6], Cell::Empty, "no previous sessions: no change to show");
        let total = &months.rows[2];
        assert!(total.is_total);
        assert_eq!(total.cells[4], count(64));

        let groups = &report.sections[1];
        // Every session of the fixture is a woman of 16–30 with the economy purpose.
        assert_eq!(
            groups.rows[0].cells[1..],
            [
                count(60),
                count(60),
                Cell::number(1.0),
                count(60),
                Cell::number(1.0),
                count(60),
                Cell::number(1.0)
            ]
        );
        assert_eq!(Period::Year(2026).months().len(), 12);
    }
}

#[cfg(test)]
mod uptime_flag_tests {
    use super::*;
    use crate::PcFacts;

    #[test]
    fn a_library_whose_internet_was_up_less_than_half_the_time_is_flagged() {
        let month = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        let library = |code: &str, up: u64| LibraryFacts {
            code: LibraryCode::parse(code).unwrap(),
            name: code.to_string(),
            timezone: Zone::Wib,
            pcs: vec![PcFacts {
                pc: jejak_domain::PcCode::parse("pc-01").unwrap(),
                active: true,
                // A batch yesterday: not silent.
                last_batch_ms: Some(1_793_500_000_000),
                powered_seconds: 1_000,
                internet_up_seconds: up,
                undated_sessions: 0,
            }],
            open_days: vec![month],
            unique_users: 0,
            last_batch_ms: Some(1_793_500_000_000),
            days: Vec::new(),
            breakdowns: Vec::new(),
        };
        let facts = MonthFacts {
            month,
            libraries: vec![library("lemah", 400), library("kuat", 900)],
        };
        let report = district_monthly(&facts, today, Lang::Id, Utc::now());
        let rows = &report.sections[0].rows;
        let flag = rows[0].emphasis.as_ref().expect("40 % uptime is flagged");
        assert_eq!(flag.reason.en, "Internet up only 40%");
        assert!(rows[1].emphasis.is_none(), "90 % is fine");
        let column = report.sections[0]
            .columns
            .iter()
            .position(|c| c.key == "internet_uptime")
            .unwrap();
        assert_eq!(rows[0].cells[column], Cell::Number(0.4));
        assert_eq!(
            rows[2].cells[column],
            Cell::Number(0.65),
            "the total pools the PCs"
        );
    }
}
