//! The village monthly report (Laporan Bulanan Layanan TIK) of one library.

use chrono::{DateTime, Months, NaiveDate, Utc};
use jejak_domain::{AgeGroup, DetailField, Lang, LibraryCode, LibraryDetails, Purpose, UserKind};

use super::{
    LibraryMonth, Sum, col, count, data_mb_column, date_cell, date_of_ms, dating_columns,
    days_open_column, gender_cells, gender_columns, gender_index, hours_used_column,
    internet_uptime_column, mean_minutes_column, month_code, month_text, persons_column, ratio,
    sessions_column, unique_users_keyed_column, use_rate,
};
use crate::counters;
use crate::facts::{
    Breakdown, LibraryFacts, MonthFacts, library_visits, month_bounds, month_count, month_members,
};
use crate::model::{Cell, ColumnKind, Report, Row, Signatory, Signature, Table, Text};

/// The village monthly report (Laporan Bulanan Layanan TIK) of `library`, or `None`
/// when the facts do not hold it. `previous` is the month before's facts (days are
/// enough), for the change against it; without them the change table shows the
/// previous month as empty.
pub fn village_monthly(
    facts: &MonthFacts,
    previous: Option<&MonthFacts>,
    library: &LibraryCode,
    lang: Lang,
    generated_at: DateTime<Utc>,
) -> Option<Report> {
    let lib = facts.library(library)?;
    let before = previous.and_then(|p| p.library(library));
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
        ]
        .into_iter()
        .chain(
            [
                DetailField::Npp,
                DetailField::Desa,
                DetailField::Kecamatan,
                DetailField::Address,
            ]
            .map(|field| {
                (
                    field.label(lang),
                    Cell::text(
                        lib.details
                            .get(field)
                            .unwrap_or(lang.pick("(belum diisi)", "(not set)")),
                    ),
                )
            }),
        )
        .chain([
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
        ])
        .map(|(k, v)| Row::new(vec![Cell::text(k), v]))
        .collect(),
        notes: Vec::new(),
    };

    let summary = Table {
        id: "summary".into(),
        title: Text::new("B. Ringkasan", "B. Summary"),
        columns: vec![
            days_open_column(),
            sessions_column(),
            persons_column(),
            unique_users_keyed_column(),
            hours_used_column(),
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
        notes: Vec::new(),
    };

    let change = change_table(&indicators, lib, before, first, lang);
    let user_kinds = user_kind_table(lib, lang);

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
            "E. Kelompok Umur × Jenis Kelamin (sesi)",
            "E. Age group × Gender (sessions)",
        ),
        columns: gender_columns(col(
            "age_group",
            "Kelompok umur",
            "Age group",
            ColumnKind::Text,
        )),
        rows: by_age,
        notes: Vec::new(),
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
            "F. Tujuan Penggunaan × Jenis Kelamin (sesi; satu sesi dihitung sekali per tujuan)",
            "F. Purpose × Gender (sessions; a session counts once per purpose)",
        ),
        columns: purpose_columns,
        rows: by_purpose,
        notes: Vec::new(),
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
        title: Text::new("G. Kalender Harian", "G. Daily Calendar"),
        columns: vec![
            col("day", "Tanggal", "Date", ColumnKind::Date),
            col("open", "Buka", "Open", ColumnKind::Text),
            col("sessions", "Sesi", "Sessions", ColumnKind::Count),
            col("hours", "Jam", "Hours", ColumnKind::Decimal(1)),
        ],
        rows: daily_rows,
        notes: Vec::new(),
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
        title: Text::new("H. Per PC", "H. Per PC"),
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
        notes: Vec::new(),
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
        sections: [
            identity,
            summary,
            change,
            user_kinds,
            age_gender,
            purpose_gender,
            daily,
            per_pc,
        ]
        .into_iter()
        .chain(super::village_entries::entry_tables(lib, lang))
        .collect(),
        generated_at: generated_at.with_timezone(&lib.timezone.offset()),
        landscape: false,
        suppressed_below: None,
        signature: Some(signature(
            &lib.details,
            generated_at
                .with_timezone(&lib.timezone.offset())
                .date_naive(),
        )),
    })
}

/// The main totals of the month beside the month before's, and the change.
fn change_table(
    now: &LibraryMonth<'_>,
    lib: &LibraryFacts,
    before: Option<&LibraryFacts>,
    first: NaiveDate,
    lang: Lang,
) -> Table {
    let previous_month = first.checked_sub_months(Months::new(1)).unwrap_or(first);
    // A month without a member count has no members to compare: its cell stays empty.
    let totals = |m: &LibraryMonth<'_>, lib: &LibraryFacts| -> [Option<f64>; 10] {
        let visits: u64 = library_visits(lib).iter().map(|(_, v)| v).sum();
        [
            Some(m.days_open as f64),
            Some(m.sum.sessions as f64),
            Some(m.sum.persons as f64),
            Some(lib.unique_users as f64),
            Some(m.sum.hours()),
            Some(m.sum.mb()),
            Some(visits as f64),
            Some(month_count(lib, counters::ACTIVITIES) as f64),
            Some(month_count(lib, counters::PARTICIPANTS) as f64),
            month_members(lib).map(|(members, _)| members as f64),
        ]
    };
    let this = totals(now, lib);
    let last = before.map(|b| totals(&LibraryMonth::of(b), b));
    let cells = |values: Option<[Option<f64>; 10]>| match values {
        Some(values) => values
            .iter()
            .map(|v| v.map_or(Cell::Empty, Cell::number))
            .collect(),
        None => vec![Cell::Empty; 10],
    };
    let label = |text: Text| Cell::text(text.get(lang));
    let mut change_row = vec![label(Text::new("Perubahan", "Change"))];
    let mut share_row = vec![label(Text::new("Perubahan (%)", "Change (%)"))];
    for (i, value) in this.iter().enumerate() {
        match (value, last.and_then(|last| last[i])) {
            (Some(value), Some(last)) => {
                change_row.push(Cell::number(value - last));
                share_row.push(ratio(value - last, last));
            }
            _ => {
                change_row.push(Cell::Empty);
                share_row.push(Cell::Empty);
            }
        }
    }
    let mut this_row = vec![label(month_text(first))];
    this_row.extend(cells(Some(this)));
    let mut last_row = vec![label(month_text(previous_month))];
    last_row.extend(cells(last));
    // The change in per cent sits under number columns: its cells are text, written
    // as people say it, so no column kind misreads them.
    let share_row = share_row
        .into_iter()
        .enumerate()
        .map(|(i, cell)| match cell {
            Cell::Number(share) if i > 0 => Cell::text(signed_percent(share, lang)),
            other => other,
        })
        .collect();
    Table {
        id: "change".into(),
        title: Text::new(
            "C. Dibanding Bulan Sebelumnya",
            "C. Against the Previous Month",
        ),
        columns: vec![
            col("period", "Periode", "Period", ColumnKind::Text),
            days_open_column(),
            sessions_column(),
            persons_column(),
            unique_users_keyed_column(),
            hours_used_column(),
            data_mb_column(),
            col("visits", "Kunjungan", "Visits", ColumnKind::Count),
            col("activities", "Kegiatan", "Activities", ColumnKind::Count),
            col(
                "participants",
                "Peserta kegiatan",
                "Participants",
                ColumnKind::Count,
            ),
            col("members", "Anggota", "Members", ColumnKind::Count),
        ],
        rows: vec![
            Row::new(this_row),
            Row::new(last_row),
            Row::total(change_row),
            Row::total(share_row),
        ],
        notes: Vec::new(),
    }
}

/// `share` as people say a change: "naik 12,5%" / "turun 3,0%" ("up" / "down"), or
/// "tetap" / "unchanged". Words rather than a sign, which a spreadsheet would take for
/// the start of a formula.
fn signed_percent(share: f64, lang: Lang) -> String {
    let shown = crate::number::format_number(share.abs() * 100.0, 1, lang);
    if share > 0.0 {
        format!("{} {shown}%", lang.pick("naik", "up"))
    } else if share < 0.0 {
        format!("{} {shown}%", lang.pick("turun", "down"))
    } else {
        lang.pick("tetap", "unchanged").to_string()
    }
}

/// Public PC sessions by user kind (kriteria pengguna) and gender, with their persons.
fn user_kind_table(lib: &LibraryFacts, lang: Lang) -> Table {
    let mut rows = Vec::new();
    let (mut total, mut total_persons) = ([0u64; 3], 0u64);
    for kind in UserKind::ALL.iter().filter(|k| k.counts_publicly()) {
        let mut cells = [0u64; 3];
        let mut persons = 0;
        // Each session is in exactly one age cell, so the age breakdown counts it once.
        for g in lib
            .breakdowns
            .iter()
            .filter(|g| matches!(g.by, Breakdown::Age(_)) && g.user_kind == *kind)
        {
            cells[gender_index(g.gender)] += g.sessions;
            persons += g.persons;
        }
        for (t, c) in total.iter_mut().zip(cells) {
            *t += c;
        }
        total_persons += persons;
        let mut row = gender_cells(kind.label(lang).to_string(), cells);
        row.push(count(persons));
        rows.push(Row::new(row));
    }
    let mut row = gender_cells(lang.pick("Jumlah", "Total").to_string(), total);
    row.push(count(total_persons));
    rows.push(Row::total(row));
    let mut columns = gender_columns(col(
        "user_kind",
        "Kriteria pengguna",
        "User kind",
        ColumnKind::Text,
    ));
    columns.push(persons_column());
    Table {
        id: "user_kind".into(),
        title: Text::new(
            "D. Sesi PC menurut Kriteria Pengguna",
            "D. PC Sessions by User Kind",
        ),
        columns,
        rows,
        notes: Vec::new(),
    }
}

/// The signature block: the head of the village acknowledges, the manager makes the
/// report, dated `date` at the desa (or kecamatan) when known.
fn signature(details: &LibraryDetails, date: NaiveDate) -> Signature {
    let head = match &details.desa {
        Some(desa) => Text::new(
            format!("Kepala Desa {desa}"),
            format!("Head of {desa} Village"),
        ),
        None => Text::new("Kepala Desa", "Head of the Village"),
    };
    Signature {
        place: details.desa.clone().or_else(|| details.kecamatan.clone()),
        date,
        acknowledged_by: Signatory {
            heading: vec![Text::new("Mengetahui,", "Acknowledged by,"), head],
            name: details.kepala_desa.clone(),
            nip: None,
        },
        made_by: Signatory {
            heading: vec![Text::new("Pengelola Perpustakaan", "Library Manager")],
            name: details.manager.clone(),
            nip: details.manager_nip_grouped(),
        },
    }
}
