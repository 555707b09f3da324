//! The quarterly and annual comparisons (Laporan Triwulan, Laporan Tahunan).

use chrono::{DateTime, NaiveDate, Utc};
use jejak_domain::{AgeGroup, Gender, Lang, LibraryCode, Purpose, Zone};

use super::{col, count, month_text, ratio};
use crate::facts::{Breakdown, MonthFacts};
use crate::model::{Cell, Column, ColumnKind, Report, Row, Table, Text};

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
                notes: Vec::new(),
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
                notes: Vec::new(),
            },
        ],
        generated_at: generated_at.with_timezone(&zone.offset()),
        landscape: true,
        suppressed_below: None,
        signature: None,
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
    use crate::build::assert_sheets_named_in_full;
    use crate::{BreakdownFacts, DayFacts, LibraryFacts};

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
                    details: Default::default(),
                    pcs: Vec::new(),
                    open_days: Vec::new(),
                    unique_users: 0,
                    last_batch_ms: None,
                    entry_counts: Vec::new(),
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
