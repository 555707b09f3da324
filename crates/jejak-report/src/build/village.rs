//! The village monthly report (Laporan Bulanan Layanan TIK) of one library.

use chrono::{DateTime, Utc};
use jejak_domain::{AgeGroup, Lang, LibraryCode, Purpose};

use super::{
    LibraryMonth, Sum, col, count, data_mb_column, date_cell, date_of_ms, dating_columns,
    days_open_column, gender_cells, gender_columns, gender_index, internet_uptime_column,
    mean_minutes_column, month_code, month_text, ratio, sessions_column, use_rate,
};
use crate::facts::{Breakdown, MonthFacts, month_bounds};
use crate::model::{Cell, ColumnKind, Report, Row, Table, Text};

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
    let indicators = LibraryMonth::of(lib);
    let LibraryMonth {
        pcs,
        days_open: days,
        sum: all,
        last_sync,
        ..
    } = &indicators;
    let (days, all, last_sync) = (*days, *all, *last_sync);
    let month = month_text(first);

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
            days_open_column(),
            sessions_column(),
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
            mean_minutes_column(),
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
            internet_uptime_column(),
            data_mb_column(),
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
            indicators.use_rate(),
            all.online_share(),
            indicators.internet_uptime.clone(),
            Cell::number(all.mb()),
            all.completeness(),
            count(all.estimated),
            count(indicators.undated),
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
    for pc in pcs {
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
        indicators.use_rate(),
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
