//! The district monthly matrix (Rekap Bulanan Kabupaten): a row per library.

use chrono::{DateTime, NaiveDate, Utc};
use jejak_domain::{Lang, Zone};

use super::{
    LOW_UPTIME, LibraryMonth, OPENING_MINUTES_PER_DAY, SILENT_DAYS, Sum, col, count,
    data_mb_column, date_cell, dating_columns, days_open_column, internet_uptime,
    internet_uptime_column, mean_minutes_column, month_code, month_text, ratio, sessions_column,
};
use crate::facts::{MonthFacts, month_bounds};
use crate::model::{Cell, ColumnKind, Flag, Report, Row, Table, Text};

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
    let mut t_undated = 0u64;
    for lib in &facts.libraries {
        let indicators = LibraryMonth::of(lib);
        let (pcs, sum, last, lib_undated) = (
            indicators.pcs.len(),
            &indicators.sum,
            indicators.last_sync,
            indicators.undated,
        );
        t_pcs += pcs;
        t_pc_days += indicators.pc_days();
        t_sum.merge(sum);
        t_undated += lib_undated;
        let row = Row::new(vec![
            Cell::text(lib.name.clone()),
            Cell::text(lib.code.as_str()),
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
        count(t_sum.men),
        count(t_sum.women),
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
        }],
        generated_at: generated_at.with_timezone(&zone.offset()),
        landscape: true,
        suppressed_below: None,
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
