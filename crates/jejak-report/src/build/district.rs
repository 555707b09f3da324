//! The district monthly matrix (Rekap Bulanan Kabupaten): a row per library.

use chrono::{DateTime, NaiveDate, Utc};
use jejak_domain::{DetailField, Lang, Zone};

use super::services::Services;
use super::{
    LOW_UPTIME, LibraryMonth, OPENING_MINUTES_PER_DAY, SILENT_DAYS, Sum, col, count,
    data_mb_column, date_cell, dating_columns, days_open_column, internet_uptime_column,
    mean_minutes_column, month_code, month_text, ratio, sessions_column,
};
use crate::facts::{LibraryFacts, MonthFacts, VISITS_RULE, month_bounds};
use crate::model::{Cell, ColumnKind, Flag, Report, Row, Table, Text};

/// The district monthly matrix (Rekap Bulanan Kabupaten): a row per library of the
/// facts, grouped by kecamatan (sorted by name, libraries without one last) with a
/// subtotal row per kecamatan when any library has one, a total row, and libraries
/// silent for more than 14 days before `today` flagged.
pub fn district_monthly(
    facts: &MonthFacts,
    today: NaiveDate,
    lang: Lang,
    generated_at: DateTime<Utc>,
) -> Report {
    let (first, _) = month_bounds(facts.month);
    let mut rows = Vec::new();
    let mut district = Totals::default();
    let grouped = facts
        .libraries
        .iter()
        .any(|lib| lib.details.kecamatan.is_some());
    for (kecamatan, libraries) in by_kecamatan(&facts.libraries) {
        let mut group = Totals::default();
        for lib in libraries {
            let indicators = LibraryMonth::of(lib);
            group.add(&indicators, lib);
            rows.push(library_row(lib, &indicators, today));
        }
        if grouped {
            let label = kecamatan_total_label(kecamatan);
            rows.push(group.row(label.get(lang), kecamatan.unwrap_or("")));
        }
        district.merge(&group);
    }
    rows.push(district.row(lang.pick("Jumlah", "Total"), ""));
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
        sections: vec![
            Table {
                id: "libraries".into(),
                title: Text::new("Perpustakaan desa", "Village libraries"),
                columns: vec![
                    col("library", "Perpustakaan", "Library", ColumnKind::Text),
                    col("code", "Kode", "Code", ColumnKind::Text),
                    col("npp", "NPP", "NPP", ColumnKind::Text),
                    col("desa", "Desa", "Village (desa)", ColumnKind::Text),
                    col("kecamatan", "Kecamatan", "Sub-district", ColumnKind::Text),
                    col("pcs", "PC", "PCs", ColumnKind::Decimal(0)),
                    days_open_column(),
                    sessions_column(),
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
                    mean_minutes_column(),
                    col(
                        "use_rate",
                        "Pemanfaatan",
                        "Use rate",
                        ColumnKind::Percent(1),
                    ),
                    internet_uptime_column(),
                    data_mb_column(),
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
                notes: Vec::new(),
            },
            services_table(facts, lang),
        ],
        generated_at: generated_at.with_timezone(&zone.offset()),
        landscape: true,
        suppressed_below: None,
        signature: None,
    }
}

/// The label of a kecamatan's subtotal row (the libraries without one have theirs).
pub(super) fn kecamatan_total_label(kecamatan: Option<&str>) -> Text {
    match kecamatan {
        Some(name) => Text::new(
            format!("Jumlah Kecamatan {name}"),
            format!("Total, {name} sub-district"),
        ),
        None => Text::new(
            "Jumlah (kecamatan belum diisi)",
            "Total (sub-district not set)",
        ),
    }
}

/// The libraries grouped by kecamatan: the named ones sorted by name (letter case
/// aside), then those without one; each group keeps the facts' order (by code).
pub(super) fn by_kecamatan<'a>(
    libraries: impl IntoIterator<Item = &'a LibraryFacts>,
) -> Vec<(Option<&'a str>, Vec<&'a LibraryFacts>)> {
    let mut groups: Vec<(Option<&str>, Vec<&LibraryFacts>)> = Vec::new();
    for lib in libraries {
        let kecamatan = lib.details.kecamatan.as_deref();
        match groups
            .iter_mut()
            .find(|(k, _)| k.map(str::to_lowercase) == kecamatan.map(str::to_lowercase))
        {
            Some((_, members)) => members.push(lib),
            None => groups.push((kecamatan, vec![lib])),
        }
    }
    // `None` sorts first in `Option`'s order; the unnamed group goes last.
    groups.sort_by_key(|(k, _)| (k.is_none(), k.map(str::to_lowercase)));
    groups
}

/// One library's row, flagged when it is silent, has undated sessions or a weak link.
fn library_row(lib: &LibraryFacts, indicators: &LibraryMonth<'_>, today: NaiveDate) -> Row {
    let (pcs, sum, last, lib_undated) = (
        indicators.pcs.len(),
        &indicators.sum,
        indicators.last_sync,
        indicators.undated,
    );
    let detail = |field: DetailField| lib.details.get(field).map_or(Cell::Empty, Cell::text);
    let row = Row::new(vec![
        Cell::text(lib.name.clone()),
        Cell::text(lib.code.as_str()),
        detail(DetailField::Npp),
        detail(DetailField::Desa),
        detail(DetailField::Kecamatan),
        Cell::number(pcs as f64),
        Cell::number(indicators.days_open as f64),
        count(sum.sessions),
        ratio(sum.sessions as f64, indicators.pc_days() as f64),
        count(lib.unique_users),
        count(sum.men),
        count(sum.women),
        Cell::number(sum.hours()),
        sum.mean_minutes(),
        indicators.use_rate(),
        indicators.internet_uptime.clone(),
        Cell::number(sum.mb()),
        date_cell(last),
        sum.completeness(),
        count(sum.estimated),
        count(lib_undated),
    ]);
    let uptime = match indicators.internet_uptime {
        Cell::Number(share) => Some(share),
        _ => None,
    };
    match last {
        None => row.flagged(Flag::alert(Text::new(
            "Belum pernah sinkron",
            "Never synced",
        ))),
        Some(d) if (today - d).num_days() > SILENT_DAYS => row.flagged(Flag::alert(Text::new(
            format!("Tidak sinkron {} hari", (today - d).num_days()),
            format!("Silent for {} days", (today - d).num_days()),
        ))),
        // Sessions that no month counts: the PC's clock needs looking at (the uptime
        // column shows a low uptime by itself).
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
    }
}

/// The sums of a group of libraries (a kecamatan, the district) for a subtotal or the
/// total row. Unique users are not summed (one person may use several libraries).
#[derive(Default)]
struct Totals {
    pcs: usize,
    pc_days: usize,
    sum: Sum,
    undated: u64,
    powered_seconds: u64,
    internet_up_seconds: u64,
}

impl Totals {
    fn add(&mut self, indicators: &LibraryMonth<'_>, lib: &LibraryFacts) {
        self.pcs += indicators.pcs.len();
        self.pc_days += indicators.pc_days();
        self.sum.merge(&indicators.sum);
        self.undated += indicators.undated;
        self.powered_seconds += lib.pcs.iter().map(|p| p.powered_seconds).sum::<u64>();
        self.internet_up_seconds += lib.pcs.iter().map(|p| p.internet_up_seconds).sum::<u64>();
    }

    fn merge(&mut self, other: &Totals) {
        self.pcs += other.pcs;
        self.pc_days += other.pc_days;
        self.sum.merge(&other.sum);
        self.undated += other.undated;
        self.powered_seconds += other.powered_seconds;
        self.internet_up_seconds += other.internet_up_seconds;
    }

    /// The total row labelled `label`; `kecamatan` fills the kecamatan column of a
    /// subtotal (so a spreadsheet filter on it keeps the subtotal with its libraries).
    fn row(&self, label: &str, kecamatan: &str) -> Row {
        let t = &self.sum;
        Row::total(vec![
            Cell::text(label),
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            if kecamatan.is_empty() {
                Cell::Empty
            } else {
                Cell::text(kecamatan)
            },
            Cell::number(self.pcs as f64),
            Cell::Empty,
            count(t.sessions),
            ratio(t.sessions as f64, self.pc_days as f64),
            Cell::Empty,
            count(t.men),
            count(t.women),
            Cell::number(t.hours()),
            t.mean_minutes(),
            ratio(t.minutes(), self.pc_days as f64 * OPENING_MINUTES_PER_DAY),
            ratio(self.internet_up_seconds as f64, self.powered_seconds as f64),
            Cell::number(t.mb()),
            Cell::Empty,
            t.completeness(),
            count(t.estimated),
            count(self.undated),
        ])
    }
}

#[cfg(test)]
mod uptime_flag_tests {
    use super::*;
    use crate::{LibraryFacts, PcFacts};
    use jejak_domain::LibraryCode;

    #[test]
    fn a_library_whose_internet_was_up_less_than_half_the_time_is_flagged() {
        let month = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        let library = |code: &str, up: u64| LibraryFacts {
            code: LibraryCode::parse(code).unwrap(),
            name: code.to_string(),
            timezone: Zone::Wib,
            details: Default::default(),
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
            entry_counts: Vec::new(),
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

#[cfg(test)]
mod kecamatan_tests {
    use super::*;
    use crate::{DayFacts, LibraryFacts, PcFacts};
    use jejak_domain::{LibraryCode, LibraryDetails, PcCode};

    fn library(code: &str, kecamatan: Option<&str>, sessions: u64, powered: u64) -> LibraryFacts {
        let month = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        let pc = PcCode::parse("pc-01").unwrap();
        LibraryFacts {
            code: LibraryCode::parse(code).unwrap(),
            name: format!("Perpustakaan Desa {code}"),
            timezone: Zone::Wib,
            entry_counts: Vec::new(),
            details: LibraryDetails {
                npp: Some(format!("330201{}D1000001", code.len() % 10)),
                desa: Some(code.to_string()),
                kecamatan: kecamatan.map(str::to_string),
                ..LibraryDetails::default()
            },
            pcs: vec![PcFacts {
                pc: pc.clone(),
                active: true,
                last_batch_ms: Some(1_793_500_000_000),
                powered_seconds: powered,
                internet_up_seconds: powered / 2 + 100,
                undated_sessions: 0,
            }],
            open_days: vec![month],
            unique_users: sessions,
            last_batch_ms: Some(1_793_500_000_000),
            days: vec![DayFacts {
                pc,
                day: month,
                sessions,
                persons: sessions + 1,
                seconds: sessions * 1800,
                kib: sessions * 100,
                online_seconds: sessions * 900,
                complete: sessions,
                men: sessions / 2,
                women: sessions - sessions / 2,
                estimated: 0,
            }],
            breakdowns: Vec::new(),
        }
    }

    fn column(report: &Report, key: &str) -> usize {
        report.sections[0]
            .columns
            .iter()
            .position(|c| c.key == key)
            .unwrap()
    }

    #[test]
    fn libraries_are_grouped_by_kecamatan_with_subtotals_and_the_unset_ones_last() {
        // In code order, as the store hands them over.
        let facts = MonthFacts {
            month: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            libraries: vec![
                library("adisara", None, 7, 1000),
                library("dermaji", Some("Lumbir"), 10, 2000),
                library("kalisalak", Some("kebasen"), 4, 3000),
                library("lumbir", Some("Lumbir"), 6, 4000),
            ],
        };
        let today = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        let report = district_monthly(&facts, today, Lang::Id, Utc::now());
        let rows = &report.sections[0].rows;
        let first: Vec<String> = rows
            .iter()
            .map(|r| match &r.cells[0] {
                Cell::Text(t) => t.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            first,
            [
                "Perpustakaan Desa kalisalak",
                "Jumlah Kecamatan kebasen",
                "Perpustakaan Desa dermaji",
                "Perpustakaan Desa lumbir",
                "Jumlah Kecamatan Lumbir",
                "Perpustakaan Desa adisara",
                "Jumlah (kecamatan belum diisi)",
                "Jumlah",
            ],
            "kecamatan sorted by name whatever the case, the unset ones last"
        );
        let totals: Vec<bool> = rows.iter().map(|r| r.is_total).collect();
        assert_eq!(totals, [false, true, false, false, true, false, true, true]);

        let sessions = column(&report, "sessions");
        let hours = column(&report, "hours");
        let uptime = column(&report, "internet_uptime");
        let kecamatan = column(&report, "kecamatan");
        let value = |row: usize, col: usize| match rows[row].cells[col] {
            Cell::Number(n) => n,
            ref other => panic!("{other:?}"),
        };
        // Lumbir: dermaji + lumbir.
        assert_eq!(value(4, sessions), 16.0);
        assert_eq!(value(4, hours), value(2, hours) + value(3, hours));
        assert_eq!(value(4, uptime), (1100.0 + 2100.0) / 6000.0);
        assert_eq!(rows[4].cells[kecamatan], Cell::text("Lumbir"));
        assert_eq!(value(1, sessions), 4.0);
        assert_eq!(value(6, sessions), 7.0);
        // The district total is the sum of the subtotals, counted once.
        assert_eq!(value(7, sessions), 27.0);
        assert_eq!(
            value(7, hours),
            value(1, hours) + value(4, hours) + value(6, hours)
        );
        // Unique users are never summed across libraries.
        assert_eq!(rows[4].cells[column(&report, "unique_users")], Cell::Empty);
        // The library's own identity columns.
        assert_eq!(
            rows[2].cells[column(&report, "desa")],
            Cell::text("dermaji")
        );
        assert_eq!(
            rows[2].cells[column(&report, "npp")],
            Cell::text("3302017D1000001")
        );

        let english = district_monthly(&facts, today, Lang::En, Utc::now());
        let labels: Vec<&Cell> = english.sections[0]
            .rows
            .iter()
            .map(|r| &r.cells[0])
            .collect();
        assert_eq!(labels[4], &Cell::text("Total, Lumbir sub-district"));
        assert_eq!(labels[6], &Cell::text("Total (sub-district not set)"));
    }

    #[test]
    fn without_any_kecamatan_there_are_no_subtotals() {
        let facts = MonthFacts {
            month: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            libraries: vec![library("adisara", None, 7, 1000), library("b", None, 1, 10)],
        };
        let report = district_monthly(
            &facts,
            NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
            Lang::Id,
            Utc::now(),
        );
        let totals: Vec<bool> = report.sections[0].rows.iter().map(|r| r.is_total).collect();
        assert_eq!(totals, [false, false, true]);
    }
}

/// The library's services beyond the PCs, a row per library grouped as the PC table
/// is: days served, visits by the rule of [`VISITS_RULE`] and per day served, the
/// visitor book's people by purpose, activities and their participants (those of
/// socialisation/KIE apart, which the IPLM asks for), and the member count.
fn services_table(facts: &MonthFacts, lang: Lang) -> Table {
    let grouped = facts
        .libraries
        .iter()
        .any(|lib| lib.details.kecamatan.is_some());
    let mut rows = Vec::new();
    let mut district = Services::default();
    for (kecamatan, libraries) in by_kecamatan(&facts.libraries) {
        let mut group = Services::default();
        for lib in libraries {
            let one = Services::of_month(lib);
            let mut cells = vec![
                Cell::text(lib.name.clone()),
                Cell::text(lib.code.as_str()),
                lib.details
                    .get(DetailField::Kecamatan)
                    .map_or(Cell::Empty, Cell::text),
            ];
            cells.extend(one.cells());
            rows.push(Row::new(cells));
            group.add_library(&one);
        }
        if grouped {
            let label = kecamatan_total_label(kecamatan);
            let mut cells = vec![
                Cell::text(label.get(lang)),
                Cell::Empty,
                kecamatan.map_or(Cell::Empty, Cell::text),
            ];
            cells.extend(group.cells());
            rows.push(Row::total(cells));
        }
        district.add_library(&group);
    }
    let mut cells = vec![
        Cell::text(lang.pick("Jumlah", "Total")),
        Cell::Empty,
        Cell::Empty,
    ];
    cells.extend(district.cells());
    rows.push(Row::total(cells));
    let mut columns = vec![
        col("library", "Perpustakaan", "Library", ColumnKind::Text),
        col("code", "Kode", "Code", ColumnKind::Text),
        col("kecamatan", "Kecamatan", "Sub-district", ColumnKind::Text),
    ];
    columns.extend(Services::columns());
    Table {
        id: "services".into(),
        title: Text::new(
            "Kunjungan, kegiatan dan anggota",
            "Visits, activities and members",
        ),
        columns,
        rows,
        notes: vec![Text::new(VISITS_RULE.0, VISITS_RULE.1)],
    }
}
